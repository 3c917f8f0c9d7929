"""Intervals and comparisons over cases (patients), not images: the issue's two scenarios."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon

from segsweep.data.split import case_ids
from segsweep.evaluation.sets import (
    bootstrap_ci,
    case_values,
    count_images,
    objective_value,
    paired_difference,
    per_image_values,
)
from segsweep.finalize._select import Candidate, choose_champion, cv_score


def square(size: int, lesion: int, found: int) -> tuple[np.ndarray, np.ndarray]:
    """A lesion of ``lesion`` px in one row and a prediction covering ``found`` px of it."""
    truth, prob = np.zeros((4, size), bool), np.zeros((4, size), np.float32)
    truth[1, :lesion] = True
    prob[1, :found] = 0.9
    return truth, prob


def test_a_patients_slices_are_resampled_together():
    # 10 patients x 20 slices; a patient's slices are alike, patients differ: the interval over
    # images was ~4.5x too narrow
    rng = np.random.default_rng(0)
    stems = [f"patient{p:02d}_s{s}" for p in range(10) for s in range(20)]
    truths, probs = [], []
    for _patient in range(10):
        quality = rng.uniform(0.2, 1.0)
        for _ in range(20):
            t, q = square(40, 30, int(round(30 * np.clip(quality + rng.normal(0, 0.05), 0, 1))))
            truths.append(t)
            probs.append(q)
    cases = case_ids(stems, r"^(patient\d+)_")
    by_patient = count_images(truths, probs, cases=cases)
    by_image = count_images(truths, probs)
    assert (by_patient.n_cases, len(by_patient), by_image.n_cases) == (10, 200, 200)
    lo, hi = bootstrap_ci(by_patient, "val_dsc", n=500)
    lo_i, hi_i = bootstrap_ci(by_image, "val_dsc", n=500)
    assert lo <= objective_value(by_patient, "val_dsc") <= hi
    assert (hi - lo) > 3 * (hi_i - lo_i)
    assert len(case_values(by_patient, "val_dsc")) == 10


def _candidate(trial: int, flops: int, truths: list, probs: list) -> Candidate:
    fold = np.arange(len(truths)) % 3
    score = cv_score(
        np.stack(truths), np.stack(probs), fold, "val_dsc", threshold=0.5, match_dilation=0,
        min_lesion_px=0,
    )  # fmt: skip
    return Candidate(trial=trial, params={}, search_value=0.0, flops=flops, score=score)


def test_a_failed_test_is_not_proof_of_equivalence():
    # leader: 0.92 on 20 images, perfect on 10; half the FLOPs: perfect on 20, 0.33 on 10
    leader = [square(60, 25, 21) for _ in range(20)] + [square(60, 25, 25) for _ in range(10)]
    cheap = [square(60, 25, 25) for _ in range(20)] + [square(60, 25, 5) for _ in range(10)]
    big = _candidate(1, 2000, *map(list, zip(*leader, strict=True)))
    small = _candidate(2, 1000, *map(list, zip(*cheap, strict=True)))
    assert big.score.mean == pytest.approx(0.942, abs=0.01)
    assert small.score.mean == pytest.approx(0.778, abs=0.01)
    diff = per_image_values(small.score.counts, "val_dsc") - per_image_values(
        big.score.counts, "val_dsc"
    )
    assert wilcoxon(diff).pvalue >= 0.05  # the old rule made the worse model champion
    champion, compared, why = choose_champion([big, small], "val_dsc", margin=0.01)
    assert champion.trial == 1 and "highest CV mean" in why
    d = compared[2]
    assert d.low < d.difference < d.high < 0 and d.difference == pytest.approx(-0.164, abs=0.01)


def test_paired_difference_needs_the_same_cases():
    t, p = square(10, 5, 5)
    a = count_images([t, t], [p, p])
    b = count_images([t, t], [p, p], cases=["x", "x"])
    assert paired_difference(a, a, "val_dsc", n=50) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same images"):
        paired_difference(a, b, "val_dsc", n=10)


def test_validation_and_folds_know_each_images_patient(make_data_dir):
    from segsweep.config import Config
    from segsweep.data.assign import assign
    from segsweep.trial.workerdata import fold_data, load_worker_data

    rng = np.random.default_rng(1)
    images, masks = {}, {}
    for patient in range(6):
        for s in range(3):
            name = f"patient{patient:02d}_s{s}.png"
            images[name] = rng.integers(0, 255, (16, 16), dtype=np.uint8)
            masks[name] = np.zeros((16, 16), np.uint8)
            masks[name][3:8, 3:8] = 255 * (s % 2)
    root = make_data_dir(images, masks)
    pattern = r"^(patient\d+)_"
    cfg = Config().replace(**{"data.dir": str(root), "data.image_size": 16,
                              "data.group_pattern": pattern})  # fmt: skip
    a = assign(root, val_fraction=0.3, test_fraction=0.0, seed=0, group_pattern=pattern)
    data = load_worker_data(cfg, a)
    assert data.split.val_cases == tuple(s.split("_")[0] for s in data.val_stems)
    fd = fold_data(data, {s: i % 2 for i, s in enumerate([*a.train, *a.val])}, 1)
    assert fd.split.val_cases == tuple(s.split("_")[0] for s in fd.val_stems)
