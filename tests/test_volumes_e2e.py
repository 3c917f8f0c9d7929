"""Real BraTS volumes end to end, in real processes: create -> run -> finalize -> predict study:.

The written masks are checked with numpy and nibabel alone: each has its scan's shape and
affine, and the per-case test Dice finalize reports equals the Dice computed from them.
Skipped where the shared data set (six BraTS 2013 FLAIR volumes, nnU-Net layout) is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from procs import segsweep

BRATS = Path(__file__).resolve().parents[2] / "shared" / "data" / "brats13_flair_6"
if not BRATS.is_dir():
    BRATS = Path("/work/shared/data/brats13_flair_6")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BRATS.is_dir(), reason="shared BraTS volumes not present"),
]

SMALL = [
    *("--set", "data.image_size=32", "--set", "train.batch_size=16"),
    *("--set", "space.base_filters=[4]", "--set", "space.depth=[2]"),
    *("--set", "train.epochs=1", "--set", 'search.pruner="none"'),
    *("--set", "tracking.overlay_every=100", "--set", "augment.rotation=0"),
]


def test_brats_volumes_from_create_to_nifti_masks(tmp_path) -> None:
    segsweep(tmp_path, "study", "create", "brats", "--data", str(BRATS), *SMALL)
    segsweep(tmp_path, "study", "run", "brats", "--trials", "1")
    out = segsweep(tmp_path, "study", "finalize", "brats", "--top", "1", "--folds", "2", "--json")
    doc = json.loads(out.stdout)
    assert doc["objective"] == "val_case_dsc"
    test = doc["champion"]["test"]
    split = json.loads((tmp_path / "studies" / "brats.split.json").read_text())
    test_cases = sorted({s.rsplit("_z", 1)[0] for s in split["test"]})
    assert test["n_images"] == len(test_cases) >= 1

    segsweep(tmp_path, "predict", "study:brats", str(BRATS / "imagesTr"), "masks")
    written = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert written == sorted(p.name for p in (BRATS / "labelsTr").iterdir())
    dice = []
    for name in written:
        mask = nib.load(tmp_path / "masks" / name)
        scan = nib.load(BRATS / "imagesTr" / name.replace(".nii.gz", "_0000.nii.gz"))
        assert mask.shape == scan.shape
        assert np.allclose(mask.affine, scan.affine, atol=1e-6)
        assert mask.get_data_dtype() == np.uint8
        pred = np.asarray(mask.dataobj)
        assert set(np.unique(pred).tolist()) <= {0, 1}
        if name.removesuffix(".nii.gz") in test_cases:
            truth = np.asarray(nib.load(BRATS / "labelsTr" / name).dataobj) > 0
            both = truth.sum() + pred.sum()
            dice.append(2 * np.logical_and(truth, pred > 0).sum() / both if both else 1.0)
    assert len(dice) == len(test_cases)
    assert test["metrics"]["test_case_dsc"] == pytest.approx(np.mean(dice), abs=1e-9)
