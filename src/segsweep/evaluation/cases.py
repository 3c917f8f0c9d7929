"""Scoring volume data the way the field does: a patient's volume is one case.

The model sees slices; a case's metrics need its whole volume. So the slice predictions of a
case are stacked back in slice order and scored there, as nnU-Net's 2D configuration does:
``case_dsc`` is each volume's Dice averaged over cases, lesions are 26-connected components of
the volume, and ``case_hd95`` is in millimetres from the voxel spacing. Empty rules are
:mod:`segsweep.evaluation.metrics`' own, applied per case: a case whose truth and prediction
are both empty scores Dice 1 (HD95 0); one with no true lesion and a false positive scores Dice
0 (HD95 the volume's diagonal in mm).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from segsweep.data.slices import CaseGeometry, fit_plane, normalise, slice_index
from segsweep.data.split import SLICE_GROUP_PATTERN, case_ids
from segsweep.data.volumes import Volume
from segsweep.evaluation.sets import ImageCounts, count_images, set_metrics

__all__ = [
    "CaseIndex",
    "case_counts",
    "case_index",
    "case_metrics",
    "model_slices",
    "segment_volume",
    "stack_masks",
]


@dataclass(frozen=True, eq=False)
class CaseIndex:
    """Which rows of a set of slices make each case, in slice order, and its voxel size."""

    cases: tuple[str, ...]
    rows: tuple[np.ndarray, ...]
    spacing: tuple[tuple[float, float, float], ...]  # mm: (slice, row, column)


def case_index(
    stems: Sequence[str],
    volumes: Sequence[CaseGeometry],
    *,
    image_size: int | None,
    resize: str,
) -> CaseIndex:
    """Group slice ``stems`` by case; spacing of the stacked model-resolution volume."""
    geometry = {g.case: g for g in volumes}
    by_case: dict[str, list[tuple[int, int]]] = {}
    names = case_ids(stems, SLICE_GROUP_PATTERN)
    for row, (stem, case) in enumerate(zip(stems, names, strict=True)):
        by_case.setdefault(case, []).append((slice_index(stem), row))
    cases = tuple(sorted(by_case))
    return CaseIndex(
        cases=cases,
        rows=tuple(np.array([r for _, r in sorted(by_case[c])]) for c in cases),
        spacing=tuple(geometry[c].model_spacing(image_size, resize) for c in cases),
    )


def case_counts(
    truth: np.ndarray,
    prob: np.ndarray,
    index: CaseIndex,
    *,
    threshold: float,
    match_dilation: int = 0,
    min_lesion_px: int = 0,
) -> ImageCounts:
    """Counts of each case's stacked volume from slices ``truth`` and ``prob`` (N, S, S[, 1])."""
    truth, prob = np.asarray(truth), np.asarray(prob)
    if truth.ndim == 4:
        truth, prob = truth[..., 0], prob[..., 0]
    return count_images(
        [truth[rows] > 0 for rows in index.rows],
        [prob[rows] for rows in index.rows],
        threshold=threshold,
        match_dilation=match_dilation,
        min_lesion_px=min_lesion_px,
        spacing=index.spacing,
    )


def case_metrics(truth: np.ndarray, prob: np.ndarray, index: CaseIndex, **kw) -> dict[str, float]:
    """Every metric of the set, scored per case, keys prefixed ``case_`` (``case_dsc``,
    ``case_lesion_f1``, ``case_hd95`` in mm, ...)."""
    scores = set_metrics(case_counts(truth, prob, index, **kw))
    return {f"case_{k}": v for k, v in scores.items()}


def model_slices(
    volume: Volume,
    *,
    axis: int,
    image_size: int | None,
    resize: str,
    intensity: str,
    ct_window: tuple[float, ...],
) -> np.ndarray:
    """A volume's slices as the model sees them, ``(slices, S, S, C)``: normalised over the
    volume, cut along ``axis``, each fitted to the model's square as in training (at their own
    size when ``image_size`` is None: patch training)."""
    image = np.moveaxis(normalise(volume.image, intensity, ct_window), axis, 0)
    return np.stack(
        [
            np.stack(
                [fit_plane(s[..., c], image_size, resize, nearest=False)
                 for c in range(s.shape[-1])],
                axis=-1,
            )  # fmt: skip
            for s in image
        ]
    )


def stack_masks(
    slices: np.ndarray,
    *,
    axis: int,
    plane: tuple[int, int],
    probabilities: Callable[[np.ndarray], np.ndarray],
    mask: Callable[[np.ndarray, tuple[int, int]], np.ndarray],
    batch_size: int = 16,
) -> np.ndarray:
    """The lesion mask of a volume from its :func:`model_slices`, uint8 {0, 1} on its own
    voxel grid: each slice predicted, mapped back to its ``plane`` size by ``mask`` (which
    thresholds and post-processes as the model's owner decides) and put back in place."""
    planes = [
        mask(prob, plane) > 0
        for start in range(0, len(slices), batch_size)
        for prob in probabilities(slices[start : start + batch_size])
    ]
    return np.moveaxis(np.stack(planes), 0, axis).astype(np.uint8)


def segment_volume(
    volume: Volume,
    *,
    axis: int,
    image_size: int | None,
    resize: str,
    intensity: str,
    ct_window: tuple[float, ...],
    probabilities: Callable[[np.ndarray], np.ndarray],
    mask: Callable[[np.ndarray, tuple[int, int]], np.ndarray],
    batch_size: int = 16,
) -> np.ndarray:
    """A volume's lesion mask: :func:`model_slices`, then :func:`stack_masks`."""
    slices = model_slices(
        volume,
        axis=axis,
        image_size=image_size,
        resize=resize,
        intensity=intensity,
        ct_window=ct_window,
    )
    plane = tuple(n for i, n in enumerate(volume.image.shape[:3]) if i != axis)
    return stack_masks(
        slices,
        axis=axis,
        plane=plane,
        probabilities=probabilities,
        mask=mask,
        batch_size=batch_size,
    )
