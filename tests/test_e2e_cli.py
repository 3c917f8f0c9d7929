"""The whole path as a user runs it, in real processes: synth, create, run, status, predict."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from procs import TINY, load, segsweep

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
    "--set",
    "train.eager=false",  # the compiled train step, as users run it
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
    expected = f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs"
    assert url == f"  then open {expected}?workflowType=machine_learning&viewStateShareKey=" + (
        "segsweep-trials"
    )


def browser() -> str:
    """Headless Chromium: Debian's package, which .ci/run installs."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    if os.environ.get("CI"):
        pytest.fail("no Chromium: .ci/run installs Debian's chromium package")
    pytest.skip("no headless Chromium here (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_ui(cwd: Path, command: str, port: int) -> subprocess.Popen:
    """The printed `mlflow ui` command, on ``port``, once it answers."""
    program, *args = shlex.split(command)
    ui = subprocess.Popen(
        [program if os.sep in program else shutil.which(program) or program, *args]
        + ["--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
            return ui
        except OSError:
            assert ui.poll() is None, ui.communicate()[1]
            assert time.monotonic() < deadline, "mlflow ui did not answer"
            time.sleep(0.5)


def rendered_rows(dom: str) -> list[str]:
    """Run names by the grid's row index (its containers each hold a part of every row)."""
    rows: dict[int, str] = {}
    for chunk in dom.split('row-index="')[1:]:
        index, _, cells = chunk.partition('"')
        if name := re.search(r">(trial-\d+)<", cells):
            rows.setdefault(int(index), name.group(1))
    return [rows[i] for i in sorted(rows)]


def test_the_printed_url_opens_the_trials_best_first(finished_study: Path) -> None:
    chromium = browser()
    command, url = (finished_study / "run.out").read_text().splitlines()[-2:]
    port = free_port()
    ui = serve_ui(finished_study, command.removeprefix("browse every trial: "), port)
    try:
        page = url.removeprefix("  then open ").replace(":5000/", f":{port}/")
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,900"]
            + ["--virtual-time-budget=30000", "--dump-dom", page],
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
    finally:
        ui.terminate()
        ui.wait(timeout=60)
    header = r'role="columnheader"[^>]*col-id="metrics\.`best_val_dsc`"'  # the objective's
    assert re.search(header, dom), "no best_val_dsc column"
    trials = sorted(load(finished_study, "tiny").get_trials(), key=lambda t: -t.value)
    assert rendered_rows(dom) == [f"trial-{t.number}" for t in trials]  # flat: no parent row


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


# ---- optuna-dashboard (the ``segsweep[dashboard]`` extra) serves the same study's journal ----

DASHBOARD = Path(sys.executable).with_name("optuna-dashboard")  # the extra's console script


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            get(f"{url}/api/meta")
            return
        except OSError:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, f"optuna-dashboard did not answer at {url}"
            time.sleep(0.5)


def test_optuna_dashboard_serves_the_trials_and_their_user_attrs(finished_study: Path) -> None:
    trials = load(finished_study, "tiny").get_trials()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [str(DASHBOARD), "studies/tiny.journal", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(args, cwd=finished_study, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(url, proc)
        [summary] = get(f"{url}/api/studies")["study_summaries"]
        assert summary["study_name"] == "tiny" and summary["directions"] == ["maximize"]
        detail = get(f"{url}/api/studies/{summary['study_id']}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    served = {t["number"]: t for t in detail["trials"]}
    assert sorted(served) == [t.number for t in trials] == [0, 1]
    for trial in trials:
        attrs = {a["key"]: a["value"] for a in served[trial.number]["user_attrs"]}
        assert attrs["mlflow_run_id"] == trial.user_attrs["mlflow_run_id"]
        assert attrs["worker"] == "w0" and attrs["diagnoses"] == json.dumps(
            trial.user_attrs["diagnoses"]
        )
        assert served[trial.number]["state"] == trial.state.name.capitalize()
    study_attrs = {a["key"] for a in detail["user_attrs"]}
    assert "segsweep.config" in study_attrs
