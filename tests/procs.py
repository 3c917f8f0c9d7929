"""Helpers for tests that run segsweep as a user does: real processes, real files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

# `study create` settings of a tiny study; --no-plan keeps every other setting at today's
# defaults (one pass an epoch) rather than planning them from the phantoms
TINY = [
    "--no-plan",
    "--set",
    "data.image_size=32",
    "--set",
    "train.batch_size=4",
    "--set",
    "space.base_filters=[4]",
    "--set",
    "space.depth=[2]",
    "--set",
    'search.pruner="none"',
    "--set",
    "tracking.overlay_every=100",
    "--set",
    "tracking.log_model=false",
    # tracing the train step costs more than a tiny trial's few steps; the end-to-end tests
    # keep the compiled step (their studies add --set train.eager=false)
    "--set",
    "train.eager=true",
]


# TensorFlow's start-up notices, which no segsweep command may show a user (on a machine without
# a GPU they are all it prints before the answer): checked on every command the suite runs.
START_UP_NOTICES = (
    "absl::InitializeLog",
    "oneDNN custom operations",
    "Could not find cuda drivers",
    "cpu_feature_guard",
    "This TensorFlow binary is optimized",
)


def assert_no_start_up_notices(stderr: str, args: tuple[str, ...]) -> None:
    shown = [line for line in stderr.splitlines() if any(n in line for n in START_UP_NOTICES)]
    assert not shown, f"segsweep {' '.join(args)} printed start-up notices:\n" + "\n".join(shown)


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "segsweep", *args]


def segsweep(
    cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``env``: variables set for this process on top of the test's own."""
    proc = subprocess.run(
        command(*args),
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=900,
        env={**os.environ, **env} if env else None,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"segsweep {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    assert_no_start_up_notices(proc.stderr, args)
    return proc


def _as_a_terminal_starts_it() -> None:
    # a shell's background job or a pytest-xdist worker may run the suite with SIGINT ignored,
    # and a child inherits that: Python then never turns Ctrl-C into KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(cwd: Path, *args: str) -> subprocess.Popen:
    """A `segsweep` process in its own process group, as a terminal would start it."""
    return subprocess.Popen(
        command(*args),
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_as_a_terminal_starts_it,
    )


def make_study(cwd: Path, name: str, *sets: str, n: int = 16) -> None:
    if not (cwd / "ph").exists():
        segsweep(cwd, "data", "synth", "ph", "--n", str(n), "--size", "32", "--seed", "3")
    segsweep(cwd, "study", "create", name, "--data", "ph", *TINY, *sets)


def load(cwd: Path, name: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(cwd / "studies" / f"{name}.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def wait_for_running_trial(cwd: Path, name: str, timeout: float = 480) -> optuna.trial.FrozenTrial:
    """The first RUNNING trial whose worker has started training (its pid is recorded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (cwd / "studies" / f"{name}.journal").exists():
            for trial in load(cwd, name).get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                if "worker_pid" in trial.user_attrs and "mlflow_run_id" in trial.user_attrs:
                    return trial
        time.sleep(0.2)
    raise AssertionError(f"no trial of {name} started within {timeout} s")


def mlflow_client(cwd: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")


def child_runs(cwd: Path, name: str) -> dict[int, object]:
    client = mlflow_client(cwd)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return {
        int(r.data.tags["trial"]): r
        for r in runs
        if "mlflow.parentRunId" in r.data.tags and "trial" in r.data.tags
    }


def parent_runs(cwd: Path, name: str) -> list:
    client = mlflow_client(cwd)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
