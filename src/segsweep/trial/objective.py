"""One trial inside a worker: suggest, train, report to Optuna every epoch, log to MLflow.

The data is loaded once per worker (:class:`WorkerData`) and reused by every trial it runs. A
trial that ``study finalize`` queued as a cross-validation fold is handed to
:func:`~segsweep.trial.fold.run_fold_trial`; what both kinds share is in
:mod:`~segsweep.trial.lifecycle`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from segsweep.backend import describe_device
from segsweep.config import Config
from segsweep.config.space import suggest
from segsweep.errors import TrialFailed
from segsweep.evaluation.diagnose import DiagnosisMonitor, Rules, describe, diagnosis_tags
from segsweep.store.tracking import Tracker
from segsweep.trial.callbacks import LogToMlflow, ReportToOptuna
from segsweep.trial.fold import run_fold_trial
from segsweep.trial.lifecycle import (
    TrialOutcome,
    best_epoch_metrics,
    finish,
    guarded_fit,
    log_setup,
    run_params,
    start_run,
)
from segsweep.trial.train import FitResult, fit
from segsweep.trial.workerdata import WorkerData, load_worker_data

__all__ = ["WorkerData", "load_worker_data", "run_trial", "train_once", "TrialOutcome"]


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


def _verdict(result: FitResult, watch: _Watchers) -> tuple[str, float | None, str]:
    """(state, value, reason): a collapse stops a trial before the pruner's own verdict."""
    if watch.monitor.stopped_at:
        collapsed = next(d for d in watch.monitor.found if d.code == "collapsed")
        return "PRUNED", None, f"collapsed: {collapsed.message}"
    if watch.reporter.pruned_at:
        return "PRUNED", None, f"pruned after epoch {watch.reporter.pruned_at}"
    return "COMPLETE", result.best_value, ""


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
    run_id = start_run(
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
        log_setup(tracker, run_id, cfg, run_params(cfg, params, data, seed), data)
        logger = LogToMlflow(tracker, run_id, data, cfg)
        result, watch = _train(trial, params, data, cfg, seed, logger)
        logger.log_overlay("final")
    except TrialFailed as err:
        return finish(study, trial, tracker, run_id, ("FAIL", None, str(err)), [])
    verdict = _verdict(result, watch)
    # Only a completed trial can be the study's best, the model `predict study:NAME` loads;
    # saving the model of every pruned trial cost seconds each (benchmarks, overhead).
    if cfg.tracking.log_model and verdict[0] == "COMPLETE" and result.best_epoch:
        tracker.log_keras_model(run_id, result.net)
    _record_best_epoch(trial, tracker, run_id, result, cfg.search.objective)
    return finish(study, trial, tracker, run_id, verdict, watch.monitor.found)


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
    tracker.log_params(run_id, run_params(cfg, params, data, seed))
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
