"""Volumes cut into the 2D slices the model trains on, each slice knowing its case.

A volume is a *case*. Its intensities are normalised over the whole volume first (nnU-Net's
rules), then it is cut along ``data.slice_axis`` and every slice is resized to the model's
square like a 2D image. A slice's stem is ``CASE_z042`` (its index along the slice axis), and
:func:`segsweep.data.split.case_ids` under :data:`~segsweep.data.split.SLICE_GROUP_PATTERN`
(the ``group_pattern`` of volume data) maps it back: the split, the test set, the leak check and
finalize's folds and statistics group slices by case.

Volumes are decoded one at a time; only the resized slices are kept, so memory grows with
``slices x image_size²``, never with the set's full-resolution volumes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segsweep.data.io import Dataset, content_box, resize_plane
from segsweep.data.patches import canvas
from segsweep.data.split import SLICE_GROUP_PATTERN, case_ids
from segsweep.data.volumes import (
    Volume,
    VolumeCase,
    allowed_labels,
    find_cases,
    read_case,
)
from segsweep.errors import ConfigError, DataError

__all__ = [
    "VOLUME_INTENSITIES",
    "CaseGeometry",
    "cases_of",
    "choose_axis",
    "ct_window",
    "fit_plane",
    "lesion_mask",
    "load_volume_dataset",
    "normalise",
    "slice_lesions",
    "slice_stem",
    "volume_digests",
]

VOLUME_INTENSITIES = ("zscore", "ct", "minmax")


@dataclass(frozen=True)
class CaseGeometry:
    """Where a case's slices come from: enough to stack predictions back into its volume."""

    case: str
    axis: int  # the voxel axis the volume was cut along
    shape: tuple[int, int, int]  # the volume's voxel grid as stored
    spacing: tuple[float, float, float]  # mm along each stored axis

    @property
    def plane(self) -> tuple[int, int]:
        """(H, W) of one slice at its original resolution."""
        h, w = (n for i, n in enumerate(self.shape) if i != self.axis)
        return h, w

    def model_spacing(self, image_size: int, resize: str) -> tuple[float, float, float]:
        """mm per voxel of the stacked model-resolution volume: (slice, row, column)."""
        s_slice, s_row, s_col = (
            self.spacing[self.axis],
            *(s for i, s in enumerate(self.spacing) if i != self.axis),
        )
        _, _, h, w = content_box(*self.plane, image_size, resize)
        return s_slice, s_row * self.plane[0] / h, s_col * self.plane[1] / w


def slice_stem(case: str, index: int) -> str:
    return f"{case}_z{index:03d}"


def cases_of(stems: Collection[str]) -> set[str]:
    """The cases the slice ``stems`` belong to."""
    return set(case_ids(sorted(stems), SLICE_GROUP_PATTERN))


def slice_index(stem: str) -> int:
    return int(stem.rsplit("_z", 1)[1])


def choose_axis(spacing: tuple[float, ...], setting: str | int) -> int:
    """``"auto"``: the axis of largest voxel spacing (the through-plane axis of an anisotropic
    scan), the last axis when none is larger; else the axis named (0, 1 or 2)."""
    if setting != "auto":
        return int(setting)
    largest = max(spacing)
    if np.isclose(min(spacing), largest, rtol=1e-3):
        return 2
    return int(np.argmax(spacing))


def lesion_mask(label: np.ndarray, lesion_labels: Iterable[int]) -> np.ndarray:
    """Lesion voxels: every label > 0, or only the values ``lesion_labels`` names."""
    wanted = list(lesion_labels)
    return np.isin(label, wanted) if wanted else label > 0


def normalise(image: np.ndarray, rule: str, ct_window: tuple[float, ...] = ()) -> np.ndarray:
    """One volume's intensities, every channel on its own: "zscore" over its nonzero voxels
    (nnU-Net's rule for MRI: the background outside the head stays out of the statistics),
    "ct" clipped to the study's window (lo, hi, mean, sd) then z-scored, or "minmax" to [0, 1]."""
    out = np.empty_like(image, dtype=np.float32)
    for c in range(image.shape[-1]):
        x = image[..., c].astype(np.float64)
        if rule == "zscore":
            inside = x[x != 0] if np.any(x != 0) else x.ravel()
            out[..., c] = (x - inside.mean()) / max(float(inside.std()), 1e-8)
        elif rule == "ct":
            lo, hi, mean, sd = ct_window
            out[..., c] = (np.clip(x, lo, hi) - mean) / max(sd, 1e-8)
        elif rule == "minmax":
            lo, hi = x.min(), x.max()
            out[..., c] = (x - lo) / (hi - lo) if hi > lo else 0.0
        else:
            raise ConfigError(
                f"The 'intensity' parameter for volumes must be one of "
                f"{', '.join(map(repr, VOLUME_INTENSITIES))}. Got {rule!r} instead."
            )
    return out


def fit_plane(
    plane: np.ndarray, image_size: int | None, resize: str, *, nearest: bool
) -> np.ndarray:
    """One (H, W) slice into the model's square (bilinear, or nearest for masks), or as it is
    when ``image_size`` is None (patches); no clipping: normalised intensities are not
    bounded."""
    if image_size is None:
        return plane if nearest else plane.astype(np.float32)
    top, left, h, w = content_box(*plane.shape, image_size, resize)
    out = np.zeros((image_size, image_size), plane.dtype if nearest else np.float32)
    out[top : top + h, left : left + w] = resize_plane(plane, h, w, nearest=nearest)
    return out


def _cut(array: np.ndarray, axis: int) -> np.ndarray:
    """The volume with the slice axis first: (slices, H, W[, C])."""
    return np.moveaxis(array, axis, 0)


@dataclass(frozen=True)
class _Settings:
    image_size: int | None
    intensity: str
    slice_axis: str | int
    lesion_labels: tuple[int, ...]
    resize: str
    ct_window: tuple[float, ...]


def _slices(volume: Volume, s: _Settings, wanted: Collection[str] | None) -> tuple:
    axis = choose_axis(volume.spacing, s.slice_axis)
    image = _cut(normalise(volume.image, s.intensity, s.ct_window), axis)
    label = _cut(lesion_mask(volume.label, s.lesion_labels), axis)
    rows = []
    for k in range(image.shape[0]):
        stem = slice_stem(volume.case, k)
        if wanted is not None and stem not in wanted:
            continue
        x = np.stack(
            [fit_plane(image[k, ..., c], s.image_size, s.resize, nearest=False)
             for c in range(image.shape[-1])], axis=-1,
        )  # fmt: skip
        y = fit_plane(label[k].astype(np.uint8), s.image_size, s.resize, nearest=True)
        rows.append((stem, x, y[..., None], float(label[k].mean())))
    geometry = CaseGeometry(volume.case, axis, tuple(volume.image.shape[:3]), volume.spacing)
    return rows, geometry


def load_volume_dataset(
    data_dir: Path,
    *,
    image_size: int | None,
    intensity: str = "zscore",
    slice_axis: str | int = "auto",
    lesion_labels: Iterable[int] = (),
    resize: str = "stretch",
    ct_window: Iterable[float] = (),
    only: Collection[str] | None = None,
    cases: list[VolumeCase] | None = None,
) -> Dataset:
    """Every slice of every case (or the slice stems ``only`` names) at ``image_size`` (None:
    at its own size, cases of different planes on one canvas)."""
    settings = _Settings(
        image_size, intensity, slice_axis, tuple(lesion_labels), resize, tuple(ct_window)
    )
    cases = find_cases(Path(data_dir)) if cases is None else cases
    allowed = allowed_labels(Path(data_dir))
    if only is not None:
        needed = cases_of(only)
        cases = [c for c in cases if c.case in needed]
        missing = needed - {c.case for c in cases}
        if missing:
            raise DataError(
                f"{data_dir} lacks case {sorted(missing)[0]!r} the study was created with"
            )
    rows, geometry = [], []
    for case in cases:  # one full-resolution volume in memory at a time
        kept, geo = _slices(read_case(case, allowed=allowed), settings, only)
        rows += kept
        geometry.append(geo)
    if not rows:
        raise DataError(f"no slice of {data_dir} was selected")
    stems, images, masks, fractions = zip(*rows, strict=True)
    planes = {g.case: g.plane for g in geometry}
    if not any(fractions):
        raise DataError(f"no lesion voxel in any of the {len(cases)} label volumes of {data_dir}")
    return Dataset(
        stems=tuple(stems),
        images=canvas(images).astype(np.float32),
        masks=canvas(masks).astype(np.uint8),
        original_sizes=tuple(planes[c] for c in case_ids(stems, SLICE_GROUP_PATTERN)),
        lesion_fraction=np.array(fractions),
        manifest_hash=_manifest(cases),
        intensity=intensity,
        channels=images[0].shape[-1],
        resize=resize,
        volumes=tuple(geometry),
    )


def ct_window(
    data_dir: Path, stems: Collection[str], *, per_case: int = 10_000, seed: int = 0
) -> tuple[float, float, float, float]:
    """nnU-Net's CT rule from the training cases (the cases of ``stems``): the 0.5 and 99.5
    percentiles of labelled voxels (lesion and organ: every label > 0), then the mean and sd of
    those voxels clipped to them. Each case gives at most ``per_case`` voxels, drawn seeded, as
    nnU-Net does, so a large case does not outweigh the others."""
    wanted = cases_of(stems)
    rng = np.random.default_rng(seed)
    pooled = []
    for case in find_cases(Path(data_dir)):
        if case.case not in wanted:
            continue
        volume = read_case(case, allowed=allowed_labels(Path(data_dir)))
        voxels = volume.image[..., 0][volume.label > 0]
        pooled.append(rng.choice(voxels, min(per_case, voxels.size), replace=False))
    values = np.concatenate(pooled) if pooled else np.zeros(0)
    if values.size == 0:
        raise DataError(f"no labelled voxel in the training cases of {data_dir}: no CT window")
    lo, hi = np.percentile(values, [0.5, 99.5])
    clipped = np.clip(values, lo, hi)
    return float(lo), float(hi), float(clipped.mean()), max(float(clipped.std()), 1e-8)


def slice_lesions(
    data_dir: Path, *, slice_axis: str | int, lesion_labels: Iterable[int], cases=None
) -> dict[str, bool]:
    """Whether each slice stem holds lesion, reading the label volumes only (for the split)."""
    out: dict[str, bool] = {}
    for case in find_cases(Path(data_dir)) if cases is None else cases:
        volume = read_case(case, allowed=allowed_labels(Path(data_dir)))
        axis = choose_axis(volume.spacing, slice_axis)
        per_slice = _cut(lesion_mask(volume.label, lesion_labels), axis)
        flat = per_slice.reshape(per_slice.shape[0], -1).any(axis=1)
        out.update({slice_stem(case.case, k): bool(v) for k, v in enumerate(flat)})
    return out


def _files(cases: list[VolumeCase]) -> list[Path]:
    return [p for c in cases for p in (*c.images, *([c.label] if c.label else []))]


def volume_digests(cases: list[VolumeCase], root: Path) -> dict[str, str]:
    """sha256 of every file of ``cases``, keyed by its path relative to ``root``'s parent."""
    base = Path(root).absolute().parent
    return {
        os.path.relpath(p.absolute(), base): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in _files(cases)
    }


def _manifest(cases: list[VolumeCase]) -> str:
    digest = hashlib.sha256()
    for path in _files(cases):
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode() + hashlib.sha256(data).digest())
    return digest.hexdigest()
