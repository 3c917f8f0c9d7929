"""One trial inside a worker: suggest, train, report to Optuna every epoch, log to MLflow.

The data is loaded once per worker (:class:`WorkerData`) and reused by every trial it runs.
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

from segsweep.backend import accelerator_settings, describe_device, is_out_of_memory
from segsweep.callbacks import LogToMlflow, ReportToOptuna
from segsweep.config import Config, config_to_dict, dump_toml
from segsweep.diagnose import Diagnosis, DiagnosisMonitor, Rules, describe, diagnosis_tags
from segsweep.errors import ConfigError, TrialFailed
from segsweep.recovery import HOST
from segsweep.space import suggest
from segsweep.tracking import RUN_STATUS, Tracker, package_versions
from segsweep.train import FitResult, fit
from segsweep.workerdata import WorkerData, load_worker_data

__all__ = ["WorkerData", "load_worker_data", "run_trial", "train_once", "TrialOutcome"]


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    state: str  # an Optuna TrialState name
    value: float | None
    reason: str = ""


def _run_params(cfg: Config, params: dict[str, Any], data: WorkerData, seed: int) -> dict:
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


@dataclass
class _Watchers:
    """The callbacks that judge a trial while it trains."""

    reporter: ReportToOptuna
    monitor: DiagnosisMonitor


def _train(
    trial: optuna.Trial, params: dict, data: WorkerData, cfg: Config, seed: int, logger: LogToMlflow
) -> tuple[FitResult, _Watchers]:
    watch = _Watchers(
        ReportToOptuna(trial, cfg.search.objective),
        DiagnosisMonitor(Rules(), prune_collapsed=cfg.search.prune_collapsed),
    )
    result = guarded_fit(params, data, cfg, seed, [watch.reporter, watch.monitor], logger)
    return result, watch


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
    """:func:`segsweep.train.fit` with out-of-memory as a failed trial, logging last."""
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
        raise TrialFailed(
            f"out of memory at batch size {cfg.train.batch_size}, image size "
            f"{cfg.data.image_size}: lower train.batch_size or the filters"
        ) from None


def _verdict(result: FitResult, watch: _Watchers) -> tuple[str, float | None, str]:
    """(state, value, reason): a collapse stops a trial before the pruner's own verdict."""
    if watch.monitor.stopped_at:
        collapsed = next(d for d in watch.monitor.found if d.code == "collapsed")
        return "PRUNED", None, f"collapsed: {collapsed.message}"
    if watch.reporter.pruned_at:
        return "PRUNED", None, f"pruned after epoch {watch.reporter.pruned_at}"
    return "COMPLETE", result.best_value, ""


def _start_run(
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


def run_trial(
    study: optuna.Study,
    trial_id: int,
    data: WorkerData,
    cfg: Config,
    *,
    tracker: Tracker,
    experiment_id: str,
    parent_id: str,
    worker: str,
    device: str,
    on_start: Any = None,
) -> TrialOutcome:
    """Run the asked trial ``trial_id`` to its end and tell Optuna; never leaves it RUNNING."""
    # An RDB storage's cache learns of a trial only when it reads the study's trials, which a
    # sampler does; an enqueued trial (fixed parameters, no sampler) then met a KeyError in
    # set_trial_param on another host's worker (Optuna 5.1 _CachedStorage).
    study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    trial = optuna.trial.Trial(study, trial_id)
    if study.study_name.endswith(".finalize") and "fold" not in trial.user_attrs:
        # another host's finalize took the queued folds first: nothing is left to train
        study.tell(trial, state=TrialState.FAIL)
        return TrialOutcome(trial.number, "FAIL", None, "no fold left to train")
    if "fold" in trial.user_attrs:  # a cross-validation fold queued by `study finalize`
        from segsweep.cvtrial import run_fold_trial

        return run_fold_trial(
            study,
            trial,
            data,
            cfg,
            tracker=tracker,
            experiment_id=experiment_id,
            parent_id=parent_id,
            worker=worker,
            device=device,
            on_start=on_start,
        )
    seed = cfg.search.seed + trial.number
    run_id = _start_run(
        trial,
        tracker,
        experiment_id=experiment_id,
        parent_id=parent_id,
        worker=worker,
        device=device,
        seed=seed,
    )
    if on_start is not None:
        on_start(trial.number, run_id)
    try:
        params = suggest(trial, cfg.space)
        log_setup(tracker, run_id, cfg, _run_params(cfg, params, data, seed), data)
        logger = LogToMlflow(tracker, run_id, data, cfg)
        result, watch = _train(trial, params, data, cfg, seed, logger)
        logger.log_overlay("final")
    except TrialFailed as err:
        return _finish(study, trial, tracker, run_id, ("FAIL", None, str(err)), [])
    verdict = _verdict(result, watch)
    # Only a completed trial can be the study's best, the model `predict study:NAME` loads;
    # saving the model of every pruned trial cost seconds each (benchmarks, overhead).
    if cfg.tracking.log_model and verdict[0] == "COMPLETE" and result.best_epoch:
        tracker.log_keras_model(run_id, result.net)
    _record_best_epoch(trial, tracker, run_id, result, cfg.search.objective)
    return _finish(study, trial, tracker, run_id, verdict, watch.monitor.found)


def best_epoch_metrics(result: FitResult) -> dict[str, float]:
    """Every ``val_*`` metric of the epoch whose model is kept (empty when none finished)."""
    if not result.best_epoch:
        return {}
    i = result.best_epoch - 1
    return {k: v[i] for k, v in result.history.items() if k.startswith("val_") and len(v) > i}


def _record_best_epoch(
    trial: optuna.Trial, tracker: Tracker, run_id: str, result: FitResult, objective: str
) -> None:
    """The kept epoch's metrics: on the trial for ``study status``, as ``best_*`` in MLflow."""
    best = best_epoch_metrics(result)
    trial.set_user_attr("metrics", {k: v for k, v in best.items() if math.isfinite(v)})
    tracker.log_metrics(
        run_id,
        {f"best_{objective}": result.best_value, "best_epoch": result.best_epoch}
        | {f"best_{k}": v for k, v in best.items() if k != objective},
        step=result.best_epoch,
    )


def _finish(
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


def train_once(
    params: dict[str, Any],
    data: WorkerData,
    cfg: Config,
    *,
    seed: int,
    tracker: Tracker,
    experiment_id: str,
    parent_id: str | None,
    name: str,
    tags: dict[str, Any],
) -> float:
    """Train one configuration outside the search (no pruning), logged as its own run."""
    run_id = tracker.start_run(
        experiment_id,
        name=name,
        parent_id=parent_id,
        tags={**tags, "device": describe_device(), "state": "RUNNING"},
    )
    tracker.log_params(run_id, _run_params(cfg, params, data, seed))
    logger = LogToMlflow(tracker, run_id, data, cfg)
    monitor = DiagnosisMonitor(Rules(), prune_collapsed=False)
    try:
        result = fit(
            params,
            data.split,
            cfg,
            seed=seed,
            callbacks=[monitor, logger],
            on_validation=lambda v: setattr(logger, "validation", v),
        )
    except TrialFailed as err:
        tracker.set_tags(run_id, {"state": "FAIL", "reason": str(err)})
        tracker.end_run(run_id, "FAILED")
        raise
    logger.log_overlay("final")
    tracker.set_tags(run_id, {"state": "COMPLETE", **diagnosis_tags(monitor.found)})
    tracker.end_run(run_id, "FINISHED", description=describe(monitor.found) or None)
    return result.best_value
