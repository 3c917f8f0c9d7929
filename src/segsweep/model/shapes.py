"""The UNet++'s sizes as arithmetic, without Keras: FLOPs, activations, receptive field.

:func:`segsweep.model.unetpp.build_unetpp` builds the network; this module answers what it will
cost before anything is built, so the planner (:mod:`segsweep.plan`) and ``doctor``-speed
commands need not import Keras. The walk over the nodes ``X(i, j)`` is the builder's: level
``i`` has ``base_filters · 2**i`` filters at ``size / 2**i`` px, node ``X(i, j)`` (``j ≥ 1``)
convolves ``j`` skips and one upsampled input.
"""

from __future__ import annotations

from segsweep.errors import ConfigError

__all__ = [
    "MAX_DEPTH",
    "activation_floats",
    "check_shape_args",
    "count_flops",
    "is_int",
    "is_number",
    "parameter_error",
    "receptive_field",
]

MAX_DEPTH = 6


def parameter_error(name: str, owner: str, expected: str, value) -> ConfigError:
    return ConfigError(
        f"The '{name}' parameter of {owner} must be {expected}. Got {value!r} instead."
    )


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_shape_args(owner: str, *, depth, base_filters, in_channels, image_size) -> None:
    if not (is_int(depth) and 1 <= depth <= MAX_DEPTH):
        raise parameter_error("depth", owner, f"an int in [1, {MAX_DEPTH}]", depth)
    if not (is_int(base_filters) and base_filters >= 1):
        raise parameter_error("base_filters", owner, "an int >= 1", base_filters)
    if not (is_int(in_channels) and in_channels >= 1):
        raise parameter_error("in_channels", owner, "an int >= 1", in_channels)
    if image_size is not None and not (
        is_int(image_size) and image_size >= 1 and image_size % 2**depth == 0
    ):
        raise parameter_error(
            "image_size", owner, f"None or a positive multiple of 2**depth = {2**depth}", image_size
        )


def _conv_flops(*, kernel: int, c_in: int, c_out: int, size: int) -> int:
    """Multiply-adds of a 'same' convolution, counted as 2 FLOPs, on a size×size output."""
    return 2 * kernel * kernel * c_in * c_out * size * size


def _block_flops(*, c_in: int, c_out: int, size: int) -> int:
    return _conv_flops(kernel=3, c_in=c_in, c_out=c_out, size=size) + _conv_flops(
        kernel=3, c_in=c_out, c_out=c_out, size=size
    )


def _checked_levels(owner: str, depth, base_filters, image_size, in_channels) -> tuple:
    if image_size is None:
        raise parameter_error("image_size", owner, "a positive multiple of 2**depth", image_size)
    check_shape_args(
        owner,
        depth=depth,
        base_filters=base_filters,
        in_channels=in_channels,
        image_size=image_size,
    )
    filters = [base_filters * 2**i for i in range(depth + 1)]
    return filters, [image_size // 2**i for i in range(depth + 1)]


def count_flops(
    *,
    depth: int,
    base_filters: int,
    image_size: int,
    in_channels: int,
    deep_supervision: bool = False,
) -> float:
    """Forward FLOPs per image of :func:`build_unetpp`, from the layer shapes.

    Counts ``2·k·k·c_in·c_out`` per output pixel of every convolution, the 2×2 transposed
    convolutions (``2·2·2·c_in·c_out`` per *input* pixel) and the 1×1 heads (``depth`` of them
    with ``deep_supervision``, else one). Biases, BatchNorm, ReLU, pooling and dropout are left
    out: together they add under 0.1 % (TensorFlow's profiler counts 14.907 GFLOP where this
    gives 14.894 for filters 32..512 at 128 px).
    """
    filters, sizes = _checked_levels("count_flops", depth, base_filters, image_size, in_channels)
    total = 0
    for i in range(depth + 1):
        c_in = in_channels if i == 0 else filters[i - 1]
        total += _block_flops(c_in=c_in, c_out=filters[i], size=sizes[i])
    for j in range(1, depth + 1):
        for i in range(depth + 1 - j):
            total += _conv_flops(kernel=2, c_in=filters[i + 1], c_out=filters[i], size=sizes[i + 1])
            c_in = (j + 1) * filters[i]  # j skips plus the upsampled node, each filters[i] wide
            total += _block_flops(c_in=c_in, c_out=filters[i], size=sizes[i])
    heads = depth if deep_supervision else 1
    total += heads * _conv_flops(kernel=1, c_in=filters[0], c_out=1, size=sizes[0])
    return float(total)


def activation_floats(*, depth: int, base_filters: int, image_size: int, in_channels: int) -> int:
    """Numbers one image leaves in memory for the backward pass: every node's two convolution
    outputs and the concatenated input of every nested node, plus the input itself.

    A lower bound on what a training step holds per image: batch norm, ReLU and dropout each
    keep another tensor of a convolution's size, which :mod:`segsweep.plan` counts as a factor.
    """
    filters, sizes = _checked_levels(
        "activation_floats", depth, base_filters, image_size, in_channels
    )
    total = in_channels * image_size * image_size
    for i in range(depth + 1):
        total += 2 * filters[i] * sizes[i] ** 2  # the backbone node X(i, 0)
    for j in range(1, depth + 1):
        for i in range(depth + 1 - j):
            # the upsampled input, the concatenation (j + 1 inputs) and the two convolutions
            total += (1 + (j + 1) + 2) * filters[i] * sizes[i] ** 2
    return total


def receptive_field(depth: int) -> int:
    """Pixels across the input region one output pixel of the deepest head sees.

    Along the path through the bottleneck, a 3×3 convolution at level ``i`` widens it by
    ``2 · 2**i`` and a 2×2 pooling out of level ``i`` by ``2**i``; the 2×2 stride-2 transposed
    convolutions map each input pixel to its own 2×2 outputs and widen nothing. Two
    convolutions per node on the way down (levels 0..depth) and up (levels depth-1..0):
    ``1 + 4·(2**(depth+1) − 1) + (2**depth − 1) + 4·(2**depth − 1) = 13·2**depth − 8``.
    """
    if not (is_int(depth) and 1 <= depth <= MAX_DEPTH):
        raise parameter_error("depth", "receptive_field", f"an int in [1, {MAX_DEPTH}]", depth)
    return 13 * 2**depth - 8
