"""Seeded, stratified and grouped training/validation splits."""

from __future__ import annotations

import re

import numpy as np
import pytest

from segsweep.data.split import groups_from_stems, split_indices
from segsweep.errors import ConfigError, DataError


def _stems(n: int) -> list[str]:
    return [f"img{i:03d}" for i in range(n)]


def _lesions(n_with: int, n_without: int) -> np.ndarray:
    return np.array([True] * n_with + [False] * n_without)


def _check_partition(train: np.ndarray, val: np.ndarray, n: int) -> None:
    assert len(train) and len(val)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(n))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)


def test_split_is_stratified_by_lesion_presence():
    has_lesion = _lesions(40, 10)
    train, val = split_indices(_stems(50), has_lesion, val_fraction=0.2, seed=0)
    _check_partition(train, val, 50)
    assert (len(val), has_lesion[val].sum()) == (10, 8)


def test_split_is_seeded():
    has_lesion = _lesions(30, 10)
    first = split_indices(_stems(40), has_lesion, val_fraction=0.25, seed=5)
    again = split_indices(_stems(40), has_lesion, val_fraction=0.25, seed=5)
    other = split_indices(_stems(40), has_lesion, val_fraction=0.25, seed=6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize(
    ("n_with", "n_without", "fraction"),
    [(1, 1, 0.2), (2, 1, 0.5), (1, 1, 0.9), (5, 0, 0.2), (0, 5, 0.2), (3, 1, 0.01), (3, 1, 0.99)],
)
def test_tiny_sets_keep_both_sides_non_empty(n_with, n_without, fraction):
    n = n_with + n_without
    train, val = split_indices(
        _stems(n), _lesions(n_with, n_without), val_fraction=fraction, seed=0
    )
    _check_partition(train, val, n)


def test_one_image_cannot_be_split():
    with pytest.raises(DataError, match="needs at least 2 images; found 1"):
        split_indices(["a"], np.array([True]), val_fraction=0.2, seed=0)


@pytest.mark.parametrize("value", [0, 1, 0.0, 1.0, -0.1, 1.5, True, "0.2"])
def test_val_fraction_must_lie_in_open_unit_interval(value):
    message = f"The 'val_fraction' parameter must be a number in (0, 1). Got {value!r} instead."
    with pytest.raises(ConfigError, match=re.escape(message)):
        split_indices(_stems(10), _lesions(5, 5), val_fraction=value, seed=0)


def _patient_stems(n_patients: int, per_patient: int) -> list[str]:
    return [f"patient{p:02d}_slice{s}" for p in range(n_patients) for s in range(per_patient)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.75])
def test_grouped_split_keeps_each_group_on_one_side(seed, fraction):
    stems = _patient_stems(20, 4)
    has_lesion = np.array([p % 4 != 0 for p in range(20) for _ in range(4)])  # 5 lesion-free
    train, val = split_indices(
        stems, has_lesion, val_fraction=fraction, seed=seed, group_pattern=r"^(patient\d+)_"
    )
    _check_partition(train, val, len(stems))
    groups = np.array(groups_from_stems(stems, r"^(patient\d+)_"))
    assert not set(groups[train]) & set(groups[val])
    assert abs(len(val) / len(stems) - fraction) <= 0.1
    assert has_lesion[val].any() and (~has_lesion[val]).any()


def test_grouped_split_is_seeded():
    stems = _patient_stems(12, 3)
    has_lesion = np.ones(len(stems), bool)
    has_lesion[::5] = False
    runs = [
        split_indices(stems, has_lesion, val_fraction=0.25, seed=s, group_pattern=r"patient\d+")
        for s in (4, 4, 9)
    ]
    assert np.array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][1], runs[2][1])


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"^(patient\d+)_", ["patient01", "patient01", "patient22"]),
        (r"patient\d", ["patient0", "patient0", "patient2"]),
        (r"_(s)lice|^(x)", ["s", "s", "s"]),
    ],
)
def test_group_is_first_capture_group_else_whole_match(pattern, expected):
    stems = ["patient01_slice1", "patient01_slice2", "patient22_slice1"]
    assert groups_from_stems(stems, pattern) == expected


def test_stem_without_group_is_named():
    stems = ["patient01_a", "scan7", "patient02_a"]
    with pytest.raises(
        DataError, match=r"file stem 'scan7' does not match group_pattern 'patient\\\\d\+'"
    ):
        split_indices(stems, _lesions(2, 1), val_fraction=0.3, seed=0, group_pattern=r"patient\d+")


def test_bad_regex_is_a_config_error():
    with pytest.raises(
        ConfigError, match=r"'group_pattern' parameter must be a regular expression\. Got '\(a'"
    ):
        split_indices(_stems(4), _lesions(2, 2), val_fraction=0.5, seed=0, group_pattern="(a")


def test_one_group_cannot_be_split():
    with pytest.raises(DataError, match=r"all 4 images fall into one group \('img'\)"):
        split_indices(_stems(4), _lesions(2, 2), val_fraction=0.5, seed=0, group_pattern="img")
