"""Find, read, check and load image/mask pairs from ``DIR/images`` and ``DIR/masks``.

Files pair by stem (``a.png`` pairs ``a.tif``). Images may be PNG, TIFF, BMP, NPY or JPEG; masks
must be lossless (PNG, TIFF, BMP, NPY). Every problem is a :class:`DataError` of one line that
names the file, raised before any training starts.

Mask values are read strictly (see :func:`mask_kind`): a binary mask ``{0, v}`` or a small label
map (whole numbers ``0..16``, lesion = ``> 0``) is accepted; anything else has *in-between*
values, which bilinear resizing or JPEG compression leave behind, and is refused unless a
threshold is set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from segsweep.errors import ConfigError, DataError

__all__ = [
    "Dataset",
    "Pair",
    "check_pair",
    "describe_pair",
    "find_pairs",
    "load_dataset",
    "manifest_hash",
    "mask_kind",
    "prepare_image",
    "prepare_mask",
    "read_image",
    "read_mask",
]

MASK_SUFFIXES = (".bmp", ".npy", ".png", ".tif", ".tiff")
IMAGE_SUFFIXES = (*MASK_SUFFIXES, ".jpeg", ".jpg")
INTENSITIES = ("dtype", "minmax")
LABEL_MAX = 16  # whole-number masks up to this value are label maps, not resized 0/255 masks
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, what PIL's convert("L") uses
_SHOWN = 5  # offenders named in one error line


@dataclass(frozen=True)
class Pair:
    """One image file and its mask file, sharing a stem."""

    stem: str
    image: Path
    mask: Path


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images and masks resized to one square size, ready to feed a model.

    ``lesion_fraction`` is measured on each mask at its original resolution. ``manifest_hash``
    identifies the files (see :func:`manifest_hash`), not the loading settings.
    """

    stems: tuple[str, ...]
    images: np.ndarray  # (N, S, S, C) float32 in [0, 1]
    masks: np.ndarray  # (N, S, S, 1) uint8 in {0, 1}
    original_sizes: tuple[tuple[int, int], ...]  # (height, width)
    lesion_fraction: np.ndarray  # (N,) float
    manifest_hash: str
    intensity: str
    channels: int


# --- settings checks ---------------------------------------------------------------------------


def _check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices or isinstance(value, bool):
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(
            f"The {name!r} parameter must be one of {allowed}. Got {value!r} instead."
        )


def _check_image_size(image_size: object) -> None:
    is_int = isinstance(image_size, int | np.integer) and not isinstance(image_size, bool)
    if not is_int or image_size < 1:
        raise ConfigError(
            f"The 'image_size' parameter must be a positive integer. Got {image_size!r} instead."
        )


def _check_threshold(threshold: object) -> None:
    ok = isinstance(threshold, int | float) and not isinstance(threshold, bool)
    if not ok or not (threshold == 0 or 0 < threshold < 1):
        raise ConfigError(
            "The 'mask_threshold' parameter must be 0 (masks read strictly) or a number in "
            f"(0, 1). Got {threshold!r} instead."
        )


# --- pairing -----------------------------------------------------------------------------------


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f", ... (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _list_folder(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Map stem -> file for one folder; hidden files and subfolders are not data."""
    if not folder.is_dir():
        raise DataError(f"{folder} not found: a data folder holds images/ and masks/ side by side")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    bad = [p.name for p in files if p.suffix.lower() not in suffixes]
    lossy = [name for name in bad if Path(name).suffix.lower() in IMAGE_SUFFIXES]
    if lossy:  # only JPEG is accepted for images but not for masks
        raise DataError(
            f"{_count(lossy, 'JPEG mask')} in {folder} ({_few(lossy)}): masks must be lossless; "
            f"accepted: {', '.join(suffixes)}"
        )
    if bad:
        raise DataError(
            f"unsupported extension on {_count(bad, 'file')} in {folder} ({_few(bad)}); "
            f"accepted: {', '.join(suffixes)}"
        )
    if not files:
        raise DataError(f"{folder} is empty (files in subfolders are not read)")
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path)
    clashes = [" and ".join(p.name for p in ps) for ps in by_stem.values() if len(ps) > 1]
    if clashes:
        raise DataError(f"{_count(clashes, 'stem')} used twice in {folder}: {_few(clashes)}")
    return {stem: paths[0] for stem, paths in by_stem.items()}


def find_pairs(data_dir: Path) -> list[Pair]:
    """Pair ``data_dir/images/*`` with ``data_dir/masks/*`` by stem, sorted by stem."""
    data_dir = Path(data_dir)
    images = _list_folder(data_dir / "images", IMAGE_SUFFIXES)
    masks = _list_folder(data_dir / "masks", MASK_SUFFIXES)
    for have, lack, what in ((masks, images, "masks"), (images, masks, "images")):
        orphans = sorted(have[s].name for s in have.keys() - lack.keys())
        if orphans:
            missing = "image" if what == "masks" else "mask"
            where = data_dir / what
            raise DataError(
                f"no {missing} for {_count(orphans, what[:-1])} in {where}: {_few(orphans)}"
            )
    return [Pair(stem, images[stem], masks[stem]) for stem in sorted(images)]


# --- reading -----------------------------------------------------------------------------------

_PIL_CONVERT = {"1": "L", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "PA": "RGBA"}


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
        raise DataError(f"{_label(path)} cannot be read: {exc}") from exc
    if array.ndim == 3 and array.shape[-1] in (1, 2, 3, 4):
        array = array[..., 0] if array.shape[-1] <= 2 else array[..., :3]  # 2 = gray + alpha
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)) or array.size == 0:
        raise DataError(
            f"{_label(path)} has shape {array.shape}; expected (H, W) or (H, W, C) with C = 1 to 4"
        )
    if array.dtype.kind not in "buif":
        raise DataError(f"{_label(path)} has dtype {array.dtype}; expected integers or floats")
    return array.astype(array.dtype.newbyteorder("="), copy=False)  # big-endian uint16 is uint16


def read_image(path: Path) -> np.ndarray:
    """Read an image as (H, W) or (H, W, 3) in its own dtype (alpha dropped)."""
    path = Path(path)
    array = _read_array(path)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataError(f"{_label(path)} has NaN or infinite values")
    return array


def _is_colour(array: np.ndarray) -> bool:
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


def _mask_plane(path: Path) -> np.ndarray:
    array = _read_array(path, keep_palette=True)
    if _is_colour(array):
        raise DataError(
            f"{_label(path)} is a colour mask (its channels differ); save it as one gray channel"
        )
    return array[..., 0] if array.ndim == 3 else array


def _values_text(plane: np.ndarray) -> str:
    values = np.unique(plane)
    picks = values[np.unique(np.linspace(0, values.size - 1, _SHOWN).astype(int))]
    return f"{values.size} distinct, e.g. {', '.join(f'{v:g}' for v in picks.tolist())}"


def _apply_threshold(plane: np.ndarray, threshold: float, path: Path) -> np.ndarray:
    if plane.dtype in (np.uint8, np.uint16):
        top = np.iinfo(plane.dtype).max
    elif plane.dtype.kind == "f" and plane.max() <= 1:
        top = 1.0
    else:
        raise DataError(
            f"{_label(path)} has dtype {plane.dtype} with values up to {plane.max():g};"
            " mask_threshold works on uint8, uint16 or float masks in [0, 1]"
        )
    return plane > threshold * top


def read_mask(path: Path, *, threshold: float = 0.0) -> np.ndarray:
    """Read a mask as bool (H, W): lesion is every value > 0, read strictly (see :func:`mask_kind`).

    With ``threshold`` in (0, 1), a mask with in-between values is binarised instead of refused:
    lesion = value > threshold * the largest value of its type (255, 65535, or 1.0 for floats).
    Binary masks and label maps keep their meaning whatever the threshold.
    """
    _check_threshold(threshold)
    path = Path(path)
    plane = _mask_plane(path)
    kind = mask_kind(plane)
    if kind in ("binary", "labels"):
        return plane > 0
    if kind == "invalid":
        raise DataError(f"{_label(path)} has negative, NaN or infinite values")
    if threshold:
        return _apply_threshold(plane, threshold, path)
    raise DataError(
        f"{_label(path)} has in-between values ({_values_text(plane)}): it looks resized or "
        "compressed; fix the mask or set data.mask_threshold = 0.5 to binarise at 50 % of the "
        "largest value its type holds"
    )


def check_pair(pair: Pair, image: np.ndarray, mask: np.ndarray) -> None:
    """Refuse an image and mask whose height and width differ."""
    if image.shape[:2] != mask.shape[:2]:
        (ih, iw), (mh, mw) = image.shape[:2], mask.shape[:2]
        raise DataError(
            f"{_label(pair.image)} is {ih}x{iw} (HxW) but {_label(pair.mask)} is "
            f"{mh}x{mw}; a mask must match its image"
        )


def describe_pair(pair: Pair) -> dict[str, Any]:
    """Summarise one pair, unusual mask values included (what ``doctor`` reports per file).

    Only files that cannot be decoded or colour masks raise.
    """
    image, plane = read_image(pair.image), _mask_plane(pair.mask)
    kind = mask_kind(plane)
    return {
        "stem": pair.stem,
        "image_file": pair.image.name,
        "mask_file": pair.mask.name,
        "image_shape": image.shape,
        "image_dtype": str(image.dtype),
        "colour": _is_colour(image),
        "image_min": float(image.min()),
        "image_max": float(image.max()),
        "mask_shape": plane.shape,
        "mask_dtype": str(plane.dtype),
        "mask_kind": kind,
        "mask_values": _values_text(plane),
        "lesion_fraction": float((plane > 0).mean()) if kind in ("binary", "labels") else None,
        "size_match": image.shape[:2] == plane.shape,
    }


# --- preparing ---------------------------------------------------------------------------------


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


def _to_channels(x: np.ndarray, channels: int) -> np.ndarray:
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
    _check_image_size(image_size)
    _check_choice("intensity", intensity, INTENSITIES)
    _check_choice("channels", channels, (1, 3))
    x = _resize_bilinear(_to_channels(_scale(raw, intensity, name), channels), image_size)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def prepare_mask(mask: np.ndarray, *, image_size: int) -> np.ndarray:
    """Resize a bool (H, W) mask to uint8 (image_size, image_size, 1) in {0, 1}, nearest only."""
    _check_image_size(image_size)
    if mask.ndim != 2:
        raise ValueError(f"prepare_mask needs a 2-D mask; got shape {mask.shape}")
    img = Image.fromarray((mask > 0).astype(np.uint8), mode="L")
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.NEAREST)
    return np.asarray(img, dtype=np.uint8)[..., None]


# --- loading -----------------------------------------------------------------------------------


def manifest_hash(pairs: list[Pair]) -> str:
    """sha256 over each pair in stem order: stem, file names, byte sizes and sha256 of the bytes.

    Renaming, adding, removing or editing any file changes it; loading settings do not.
    """
    digest = hashlib.sha256()
    for pair in sorted(pairs, key=lambda p: p.stem):
        digest.update(pair.stem.encode() + b"\0")
        for path in (pair.image, pair.mask):
            data = path.read_bytes()
            digest.update(f"{path.name}\0{len(data)}\0".encode())
            digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def _load_pair(pair: Pair, image_size: int, intensity: str, threshold: float) -> tuple:
    raw, mask = read_image(pair.image), read_mask(pair.mask, threshold=threshold)
    check_pair(pair, raw, mask)
    natural = 3 if _is_colour(raw) else 1
    image = prepare_image(
        raw, image_size=image_size, intensity=intensity, channels=natural, name=_label(pair.image)
    )
    return image, prepare_mask(mask, image_size=image_size), mask.shape, float(mask.mean())


def load_dataset(
    data_dir: Path,
    *,
    image_size: int,
    intensity: str = "dtype",
    mask_threshold: float = 0.0,
    channels: int = 0,
    only: Collection[str] | None = None,
) -> Dataset:
    """Read, check and resize every pair in ``data_dir``; refuse data without a lesion pixel.

    ``channels`` 0 picks 3 when any image has colour (channels that differ), else 1. ``only``
    names the stems to load (a study's train and validation images); the others are never read.
    """
    _check_image_size(image_size)
    _check_choice("intensity", intensity, INTENSITIES)
    _check_threshold(mask_threshold)
    _check_choice("channels", channels, (0, 1, 3))
    pairs = find_pairs(Path(data_dir))
    if only is not None:
        missing = set(only) - {p.stem for p in pairs}
        if missing:
            raise DataError(
                f"{data_dir} lacks {len(missing)} image(s) the study was created with, e.g. "
                f"{sorted(missing)[0]!r}"
            )
        pairs = [p for p in pairs if p.stem in only]
    images, masks, sizes, fractions = zip(
        *(_load_pair(p, image_size, intensity, mask_threshold) for p in pairs), strict=True
    )
    if not any(fractions):
        raise DataError(
            f"no lesion pixel in any of the {len(pairs)} masks in {Path(data_dir) / 'masks'}"
        )
    channels = channels or max(image.shape[-1] for image in images)
    return Dataset(
        stems=tuple(p.stem for p in pairs),
        images=np.stack([_to_channels(image, channels) for image in images]).astype(np.float32),
        masks=np.stack(masks),
        original_sizes=tuple((int(h), int(w)) for h, w in sizes),
        lesion_fraction=np.array(fractions),
        manifest_hash=manifest_hash(pairs),
        intensity=intensity,
        channels=channels,
    )
