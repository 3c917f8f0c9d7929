"""Workers, signals and failures, with real processes: nothing lost, nothing left RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState
from procs import (
    child_runs,
    load,
    make_study,
    mlflow_client,
    parent_runs,
    segsweep,
    start,
    wait_for_running_trial,
)

pytestmark = pytest.mark.slow

RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def assert_books_balance(cwd: Path, name: str) -> list:
    """Every trial ended, each with exactly one MLflow child run in the matching status."""
    trials = load(cwd, name).get_trials()
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    runs = child_runs(cwd, name)
    ended = [t for t in trials if t.state.is_finished()]
    assert sorted(runs) == sorted(t.number for t in ended)
    for trial in ended:
        run = runs[trial.number]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        expected = RUN_STATUS[trial.state.name]
        if trial.user_attrs.get("reason") == "interrupted":
            expected = "KILLED"  # the user stopped it; it did not fail on its own
        assert run.info.status == expected, (trial.number, run.info.status)
    return trials


def test_the_budget_is_exact_across_workers(tmp_path: Path) -> None:
    make_study(tmp_path, "pool", "--set", "train.epochs=1")
    out = segsweep(tmp_path, "study", "run", "--trials", "5", "--workers", "2")
    trials = assert_books_balance(tmp_path, "pool")
    assert len(trials) == 5 and sorted(t.number for t in trials) == list(range(5))
    assert {t.user_attrs["worker"] for t in trials} == {"w0", "w1"}
    assert out.stdout.count("] trial ") == 5
    # two CPU workers share the cores: "auto" gave them oneDNN, and each run records it
    runs = child_runs(tmp_path, "pool")
    assert {r.data.params["train.onednn_used"] for r in runs.values()} == {"True"}


def test_a_killed_worker_fails_its_trial_and_the_study_goes_on(tmp_path: Path) -> None:
    make_study(tmp_path, "kill", "--set", "train.epochs=3")
    proc = start(tmp_path, "study", "run", "--trials", "3", "--workers", "1")
    victim = wait_for_running_trial(tmp_path, "kill")
    os.kill(victim.user_attrs["worker_pid"], signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    trials = assert_books_balance(tmp_path, "kill")
    dead = trials[victim.number]
    assert dead.state == TrialState.FAIL and dead.user_attrs["reason"] == "worker died (signal 9)"
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0].params == dead.params
    assert child_runs(tmp_path, "kill")[retries[0].number].data.tags["retry_of"] == str(
        victim.number
    )
    assert len(trials) == 3  # the retry ran inside the budget of 3


def test_a_killed_study_run_is_mended_by_the_next_one(tmp_path: Path) -> None:
    make_study(tmp_path, "crash", "--set", "train.epochs=3")
    proc = start(tmp_path, "study", "run", "--trials", "2", "--workers", "1")
    victim = wait_for_running_trial(tmp_path, "crash")
    os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and its workers, all at once
    proc.wait(timeout=60)
    assert load(tmp_path, "crash").get_trials()[victim.number].state == TrialState.RUNNING
    [dead_parent] = parent_runs(tmp_path, "crash")
    assert dead_parent.info.status == "RUNNING"
    out = segsweep(tmp_path, "study", "run", "--trials", "1", "--workers", "1")
    assert f"trial {victim.number} was left RUNNING" in out.stdout
    assert f"closed the MLflow parent run {dead_parent.info.run_id}" in out.stdout
    parents = {r.info.run_id: r for r in parent_runs(tmp_path, "crash")}
    assert parents.pop(dead_parent.info.run_id).info.status == "KILLED"
    assert "died" in mlflow_client(tmp_path).get_run(dead_parent.info.run_id).data.tags["reason"]
    assert [r.info.status for r in parents.values()] == ["FINISHED"]
    trials = assert_books_balance(tmp_path, "crash")
    stale = trials[victim.number]
    assert stale.state == TrialState.FAIL and "study run died" in stale.user_attrs["reason"]
    assert [t.user_attrs.get("retry_of") for t in trials].count(victim.number) == 1
    status = segsweep(tmp_path, "study", "status", "crash", "--json").stdout
    assert '"RUNNING": 0' in status


def test_ctrl_c_fails_running_trials_and_exits_130(tmp_path: Path) -> None:
    # epochs enough that no trial can end before the signal, even on a loaded machine
    make_study(tmp_path, "stop", "--set", "train.epochs=1000")
    proc = start(tmp_path, "study", "run", "--trials", "3", "--workers", "2")
    victim = wait_for_running_trial(tmp_path, "stop")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    trials = assert_books_balance(tmp_path, "stop")
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert victim.number in {t.number for t in interrupted}
    assert {t.user_attrs["reason"] for t in interrupted} == {"interrupted"}
    assert all(child_runs(tmp_path, "stop")[t.number].info.status == "KILLED" for t in interrupted)
    assert [r.info.status for r in parent_runs(tmp_path, "stop")] == ["KILLED"]


def test_a_nan_loss_fails_that_trial_and_the_study_goes_on(tmp_path: Path) -> None:
    # float16 on the CPU with a learning rate of 1: the first epoch overflows to NaN.
    nan_setup = [
        "space.lr=[1.0]",
        'train.mixed_precision="on"',
        'space.loss=["dice_ce"]',
        "space.base_filters=[8]",
        "space.batch_norm=[false]",
        "space.dropout=[0.0]",
        "space.smooth=[1e-5]",
        "train.epochs=2",
    ]
    make_study(tmp_path, "nan", *[arg for s in nan_setup for arg in ("--set", s)])
    segsweep(tmp_path, "study", "run", "--trials", "2")
    trials = assert_books_balance(tmp_path, "nan")
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert {t.user_attrs["reason"] for t in trials} == {"loss became NaN at epoch 1"}
    assert child_runs(tmp_path, "nan")[0].data.tags["reason"] == "loss became NaN at epoch 1"


def test_a_setting_that_fails_every_trial_stops_the_study_at_once(tmp_path: Path) -> None:
    make_study(tmp_path, "bad", "--set", "train.epochs=1", "--set", "space.smooth=[0.0]")
    out = segsweep(tmp_path, "study", "run", "--trials", "20", "--workers", "1", check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "smooth" in errors[0], out.stderr
    trials = assert_books_balance(tmp_path, "bad")
    assert Counter(t.state for t in trials) == {TrialState.FAIL: 1}
    assert [r.info.status for r in parent_runs(tmp_path, "bad")] == ["FAILED"]


def test_the_same_seed_samples_the_same_parameters(tmp_path: Path) -> None:
    for name in ("a", "b"):
        make_study(
            tmp_path,
            name,
            "--set",
            "train.epochs=1",
            "--set",
            'search.sampler="random"',
            "--set",
            "search.seed=7",
            "--set",
            "space.base_filters=[4, 8]",
        )
        segsweep(tmp_path, "study", "run", name, "--trials", "2")
    params = {name: [t.params for t in load(tmp_path, name).get_trials()] for name in "ab"}
    assert params["a"] == params["b"] and len({str(p) for p in params["a"]}) == 2


def test_asking_for_a_gpu_tensorflow_cannot_see_is_an_error(tmp_path: Path) -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    make_study(tmp_path, "gpu", "--set", "train.epochs=1")
    out = segsweep(tmp_path, "study", "run", "--trials", "1", "--gpus", "0", check=False)
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert out.returncode == 2 and len(errors) == 1, out.stderr
    assert "GPU 0" in errors[0] and "TensorFlow sees no GPU" in errors[0]
    # no trial was asked: only the queued default configuration waits
    assert [t.state for t in load(tmp_path, "gpu").get_trials()] == [TrialState.WAITING]


RECYCLING_RUN = """
from pathlib import Path

from segsweep.config import load_config
from segsweep.study.runner import run_study
from segsweep.store.storage import storage_url
from segsweep.study.workers import WorkerSpec

if __name__ == "__main__":  # the workers are spawned: they import this file again
    cfg = load_config(Path("studies/recycle.toml"))
    specs = [WorkerSpec(0), WorkerSpec(1)]
    run_study(cfg, storage=storage_url(cfg), n_trials=12, specs=specs, recycle_after=1)
"""


def test_no_trial_is_lost_when_workers_retire_after_every_trial(tmp_path: Path) -> None:
    # Each worker retires after one trial: every hand-out races a retirement, the worst case of
    # the default 10. The Python API is the only way to set it, so this runs it as a script.
    make_study(tmp_path, "recycle", "--set", "train.epochs=1", n=12)
    (tmp_path / "run_recycling.py").write_text(RECYCLING_RUN)
    proc = subprocess.run(
        [sys.executable, "run_recycling.py"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    trials = assert_books_balance(tmp_path, "recycle")
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: 12}, [
        (t.number, t.state.name, t.user_attrs.get("reason")) for t in trials
    ]
    logs = sorted((tmp_path / "studies" / "logs").glob("recycle-*.log"))
    assert logs and not [log.name for log in logs if "Traceback" in log.read_text()]
