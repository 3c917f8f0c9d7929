"""The tracker in one process: the model round trip, and no global MLflow state left behind."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from segsweep.store.tracking import Tracker


def _tiny_net() -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    return keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))


def test_model_logging_leaves_the_process_tracking_uri_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the store's folder
    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    uri_before = mlflow.get_tracking_uri()
    tracker = Tracker(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    run_id = tracker.start_run(tracker.experiment("my study"), name="trial-0", tags={})
    net = _tiny_net()
    tracker.log_keras_model(run_id, net)

    assert os.environ.get("MLFLOW_TRACKING_URI") == env_before
    assert mlflow.get_tracking_uri() == uri_before
    # The artifacts sit beside the database, not in the working directory.
    assert list(elsewhere.iterdir()) == []
    assert list((tmp_path / "store" / "mlruns" / "my_study").rglob("*.keras"))
    # The model comes back from this tracker's store with the same weights.
    loaded = keras.saving.load_model(next(tracker.download_model(run_id).rglob("*.keras")))
    x = np.random.default_rng(0).random((2, 8, 8, 1), np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), net.predict(x, verbose=0), rtol=1e-6)
