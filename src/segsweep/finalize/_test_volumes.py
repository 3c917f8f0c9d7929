"""The test set of volume data, scored once, per case, at each volume's own voxel grid.

What a researcher scores is what ``segsweep predict`` writes: every test volume sliced and
predicted as in training, each slice's probability mapped back to its original size and
thresholded, the slices stacked into the volume's grid, against the label volume: Dice per case
averaged over cases, 26-connected lesions, HD95 in mm. Each case is decoded once and reduced
to its counts, so memory does not grow with the test set.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from segsweep.config import Config
from segsweep.data.assign import Assignment, volume_test_cases
from segsweep.data.slices import cases_of, choose_axis, lesion_mask
from segsweep.data.volumes import allowed_labels, find_cases, read_case
from segsweep.evaluation.cases import model_slices, stack_masks
from segsweep.evaluation.sets import (
    ImageCounts,
    bootstrap_ci,
    count_images,
    objective_value,
    set_metrics,
)
from segsweep.finalize.champion import champion_mask, champion_probabilities

__all__ = ["score_test_volumes"]


def _test_cases(cfg: Config, assignment: Assignment) -> list:
    held = volume_test_cases(Path(cfg.data.dir), assignment.test_dir)
    if held:
        return held
    wanted = cases_of(assignment.test)
    return [c for c in find_cases(Path(cfg.data.dir)) if c.case in wanted]


def _join(parts: list[ImageCounts]) -> ImageCounts:
    """One volume's counts each, as one set in which every volume is its own case."""
    joined = ImageCounts(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(ImageCounts))
    )
    return replace(joined, case=np.arange(len(joined)))


def _slices(volume: Any, settings: Any) -> tuple[np.ndarray, int]:
    """The case's model-resolution slices, prepared once for every variant, and the axis."""
    axis = choose_axis(volume.spacing, settings.slice_axis)
    slices = model_slices(
        volume,
        axis=axis,
        image_size=settings.prepared_size,
        resize=settings.resize,
        intensity=settings.intensity,
        ct_window=tuple(settings.ct_window),
    )
    return slices, axis


def _mask(
    volume: Any, slices: np.ndarray, axis: int, settings: Any, probabilities: Any
) -> np.ndarray:
    return stack_masks(
        slices,
        axis=axis,
        plane=tuple(n for i, n in enumerate(volume.image.shape[:3]) if i != axis),
        probabilities=probabilities,
        mask=lambda prob, size: champion_mask(prob, size, settings),
    )


def score_test_volumes(
    cfg: Config, assignment: Assignment, champion: Any, objective: str
) -> dict[str, Any]:
    """Every metric of ``champion`` on the test cases (keys ``case_*``), the objective's 95 %
    bootstrap interval over cases, and what the fold ensemble added: the fields of
    :class:`~segsweep.finalize._test.TestScore`."""
    s = champion.settings
    plain = replace(s, tta=False, min_component_px=0)
    variants = {
        "champion": (s, champion.probabilities),
        "ensemble": (plain, lambda b: champion_probabilities(champion.nets, b, plain)),
        **{
            f"fold{i}": (plain, lambda b, net=net: champion_probabilities([net], b, plain))
            for i, net in enumerate(champion.nets)
        },
    }
    counts: dict[str, list[ImageCounts]] = {k: [] for k in variants}
    allowed, slices = allowed_labels(Path(cfg.data.dir)), 0
    for case in _test_cases(cfg, assignment):
        volume = read_case(case, allowed=allowed)
        planes, axis = _slices(volume, s)
        slices += len(planes)
        truth = lesion_mask(volume.label, cfg.data.lesion_labels)
        for name, (settings, probabilities) in variants.items():
            mask = _mask(volume, planes, axis, settings, probabilities)
            counts[name].append(
                count_images(
                    [truth],
                    [mask.astype(np.float32)],
                    match_dilation=cfg.metrics.match_dilation,
                    min_lesion_px=cfg.metrics.min_lesion_px,
                    spacing=[volume.spacing],
                    with_hd95=name == "champion",  # the others give an objective only
                )
            )
    joined = {k: _join(v) for k, v in counts.items()}
    metrics = {f"case_{k}": v for k, v in set_metrics(joined["champion"]).items()}
    del metrics["case_dsc_soft"]  # scored on the written 0/1 masks: it would equal dsc_global
    return dict(
        metrics=metrics,
        value=objective_value(joined["champion"], objective),
        ci95=bootstrap_ci(joined["champion"], objective, seed=cfg.search.seed),
        n_images=slices,
        n_cases=len(joined["champion"]),
        single_fold_values=tuple(
            objective_value(joined[f"fold{i}"], objective) for i in range(len(champion.nets))
        ),
        ensemble_value=objective_value(joined["ensemble"], objective),
    )
