"""Loss values on tiny hand-worked tensors (MONAI style), and the Keras wrappers around them."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from segsweep.errors import ConfigError
from segsweep.model.losses import (
    DiceCE,
    FocalTversky,
    WeightedDice,
    dice_ce,
    focal_tversky,
    get_loss,
    soft_dice,
    weighted_dice,
)


def batch(*images):
    """Images given as flat 2×2 pixel lists → array (B, 2, 2, 1)."""
    return np.asarray(images, dtype="float32").reshape(len(images), 2, 2, 1)


LN2 = math.log(2.0)

# One image: t = [1, 0, 0, 0], p = [0.8, 0.2, 0, 0], s = 1.
#   lesion Dice     (2·0.8 + 1) / (1 + 1 + 1)              = 2.6 / 3
#   background Dice (2·2.8 + 1) / (3 + 3 + 1)              = 6.6 / 7
#   BCE             (2·(-ln 0.8) + 2·0) / 4
#   Tversky index   (0.8 + 1) / (0.8 + 0.7·0.2 + 0.3·0.2 + 1) = 1.8 / 2
ONE = (batch([1, 0, 0, 0]), batch([0.8, 0.2, 0, 0]))
# Two images; the first is predicted perfectly, the second has no lesion and one 0.5 pixel.
#   pooled:    Σtp = 2, Σt = 2, Σp = 2.5; background Σ(1-t)(1-p) = 5.5, Σ(1-t) = 6, Σ(1-p) = 5.5
#   per image: lesion Dice 1 and (0 + 1) / (0.5 + 1); background Dice 1 and (7 + 1) / (4 + 3.5 + 1)
TWO = (batch([1, 1, 0, 0], [0, 0, 0, 0]), batch([1, 1, 0, 0], [0.5, 0, 0, 0]))

CASES = [
    # (function, kwargs, tensors, expected)
    (soft_dice, {"smooth": 1.0, "per_image": False}, ONE, 2.6 / 3),
    (soft_dice, {"smooth": 1.0, "per_image": True}, ONE, 2.6 / 3),
    (soft_dice, {"smooth": 1.0, "per_image": False}, TWO, 5 / 5.5),
    (soft_dice, {"smooth": 1.0, "per_image": True}, TWO, (1 + 1 / 1.5) / 2),
    (weighted_dice, {}, ONE, 1 - (0.3 * 6.6 / 7 + 0.7 * 2.6 / 3)),
    (weighted_dice, {"w2": 1.0}, ONE, 1 - 2.6 / 3),
    (weighted_dice, {"per_image": False}, TWO, 1 - (0.3 * 12 / 12.5 + 0.7 * 5 / 5.5)),
    (
        weighted_dice,
        {"per_image": True},
        TWO,
        1 - (0.3 * (1 + 8 / 8.5) / 2 + 0.7 * (1 + 1 / 1.5) / 2),
    ),
    (dice_ce, {}, ONE, 1 - 2.6 / 3 + 2 * -math.log(0.8) / 4),
    (dice_ce, {"per_image": False}, TWO, 1 - 5 / 5.5 + LN2 / 8),
    (dice_ce, {"per_image": True}, TWO, 1 - (1 + 1 / 1.5) / 2 + LN2 / 8),
    (focal_tversky, {}, ONE, (1 - 1.8 / 2) ** 0.75),
    (focal_tversky, {"gamma": 1.0}, ONE, 1 - 1.8 / 2),
    (focal_tversky, {"per_image": False}, TWO, (1 - 3 / 3.15) ** 0.75),
    (focal_tversky, {"per_image": True}, TWO, (0 + (1 - 1 / 1.15) ** 0.75) / 2),
]


@pytest.mark.parametrize(("fn", "kwargs", "tensors", "expected"), CASES)
def test_hand_worked_values(fn, kwargs, tensors, expected):
    y_true, y_pred = tensors
    assert float(fn(y_true, y_pred, **kwargs)) == pytest.approx(expected, abs=1e-5)


def test_pooled_and_per_image_differ_on_two_images():
    y_true, y_pred = TWO
    pooled = float(weighted_dice(y_true, y_pred, per_image=False))
    per_image = float(weighted_dice(y_true, y_pred, per_image=True))
    assert abs(pooled - per_image) > 0.04


@pytest.mark.parametrize("per_image", [False, True])
def test_perfect_prediction_costs_nothing(per_image):
    y = batch([1, 0, 0, 0], [0, 0, 0, 0])
    assert float(weighted_dice(y, y, per_image=per_image)) == pytest.approx(0.0, abs=1e-6)
    assert float(focal_tversky(y, y, per_image=per_image)) == 0.0
    # Only the clipped cross-entropy of a saturated prediction is left.
    assert float(dice_ce(y, y, per_image=per_image)) == pytest.approx(0.0, abs=1e-5)


def test_focal_tversky_gradient_is_finite_at_a_perfect_prediction():
    y = tf.constant(batch([1, 0, 0, 0]))
    p = tf.Variable(batch([1, 0, 0, 0]))
    with tf.GradientTape() as tape:
        loss = focal_tversky(y, p, gamma=0.75)
    assert np.isfinite(tape.gradient(loss, p).numpy()).all()


def numpy_pooled_weighted_dice(t, p, w2=0.7, s=1.0):
    def dice(a, b):
        return (2 * (a * b).sum() + s) / (a.sum() + b.sum() + s)

    return 1 - ((1 - w2) * dice(1 - t, 1 - p) + w2 * dice(t, p))


def test_fit_reports_the_pooled_value_not_a_per_sample_mean():
    rng = np.random.default_rng(0)
    y_true = (rng.random((5, 8, 8, 1)) < 0.1).astype("float32")
    y_pred = rng.random((5, 8, 8, 1)).astype("float32")
    expected = numpy_pooled_weighted_dice(y_true.astype(float), y_pred.astype(float))
    # A model that outputs its input, so evaluate() sees y_pred exactly.
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(loss=get_loss("weighted_dice"))
    reported = model.evaluate(y_pred, y_true, batch_size=5, verbose=0)
    assert reported == pytest.approx(expected, rel=1e-5)
    pairs = zip(y_true, y_pred, strict=True)
    per_sample_mean = np.mean([numpy_pooled_weighted_dice(t, p) for t, p in pairs])
    assert abs(reported - per_sample_mean) > 1e-3


LOSS_CLASSES = [
    (
        WeightedDice(w2=0.6, smooth=0.5, per_image=True),
        lambda t, p: weighted_dice(t, p, w2=0.6, smooth=0.5, per_image=True),
    ),
    (DiceCE(smooth=2.0), lambda t, p: dice_ce(t, p, smooth=2.0)),
    (
        FocalTversky(alpha=0.6, beta=0.4, gamma=1.5),
        lambda t, p: focal_tversky(t, p, alpha=0.6, beta=0.4, gamma=1.5),
    ),
]


@pytest.mark.parametrize(("loss", "fn"), LOSS_CLASSES)
def test_class_value_equals_the_function(loss, fn):
    y_true, y_pred = TWO
    assert float(loss(y_true, y_pred)) == pytest.approx(float(fn(y_true, y_pred)), abs=1e-7)


@pytest.mark.parametrize(("loss", "fn"), LOSS_CLASSES)
def test_config_round_trip(loss, fn):
    y_true, y_pred = TWO
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    assert float(restored(y_true, y_pred)) == pytest.approx(float(loss(y_true, y_pred)))


def test_get_loss_builds_each_name_with_its_settings():
    weighted = get_loss("weighted_dice", dice_w2=0.9, smooth=0.1, per_image=True)
    assert isinstance(weighted, WeightedDice)
    assert (weighted.w2, weighted.smooth, weighted.per_image) == (0.9, 0.1, True)
    assert isinstance(get_loss("dice_ce"), DiceCE)
    assert isinstance(get_loss("focal_tversky"), FocalTversky)


def test_unknown_loss_name_is_a_config_error():
    with pytest.raises(ConfigError) as excinfo:
        get_loss("x")
    assert str(excinfo.value) == (
        "The 'loss' parameter must be one of 'weighted_dice', 'dice_ce', 'focal_tversky'. "
        "Got 'x' instead."
    )


@pytest.mark.parametrize(
    ("make", "shown"),
    [
        (lambda: WeightedDice(w2=1.5), "Got 1.5 instead"),
        (lambda: DiceCE(smooth=0.0), "Got 0.0 instead"),
        (lambda: FocalTversky(gamma=-1.0), "Got -1.0 instead"),
        (lambda: get_loss("dice_ce", per_image="yes"), "Got 'yes' instead"),
    ],
)
def test_bad_settings_are_config_errors_that_show_the_value(make, shown):
    with pytest.raises(ConfigError, match=shown):
        make()


def test_sample_weights_are_refused_rather_than_misapplied():
    y_true, y_pred = TWO
    with pytest.raises(ConfigError, match="sample weights"):
        WeightedDice()(y_true, y_pred, sample_weight=np.ones(2))
