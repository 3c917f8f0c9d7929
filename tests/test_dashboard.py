"""optuna-dashboard (the ``segsweep[dashboard]`` extra) serves a segsweep study's journal."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from procs import load, make_study, segsweep

pytestmark = pytest.mark.slow
DASHBOARD = Path(sys.executable).with_name("optuna-dashboard")  # the extra's console script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def test_optuna_dashboard_serves_the_trials_and_their_user_attrs(tmp_path: Path) -> None:
    make_study(tmp_path, "dash", "--set", "train.epochs=1")
    segsweep(tmp_path, "study", "run", "dash", "--trials", "2")
    trials = load(tmp_path, "dash").get_trials()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [str(DASHBOARD), "studies/dash.journal", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(url, proc)
        [summary] = get(f"{url}/api/studies")["study_summaries"]
        assert summary["study_name"] == "dash" and summary["directions"] == ["maximize"]
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
