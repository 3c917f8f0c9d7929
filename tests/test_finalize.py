"""study finalize end to end in real processes: create with a test set -> run -> finalize ->
status -> predict -> the registered champion loaded and served by MLflow in fresh processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from procs import TINY, segsweep

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finalized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    cwd = tmp_path_factory.mktemp("finalize")
    segsweep(cwd, "data", "synth", "ph", "--n", "20", "--size", "32", "--seed", "1")
    segsweep(cwd, "study", "create", "fin", "--data", "ph", *TINY, "--set", "train.epochs=2")
    segsweep(cwd, "study", "run", "fin", "--trials", "2")
    out = segsweep(cwd, "study", "finalize", "fin", "--top", "2", "--folds", "2", "--json")
    return cwd, json.loads(out.stdout)


def _env(cwd: Path) -> dict:
    """As in a shell with segsweep's virtual environment active (``mlflow models serve`` starts
    ``uvicorn`` from PATH)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", "PATH": path}


def test_finalize_reports_cv_test_and_the_registered_champion(finalized) -> None:
    cwd, doc = finalized
    split = json.loads((cwd / "studies" / "fin.split.json").read_text())
    champ = doc["champion"]
    assert doc["objective"] == "val_dsc" and len(doc["candidates"]) == 2
    assert champ["trial"] in {c["trial"] for c in doc["candidates"]}
    assert len(champ["cv"]["folds"]) == 2 and champ["cv"]["sd"] >= 0
    assert champ["model_uri"] == "models:/fin@champion"
    test = champ["test"]
    assert test["n_images"] == len(split["test"]) >= 2
    assert 0 <= test["ci95"][0] <= test["ci95"][1] <= 1
    assert {"test_dsc", "test_lesion_dsc", "test_lesion_f1", "test_hd95"} <= set(test["metrics"])
    assert isinstance(champ["tta"], bool) and champ["min_component_px"] >= 0
    status = json.loads(segsweep(cwd, "study", "status", "fin", "--json").stdout)
    assert status["champion"] == champ


def test_folds_are_nested_runs_and_a_second_finalize_trains_nothing(finalized) -> None:
    from procs import mlflow_client

    cwd, doc = finalized
    client = mlflow_client(cwd)
    exp = client.get_experiment_by_name("fin")
    runs = client.search_runs([exp.experiment_id], max_results=200)
    parents = [r for r in runs if r.info.run_name.startswith("finalize-")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted((r.data.tags["config"], r.data.tags["fold"]) for r in folds) == sorted(
        (str(c["trial"]), str(f)) for c in doc["candidates"] for f in (0, 1)
    )
    # every search trial logged the split it was scored on
    trial_run = next(r for r in runs if r.info.run_name == "trial-0")
    split = client.download_artifacts(trial_run.info.run_id, "split.json", str(cwd))
    assert json.loads(Path(split).read_text()) == json.loads(
        (cwd / "studies" / "fin.split.json").read_text()
    )
    # the test set was scored once: a second finalize must say so, and --rescore trains nothing
    refused = segsweep(cwd, "study", "finalize", "fin", "--top", "2", "--folds", "2", check=False)
    assert refused.returncode == 2 and "--rescore" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    args = ["study", "finalize", "fin", "--top", "2", "--folds", "2", "--rescore"]
    again = segsweep(cwd, *args)
    assert "fold trainings to run" not in again.stdout and "champion: trial" in again.stdout


def test_predict_study_uses_the_champion_at_original_size(finalized) -> None:
    cwd, _ = finalized
    out = segsweep(cwd, "predict", "study:fin", "ph/images", "masks")
    assert "champion" in out.stdout
    written = sorted((cwd / "masks").glob("*.png"))
    assert len(written) == 20
    assert np.asarray(Image.open(written[0])).shape == (32, 32)


def test_the_champion_loads_with_pyfunc_in_a_fresh_process(finalized) -> None:
    cwd, _ = finalized
    code = (
        "import mlflow, numpy as np\n"
        "m = mlflow.pyfunc.load_model('models:/fin@champion')\n"
        "x = np.random.default_rng(0).random((3, 32, 32, 1)).astype(np.float32)\n"
        "y = m.predict(x)\n"
        "print(y.shape, y.dtype, sorted(set(np.unique(y).tolist()) | {0}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=_env(cwd), text=True, capture_output=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("(3, 32, 32) uint8 [0") and set(line.split("[")[1]) <= set("01, ]")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers_with_masks(finalized) -> None:
    cwd, _ = finalized
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    args = [str(mlflow), "models", "serve", "-m", "models:/fin@champion", "--env-manager",
            "local", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    server = subprocess.Popen(
        args, cwd=cwd, env=_env(cwd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(1)
        body = json.dumps({"inputs": np.zeros((2, 32, 32, 1), np.float32).tolist()}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        masks = np.asarray(answer["predictions"])
        assert masks.shape == (2, 32, 32) and set(np.unique(masks)) <= {0, 1}
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
