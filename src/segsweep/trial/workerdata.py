"""The arrays a worker loads once and every trial it runs reuses.

A study with a stored assignment (:mod:`segsweep.data.assign`) loads its train and validation
images only: the test images are never decoded by a search worker. Older studies split the whole
folder into train and validation as they always did. For cross-validation (``study finalize``),
:func:`fold_data` cuts the same train+validation pool into one fold's training and held-out
images, without loading anything again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segsweep.config import Config
from segsweep.data.assign import Assignment
from segsweep.data.io import Dataset
from segsweep.data.source import group_pattern_for, load_study_dataset, study_case_ids
from segsweep.data.split import split_indices
from segsweep.evaluation.overlay import pick_cases
from segsweep.trial.train import Split

__all__ = ["WorkerData", "fold_data", "load_worker_data"]


@dataclass(frozen=True)
class WorkerData:
    dataset: Dataset
    split: Split
    cases: dict[str, int]  # fixed validation cases drawn in the overlays
    val_stems: tuple[str, ...] = ()  # file stem of each validation image
    train_stems: tuple[str, ...] = ()
    split_doc: dict | None = None  # the study's train/val/test assignment, logged with each trial
    case_of: dict[str, str] | None = None  # each stem's case (its group, or its volume)


def load_worker_data(cfg: Config, assignment: Assignment | None = None) -> WorkerData:
    """The study's train and validation arrays (by ``assignment`` when the study has one)."""
    wanted = None if assignment is None else {*assignment.train, *assignment.val}
    ds = load_study_dataset(cfg, only=wanted)
    if assignment is None:
        has_lesion = ds.masks.reshape(len(ds.masks), -1).max(axis=1) > 0
        train, val = split_indices(
            ds.stems,
            has_lesion,
            val_fraction=cfg.data.val_fraction,
            seed=cfg.search.seed,
            group_pattern=group_pattern_for(cfg.data),
        )
    else:
        index = {stem: i for i, stem in enumerate(ds.stems)}
        train = np.array([index[s] for s in assignment.train], dtype=int)
        val = np.array([index[s] for s in assignment.val], dtype=int)
    case_of = dict(zip(ds.stems, study_case_ids(cfg.data, ds.stems), strict=True))
    val_stems = tuple(ds.stems[i] for i in val)
    native = cfg.data.patch_size > 0  # each image at its own size, on one canvas
    split = Split(
        ds.images[train],
        ds.masks[train],
        ds.images[val],
        ds.masks[val],
        val_cases=tuple(case_of[s] for s in val_stems),
        train_sizes=tuple(ds.original_sizes[i] for i in train) if native else None,
        val_sizes=tuple(ds.original_sizes[i] for i in val) if native else None,
        # patches and volume slices oversample lesion; whole 2D images are drawn uniformly
        lesion_oversample=cfg.data.lesion_oversample if native or ds.volumes else 0.0,
        **_volume_terms(ds, val_stems, native),
    )
    return WorkerData(
        dataset=ds,
        split=split,
        cases=pick_cases(split.val_y),
        val_stems=val_stems,
        train_stems=tuple(ds.stems[i] for i in train),
        split_doc=None if assignment is None else assignment.as_split_json(),
        case_of=case_of,
    )


def fold_data(data: WorkerData, fold_of: dict[str, int], fold: int) -> WorkerData:
    """Fold ``fold`` of the train+validation pool held out, the other folds to train on."""
    x = np.concatenate([data.split.train_x, data.split.val_x])
    y = np.concatenate([data.split.train_y, data.split.val_y])
    stems = (*data.train_stems, *data.val_stems)
    held = np.array([fold_of[s] == fold for s in stems])
    val_stems = tuple(s for s, h in zip(stems, held, strict=True) if h)
    case_of = data.case_of
    native = data.split.val_sizes is not None
    sizes = (*data.split.train_sizes, *data.split.val_sizes) if native else ()
    split = Split(
        x[~held],
        y[~held],
        x[held],
        y[held],
        val_cases=tuple(case_of[s] for s in val_stems) if case_of else None,
        train_sizes=tuple(z for z, h in zip(sizes, held, strict=False) if not h) or None,
        val_sizes=tuple(z for z, h in zip(sizes, held, strict=False) if h) or None,
        lesion_oversample=data.split.lesion_oversample,
        **_volume_terms(data.dataset, val_stems, native),
    )
    return WorkerData(
        dataset=data.dataset,
        split=split,
        cases=pick_cases(split.val_y),
        val_stems=val_stems,
        train_stems=tuple(s for s, h in zip(stems, held, strict=True) if not h),
        split_doc=data.split_doc,
        case_of=data.case_of,
    )


def _volume_terms(ds: Dataset, val_stems: tuple[str, ...], native: bool) -> dict:
    """Volume data: the validation cases, scored as volumes (at the slices' own size when
    ``native``)."""
    if not ds.volumes:
        return {}
    from segsweep.evaluation.cases import case_index

    size = None if native else ds.images.shape[1]
    index = case_index(val_stems, ds.volumes, image_size=size, resize=ds.resize)
    return {"val_volumes": index}
