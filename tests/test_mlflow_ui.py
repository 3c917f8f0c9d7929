"""What a user needs to open a study in MLflow's UI: the experiment's kind, the command, the URL."""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow
import pytest

from segsweep.cli.study import _browse_lines
from segsweep.store.tracking import Tracker

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
    view = "/#/experiments/7?workflowType=machine_learning"
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
