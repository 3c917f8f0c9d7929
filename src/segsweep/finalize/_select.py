"""Choosing from out-of-fold predictions: CV scores, a paired test, the champion, TTA and
post-processing — each kept only when cross-validation says it helps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segsweep.evaluation.sets import ImageCounts, count_images, objective_value, per_image_values

__all__ = ["Candidate", "CvScore", "choose_champion", "choose_postprocessing", "cv_score"]

MIN_COMPONENT_GRID = (0, 2, 4, 8, 16, 32, 64)  # pixels at the model's resolution
ALPHA = 0.05


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
) -> CvScore:
    """Objective per held-out fold, from out-of-fold ``prob`` (N, S, S) against ``truth``."""
    counts = count_images(
        list(truth),
        list(prob),
        threshold=threshold,
        match_dilation=match_dilation,
        min_lesion_px=min_lesion_px,
        min_component_px=min_component_px,
    )
    folds = tuple(
        objective_value(counts.take(np.flatnonzero(fold == k)), objective)
        for k in sorted(set(fold.tolist()))
    )
    return CvScore(folds, counts)


def paired_p_value(a: ImageCounts, b: ImageCounts, objective: str) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the per-image objective, a against b."""
    from scipy.stats import wilcoxon

    diff = per_image_values(a, objective) - per_image_values(b, objective)
    if not np.any(diff):
        return 1.0  # identical on every image: no evidence of a difference
    return float(wilcoxon(diff, zero_method="wilcox").pvalue)


def choose_champion(
    candidates: list[Candidate], objective: str
) -> tuple[Candidate, dict[int, float], str]:
    """(champion, p-value of the leader against each other candidate, why).

    The leader has the highest CV mean. A candidate with fewer FLOPs that is not significantly
    worse than the leader (p >= 0.05) is preferred, the cheapest such one: equal accuracy at
    lower cost is the better model to deploy.
    """
    leader = max(candidates, key=lambda c: c.score.mean)
    p = {
        c.trial: paired_p_value(leader.score.counts, c.score.counts, objective)
        for c in candidates
        if c is not leader
    }
    cheaper = [c for c in candidates if c is not leader and c.flops < leader.flops]
    equal = [c for c in cheaper if p[c.trial] >= ALPHA]
    if not equal:
        return leader, p, f"trial {leader.trial} has the highest CV mean {objective}"
    pick = min(equal, key=lambda c: c.flops)
    why = (
        f"trial {pick.trial} needs {leader.flops / pick.flops:.1f}x fewer FLOPs than the CV "
        f"leader trial {leader.trial} and is not significantly worse (Wilcoxon p = "
        f"{p[pick.trial]:.3f} >= {ALPHA})"
    )
    return pick, p, why


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
