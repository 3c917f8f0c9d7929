"""Hard validation metrics over a whole validation set, in numpy only.

These are the numbers papers report: predictions are thresholded (a pixel is lesion when its
probability is strictly above ``threshold``, Keras' convention) and the Dice is computed per image
and averaged over images. The soft, batch-pooled Dice that the training loss uses is reported
beside them as ``dsc_soft`` so the two can be compared for every run.

Empty cases follow one rule: a ratio whose denominator is 0 scores 1 when truth and prediction
are both empty (nothing to find, nothing found) and 0 otherwise. So an image with no lesion and no
predicted lesion has a Dice of 1, and an image where only one of them is empty has a Dice of 0;
a model that predicts no lesion pixel at all has precision 0 on a set that contains lesions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from segsweep.errors import ConfigError
from segsweep.evaluation.lesions import (
    LesionCounts,
    case_lesion_dsc,
    label_lesions,
    lesion_counts,
    matched_pairs,
)

__all__ = [
    "LesionCounts",
    "LESION_FIELDS",
    "by_case",
    "hd95",
    "label_lesions",
    "lesion_counts",
    "lesion_metrics",
    "lesion_scores",
    "lesion_table",
    "matched_pairs",
    "per_image_dice",
    "segmentation_metrics",
]


def _flatten_pair(y_true: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as ``(N, pixels)``; a trailing channel axis of size 1 is dropped."""
    y_true, prob = np.asarray(y_true), np.asarray(prob)
    if y_true.ndim == 4 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if prob.ndim == 4 and prob.shape[-1] == 1:
        prob = prob[..., 0]
    if y_true.ndim != 3 or y_true.shape != prob.shape or y_true.shape[0] == 0:
        raise ValueError(
            "y_true and prob must both have shape (N, H, W) or (N, H, W, 1) with N >= 1. "
            f"Got {np.shape(y_true)} and {np.shape(prob)} instead."
        )
    if y_true.dtype != bool and not ((y_true == 0) | (y_true == 1)).all():
        raise ValueError("y_true must hold only 0 and 1 (or booleans).")
    # Written so that NaN fails too: a diverged model must not score as "predicts nothing".
    if not (prob.min() >= 0.0 and prob.max() <= 1.0):
        raise ValueError(
            f"prob must hold probabilities in [0, 1]. Got min {prob.min()!r}, "
            f"max {prob.max()!r} instead."
        )
    n = y_true.shape[0]
    return y_true.reshape(n, -1).astype(bool, copy=False), prob.reshape(n, -1)


def _binarise(prob: np.ndarray, threshold: float, *, owner: str) -> np.ndarray:
    if not (
        isinstance(threshold, int | float)
        and not isinstance(threshold, bool)
        and 0.0 < threshold < 1.0
    ):
        raise ConfigError(
            f"The 'threshold' parameter of {owner} must be a float in (0, 1). "
            f"Got {threshold!r} instead."
        )
    return prob > threshold


def _ratio(numerator, denominator, both_empty):
    """``numerator / denominator``; where the denominator is 0: 1 if both_empty else 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, np.where(both_empty, 1.0, 0.0))


def _dice_from_counts(tp, n_true, n_pred):
    return _ratio(2 * tp, n_true + n_pred, (n_true == 0) & (n_pred == 0))


def per_image_dice(y_true: np.ndarray, prob: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """Hard lesion Dice of each image, shape ``(N,)``; empty/empty scores 1, empty/lesion 0."""
    truth, prob = _flatten_pair(y_true, prob)
    pred = _binarise(prob, threshold, owner="per_image_dice")
    tp = np.count_nonzero(truth & pred, axis=1)
    return _dice_from_counts(tp, np.count_nonzero(truth, axis=1), np.count_nonzero(pred, axis=1))


def segmentation_metrics(
    y_true: np.ndarray, prob: np.ndarray, *, threshold: float = 0.5
) -> dict[str, float]:
    """Hard and soft lesion metrics of a whole validation set.

    Keys: ``dsc`` (hard Dice per image, averaged over images), ``dsc_global`` (hard Dice pooled
    over all pixels of all images), ``dsc_soft`` (soft Dice ``2·Σtp / (Σt + Σp)`` on the
    probabilities, pooled, no smoothing; 1 when both sums are 0), ``iou`` (pooled Jaccard),
    ``precision`` and ``recall`` (pooled), ``pred_fg`` and ``true_fg`` (fraction of all pixels
    predicted / marked as lesion). Empty cases: see the module docstring.
    """
    truth, prob = _flatten_pair(y_true, prob)
    pred = _binarise(prob, threshold, owner="segmentation_metrics")
    tp_img = np.count_nonzero(truth & pred, axis=1)
    true_img = np.count_nonzero(truth, axis=1)
    pred_img = np.count_nonzero(pred, axis=1)
    tp, n_true, n_pred = int(tp_img.sum()), int(true_img.sum()), int(pred_img.sum())
    both_empty = n_true == 0 and n_pred == 0
    soft_overlap = float(prob[truth].sum(dtype=np.float64))
    soft_total = n_true + float(prob.sum(dtype=np.float64))
    return {
        "dsc": float(_dice_from_counts(tp_img, true_img, pred_img).mean()),
        "dsc_global": float(_dice_from_counts(tp, n_true, n_pred)),
        "dsc_soft": float(_ratio(2.0 * soft_overlap, soft_total, soft_total == 0)),
        "iou": float(_ratio(tp, n_true + n_pred - tp, both_empty)),
        "precision": float(_ratio(tp, n_pred, both_empty)),
        "recall": float(_ratio(tp, n_true, both_empty)),
        "pred_fg": n_pred / truth.size,
        "true_fg": n_true / truth.size,
    }


# ---- lesion-wise metrics -----------------------------------------------------------------------
#
# Written here rather than taken from a library: MONAI, medpy and surface-distance each score one
# image pair at a time with their own empty-case rules (NaN, inf or an exception), none implements
# BraTS 2023's lesion-wise Dice, and the validation callback needs all of them from one labelling
# per image. The BraTS rules live in :mod:`segsweep.evaluation.lesions`; medpy's `hd95` and
# `obj_tpr` cross-check these in the tests.


def hd95(truth: np.ndarray, pred: np.ndarray, spacing: tuple[float, ...] | None = None) -> float:
    """95th percentile of the symmetric boundary distances of one pair, in pixels (or in mm
    along each axis's ``spacing``, for a volume).

    Boundaries and distances as medpy's ``hd95``: a mask's boundary is the mask minus its
    4-connected (6-connected in 3D) erosion, and the percentile is taken over the distances
    from each boundary pixel of one mask to the other's boundary, both directions pooled. Both
    masks empty: 0; exactly one empty: the image's (volume's) diagonal.
    """
    step = np.ones(truth.ndim) if spacing is None else np.asarray(spacing, dtype=np.float64)
    if not truth.any() or not pred.any():
        both_empty = not truth.any() and not pred.any()
        return 0.0 if both_empty else float(np.linalg.norm(np.asarray(truth.shape) * step))
    # The erosion needs only the masks' joint bounding box, widened by a voxel so that it sees
    # the same neighbours; the distances are those between the two boundaries' voxel positions
    # in mm, found by a k-d tree: exact like medpy's distance transform, which costs a whole
    # 240 x 240 x 155 grid per call where the tree costs only the boundary voxels.
    box = ndimage.find_objects((truth | pred).astype(np.int8))[0]
    box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
    truth, pred = truth[box], pred[box]
    cross = ndimage.generate_binary_structure(truth.ndim, 1)  # 4- (2-D) or 6-connected (3-D)
    t_edge = np.argwhere(truth & ~ndimage.binary_erosion(truth, cross)) * step
    p_edge = np.argwhere(pred & ~ndimage.binary_erosion(pred, cross)) * step
    to_t, _ = cKDTree(t_edge).query(p_edge)
    to_p, _ = cKDTree(p_edge).query(t_edge)
    return float(np.percentile(np.concatenate([to_t, to_p]), 95))


LESION_FIELDS = ("true", "found", "pred", "pred_matched", "dice_sum")


def lesion_table(cases: Sequence[LesionCounts]) -> np.ndarray:
    """The tallies as a ``(K, 5)`` array, columns :data:`LESION_FIELDS`: one row per case."""
    rows = [[getattr(c, f) for f in LESION_FIELDS] for c in cases]
    return np.array(rows, dtype=np.float64).reshape(-1, len(LESION_FIELDS))


def lesion_scores(cases: LesionCounts | Sequence[LesionCounts] | np.ndarray) -> dict[str, float]:
    """Recall, precision, F1 and lesion-wise Dice of a set from the tallies of its cases
    (LesionCounts, or a :func:`lesion_table`).

    ``lesion_dsc`` is BraTS 2023's: each case's lesion-wise Dice, then the mean over cases;
    ``lesion_dsc_pooled`` divides the tallies summed over all cases instead (what segsweep
    reported as ``lesion_dsc`` before). The detection figures are pooled. One ``LesionCounts``
    is one case. Empty cases: with no scored true lesion in the set, recall is 1 if nothing was
    invented (no false-positive component) else 0; with no predicted component, precision is 1
    if there is no scored true lesion else 0; F1 is 0 when precision and recall are both 0; a
    case's lesion Dice is 1 when it has neither a scored true lesion nor a false positive.
    """
    if isinstance(cases, LesionCounts):
        cases = [cases]
    table = cases if isinstance(cases, np.ndarray) else lesion_table(cases)
    true, found, pred, matched, dice = table.T
    fp = pred - matched
    denominator = true + fp
    per_case = np.where(denominator > 0, dice / np.maximum(denominator, 1), 1.0)
    total = LesionCounts(*(int(v) for v in table[:, :4].sum(axis=0)), float(dice.sum()))
    recall = total.found / total.true if total.true else float(total.false_positive == 0)
    precision = total.pred_matched / total.pred if total.pred else float(total.true == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "lesion_recall": recall,
        "lesion_precision": precision,
        "lesion_f1": f1,
        "lesion_dsc": float(per_case.mean()) if len(per_case) else 1.0,
        "lesion_dsc_pooled": case_lesion_dsc(total),
        "lesions_true": float(total.true),
        "lesions_missed": float(total.true - total.found),
        "lesions_fp": float(total.false_positive),
    }


def by_case(counts: Sequence[LesionCounts], cases: Sequence | None) -> list[LesionCounts]:
    """Each case's tallies, its images' summed; ``cases=None``: every image is its own case."""
    if cases is None:
        return list(counts)
    summed: dict = {}
    for case, c in zip(cases, counts, strict=True):
        summed[case] = summed.get(case, LesionCounts()) + c
    return list(summed.values())


def lesion_metrics(
    y_true: np.ndarray,
    prob: np.ndarray,
    *,
    threshold: float = 0.5,
    match_dilation: int = 0,
    min_lesion_px: int = 0,
    with_hd95: bool = True,
    cases: Sequence | None = None,
) -> dict[str, float]:
    """Lesion-wise metrics of a whole set on masks thresholded at the model's resolution.

    Keys: ``lesion_recall``, ``lesion_precision``, ``lesion_f1``, ``lesion_dsc`` (BraTS 2023
    lesion-wise Dice: per case Σ lesion Dice / (true lesions + false-positive components), then
    the mean over cases), ``lesion_dsc_pooled``, the counts ``lesions_true``,
    ``lesions_missed``, ``lesions_fp``, and ``hd95`` (per image, in pixels, averaged over
    images; left out when ``with_hd95`` is false). ``cases`` gives each image's case (a
    patient's slices); without it every image is a case. Empty cases: :func:`lesion_scores`
    and :func:`hd95`.
    """
    truth, prob = _flatten_pair(y_true, prob)
    pred = _binarise(prob, threshold, owner="lesion_metrics")
    shape = np.shape(y_true)[1:3]
    truth, pred = truth.reshape(-1, *shape), pred.reshape(-1, *shape)
    per_image = [
        lesion_counts(t, p, match_dilation=match_dilation, min_lesion_px=min_lesion_px)
        for t, p in zip(truth, pred, strict=True)
    ]
    scores = lesion_scores(by_case(per_image, cases))
    if with_hd95:
        scores["hd95"] = float(np.mean([hd95(t, p) for t, p in zip(truth, pred, strict=True)]))
    return scores
