"""Which image is train, validation or test: decided once at ``study create``, kept with the study.

The test set is drawn first (``data.test_fraction`` of all images, stratified by lesion presence
and grouped by ``data.group_pattern``), or is a separate folder (``data.test_dir``); validation
is then ``data.val_fraction`` of all images from the rest. The assignment is saved in the Optuna
storage, so every host reads the same one, and beside the settings as ``NAME.split.json``.
Search workers load the train and validation images only; the test set is decoded once, by
``study finalize``.

Each file's sha256 is recorded too: a data folder that changed after ``study create`` (files
added, removed or edited) would silently change what the study's numbers mean, so
:func:`changed_files` names them and ``study run`` stops.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segsweep.data.io import Pair, find_pairs, read_mask
from segsweep.data.leaks import find_leaks, find_volume_leaks, leak_error
from segsweep.data.slices import slice_lesions, volume_digests
from segsweep.data.split import SLICE_GROUP_PATTERN, case_ids, split_indices
from segsweep.data.volumes import find_cases, is_volume_dir, test_cases
from segsweep.errors import ConfigError, DataError

__all__ = [
    "Assignment",
    "assign",
    "changed_files",
    "file_digests",
    "fold_of",
    "split_stems",
    "volume_test_cases",
]


@dataclass(frozen=True)
class Assignment:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    test_dir: str = ""  # "" = the test images are in data.dir
    digests: dict[str, str] = field(default_factory=dict)  # file path -> sha256
    overlaps: tuple[str, ...] = ()  # test files sharing a case or image, kept by --allow-overlap

    def as_split_json(self) -> dict[str, list[str]]:
        return {"train": list(self.train), "val": list(self.val), "test": list(self.test)}

    def to_json(self) -> str:
        extra = {"overlaps": list(self.overlaps)} if self.overlaps else {}
        return json.dumps(
            {**self.as_split_json(), "test_dir": self.test_dir, "digests": self.digests, **extra}
        )

    @classmethod
    def from_json(cls, text: str) -> Assignment:
        doc = json.loads(text)
        return cls(
            train=tuple(doc["train"]),
            val=tuple(doc["val"]),
            test=tuple(doc["test"]),
            test_dir=doc.get("test_dir", ""),
            digests=dict(doc.get("digests", {})),
            overlaps=tuple(doc.get("overlaps", ())),
        )


def _has_lesion(pairs: list[Pair], threshold: float) -> np.ndarray:
    return np.array([read_mask(p.mask, threshold=threshold).any() for p in pairs])


def file_digests(pairs: list[Pair], root: Path) -> dict[str, str]:
    """sha256 of every image and mask, keyed by its path relative to ``root``'s parent folder."""
    base = Path(root).absolute().parent
    return {  # not resolved: an image may be a link to a file anywhere
        os.path.relpath(path.absolute(), base): hashlib.sha256(path.read_bytes()).hexdigest()
        for pair in pairs
        for path in (pair.image, pair.mask)
    }


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"data.val_fraction + data.test_fraction must leave images to train on (sum < 1). "
            f"Got {val_fraction:g} + {test_fraction:g} instead."
        )


@dataclass(frozen=True)
class _Pool:
    """What can be assigned: the stems with lesion presence, the separate test set's stems and
    what it shares with the pool, and every file's digest."""

    stems: list[str]
    has_lesion: np.ndarray
    test: list[str]
    overlaps: list[str]
    digests: dict[str, str]


def assign(
    data_dir: Path,
    *,
    val_fraction: float,
    test_fraction: float,
    test_dir: str = "",
    seed: int,
    group_pattern: str = "",
    mask_threshold: float = 0.0,
    allow_overlap: bool = False,
    slice_axis: str = "auto",
    lesion_labels: tuple[int, ...] = (),
) -> Assignment:
    """Assign every pair of ``data_dir`` (and of ``test_dir``) to train, val or test.

    Volume data are assigned slice by slice, grouped by case: a case's slices stay together.
    A ``test_dir`` (or nnU-Net's ``imagesTs``) sharing a case or an image with ``data_dir`` is
    refused unless ``allow_overlap``; then the overlaps are recorded in the assignment."""
    if is_volume_dir(data_dir):
        pool = _volume_pool(Path(data_dir), test_dir, slice_axis, tuple(lesion_labels))
        group_pattern = SLICE_GROUP_PATTERN
    else:
        pool = _image_pool(Path(data_dir), test_dir, mask_threshold, group_pattern)
    if pool.overlaps and not allow_overlap:
        raise leak_error(pool.overlaps)
    train, val, test = split_stems(
        pool.stems,
        pool.has_lesion,
        test=pool.test,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        group_pattern=group_pattern,
        where=str(data_dir),
    )
    return Assignment(
        train=train,
        val=val,
        test=test,
        test_dir=str(test_dir),
        digests=pool.digests,
        overlaps=tuple(pool.overlaps),
    )


def split_stems(
    stems: list[str],
    has_lesion: np.ndarray,
    *,
    test: list[str],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    group_pattern: str,
    where: str,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(train, val, test) stems: ``test`` when a separate test set is given, else
    ``test_fraction`` of ``stems`` drawn first; then ``val_fraction`` of all from the rest. A
    pure function of its arguments, so the planner counts the training slices a study will
    have without reading the files again."""
    rest = np.arange(len(stems))
    if not test and test_fraction > 0:
        _check_fractions(val_fraction, test_fraction)
        rest, test_idx = split_indices(
            stems, has_lesion, val_fraction=test_fraction, seed=seed, group_pattern=group_pattern
        )
        test = [stems[i] for i in test_idx]
        val_fraction = val_fraction / (1 - test_fraction)
    if len(rest) < 2:
        raise DataError(f"after the test set, {len(rest)} image is left in {where}; need 2+")
    train_idx, val_idx = split_indices(
        [stems[i] for i in rest],
        has_lesion[rest],
        val_fraction=val_fraction,
        seed=seed,
        group_pattern=group_pattern,
    )
    return (
        tuple(stems[rest[i]] for i in train_idx),
        tuple(stems[rest[i]] for i in val_idx),
        tuple(test),
    )


def _image_pool(data_dir: Path, test_dir: str, threshold: float, group_pattern: str) -> _Pool:
    pairs = find_pairs(data_dir)
    pool = _Pool(
        stems=[p.stem for p in pairs],
        has_lesion=_has_lesion(pairs, threshold),
        test=[],
        overlaps=[],
        digests=file_digests(pairs, data_dir),
    )
    if test_dir:
        test_pairs = find_pairs(Path(test_dir))
        pool.test.extend(p.stem for p in test_pairs)
        pool.overlaps.extend(find_leaks(pairs, test_pairs, group_pattern))
        pool.digests.update(
            {f"test:{k}": v for k, v in file_digests(test_pairs, Path(test_dir)).items()}
        )
    return pool


def volume_test_cases(data_dir: Path, test_dir: str) -> list:
    """A volume study's test cases: ``test_dir``'s, else nnU-Net's imagesTs/ + labelsTs/."""
    return find_cases(Path(test_dir)) if test_dir else test_cases(data_dir)


def _volume_pool(data_dir: Path, test_dir: str, axis: str, labels: tuple) -> _Pool:
    """Slice stems with lesion presence, the test slices, and every file's digest."""
    cases = find_cases(data_dir)
    lesion = slice_lesions(data_dir, slice_axis=axis, lesion_labels=labels, cases=cases)
    stems = sorted(lesion)
    pool = _Pool(
        stems=stems,
        has_lesion=np.array([lesion[s] for s in stems]),
        test=[],
        overlaps=[],
        digests=volume_digests(cases, data_dir),
    )
    if held := volume_test_cases(data_dir, test_dir):
        root = Path(test_dir) if test_dir else data_dir
        pool.test.extend(
            sorted(slice_lesions(root, slice_axis=axis, lesion_labels=labels, cases=held))
        )
        pool.overlaps.extend(find_volume_leaks(cases, held))
        pool.digests.update({f"test:{k}": v for k, v in volume_digests(held, root).items()})
    return pool


def changed_files(assignment: Assignment, data_dir: Path) -> list[str]:
    """Files added, removed or edited in ``data_dir`` (and the test folder) since assignment."""
    if is_volume_dir(data_dir):
        now = volume_digests(find_cases(Path(data_dir)), Path(data_dir))
        held = volume_test_cases(Path(data_dir), assignment.test_dir)
        root = Path(assignment.test_dir or data_dir)
        now |= {f"test:{k}": v for k, v in volume_digests(held, root).items()}
        return _compare(now, assignment.digests)
    now = file_digests(find_pairs(Path(data_dir)), Path(data_dir))
    if assignment.test_dir:
        test_pairs = find_pairs(Path(assignment.test_dir))
        now |= {
            f"test:{k}": v for k, v in file_digests(test_pairs, Path(assignment.test_dir)).items()
        }
    return _compare(now, assignment.digests)


def _compare(now: dict[str, str], before: dict[str, str]) -> list[str]:
    return sorted(
        [f"{k} (added)" for k in now.keys() - before.keys()]
        + [f"{k} (removed)" for k in before.keys() - now.keys()]
        + [f"{k} (edited)" for k in now.keys() & before.keys() if now[k] != before[k]]
    )


def fold_of(
    stems: list[str], has_lesion: np.ndarray, *, folds: int, seed: int, group_pattern: str = ""
) -> dict[str, int]:
    """Each stem's cross-validation fold in ``0..folds-1``: stratified by lesion presence,
    grouped by ``group_pattern`` (scikit-learn's ``StratifiedGroupKFold``)."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = case_ids(stems, group_pattern)
    if len(set(groups)) < folds:
        raise DataError(
            f"{folds}-fold cross-validation needs at least {folds} groups; found "
            f"{len(set(groups))} among {len(stems)} images"
        )
    # stratify by lesion presence only when each kind can fill every fold
    kinds = np.bincount(np.asarray(has_lesion, dtype=int), minlength=2)
    y = has_lesion if kinds.min() >= folds else np.zeros(len(stems), dtype=int)
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    out: dict[str, int] = {}
    with warnings.catch_warnings():  # too few of one kind for k folds: stratify what we can
        warnings.simplefilter("ignore", UserWarning)
        for k, (_, held) in enumerate(cv.split(np.zeros(len(stems)), y, groups)):
            out.update({stems[i]: k for i in held})
    empty = sorted(set(range(folds)) - set(out.values()))
    if empty:
        raise DataError(
            f"{folds}-fold cross-validation left fold {empty[0]} empty ({len(stems)} images in "
            f"{len(set(groups))} groups); use fewer --folds"
        )
    return out
