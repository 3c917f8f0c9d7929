"""NIfTI volumes in each layout: read, sliced, grouped by case, normalised, scored per case.

Every volume here is written by the test with nibabel (tests/volumes.py: 24 x 24 x 8 voxels at
0.8 x 0.8 x 2.5 mm, one ellipsoid lesion of label 1 around a core of label 2).
"""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from medpy.metric.binary import hd95 as medpy_hd95
from volumes import SHAPE, _save, case_arrays, write_decathlon, write_nnunet, write_pairs

from segsweep.cli import main
from segsweep.config import Config
from segsweep.data.assign import assign, fold_of
from segsweep.data.pipeline import epoch_order
from segsweep.data.slices import choose_axis, normalise
from segsweep.data.source import load_study_dataset
from segsweep.data.split import SLICE_GROUP_PATTERN, case_ids
from segsweep.data.volumes import detect_layout
from segsweep.errors import DataError
from segsweep.evaluation.cases import case_index, case_metrics
from segsweep.results.predict_nifti import mask_image


def settings(data_dir, **extra):
    return Config().replace(
        **{"data.dir": str(data_dir), "data.image_size": 16, "data.intensity": "zscore", **extra}
    )


@pytest.mark.parametrize(
    ("write", "layout", "channels"),
    [(write_nnunet, "nnunet", 1), (write_decathlon, "decathlon", 2), (write_pairs, "nifti", 1)],
)
def test_each_layout_reads_into_slices_of_cases(tmp_path, write, layout, channels) -> None:
    root = write(tmp_path / "d")
    assert detect_layout(root) == layout
    ds = load_study_dataset(settings(root))
    assert ds.images.shape == (4 * SHAPE[2], 16, 16, channels)  # 8 axial slices per case
    assert ds.stems[:2] == ("case_000_z000", "case_000_z001")
    assert set(case_ids(ds.stems, SLICE_GROUP_PATTERN)) == {f"case_{i:03d}" for i in range(4)}
    # the lesion spans slices 2..5 of every case (radius 2 around z = 4); the rest hold none
    per_slice = ds.masks.reshape(4, SHAPE[2], -1).max(axis=2)
    assert per_slice[0].tolist() == [0, 0, 0, 1, 1, 1, 0, 0]
    assert ds.volumes[0].spacing == pytest.approx((0.8, 0.8, 2.5))


def test_nnunet_channels_follow_dataset_json_and_imagests_is_the_test_set(tmp_path) -> None:
    root = write_nnunet(tmp_path / "d", n=6, channels=2, test=2)
    ds = load_study_dataset(settings(root))
    assert ds.channels == 2
    # channel c of the files is the image times (1 + c); z-scored, both read alike
    assert np.allclose(ds.images[..., 0], ds.images[..., 1], atol=1e-4)
    a = assign(root, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert set(case_ids(a.test, SLICE_GROUP_PATTERN)) == {"case_006", "case_007"}
    train, val = (set(case_ids(part, SLICE_GROUP_PATTERN)) for part in (a.train, a.val))
    assert train and val and not train & val  # a case never straddles the split
    assert len(a.train) + len(a.val) == 6 * SHAPE[2]


def test_a_test_case_copied_from_training_is_a_leak(tmp_path) -> None:
    """imagesTs holding a training case's scan (renamed) is refused by content; kept and
    recorded with allow_overlap."""
    root = write_nnunet(tmp_path / "d", n=4, test=2)
    copied = root / "imagesTs" / "case_005_0000.nii.gz"
    copied.write_bytes((root / "imagesTr" / "case_001_0000.nii.gz").read_bytes())
    with pytest.raises(DataError, match=r"case_005_0000\.nii\.gz has the same content as .*"
                       r"case_001_0000\.nii\.gz.*--allow-overlap"):  # fmt: skip
        assign(root, val_fraction=0.25, test_fraction=0.0, seed=0)
    a = assign(root, val_fraction=0.25, test_fraction=0.0, seed=0, allow_overlap=True)
    assert len(a.overlaps) == 1 and set(case_ids(a.test, SLICE_GROUP_PATTERN)) == {
        "case_004",
        "case_005",
    }


def test_folds_are_drawn_by_case(tmp_path) -> None:
    stems = [f"p{c}_z{k:03d}" for c in range(5) for k in range(8)]
    lesion = np.array([3 <= k <= 5 for c in range(5) for k in range(8)])
    folds = fold_of(stems, lesion, folds=5, seed=0, group_pattern=SLICE_GROUP_PATTERN)
    for c in range(5):
        assert len({folds[s] for s in stems if s.startswith(f"p{c}_")}) == 1


def test_lesion_labels_picks_which_labels_count(tmp_path) -> None:
    root = write_nnunet(tmp_path / "d", n=2)
    whole = load_study_dataset(settings(root))
    core = load_study_dataset(settings(root, **{"data.lesion_labels": [2]}))
    assert 0 < core.masks.sum() < whole.masks.sum()


def test_slice_axis_auto_is_the_coarsest_axis() -> None:
    assert choose_axis((0.8, 0.8, 2.5), "auto") == 2
    assert choose_axis((3.0, 0.5, 0.5), "auto") == 0
    assert choose_axis((1.0, 1.0, 1.0), "auto") == 2  # isotropic: the last axis
    assert choose_axis((1.0, 1.0, 1.0), "1") == 1


def test_zscore_uses_the_nonzero_voxels_of_each_channel() -> None:
    image, _ = case_arrays(0)
    out = normalise(np.stack([image, 3 * image + 7 * (image != 0)], axis=-1), "zscore")
    for c in range(2):
        inside = out[..., c][image != 0]
        assert inside.mean() == pytest.approx(0, abs=1e-4)
        assert inside.std() == pytest.approx(1, abs=1e-4)


def test_case_metrics_score_each_stacked_volume_in_3d() -> None:
    """A case of 3 slices with a true lesion of 2 x 2 x 2 voxels; the prediction hits half of
    it and adds a component touching it only at a corner across slices (26-connected: one
    component). A second, lesion-free case with nothing predicted scores Dice 1."""
    truth = np.zeros((6, 8, 8), np.uint8)
    truth[0:2, 2:4, 2:4] = 1
    prob = np.zeros((6, 8, 8), np.float32)
    prob[0, 2:4, 2:4] = 0.9
    prob[1, 4, 4] = 0.9  # touches truth voxel (0, 3, 3) only by a corner in 3D
    stems = [f"a_z{k:03d}" for k in range(3)] + [f"b_z{k:03d}" for k in range(3)]
    order = [2, 0, 4, 1, 5, 3]  # the set's rows need not be in slice order
    geometry = [_geometry("a"), _geometry("b")]
    index = case_index([stems[i] for i in order], geometry, image_size=8, resize="stretch")
    scores = case_metrics(truth[order], prob[order], index, threshold=0.5)
    dice_a = 2 * 4 / (8 + 5)
    assert scores["case_dsc"] == pytest.approx((dice_a + 1.0) / 2)
    assert scores["case_lesions_fp"] == 0  # the corner voxel joined the hit component
    assert scores["case_lesion_f1"] == 1.0
    # BraTS 2023 lesion-wise Dice per 3D case, then averaged over cases (slice by slice, the
    # corner voxel would be a false positive and slice 1's lesion missed: 1/3 for case a)
    assert scores["case_lesion_dsc"] == pytest.approx((dice_a + 1.0) / 2)
    spacing = (2.5, 0.8 * 24 / 8, 0.8 * 24 / 8)  # slice, row, column at the model's 8 px
    expected = medpy_hd95(prob[:3] > 0.5, truth[:3] > 0, voxelspacing=spacing)
    assert scores["case_hd95"] == pytest.approx((expected + 0.0) / 2)


def _geometry(case):
    from segsweep.data.slices import CaseGeometry

    return CaseGeometry(case, 2, (24, 24, 3), (0.8, 0.8, 2.5))


def test_batches_hold_the_oversampled_share_of_lesion_slices() -> None:
    has_lesion = np.zeros(100, bool)
    has_lesion[:5] = True
    rng = np.random.default_rng(0)
    order = epoch_order(has_lesion, batch_size=6, share=0.33, rng=rng)
    batches = order.reshape(-1, 6)
    assert len(batches) == math.ceil(100 / 6)
    assert (has_lesion[batches].sum(axis=1) >= 2).all()  # ceil(0.33 * 6) = 2


def test_mask_keeps_the_scans_grid_affine_and_xform_codes(tmp_path) -> None:
    image, _ = case_arrays(0)
    aff = np.array([[0, -0.8, 0, 10], [0.8, 0, 0, -4], [0, 0, 2.5, 7], [0, 0, 0, 1.0]])
    img = nib.Nifti1Image(image, aff)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=4)
    img.header.set_slope_inter(2.0, 5.0)  # a scaled scan: its mask must not be rescaled
    nib.save(img, tmp_path / "scan.nii.gz")
    from segsweep.data.volumes import VolumeCase, read_case

    volume = read_case(VolumeCase("scan", (tmp_path / "scan.nii.gz",), None))
    mask = np.zeros(image.shape, np.uint8)
    mask[3:6, 4:9, 2:4] = 1
    nib.save(mask_image(mask, volume), tmp_path / "mask.nii.gz")
    back = nib.load(tmp_path / "mask.nii.gz")
    assert back.shape == image.shape and np.allclose(back.affine, aff)
    assert (int(back.header["qform_code"]), int(back.header["sform_code"])) == (1, 4)
    assert np.array_equal(np.asarray(back.dataobj), mask)


# ---- bad input: one line naming the file, exit 2, nothing written -------------------------


def _shape_mismatch(root):
    _save(np.zeros((24, 24, 7), np.uint8), root / "labelsTr" / "case_001.nii.gz")
    return "labelsTr/case_001.nii.gz"


def _affine_mismatch(root):
    _, label = case_arrays(1)
    img = nib.Nifti1Image(label, np.diag([0.8, 0.8, 2.5, 1.0]))  # no translation
    nib.save(img, root / "labelsTr" / "case_001.nii.gz")
    return "affine differs"


def _missing_channel(root):
    (root / "imagesTr" / "case_002_0001.nii.gz").unlink()
    return "imagesTr/case_002_0001.nii.gz is missing"


def _label_outside_json(root):
    _, label = case_arrays(1)
    label[0, 0, 0] = 7
    _save(label, root / "labelsTr" / "case_001.nii.gz")
    return "label value(s) [7]"


def _label_4d(root):
    _, label = case_arrays(1)
    _save(label[..., None].repeat(2, axis=3), root / "labelsTr" / "case_001.nii.gz")
    return "a label must be 3D"


def _json_mismatch(root):
    doc = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**doc, "numTraining": 9}))
    return "numTraining 9"


def _zero_image(root):
    _save(np.zeros(SHAPE, np.float32), root / "imagesTr" / "case_003_0000.nii.gz")
    return "imagesTr/case_003_0000.nii.gz is all zeros"


@pytest.mark.parametrize(
    "spoil",
    [_shape_mismatch, _affine_mismatch, _missing_channel, _label_outside_json, _label_4d,
     _json_mismatch, _zero_image],
)  # fmt: skip
def test_bad_volumes_fail_study_create_with_one_line(tmp_path, monkeypatch, spoil) -> None:
    root = write_nnunet(tmp_path / "d", n=4, channels=2)
    fragment = spoil(root)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["study", "create", "v", "--data", str(root)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and fragment in errors[0], result.output
    assert not (tmp_path / "studies").exists()
