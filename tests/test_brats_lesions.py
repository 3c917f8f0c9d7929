"""segsweep's BraTS lesion-wise Dice against a transcription of the organisers' code, and the
issue's two hand cases that the pooled version got wrong."""

from __future__ import annotations

import numpy as np
import pytest
from brats_reference import lesion_wise_dice

from segsweep.evaluation.lesions import case_lesion_dsc, lesion_counts
from segsweep.evaluation.metrics import lesion_metrics


def random_case(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Blobby truth and a prediction that shifts, shrinks, drops and invents lesions."""
    truth = np.zeros(shape, bool)
    for _ in range(rng.integers(0, 5)):
        corner = [rng.integers(0, s - 2) for s in shape]
        size = [rng.integers(2, 6) for _ in shape]
        truth[tuple(slice(c, c + z) for c, z in zip(corner, size, strict=True))] = True
    noise = rng.random(shape) < rng.choice([0.0, 0.0, 0.002, 0.01])
    shifted = np.roll(truth, tuple(rng.integers(-1, 2, len(shape))), axis=tuple(range(len(shape))))
    keep = rng.random(shape) > rng.choice([0.0, 0.0, 0.3, 1.0])  # 1.0: predicts no lesion pixel
    return truth, (shifted & keep) | noise


@pytest.mark.parametrize(("shape", "n"), [((24, 24), 160), ((12, 12, 10), 80)], ids=["2d", "3d"])
def test_equals_the_organisers_code_on_random_cases(shape, n):
    rng = np.random.default_rng(2023)
    for i in range(n):
        truth, pred = random_case(rng, shape)
        dilation = int(rng.integers(1, 4))  # BraTS uses 1 and 3; 0 differs on purpose
        thresh = int(rng.choice([0, 2, 6]))  # BraTS keeps lesions of more than thresh voxels
        c = lesion_counts(truth, pred, match_dilation=dilation, min_lesion_px=thresh + 1)
        expected = lesion_wise_dice(pred, truth, dilation, thresh)
        assert case_lesion_dsc(c) == pytest.approx(expected, abs=1e-12), (i, dilation, thresh)


def test_the_set_value_is_the_mean_over_cases_not_pooled():
    # one image at 2/3 (half of its one lesion found) and nine clean empty images
    truth = np.zeros((10, 8, 8), bool)
    pred = np.zeros_like(truth)
    truth[0, 1:3, 1:3] = pred[0, 1:3, 1:2] = True
    m = lesion_metrics(truth, pred.astype(np.float32))
    assert m["lesion_dsc_pooled"] == pytest.approx(2 / 3)  # the number segsweep gave before
    assert m["lesion_dsc"] == pytest.approx((2 / 3 + 9) / 10)  # 0.967, as BraTS averages
    one_case = lesion_metrics(truth, pred.astype(np.float32), cases=[0] * 10)
    assert one_case["lesion_dsc"] == pytest.approx(2 / 3)  # ten slices of one patient


def test_true_lesions_whose_dilations_touch_are_one_lesion():
    # two 1x2 lesions 3 px apart, the prediction covers only the first
    truth = np.zeros((5, 12), bool)
    truth[2, 2:4] = truth[2, 7:9] = True
    pred = np.zeros_like(truth)
    pred[2, 2:4] = True
    assert case_lesion_dsc(lesion_counts(truth, pred, match_dilation=1)) == pytest.approx(1 / 2)
    merged = lesion_counts(truth, pred, match_dilation=2)  # dilations meet: one lesion of 4 px
    assert merged.true == 1 and case_lesion_dsc(merged) == pytest.approx(2 * 2 / (4 + 2))
    assert lesion_wise_dice(pred, truth, 2, 0) == pytest.approx(2 / 3)
