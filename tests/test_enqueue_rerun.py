"""A hand-made configuration queued into a study, and one trial retrained under new seeds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from procs import child_runs, load, make_study, mlflow_client, segsweep

pytestmark = pytest.mark.slow


def test_enqueued_baseline_runs_first_and_reruns_report_the_spread(tmp_path: Path) -> None:
    make_study(
        tmp_path,
        "q",
        "--set",
        "search.default_first=false",  # the user's baseline is the study's first trial here
        "--set",
        "train.epochs=1",
        "--set",
        "space.dropout=[0.0, 0.5]",
        "--set",
        'space.loss=["weighted_dice", "dice_ce"]',
    )
    out = segsweep(
        tmp_path,
        "study",
        "enqueue",
        "q",
        "--set",
        "space.loss=weighted_dice",
        "--set",
        "space.dice_w2=0.7",
        "--set",
        "space.dropout=0.5",
    )
    assert "queued as the next trial" in out.stdout
    segsweep(tmp_path, "study", "run", "q", "--trials", "1")
    trial = load(tmp_path, "q").get_trials()[0]
    assert trial.params["loss"] == "weighted_dice" and trial.params["dropout"] == 0.5
    assert trial.params["dice_w2"] == 0.7

    out = segsweep(tmp_path, "study", "rerun", "q", "--trial", "0", "--seeds", "2")
    assert re.search(
        r"trial 0: val_dsc \d\.\d{4} ± \d\.\d{4} \(mean ± sd over 2 seeds\)", out.stdout
    ), out.stdout
    client = mlflow_client(tmp_path)
    experiment = client.get_experiment_by_name("q").experiment_id
    reruns = [r for r in client.search_runs([experiment]) if r.data.tags.get("rerun_of") == "0"]
    assert len(reruns) == 2
    trial_run = child_runs(tmp_path, "q")[0].info.run_id
    assert {r.data.tags["mlflow.parentRunId"] for r in reruns} == {trial_run}
    assert {r.data.params["seed"] for r in reruns} == {"1000", "2000"}
    assert all(r.info.status == "FINISHED" for r in reruns)


def test_enqueue_refuses_a_value_outside_the_space(tmp_path: Path) -> None:
    make_study(tmp_path, "q2", "--set", "space.dropout=[0.0, 0.2]")
    out = segsweep(tmp_path, "study", "enqueue", "q2", "--set", "space.dropout=0.5", check=False)
    assert out.returncode == 2 and "lies outside the study's space" in out.stderr
    (default,) = load(tmp_path, "q2").get_trials()  # only the default trial is queued
    assert default.user_attrs == {"default": True}
