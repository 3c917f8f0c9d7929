"""search.objective: the value a study maximises, end to end in real processes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from procs import TINY, load, mlflow_client, segsweep

pytestmark = pytest.mark.slow

LESION_KEYS = (
    "val_lesion_recall",
    "val_lesion_precision",
    "val_lesion_f1",
    "val_lesion_dsc",
    "val_hd95",
    "val_lesions_missed",
    "val_lesions_fp",
)


@pytest.fixture(scope="module")
def lesion_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("objective")
    segsweep(cwd, "data", "synth", "ph", "--n", "16", "--size", "32", "--seed", "5")
    segsweep(
        cwd,
        "study",
        "create",
        "les",
        "--data",
        "ph",
        *TINY,
        "--set",
        "train.epochs=2",
        "--set",
        'search.objective="val_lesion_dsc"',
        "--set",
        "tracking.overlay_every=1",
    )
    segsweep(cwd, "study", "run", "les", "--trials", "1")
    return cwd


def test_the_trial_value_is_its_best_epochs_lesion_dsc(lesion_study: Path) -> None:
    trial = load(lesion_study, "les").trials[0]
    client = mlflow_client(lesion_study)
    run_id = trial.user_attrs["mlflow_run_id"]
    history = {
        k: [m.value for m in client.get_metric_history(run_id, k)]
        for k in ("val_dsc", *LESION_KEYS)
    }
    assert all(len(v) == 2 for v in history.values()), history
    # what Optuna saw each epoch is the running best of the lesion-wise Dice, not the pixel Dice
    running = np.maximum.accumulate(history["val_lesion_dsc"])
    assert list(trial.intermediate_values.values()) == pytest.approx(list(running))
    # completed (no pruner, too few epochs to collapse): its value is the kept epoch's
    assert trial.state.name == "COMPLETE"
    assert trial.value == pytest.approx(max(history["val_lesion_dsc"]))
    assert trial.user_attrs["metrics"]["val_lesion_dsc"] == pytest.approx(trial.value)
    artifacts = [f.path for f in client.list_artifacts(run_id, "overlays")]
    assert "overlays/epoch_001.png" in artifacts and "overlays/epoch_final.png" in artifacts


def test_status_names_the_objective_and_shows_lesion_metrics(lesion_study: Path) -> None:
    status = json.loads(segsweep(lesion_study, "study", "status", "--json").stdout)
    assert status["objective"] == "val_lesion_dsc"
    text = segsweep(lesion_study, "study", "status").stdout
    assert f"val_lesion_dsc={status['best']['value']:.4f}" in text
    assert "val_lesion_f1=" in text and "val_hd95=" in text
    explain = segsweep(lesion_study, "explain", "study:les", "--trial", "0").stdout
    assert "the study maximises val_lesion_dsc" in explain
    assert "val_lesion_f1" in explain and "val_hd95" in explain


def test_changing_the_objective_of_a_study_with_trials_is_refused(lesion_study: Path) -> None:
    toml = (lesion_study / "studies" / "les.toml").read_text()
    proc = segsweep(
        lesion_study,
        "study",
        "create",
        "les",
        "--exist-ok",
        "--set",
        'search.objective="val_lesion_f1"',
        check=False,
    )
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "val_lesion_dsc" in line and "val_lesion_f1" in line and len(line.splitlines()) == 1
    assert (lesion_study / "studies" / "les.toml").read_text() == toml  # nothing rewritten
    # editing the settings file by hand is caught by `study run` the same way
    edited = toml.replace('objective = "val_lesion_dsc"', 'objective = "val_dsc"')
    (lesion_study / "studies" / "les.toml").write_text(edited)
    proc = segsweep(lesion_study, "study", "run", "les", "--trials", "1", check=False)
    (lesion_study / "studies" / "les.toml").write_text(toml)
    assert proc.returncode == 2 and "val_lesion_dsc" in proc.stderr and "val_dsc" in proc.stderr
    assert len(load(lesion_study, "les").trials) == 1
