"""Choosing from out-of-fold predictions: CV scores, a non-inferiority rule for the champion,
TTA and post-processing — each kept only when cross-validation says it helps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segsweep.evaluation.sets import (
    ImageCounts,
    count_images,
    objective_value,
    paired_difference,
)

__all__ = [
    "Candidate",
    "Comparison",
    "CvScore",
    "choose_champion",
    "choose_postprocessing",
    "cv_score",
]

MIN_COMPONENT_GRID = (0, 2, 4, 8, 16, 32, 64)  # pixels at the model's resolution


@dataclass(frozen=True)
class CvScore:
    folds: tuple[float, ...]  # the objective on each held-out fold
    counts: ImageCounts  # every out-of-fold image, for pooled metrics and paired tests

    @property
    def mean(self) -> float:
        return float(np.mean(self.folds))

    @property
    def sd(self) -> float:
        return float(np.std(self.folds, ddof=1)) if len(self.folds) > 1 else 0.0


@dataclass(frozen=True)
class Candidate:
    trial: int
    params: dict
    search_value: float
    flops: int
    score: CvScore


def cv_score(
    truth: np.ndarray,
    prob: np.ndarray,
    fold: np.ndarray,
    objective: str,
    *,
    threshold: float,
    match_dilation: int,
    min_lesion_px: int,
    min_component_px: int = 0,
    cases: list | None = None,
    spacing: list | None = None,
) -> CvScore:
    """Objective per held-out fold, from out-of-fold ``prob`` (N, S, S) against ``truth``;
    ``cases`` names each image's case (none: every image is one). Volume data come as lists of
    case volumes, each one case, with their voxel ``spacing``."""
    counts = count_images(
        list(truth),
        list(prob),
        threshold=threshold,
        match_dilation=match_dilation,
        min_lesion_px=min_lesion_px,
        min_component_px=min_component_px,
        cases=cases,
        spacing=spacing,
    )
    folds = tuple(
        objective_value(counts.take(np.flatnonzero(fold == k)), objective)
        for k in sorted(set(fold.tolist()))
    )
    return CvScore(folds, counts)


@dataclass(frozen=True)
class Comparison:
    """A candidate's pooled out-of-fold objective minus the leader's, with its 95 % paired
    bootstrap interval over cases."""

    difference: float
    low: float
    high: float


def choose_champion(
    candidates: list[Candidate], objective: str, *, margin: float, seed: int = 0
) -> tuple[Candidate, dict[int, Comparison], str]:
    """(champion, each other candidate's comparison with the leader, why).

    The leader has the highest CV mean. A candidate with fewer FLOPs wins only if it is shown
    not to be worse by more than ``margin``: the lower bound of the interval of its difference
    to the leader lies above ``-margin`` (non-inferiority). A test that merely fails to find a
    difference proves nothing: few cases or a noisy candidate would pass it. Among those shown
    non-inferior, the cheapest wins: equal accuracy at lower cost is the better model to deploy.
    """
    leader = max(candidates, key=lambda c: c.score.mean)
    compared = {
        c.trial: Comparison(
            *paired_difference(c.score.counts, leader.score.counts, objective, seed=seed)
        )
        for c in candidates
        if c is not leader
    }
    cheaper = [c for c in candidates if c is not leader and c.flops < leader.flops]
    fine = [c for c in cheaper if compared[c.trial].low > -margin]
    if not fine:
        return leader, compared, f"trial {leader.trial} has the highest CV mean {objective}"
    pick = min(fine, key=lambda c: c.flops)
    d = compared[pick.trial]
    why = (
        f"trial {pick.trial} needs {leader.flops / pick.flops:.1f}x fewer FLOPs than the CV "
        f"leader trial {leader.trial} and is non-inferior: {objective} difference "
        f"{d.difference:+.4f} (95 % CI over cases {d.low:+.4f} to {d.high:+.4f}, lower bound "
        f"above -{margin:g}, the margin)"
    )
    return pick, compared, why


def choose_postprocessing(
    truth: np.ndarray, prob: np.ndarray, fold: np.ndarray, objective: str, **kw: float
) -> tuple[int, dict[int, float]]:
    """The minimum component size that maximises the CV mean (0 unless one beats no removal),
    and the CV mean at every size tried."""
    means = {
        s: cv_score(truth, prob, fold, objective, min_component_px=s, **kw).mean
        for s in MIN_COMPONENT_GRID
    }
    best = max(means, key=lambda s: (means[s], -s))
    return (best if means[best] > means[0] else 0), means
