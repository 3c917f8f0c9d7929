"""One entry to a study's data, whatever its layout: 2D picture pairs or NIfTI volumes.

The layout is detected from what ``data.dir`` holds (:func:`segsweep.data.volumes.detect_layout`);
callers load, group into cases and stratify through here and never ask which it was.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from segsweep.config import OBJECTIVES, Config, DataSettings
from segsweep.data.io import Dataset, find_pairs, load_dataset, read_mask
from segsweep.data.slices import load_volume_dataset, slice_lesions
from segsweep.data.split import SLICE_GROUP_PATTERN, case_ids
from segsweep.data.volumes import is_volume_dir

__all__ = [
    "objective_error",
    "group_pattern_for",
    "load_study_dataset",
    "pool_lesions",
    "study_case_ids",
    "volume_defaults",
]


def load_study_dataset(cfg: Config, *, only: Collection[str] | None = None) -> Dataset:
    """The study's images of ``cfg.data.dir`` (or every volume's slices; those named in
    ``only``), prepared as its settings say: the one place search workers and finalize load
    them from."""
    d = cfg.data
    if is_volume_dir(d.dir):
        return load_volume_dataset(
            Path(d.dir),
            image_size=d.prepared_size,
            intensity=d.intensity,
            slice_axis=d.slice_axis,
            lesion_labels=d.lesion_labels,
            resize=d.resize,
            ct_window=d.ct_window,
            only=only,
        )
    return load_dataset(
        Path(d.dir),
        image_size=d.prepared_size,
        intensity=d.intensity,
        mask_threshold=d.mask_threshold,
        channels=d.channels,
        resize=d.resize,
        only=only,
    )


def group_pattern_for(d: DataSettings) -> str:
    """The slices of a volume are grouped by their case; 2D images by ``data.group_pattern``."""
    return SLICE_GROUP_PATTERN if is_volume_dir(d.dir) else d.group_pattern


def study_case_ids(d: DataSettings, stems: Sequence[str]) -> list[str]:
    """Each stem's case under the study's data: a volume's slices are their volume, 2D images
    their ``data.group_pattern`` group (or themselves)."""
    return case_ids(stems, group_pattern_for(d))


def pool_lesions(d: DataSettings, stems: Sequence[str]) -> np.ndarray:
    """Whether each of ``stems`` (images, or slices of volumes) holds lesion."""
    if is_volume_dir(d.dir):
        lesion = slice_lesions(Path(d.dir), slice_axis=d.slice_axis, lesion_labels=d.lesion_labels)
        return np.array([lesion[s] for s in stems])
    masks = {p.stem: p.mask for p in find_pairs(Path(d.dir))}
    return np.array([read_mask(masks[s], threshold=d.mask_threshold).any() for s in stems])


def volume_defaults(cfg: Config, given: Collection[str]) -> Config:
    """For volume data, the settings the field uses where the user chose none: intensities
    z-scored per volume and the search maximising the per-case Dice."""
    if not is_volume_dir(cfg.data.dir):
        return cfg
    defaults = {"data.intensity": "zscore", "search.objective": "val_case_dsc"}
    return cfg.replace(**{k: v for k, v in defaults.items() if k not in given})



def objective_error(cfg: Config) -> str | None:
    """Why ``search.objective`` cannot score this data, or None: a ``val_case_*`` objective
    stacks a volume's slices into its case, and 2D images have none (every trial would end
    without the value it is ranked by)."""
    objective = cfg.search.objective
    if not objective.startswith("val_case_") or is_volume_dir(cfg.data.dir):
        return None
    allowed = ", ".join(repr(o) for o in OBJECTIVES if not o.startswith("val_case_"))
    return (
        f"The 'search.objective' parameter must be one of {allowed} for 2D images "
        f"({cfg.data.dir} holds no NIfTI volumes). Got {objective!r} instead."
    )
