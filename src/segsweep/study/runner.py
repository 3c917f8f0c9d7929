"""``study run`` as a Python API: the parent MLflow run around the coordinator and its workers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

from segsweep import backend
from segsweep.config import Config, config_to_dict, dump_toml
from segsweep.config.space import searched
from segsweep.errors import ConfigError
from segsweep.store.recovery import register_parent_run, release_parent_run
from segsweep.store.storage import check_data_unchanged, load_study, record_objective
from segsweep.store.summary import summary
from segsweep.store.tracking import Tracker, package_versions
from segsweep.store.views import TRIALS_VIEW
from segsweep.study.workers import RECYCLE_AFTER, Coordinator, RunPlan, WorkerSpec

__all__ = ["coordinate", "run_study", "worker_specs"]


def worker_specs(*, workers: int | None, gpus: str | None) -> list[WorkerSpec]:
    """``--gpus 0,1`` gives one worker per listed GPU (repeats allowed); else K CPU workers."""
    if gpus is not None and workers is not None:
        raise ConfigError("give --workers or --gpus, not both")
    if gpus is not None:
        ids = [g.strip() for g in gpus.split(",")]
        if not ids or not all(g.isdigit() for g in ids):
            raise ConfigError(
                f"--gpus takes CUDA device numbers separated by commas, such as "
                f"0,1. Got {gpus!r} instead."
            )
        return [WorkerSpec(i, g) for i, g in enumerate(ids)]
    count = 1 if workers is None else workers
    if count < 1:
        raise ConfigError(f"--workers must be at least 1. Got {count} instead.")
    return [WorkerSpec(i) for i in range(count)]


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def coordinate(
    plan: RunPlan,
    specs: list[WorkerSpec],
    n_trials: int,
    *,
    timeout: float | None = None,
    progress: Callable[[str], None] = print,
) -> None:
    """Run ``n_trials`` trials of ``plan.target`` on ``specs``; SIGTERM acts as Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        Coordinator(plan, specs, n_trials, timeout, progress).run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _end_parent(tracker: Tracker, study: Any, parent: str, status: str) -> None:
    tracker.end_run(parent, status)
    release_parent_run(study)


def run_study(
    cfg: Config,
    *,
    storage: str,
    n_trials: int,
    specs: list[WorkerSpec],
    timeout: float | None = None,
    progress: Callable[[str], None] = print,
    recycle_after: int = RECYCLE_AFTER,
) -> dict[str, Any]:
    """Run ``n_trials`` more trials across ``specs``; returns the study summary and the MLflow
    ``experiment_id``. A worker retires after ``recycle_after`` trials (its backend's memory)."""
    if n_trials < 1:
        raise ConfigError(f"--trials must be at least 1. Got {n_trials} instead.")
    backend.resolve(cfg.train.backend)  # fail before any process starts
    study = load_study(cfg.study.name, storage)
    record_objective(study, cfg)
    check_data_unchanged(study, cfg)
    tracker = Tracker(cfg.tracking.uri)
    experiment_id = tracker.experiment(cfg.study.name)
    tracker.save_view(  # what the printed URL opens: every trial of every `study run`, best first
        experiment_id,
        TRIALS_VIEW,
        name=f"{cfg.study.name}: trials by {cfg.search.objective}",
        study_name=cfg.study.name,
        objective=cfg.search.objective,
        params=searched(cfg.space),
    )
    parent = tracker.start_run(
        experiment_id,
        name=f"study-run-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={
            "study": cfg.study.name,
            "storage": storage,
            "n_trials": n_trials,
            "workers": len(specs),
            "host": os.uname().nodename,
            "pid": os.getpid(),
            **package_versions(),
        },
    )
    tracker.log_params(
        parent, {f"{s}.{k}": v for s, vals in config_to_dict(cfg).items() for k, v in vals.items()}
    )
    tracker.log_text(parent, dump_toml(cfg), "study.toml")
    register_parent_run(study, parent, tracker.uri)  # if this process is killed, the next closes it
    plan = RunPlan(
        cfg=cfg,
        storage=storage,
        tracking_uri=tracker.uri,
        experiment_id=experiment_id,
        parent_id=parent,
        cpu_workers=sum(spec.gpu is None for spec in specs),
        recycle_after=recycle_after,
    )
    try:
        coordinate(plan, specs, n_trials, timeout=timeout, progress=progress)
    except KeyboardInterrupt:
        _end_parent(tracker, study, parent, "KILLED")
        raise
    except BaseException:
        _end_parent(tracker, study, parent, "FAILED")
        raise
    _end_parent(tracker, study, parent, "FINISHED")
    return {**summary(load_study(cfg.study.name, storage)), "experiment_id": experiment_id}
