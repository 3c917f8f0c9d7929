"""Per-image counts, set metrics of images of any size, bootstrap, and the finalize choices."""

from __future__ import annotations

import numpy as np
import pytest

from segsweep.evaluation.metrics import lesion_metrics, segmentation_metrics
from segsweep.evaluation.sets import (
    bootstrap_ci,
    count_images,
    drop_small_components,
    objective_value,
    per_image_values,
    set_metrics,
)
from segsweep.finalize._select import (
    Candidate,
    CvScore,
    choose_champion,
    choose_postprocessing,
    cv_score,
)


def random_set(seed: int, n: int = 12, size: int = 24):
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, size, size), bool)
    for i in range(n):
        for _ in range(rng.integers(0, 3)):
            y, x = rng.integers(2, size - 6, 2)
            truth[i, y : y + rng.integers(2, 5), x : x + rng.integers(2, 5)] = True
    prob = np.clip(truth * 0.8 + rng.normal(0, 0.25, truth.shape), 0, 1).astype(np.float32)
    return truth, prob


def test_set_metrics_of_equal_sized_images_equal_the_validation_metrics():
    truth, prob = random_set(0)
    got = set_metrics(count_images(list(truth), list(prob)))
    expected = segmentation_metrics(truth[..., None], prob[..., None]) | lesion_metrics(
        truth[..., None], prob[..., None]
    )
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_images_of_different_sizes_are_scored_each_at_its_own_size():
    small, big = np.zeros((4, 6), bool), np.zeros((10, 8), bool)
    small[1:3, 1:3] = True
    big[2:6, 2:6] = True
    prob_big = big * 0.9
    counts = count_images([small, big], [small * 0.9, prob_big])
    m = set_metrics(counts)
    assert m["dsc"] == 1.0 and m["lesion_f1"] == 1.0
    assert m["true_fg"] == pytest.approx((4 + 16) / (24 + 80))


def test_drop_small_components_keeps_larger_ones_only():
    pred = np.zeros((6, 6), bool)
    pred[0, 0] = True
    pred[3:6, 3:6] = True
    assert drop_small_components(pred, 2).sum() == 9
    assert drop_small_components(pred, 0).sum() == 10


def test_per_image_values_and_bootstrap_interval_contain_the_value():
    truth, prob = random_set(1, n=30)
    counts = count_images(list(truth), list(prob))
    values = per_image_values(counts, "val_dsc")
    assert values.mean() == pytest.approx(objective_value(counts, "val_dsc"))
    lo, hi = bootstrap_ci(counts, "val_lesion_dsc", n=300)
    assert lo <= objective_value(counts, "val_lesion_dsc") <= hi and lo < hi


def _candidate(trial, flops, truth, prob, fold) -> Candidate:
    score = cv_score(truth, prob, fold, "val_dsc", threshold=0.5, match_dilation=0, min_lesion_px=0)
    return Candidate(trial=trial, params={}, search_value=0.0, flops=flops, score=score)


def test_champion_is_the_cheaper_candidate_when_not_significantly_worse():
    truth, _ = random_set(2, n=20)
    prob = truth.astype(np.float32) * 0.9
    fold = np.arange(20) % 4
    worse = prob.copy()
    worse[np.flatnonzero(truth.any(axis=(1, 2)))[0]] = 0  # one lesion image missed entirely
    big = _candidate(1, 1000, truth, prob, fold)
    small = _candidate(2, 100, truth, worse, fold)
    assert big.score.mean > small.score.mean  # the big one leads on CV, by one image
    champion, p, why = choose_champion([big, small], "val_dsc")
    assert champion.trial == 2 and p[2] >= 0.05 and "fewer FLOPs" in why
    # a much worse cheap candidate is not chosen
    bad = _candidate(3, 10, truth, np.zeros_like(prob), fold)
    champion, p, _ = choose_champion([big, bad], "val_dsc")
    assert champion.trial == 1 and p[3] < 0.05


def test_postprocessing_is_kept_only_when_cv_rises():
    truth, prob = random_set(4, n=16)
    fold = np.arange(16) % 4
    speckled = prob.copy()
    speckled[:, 0, ::3] = 0.9  # isolated false-positive pixels along the top edge
    kw = {"threshold": 0.5, "match_dilation": 0, "min_lesion_px": 0}
    size, means = choose_postprocessing(truth, speckled, fold, "val_lesion_dsc", **kw)
    assert size > 0 and means[size] > means[0]
    clean = truth.astype(np.float32) * 0.9
    size, means = choose_postprocessing(truth, clean, fold, "val_lesion_dsc", **kw)
    assert size == 0


def test_cv_score_reports_mean_and_sd_over_folds():
    truth, prob = random_set(5, n=12)
    score = cv_score(
        truth, prob, np.arange(12) % 3, "val_dsc", threshold=0.5, match_dilation=0,
        min_lesion_px=0,
    )  # fmt: skip
    assert isinstance(score, CvScore) and len(score.folds) == 3
    assert score.mean == pytest.approx(np.mean(score.folds)) and score.sd >= 0
