"""``segsweep plan`` on real files, and plan -> study create -> study run in real processes."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from procs import load, segsweep

from segsweep.cli import main
from segsweep.plan import fingerprint


@pytest.fixture
def mri(make_data_dir) -> Path:
    """Two 64 x 48 uint16 images named T2 by dataset.json: one with a 3 x 5 lesion and a
    diagonal one (4 px, 8-connected: 4 x 4), one lesion-free."""
    rng = np.random.default_rng(0)
    images = {f"{s}.png": rng.integers(100, 900, (64, 48), dtype=np.uint16) for s in "ab"}
    lesions = np.zeros((64, 48), np.uint8)
    lesions[10:13, 20:25] = 255
    lesions[[40, 41, 42, 43], [5, 6, 7, 8]] = 255
    root = make_data_dir(images, {"a.png": lesions, "b.png": np.zeros((64, 48), np.uint8)})
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T2"}}))
    return root


def test_the_fingerprint_reads_every_lesion_and_channel(mri: Path) -> None:
    found = fingerprint(mri)
    assert found.shapes.tolist() == [[64, 48], [64, 48]]
    assert sorted(found.lesion_extents.tolist()) == [[3, 5], [4, 4]]
    assert sorted(found.lesion_areas.tolist()) == [4, 15]
    assert found.lesion_free_share == 0.5 and found.dtype == "uint16" and not found.colour
    [channel] = found.channels
    assert channel.name == "T2" and 100 <= channel.low < channel.high < 900
    assert channel.mean == pytest.approx(500, abs=20)


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_plan_json_prints_the_fingerprint_and_each_value_with_its_reason(mri: Path) -> None:
    result = run("plan", "--data", mri, "--json", "--set", "train.epochs=5")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["fingerprint"]["images"] == 2 and out["fingerprint"]["lesions"] == 2
    plan = out["plan"]
    assert plan["data.image_size"]["value"] == 64 and plan["data.image_size"]["source"] == "plan"
    assert (
        plan["data.intensity"]["value"] == "zscore" and "'T2'" in plan["data.intensity"]["reason"]
    )
    assert plan["train.steps_per_epoch"]["value"] >= 50
    assert all(entry["reason"] for entry in plan.values())
    text = run("plan", "--data", mri, "--set", "data.image_size=32").output
    assert "data.image_size = 32 (yours)" in text and "the plan: 64" in text


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--data", "no_such_dir"], ["no_such_dir", "not found"]),
        (["--set", "train.epoch=3"], ["'train.epoch'", "Did you mean 'train.epochs'?"]),
        (["--set", "plan.trial_minutes=0"], ["'plan.trial_minutes'", "(0, 1000000]"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(mri: Path, args, fragments) -> None:
    result = run("plan", *(["--data", mri] if "--data" not in args else []), *args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    [line] = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert all(f in line for f in fragments), line


def test_a_broken_dataset_json_is_named(mri: Path) -> None:
    (mri / "dataset.json").write_text("{channel_names")
    result = run("plan", "--data", mri)
    assert result.exit_code == 2 and "dataset.json" in result.output.splitlines()[-1]


@pytest.mark.slow
def test_plan_then_create_then_run(tmp_path: Path) -> None:
    segsweep(tmp_path, "data", "synth", "ph", "--n", "16", "--size", "32", "--seed", "2")
    sets = ["--set", "train.epochs=1", "--set", "plan.trial_minutes=0.02"]
    planned = json.loads(segsweep(tmp_path, "plan", "--data", "ph", "--json", *sets).stdout)
    plan = planned["plan"]
    create = segsweep(
        tmp_path,
        "study",
        "create",
        "p",
        "--data",
        "ph",
        *sets,
        *("--set", 'search.pruner="none"', "--set", "tracking.log_model=false"),
        *("--set", "tracking.overlay_every=100"),
    )
    assert "planned from the data" in create.stdout
    toml = (tmp_path / "studies" / "p.toml").read_text()
    settings = tomllib.loads(toml)
    # 32 px phantoms in 0.02 min: patches at native resolution, so image_size is not used
    assert plan["data.patch_size"]["value"] == 16
    assert planned["not_settings_yet"] == ["data.image_size"]
    keys = ("data.patch_size", "train.steps_per_epoch", "train.batch_size", "space.depth")
    for key in keys:
        section, name = key.split(".")
        value = plan[key]["value"]
        assert settings[section][name] == value, key
        reason = re.escape(f"# planned: {plan[key]['reason']}")
        assert re.search(rf"{reason}\n{name} = ", toml), key  # the reason right above it
    assert re.search(r"# yours: set with --set\nepochs = 1\n", toml)
    segsweep(tmp_path, "study", "run", "p", "--trials", "1")
    [trial] = load(tmp_path, "p").trials
    assert trial.state.name == "COMPLETE", trial.user_attrs.get("reason")


def test_create_plans_a_new_study_unless_told_not_to(tmp_path: Path, monkeypatch) -> None:
    from segsweep.config import Config, load_config
    from segsweep.data.synth import synthesize

    synthesize(tmp_path / "ph", n=12, size=48, seed=0)
    monkeypatch.chdir(tmp_path)
    result = run("study", "create", "a", "--data", "ph", "--set", "train.batch_size=3")
    assert result.exit_code == 0, result.output
    toml = (tmp_path / "studies" / "a.toml").read_text()
    planned = load_config(tmp_path / "studies" / "a.toml")
    assert planned.data.image_size == 48 and planned.train.steps_per_epoch >= 50
    assert toml.count("# planned: ") >= 8
    assert re.search(r"# yours: set with --set \(the plan: 8, as .*\)\nbatch_size = 3\n", toml)
    result = run("study", "create", "b", "--data", "ph", "--no-plan")
    assert result.exit_code == 0, result.output
    plain = load_config(tmp_path / "studies" / "b.toml")
    assert plain.replace(**{"study.name": "a"}) == Config().replace(
        **{"study.name": "a", "data.dir": "ph"}
    )
    assert "# planned" not in (tmp_path / "studies" / "b.toml").read_text()


def test_on_a_gpu_the_batch_is_measured_once_and_cached(tmp_path: Path, monkeypatch) -> None:
    import segsweep.plan.device
    from segsweep.config import Config
    from segsweep.data.synth import synthesize
    from segsweep.plan import Device, plan_study

    synthesize(tmp_path / "ph", n=200, size=32, seed=0)
    tried: list[int] = []

    def fake_try_batch(cfg, *, size, depth, filters, channels):
        assert (size, channels) == (32, 1) and filters >= 8

        def try_batch(n: int) -> float:
            tried.append(n)
            if n > 4:
                raise MemoryError(f"{n} images of {size} px")
            return 0.001 * n

        return try_batch

    monkeypatch.setattr(segsweep.plan.device, "keras_try_batch", fake_try_batch)
    cfg = Config().replace(**{"data.dir": str(tmp_path / "ph")})
    gpu, cache = Device("Fake H200", 140_000, gpu=True), tmp_path / "studies" / "ladder.json"
    first = plan_study(cfg, cache=cache, device=gpu)
    batch = first.decisions["train.batch_size"]
    # rungs from 2 to the cap of 8 (batch norm's least, over 5 % of the 120 training images)
    assert tried == [2, 4, 8] and batch.value == 4
    assert batch.reason.startswith("measured on Fake H200: 4 fits, 8 ran out of memory")
    assert batch.reason.endswith("under 8, batch norm will be noisy")  # batch norm is searched
    # the measured 0.004 s a step sets the training length: nnU-Net's 250 fit the budget
    assert first.decisions["train.steps_per_epoch"].value == 250
    again = plan_study(cfg, cache=cache, device=gpu)
    assert tried == [2, 4, 8] and again.decisions["train.batch_size"].value == 4
    assert "Fake H200" in cache.read_text()


def test_volume_studies_are_planned_unless_told_not_to(tmp_path: Path, monkeypatch) -> None:
    """`plan` and `study create` plan volumes from their slices (issue 20), with the reasons in
    the TOML and --set winning; --no-plan keeps issue 17's volume defaults."""
    from volumes import write_nnunet

    from segsweep.config import load_config

    root = write_nnunet(tmp_path / "d", n=4)
    monkeypatch.chdir(tmp_path)
    text = run("plan", "--data", root)
    assert text.exit_code == 0, text.output
    assert "4 cases (nnunet layout), 24x24x8 voxels of 0.8x0.8x2.5 mm" in text.output
    assert "32 along voxel axis 2, 24x24 px, 0.8x0.8 mm pixels, 2.5 mm apart" in text.output
    assert "search.objective = val_case_dsc (not planned)" in text.output
    result = run("study", "create", "v", "--data", root, "--set", "data.image_size=16")
    assert result.exit_code == 0, result.output
    assert "planned from the data" in result.output
    toml = (tmp_path / "studies" / "v.toml").read_text()
    assert re.search(r"# yours: set with --set \(the plan: 32, as .*\)\nimage_size = 16\n", toml)
    assert re.search(r"# planned: .*training slices.*\nsteps_per_epoch = \d+\n", toml)
    assert re.search(r"# planned: .*are each z-scored over their.*\nintensity = \"zscore\"\n", toml)
    assert re.search(
        r"# planned: 62% of the slices hold no lesion.*\nlesion_oversample = 0.33", toml
    )
    cfg = load_config(tmp_path / "studies" / "v.toml")
    assert cfg.search.objective == "val_case_dsc" and cfg.train.steps_per_epoch >= 50
    result = run("study", "create", "w", "--data", root, "--no-plan")
    assert result.exit_code == 0, result.output
    assert "# planned" not in (tmp_path / "studies" / "w.toml").read_text()
    cfg = load_config(tmp_path / "studies" / "w.toml")
    assert cfg.data.intensity == "zscore" and cfg.train.steps_per_epoch == 0
    assert cfg.search.objective == "val_case_dsc" and cfg.data.image_size == 128


def test_on_pictures_a_volume_intensity_is_named_but_not_set(mri: Path, tmp_path, monkeypatch):
    """MRI channel names plan "zscore", which 2D pictures cannot load with: the settings keep
    "dtype" and no lesion oversampling (2D batches are uniform), as the plan says."""
    from segsweep.config import load_config

    monkeypatch.chdir(tmp_path)
    left_out = json.loads(run("plan", "--data", mri, "--json").output)["not_settings_yet"]
    assert {"data.intensity", "data.lesion_oversample"} <= set(left_out)
    result = run("study", "create", "m", "--data", mri, "--set", "data.test_fraction=0")
    assert result.exit_code == 0, result.output
    cfg = load_config(tmp_path / "studies" / "m.toml")
    assert cfg.data.intensity == "dtype" and cfg.train.steps_per_epoch >= 50
