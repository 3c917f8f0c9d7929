"""A data.test_dir that shares a patient or an image with the training data is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from procs import TINY, segsweep

from segsweep.data.assign import Assignment, assign
from segsweep.errors import DataError

PATTERN = r"^(patient\d+)_"


@pytest.fixture
def leaky(make_data_dir):
    """patient00..03 with 3 slices each for training; a test folder with patient03_s9 (a
    training patient's slice), patient09_s0 (a byte-identical copy of patient01_s1's image)
    and patient10_s0 (clean)."""
    rng = np.random.default_rng(0)
    images, masks = {}, {}
    for patient in range(4):
        for s in range(3):
            name = f"patient{patient:02d}_s{s}.png"
            images[name] = rng.integers(0, 255, (16, 16), dtype=np.uint8)
            masks[name] = np.zeros((16, 16), np.uint8)
            masks[name][4:9, 4:9] = 255 * (s % 2)
    train = make_data_dir(images, masks)
    test = {
        "patient03_s9.png": rng.integers(0, 255, (16, 16), dtype=np.uint8),
        "patient09_s0.png": (train / "images" / "patient01_s1.png").read_bytes(),
        "patient10_s0.png": rng.integers(0, 255, (16, 16), dtype=np.uint8),
    }
    test_masks = {k: masks["patient00_s1.png"] for k in test}
    return train, make_data_dir(test, test_masks, name="test")


def _assign(train, test, **kw):
    return assign(train, val_fraction=0.3, test_fraction=0.0, test_dir=str(test), seed=0, **kw)


def test_a_shared_patient_and_a_copied_image_are_refused_naming_both_files(leaky):
    train, test = leaky
    with pytest.raises(DataError) as err:
        _assign(train, test, group_pattern=PATTERN)
    line = str(err.value)
    assert "patient03_s9.png" in line and "patient03_s" in line.split("as training file")[1]
    assert "(and 1 more)" in line and "--allow-overlap" in line and "\n" not in line
    # without a pattern the copy alone is caught, by content
    with pytest.raises(
        DataError, match=r"patient09_s0\.png has the same content as .*patient01_s1"
    ):
        _assign(train, test)


def test_allow_overlap_keeps_the_test_set_and_records_what_overlaps(leaky):
    train, test = leaky
    a = _assign(train, test, group_pattern=PATTERN, allow_overlap=True)
    assert len(a.test) == 3 and len(a.overlaps) == 2
    assert Assignment.from_json(a.to_json()).overlaps == a.overlaps


def test_study_create_refuses_a_leaky_test_folder_and_writes_nothing(tmp_path, leaky):
    train, test = leaky
    args = ["study", "create", "leak", "--data", str(train), *TINY]
    sets = ["--set", f'data.test_dir="{test}"', "--set", f"data.group_pattern='{PATTERN}'"]
    proc = segsweep(tmp_path, *args, *sets, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "patient03_s9.png" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "studies").exists() or not any((tmp_path / "studies").iterdir())
    segsweep(tmp_path, *args, *sets, "--allow-overlap")
    split = json.loads((tmp_path / "studies" / "leak.split.json").read_text())
    assert sorted(split["test"]) == ["patient03_s9", "patient09_s0", "patient10_s0"]
