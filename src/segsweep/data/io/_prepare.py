"""Turn a decoded image or mask into the model's input: intensities, channels, size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from segsweep.errors import ConfigError, DataError

INTENSITIES = ("dtype", "minmax")
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, what PIL's convert("L") uses


def check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices or isinstance(value, bool):
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(
            f"The {name!r} parameter must be one of {allowed}. Got {value!r} instead."
        )


def check_image_size(image_size: object) -> None:
    is_int = isinstance(image_size, int | np.integer) and not isinstance(image_size, bool)
    if not is_int or image_size < 1:
        raise ConfigError(
            f"The 'image_size' parameter must be a positive integer. Got {image_size!r} instead."
        )


def _scale(raw: np.ndarray, intensity: str, name: str) -> np.ndarray:
    """Map intensities to [0, 1] as float64, shape (H, W, C)."""
    x = raw.astype(np.float64)
    if intensity == "minmax":
        lo, hi = x.min(), x.max()  # over all channels, so colour balance is kept
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    elif raw.dtype in (np.uint8, np.uint16):
        x /= np.iinfo(raw.dtype).max
    elif raw.dtype.kind == "i" or raw.dtype.kind == "u":
        raise DataError(
            f"{name} has dtype {raw.dtype}; intensity 'dtype' knows uint8 and uint16 "
            "only: set data.intensity = 'minmax'"
        )
    elif raw.dtype.kind == "f" and (x.min() < 0 or x.max() > 1):
        raise DataError(
            f"{name} holds floats in [{x.min():g}, {x.max():g}]; intensity 'dtype' "
            "needs them in [0, 1]: set data.intensity = 'minmax'"
        )
    return x if x.ndim == 3 else x[..., None]


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, 1 or 3) -> (H, W, channels): gray is repeated, colour becomes BT.601 luminance."""
    if x.shape[-1] == channels:
        return x
    return np.repeat(x, channels, axis=-1) if channels == 3 else (x @ LUMA)[..., None]


def _resize_bilinear(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[:2] == (size, size):
        return x
    planes = [Image.fromarray(x[..., c].astype(np.float32), mode="F") for c in range(x.shape[-1])]
    return np.stack([np.asarray(p.resize((size, size), Image.BILINEAR)) for p in planes], axis=-1)


def prepare_image(
    raw: np.ndarray, *, image_size: int, intensity: str, channels: int, name: str = "image"
) -> np.ndarray:
    """Scale to [0, 1], set the channel count, then resize bilinearly to a float32 square.

    ``intensity``: "dtype" divides uint8 by 255 and uint16 by 65535 (floats must already lie in
    [0, 1]); "minmax" maps each image's own min..max to 0..1 (a constant image becomes 0).
    ``channels``: 1 or 3; gray is repeated to 3, colour becomes BT.601 luminance for 1.
    ``name`` is the file named in errors.
    """
    check_image_size(image_size)
    check_choice("intensity", intensity, INTENSITIES)
    check_choice("channels", channels, (1, 3))
    x = _resize_bilinear(to_channels(_scale(raw, intensity, name), channels), image_size)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def prepare_mask(mask: np.ndarray, *, image_size: int) -> np.ndarray:
    """Resize a bool (H, W) mask to uint8 (image_size, image_size, 1) in {0, 1}, nearest only."""
    check_image_size(image_size)
    if mask.ndim != 2:
        raise ValueError(f"prepare_mask needs a 2-D mask; got shape {mask.shape}")
    img = Image.fromarray((mask > 0).astype(np.uint8), mode="L")
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.NEAREST)
    return np.asarray(img, dtype=np.uint8)[..., None]
