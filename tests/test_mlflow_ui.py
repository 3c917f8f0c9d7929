"""What a user needs to open a study in MLflow's UI: the experiment's kind, the command, the URL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import pytest

from segsweep.cli.study import _browse_lines
from segsweep.store.tracking import Tracker
from segsweep.store.views import TRIALS_VIEW

KIND = "mlflow.experimentKind"


def test_experiments_open_in_the_model_training_view(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri)
    made = tracker.experiment("new")
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment(made).tags[KIND] == "custom_model_development"
    old = client.create_experiment("made-before-the-tag")  # by an older segsweep
    assert KIND not in client.get_experiment(old).tags
    assert tracker.experiment("made-before-the-tag") == old
    assert client.get_experiment(old).tags[KIND] == "custom_model_development"


def test_browse_lines_name_the_store_and_the_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    view = "/#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey=segsweep-trials"
    command, url = _browse_lines("", "7")
    assert command.endswith("mlflow ui") and url == f"  then open http://127.0.0.1:5000{view}"
    command, _ = _browse_lines("sqlite:///runs/x.db?timeout=5", "7")
    assert command.endswith("mlflow ui --backend-store-uri 'sqlite:///runs/x.db?timeout=5'")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")  # what MLflow logged to
    assert _browse_lines("", "7")[0].endswith("ui --backend-store-uri sqlite:///env.db")
    assert _browse_lines("http://tracking:5000/", "7") == [
        f"browse every trial: http://tracking:5000{view}"
    ]


def test_the_mlflow_beside_this_python_is_shown_when_not_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    beside = Path(sys.executable).parent / "mlflow"
    if not beside.is_file():
        pytest.skip("this Python has no mlflow script beside it")
    monkeypatch.setenv("PATH", str(tmp_path))  # as after scripts/demo.sh: .venv/bin not on PATH
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    command, _ = _browse_lines("", "1")
    assert command == f"browse every trial: {beside} ui"
    monkeypatch.chdir(beside.parent.parent.parent)  # the folder holding .venv
    command, _ = _browse_lines("", "1")
    assert command == f"browse every trial: {beside.parent.parent.name}/bin/mlflow ui"


def test_the_saved_view_finds_every_trial_of_the_study_and_only_them(tmp_path: Path) -> None:
    """The envelope as MLflow 3.17's UI checks it, and its filter and sort run on the store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri)
    exp = tracker.experiment("s")
    values = {0: 0.3, 1: 0.1, 2: 0.4, 3: 0.2}
    for run, trials in (("a", (0, 1)), ("b", (2, 3))):  # two `study run`s, a parent each
        parent = tracker.start_run(exp, name=f"study-run-{run}", tags={"study": "s"})
        for trial in trials:
            tags = {"study": "s", "trial": trial}
            run_id = tracker.start_run(exp, name=f"trial-{trial}", tags=tags, parent_id=parent)
            tracker.log_metrics(run_id, {"best_val_lesion_dsc": values[trial]}, step=1)
    fold = tracker.start_run(exp, name="fold", tags={"study": "s.finalize", "trial": 0})
    tracker.log_metrics(fold, {"best_val_lesion_dsc": 1.0}, step=1)
    for objective in ("val_dsc", "val_lesion_dsc"):  # written again by each run: the last wins
        tracker.save_view(
            exp, TRIALS_VIEW, name="s", study_name="s", objective=objective, params=["lr"]
        )
    client = mlflow.MlflowClient(uri)
    envelope = json.loads(client.get_experiment(exp).tags[f"mlflow.sharedViewState.{TRIALS_VIEW}"])
    assert isinstance(envelope["name"], str) and isinstance(envelope["createdAt"], int)
    state = json.loads(envelope["state"])
    assert state["orderByKey"] == "metrics.`best_val_lesion_dsc`" and not state["orderByAsc"]
    assert state["selectedColumns"][1] == "metrics.`best_val_lesion_dsc`"
    assert "metrics.`best_val_dsc`" in state["selectedColumns"]
    assert state["selectedColumns"][-1] == "params.`lr`"
    found = client.search_runs(
        [exp], state["searchFilter"], order_by=["metrics.best_val_lesion_dsc DESC"]
    )
    assert [r.info.run_name for r in found] == ["trial-2", "trial-0", "trial-3", "trial-1"]
