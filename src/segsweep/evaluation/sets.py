"""Scoring a set of predictions image by image: pooled metrics, per-case values, bootstrap.

:mod:`~segsweep.evaluation.metrics` scores one validation batch of equal-sized masks. Finalizing a
study needs more: test images keep their own original sizes, the champion is compared with the other
candidates case by case, and the test value gets a bootstrap confidence interval. So each image
is reduced once to the counts every metric is built from, and any metric of any subset of images
is computed from those counts.

The statistical unit is the case (a patient: the images sharing a ``data.group_pattern`` group,
or a volume's slices), not the image: slices of one patient are not independent, and resampling
them one by one made intervals several times too narrow. Without groups every image is a case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from segsweep.evaluation.metrics import (
    hd95,
    label_lesions,
    lesion_counts,
    lesion_scores,
    lesion_table,
)

__all__ = [
    "ImageCounts",
    "count_images",
    "drop_small_components",
    "bootstrap_ci",
    "case_values",
    "paired_difference",
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
    lesions: np.ndarray  # (N, 5): each image's LesionCounts as a row of metrics.lesion_table
    case: np.ndarray  # each image's case, 0..K-1: the unit of the bootstrap and paired tests

    def __len__(self) -> int:
        return len(self.tp)

    @property
    def n_cases(self) -> int:
        return len(np.unique(self.case))

    def take(self, idx: np.ndarray) -> ImageCounts:
        return ImageCounts(
            *(getattr(self, f)[idx] for f in ("tp", "n_true", "n_pred", "pixels")),
            self.soft_overlap[idx],
            self.soft_total[idx],
            self.hd95[idx],
            self.lesions[idx],
            self.case[idx],
        )

    def members(self) -> list[np.ndarray]:
        """The image positions of each case, in case order."""
        order = np.argsort(self.case, kind="stable")
        _, starts = np.unique(self.case[order], return_index=True)
        return np.split(order, starts[1:])


def _draw(c: ImageCounts, members: list[np.ndarray], draw: np.ndarray) -> ImageCounts:
    """The cases ``draw`` (positions in ``members``, repeats allowed) as a set of new cases:
    a case drawn twice counts as two cases, as the bootstrap requires."""
    idx = np.concatenate([members[k] for k in draw])
    sizes = [len(members[k]) for k in draw]
    return replace(c.take(idx), case=np.repeat(np.arange(len(draw)), sizes))


def drop_small_components(pred: np.ndarray, min_px: int) -> np.ndarray:
    """``pred`` without its fully connected components (8 in 2-D, 26 in 3-D) smaller than
    ``min_px`` pixels (voxels)."""
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
    cases: Sequence | None = None,
    spacing: Sequence[tuple[float, ...]] | None = None,
    with_hd95: bool = True,
) -> ImageCounts:
    """Counts of each (truth, probability) pair of 2-D arrays; sizes may differ between images.

    ``cases`` names each image's case (e.g. :func:`segsweep.data.split.case_ids`); without it
    every image is its own case (as is each volume, below).

    ``min_component_px`` removes predicted components smaller than that before scoring (the
    post-processing finalize may choose). Either minimum may be one number per image (sizes
    defined at the model's resolution, scaled to each image's own), and so may the dilation.
    Pairs may be volumes (a case each): lesions are then 26-connected and ``spacing`` gives
    each one's voxel size in mm, so that ``hd95`` is in mm. ``with_hd95=False`` leaves HD95 out
    (NaN), the costly part of a full-resolution volume, where only an objective is wanted (no
    objective is a distance).
    """
    n = len(truths)
    per_image = [
        [v] * n if isinstance(v, int) else list(v)
        for v in (match_dilation, min_lesion_px, min_component_px)
    ]
    rows = []
    steps = [None] * n if spacing is None else list(spacing)
    for truth, prob, dilation, min_lesion, min_comp, step in zip(
        truths, probs, *per_image, steps, strict=True
    ):
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
                hd95(truth, pred, step) if with_hd95 else np.nan,
                lesion_counts(truth, pred, match_dilation=dilation, min_lesion_px=min_lesion),
            )
        )
    columns = list(zip(*rows, strict=True)) if rows else [()] * 8
    case = np.arange(n) if cases is None else np.unique(np.asarray(cases), return_inverse=True)[1]
    return ImageCounts(
        *(np.asarray(c, dtype=np.int64) for c in columns[:4]),
        *(np.asarray(c, dtype=np.float64) for c in columns[4:7]),
        lesion_table(columns[7]),
        np.asarray(case, dtype=np.int64).reshape(-1),
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
    # each case's tallies: its images' rows summed (a case's slices pooled)
    _, case = np.unique(c.case, return_inverse=True)
    lesions = np.zeros((case.max(initial=-1) + 1, c.lesions.shape[1]))
    np.add.at(lesions, case, c.lesions)
    return {
        "dsc": float(_dice(c.tp, c.n_true, c.n_pred).mean()),
        "dsc_global": _ratio(2 * tp, n_true + n_pred, empty),
        "dsc_soft": _ratio(2 * float(c.soft_overlap.sum()), soft_total, soft_total == 0),
        "iou": _ratio(tp, n_true + n_pred - tp, empty),
        "precision": _ratio(tp, n_pred, empty),
        "recall": _ratio(tp, n_true, empty),
        "pred_fg": n_pred / max(int(c.pixels.sum()), 1),
        "true_fg": n_true / max(int(c.pixels.sum()), 1),
        **lesion_scores(lesions),
        "hd95": float(c.hd95.mean()),
    }


def objective_value(c: ImageCounts, objective: str) -> float:
    """``objective`` (a ``val_*`` name) of these images; a ``val_case_*`` objective of counts
    whose every row is a case's volume (see :mod:`segsweep.evaluation.cases`)."""
    return set_metrics(c)[objective.removeprefix("val_").removeprefix("case_")]


def per_image_values(c: ImageCounts, objective: str) -> np.ndarray:
    """The objective of each image alone, shape (N,)."""
    return np.array([objective_value(c.take(np.array([i])), objective) for i in range(len(c))])


def case_values(c: ImageCounts, objective: str) -> np.ndarray:
    """The objective of each case alone (its images pooled as the objective defines), shape
    (K,), in case order: what a paired test over cases compares."""
    return np.array([objective_value(c.take(m), objective) for m in c.members()])


def bootstrap_ci(
    c: ImageCounts, objective: str, *, n: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``objective`` over cases resampled with replacement
    (each drawn case brings all its images)."""
    rng, members = np.random.default_rng(seed), c.members()
    k = len(members)
    draws = (_draw(c, members, rng.integers(0, k, k)) for _ in range(n))
    values = [objective_value(d, objective) for d in draws]
    lo, hi = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def paired_difference(
    a: ImageCounts,
    b: ImageCounts,
    objective: str,
    *,
    n: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """``objective(a) - objective(b)`` of two predictions of the same images, and its paired
    percentile bootstrap interval: both resampled with the same draws of cases."""
    if not np.array_equal(a.case, b.case):
        raise ValueError("a paired difference needs the same images, in the same cases")
    rng, members = np.random.default_rng(seed), a.members()
    k = len(members)
    diffs = []
    for _ in range(n):
        draw = rng.integers(0, k, k)
        diffs.append(
            objective_value(_draw(a, members, draw), objective)
            - objective_value(_draw(b, members, draw), objective)
        )
    lo, hi = np.percentile(diffs, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return objective_value(a, objective) - objective_value(b, objective), float(lo), float(hi)
