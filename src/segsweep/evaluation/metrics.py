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

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from segsweep.errors import ConfigError

__all__ = [
    "LesionCounts",
    "hd95",
    "label_lesions",
    "lesion_counts",
    "lesion_metrics",
    "lesion_scores",
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
# BraTS 2023's lesion-wise Dice over a whole set, and the validation callback needs all of them
# from one labelling per image. medpy's `hd95` and `obj_tpr` cross-check these in the tests.

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity: diagonal neighbours join one lesion
_FOUR = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class LesionCounts:
    """Lesion-level tallies of one image (or, summed, of a set)."""

    true: int = 0  # true lesions scored (at least min_lesion_px pixels)
    found: int = 0  # scored true lesions matched by some predicted component
    pred: int = 0  # predicted components (but those touching only lesions too small to score)
    pred_matched: int = 0  # predicted components that touch some scored true lesion
    dice_sum: float = 0.0  # Σ Dice of each scored true lesion with the components matching it

    @property
    def false_positive(self) -> int:
        return self.pred - self.pred_matched

    def __add__(self, other: LesionCounts) -> LesionCounts:
        return LesionCounts(
            *(getattr(self, f) + getattr(other, f) for f in LesionCounts.__dataclass_fields__)
        )


def matched_pairs(true_lab: np.ndarray, pred_lab: np.ndarray, dilation: int) -> np.ndarray:
    """Unique (true lesion, predicted component) pairs that touch, shape ``(k, 2)``.

    A component matches a lesion when it shares a pixel with the lesion dilated ``dilation``
    times by the 3×3 square (BraTS' rule in 2D), that is within chessboard distance
    ``dilation``. Each lesion is dilated on its own, so lesions whose dilations overlap are
    matched independently: shifting the labels by every offset of that square does exactly that.
    """
    h, w = true_lab.shape
    pairs = []
    for dy in range(-dilation, dilation + 1):
        for dx in range(-dilation, dilation + 1):
            if abs(dy) >= h or abs(dx) >= w:
                continue  # a shift past the image's edge overlaps nothing
            t = true_lab[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
            p = pred_lab[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
            both = (t > 0) & (p > 0)
            pairs.append(np.stack([t[both], p[both]], axis=1))
    return np.unique(np.concatenate(pairs), axis=0)


def label_lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The 8-connected components of a boolean mask: (labels, count)."""
    return ndimage.label(mask, structure=_EIGHT)


def lesion_counts(
    truth: np.ndarray, pred: np.ndarray, *, match_dilation: int = 0, min_lesion_px: int = 0
) -> LesionCounts:
    """Lesion tallies of one boolean ``(H, W)`` pair.

    True lesions below ``min_lesion_px`` are left out of the scores but still match: a
    component touching only such a lesion is neither a hit nor a false positive, so it leaves
    precision alone (BraTS counts it as no false positive).
    """
    true_lab, n_true = label_lesions(truth)
    pred_lab, n_pred = label_lesions(pred)
    true_size = np.bincount(true_lab.ravel(), minlength=n_true + 1)
    scored = true_size >= min_lesion_px
    scored[0] = False
    if n_true == 0 or n_pred == 0:
        return LesionCounts(true=int(scored.sum()), pred=n_pred)
    pred_size = np.bincount(pred_lab.ravel(), minlength=n_pred + 1)
    pairs = matched_pairs(true_lab, pred_lab, match_dilation)
    hits = np.unique(pairs[scored[pairs[:, 0]], 1])  # components touching a scored lesion
    touching_small_only = len(np.unique(pairs[:, 1])) - len(hits)
    # Every component touching lesion i is merged before scoring it; components are disjoint,
    # so the union's size is the sum of theirs, and its overlap with i is i's predicted pixels.
    union = np.bincount(pairs[:, 0], weights=pred_size[pairs[:, 1]], minlength=n_true + 1)
    overlap = np.bincount(true_lab[pred_lab > 0], minlength=n_true + 1)
    dice = 2.0 * overlap / np.maximum(true_size + union, 1)
    found = np.zeros(n_true + 1, dtype=bool)
    found[pairs[:, 0]] = True
    return LesionCounts(
        true=int(scored.sum()),
        found=int((found & scored).sum()),
        pred=n_pred - touching_small_only,
        pred_matched=len(hits),
        dice_sum=float(dice[scored].sum()),
    )


def hd95(truth: np.ndarray, pred: np.ndarray) -> float:
    """95th percentile of the symmetric boundary distances of one ``(H, W)`` pair, in pixels.

    Boundaries and distances as medpy's ``hd95``: a mask's boundary is the mask minus its
    4-connected erosion, and the percentile is taken over the distances from each boundary
    pixel of one mask to the other's boundary, both directions pooled. Both masks empty: 0;
    exactly one empty: the image diagonal.
    """
    if not truth.any() or not pred.any():
        return 0.0 if not truth.any() and not pred.any() else float(np.hypot(*truth.shape))
    t_edge = truth & ~ndimage.binary_erosion(truth, _FOUR)
    p_edge = pred & ~ndimage.binary_erosion(pred, _FOUR)
    to_t = ndimage.distance_transform_edt(~t_edge)[p_edge]
    to_p = ndimage.distance_transform_edt(~p_edge)[t_edge]
    return float(np.percentile(np.concatenate([to_t, to_p]), 95))


def lesion_scores(total: LesionCounts) -> dict[str, float]:
    """Recall, precision, F1 and lesion-wise Dice of a set from its summed tallies.

    Empty cases: with no scored true lesion in the set, recall is 1 if nothing was invented
    (no false-positive component) else 0; with no predicted component, precision is 1 if there
    is no scored true lesion else 0; F1 is 0 when precision and recall are both 0; lesion_dsc is
    1 when there is neither a scored true lesion nor a false positive.
    """
    fp = total.false_positive
    recall = total.found / total.true if total.true else float(fp == 0)
    precision = total.pred_matched / total.pred if total.pred else float(total.true == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    denominator = total.true + fp
    return {
        "lesion_recall": recall,
        "lesion_precision": precision,
        "lesion_f1": f1,
        "lesion_dsc": total.dice_sum / denominator if denominator else 1.0,
        "lesions_true": float(total.true),
        "lesions_missed": float(total.true - total.found),
        "lesions_fp": float(fp),
    }


def lesion_metrics(
    y_true: np.ndarray,
    prob: np.ndarray,
    *,
    threshold: float = 0.5,
    match_dilation: int = 0,
    min_lesion_px: int = 0,
    with_hd95: bool = True,
) -> dict[str, float]:
    """Lesion-wise metrics of a whole set on masks thresholded at the model's resolution.

    Keys: ``lesion_recall``, ``lesion_precision``, ``lesion_f1``, ``lesion_dsc`` (BraTS 2023
    lesion-wise Dice: Σ per-lesion Dice / (true lesions + false-positive components)), the
    counts ``lesions_true``, ``lesions_missed``, ``lesions_fp``, and ``hd95`` (per image,
    averaged over images; left out when ``with_hd95`` is false). Counts are summed over the
    images, then divided. Empty cases: :func:`lesion_scores` and :func:`hd95`.
    """
    truth, prob = _flatten_pair(y_true, prob)
    pred = _binarise(prob, threshold, owner="lesion_metrics")
    shape = np.shape(y_true)[1:3]
    truth, pred = truth.reshape(-1, *shape), pred.reshape(-1, *shape)
    total = LesionCounts()
    for t, p in zip(truth, pred, strict=True):
        total += lesion_counts(t, p, match_dilation=match_dilation, min_lesion_px=min_lesion_px)
    scores = lesion_scores(total)
    if with_hd95:
        scores["hd95"] = float(np.mean([hd95(t, p) for t, p in zip(truth, pred, strict=True)]))
    return scores
