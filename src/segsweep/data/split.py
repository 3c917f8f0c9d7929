"""Seeded training/validation split, stratified by lesion presence and optionally grouped.

Grouping keeps related images (slices of one patient, crops of one slide) on one side: a regular
expression picks the group out of each stem, e.g. ``r"^(patient\\d+)_"`` puts ``patient07_s1`` and
``patient07_s2`` together.

Stratification is best effort: scikit-learn needs at least two images of each kind (with and
without lesion) and room for both kinds on each side; when that fails the split is a plain
seeded shuffle (or group shuffle) instead.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import numpy as np

from segsweep.errors import ConfigError, DataError

__all__ = ["SLICE_GROUP_PATTERN", "case_ids", "groups_from_stems", "split_indices"]

# A volume's slice is named CASE_z042 (its index along the slice axis): this pattern is the
# group_pattern of volume data, so that its slices group by case like a patient's 2D images.
SLICE_GROUP_PATTERN = r"^(.+)_z\d{3,}$"


def groups_from_stems(stems: Sequence[str], pattern: str) -> list[str]:
    """The group of each stem: the first capture group of ``re.search``, else the whole match."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"The 'group_pattern' parameter must be a regular expression. Got {pattern!r} "
            f"instead ({exc})."
        ) from exc
    groups = []
    for stem in stems:
        found = regex.search(stem)
        group = found and (found.group(1) if regex.groups else found.group(0))
        if not group:
            raise DataError(f"file stem {stem!r} does not match group_pattern {pattern!r}")
        groups.append(group)
    return groups


def case_ids(stems: Sequence[str], group_pattern: str = "") -> list[str]:
    """Each image's case, the unit of every statistic over a set: its group under
    ``group_pattern`` (a patient's slices are one case; a volume's slices under
    :data:`SLICE_GROUP_PATTERN`: ``brats_001_z042`` -> ``brats_001``), else the image itself."""
    return groups_from_stems(stems, group_pattern) if group_pattern else list(stems)


def _val_count(n: int, val_fraction: float) -> int:
    """At least one image on each side."""
    if n < 2:
        raise DataError(f"a validation split needs at least 2 images; found {n}")
    return min(max(1, round(val_fraction * n)), n - 1)


def _plain(has_lesion: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    # scikit-learn takes seconds to import; only a run that splits should pay for it
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    n = len(has_lesion)
    n_val = _val_count(n, val_fraction)
    counts = np.bincount(has_lesion.astype(int), minlength=2)
    kinds = int((counts > 0).sum())
    can_stratify = kinds == 2 and counts.min() >= 2 and min(n_val, n - n_val) >= kinds
    splitter = StratifiedShuffleSplit if can_stratify else ShuffleSplit
    cv = splitter(n_splits=1, test_size=n_val, random_state=seed)
    return next(cv.split(np.zeros(n), has_lesion))


def _grouped(
    has_lesion: np.ndarray, groups: list[str], val_fraction: float, seed: int, pattern: str
) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    n_groups = len(set(groups))
    if n_groups < 2:
        raise DataError(
            f"all {len(groups)} images fall into one group ({groups[0]!r}) under group_pattern "
            f"{pattern!r}; a grouped split needs at least 2 groups"
        )
    # one of k folds is the validation side; for fractions above 1/2 the other k-1 folds are
    small_side = min(val_fraction, 1 - val_fraction)
    k = min(max(2, round(1 / small_side)), n_groups)
    x = np.zeros(len(groups))
    if len(np.unique(has_lesion)) == 2:
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        cv = GroupShuffleSplit(n_splits=1, test_size=1 / k, random_state=seed)
    with warnings.catch_warnings():  # too few of one kind for k folds: stratify what we can
        warnings.simplefilter("ignore", UserWarning)
        # the greedy fold assignment may leave a fold empty: keep the usable ones. Its shuffle
        # only reorders groups whose lesion shares tie, so with a few cases every seed made the
        # same folds (6 BraTS volumes: one split for all seeds); the seed also picks the fold
        usable = [(t, v) for t, v in cv.split(x, has_lesion, groups) if len(t) and len(v)]
        train, val = usable[seed % len(usable)]
    return (val, train) if val_fraction > 0.5 else (train, val)


def split_indices(
    stems: Sequence[str],
    has_lesion: np.ndarray,
    *,
    val_fraction: float,
    seed: int,
    group_pattern: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..N-1`` into sorted (train, validation) index arrays.

    The split is stratified by ``has_lesion`` and fixed by ``seed``. With ``group_pattern``, each
    group lands wholly on one side, and the validation share is approximate (whole groups).
    Both sides always hold at least one image.
    """
    valid = isinstance(val_fraction, int | float) and not isinstance(val_fraction, bool)
    if not valid or not 0 < val_fraction < 1:
        raise ConfigError(
            "The 'val_fraction' parameter must be a number in (0, 1). "
            f"Got {val_fraction!r} instead."
        )
    has_lesion = np.asarray(has_lesion, dtype=bool)
    if has_lesion.shape != (len(stems),):
        raise ValueError(f"has_lesion has shape {has_lesion.shape}; expected ({len(stems)},)")
    if group_pattern:
        groups = groups_from_stems(stems, group_pattern)
        train, val = _grouped(has_lesion, groups, val_fraction, seed, group_pattern)
    else:
        train, val = _plain(has_lesion, val_fraction, seed)
    return np.sort(train), np.sort(val)
