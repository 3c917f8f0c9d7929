"""Real BraTS volumes end to end, in real processes: create -> run -> finalize -> predict study:.

One study on the shared set (six BraTS 2013 FLAIR volumes, nnU-Net layout) at the smallest
settings that still go the whole way: 32 px, 4 filters, depth 2, 1 epoch, 2 trials, 2 folds
(about 100 s on the 2-core development machine, most of it four TensorFlow start-ups; the
steps run eagerly, since tracing a graph for one epoch costs more than it saves).
The written masks are then checked with numpy and nibabel alone, independently of segsweep's
code: each has its scan's shape and affine, and the per-case test Dice finalize reports equals
the Dice computed from them. Skipped where the shared set is absent.
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

# --no-plan: the study is sized here by hand (the plan would size it for a 30-minute trial)
SMALL = [
    "--no-plan",
    *("--set", "data.image_size=32", "--set", "train.batch_size=32"),
    *("--set", "space.base_filters=[4]", "--set", "space.depth=[2]"),
    *("--set", "train.epochs=1", "--set", 'search.pruner="none"'),
    *("--set", "tracking.overlay_every=100", "--set", "tracking.log_model=false"),
    *("--set", "augment.rotation=0", "--set", "space.deep_supervision=[false]"),
    *("--set", "train.eager=true"),  # a 1-epoch trial: tracing the step costs more than it
]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    """The finalize document, the test cases, and the folder of masks `predict study:` wrote
    for the test cases' scans (linked into a folder of nnU-Net channel files)."""
    work = tmp_path_factory.mktemp("brats")
    segsweep(work, "study", "create", "brats", "--data", str(BRATS), *SMALL)
    # two workers: the two trials, then the two folds, train side by side on the two cores
    segsweep(work, "study", "run", "brats", "--trials", "2", "--workers", "2")
    out = segsweep(
        work, "study", "finalize", "brats", "--top", "1", "--folds", "2", "--workers", "2",
        "--json",
    )  # fmt: skip
    split = json.loads((work / "studies" / "brats.split.json").read_text())
    cases = sorted({s.rsplit("_z", 1)[0] for s in split["test"]})
    scans = work / "scans"
    scans.mkdir()
    for case in cases:
        (scans / f"{case}_0000.nii.gz").symlink_to(BRATS / "imagesTr" / f"{case}_0000.nii.gz")
    segsweep(work, "predict", "study:brats", str(scans), "masks")
    return {"doc": json.loads(out.stdout), "cases": cases, "masks": work / "masks"}


def test_volumes_default_to_the_case_dice_and_the_test_cases_are_whole(study) -> None:
    assert study["doc"]["objective"] == "val_case_dsc"
    test = study["doc"]["champion"]["test"]
    assert test["n_cases"] == len(study["cases"]) >= 1
    assert test["n_images"] == 155 * len(study["cases"])  # every axial slice of each case


def test_every_mask_lies_on_its_scan(study) -> None:
    written = sorted(p.name for p in study["masks"].iterdir())
    assert written == [f"{case}.nii.gz" for case in study["cases"]]
    for name in written:
        mask = nib.load(study["masks"] / name)
        scan = nib.load(BRATS / "imagesTr" / name.replace(".nii.gz", "_0000.nii.gz"))
        assert mask.shape == scan.shape
        assert np.allclose(mask.affine, scan.affine, atol=1e-6)
        assert mask.get_data_dtype() == np.uint8
        assert set(np.unique(np.asarray(mask.dataobj)).tolist()) <= {0, 1}


def test_the_reported_test_dice_is_the_dice_of_the_written_masks(study) -> None:
    dice = []
    for case in study["cases"]:
        pred = np.asarray(nib.load(study["masks"] / f"{case}.nii.gz").dataobj) > 0
        truth = np.asarray(nib.load(BRATS / "labelsTr" / f"{case}.nii.gz").dataobj) > 0
        both = truth.sum() + pred.sum()
        dice.append(2 * np.logical_and(truth, pred).sum() / both if both else 1.0)
    reported = study["doc"]["champion"]["test"]["metrics"]["test_case_dsc"]
    assert reported == pytest.approx(np.mean(dice), abs=1e-9)
