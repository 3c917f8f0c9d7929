"""One trial per Keras backend, end to end in real processes on the CPU, and its model loaded on
the other backends.

Each backend is tested where its package is installed in this interpreter's environment (the
processes are started with it); CI installs TensorFlow and JAX. The settings make the collapse
diagnosis fire at its earliest epoch on every backend: at a threshold of 0.9999 the tiny network
never predicts a lesion pixel while its loss falls.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from procs import TINY, load, make_study, mlflow_client, segsweep

from segsweep.evaluation.diagnose import diagnose

pytestmark = pytest.mark.slow

BACKENDS = ("tensorflow", "jax", "torch")
EPOCHS = 5
COLLAPSING = [
    *TINY,
    *("--set", f"train.epochs={EPOCHS}", "--set", "train.threshold=0.9999"),
    *("--set", "search.prune_collapsed=false", "--set", "tracking.log_model=true"),
    *("--set", 'space.loss=["weighted_dice"]', "--set", "space.lr=[0.002]"),
    *("--set", "space.dropout=[0.0]", "--set", "space.batch_norm=[false]"),
    *("--set", "space.deep_supervision=[false]", "--set", 'space.schedule=["constant"]'),
    *("--set", "space.l2=[1e-5]"),
    *("--set", "train.eager=false"),  # each backend's compiled train step, as users run it
]

# A saved model's predictions under another backend, in its own process (Keras picks the backend
# when it is imported).
PREDICT = """
import sys, numpy as np, keras
net = keras.saving.load_model(sys.argv[1], compile=False)
np.save(sys.argv[3], np.asarray(net.predict(np.load(sys.argv[2]), verbose=0)))
"""
PYFUNC = """
import sys, numpy as np, mlflow
model = mlflow.pyfunc.load_model(f"runs:/{sys.argv[1]}/model")
np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[2]))))
"""


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="module", autouse=True)
def no_exported_backend() -> Iterator[None]:
    """Every process here runs the backend its study names, not one the shell exported."""
    exported = os.environ.pop("KERAS_BACKEND", None)
    yield
    if exported is not None:
        os.environ["KERAS_BACKEND"] = exported


@pytest.fixture(scope="module", params=BACKENDS)
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    if not installed(name):
        pytest.skip(f"{name} is not installed in this environment")
    cwd = tmp_path_factory.mktemp(name)
    make_study(cwd, "b", *COLLAPSING, "--set", f'train.backend="{name}"')
    segsweep(cwd, "study", "run", "--trials", "1")
    trial = load(cwd, "b").trials[0]
    return name, cwd, trial


def test_the_trial_trains_on_its_backend_with_the_loss_split_and_metrics(trained) -> None:
    name, cwd, trial = trained
    assert trial.state.name == "COMPLETE", trial.user_attrs.get("reason")
    client = mlflow_client(cwd)
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.params["train.backend_used"] == name
    onednn = ("True", "False") if name == "tensorflow" else ("False",)  # TensorFlow's alone
    assert run.data.params["train.onednn_used"] in onednn
    keys = ("loss", "loss_data", "loss_l2", "val_dsc", "val_pred_fg", "val_true_fg", "lr")
    h = {k: [m.value for m in client.get_metric_history(run.info.run_id, k)] for k in keys}
    assert all(len(v) == EPOCHS for v in h.values()), h
    np.testing.assert_allclose(np.add(h["loss_data"], h["loss_l2"]), h["loss"], rtol=1e-4)
    assert min(h["loss_l2"]) > 0 and all(0 <= v <= 1 for v in h["val_dsc"])
    assert h["val_pred_fg"] == [0.0] * EPOCHS and min(h["val_true_fg"]) > 0


def test_the_collapse_diagnosis_fires_at_its_earliest_epoch(trained) -> None:
    name, cwd, trial = trained
    assert "collapsed" in trial.user_attrs["diagnoses"]
    client = mlflow_client(cwd)
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.tags["diagnosis.collapsed"] == "true"
    keys = ("loss_data", "loss_l2", "val_dsc", "val_pred_fg", "val_true_fg")
    h = {k: [m.value for m in client.get_metric_history(run.info.run_id, k)] for k in keys}
    assert [(d.code, d.epoch) for d in diagnose(h) if d.code == "collapsed"] == [("collapsed", 5)]


def test_predict_writes_a_mask_per_image(trained, tmp_path: Path) -> None:
    name, cwd, _ = trained
    out = tmp_path / "masks"
    segsweep(cwd, "predict", "study:b", "ph/images", str(out), env={"KERAS_BACKEND": name})
    assert len(list(out.glob("*.png"))) == len(list((cwd / "ph" / "images").iterdir()))


def _saved_model(cwd: Path, run_id: str) -> Path:
    from segsweep.store.tracking import Tracker

    [saved] = Tracker(f"sqlite:///{cwd / 'mlflow.db'}").download_model(run_id).rglob("*.keras")
    return saved


def _run(script: str, backend: str, *args: object, **env: str) -> None:
    command = [sys.executable, "-c", script, *map(str, args)]
    env = {**os.environ, "KERAS_BACKEND": backend, **env}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_saved_model_predicts_the_same_on_every_installed_backend(trained, tmp_path) -> None:
    name, cwd, trial = trained
    run_id = trial.user_attrs["mlflow_run_id"]
    saved = _saved_model(cwd, run_id)
    x = np.random.default_rng(0).random((4, 32, 32, 1), np.float32)
    np.save(tmp_path / "x.npy", x)
    others = [b for b in BACKENDS if b != name and installed(b)]
    if not others:
        pytest.skip("one backend installed: nothing to load the model on")
    for b in [name, *others]:
        _run(PREDICT, b, saved, tmp_path / "x.npy", tmp_path / f"{b}.npy")
    own = np.load(tmp_path / f"{name}.npy")
    assert own.shape == (4, 32, 32, 1) and 0 < own.std()
    for b in others:
        np.testing.assert_allclose(np.load(tmp_path / f"{b}.npy"), own, atol=1e-5, err_msg=b)
    if name != "tensorflow" and installed("tensorflow"):  # the MLflow model too, by mlflow alone
        uri = f"sqlite:///{cwd / 'mlflow.db'}"
        x_file, out = tmp_path / "x.npy", tmp_path / "p.npy"
        _run(PYFUNC, "tensorflow", run_id, x_file, out, MLFLOW_TRACKING_URI=uri)
        np.testing.assert_allclose(np.load(out), own, atol=1e-5)


# One warp of image and mask on the backend itself: Keras 3.15's dictionary form rotates masks
# differently from images on torch, which only a run on torch shows.
JOINT = """
import numpy as np
from segsweep.config import AugmentSettings
from segsweep.data.pipeline import JointBatches
masks = np.zeros((8, 32, 32, 1), np.uint8)
for i in range(8):
    masks[i, 4 + i : 16 + i, 8 : 10 + 2 * i] = 1
aug = AugmentSettings(flip=True, rotation=20.0, shift=0.2, zoom=0.2)
for x, y in JointBatches(masks.astype(np.float32), masks, batch_size=4, augment=aug, seed=1):
    assert set(np.unique(y)) <= {0.0, 1.0}
    assert x[y == 1].mean() > 0.8 and x[y == 0].mean() < 0.1, (x[y == 1].mean(), x[y == 0].mean())
"""


@pytest.mark.parametrize("name", BACKENDS)
def test_the_pydataset_warps_image_and_mask_alike_on_each_backend(name: str) -> None:
    if not installed(name):
        pytest.skip(f"{name} is not installed in this environment")
    _run(JOINT, name)
