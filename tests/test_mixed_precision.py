"""A model trained with mixed precision is logged in float32: predict and pyfunc on a CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from procs import TINY, segsweep

from segsweep.data.io import prepare_image, read_image
from segsweep.store.tracking import Tracker

pytestmark = pytest.mark.slow

MIXED = [
    *TINY,
    "--set",
    'train.mixed_precision="on"',
    "--set",
    "train.epochs=1",
    "--set",
    "tracking.log_model=true",
    "--set",
    "train.eager=false",  # float16 in the compiled train step, as users run it
]

# Runs in its own process, as a user's script would: only MLflow, no segsweep.
PYFUNC = """
import sys, numpy as np, mlflow
model = mlflow.pyfunc.load_model(f"runs:/{sys.argv[1]}/model")
np.save(sys.argv[3], model.predict(np.load(sys.argv[2])))
"""


def _as_float16_model(served: keras.Model) -> keras.Model:
    """The model as it trained: every layer in mixed_float16 but the float32 heads."""

    def mixed(layer: keras.layers.Layer) -> keras.layers.Layer:
        dtype = "float32" if layer.name.startswith("head_") else "mixed_float16"
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    model = keras.models.clone_model(served, clone_function=mixed)
    model.set_weights(served.get_weights())
    return model


@pytest.fixture(scope="module")
def mixed_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("mixed")
    segsweep(cwd, "data", "synth", "ph", "--n", "12", "--size", "32", "--seed", "4")
    segsweep(cwd, "study", "create", "mp", "--data", "ph", *MIXED)
    segsweep(cwd, "study", "run", "--trials", "1", "--workers", "1")
    status = json.loads(segsweep(cwd, "study", "status", "--json").stdout)
    run_id = status["best"]["mlflow_run_id"]
    assert status["states"]["COMPLETE"] == 1 and run_id
    return cwd, run_id


def test_logged_model_is_float32_and_matches_the_float16_model(mixed_study, tmp_path):
    cwd, run_id = mixed_study
    uri = f"sqlite:///{cwd / 'mlflow.db'}"
    tracker = Tracker(uri)
    params = tracker.client.get_run(run_id).data.params
    assert params["train.mixed_precision_used"] == "True"  # it did train in float16
    [saved] = tracker.download_model(run_id).rglob("*.keras")
    with zipfile.ZipFile(saved) as archive:
        assert "float16" not in archive.read("config.json").decode()
    served = keras.saving.load_model(saved, compile=False)

    files = sorted((cwd / "ph" / "images").iterdir())
    x = np.stack(
        [prepare_image(read_image(p), image_size=32, intensity="dtype", channels=1) for p in files]
    )
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(
        [sys.executable, "-c", PYFUNC, run_id, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=600,
    )
    pyfunc = np.load(tmp_path / "y.npy")
    half = _as_float16_model(served).predict(x, verbose=0)
    assert pyfunc.dtype == np.float32 and pyfunc.shape == half.shape
    np.testing.assert_allclose(pyfunc, served.predict(x, verbose=0), atol=1e-5)
    gap = np.abs(pyfunc - half).max()
    assert 0 < gap < 2e-2  # float16 rounding alone: the pyfunc did not compute in float16

    segsweep(cwd, "predict", "study:mp", str(cwd / "ph" / "images"), str(tmp_path / "out"))
    for path, prob in zip(files, half[..., 0], strict=True):
        mask = np.asarray(Image.open(tmp_path / "out" / f"{path.stem}.png")) > 0
        clear = np.abs(prob - 0.5) > 2e-2  # pixels float16 rounding cannot flip
        np.testing.assert_array_equal(mask[clear], prob[clear] > 0.5)
