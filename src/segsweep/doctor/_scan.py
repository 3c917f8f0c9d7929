"""Read every image/mask pair once, keeping going past bad files, and summarise what was read.

Unlike :func:`segsweep.data.io.find_pairs` and ``load_dataset``, which stop at the first problem,
this collects every problem as an error :class:`Finding`; the per-file checks are io's own
(``read_image``, ``read_mask``, ``check_pair``, ``prepare_image``), so doctor refuses exactly what
loading refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import label

from segsweep.config import Config
from segsweep.data.io import (
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    Pair,
    check_pair,
    mask_kind,
    prepare_image,
    read_image,
    read_mask,
    read_mask_plane,
)
from segsweep.doctor._report import Finding
from segsweep.errors import DataError

__all__ = ["Sample", "Scan", "scan"]

_EIGHT_CONNECTED = np.ones((3, 3), bool)  # lesion pixels touching at a corner are one lesion
_JPEG = (".jpg", ".jpeg")


@dataclass(frozen=True)
class Sample:
    """What doctor keeps of one readable pair; ``ok`` is false when loading would refuse it."""

    stem: str
    image: str  # "images/a.png"
    height: int
    width: int
    dtype: str
    channels: int  # as stored: 1 or 3
    colour: bool  # channels that differ
    low: float
    high: float
    mask_values: str  # "{0, 255}", "labels 0..3", "in-between", "invalid"
    ok: bool
    lesion_fraction: float = 0.0
    lesion_areas: tuple[int, ...] = ()  # 8-connected lesions, pixels at the source size


@dataclass(frozen=True)
class Scan:
    pairs: int  # image/mask pairs matched by stem
    samples: tuple[Sample, ...]  # the pairs whose two files could be read
    errors: tuple[Finding, ...]


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f", ... (+{len(names) - 5} more)" if len(names) > 5 else "")


def _error(code: str, message: str, files: list[str] | tuple[str, ...]) -> Finding:
    return Finding("error", code, message, tuple(files))


def _list_folder(folder: Path, suffixes: tuple[str, ...]) -> tuple[dict[str, Path], list]:
    """Map stem -> file of the usable files, and an error per kind of unusable one."""
    if not folder.is_dir():
        msg = f"{folder} not found: a data folder holds images/ and masks/ side by side"
        return {}, [_error("folder_missing", msg, [folder.name])]
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        msg = f"{folder} is empty (files in subfolders are not read)"
        return {}, [_error("empty_folder", msg, [folder.name])]
    errors, by_stem = [], {}
    bad = [_name(p) for p in files if p.suffix.lower() not in suffixes]
    jpeg = [n for n in bad if Path(n).suffix.lower() in _JPEG]
    other = [n for n in bad if n not in jpeg]
    if jpeg:
        msg = f"JPEG masks in {folder} ({_few(jpeg)}): masks must be lossless (PNG, TIFF, BMP, NPY)"
        errors.append(_error("jpeg_mask", msg, jpeg))
    if other:
        msg = f"unsupported extension in {folder} ({_few(other)}); accepted: {', '.join(suffixes)}"
        errors.append(_error("unsupported_file", msg, other))
    for path in (p for p in files if p.suffix.lower() in suffixes):
        by_stem.setdefault(path.stem, []).append(path)
    for paths in (ps for ps in by_stem.values() if len(ps) > 1):
        names = [_name(p) for p in paths]
        errors.append(_error("stem_clash", f"{' and '.join(names)} share a stem", names))
    return {s: ps[0] for s, ps in by_stem.items() if len(ps) == 1}, errors


def _pairs(data_dir: Path) -> tuple[list[Pair], list[Finding]]:
    if not data_dir.is_dir():
        msg = f"{data_dir} not found: a data folder holds images/ and masks/ side by side"
        return [], [_error("folder_missing", msg, [str(data_dir)])]
    images, image_errors = _list_folder(data_dir / "images", IMAGE_SUFFIXES)
    masks, mask_errors = _list_folder(data_dir / "masks", MASK_SUFFIXES)
    errors = image_errors + mask_errors
    if images and masks:  # an empty or missing side is one error, not an orphan per file
        for have, lack, what, missing in (
            (masks, images, "mask", "image"),
            (images, masks, "image", "mask"),
        ):
            orphans = [_name(have[s]) for s in sorted(have.keys() - lack.keys())]
            if orphans:
                plural = "" if len(orphans) == 1 else "s"
                msg = f"no {missing} for {len(orphans)} {what}{plural}: {_few(orphans)}"
                errors.append(_error(f"orphan_{what}", msg, orphans))
    pairs = [Pair(s, images[s], masks[s]) for s in sorted(images.keys() & masks.keys())]
    return pairs, errors


def _values(plane: np.ndarray, kind: str) -> str:
    if kind == "binary":
        return "{" + ", ".join(f"{v:g}" for v in np.unique(plane).tolist()) + "}"
    return f"labels 0..{plane.max():g}" if kind == "labels" else kind


def _lesion(pair: Pair, plane: np.ndarray, kind: str, cfg: Config) -> np.ndarray:
    """The lesion mask as loading reads it; raises io's DataError where loading would."""
    if kind in ("binary", "labels"):
        return plane > 0
    return read_mask(pair.mask, threshold=cfg.data.mask_threshold)


def _check_intensity(image: np.ndarray, pair: Pair, cfg: Config) -> None:
    # the rule looks only at the dtype and the range, so the two extremes stand for the image
    probe = np.array([[image.min(), image.max()]], dtype=image.dtype)
    prepare_image(
        probe, image_size=1, intensity=cfg.data.intensity, channels=1, name=_name(pair.image)
    )


def _attempt(code: str, files: list[Path], call, *args) -> tuple[object, list[Finding]]:
    """``call(*args)`` and no finding, or None and an error of ``code`` naming ``files``."""
    try:
        return call(*args), []
    except DataError as err:
        return None, [_error(code, str(err), [_name(f) for f in files])]


def _inspect(pair: Pair, cfg: Config) -> tuple[Sample | None, list[Finding]]:
    image, errors = _attempt("unreadable", [pair.image], read_image, pair.image)
    plane, found = _attempt("unreadable", [pair.mask], read_mask_plane, pair.mask)
    if errors or found:
        return None, errors + found
    kind = mask_kind(plane)
    code = kind.replace("-", "_") + "_mask"  # in_between_mask, invalid_mask
    mask, errors = _attempt(code, [pair.mask], _lesion, pair, plane, kind, cfg)
    errors += _attempt("size_mismatch", [pair.image, pair.mask], check_pair, pair, image, plane)[1]
    errors += _attempt("intensity", [pair.image], _check_intensity, image, pair, cfg)[1]
    return _sample(pair, image, plane, kind, None if errors else mask), errors


def _sample(pair, image, plane, kind: str, mask: np.ndarray | None) -> Sample:
    colour = image.ndim == 3 and not (image == image[..., :1]).all()
    lesion = {}
    if mask is not None:
        labels, count = label(mask, structure=_EIGHT_CONNECTED)
        areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        lesion = {"lesion_fraction": float(mask.mean()), "lesion_areas": tuple(areas.tolist())}
    return Sample(
        stem=pair.stem,
        image=_name(pair.image),
        height=int(image.shape[0]),
        width=int(image.shape[1]),
        dtype=str(image.dtype),
        channels=1 if image.ndim == 2 else int(image.shape[-1]),
        colour=bool(colour),
        low=float(image.min()),
        high=float(image.max()),
        mask_values=_values(plane, kind),
        ok=mask is not None,
        **lesion,
    )


def scan(cfg: Config) -> Scan:
    """Every readable pair of ``cfg.data.dir`` and an error for every problem found."""
    data_dir = Path(cfg.data.dir)
    pairs, errors = _pairs(data_dir)
    samples = []
    for pair in pairs:
        sample, found = _inspect(pair, cfg)
        errors += found
        if sample is not None:
            samples.append(sample)
    usable = [s for s in samples if s.ok]
    if usable and not any(s.lesion_fraction for s in usable):
        msg = f"no lesion pixel in any of the {len(usable)} usable masks in {data_dir / 'masks'}"
        errors.append(_error("no_lesion", msg, []))
    return Scan(len(pairs), tuple(samples), tuple(errors))
