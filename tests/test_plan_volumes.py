"""Planning NIfTI volumes: the fingerprint of volumes written here (anisotropic spacing, tiny and
large lesions, MRI and CT channel names), the 2D rules fed with their slices, and the shared
BraTS set when it is there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from volumes import write_arrays

from segsweep.config import Config
from segsweep.plan import Budget, Device, Thresholds, make_plan, volume_fingerprint
from segsweep.plan.geometry import resize_rule

BRATS = Path(__file__).resolve().parents[2] / "shared" / "data" / "brats13_flair_6"
CPU = Device("CPU", 16_000, gpu=False)


def case(shape, boxes, *, lesion_value=500.0, channels=1):
    """(image, label): background 100 inside a centred box, each lesion box (a tuple of
    slices) labelled 1 and set to ``lesion_value`` in every channel (channel c scaled by c+1)."""
    image = np.zeros(shape, np.float32)
    image[tuple(slice(n // 8, n - n // 8) for n in shape)] = 100.0
    label = np.zeros(shape, np.uint8)
    for box in boxes:
        label[box] = 1
        image[box] = lesion_value
    stacked = np.stack([image * (c + 1) for c in range(channels)], axis=-1)
    return stacked, label


def config(root: Path, **settings) -> Config:
    return Config().replace(**{"data.dir": str(root), **settings})


@pytest.fixture
def anisotropic(tmp_path: Path) -> Path:
    """Two 40 x 40 x 8 volumes of 1 x 1 x 5 mm (40 mm cubes): a 10 x 6 x 2 voxel lesion in
    slices 3-4 of each, and a one-voxel speck in the first."""
    lesion = (slice(10, 20), slice(12, 18), slice(3, 5))
    speck = (slice(30, 31), slice(30, 31), slice(6, 7))
    cases = {"a": case((40, 40, 8), [lesion, speck]), "b": case((40, 40, 8), [lesion])}
    return write_arrays(tmp_path / "aniso", cases, spacing=(1.0, 1.0, 5.0), names=("T2",))


def test_the_fingerprint_reads_each_case_its_slices_and_its_3d_lesions(anisotropic) -> None:
    fp = volume_fingerprint(anisotropic, min_voxels=10)
    v = fp.volumes
    assert v.cases == ("a", "b") and v.shapes.tolist() == [[40, 40, 8]] * 2
    assert v.spacings.tolist() == [[1, 1, 5]] * 2
    assert v.axes.tolist() == [2, 2]  # the 5 mm axis: slices keep the 1 x 1 mm plane
    assert fp.n_images == 16 and fp.shapes.tolist() == [[40, 40]] * 16
    assert v.slice_stems()[:2] == ["a_z000", "a_z001"] and v.slice_stems()[8] == "b_z000"
    assert fp.lesion_free_share == 11 / 16  # lesion in slices 3 and 4, the speck in a's 6
    # every 3D lesion is counted; the one-voxel speck is left out of the size rules
    assert sorted(v.lesion_voxels.tolist()) == [1, 120, 120] and v.specks == 1
    assert fp.lesion_extents.tolist() == [[10, 6], [10, 6]]
    assert fp.lesion_areas.tolist() == [60, 60]  # the largest in-plane section
    assert sorted(v.lesion_mm3().tolist()) == [5, 600, 600]
    [channel] = fp.channels
    # sampled from the labelled voxels, as nnU-Net: the lesion, not the background
    assert channel.name == "T2" and channel.mean == 500 and channel.sd == 0
    summary = fp.summary()
    assert summary["volumes"]["slice_spacing_mm"] == [5.0]
    assert summary["lesion_smallest_extent_mm"]["median"] == 6.0


def test_anisotropic_slices_are_stretched_to_square_pixels(anisotropic: Path) -> None:
    """Cut along a 1 mm axis, a slice is 40 x 8 px of 1 x 5 mm: square in mm. Stretching it
    keeps the lesion's 2 px (10 mm) side at 32 / 8 x 2 = 8 px; padding would leave 1.6 px."""
    fp = volume_fingerprint(anisotropic, slice_axis="0", min_voxels=10)
    assert fp.shapes[0].tolist() == [40, 8] and fp.lesion_extents.tolist() == [[6, 2]] * 2
    resize = resize_rule(fp, Thresholds())
    assert resize.value == "stretch" and "spacing 1 x 5" in resize.reason
    cfg = config(anisotropic, **{"data.slice_axis": "0", "data.test_fraction": 0.0})
    plan = make_plan(fp, cfg, Budget(8000, 40, 1800, CPU))
    size = plan.decisions["data.image_size"]
    assert size.value == 32, size.reason
    assert "4.8 px across" in size.reason  # 6 px of 40 -> 4.8 at 32: the smaller side now
    assert "voxel axis 0 (1 mm apart), 1 x 5 mm pixels in-plane, 1.2 x 1.2 mm at 32 px" in (
        size.reason
    )
    assert "1 of 3 3D lesions under 10 voxels are label specks" in size.reason
    assert "6 mm across in-plane" in size.reason


def lesions_of(size: int, count: int, width: int):
    """``count`` width x width x 2 voxel boxes spread over a size x size plane."""
    step = size // (count + 1)
    return [
        (slice(step * (i + 1), step * (i + 1) + width),) * 2 + (slice(1, 3),) for i in range(count)
    ]


@pytest.mark.parametrize("width, patched", [(3, True), (40, False)])
def test_tiny_lesions_keep_native_resolution_large_ones_let_it_shrink(tmp_path, width, patched):
    """128 x 128 slices and a budget that fits 64 px: 3 px lesions would shrink to 1.5 px, so
    the plan takes 64 px patches at native resolution; 40 px lesions shrink to 20 px, fine."""
    cases = {c: case((128, 128, 4), lesions_of(128, 1 if width == 40 else 4, width)) for c in "abc"}
    root = write_arrays(tmp_path / "v", cases, spacing=(1.0, 1.0, 3.0))
    fp = volume_fingerprint(root)
    # without batch norm the sizes are costed at a batch of 2, which this budget was set for
    settings = {"train.epochs": 1, "data.test_fraction": 0.0, "space.batch_norm": [False]}
    plan = make_plan(fp, config(root, **settings), Budget(8000, 40, 8, CPU))
    size, patch = plan.decisions["data.image_size"], plan.decisions["data.patch_size"]
    assert size.value == 64, size.reason
    if patched:
        assert patch.value == 64 and "1.5 px across (under 4)" in patch.reason
    else:
        assert patch.value == 0 and "stays 20.0 px across" in size.reason


@pytest.mark.parametrize(
    "names, rule, fragment",
    [
        (("CT",), "ct", "names CT channels ('CT')"),
        (("T1", "FLAIR"), "zscore", "names MRI channels ('T1', 'FLAIR')"),
        (("mod0",), "zscore", "neither CT nor MRI; volumes"),
    ],
)
def test_channel_names_choose_the_intensity_rule(tmp_path, names, rule, fragment) -> None:
    """CT -> nnU-Net's clipped CT rule, MRI -> z-score, unnamed volumes -> z-score (never
    "dtype", which means nothing for scanner values)."""
    box = (slice(4, 12), slice(4, 12), slice(2, 4))
    cases = {c: case((24, 24, 6), [box], channels=len(names)) for c in "abcd"}
    root = write_arrays(tmp_path / "v", cases, names=names)
    fp = volume_fingerprint(root)
    assert [c.name for c in fp.channels] == list(names) and fp.channels_used == len(names)
    assert [c.mean for c in fp.channels] == [500.0 * (i + 1) for i in range(len(names))]
    plan = make_plan(fp, config(root), Budget(8000, 40, 1800, CPU))
    intensity = plan.decisions["data.intensity"]
    assert intensity.value == rule and fragment in intensity.reason


def test_the_batch_is_capped_at_5_percent_of_the_slices_the_study_trains_on(tmp_path) -> None:
    """On a roomy GPU the cap binds: 5 % of the training slices of the split study create
    makes (whole cases), not of all slices."""
    from segsweep.data.assign import assign

    box = (slice(4, 12), slice(4, 12), slice(10, 30))
    cases = {f"c{i}": case((16, 16, 40), [box] if i % 3 else []) for i in range(6)}
    root = write_arrays(tmp_path / "v", cases)
    fp = volume_fingerprint(root)
    gpu = Device("Fake H200", 140_000, gpu=True)
    # without batch norm in the space: with it, batch norm's least batch (8) outweighs the cap
    cfg = config(root, **{"space.batch_norm": [False]})
    plan = make_plan(fp, cfg, Budget(100_000, 1e6, 1e5, gpu))
    train = assign(root, val_fraction=0.2, test_fraction=0.2, seed=0).train
    batch = plan.decisions["train.batch_size"]
    assert batch.value == int(0.05 * len(train)) > 2, batch.reason
    assert f"5% of the ~{len(train)} training slices" in batch.reason
    assert f"~{len(train)} training slices" in plan.decisions["train.steps_per_epoch"].reason


@pytest.mark.skipif(not BRATS.is_dir(), reason=f"{BRATS} absent")
def test_the_brats_set_fingerprint() -> None:
    # its speed is measured, not asserted: README's planning section gives the wall times
    fp = volume_fingerprint(BRATS, min_voxels=10)
    v = fp.volumes
    assert len(v.cases) == 6 and fp.n_images == 930 and set(v.axes.tolist()) == {2}
    assert fp.shapes[0].tolist() == [240, 240] and v.spacings.tolist() == [[1, 1, 1]] * 6
    assert len(v.lesion_voxels) == 19 and v.specks == 11 and len(fp.lesion_extents) == 8
    assert fp.channels[0].name == "FLAIR" and 0.5 < fp.lesion_free_share < 0.55


def one_error_line(*args: object) -> str:
    from click.testing import CliRunner

    from segsweep.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    [line] = [x for x in result.output.splitlines() if x.startswith("Error:")]
    return line


def test_a_volume_folder_without_volumes_is_one_line(tmp_path: Path) -> None:
    root = write_arrays(tmp_path / "v", {})
    (root / "imagesTr").mkdir()  # an nnU-Net folder whose volumes are not there (yet)
    (root / "labelsTr").mkdir()
    line = one_error_line("plan", "--data", root)
    assert str(root) in line and "no case with a label" in line


def test_an_unreadable_volume_is_named_in_one_line(tmp_path: Path, monkeypatch) -> None:
    box = (slice(4, 12), slice(4, 12), slice(2, 4))
    root = write_arrays(tmp_path / "v", {c: case((24, 24, 6), [box]) for c in "abc"})
    (root / "imagesTr" / "b_0000.nii.gz").write_bytes(b"not a NIfTI file")
    line = one_error_line("plan", "--data", root)
    assert "imagesTr/b_0000.nii.gz cannot be read as NIfTI" in line
    monkeypatch.chdir(tmp_path)
    line = one_error_line("study", "create", "s", "--data", root)
    assert "imagesTr/b_0000.nii.gz" in line and "nothing was written" in line
    assert not (tmp_path / "studies" / "s.toml").exists()
