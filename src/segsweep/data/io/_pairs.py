"""Pair ``DIR/images/*`` with ``DIR/masks/*`` by file stem, and check and describe each pair."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segsweep.data.io._read import (
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    SHOWN,
    is_colour,
    label,
    mask_kind,
    read_image,
    read_mask_plane,
    values_text,
)
from segsweep.errors import DataError


@dataclass(frozen=True)
class Pair:
    """One image file and its mask file, sharing a stem."""

    stem: str
    image: Path
    mask: Path


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f", ... (+{len(names) - SHOWN} more)" if len(names) > SHOWN else "")


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


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


def check_pair(pair: Pair, image: np.ndarray, mask: np.ndarray) -> None:
    """Refuse an image and mask whose height and width differ."""
    if image.shape[:2] != mask.shape[:2]:
        (ih, iw), (mh, mw) = image.shape[:2], mask.shape[:2]
        raise DataError(
            f"{label(pair.image)} is {ih}x{iw} (HxW) but {label(pair.mask)} is "
            f"{mh}x{mw}; a mask must match its image"
        )


def describe_pair(pair: Pair) -> dict[str, Any]:
    """Summarise one pair, unusual mask values included (what ``doctor`` reports per file).

    Only files that cannot be decoded or colour masks raise.
    """
    image, plane = read_image(pair.image), read_mask_plane(pair.mask)
    kind = mask_kind(plane)
    return {
        "stem": pair.stem,
        "image_file": pair.image.name,
        "mask_file": pair.mask.name,
        "image_shape": image.shape,
        "image_dtype": str(image.dtype),
        "colour": is_colour(image),
        "image_min": float(image.min()),
        "image_max": float(image.max()),
        "mask_shape": plane.shape,
        "mask_dtype": str(plane.dtype),
        "mask_kind": kind,
        "mask_values": values_text(plane),
        "lesion_fraction": float((plane > 0).mean()) if kind in ("binary", "labels") else None,
        "size_match": image.shape[:2] == plane.shape,
    }


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
