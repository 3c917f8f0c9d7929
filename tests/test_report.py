"""``segsweep study report``: plots and summary of a real Optuna study, logged to MLflow."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from segsweep.cli import main
from segsweep.config import Config, save_config
from segsweep.results.report import counts, write_report
from segsweep.store.storage import create_study, storage_url
from segsweep.store.tracking import Tracker

PLOTS = {"optimization_history", "param_importances", "parallel_coordinate", "intermediate_values"}
COLLAPSE_REASON = "collapsed: predicted no lesion pixel on validation for 3 epochs in a row"


def add_trial(study: optuna.Study, state: TrialState, *, curve: list[float], attrs: dict) -> None:
    """One trial through ask/tell: sampled params, per-epoch values, user attrs, an end state."""
    trial = study.ask()
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    trial.suggest_categorical("loss", ["weighted_dice", "dice_ce"])
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    study.tell(trial, max(curve) if state == TrialState.COMPLETE else None, state=state)


def fill(study: optuna.Study) -> None:
    """4 complete (one with a penalty diagnosis), 2 pruned (one collapsed), 1 failed."""
    ok = {"diagnoses": []}
    for i, curve in enumerate(([0.2, 0.4, 0.5], [0.1, 0.3, 0.45], [0.3, 0.5, 0.6], [0.2, 0.25])):
        attrs = {**ok, "mlflow_run_id": f"run{i}"}
        if i == 1:
            attrs["diagnoses"] = ["penalty_dominates"]
        add_trial(study, TrialState.COMPLETE, curve=curve, attrs=attrs)
    add_trial(
        study,
        TrialState.PRUNED,
        curve=[0.05, 0.0, 0.0, 0.0, 0.0],
        attrs={"diagnoses": ["collapsed", "not_learning"], "reason": COLLAPSE_REASON},
    )
    add_trial(
        study,
        TrialState.PRUNED,
        curve=[0.05, 0.1],
        attrs={**ok, "reason": "pruned after epoch 2"},
    )
    add_trial(
        study,
        TrialState.FAIL,
        curve=[],
        attrs={"reason": "loss became NaN at epoch 1"},
    )


def journal_study(tmp_path: Path, name: str = "les") -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / f"{name}.journal")))
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the module (creating one takes seconds); one experiment per test."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def test_counts_by_state_and_diagnosis(tmp_path: Path) -> None:
    study = journal_study(tmp_path)
    fill(study)
    found = counts(study)
    assert found["states"] == {"COMPLETE": 4, "PRUNED": 2, "FAIL": 1, "RUNNING": 0, "WAITING": 0}
    assert found["diagnoses"] == {
        "collapsed": 1,
        "penalty_dominates": 1,
        "over_segmenting": 0,
        "not_learning": 1,
        "healthy": 4,
        "not diagnosed": 1,
    }


def test_report_writes_every_plot_and_the_summary_and_logs_them(
    tmp_path: Path, mlflow_uri: str
) -> None:
    study = journal_study(tmp_path)
    fill(study)
    uri = mlflow_uri
    report = write_report(study, tmp_path / "out", tracking_uri=uri)

    assert report.skipped == {}
    assert {p.stem for p in report.files} == PLOTS | {"summary"}
    assert all(p.stat().st_size > 1000 for p in report.files)
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "| COMPLETE | 4 |" in text and "| PRUNED | 2 |" in text and "| FAIL | 1 |" in text
    assert "| collapsed | 1 |" in text and "| penalty_dominates | 1 |" in text
    assert "| over_segmenting | 0 |" in text and "| healthy | 4 |" in text
    best = text.split("## Best 4 trials")[1].split("##")[0]
    assert [row.split("|")[1].strip() for row in best.strip().splitlines()[2:]] == [
        "2", "0", "1", "3"
    ]  # fmt: skip
    assert "| 0.6000 |" in best and "run2" in best
    assert COLLAPSE_REASON in text and "pruned after epoch 2" in text
    assert "loss became NaN at epoch 1" in text
    assert "![param_importances](param_importances.png)" in text

    # No `study run` yet: the files go to a run named study-report in experiment "les".
    client = MlflowClient(uri)
    run = client.get_run(report.run_id)
    assert run.info.run_name == "study-report"
    assert client.get_experiment(run.info.experiment_id).name == "les"
    logged = {Path(f.path).name for f in client.list_artifacts(report.run_id, "report")}
    assert logged == {p.name for p in report.files}


def test_report_goes_to_the_newest_parent_run(tmp_path: Path, mlflow_uri: str) -> None:
    study = journal_study(tmp_path, "with-runs")
    fill(study)
    uri = mlflow_uri
    tracker = Tracker(uri)
    exp = tracker.experiment("with-runs")
    tracker.start_run(exp, name="study-run-1", tags={})
    newest = tracker.start_run(exp, name="study-run-2", tags={})
    tracker.start_run(exp, name="trial-0", tags={}, parent_id=newest)

    report = write_report(study, tmp_path / "out", tracking_uri=uri)
    assert report.run_id == newest
    assert f"Logged to MLflow run `{newest}`" in (tmp_path / "out" / "summary.md").read_text()


def test_a_study_with_one_trial_skips_what_it_cannot_draw(tmp_path: Path, mlflow_uri: str) -> None:
    study = journal_study(tmp_path, "one")
    add_trial(study, TrialState.COMPLETE, curve=[0.1, 0.2], attrs={})
    report = write_report(study, tmp_path / "out", tracking_uri=mlflow_uri)
    assert {p.stem for p in report.files} == {
        "optimization_history",
        "intermediate_values",
        "summary",
    }
    assert set(report.skipped) == {"param_importances", "parallel_coordinate"}
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "param_importances not drawn: needs at least 2 completed trials" in text
    assert "| not diagnosed | 1 |" in text


def test_cli_study_report_writes_reports_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_uri: str
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = Config().replace(**{"study.name": "cli", "tracking.uri": mlflow_uri})
    save_config(cfg, Path("studies/cli.toml"))
    fill(create_study(cfg, storage_url(cfg), exist_ok=False))

    result = CliRunner().invoke(main, ["study", "report"])
    assert result.exit_code == 0, result.output
    assert "wrote 5 files to reports/cli" in result.output
    assert (tmp_path / "reports" / "cli" / "summary.md").is_file()

    missing = CliRunner().invoke(main, ["study", "report", "nope"])
    assert missing.exit_code == 2 and "studies/nope.toml not found" in missing.output


@pytest.mark.slow
def test_cli_importances_rank_the_one_parameter_that_decides_a_maximised_value(
    tmp_path: Path,
) -> None:
    from procs import segsweep

    cfg = Config().replace(**{"study.name": "imp"})
    save_config(cfg, tmp_path / "studies" / "imp.toml")
    study = create_study(cfg, storage_url(cfg, tmp_path / "studies"), exist_ok=False)
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    for _ in range(30):  # val_dsc is decided by dropout alone; the rest is noise it ignores
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.suggest_float("l2", 1e-6, 1e-3, log=True)
        trial.suggest_categorical("batch_norm", [False, True])
        study.tell(trial, 0.9 - trial.suggest_float("dropout", 0.0, 0.5))

    out = segsweep(tmp_path, "study", "report", "imp")
    assert "wrote 4 files" in out.stdout, out.stdout  # no per-epoch values: 3 plots
    text = (tmp_path / "reports" / "imp" / "summary.md").read_text()
    assert "val_dsc (hard lesion Dice per image, averaged over images), maximised" in text
    section = text.split("## Parameter importances")[1].split("##")[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ")]
    ranked = [(name.strip(), float(share)) for name, share in rows[2:]]  # past the header
    assert [name for name, _ in ranked][0] == "dropout" and ranked[0][1] > 0.9, section
    assert sorted(name for name, _ in ranked) == ["batch_norm", "dropout", "l2", "lr"]
    best = text.split("## Best 5 trials")[1].splitlines()[4]  # the first row: the largest value
    assert f"| {study.best_trial.number} | {study.best_value:.4f} |" in best
