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

import numpy as np

from segsweep.errors import ConfigError

__all__ = ["segmentation_metrics", "per_image_dice"]


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
