"""What every trial run does around its training, search trial and fold trial alike.

A search trial (:mod:`~segsweep.trial.objective`) and a cross-validation fold
(:mod:`~segsweep.trial.fold`) differ in what they train and keep; both start their MLflow run the
same way and record where it runs, log the same parameters and setup, fit with out-of-memory as a
failed trial, and finish by telling Optuna and closing the run. That shared part lives here, so
neither reaches into the other.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from segsweep.backend import accelerator_settings, is_out_of_memory
from segsweep.config import Config, config_to_dict, dump_toml
from segsweep.errors import ConfigError, TrialFailed
from segsweep.evaluation.diagnose import Diagnosis, describe, diagnosis_tags
from segsweep.store.recovery import HOST
from segsweep.store.tracking import RUN_STATUS, Tracker, package_versions
from segsweep.trial.callbacks import LogToMlflow
from segsweep.trial.train import FitResult, fit
from segsweep.trial.workerdata import WorkerData

__all__ = [
    "TrialOutcome",
    "best_epoch_metrics",
    "finish",
    "guarded_fit",
    "log_setup",
    "run_params",
    "start_run",
]


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    state: str  # an Optuna TrialState name
    value: float | None
    reason: str = ""


def run_params(cfg: Config, params: dict[str, Any], data: WorkerData, seed: int) -> dict:
    flat = {
        f"{s}.{k}": v
        for s, vals in config_to_dict(cfg).items()
        if s != "space"
        for k, v in vals.items()
    }
    accel = {f"train.{k}_used": v for k, v in accelerator_settings(cfg).items()}
    return {
        **params,
        **flat,
        **accel,
        "seed": seed,
        "data.manifest_hash": data.dataset.manifest_hash,
        "data.channels_used": data.dataset.channels,
        "n_train": len(data.split.train_x),
        "n_val": len(data.split.val_x),
    }


def start_run(
    trial: optuna.Trial,
    tracker: Tracker,
    *,
    experiment_id: str,
    parent_id: str,
    worker: str,
    device: str,
    seed: int,
    name: str = "",
    tags: dict[str, Any] | None = None,
) -> str:
    """The trial's MLflow child run, and where it runs and logs, recorded on the trial."""
    retry = trial.user_attrs.get("retry_of")
    run_id = tracker.start_run(
        experiment_id,
        name=name or f"trial-{trial.number}",
        parent_id=parent_id,
        tags={
            "trial": trial.number,
            "state": "RUNNING",
            "worker": worker,
            "device": device,
            "study": trial.study.study_name,
            **({"retry_of": retry} if retry is not None else {}),
            **({"default": "true"} if trial.user_attrs.get("default") else {}),
            **(tags or {}),
        },
    )
    attrs = {
        "mlflow_run_id": run_id,
        "tracking_uri": tracker.uri,
        "seed": seed,
        "worker_pid": os.getpid(),
        "host": HOST,
    }
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return run_id


def log_setup(
    tracker: Tracker, run_id: str, cfg: Config, params: dict[str, Any], data: WorkerData
) -> None:
    """What every trial run records before it trains: params, versions, settings, the split."""
    tracker.log_params(run_id, params)
    tracker.set_tags(run_id, package_versions())
    tracker.log_text(run_id, dump_toml(cfg), "study.toml")
    if data.split_doc is not None:
        tracker.log_text(run_id, json.dumps(data.split_doc, indent=1), "split.json")


def guarded_fit(
    params: dict,
    data: WorkerData,
    cfg: Config,
    seed: int,
    callbacks: list[Any],
    logger: LogToMlflow,
    *,
    keep_best: bool = True,
) -> FitResult:
    """:func:`segsweep.trial.train.fit` with out-of-memory as a failed trial, logging last."""
    try:
        return fit(
            params,
            data.split,
            cfg,
            seed=seed,
            callbacks=[*callbacks, logger],
            on_validation=lambda v: setattr(logger, "validation", v),
            keep_best=keep_best,
        )
    except ValueError as err:  # the monitor's missing-metric error: every trial would hit it
        raise ConfigError(f"cannot diagnose trials: {err}") from None
    except Exception as err:
        if not is_out_of_memory(err):  # each backend raises its own type
            raise
        d = cfg.data
        size = f"patch size {d.patch_size}" if d.patch_size else f"image size {d.image_size}"
        raise TrialFailed(
            f"out of memory at batch size {cfg.train.batch_size}, {size}: lower "
            "train.batch_size or the filters"
        ) from None


def best_epoch_metrics(result: FitResult) -> dict[str, float]:
    """Every ``val_*`` metric of the epoch whose model is kept (empty when none finished)."""
    if not result.best_epoch:
        return {}
    i = result.best_epoch - 1
    return {k: v[i] for k, v in result.history.items() if k.startswith("val_") and len(v) > i}


def finish(
    study: optuna.Study,
    trial: optuna.Trial,
    tracker: Tracker,
    run_id: str,
    verdict: tuple[str, float | None, str],
    found: list[Diagnosis],
) -> TrialOutcome:
    """Tell Optuna, then tag and close the MLflow run; diagnoses go to both."""
    state, value, reason = verdict
    if state == "COMPLETE" and (value is None or not math.isfinite(value)):
        state, reason = "FAIL", f"objective value is {value}"
    if reason:
        trial.set_user_attr("reason", reason)
    trial.set_user_attr("diagnoses", [d.code for d in found])
    trial.set_user_attr("worker_rss_mb", _rss_mb())  # shows whether a worker's memory grows
    study.tell(trial, value if state == "COMPLETE" else None, state=TrialState[state])
    tags = {"state": state, **diagnosis_tags(found), **({"reason": reason} if reason else {})}
    tracker.set_tags(run_id, tags)
    tracker.end_run(run_id, RUN_STATUS[state], description=describe(found) or None)
    return TrialOutcome(trial.number, state, value, reason)


def _rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux /proc; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
