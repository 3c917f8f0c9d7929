"""Decode one image or mask file into an array, and read a mask's values strictly.

Every problem is a :class:`DataError` of one line that names the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from segsweep.errors import ConfigError, DataError

MASK_SUFFIXES = (".bmp", ".npy", ".png", ".tif", ".tiff")
IMAGE_SUFFIXES = (*MASK_SUFFIXES, ".jpeg", ".jpg")
LABEL_MAX = 16  # whole-number masks up to this value are label maps, not resized 0/255 masks
SHOWN = 5  # offenders or values named in one error line

_PIL_CONVERT = {"1": "L", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "PA": "RGBA"}


def label(path: Path) -> str:
    """How errors name a file: its folder and name, e.g. ``masks/a.png``."""
    return f"{path.parent.name}/{path.name}"


def check_threshold(threshold: object) -> None:
    ok = isinstance(threshold, int | float) and not isinstance(threshold, bool)
    if not ok or not (threshold == 0 or 0 < threshold < 1):
        raise ConfigError(
            "The 'mask_threshold' parameter must be 0 (masks read strictly) or a number in "
            f"(0, 1). Got {threshold!r} instead."
        )


def _read_pil(path: Path, keep_palette: bool) -> np.ndarray:
    with Image.open(path) as img:
        mode = _PIL_CONVERT.get(img.mode, img.mode)
        if img.mode == "P" and not keep_palette:  # a mask's palette indices are its labels
            mode = "RGBA" if "transparency" in img.info else "RGB"
        array = np.asarray(img.convert(mode) if mode != img.mode else img)
    if img.mode == "I" and array.size and array.min() >= 0 and array.max() <= 65535:
        array = array.astype(np.uint16)  # PIL widens 16-bit PNGs to int32 ("I") in some versions
    return array


def _read_array(path: Path, *, keep_palette: bool = False) -> np.ndarray:
    """Decode one file to (H, W) or (H, W, C), dropping alpha and a single channel axis."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            array = tifffile.imread(path)
        else:
            array = _read_pil(path, keep_palette)
    except Exception as exc:  # decoders raise many types (OSError, ValueError, zlib.error, ...)
        raise DataError(f"{label(path)} cannot be read: {exc}") from exc
    if array.ndim == 3 and array.shape[-1] in (1, 2, 3, 4):
        array = array[..., 0] if array.shape[-1] <= 2 else array[..., :3]  # 2 = gray + alpha
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)) or array.size == 0:
        raise DataError(
            f"{label(path)} has shape {array.shape}; expected (H, W) or (H, W, C) with C = 1 to 4"
        )
    if array.dtype.kind not in "buif":
        raise DataError(f"{label(path)} has dtype {array.dtype}; expected integers or floats")
    return array.astype(array.dtype.newbyteorder("="), copy=False)  # big-endian uint16 is uint16


def read_image(path: Path) -> np.ndarray:
    """Read an image as (H, W) or (H, W, 3) in its own dtype (alpha dropped)."""
    path = Path(path)
    array = _read_array(path)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataError(f"{label(path)} has NaN or infinite values")
    return array


def is_colour(array: np.ndarray) -> bool:
    """Whether an (H, W, 3) array's channels differ (a gray image saved as RGB is not colour)."""
    return array.ndim == 3 and not (array == array[..., :1]).all()


def mask_kind(plane: np.ndarray) -> str:
    """Classify a 2-D mask's values: "binary", "labels", "in-between" or "invalid".

    - binary: at most one nonzero value, e.g. {0, 1}, {0, 255}, {0, 65535}, {0, 1.0}, {0}.
    - labels: whole numbers from 0 to 16, e.g. {0, 1, 2, 3}; every value > 0 is lesion.
    - in-between: anything else, e.g. a 0/255 mask resized bilinearly or saved as JPEG
      (values like 3, 128, 250 that are neither 0 nor the lesion value).
    - invalid: negative, NaN or infinite values.

    >>> mask_kind(np.array([[0, 255], [255, 0]], np.uint8))
    'binary'
    """
    values = np.unique(plane)
    if (values.dtype.kind == "f" and not np.isfinite(values).all()) or values[0] < 0:
        return "invalid"
    if values[values != 0].size <= 1:
        return "binary"
    if values[-1] <= LABEL_MAX and (values == np.round(values)).all():
        return "labels"
    return "in-between"


def read_mask_plane(path: Path) -> np.ndarray:
    """A mask's values as stored, (H, W) in its own dtype; only colour masks are refused.

    :func:`read_mask` judges these values; ``doctor`` reports them as they are.
    """
    path = Path(path)
    array = _read_array(path, keep_palette=True)
    if is_colour(array):
        raise DataError(
            f"{label(path)} is a colour mask (its channels differ); save it as one gray channel"
        )
    return array[..., 0] if array.ndim == 3 else array


def values_text(plane: np.ndarray) -> str:
    """A few of a mask's distinct values, spread over their range, for error lines."""
    values = np.unique(plane)
    picks = values[np.unique(np.linspace(0, values.size - 1, SHOWN).astype(int))]
    return f"{values.size} distinct, e.g. {', '.join(f'{v:g}' for v in picks.tolist())}"


def _apply_threshold(plane: np.ndarray, threshold: float, path: Path) -> np.ndarray:
    if plane.dtype in (np.uint8, np.uint16):
        top = np.iinfo(plane.dtype).max
    elif plane.dtype.kind == "f" and plane.max() <= 1:
        top = 1.0
    else:
        raise DataError(
            f"{label(path)} has dtype {plane.dtype} with values up to {plane.max():g};"
            " mask_threshold works on uint8, uint16 or float masks in [0, 1]"
        )
    return plane > threshold * top


def read_mask(path: Path, *, threshold: float = 0.0) -> np.ndarray:
    """Read a mask as bool (H, W): lesion is every value > 0, read strictly (see :func:`mask_kind`).

    With ``threshold`` in (0, 1), a mask with in-between values is binarised instead of refused:
    lesion = value > threshold * the largest value of its type (255, 65535, or 1.0 for floats).
    Binary masks and label maps keep their meaning whatever the threshold.
    """
    check_threshold(threshold)
    path = Path(path)
    plane = read_mask_plane(path)
    kind = mask_kind(plane)
    if kind in ("binary", "labels"):
        return plane > 0
    if kind == "invalid":
        raise DataError(f"{label(path)} has negative, NaN or infinite values")
    if threshold:
        return _apply_threshold(plane, threshold, path)
    raise DataError(
        f"{label(path)} has in-between values ({values_text(plane)}): it looks resized or "
        "compressed; fix the mask or set data.mask_threshold = 0.5 to binarise at 50 % of the "
        "largest value its type holds"
    )
