"""The whole path as a user runs it, in real processes: synth, create, run, status, predict."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from procs import TINY, segsweep

pytestmark = pytest.mark.slow

# The e2e study logs every overlay and the model, which the process tests leave out.
E2E = [
    *TINY,
    "--set",
    "train.epochs=2",
    "--set",
    "tracking.overlay_every=1",
    "--set",
    "tracking.log_model=true",
]


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("e2e")
    segsweep(cwd, "data", "synth", "ph", "--n", "20", "--size", "48", "--seed", "1")
    segsweep(cwd, "study", "create", "tiny", "--data", "ph", *E2E)
    run = segsweep(cwd, "study", "run", "--trials", "2", "--workers", "1")
    assert "best: trial" in run.stdout
    (cwd / "run.out").write_text(run.stdout)
    return cwd


def test_status_json_counts_both_trials(finished_study: Path) -> None:
    status = json.loads(segsweep(finished_study, "study", "status", "--json").stdout)
    assert status["study"] == "tiny"
    assert sum(status["states"][s] for s in ("COMPLETE", "PRUNED", "FAIL")) == 2
    assert status["states"]["RUNNING"] == 0
    assert status["best"]["mlflow_run_id"]
    assert 0.0 <= status["best"]["value"] <= 1.0
    assert status["default"]["number"] == 0  # search.default_first: the default runs first
    text = segsweep(finished_study, "study", "status").stdout
    assert "(the default configuration)" in text or "default configuration: trial 0" in text


def test_the_first_trial_is_the_default_configuration(finished_study: Path) -> None:
    from procs import load

    first, second = load(finished_study, "tiny").get_trials()
    assert first.user_attrs["default"] is True and "default" not in second.user_attrs
    assert first.params["loss"] == "dice_ce" and first.params["batch_norm"] is True
    assert first.params["lr"] == 1e-3 and first.params["schedule"] == "poly"


def test_every_trial_is_an_mlflow_child_run_with_the_loss_split(finished_study: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{finished_study / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted(
        (r for r in runs if "mlflow.parentRunId" in r.data.tags), key=lambda r: r.info.run_name
    )
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert [r.info.run_name for r in children] == ["trial-0", "trial-1"]
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags.get("default") == ("true" if run.info.run_name == "trial-0" else None)
        history = {
            k: [m.value for m in client.get_metric_history(run.info.run_id, k)]
            for k in ("loss", "loss_data", "loss_l2", "val_dsc", "val_pred_fg", "lr")
        }
        assert all(len(v) == 2 for v in history.values()), history
        for total, data, l2 in zip(
            history["loss"], history["loss_data"], history["loss_l2"], strict=True
        ):
            assert total == pytest.approx(data + l2, rel=1e-4, abs=1e-6)
        assert "data.manifest_hash" in run.data.params and "seed" in run.data.params
        assert run.data.params["train.onednn_used"] in ("True", "False")  # what TF ran
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"overlays", "study.toml"} <= artifacts
        overlays = {a.path for a in client.list_artifacts(run.info.run_id, "overlays")}
        assert "overlays/epoch_final.png" in overlays and "overlays/epoch_001.png" in overlays


def test_run_ends_with_the_ui_command_and_the_model_training_url(finished_study: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{finished_study / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    command, url = (finished_study / "run.out").read_text().splitlines()[-2:]
    assert command.startswith("browse every trial: ")
    program, *args = shlex.split(command.removeprefix("browse every trial: "))
    assert args == ["ui"]  # the default store: mlflow.db where the user stands
    found = shutil.which(program, path=os.environ["PATH"]) or str(finished_study / program)
    assert Path(found).name == "mlflow" and os.access(found, os.X_OK), program
    expected = f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}"
    assert url == f"  then open {expected}?workflowType=machine_learning"


def test_predict_writes_full_size_binary_masks(finished_study: Path, tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    for i, size in enumerate([(48, 48), (40, 56)]):
        Image.fromarray(np.full(size, 60 + 40 * i, np.uint8)).save(images / f"im{i}.png")
    out = tmp_path / "out"
    segsweep(finished_study, "predict", "study:tiny", str(images), str(out))
    written = sorted(out.iterdir())
    assert [p.name for p in written] == ["im0.png", "im1.png"]
    for path, size in zip(written, [(48, 48), (40, 56)], strict=True):
        mask = np.asarray(Image.open(path))
        assert mask.shape == size and set(np.unique(mask)) <= {0, 255}


def test_predict_by_run_id_matches_predict_by_study(finished_study: Path, tmp_path: Path) -> None:
    status = json.loads(segsweep(finished_study, "study", "status", "--json").stdout)
    images = finished_study / "ph" / "images"
    segsweep(finished_study, "predict", "study:tiny", str(images), str(tmp_path / "a"))
    segsweep(
        finished_study, "predict", status["best"]["mlflow_run_id"], str(images), str(tmp_path / "b")
    )
    for a in sorted((tmp_path / "a").iterdir()):
        assert np.array_equal(
            np.asarray(Image.open(a)), np.asarray(Image.open(tmp_path / "b" / a.name))
        )
