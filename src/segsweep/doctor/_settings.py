"""Settings risky whatever the data: a huge initial L2 penalty, heavy dropout, a bad image size.

A risk counts when the search space *allows* it (the largest dropout, L2 or model it can sample),
since some trials will then run with it.
"""

from __future__ import annotations

from collections.abc import Iterator

from segsweep.config import Config
from segsweep.doctor._report import Finding

__all__ = ["dropout_finding", "image_size_errors", "l2_at_init", "l2_finding", "l2_penalty_at_init"]

HEAVY_DROPOUT = 0.5
L2_AT_INIT = 0.1  # initial kernel penalty worth a tenth of a Dice loss, which is at most 1


def _warn(code: str, message: str) -> list[Finding]:
    return [Finding("warning", code, message)]


def _kernels(*, depth: int, base_filters: int, in_channels: int, heads: int) -> Iterator[tuple]:
    """``(transposed, k, c_in, c_out)`` of every kernel ``model.build_unetpp`` makes.

    The same walk as ``model.count_flops``, repeated here because model.py imports Keras.
    """
    f = [base_filters * 2**i for i in range(depth + 1)]
    for i in range(depth + 1):
        yield from ((False, 3, in_channels if i == 0 else f[i - 1], f[i]), (False, 3, f[i], f[i]))
    for j in range(1, depth + 1):
        for i in range(depth + 1 - j):
            yield True, 2, f[i + 1], f[i]
            yield from ((False, 3, (j + 1) * f[i], f[i]), (False, 3, f[i], f[i]))
    yield from [(False, 1, f[0], 1)] * heads


def l2_penalty_at_init(
    *,
    l2: float,
    depth: int,
    base_filters: int,
    in_channels: int = 1,
    deep_supervision: bool = False,
) -> float:
    """Expected ``Σ l2·‖W‖²`` over the kernels of a fresh UNet++, the part Keras adds to the loss.

    he_normal draws with variance 2/fan_in. A convolution's kernel (k, k, c_in, c_out) has
    fan_in = k·k·c_in, so E‖W‖² = 2·c_out; Keras stores a transposed one as (k, k, c_out, c_in)
    with fan_in = k·k·c_out, so E‖W‖² = 2·c_in. Filters 32..512, depth 4, l2 = 1e-4: about 1.06.
    """
    heads = depth if deep_supervision else 1
    total = 0.0
    for transposed, k, c_in, c_out in _kernels(
        depth=depth, base_filters=base_filters, in_channels=in_channels, heads=heads
    ):
        total += k * k * c_in * c_out * 2 / (k * k * (c_out if transposed else c_in))
    return l2 * total


def l2_at_init(cfg: Config) -> dict:
    """The initial penalty of the largest model the search space allows, at its largest l2."""
    space = cfg.space
    model = {
        "depth": max(space.depth),
        "base_filters": max(space.base_filters),
        "deep_supervision": True in space.deep_supervision,
    }
    per_unit = l2_penalty_at_init(l2=1.0, **model)
    return {"l2": max(space.l2), **model, "penalty": max(space.l2) * per_unit, "per_l2": per_unit}


def l2_finding(cfg: Config) -> list[Finding]:
    est = l2_at_init(cfg)
    top = est["base_filters"] * 2 ** est["depth"]
    where = f"filters {est['base_filters']}..{top}, depth {est['depth']}"
    if est["penalty"] < L2_AT_INIT:
        msg = f"L2 penalty at initialisation about {est['penalty']:.2g} at most ({where})"
        return [Finding("info", "l2_at_init", msg)]
    return _warn(
        "l2_at_init",
        f"the search space allows l2 = {est['l2']:g}, where the kernel penalty at initialisation "
        f"is about {est['penalty']:.2g} ({where}) against a Dice loss of at most 1: Keras adds it "
        "to the reported loss, which can then exceed 1, and training first shrinks weights "
        "instead of finding the lesion; keep the upper bound of space.l2 at or below "
        f"{L2_AT_INIT / est['per_l2']:.1g}",
    )


def dropout_finding(cfg: Config) -> list[Finding]:
    top = max(cfg.space.dropout)
    if top < HEAVY_DROPOUT:
        return []
    return _warn(
        "dropout",
        f"the search space allows dropout = {top:g} after every convolution (two per UNet++ "
        "node, none spared), which pushes the model towards the trivial all-background answer; "
        f"keep the upper bound of space.dropout below {HEAVY_DROPOUT:g}, e.g. [0.0, 0.3]",
    )


def image_size_errors(cfg: Config) -> list[Finding]:
    """The model's input (data.patch_size with patches, else data.image_size) must halve
    evenly at every depth the space allows."""
    key = "patch_size" if cfg.data.patch_size else "image_size"
    size = getattr(cfg.data, key)
    bad = sorted(d for d in cfg.space.depth if size % 2**d)
    if not bad:
        return []
    step = 2 ** bad[-1]
    near = [m for m in (size // step * step, size // step * step + step) if m]
    return [
        Finding(
            "error",
            key,
            f"data.{key} = {size} is not a multiple of 2**depth = {step} (space.depth allows "
            f"{bad[-1]}): every trial of that depth fails to build; set data.{key} to "
            + " or ".join(map(str, near)),
        )
    ]
