"""One trial inside a worker: suggest, train, report to Optuna every epoch, log to MLflow.

The data is loaded once per worker (:class:`WorkerData`) and reused by every trial it runs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import optuna
import tensorflow as tf
from optuna.trial import TrialState

from segsweep.config import Config, config_to_dict, dump_toml
from segsweep.data.io import Dataset, load_dataset
from segsweep.data.split import split_indices
from segsweep.diagnose import Diagnosis, DiagnosisMonitor, Rules, describe, diagnosis_tags
from segsweep.errors import ConfigError, TrialFailed
from segsweep.overlay import overlay_grid, pick_cases
from segsweep.recovery import HOST
from segsweep.space import suggest
from segsweep.tracking import RUN_STATUS, Tracker, package_versions
from segsweep.train import FitResult, Split, accelerator_settings, fit

__all__ = ["WorkerData", "load_worker_data", "run_trial", "TrialOutcome"]


@dataclass(frozen=True)
class WorkerData:
    dataset: Dataset
    split: Split
    cases: dict[str, int]  # fixed validation cases drawn in the overlays


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    state: str  # an Optuna TrialState name
    value: float | None
    reason: str = ""


def load_worker_data(cfg: Config) -> WorkerData:
    ds = load_dataset(
        Path(cfg.data.dir),
        image_size=cfg.data.image_size,
        intensity=cfg.data.intensity,
        mask_threshold=cfg.data.mask_threshold,
        channels=cfg.data.channels,
        resize=cfg.data.resize,
    )
    has_lesion = ds.masks.reshape(len(ds.masks), -1).max(axis=1) > 0
    train, val = split_indices(
        ds.stems,
        has_lesion,
        val_fraction=cfg.data.val_fraction,
        seed=cfg.search.seed,
        group_pattern=cfg.data.group_pattern,
    )
    split = Split(ds.images[train], ds.masks[train], ds.images[val], ds.masks[val])
    return WorkerData(dataset=ds, split=split, cases=pick_cases(split.val_y))


class ReportToOptuna(keras.callbacks.Callback):
    """Reports ``val_dsc`` each epoch and stops training when the pruner says so."""

    def __init__(self, trial: optuna.Trial, monitor: str = "val_dsc") -> None:
        super().__init__()
        self.trial, self.monitor, self.pruned_at = trial, monitor, 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.monitor not in (logs or {}):
            # A missing metric would silently disable pruning for every trial: stop the study.
            raise ConfigError(
                f"pruning monitors '{self.monitor}', which the epoch logs lack "
                f"(they hold {', '.join(sorted(logs or {}))})"
            )
        self.trial.report(float(logs[self.monitor]), step=epoch + 1)
        if self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.model.stop_training = True


class LogToMlflow(keras.callbacks.Callback):
    """Per-epoch metrics (step = epoch) and overlay pictures of the fixed validation cases."""

    def __init__(self, tracker: Tracker, run_id: str, data: WorkerData, cfg: Config) -> None:
        super().__init__()
        self.tracker, self.run_id, self.data, self.cfg = tracker, run_id, data, cfg
        self.validation: Any = None  # set by run_trial: the ValidationMetrics callback

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.tracker.log_metrics(self.run_id, logs or {}, step=epoch + 1)
        if (epoch + 1) % self.cfg.tracking.overlay_every == 0:
            self.log_overlay(epoch + 1)

    def log_overlay(self, epoch: int | str) -> None:
        prob = self.validation.last_prob if self.validation is not None else None
        if prob is None or not self.data.cases:
            return
        idx = list(self.data.cases.values())
        split = self.data.split
        grid = overlay_grid(
            split.val_x[idx], split.val_y[idx], prob[idx], threshold=self.cfg.train.threshold
        )
        name = f"{epoch:03d}" if isinstance(epoch, int) else epoch
        self.tracker.log_image(self.run_id, grid, f"overlays/epoch_{name}.png")


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
        ReportToOptuna(trial), DiagnosisMonitor(Rules(), prune_collapsed=cfg.search.prune_collapsed)
    )
    try:
        result = fit(
            params,
            data.split,
            cfg,
            seed=seed,
            callbacks=[watch.reporter, watch.monitor, logger],
            on_validation=lambda v: setattr(logger, "validation", v),
        )
    except tf.errors.ResourceExhaustedError:
        raise TrialFailed(
            f"out of memory at batch size {cfg.train.batch_size}, image size "
            f"{cfg.data.image_size}: lower train.batch_size or the filters"
        ) from None
    except ValueError as err:  # the monitor's missing-metric error: every trial would hit it
        raise ConfigError(f"cannot diagnose trials: {err}") from None
    return result, watch


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
) -> str:
    """The trial's MLflow child run, and where it runs and logs, recorded on the trial."""
    retry = trial.user_attrs.get("retry_of")
    run_id = tracker.start_run(
        experiment_id,
        name=f"trial-{trial.number}",
        parent_id=parent_id,
        tags={
            "trial": trial.number,
            "state": "RUNNING",
            "worker": worker,
            "device": device,
            "study": trial.study.study_name,
            **({"retry_of": retry} if retry is not None else {}),
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
    trial = optuna.trial.Trial(study, trial_id)
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
        tracker.log_params(run_id, _run_params(cfg, params, data, seed))
        tracker.set_tags(run_id, package_versions())
        tracker.log_text(run_id, dump_toml(cfg), "study.toml")
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
    tracker.log_metrics(
        run_id,
        {"best_val_dsc": result.best_value, "best_epoch": result.best_epoch},
        step=result.best_epoch,
    )
    return _finish(study, trial, tracker, run_id, verdict, watch.monitor.found)


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


def describe_device() -> str:
    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else "CPU"


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
