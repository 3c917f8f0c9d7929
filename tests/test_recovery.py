"""Recovery across hosts, on a real RDB storage with Optuna's heartbeat and a real MLflow store."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from segsweep.store.recovery import HOST, on_stale_heartbeat, recover_stale, register_parent_run
from segsweep.store.tracking import Tracker


def test_a_silent_host_has_its_trial_failed_and_its_parent_run_closed(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{tmp_path / 'optuna.db'}",
            heartbeat_interval=1,
            grace_period=1,
            heartbeat_stale_trial_callback=on_stale_heartbeat,
        )
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = tracker.start_run(tracker.experiment("s"), name="study-run-1", tags={})
    register_parent_run(study, parent, tracker.uri)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("host", HOST)  # as the coordinator marks the trials it hands out
    trial.set_user_attr("coordinator_pid", os.getpid())
    storage.record_heartbeat(trial._trial_id)
    time.sleep(2.5)  # past the grace period: the host went silent

    assert recover_stale(study) == [trial.number]
    assert study.get_trials()[trial.number].state == TrialState.FAIL
    run = tracker.client.get_run(parent)
    assert run.info.status == "KILLED"
    assert "stopped sending heartbeats" in run.data.tags["reason"]
    assert not any(v for k, v in study.user_attrs.items() if k.startswith("segsweep.parent_run"))


def test_a_journal_lock_left_by_a_killed_process_is_broken(tmp_path, monkeypatch) -> None:
    """A worker SIGKILLed while it writes leaves Optuna's lock behind; the next writer must break
    it after the grace period instead of waiting forever (the journal's path is relative)."""
    import subprocess
    import sys
    import threading

    from segsweep.store import storage as storage

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(storage, "JOURNAL_LOCK_GRACE", 3)
    url = "studies/s.journal"
    optuna.create_study(study_name="s", storage=storage.open_storage(url, create=True))
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; from segsweep.store.storage import open_storage; "
            f"open_storage({url!r})._backend._lock.acquire(); os.kill(os.getpid(), 9)",
        ],
        cwd=tmp_path,
    )
    assert killed.returncode == -9 and os.path.islink(url + ".lock")
    done = threading.Event()

    def write() -> None:
        optuna.load_study(study_name="s", storage=storage.open_storage(url)).ask()
        done.set()

    threading.Thread(target=write, daemon=True).start()
    assert done.wait(timeout=60), "the journal lock of the killed process was never broken"
