"""Settings that are risky for this data: each rule returns a warning with its reason, or nothing.

A risk counts when the search space *allows* it: some trials will then run with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from segsweep.config import Config
from segsweep.doctor._facts import lesion_pixel_fraction, usable
from segsweep.doctor._report import Finding
from segsweep.doctor._scan import Sample

__all__ = ["RULES"]

RARE_LESION = 0.05  # lesion share of all pixels under which the background Dice is ~1 for free
RISKY_W1 = 0.3  # the seed case's background weight
MIN_LESION_PX = 4
FEW_VAL_LESION_IMAGES = 5
FEW_PAIRS = 30
DIM_SHARE = 1 / 8  # integer images whose maximum stays under this share of their type's range


def _warn(code: str, message: str, files: Sequence[str] = ()) -> list[Finding]:
    return [Finding("warning", code, message, tuple(files))]


def _weighted_dice(cfg: Config, samples: Sequence[Sample]) -> list[Finding]:
    if "weighted_dice" not in cfg.space.loss or not usable(samples):
        return []
    f, w1 = lesion_pixel_fraction(usable(samples)), 1 - min(cfg.space.dice_w2)
    if f >= RARE_LESION or w1 < RISKY_W1 - 1e-9:  # 1 - 0.7 is 0.30000000000000004
        return []
    background = 2 * (1 - f) / (2 - f)  # the soft background Dice of predicting no lesion at all
    return _warn(
        "weighted_dice",
        f"the search space allows weighted_dice with a background weight up to w1 = {w1:.2g} "
        f"while lesions are {f:.2%} of the pixels: predicting no lesion already earns a "
        f"background Dice of {background:.3f}, so the loss falls while the lesion Dice stays "
        f"flat; raise the lower bound of space.dice_w2 above {1 - RISKY_W1:g} or use "
        'space.loss = ["dice_ce", "focal_tversky"]',
    )


def _area_scale(cfg: Config, sample: Sample, size: float) -> float:
    """How much a lesion's area shrinks when its image is resized to ``size`` (``data.resize``)."""
    if cfg.data.resize == "pad":  # both sides by size / the long side
        return (size / max(sample.height, sample.width)) ** 2
    return size * size / (sample.height * sample.width)


def _shrunk_lesions(cfg: Config, samples: Sequence[Sample]) -> list[tuple]:
    """``(area at image_size, area, sample)`` of lesions that fall below MIN_LESION_PX there."""
    size, out = cfg.data.image_size, []
    for s in usable(samples):
        scale = _area_scale(cfg, s, size)
        out += [(a * scale, a, s) for a in s.lesion_areas if a * scale < MIN_LESION_PX <= a]
    return sorted(out, key=lambda t: (t[0], t[2].stem))


def _small_lesions(cfg: Config, samples: Sequence[Sample]) -> list[Finding]:
    if cfg.data.patch_size:  # patches keep the images' own resolution: nothing shrinks
        return []
    shrunk = _shrunk_lesions(cfg, samples)
    if not shrunk:
        return []
    scaled, area, first = shrunk[0]
    total = sum(len(s.lesion_areas) for s in usable(samples))
    # the area scales with size**2: the size at which area * scale reaches MIN_LESION_PX
    need = max(math.sqrt(MIN_LESION_PX / (a * _area_scale(cfg, s, 1.0))) for _, a, s in shrunk)
    step = 2 ** max(cfg.space.depth)
    return _warn(
        "small_lesions",
        f"at data.image_size = {cfg.data.image_size}, {len(shrunk)} of {total} lesions shrink "
        f"below {MIN_LESION_PX} pixels (smallest: {area} px in {first.image} becomes "
        f"{scaled:.2g} px) and nearest resizing can erase them from the masks; set "
        f"data.image_size to at least {math.ceil(need / step) * step}",
        sorted({s.image for _, _, s in shrunk}),
    )


def _non_square(cfg: Config, samples: Sequence[Sample]) -> list[Finding]:
    odd = [s for s in samples if max(s.height, s.width) > 1.1 * min(s.height, s.width)]
    if not odd or cfg.data.resize == "pad" or cfg.data.patch_size:  # patches stretch nothing
        return []
    worst = max(odd, key=lambda s: max(s.height, s.width) / min(s.height, s.width))
    stretch = max(worst.height, worst.width) / min(worst.height, worst.width)
    size = cfg.data.image_size
    return _warn(
        "not_square",
        f"{len(odd)} images are not square (e.g. {worst.image}, {worst.height}x{worst.width}): "
        f'data.resize = "stretch" resizes them to {size}x{size}, stretching them up to '
        f'{stretch:.2g} times one way, lesions included; set data.resize = "pad" to keep '
        "their aspect ratio (the short side is padded, and predict crops the padding off)",
        [s.image for s in odd],
    )


def _val_count(n: int, val_fraction: float) -> int:
    return min(max(1, round(val_fraction * n)), n - 1)  # as data.split draws it


def _bn_lag(cfg: Config, samples: Sequence[Sample]) -> list[Finding]:
    n = len(usable(samples))
    if True not in cfg.space.batch_norm or n < 2:
        return []
    momentum, batch = max(cfg.space.bn_momentum), cfg.train.batch_size
    n_train = n - _val_count(n, cfg.data.val_fraction)
    steps, lag = cfg.train.steps_per_epoch or math.ceil(n_train / batch), 1 / (1 - momentum)
    if lag <= steps:
        return []
    source = (
        "train.steps_per_epoch"
        if cfg.train.steps_per_epoch
        else f"{n_train} training images, batch {batch}"
    )
    return _warn(
        "bn_momentum",
        f"the search space allows batch norm with momentum {momentum:g}, whose moving statistics "
        f"average over about {lag:.0f} steps while an epoch has only {steps} ({source}): "
        "validation then runs on statistics that lag behind training and can predict no lesion "
        f"at all; keep space.bn_momentum at or below {math.floor((1 - 1 / steps) * 100) / 100:g}",
    )


def _few_val_lesions(cfg: Config, samples: Sequence[Sample]) -> list[Finding]:
    good = usable(samples)
    if len(good) < 2:
        return []
    n_val = _val_count(len(good), cfg.data.val_fraction)
    expected = round(n_val * sum(s.lesion_fraction > 0 for s in good) / len(good))
    if expected >= FEW_VAL_LESION_IMAGES:
        return []
    return _warn(
        "few_val_lesions",
        f"the validation split will hold about {expected} lesion images ({n_val} of {len(good)} "
        f"images at data.val_fraction = {cfg.data.val_fraction:g}): val_dsc, and with it the "
        "choice of the best trial, rests on too few cases; raise data.val_fraction or add data",
    )


def _few_pairs(cfg: Config, samples: Sequence[Sample]) -> list[Finding]:
    n = len(usable(samples))
    if not n or n >= FEW_PAIRS:
        return []
    return _warn(
        "few_pairs",
        f"only {n} usable image/mask pairs: a UNet++ learns them by heart within a few epochs "
        "and trials differ mostly by chance; add data before searching settings",
    )


def _dim_images(cfg: Config, samples: Sequence[Sample]) -> list[Finding]:
    if cfg.data.intensity != "dtype":
        return []
    found = []
    for dtype in ("uint8", "uint16"):
        of_type = [s for s in samples if s.dtype == dtype]
        top, type_max = max((s.high for s in of_type), default=0), np.iinfo(dtype).max
        if not of_type or top >= DIM_SHARE * type_max:
            continue
        found += _warn(
            "dim_images",
            f"the {dtype} images reach at most {top:g} of {type_max} "
            f'({max(1, math.ceil(math.log2(top + 1)))}-bit data?): data.intensity = "dtype" '
            f"divides by {type_max} and maps them into [0, {top / type_max:.2g}], nearly black; "
            'set data.intensity = "minmax"',
            [s.image for s in of_type],
        )
    return found


def _mixed_colour(cfg: Config, samples: Sequence[Sample]) -> list[Finding]:
    colour = [s.image for s in samples if s.colour]
    if not colour or len(colour) == len(samples) or cfg.data.channels:
        return []
    return _warn(
        "mixed_colour",
        f"{len(colour)} of {len(samples)} images have colour and the rest are gray: with "
        "data.channels = 0 the model takes 3 channels and sees the gray ones as R = G = B, two "
        "kinds of input for one model; set data.channels = 1 to train on luminance, or check "
        "that both kinds belong in one study",
        colour,
    )


RULES = (
    _weighted_dice,
    _small_lesions,
    _non_square,
    _bn_lag,
    _few_val_lesions,
    _few_pairs,
    _dim_images,
    _mixed_colour,
)
