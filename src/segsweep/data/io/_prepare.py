"""Turn a decoded image or mask into the model's input: intensities, channels, size.

``resize`` decides how an H x W image becomes the model's S x S square: "stretch" resizes each
side to S (the aspect ratio changes unless H = W); "pad" scales the long side to S, keeping the
aspect ratio, and centres the result on a square of zeros. Where the image lands is a function
of (H, W, S) alone, :func:`content_box`, so ``predict`` crops the padding of any prediction and
maps it back to the original size without storing anything per image. S = None keeps every
image at its own size (patch training, ``data.patch_size``): nothing is resized.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from segsweep.errors import ConfigError, DataError

INTENSITIES = ("dtype", "minmax")
RESIZES = ("stretch", "pad")
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


def content_box(
    height: int, width: int, image_size: int | None, resize: str
) -> tuple[int, int, int, int]:
    """``(top, left, h, w)``: where an image of ``height`` x ``width`` lies in the model's square
    (all of it, at its own size, when ``image_size`` is None).

    >>> content_box(48, 32, 32, "pad")  # 32 x 21.3 rounds to 32 x 21, centred: 5 px left
    (0, 5, 32, 21)
    >>> content_box(48, 32, 32, "stretch")
    (0, 0, 32, 32)
    """
    if image_size is None:
        return 0, 0, height, width
    check_image_size(image_size)
    check_choice("resize", resize, RESIZES)
    if resize == "stretch":
        return 0, 0, image_size, image_size
    scale = image_size / max(height, width)
    h = min(image_size, max(1, round(height * scale)))
    w = min(image_size, max(1, round(width * scale)))
    return (image_size - h) // 2, (image_size - w) // 2, h, w


def resize_plane(
    plane: np.ndarray, height: int, width: int, *, nearest: bool = False
) -> np.ndarray:
    """One (H, W) float or uint8 plane resized to ``height`` x ``width``, bilinear or nearest."""
    if plane.shape == (height, width):
        return plane
    img = Image.fromarray(plane if nearest else plane.astype(np.float32))
    resample = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(img.resize((width, height), resample))


def _fit(x: np.ndarray, image_size: int | None, resize: str, *, nearest: bool) -> np.ndarray:
    """(H, W, C) -> (S, S, C): resized into :func:`content_box`, zeros around it; as it is
    when ``image_size`` is None."""
    if image_size is None:
        return x
    top, left, h, w = content_box(x.shape[0], x.shape[1], image_size, resize)
    out = np.zeros((image_size, image_size, x.shape[-1]), x.dtype)
    for c in range(x.shape[-1]):
        out[top : top + h, left : left + w, c] = resize_plane(x[..., c], h, w, nearest=nearest)
    return out


def prepare_image(
    raw: np.ndarray,
    *,
    image_size: int | None,
    intensity: str,
    channels: int,
    name: str = "image",
    resize: str = "stretch",
) -> np.ndarray:
    """Scale to [0, 1], set the channel count, then resize bilinearly to a float32 square.

    ``intensity``: "dtype" divides uint8 by 255 and uint16 by 65535 (floats must already lie in
    [0, 1]); "minmax" maps each image's own min..max to 0..1 (a constant image becomes 0).
    ``channels``: 1 or 3; gray is repeated to 3, colour becomes BT.601 luminance for 1.
    ``resize``: "stretch" or "pad" (zeros around the image; see :func:`content_box`).
    ``image_size`` None keeps the image's own size. ``name`` is the file named in errors.
    """
    if image_size is not None:
        check_image_size(image_size)
    check_choice("intensity", intensity, INTENSITIES)
    check_choice("channels", channels, (1, 3))
    x = to_channels(_scale(raw, intensity, name), channels).astype(np.float32)
    return np.clip(_fit(x, image_size, resize, nearest=False), 0.0, 1.0)


def prepare_mask(
    mask: np.ndarray, *, image_size: int | None, resize: str = "stretch"
) -> np.ndarray:
    """Resize a bool (H, W) mask to uint8 (image_size, image_size, 1) in {0, 1}, nearest only
    (image_size None: (H, W, 1), not resized).

    With ``resize="pad"`` the mask lands where :func:`prepare_image` puts its image; the
    padding is background.
    """
    if image_size is not None:
        check_image_size(image_size)
    if mask.ndim != 2:
        raise ValueError(f"prepare_mask needs a 2-D mask; got shape {mask.shape}")
    return _fit((mask > 0).astype(np.uint8)[..., None], image_size, resize, nearest=True)
