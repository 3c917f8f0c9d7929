"""Lesion volumes as they ship: NIfTI files in three folder layouts, found and read case by case.

- ``nifti``: ``DIR/images/*.nii[.gz]`` and ``DIR/masks/*.nii[.gz]``, paired by stem;
- ``nnunet``: nnU-Net v2's raw layout, ``dataset.json`` (channel names, labels, file ending),
  ``imagesTr/CASE_XXXX.nii.gz`` (one file per channel) and ``labelsTr/CASE.nii.gz``; an
  ``imagesTs/`` with a ``labelsTs/`` beside it is the test set;
- ``decathlon``: the Medical Segmentation Decathlon, ``imagesTr/CASE.nii.gz`` with the channels
  on a 4th axis, ``labelsTr/CASE.nii.gz``.

nibabel reads every file. A folder of 2D pictures is layout ``pictures`` and is not read here.
Every problem is a :class:`DataError` of one line naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segsweep.errors import DataError

__all__ = [
    "AFFINE_TOLERANCE_MM",
    "NIFTI_SUFFIXES",
    "Volume",
    "VolumeCase",
    "detect_layout",
    "find_cases",
    "is_volume_dir",
    "nifti_stem",
    "read_case",
    "test_cases",
]

NIFTI_SUFFIXES = (".nii.gz", ".nii")
AFFINE_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class VolumeCase:
    """One patient: its channel files in ``dataset.json``'s order (one 4D file for the
    Decathlon) and its label file (``None`` for images to predict)."""

    case: str
    images: tuple[Path, ...]
    label: Path | None


@dataclass(frozen=True, eq=False)
class Volume:
    case: str
    image: np.ndarray  # (X, Y, Z, C) float32, as stored
    label: np.ndarray | None  # (X, Y, Z) int, as stored
    affine: np.ndarray  # 4 x 4 voxel -> mm
    spacing: tuple[float, float, float]  # mm along each voxel axis
    header: Any  # the image's nibabel header, written back with predicted masks


def nifti_stem(path: Path) -> str | None:
    """``a.nii.gz`` -> ``a``; ``None`` for a file that is not NIfTI."""
    for suffix in NIFTI_SUFFIXES:
        if path.name.lower().endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def _label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _nifti_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and nifti_stem(p) is not None)


def _dataset_json(data_dir: Path) -> dict:
    path = data_dir / "dataset.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path} cannot be read as JSON: {err}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path} must hold a JSON object")
    return doc


def detect_layout(data_dir: Path) -> str:
    """The layout: "nnunet", "decathlon", "nifti" or "pictures", from what ``data_dir`` holds."""
    data_dir = Path(data_dir)
    if (data_dir / "imagesTr").is_dir():
        if (data_dir / "dataset.json").is_file():
            doc = _dataset_json(data_dir)
            return "nnunet" if "channel_names" in doc else "decathlon"
        raise DataError(f"{data_dir} has imagesTr/ but no dataset.json beside it")
    if _nifti_files(data_dir / "images"):
        return "nifti"
    return "pictures"


def is_volume_dir(data_dir: Path | str) -> bool:
    return Path(data_dir).is_dir() and detect_layout(Path(data_dir)) != "pictures"


def _channels(doc: dict, data_dir: Path) -> list[str]:
    names = doc.get("channel_names", doc.get("modality"))
    if not isinstance(names, dict) or not names:
        raise DataError(f"{data_dir / 'dataset.json'} names no channels (channel_names)")
    try:
        order = sorted(names, key=int)
    except ValueError:
        raise DataError(f"{data_dir / 'dataset.json'}: channel keys must be 0, 1, ...") from None
    return order


def _ending(doc: dict) -> str:
    return str(doc.get("file_ending", ".nii.gz"))


def _nnunet_cases(data_dir: Path, images: str, labels: str | None) -> list[VolumeCase]:
    doc = _dataset_json(data_dir)
    ending, channels = _ending(doc), _channels(doc, data_dir)
    if ending not in NIFTI_SUFFIXES:
        raise DataError(f"{data_dir / 'dataset.json'}: file_ending {ending!r}; segsweep reads "
                        f"{', '.join(NIFTI_SUFFIXES)}")  # fmt: skip
    files = {p.name: p for p in _nifti_files(data_dir / images)}
    cases = sorted({name[: -len(ending) - 5] for name in files if name.endswith(ending)})
    if labels is not None:
        label_files = {nifti_stem(p): p for p in _nifti_files(data_dir / labels)}
        stray = sorted(set(cases) - set(label_files))
        if stray:
            raise DataError(f"{images}/{stray[0]}_0000{ending} has no label {labels}/{stray[0]}"
                            f"{ending} ({len(stray)} such cases)")  # fmt: skip
        cases = sorted(label_files)
    out = []
    for case in cases:
        paths = tuple(data_dir / images / f"{case}_{int(c):04d}{ending}" for c in channels)
        for path in paths:
            if path.name not in files:
                raise DataError(f"{images}/{path.name} is missing: dataset.json names "
                                f"{len(channels)} channel(s) per case")  # fmt: skip
        label = None if labels is None else data_dir / labels / f"{case}{ending}"
        out.append(VolumeCase(case, paths, label))
    expected = doc.get("numTraining")
    if labels == "labelsTr" and isinstance(expected, int) and expected != len(out):
        raise DataError(f"{data_dir / 'dataset.json'} says numTraining {expected} but "
                        f"{labels}/ holds {len(out)} cases")  # fmt: skip
    return out


def _paired_cases(images: Path, labels: Path | None) -> list[VolumeCase]:
    files = {nifti_stem(p): p for p in _nifti_files(images)}
    if labels is None:
        return [VolumeCase(s, (files[s],), None) for s in sorted(files)]
    label_files = {nifti_stem(p): p for p in _nifti_files(labels)}
    for have, lack, folder in ((files, label_files, labels), (label_files, files, images)):
        orphans = sorted(set(have) - set(lack))
        if orphans:
            raise DataError(f"{_label(have[orphans[0]])} has no partner in {folder.name}/ "
                            f"({len(orphans)} such files)")  # fmt: skip
    return [VolumeCase(s, (files[s],), label_files[s]) for s in sorted(files)]


def find_cases(data_dir: Path) -> list[VolumeCase]:
    """The training cases of a volume folder (any layout but ``pictures``), sorted by case."""
    data_dir = Path(data_dir)
    layout = detect_layout(data_dir)
    if layout == "nnunet":
        cases = _nnunet_cases(data_dir, "imagesTr", "labelsTr")
    elif layout == "decathlon":
        cases = _paired_cases(data_dir / "imagesTr", data_dir / "labelsTr")
    elif layout == "nifti":
        cases = _paired_cases(data_dir / "images", data_dir / "masks")
    else:
        raise DataError(f"{data_dir} holds no NIfTI volumes")
    if not cases:
        raise DataError(f"{data_dir} holds no case with a label")
    return cases


def test_cases(data_dir: Path) -> list[VolumeCase]:
    """nnU-Net's or the Decathlon's test set: ``imagesTs/`` with ``labelsTs/`` beside it."""
    data_dir = Path(data_dir)
    if not (data_dir / "imagesTs").is_dir() or not (data_dir / "labelsTs").is_dir():
        return []
    if detect_layout(data_dir) == "nnunet":
        return _nnunet_cases(data_dir, "imagesTs", "labelsTs")
    return _paired_cases(data_dir / "imagesTs", data_dir / "labelsTs")


def unlabelled_cases(folder: Path) -> list[VolumeCase]:
    """Volumes to predict: a folder of NIfTI files, nnU-Net channel files ``CASE_XXXX`` joined
    by case (their channel order), or a layout folder's ``imagesTs``/``images``."""
    folder = Path(folder)
    for sub in ("imagesTs", "images"):
        if _nifti_files(folder / sub):
            folder = folder / sub
    files = _nifti_files(folder)
    if not files:
        raise DataError(f"{folder} holds no NIfTI volume ({', '.join(NIFTI_SUFFIXES)})")
    stems = [nifti_stem(p) for p in files]
    if all(len(s) > 5 and s[-5] == "_" and s[-4:].isdigit() for s in stems):
        by_case: dict[str, list[Path]] = {}
        for stem, path in zip(stems, files, strict=True):
            by_case.setdefault(stem[:-5], []).append(path)
        return [VolumeCase(c, tuple(sorted(p)), None) for c, p in sorted(by_case.items())]
    return [VolumeCase(s, (p,), None) for s, p in zip(stems, files, strict=True)]


def _load(path: Path) -> Any:
    import nibabel as nib

    try:
        return nib.load(path)
    except Exception as err:  # nibabel raises ImageFileError, OSError, EOFError, zlib errors
        raise DataError(f"{_label(path)} cannot be read as NIfTI: {err}") from None


def _array(img: Any, path: Path) -> np.ndarray:
    try:
        return np.asarray(img.dataobj)
    except Exception as err:  # a truncated gzip fails only when the voxels are decoded
        raise DataError(f"{_label(path)} cannot be decoded: {err}") from None


def _same_grid(a: Any, b: Any, path_a: Path, path_b: Path, spatial: tuple) -> None:
    if tuple(b.shape[:3]) != spatial:
        raise DataError(f"{_label(path_b)} has shape {tuple(b.shape)} but {_label(path_a)} "
                        f"has {spatial}; they must share one voxel grid")  # fmt: skip
    gap = float(np.abs(a.affine - b.affine).max())
    if gap > AFFINE_TOLERANCE_MM:
        raise DataError(f"{_label(path_b)}'s affine differs from {_label(path_a)}'s by {gap:.3g} "
                        f"mm (tolerance {AFFINE_TOLERANCE_MM} mm)")  # fmt: skip


def _read_channels(case: VolumeCase) -> tuple[np.ndarray, Any]:
    first = _load(case.images[0])
    if len(first.shape) not in (3, 4) or (len(first.shape) == 4 and len(case.images) > 1):
        raise DataError(f"{_label(case.images[0])} has shape {first.shape}; expected a 3D "
                        "volume (or 4D with channels last, one file per case)")  # fmt: skip
    planes = []
    for path in case.images:
        img = first if path == case.images[0] else _load(path)
        _same_grid(first, img, case.images[0], path, tuple(first.shape[:3]))
        data = _array(img, path).astype(np.float32)
        if not np.isfinite(data).all():
            raise DataError(f"{_label(path)} has NaN or infinite voxels")
        if not data.any():  # an export that failed writes zeros; it would train on nothing
            raise DataError(f"{_label(path)} is all zeros")
        planes.append(data if data.ndim == 4 else data[..., None])
    image = np.concatenate(planes, axis=-1) if len(planes) > 1 else planes[0]
    return image, first


def _read_label(case: VolumeCase, first: Any, allowed: set[int] | None) -> np.ndarray:
    img = _load(case.label)
    if len(img.shape) != 3:
        raise DataError(f"{_label(case.label)} has shape {img.shape}; a label must be 3D")
    _same_grid(first, img, case.images[0], case.label, tuple(first.shape[:3]))
    label = _array(img, case.label)
    if label.dtype.kind == "f":
        if not np.isfinite(label).all() or (label != np.round(label)).any():
            raise DataError(f"{_label(case.label)} holds values that are not whole numbers")
        label = label.astype(np.int64)
    if allowed is not None:
        bad = sorted(set(np.unique(label).tolist()) - allowed)
        if bad:
            raise DataError(f"{_label(case.label)} holds label value(s) {bad[:5]} that "
                            f"dataset.json does not name ({sorted(allowed)})")  # fmt: skip
    return label


def allowed_labels(data_dir: Path) -> set[int] | None:
    """The label values ``dataset.json`` names, or None when there is no dataset.json."""
    path = Path(data_dir) / "dataset.json"
    if not path.is_file():
        return None
    labels = _dataset_json(Path(data_dir)).get("labels", {})
    # nnU-Net v2 maps name -> value (or a list of values, for regions); the Decathlon maps
    # "value" -> name
    raw = [k for k in labels if str(k).isdigit()] or [
        v for value in labels.values() for v in (value if isinstance(value, list) else [value])
    ]
    try:
        values = {int(v) for v in raw}
    except (TypeError, ValueError):
        raise DataError(f"{path}: labels must map to whole numbers; got {labels!r}") from None
    return values or None


def read_case(case: VolumeCase, *, allowed: set[int] | None = None) -> Volume:
    """Decode one case's channels (and label), checking they share one voxel grid."""
    image, first = _read_channels(case)
    label = None if case.label is None else _read_label(case, first, allowed)
    zooms = tuple(float(z) for z in first.header.get_zooms()[:3])
    return Volume(case.case, image, label, np.asarray(first.affine), zooms, first.header)
