"""The train/val/test assignment: made once, stored, kept away from the search workers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from procs import TINY, segsweep

from segsweep.config import Config
from segsweep.data import io as data_io
from segsweep.data.assign import Assignment, assign, changed_files, fold_of
from segsweep.data.synth import synthesize
from segsweep.trial.workerdata import fold_data, load_worker_data


@pytest.fixture
def phantoms(tmp_path):
    folder = tmp_path / "ph"
    synthesize(folder, n=30, size=32, seed=2)
    return folder


def test_every_image_lands_once_and_the_test_share_is_held_out(phantoms):
    a = assign(phantoms, val_fraction=0.2, test_fraction=0.2, seed=0)
    every = [*a.train, *a.val, *a.test]
    assert sorted(every) == sorted(p.stem for p in data_io.find_pairs(phantoms))
    assert len(set(every)) == 30 and len(a.test) == 6 and len(a.val) == 6
    assert Assignment.from_json(a.to_json()) == a
    same = assign(phantoms, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert same.test == a.test  # seeded
    assert not assign(phantoms, val_fraction=0.2, test_fraction=0.0, seed=0).test


def test_groups_stay_on_one_side(tmp_path, make_data_dir):
    rng = np.random.default_rng(0)
    images, masks = {}, {}
    for patient in range(10):
        for s in range(3):
            name = f"p{patient:02d}_s{s}.png"
            images[name] = rng.integers(0, 255, (16, 16), dtype=np.uint8)
            mask = np.zeros((16, 16), np.uint8)
            mask[2:6, 2:6] = 255 * (patient % 2)
            masks[name] = mask
    root = make_data_dir(images, masks)
    a = assign(root, val_fraction=0.2, test_fraction=0.3, seed=1, group_pattern=r"^(p\d+)_")
    side = {}
    for name, stems in (("train", a.train), ("val", a.val), ("test", a.test)):
        for stem in stems:
            side.setdefault(stem.split("_")[0], set()).add(name)
    assert all(len(sides) == 1 for sides in side.values())
    pool = [*a.train, *a.val]
    has_lesion = np.array([int(s[1:3]) % 2 == 1 for s in pool])
    folds = fold_of(pool, has_lesion, folds=3, seed=0, group_pattern=r"^(p\d+)_")
    by_group = {}
    for stem, k in folds.items():
        by_group.setdefault(stem.split("_")[0], set()).add(k)
    assert all(len(ks) == 1 for ks in by_group.values()) and set(folds.values()) == {0, 1, 2}


def test_search_workers_never_decode_a_test_image(phantoms, monkeypatch):
    a = assign(phantoms, val_fraction=0.2, test_fraction=0.2, seed=0)
    read = []
    original = data_io.read_image
    monkeypatch.setattr(data_io, "read_image", lambda p: read.append(p.stem) or original(p))
    cfg = Config().replace(**{"data.dir": str(phantoms), "data.image_size": 32})
    data = load_worker_data(cfg, a)
    assert sorted(read) == sorted([*a.train, *a.val])  # every image read is train or val
    assert not set(read) & set(a.test)
    assert data.val_stems == a.val and data.train_stems == a.train
    fd = fold_data(data, {s: i % 2 for i, s in enumerate([*a.train, *a.val])}, 1)
    assert len(fd.split.val_x) + len(fd.split.train_x) == len(a.train) + len(a.val)


def test_changed_files_names_what_was_added_removed_or_edited(phantoms):
    a = assign(phantoms, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert changed_files(a, phantoms) == []
    (phantoms / "masks" / "case_0003.png").write_bytes(
        (phantoms / "masks" / "case_0004.png").read_bytes()
    )
    (phantoms / "images" / "case_0005.png").unlink()
    (phantoms / "masks" / "case_0005.png").unlink()
    assert changed_files(a, phantoms) == [
        "ph/images/case_0005.png (removed)",
        "ph/masks/case_0003.png (edited)",
        "ph/masks/case_0005.png (removed)",
    ]


@pytest.mark.slow
def test_study_run_stops_when_the_data_changed_after_create(tmp_path):
    segsweep(tmp_path, "data", "synth", "ph", "--n", "12", "--size", "32", "--seed", "4")
    out = segsweep(tmp_path, "study", "create", "ch", "--data", "ph", *TINY).stdout
    split = json.loads((tmp_path / "studies" / "ch.split.json").read_text())
    counts = [len(split[k]) for k in ("train", "val", "test")]
    assert f"split: {counts[0]} train, {counts[1]} val, {counts[2]} test" in out
    assert sum(counts) == 12 and counts[2] >= 2
    extra = tmp_path / "ph" / "images" / "case_0000.png"
    extra.write_bytes(extra.read_bytes() + b"\0")
    run = segsweep(tmp_path, "study", "run", "ch", "--trials", "1", check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        "Error: the data of study 'ch' changed since study create: ph/images/case_0000.png "
        "(edited); restore the files, or create a new study for the new data"
    ]


def test_a_study_made_before_the_test_set_cross_validates_all_its_images(phantoms):
    from segsweep.finalize._cv import pool_stems
    from segsweep.finalize._report import render

    cfg = Config().replace(**{"data.dir": str(phantoms)})
    assert len(pool_stems(cfg, None)) == 30
    a = assign(phantoms, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert sorted(pool_stems(cfg, a)) == sorted([*a.train, *a.val])
    champion = {
        "trial": 3, "why": "trial 3 has the highest CV mean val_dsc", "search_value": 0.8,
        "cv": {"mean": 0.7, "sd": 0.05}, "cv_final": {"mean": 0.71, "sd": 0.05}, "tta": False,
        "tta_cv_mean": 0.69, "min_component_px": 0, "postprocessing_cv_means": {"0": 0.7},
        "test": None, "model_uri": "models:/old@champion", "model_version": 1,
    }  # fmt: skip
    doc = {"study": "old", "objective": "val_dsc", "champion": champion, "candidates": []}
    text = render(doc)
    assert "no test set: data.test_fraction = 0, or the study was created before" in text
    assert "search value 0.8000 -> CV 0.7100 ± 0.0500" in text
