"""UNet++ (Zhou et al. 2018) for one lesion channel, built with the Keras 3 functional API.

Node ``X(i, j)`` sits at encoder level ``i`` (``base_filters · 2**i`` filters, resolution halved
``i`` times) and dense skip column ``j``. ``X(i, 0)`` is the backbone; every other node is a conv
block applied to ``concat[X(i, 0), ..., X(i, j-1), up(X(i+1, j-1))]``. A 1×1 sigmoid head on a
top node ``X(0, j)`` is named ``head_0_j``; the deepest one, ``head_0_<depth>``, is the inference
head. Every convolution kernel (3×3, transposed 2×2 and 1×1 heads) carries the same L2 penalty,
which Keras adds to the reported loss.
"""

from __future__ import annotations

import keras
from keras import layers

from segsweep.model.shapes import (
    MAX_DEPTH,
    check_shape_args,
    count_flops,
    is_number,
    parameter_error,
)

__all__ = ["build_unetpp", "inference_model", "float32_model", "count_flops", "MAX_DEPTH"]


def _check_block_args(*, dropout, batch_norm, l2, deep_supervision, bn_momentum) -> None:
    owner = "build_unetpp"
    if not (is_number(dropout) and 0.0 <= dropout < 1.0):
        raise parameter_error("dropout", owner, "a float in [0, 1)", dropout)
    if not (is_number(l2) and l2 >= 0.0):
        raise parameter_error("l2", owner, "a float >= 0", l2)
    if not (is_number(bn_momentum) and 0.0 < bn_momentum < 1.0):
        raise parameter_error("bn_momentum", owner, "a float in (0, 1)", bn_momentum)
    for name, value in (("batch_norm", batch_norm), ("deep_supervision", deep_supervision)):
        if not isinstance(value, bool):
            raise parameter_error(name, owner, "a bool", value)


def _regulariser(l2: float):
    return keras.regularizers.L2(l2) if l2 > 0 else None


def _conv_block(
    x, *, filters: int, name: str, dropout: float, batch_norm: bool, l2: float, bn_momentum: float
):
    """Two 3×3 convolutions, each followed by [BatchNorm], ReLU and [Dropout]."""
    for k in (1, 2):
        x = layers.Conv2D(
            filters,
            3,
            padding="same",
            kernel_initializer="he_normal",
            kernel_regularizer=_regulariser(l2),
            use_bias=not batch_norm,  # BatchNorm's own shift makes a conv bias redundant
            name=f"{name}_conv{k}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{k}")(x)
        x = layers.ReLU(name=f"{name}_relu{k}")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"{name}_drop{k}")(x)
    return x


def _head(x, *, j: int, l2: float):
    # float32 so that a mixed-precision policy never yields float16 probabilities.
    return layers.Conv2D(
        1,
        1,
        activation="sigmoid",
        kernel_initializer="he_normal",
        kernel_regularizer=_regulariser(l2),
        dtype="float32",
        name=f"head_0_{j}",
    )(x)


def _nested_nodes(inputs, *, depth: int, base_filters: int, l2: float, block) -> dict:
    """All nodes ``X(i, j)`` keyed by ``(i, j)``."""
    nodes = {}
    x = inputs
    for i in range(depth + 1):
        if i > 0:
            x = layers.MaxPooling2D(2, name=f"x_{i}_0_pool")(nodes[(i - 1, 0)])
        nodes[(i, 0)] = block(x, filters=base_filters * 2**i, name=f"x_{i}_0")
    for j in range(1, depth + 1):
        for i in range(depth + 1 - j):
            filters = base_filters * 2**i
            up = layers.Conv2DTranspose(
                filters,
                2,
                strides=2,
                padding="same",
                kernel_initializer="he_normal",
                kernel_regularizer=_regulariser(l2),
                name=f"x_{i}_{j}_up",
            )(nodes[(i + 1, j - 1)])
            skips = [nodes[(i, k)] for k in range(j)]
            x = layers.Concatenate(name=f"x_{i}_{j}_concat")([*skips, up])
            nodes[(i, j)] = block(x, filters=filters, name=f"x_{i}_{j}")
    return nodes


def build_unetpp(
    *,
    depth: int,
    base_filters: int,
    dropout: float,
    batch_norm: bool,
    l2: float,
    deep_supervision: bool,
    in_channels: int,
    image_size: int | None = None,
    bn_momentum: float = 0.9,
) -> keras.Model:
    """A UNet++ with ``depth`` downsamplings whose heads predict the lesion probability.

    With ``deep_supervision`` the model has ``depth`` outputs, ``head_0_1`` .. ``head_0_<depth>``
    in that order, all meant to be trained; without it, the single ``head_0_<depth>`` output.
    ``image_size=None`` accepts any square or rectangular size divisible by ``2**depth``.
    ``bn_momentum`` defaults to 0.9 rather than Keras' 0.99: with few steps per epoch the moving
    statistics used at inference otherwise lag far behind training.
    """
    check_shape_args(
        "build_unetpp",
        depth=depth,
        base_filters=base_filters,
        in_channels=in_channels,
        image_size=image_size,
    )
    _check_block_args(
        dropout=dropout,
        batch_norm=batch_norm,
        l2=l2,
        deep_supervision=deep_supervision,
        bn_momentum=bn_momentum,
    )

    def block(x, *, filters, name):
        return _conv_block(
            x,
            filters=filters,
            name=name,
            dropout=dropout,
            batch_norm=batch_norm,
            l2=l2,
            bn_momentum=bn_momentum,
        )

    inputs = keras.Input(shape=(image_size, image_size, in_channels), name="image")
    nodes = _nested_nodes(inputs, depth=depth, base_filters=base_filters, l2=l2, block=block)
    head_columns = range(1, depth + 1) if deep_supervision else [depth]
    heads = [_head(nodes[(0, j)], j=j, l2=l2) for j in head_columns]
    outputs = heads if deep_supervision else heads[0]
    return keras.Model(inputs, outputs, name=f"unetpp_d{depth}_f{base_filters}")


def inference_model(model: keras.Model) -> keras.Model:
    """The model cut to its deepest head ``head_0_<depth>``, sharing the trained layers."""
    heads = [layer for layer in model.layers if layer.name.startswith("head_0_")]
    if not heads:
        raise ValueError(
            f"Model {model.name!r} has no 'head_0_<j>' layer; it was not built by build_unetpp."
        )
    deepest = max(heads, key=lambda layer: int(layer.name.rsplit("_", 1)[1]))
    return keras.Model(model.inputs, deepest.output, name=f"{model.name}_inference")


def float32_model(model: keras.Model) -> keras.Model:
    """A copy of ``model`` that computes in float32, holding the same weights.

    A model trained under the ``mixed_float16`` policy keeps that policy in every layer when
    saved, so a CPU without fast float16 would run it slowly in float16. Mixed precision keeps
    its variables in float32, so the copy's weights are the trained ones exactly; only the
    activations are no longer rounded to float16.
    """

    def as_float32(layer: keras.layers.Layer) -> keras.layers.Layer:
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")  # for the input layer, which clone_model remakes
    try:
        copy = keras.models.clone_model(model, clone_function=as_float32)
    finally:
        keras.config.set_dtype_policy(before)
    copy.set_weights(model.get_weights())
    return copy
