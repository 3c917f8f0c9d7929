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

__all__ = [
    "HOST",
    "close_dead_parent_runs",
    "fail_trial",
    "heartbeat",
    "on_stale_heartbeat",
    "pid_alive",
    "recover_stale",
    "register_parent_run",
    "release_parent_run",
]

HOST = socket.gethostname()
PARENT_ATTR = "segsweep.parent_run:"  # + "HOST:PID" -> the open parent run of that process


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
    from segsweep.store.tracking import Tracker

    tracker = Tracker(trial.user_attrs.get("tracking_uri", ""))
    tracker.set_tags(run_id, {"state": "FAIL", "reason": reason})
    tracker.end_run(run_id, status)


# A cross-validation fold trial (``study finalize``) is its configuration and its fold: a retry
# must train the same fold, so these attributes travel with it.
FOLD_ATTRS = ("finalize_of", "fold", "folds")
KEPT_ON_RETRY = (*FOLD_ATTRS, "default")  # a retried default trial is still the default


def _retry_once(study: optuna.Study, trial: FrozenTrial) -> None:
    if "retry_of" in trial.user_attrs or not trial.params:
        return  # a retry that fails again is not retried; a trial with no params is not worth it
    keep = {k: trial.user_attrs[k] for k in KEPT_ON_RETRY if k in trial.user_attrs}
    study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number, **keep})


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
    """Optuna calls this for a trial it failed because its heartbeat stopped (RDB storages).

    A coordinator fails its own dead workers' trials within a second, so a trial silent for the
    whole grace period means its host, coordinator included, is gone: its parent run is closed.
    """
    host = trial.user_attrs.get("host", "another host")
    _end(study, trial, f"worker stopped sending heartbeats (on {host})", "FAILED", retry=True)
    pid = trial.user_attrs.get("coordinator_pid")
    key = f"{PARENT_ATTR}{host}:{pid}"
    if pid is not None and study.user_attrs.get(key):
        reason = f"its study run on {host} stopped sending heartbeats (found by a later study run)"
        _close_parent_run(study, key, study.user_attrs[key], reason)


def _own_key() -> str:
    return f"{PARENT_ATTR}{HOST}:{os.getpid()}"


def register_parent_run(study: optuna.Study, run_id: str, tracking_uri: str) -> None:
    """Record this process's open MLflow parent run, for whoever finds this process dead."""
    entry = {"run_id": run_id, "tracking_uri": tracking_uri, "host": HOST, "pid": os.getpid()}
    study.set_user_attr(_own_key(), entry)


def release_parent_run(study: optuna.Study) -> None:
    """This process ended its parent run itself (Optuna cannot delete a study attribute)."""
    study.set_user_attr(_own_key(), None)


def _close_parent_run(study: optuna.Study, key: str, entry: dict, reason: str) -> bool:
    """End a dead process's parent run as KILLED with ``reason``; False if it had ended."""
    from mlflow.exceptions import MlflowException

    from segsweep.store.tracking import Tracker

    tracker = Tracker(entry["tracking_uri"])
    try:
        closed = tracker.run_status(entry["run_id"]) == "RUNNING"
        if closed:
            tracker.set_tags(entry["run_id"], {"reason": reason})
            tracker.end_run(entry["run_id"], "KILLED")
    except MlflowException:  # the run was deleted: nothing left to close
        closed = False
    study.set_user_attr(key, None)
    return closed


def close_dead_parent_runs(study: optuna.Study) -> list[str]:
    """Close the parent runs of this host's processes that died; returns their run ids."""
    closed = []
    for key, entry in study.user_attrs.items():
        if not key.startswith(PARENT_ATTR) or not entry or entry["host"] != HOST:
            continue
        if pid_alive(int(entry["pid"])):
            continue
        reason = f"its study run (pid {entry['pid']}) died (found by a later study run)"
        if _close_parent_run(study, key, entry, reason):
            closed.append(entry["run_id"])
    return closed


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
