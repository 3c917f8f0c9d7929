"""Which MLflow run a question is about, read back: a study's trial to its run (the best
completed trial by default, else the best finished one by its last reported value), and a run's
params, tags and per-epoch metric histories as one :class:`RunRecord` (what ``explain`` reads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from segsweep.errors import StudyError
from segsweep.store.summary import summary

__all__ = ["RunRecord", "fetch_run", "run_of_trial"]


@dataclass(frozen=True)
class RunRecord:
    """One MLflow run as explain needs it; ``history`` is aligned on ``epochs`` (NaN = absent)."""

    run_id: str
    run_name: str
    experiment: str
    status: str
    params: dict[str, str]
    tags: dict[str, str]
    epochs: list[int]
    history: dict[str, list[float]]


def fetch_run(client: MlflowClient, run_id: str) -> RunRecord:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise StudyError(
            f"no MLflow run '{run_id}' in {client.tracking_uri}; pass --tracking-uri, or "
            "study:NAME for a study's best trial"
        ) from None
    keys = [k for k in run.data.metrics if not k.startswith("best_")]
    series = {k: {m.step: m.value for m in client.get_metric_history(run_id, k)} for k in keys}
    epochs = sorted({step for values in series.values() for step in values})
    return RunRecord(
        run_id=run_id,
        run_name=run.info.run_name or "",
        experiment=client.get_experiment(run.info.experiment_id).name,
        status=run.info.status,
        params=dict(run.data.params),
        tags=dict(run.data.tags),
        epochs=epochs,
        history={k: [values.get(e, math.nan) for e in epochs] for k, values in series.items()},
    )


def _last_value(trial: FrozenTrial) -> float | None:
    """The value a trial reported last (its last epoch's objective), if finite."""
    if trial.last_step is None:
        return None
    value = trial.intermediate_values[trial.last_step]
    return value if math.isfinite(value) else None


def _best_finished(study: optuna.Study) -> tuple[int, str]:
    """With no completed trial: the finished trial whose last reported value is best, else the
    latest finished one; with the reason, in words."""
    name = study.study_name
    finished = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and t.user_attrs.get("mlflow_run_id")
    ]
    if not finished:
        raise StudyError(
            f"study '{name}' has no finished trial yet; run `segsweep study run {name}` first"
        )
    reported = [t for t in finished if _last_value(t) is not None]
    if not reported:
        latest = max(finished, key=lambda t: t.number)
        return latest.number, (
            f"trial {latest.number} ({latest.state.name.lower()}): no trial has completed or "
            "reported a value, and it is the latest finished"
        )
    sign = 1 if study.direction == StudyDirection.MAXIMIZE else -1
    best = max(reported, key=lambda t: (sign * _last_value(t), -t.number))
    return best.number, (
        f"trial {best.number} ({best.state.name.lower()}): no trial has completed, and its last "
        f"reported value, {_last_value(best):.4f} at epoch {best.last_step}, is the best"
    )


def run_of_trial(study: optuna.Study, number: int | None = None) -> tuple[str, int, str]:
    """The MLflow run id of trial ``number`` of ``study``, the number and why it was chosen
    ("" when asked for).

    Without ``number``: the best completed trial, else the best finished one by its last
    reported value, else the latest finished one.
    """
    name = study.study_name
    why = ""
    if number is None:
        best = summary(study)["best"]
        if best is None:
            number, why = _best_finished(study)
        else:
            number = best["number"]
            why = f"trial {number}: the best completed trial (value {best['value']:.4f})"
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        held = f"0–{max(trials)}" if trials else "none"
        raise StudyError(f"study '{name}' has no trial {number} (its trials: {held})")
    run_id = trials[number].user_attrs.get("mlflow_run_id")
    if not run_id:
        raise StudyError(f"trial {number} of study '{name}' has no MLflow run recorded")
    return run_id, number, why
