"""Scoring a set of predictions image by image: pooled metrics, per-image values, bootstrap.

:mod:`~segsweep.evaluation.metrics` scores one validation batch of equal-sized masks. Finalizing a
study needs more: test images keep their own original sizes, the champion is compared with the other
candidates image by image (a paired test), and the test value gets a bootstrap confidence interval
over images. So each image is reduced once to the counts every metric is built from, and any metric
of any subset of images is computed from those counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segsweep.evaluation.metrics import (
    LesionCounts,
    hd95,
    label_lesions,
    lesion_counts,
    lesion_scores,
)

__all__ = [
    "ImageCounts",
    "count_images",
    "drop_small_components",
    "bootstrap_ci",
    "per_image_values",
    "set_metrics",
]


@dataclass(frozen=True)
class ImageCounts:
    """Per-image counts, arrays of shape (N,), from which every metric of a set follows."""

    tp: np.ndarray
    n_true: np.ndarray
    n_pred: np.ndarray
    pixels: np.ndarray
    soft_overlap: np.ndarray
    soft_total: np.ndarray
    hd95: np.ndarray
    lesions: tuple[LesionCounts, ...]

    def __len__(self) -> int:
        return len(self.tp)

    def take(self, idx: np.ndarray) -> ImageCounts:
        return ImageCounts(
            *(getattr(self, f)[idx] for f in ("tp", "n_true", "n_pred", "pixels")),
            self.soft_overlap[idx],
            self.soft_total[idx],
            self.hd95[idx],
            tuple(self.lesions[i] for i in idx),
        )


def drop_small_components(pred: np.ndarray, min_px: int) -> np.ndarray:
    """``pred`` without its 8-connected components smaller than ``min_px`` pixels."""
    if min_px <= 1 or not pred.any():
        return pred
    labels, _ = label_lesions(pred)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]


def count_images(
    truths: Sequence[np.ndarray],
    probs: Sequence[np.ndarray],
    *,
    threshold: float = 0.5,
    match_dilation: int | Sequence[int] = 0,
    min_lesion_px: int | Sequence[int] = 0,
    min_component_px: int | Sequence[int] = 0,
) -> ImageCounts:
    """Counts of each (truth, probability) pair of 2-D arrays; sizes may differ between images.

    ``min_component_px`` removes predicted components smaller than that before scoring (the
    post-processing finalize may choose). Either minimum may be one number per image (sizes
    defined at the model's resolution, scaled to each image's own), and so may the dilation.
    """
    n = len(truths)
    per_image = [
        [v] * n if isinstance(v, int) else list(v)
        for v in (match_dilation, min_lesion_px, min_component_px)
    ]
    rows = []
    for truth, prob, dilation, min_lesion, min_comp in zip(truths, probs, *per_image, strict=True):
        truth = np.asarray(truth) > 0
        prob = np.asarray(prob, dtype=np.float64)
        pred = drop_small_components(prob > threshold, min_comp)
        rows.append(
            (
                int((truth & pred).sum()),
                int(truth.sum()),
                int(pred.sum()),
                truth.size,
                float(prob[truth].sum()),
                float(truth.sum() + prob.sum()),
                hd95(truth, pred),
                lesion_counts(truth, pred, match_dilation=dilation, min_lesion_px=min_lesion),
            )
        )
    columns = list(zip(*rows, strict=True)) if rows else [()] * 8
    return ImageCounts(
        *(np.asarray(c, dtype=np.int64) for c in columns[:4]),
        *(np.asarray(c, dtype=np.float64) for c in columns[4:7]),
        tuple(columns[7]),
    )


def _ratio(num: float, den: float, both_empty: bool) -> float:
    return num / den if den > 0 else float(both_empty)


def _dice(tp, n_true, n_pred) -> np.ndarray:
    den = n_true + n_pred
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0)


def set_metrics(c: ImageCounts) -> dict[str, float]:
    """The same keys as a validation epoch's metrics (without ``val_``), for these images."""
    tp, n_true, n_pred = int(c.tp.sum()), int(c.n_true.sum()), int(c.n_pred.sum())
    empty = n_true == 0 and n_pred == 0
    soft_total = float(c.soft_total.sum())
    total = sum(c.lesions, LesionCounts())
    return {
        "dsc": float(_dice(c.tp, c.n_true, c.n_pred).mean()),
        "dsc_global": _ratio(2 * tp, n_true + n_pred, empty),
        "dsc_soft": _ratio(2 * float(c.soft_overlap.sum()), soft_total, soft_total == 0),
        "iou": _ratio(tp, n_true + n_pred - tp, empty),
        "precision": _ratio(tp, n_pred, empty),
        "recall": _ratio(tp, n_true, empty),
        "pred_fg": n_pred / max(int(c.pixels.sum()), 1),
        "true_fg": n_true / max(int(c.pixels.sum()), 1),
        **lesion_scores(total),
        "hd95": float(c.hd95.mean()),
    }


def objective_value(c: ImageCounts, objective: str) -> float:
    """``objective`` (a ``val_*`` name) of these images."""
    return set_metrics(c)[objective.removeprefix("val_")]


def per_image_values(c: ImageCounts, objective: str) -> np.ndarray:
    """The objective of each image alone, shape (N,): what a paired test compares."""
    return np.array([objective_value(c.take(np.array([i])), objective) for i in range(len(c))])


def bootstrap_ci(
    c: ImageCounts, objective: str, *, n: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``objective`` over images resampled with replacement."""
    rng = np.random.default_rng(seed)
    values = [objective_value(c.take(rng.integers(0, len(c), len(c))), objective) for _ in range(n)]
    lo, hi = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)
