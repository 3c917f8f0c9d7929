"""``segsweep explain``: a run read back from a real MLflow store, in words and as JSON."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from procs import load, make_study, segsweep, start

from segsweep.cli import main
from segsweep.config import Config, save_config
from segsweep.errors import StudyError
from segsweep.results.explain import explain_run, render
from segsweep.results.runs import run_of_trial
from segsweep.store.storage import create_study, storage_url
from segsweep.store.tracking import Tracker

USER_PARAMS = {
    "loss": "weighted_dice", "dice_w2": 0.7, "dropout": 0.5, "l2": 1e-4, "batch_norm": False,
    "lr": 1e-3, "schedule": "constant", "smooth": 1.0, "train.epochs": 6,
}  # fmt: skip

# The seed case in six epochs: the loss reads above 1 and the model stops predicting lesion.
COLLAPSED = {
    "loss_data": [0.94, 0.92, 0.90, 0.88, 0.85, 0.80],
    "loss_l2": [0.17, 0.168, 0.166, 0.164, 0.162, 0.16],
    "val_dsc": [0.038, 0.03, 0.125, 0.125, 0.125, 0.125],
    "val_dsc_soft": [0.04, 0.03, 0.02, 0.015, 0.012, 0.01],
    "val_pred_fg": [0.05, 0.01, 0.0, 0.0, 0.0, 0.0],
    "val_true_fg": [0.0187] * 6,
}
HEALTHY = {
    "loss_data": [0.8, 0.6, 0.45, 0.35, 0.3, 0.28],
    "loss_l2": [0.01] * 6,
    "val_dsc": [0.1, 0.3, 0.45, float("nan"), 0.6, 0.62],  # epoch 4 not logged
    "val_dsc_soft": [0.1, 0.3, 0.45, 0.5, 0.6, 0.62],
    "val_pred_fg": [0.03, 0.025, 0.02, 0.02, 0.019, 0.019],
    "val_true_fg": [0.0187] * 6,
}


def log_trial(
    tracker: Tracker, experiment_id: str, number: int, history: dict, params: dict, state: str
) -> str:
    run_id = tracker.start_run(
        experiment_id, name=f"trial-{number}", tags={"trial": number, "state": state}
    )
    tracker.log_params(run_id, params)
    for i in range(len(history["loss_data"])):
        values = {k: v[i] for k, v in history.items()}
        values["loss"] = values["loss_data"] + values["loss_l2"]
        tracker.log_metrics(run_id, values, step=i + 1)
    if state == "PRUNED":
        tracker.set_tags(run_id, {"reason": "collapsed: predicted no lesion pixel"})
    tracker.end_run(run_id, "KILLED" if state == "PRUNED" else "FINISHED")
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("explain")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = Tracker(uri)
    exp = tracker.experiment("les")
    return {
        "root": root,
        "uri": uri,
        "collapsed": log_trial(tracker, exp, 0, COLLAPSED, USER_PARAMS, "PRUNED"),
        "healthy": log_trial(tracker, exp, 1, HEALTHY, {**USER_PARAMS, "dropout": 0.1}, "COMPLETE"),
        "empty": log_trial(tracker, exp, 2, {"loss_data": []}, USER_PARAMS, "FAIL"),
    }


def test_the_users_run_is_explained_in_plain_words(store: dict) -> None:
    text = render(explain_run(store["collapsed"], tracking_uri=store["uri"]))
    assert "trial 0 of experiment 'les'" in text
    assert "state: PRUNED (collapsed: predicted no lesion pixel)" in text
    assert "loss=weighted_dice dice_w2=0.7 dropout=0.5 l2=0.0001" in text
    assert "loss went 1.11 → 0.96 while val_dsc went 0.038 → 0.125" in text
    assert "0.16 of the final loss (17 %) is the L2 penalty" in text
    assert "above 1 at epochs 1–5 only because the L2 penalty is added" in text
    assert "predicts 0 % lesion against 1.9 % true" in text
    assert "collapsed (epoch 5): predicted no lesion pixel on validation" in text
    assert "try dice_ce or focal_tversky, or raise dice_w2 from 0.7" in text
    assert "dropout 0.5 after every convolution: try 0–0.2" in text
    table = text.split("\n\n")[1].splitlines()
    assert table[0].split() == ["epoch", "loss", "loss_data", "loss_l2", "val_dsc",
                                "val_dsc_soft", "val_pred_fg", "val_true_fg"]  # fmt: skip
    assert table[1].split()[:4] == ["1", "1.1100", "0.9400", "0.1700"]
    assert len(table) == 7


def test_the_json_holds_the_same(store: dict) -> None:
    doc = explain_run(store["collapsed"], tracking_uri=store["uri"])
    assert [d["code"] for d in doc["diagnoses"]] == ["collapsed"]
    assert doc["trial"] == 0 and doc["state"] == "PRUNED"
    assert [row["epoch"] for row in doc["epochs"]] == [1, 2, 3, 4, 5, 6]
    assert doc["epochs"][0]["loss_l2"] == pytest.approx(0.17)
    assert doc["params"]["batch_norm"] == "False"


def test_a_healthy_run_has_no_diagnosis_and_gaps_are_null(store: dict) -> None:
    doc = explain_run(store["healthy"], tracking_uri=store["uri"])
    assert doc["diagnoses"] == [] and doc["advice"] == []
    assert doc["epochs"][3]["val_dsc"] is None
    json.loads(json.dumps(doc), parse_constant=pytest.fail)  # strict JSON: no NaN
    assert "diagnoses: none fired" in render(doc)


def test_a_run_without_epochs_says_it_cannot_be_diagnosed(store: dict) -> None:
    doc = explain_run(store["empty"], tracking_uri=store["uri"])
    assert doc["diagnoses"] is None and "loss_data" in doc["not_diagnosed"]
    assert "cannot diagnose this run" in render(doc)


def test_an_unknown_run_is_a_user_error(store: dict) -> None:
    with pytest.raises(StudyError, match="no MLflow run 'abc'"):
        explain_run("abc", tracking_uri=store["uri"])


@pytest.fixture(scope="module")
def study_dir(store: dict) -> Path:
    """studies/les.toml and its journal: trial 0 pruned, trial 1 complete, trial 2 failed."""
    cfg = Config().replace(**{"study.name": "les", "tracking.uri": store["uri"]})
    root = store["root"]
    save_config(cfg, root / "studies" / "les.toml")
    study = create_study(cfg, storage_url(cfg, root / "studies"), exist_ok=False)
    for key, state, value in (
        ("collapsed", optuna.trial.TrialState.PRUNED, None),
        ("healthy", optuna.trial.TrialState.COMPLETE, 0.62),
        ("empty", optuna.trial.TrialState.FAIL, None),
    ):
        trial = study.ask()
        trial.set_user_attr("mlflow_run_id", store[key])
        study.tell(trial, value, state=state)
    return root


def run_cli(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_cli_study_target_explains_the_best_trial_or_trial_n(
    study_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = run_cli(study_dir, monkeypatch, "explain", "study:les", "--json")
    assert code == 0, out
    assert json.loads(out)["trial"] == 1
    code, out = run_cli(study_dir, monkeypatch, "explain", "study:les", "--trial", "0")
    assert code == 0, out
    assert "collapsed (epoch 5)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "study:les", "--trial", "7"], "study 'les' has no trial 7 (its trials: 0–2)"),
        (["explain", "abc", "--trial", "1"], "--trial needs study:NAME"),
        (["explain", "study:nope"], "studies/nope.toml not found"),
    ],
)
def test_cli_errors_are_one_line_with_exit_2(
    study_dir: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    code, out = run_cli(study_dir, monkeypatch, *args)
    assert code == 2 and message in out and len(out.strip().splitlines()) == 1


def test_cli_unknown_run_id(store: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run_cli(
        store["root"], monkeypatch, "explain", "abc", "--tracking-uri", store["uri"]
    )
    assert code == 2 and "no MLflow run 'abc'" in out


def test_a_study_without_completed_trials_is_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = Config().replace(**{"study.name": "fresh"})
    save_config(cfg, tmp_path / "studies" / "fresh.toml")
    create_study(cfg, storage_url(cfg, tmp_path / "studies"), exist_ok=False)
    code, out = run_cli(tmp_path, monkeypatch, "explain", "study:fresh")
    assert code == 2 and "study 'fresh' has no finished trial yet" in out


def add_trial(study: optuna.Study, run_id: str, state: optuna.trial.TrialState, reports=()):
    trial = study.ask()
    trial.set_user_attr("mlflow_run_id", run_id)
    for step, value in enumerate(reports, start=1):
        trial.report(value, step)
    study.tell(trial, state=state)


def test_with_no_completed_trial_the_best_last_reported_value_is_chosen(
    store: dict, tmp_path: Path
) -> None:
    cfg = Config().replace(**{"study.name": "open", "tracking.uri": store["uri"]})
    study = create_study(cfg, storage_url(cfg, tmp_path), exist_ok=False)
    pruned, failed = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL
    add_trial(study, store["empty"], failed)
    assert run_of_trial(study) == (
        store["empty"],
        0,
        "trial 0 (fail): no trial has completed or reported a value, and it is the latest finished",
    )
    add_trial(study, store["healthy"], pruned, [0.4, 0.1])  # best once, not at its last epoch
    add_trial(study, store["collapsed"], pruned, COLLAPSED["val_dsc"])
    add_trial(study, store["empty"], failed)
    assert run_of_trial(study) == (
        store["collapsed"],
        2,
        "trial 2 (pruned): no trial has completed, and its last reported value, 0.1250 at "
        "epoch 6, is the best",
    )
    assert run_of_trial(study, 1)[:2] == (store["healthy"], 1)


@pytest.mark.slow
def test_cli_explains_the_users_interrupted_baseline_when_nothing_completed(
    tmp_path: Path,
) -> None:
    # the user's baseline is the study's only trial here
    # it must still be training when interrupted, even on a loaded machine: long, never pruned
    make_study(
        tmp_path,
        "base",
        *("--set", "train.epochs=1000", "--set", "search.default_first=false"),
        *("--set", "search.prune_collapsed=false"),
    )
    baseline = ["--set", "space.loss=weighted_dice", "--set", "space.dice_w2=0.7"]
    segsweep(tmp_path, "study", "enqueue", "base", *baseline)
    proc = start(tmp_path, "study", "run", "--trials", "1", "--workers", "1")
    deadline = time.monotonic() + 480
    while not load(tmp_path, "base").get_trials()[0].intermediate_values:  # an epoch reported
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    [trial] = load(tmp_path, "base").get_trials()
    assert trial.state == optuna.trial.TrialState.FAIL and trial.params["dice_w2"] == 0.7
    step, value = trial.last_step, trial.intermediate_values[trial.last_step]

    out = segsweep(tmp_path, "explain", "study:base").stdout
    lines = out.splitlines()
    assert lines[0] == (
        f"explaining trial 0 (fail): no trial has completed, and its last reported value, "
        f"{value:.4f} at epoch {step}, is the best"
    )
    assert "trial 0 of experiment 'base'" in lines[1] and "state: FAIL (interrupted)" in out
    doc = json.loads(segsweep(tmp_path, "explain", "study:base", "--json").stdout)
    assert doc["trial"] == 0 and doc["chosen"] == lines[0].removeprefix("explaining ")
