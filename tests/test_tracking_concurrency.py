"""Four worker processes logging every epoch to one SQLite MLflow store: nothing lost."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

EPOCHS = 60
KEYS = [
    "loss",
    "loss_data",
    "loss_l2",
    "lr",
    "val_dsc",
    "val_dsc_global",
    "val_dsc_soft",
    "val_iou",
    "val_precision",
    "val_recall",
    "val_pred_fg",
    "val_true_fg",
]


def _log_like_a_worker(uri: str, experiment_id: str, worker: int) -> str:
    from segsweep.store.tracking import Tracker

    tracker = Tracker(uri)
    run_id = tracker.start_run(experiment_id, name=f"trial-{worker}", tags={"worker": worker})
    tracker.log_params(run_id, {f"p{i}": i for i in range(40)})
    for epoch in range(1, EPOCHS + 1):
        tracker.log_metrics(run_id, {k: epoch + worker / 10 for k in KEYS}, step=epoch)
        if epoch % 20 == 0:
            tracker.log_image(run_id, np.zeros((8, 24, 3), np.uint8), f"overlays/{epoch:03d}.png")
    tracker.end_run(run_id, "FINISHED")
    return run_id


def test_four_writers_lose_no_metric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segsweep.store.tracking import Tracker

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri)
    experiment_id = tracker.experiment("load")  # creates the schema before the writers start
    with mp.get_context("spawn").Pool(4) as pool:
        run_ids = pool.starmap(_log_like_a_worker, [(uri, experiment_id, w) for w in range(4)])
    client = tracker.client
    for worker, run_id in enumerate(run_ids):
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and len(run.data.params) == 40
        for key in KEYS:
            history = client.get_metric_history(run_id, key)
            assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1)), key
            assert all(m.value == m.step + worker / 10 for m in history)
        assert len(client.list_artifacts(run_id, "overlays")) == EPOCHS // 20
