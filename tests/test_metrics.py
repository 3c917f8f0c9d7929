"""Hard validation metrics against scikit-learn and hand-worked empty cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, jaccard_score, precision_score, recall_score

from segsweep.errors import ConfigError
from segsweep.evaluation.metrics import per_image_dice, segmentation_metrics


def masks(*images):
    """Images given as flat 2×2 pixel lists → array (N, 2, 2)."""
    return np.asarray(images, dtype="float32").reshape(len(images), 2, 2)


@pytest.fixture
def random_set():
    rng = np.random.default_rng(1)
    y_true = rng.random((6, 16, 16, 1)) < 0.15
    prob = np.clip(rng.random((6, 16, 16, 1)) * 0.6 + 0.4 * y_true, 0.0, 1.0).astype("float32")
    return y_true, prob


def test_pooled_metrics_match_sklearn(random_set):
    y_true, prob = random_set
    truth, pred = y_true.ravel(), prob.ravel() > 0.5
    got = segmentation_metrics(y_true, prob)
    assert got["dsc_global"] == pytest.approx(f1_score(truth, pred))
    assert got["iou"] == pytest.approx(jaccard_score(truth, pred))
    assert got["precision"] == pytest.approx(precision_score(truth, pred))
    assert got["recall"] == pytest.approx(recall_score(truth, pred))


def test_dsc_is_the_mean_of_per_image_dice_and_matches_sklearn(random_set):
    y_true, prob = random_set
    per_image = per_image_dice(y_true, prob)
    expected = [f1_score(t.ravel(), p.ravel() > 0.5) for t, p in zip(y_true, prob, strict=True)]
    assert per_image == pytest.approx(expected)
    assert segmentation_metrics(y_true, prob)["dsc"] == pytest.approx(np.mean(expected))


def test_per_image_dice_empty_cases():
    y_true = masks([0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0])
    prob = masks([0.1, 0, 0, 0], [0.9, 0, 0, 0], [0, 0, 0, 0], [0.9, 0, 0.9, 0])
    # empty/empty, empty truth/lesion predicted, lesion/nothing predicted, 2·1 / (2 + 2)
    assert per_image_dice(y_true, prob) == pytest.approx([1.0, 0.0, 0.0, 0.5])


def test_predicting_nothing_scores_zero_on_a_set_with_lesions():
    got = segmentation_metrics(masks([1, 0, 0, 0], [0, 0, 0, 0]), masks([0.4] * 4, [0.0] * 4))
    assert got["dsc"] == pytest.approx(0.5)  # the lesion-free image scores 1, the other 0
    assert (got["dsc_global"], got["iou"], got["precision"], got["recall"]) == (0, 0, 0, 0)
    assert got["pred_fg"] == 0.0


def test_an_all_empty_set_scores_one_everywhere():
    got = segmentation_metrics(masks([0] * 4, [0] * 4), masks([0.0] * 4, [0.0] * 4))
    for key in ("dsc", "dsc_global", "dsc_soft", "iou", "precision", "recall"):
        assert got[key] == 1.0, key


def test_soft_dice_and_fractions_hand_worked():
    y_true = masks([1, 0, 0, 0], [1, 1, 0, 0])
    prob = masks([0.8, 0.2, 0, 0], [0.6, 0.4, 0.4, 0])
    got = segmentation_metrics(y_true, prob)
    # Σtp = 0.8 + 0.6 + 0.4 = 1.8, Σt = 3, Σp = 2.4, no smoothing.
    assert got["dsc_soft"] == pytest.approx(2 * 1.8 / (3 + 2.4))
    # Predicted above 0.5: pixels 0.8 and 0.6 → 2 of 8; truth 3 of 8.
    assert got["pred_fg"] == pytest.approx(2 / 8)
    assert got["true_fg"] == pytest.approx(3 / 8)


def test_threshold_is_strict_and_channel_axis_optional():
    y_true = masks([1, 0, 0, 0])
    at_threshold = masks([0.5, 0, 0, 0])
    assert per_image_dice(y_true, at_threshold) == pytest.approx([0.0])
    assert per_image_dice(y_true, at_threshold, threshold=0.4) == pytest.approx([1.0])
    assert segmentation_metrics(y_true[..., None], at_threshold[..., None]) == (
        segmentation_metrics(y_true, at_threshold)
    )


def test_bad_threshold_is_a_config_error():
    with pytest.raises(ConfigError, match="Got 1.5 instead"):
        segmentation_metrics(masks([1, 0, 0, 0]), masks([1, 0, 0, 0]), threshold=1.5)


@pytest.mark.parametrize(
    ("y_true", "prob"),
    [
        (masks([1, 0, 0, 0]), masks([np.nan, 0, 0, 0])),
        (masks([2, 0, 0, 0]), masks([1, 0, 0, 0])),
        (masks([1, 0, 0, 0]), masks([1, 0, 0, 0], [1, 0, 0, 0])),
    ],
    ids=["nan-probability", "mask-not-binary", "shape-mismatch"],
)
def test_invalid_inputs_fail_loudly(y_true, prob):
    with pytest.raises(ValueError):
        segmentation_metrics(y_true, prob)
