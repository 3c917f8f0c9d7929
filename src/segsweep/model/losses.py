"""Training losses for one lesion channel, written with ``keras.ops`` only.

The model predicts one sigmoid channel, the lesion probability ``p`` of shape ``(B, H, W, 1)``;
masks ``t`` have the same shape with values in {0, 1}. The two-class softmax of a
(background, lesion) setup is the same model: the background probability is ``1 - p`` and the
background truth is ``1 - t``, so a Dice on "channel 0" is a Dice on ``(1 - t, 1 - p)``.

Every function returns one scalar for the batch. With ``per_image=False`` the sums run over the
whole batch flattened together (a batch-pooled Dice, as in the user's setup); with
``per_image=True`` one value is computed per image and the values are averaged. Keras' per-sample
reduction therefore never touches these values: the loss classes return the scalar unchanged.
"""

from __future__ import annotations

import keras
from keras import ops

from segsweep.errors import ConfigError

__all__ = [
    "soft_dice",
    "weighted_dice",
    "dice_ce",
    "focal_tversky",
    "WeightedDice",
    "DiceCE",
    "FocalTversky",
    "get_loss",
    "LOSS_NAMES",
]

LOSS_NAMES = ("weighted_dice", "dice_ce", "focal_tversky")


def _prepare(y_true, y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    if y_pred.dtype in ("float16", "bfloat16"):
        # Sums over a batch of images overflow or lose every small term in half precision.
        y_pred = ops.cast(y_pred, "float32")
    return ops.cast(y_true, y_pred.dtype), y_pred


def _sum_axes(x, per_image: bool):
    """Axes to sum over: all of them (pooled) or all but the batch axis (per image)."""
    return tuple(range(1, len(x.shape))) if per_image else None


def _dice(t, p, *, smooth: float, per_image: bool):
    axes = _sum_axes(p, per_image)
    intersection = ops.sum(t * p, axis=axes)
    total = ops.sum(t, axis=axes) + ops.sum(p, axis=axes)
    return ops.mean((2.0 * intersection + smooth) / (total + smooth))


def soft_dice(y_true, y_pred, *, smooth: float, per_image: bool):
    """Soft Dice coefficient of the lesion channel: ``(2·Σtp + s) / (Σt + Σp + s)``.

    >>> t = [[[[1.0], [0.0]], [[0.0], [0.0]]]]
    >>> p = [[[[0.8], [0.2]], [[0.0], [0.0]]]]
    >>> round(float(soft_dice(t, p, smooth=1.0, per_image=False)), 4)  # (1.6 + 1) / (1 + 1 + 1)
    0.8667
    """
    t, p = _prepare(y_true, y_pred)
    return _dice(t, p, smooth=smooth, per_image=per_image)


def weighted_dice(y_true, y_pred, *, w2: float = 0.7, smooth: float = 1.0, per_image: bool = False):
    """``1 - (w1·D_bg + w2·D_lesion)`` with ``w1 = 1 - w2`` and ``D_bg`` on ``(1 - t, 1 - p)``.

    The user's loss. The background Dice is close to 1 for free when lesions are rare, which is
    why this loss can fall while the lesion Dice stays flat.
    """
    t, p = _prepare(y_true, y_pred)
    d_lesion = _dice(t, p, smooth=smooth, per_image=per_image)
    d_background = _dice(1.0 - t, 1.0 - p, smooth=smooth, per_image=per_image)
    return 1.0 - ((1.0 - w2) * d_background + w2 * d_lesion)


def dice_ce(y_true, y_pred, *, smooth: float = 1.0, per_image: bool = False):
    """``(1 - soft lesion Dice) + binary cross-entropy`` (the cross-entropy is a pixel mean)."""
    t, p = _prepare(y_true, y_pred)
    bce = ops.mean(ops.binary_crossentropy(t, p, from_logits=False))
    return 1.0 - _dice(t, p, smooth=smooth, per_image=per_image) + bce


def focal_tversky(
    y_true,
    y_pred,
    *,
    alpha: float = 0.7,
    beta: float = 0.3,
    gamma: float = 0.75,
    smooth: float = 1.0,
    per_image: bool = False,
):
    """Focal Tversky loss ``(1 - TI)^gamma`` (Abraham & Khan 2019).

    ``TI = (Σtp + s) / (Σtp + α·Σt(1-p) + β·Σ(1-t)p + s)``; ``alpha`` weights false negatives,
    so ``alpha > beta`` favours recall of a rare lesion. With ``per_image=True`` the loss is the
    mean of the per-image losses ``(1 - TI_i)^gamma``.
    """
    t, p = _prepare(y_true, y_pred)
    axes = _sum_axes(p, per_image)
    tp = ops.sum(t * p, axis=axes)
    fn = ops.sum(t * (1.0 - p), axis=axes)
    fp = ops.sum((1.0 - t) * p, axis=axes)
    distance = 1.0 - (tp + smooth) / (tp + alpha * fn + beta * fp + smooth)
    # x**gamma with gamma < 1 has an infinite slope at 0: keep the value exactly 0 for a perfect
    # prediction while giving the gradient a finite path.
    positive = distance > 0.0
    safe = ops.where(positive, distance, 1.0)
    return ops.mean(ops.where(positive, ops.power(safe, gamma), 0.0))


def _require(condition: bool, *, name: str, owner: str, expected: str, value) -> None:
    if not condition:
        raise ConfigError(
            f"The '{name}' parameter of {owner} must be {expected}. Got {value!r} instead."
        )


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_common(owner: str, smooth, per_image) -> None:
    _require(
        _is_number(smooth) and smooth > 0,
        name="smooth",
        owner=owner,
        expected="a float > 0",
        value=smooth,
    )
    _require(
        isinstance(per_image, bool),
        name="per_image",
        owner=owner,
        expected="a bool",
        value=per_image,
    )


class _ScalarLoss(keras.losses.Loss):
    """A loss whose function already returns the batch value; Keras' reduction leaves it as is."""

    def __init__(self, *, name: str, dtype=None):
        super().__init__(name=name, reduction="sum_over_batch_size", dtype=dtype)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            # A pooled Dice has no per-sample values to weight; scaling it would be silently wrong.
            raise ConfigError(
                f"The loss {self.name!r} computes one value per batch and cannot use sample "
                "weights. Got sample_weight instead of None."
            )
        return super().__call__(y_true, y_pred)

    def get_config(self) -> dict:
        return {"name": self.name}


@keras.saving.register_keras_serializable(package="segsweep")
class WeightedDice(_ScalarLoss):
    """``1 - (w1·D_bg + w2·D_lesion)``, see :func:`weighted_dice`.

    One 1×2×2×1 image, t = [1, 0, 0, 0], p = [0.8, 0.2, 0, 0], s = 1, w2 = 0.7:
    D_lesion = (2·0.8 + 1) / (1 + 1 + 1) = 0.8667, D_bg = (2·2.8 + 1) / (3 + 3 + 1) = 0.9429,
    so the loss is 1 - (0.3·0.9429 + 0.7·0.8667) = 0.1105.

    >>> t = [[[[1.0], [0.0]], [[0.0], [0.0]]]]
    >>> p = [[[[0.8], [0.2]], [[0.0], [0.0]]]]
    >>> round(float(WeightedDice()(t, p)), 4)
    0.1105
    """

    def __init__(
        self,
        *,
        w2: float = 0.7,
        smooth: float = 1.0,
        per_image: bool = False,
        name: str = "weighted_dice",
        dtype=None,
    ):
        _require(
            _is_number(w2) and 0.0 <= w2 <= 1.0,
            name="w2",
            owner="WeightedDice",
            expected="a float in [0, 1]",
            value=w2,
        )
        _check_common("WeightedDice", smooth, per_image)
        super().__init__(name=name, dtype=dtype)
        self.w2, self.smooth, self.per_image = float(w2), float(smooth), per_image

    def call(self, y_true, y_pred):
        return weighted_dice(
            y_true, y_pred, w2=self.w2, smooth=self.smooth, per_image=self.per_image
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "w2": self.w2,
            "smooth": self.smooth,
            "per_image": self.per_image,
        }


@keras.saving.register_keras_serializable(package="segsweep")
class DiceCE(_ScalarLoss):
    """``(1 - D_lesion) + BCE``, see :func:`dice_ce`.

    One 1×2×2×1 image, t = [1, 0, 0, 0], p = [0.5, 0.5, 0.5, 0.5], s = 1:
    D_lesion = (1 + 1) / (1 + 2 + 1) = 0.5 and BCE = ln 2 = 0.6931, so the loss is 1.1931.

    >>> t = [[[[1.0], [0.0]], [[0.0], [0.0]]]]
    >>> round(float(DiceCE()(t, [[[[0.5], [0.5]], [[0.5], [0.5]]]])), 4)
    1.1931
    """

    def __init__(
        self, *, smooth: float = 1.0, per_image: bool = False, name: str = "dice_ce", dtype=None
    ):
        _check_common("DiceCE", smooth, per_image)
        super().__init__(name=name, dtype=dtype)
        self.smooth, self.per_image = float(smooth), per_image

    def call(self, y_true, y_pred):
        return dice_ce(y_true, y_pred, smooth=self.smooth, per_image=self.per_image)

    def get_config(self) -> dict:
        return {**super().get_config(), "smooth": self.smooth, "per_image": self.per_image}


@keras.saving.register_keras_serializable(package="segsweep")
class FocalTversky(_ScalarLoss):
    """``(1 - TI)^gamma``, see :func:`focal_tversky`.

    One 1×2×2×1 image, t = [1, 1, 0, 0], p = [1, 0, 0, 0], s = 1, α = 0.7, β = 0.3, γ = 0.75:
    TI = (1 + 1) / (1 + 0.7·1 + 0.3·0 + 1) = 0.7407, so the loss is 0.2593^0.75 = 0.3633.

    >>> t = [[[[1.0], [1.0]], [[0.0], [0.0]]]]
    >>> round(float(FocalTversky()(t, [[[[1.0], [0.0]], [[0.0], [0.0]]]])), 4)
    0.3633
    """

    def __init__(
        self,
        *,
        alpha: float = 0.7,
        beta: float = 0.3,
        gamma: float = 0.75,
        smooth: float = 1.0,
        per_image: bool = False,
        name: str = "focal_tversky",
        dtype=None,
    ):
        for key, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            _require(
                _is_number(value) and value > 0,
                name=key,
                owner="FocalTversky",
                expected="a float > 0",
                value=value,
            )
        _check_common("FocalTversky", smooth, per_image)
        super().__init__(name=name, dtype=dtype)
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.smooth, self.per_image = float(smooth), per_image

    def call(self, y_true, y_pred):
        return focal_tversky(
            y_true,
            y_pred,
            alpha=self.alpha,
            beta=self.beta,
            gamma=self.gamma,
            smooth=self.smooth,
            per_image=self.per_image,
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "beta": self.beta,
            "gamma": self.gamma,
            "smooth": self.smooth,
            "per_image": self.per_image,
        }


def get_loss(
    name: str, *, dice_w2: float = 0.7, smooth: float = 1.0, per_image: bool = False
) -> keras.losses.Loss:
    """The loss called ``name``; ``dice_w2`` is the lesion weight of ``weighted_dice`` only."""
    if name == "weighted_dice":
        return WeightedDice(w2=dice_w2, smooth=smooth, per_image=per_image)
    if name == "dice_ce":
        return DiceCE(smooth=smooth, per_image=per_image)
    if name == "focal_tversky":
        return FocalTversky(smooth=smooth, per_image=per_image)
    choices = ", ".join(repr(choice) for choice in LOSS_NAMES)
    raise ConfigError(f"The 'loss' parameter must be one of {choices}. Got {name!r} instead.")
