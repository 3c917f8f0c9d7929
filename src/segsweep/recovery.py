"""Ending trials whose process died, in Optuna and in MLflow, and retrying them once.

A trial records where it runs (``host``, ``coordinator_pid``, ``worker_pid``) and where it logs
(``tracking_uri``, ``mlflow_run_id``) as Optuna user attributes, so any later process can end it
properly: the trial becomes FAIL with a reason, its MLflow run FAILED (or KILLED), and its
parameters are queued again once, linked by ``retry_of``. On this host a dead process is seen
from its pid; across hosts, RDB storages run Optuna's heartbeat and call
:func:`on_stale_heartbeat` for trials whose host went silent.
"""

from __future__ import annotations

import os
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["HOST", "fail_trial", "heartbeat", "on_stale_heartbeat", "pid_alive", "recover_stale"]

HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _close_mlflow_run(trial: FrozenTrial, reason: str, status: str) -> None:
    run_id = trial.user_attrs.get("mlflow_run_id")
    if not run_id:
        return
    from segsweep.tracking import Tracker

    tracker = Tracker(trial.user_attrs.get("tracking_uri", ""))
    tracker.set_tags(run_id, {"state": "FAIL", "reason": reason})
    tracker.end_run(run_id, status)


def _retry_once(study: optuna.Study, trial: FrozenTrial) -> None:
    if "retry_of" in trial.user_attrs or not trial.params:
        return  # a retry that fails again is not retried; a trial with no params is not worth it
    study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})


def _end(study: optuna.Study, trial: FrozenTrial, reason: str, status: str, retry: bool) -> None:
    _close_mlflow_run(trial, reason, status)
    if retry:
        _retry_once(study, trial)


def fail_trial(
    study: optuna.Study, number: int, reason: str, *, status: str = "FAILED", retry: bool = True
) -> bool:
    """End RUNNING trial ``number`` as FAIL with ``reason``; False if it had already ended."""
    trial = study.get_trials(deepcopy=False)[number]
    if trial.state != TrialState.RUNNING:
        return False
    # Study has no public setter for another process's trial; BaseStorage's is public.
    study._storage.set_trial_user_attr(trial._trial_id, "reason", reason)
    try:
        study.tell(number, state=TrialState.FAIL)
    except (RuntimeError, ValueError):  # another process ended it first
        return False
    _end(study, study.get_trials(deepcopy=False)[number], reason, status, retry)
    return True


def on_stale_heartbeat(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna calls this for a trial it failed because its heartbeat stopped (RDB storages)."""
    host = trial.user_attrs.get("host", "another host")
    _end(study, trial, f"worker stopped sending heartbeats (on {host})", "FAILED", retry=True)


def _stale_here(trial: FrozenTrial) -> bool:
    attrs = trial.user_attrs
    if attrs.get("host") != HOST:
        return False
    pid = attrs.get("worker_pid") or attrs.get("coordinator_pid")
    return pid is not None and not pid_alive(int(pid))


def recover_stale(study: optuna.Study) -> list[int]:
    """Fail and retry RUNNING trials whose processes are gone; returns their numbers."""
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _stale_here(trial) and fail_trial(
            study, trial.number, "its study run died (found by a later study run)"
        ):
            recovered.append(trial.number)
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with warnings.catch_warnings():  # "experimental" since Optuna 2.9; optimize() relies on it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # RDB + heartbeat: calls on_stale_heartbeat
    still = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return recovered + sorted(running - still)


@contextmanager
def heartbeat(study: optuna.Study, trial_id: int) -> Iterator[None]:
    """Beat for ``trial_id`` while the block runs, where the storage has a heartbeat (RDB)."""
    storage = study._storage  # the storage object Optuna's own optimize() beats through
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            storage.record_heartbeat(trial_id)
            stop.wait(interval)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
