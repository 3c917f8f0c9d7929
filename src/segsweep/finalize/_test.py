"""The test set, scored once: the champion's masks at each image's original size.

What a researcher would score is what ``segsweep predict`` writes: every test image prepared as
in training, the champion's probability mapped back to the image's own size, thresholded and
post-processed there, against the original mask. The lesion-wise size threshold and matching
dilation are defined at the model's resolution and scaled to each image's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segsweep.config import Config
from segsweep.data.assign import Assignment
from segsweep.data.geometry import area_scale
from segsweep.data.io import find_pairs, prepare_image, read_image, read_mask
from segsweep.data.source import study_case_ids
from segsweep.data.volumes import is_volume_dir
from segsweep.evaluation.sets import (
    ImageCounts,
    bootstrap_ci,
    count_images,
    objective_value,
    set_metrics,
)
from segsweep.finalize.champion import champion_mask, champion_probabilities

__all__ = ["TestScore", "score_test"]


@dataclass(frozen=True)
class TestScore:
    metrics: dict[str, float]  # the test_* counterparts of every val_* metric (without prefix)
    value: float
    ci95: tuple[float, float]
    n_images: int  # images scored (for volumes: slices)
    n_cases: int  # the bootstrap's unit: a patient's images (a volume) are one case
    single_fold_values: tuple[float, ...]  # each fold model alone, no TTA or post-processing
    ensemble_value: float  # the fold models averaged, no TTA or post-processing


def _test_pairs(cfg: Config, assignment: Assignment) -> list:
    folder = Path(assignment.test_dir or cfg.data.dir)
    wanted = set(assignment.test)
    return [p for p in find_pairs(folder) if p.stem in wanted]


def _scale(size: tuple[int, int], cfg: Config) -> float:
    """How many of this image's pixels one model pixel covers, along a side."""
    return float(np.sqrt(area_scale(size, cfg.data.prepared_size, cfg.data.resize)))


def score_test(
    cfg: Config,
    assignment: Assignment,
    champion: Any,
    objective: str,
    *,
    batch_size: int = 16,
) -> TestScore:
    """Every metric of ``champion`` (a loaded :class:`~segsweep.finalize.champion.Champion`) on the
    test set, the objective's 95 % bootstrap interval, and what the fold ensemble added."""
    if is_volume_dir(cfg.data.dir):
        from segsweep.finalize._test_volumes import score_test_volumes

        return TestScore(**score_test_volumes(cfg, assignment, champion, objective))
    s = champion.settings
    truths, sizes, images = [], [], []
    pairs = _test_pairs(cfg, assignment)
    cases = study_case_ids(cfg.data, [p.stem for p in pairs])
    for pair in pairs:
        raw = read_image(pair.image)
        truths.append(read_mask(pair.mask, threshold=cfg.data.mask_threshold))
        sizes.append(raw.shape[:2])
        images.append(
            prepare_image(
                raw,
                image_size=s.prepared_size,
                channels=s.channels,
                intensity=s.intensity,
                name=pair.image.name,
                resize=s.resize,
            )
        )
    prob = champion_probabilities(champion.nets, images, s, batch_size=batch_size)
    masks = [champion_mask(p, size, s) for p, size in zip(prob, sizes, strict=True)]
    counts = _counts(cfg, truths, masks, sizes, cases)
    metrics = set_metrics(counts)
    del metrics["dsc_soft"]  # scored on the written 0/1 masks: it would equal dsc_global
    # The ensemble's own contribution, before TTA and post-processing: each fold model alone
    # against their average, on the same test images.
    plain = {**s.__dict__, "tta": False, "min_component_px": 0}
    plain_settings = type(s)(**plain)

    def value_of(nets: list) -> float:
        p = champion_probabilities(nets, images, plain_settings, batch_size=batch_size)
        m = [champion_mask(q, size, plain_settings) for q, size in zip(p, sizes, strict=True)]
        return objective_value(_counts(cfg, truths, m, sizes, cases), objective)

    return TestScore(
        metrics=metrics,
        value=metrics[objective.removeprefix("val_")],
        ci95=bootstrap_ci(counts, objective, seed=cfg.search.seed),
        n_images=len(truths),
        n_cases=counts.n_cases,
        single_fold_values=tuple(value_of([net]) for net in champion.nets),
        ensemble_value=value_of(champion.nets),
    )


def _counts(cfg: Config, truths: list, masks: list, sizes: list, cases: list) -> ImageCounts:
    return count_images(
        truths,
        [m / 255.0 for m in masks],
        threshold=0.5,
        match_dilation=[round(cfg.metrics.match_dilation * _scale(z, cfg)) for z in sizes],
        min_lesion_px=[round(cfg.metrics.min_lesion_px * _scale(z, cfg) ** 2) for z in sizes],
        cases=cases,
    )
