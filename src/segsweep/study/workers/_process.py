"""The worker process: one spawned process per worker slot.

It picks its Keras backend and sets ``CUDA_VISIBLE_DEVICES`` (:mod:`segsweep.backend`) before
Keras is imported, loads the data once, and runs the trials the coordinator sends until told to
stop; it retires after ``RECYCLE_AFTER`` trials so the backend's memory cannot grow without
bound. This module imports Keras only inside the worker's functions: a spawned process starts
with none of its parent's modules, so whatever the coordinator imported does not decide the
worker's backend, and the coordinator holds no GPU.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from segsweep import backend
from segsweep.config import Config

__all__ = [
    "RECYCLE_AFTER",
    "RunPlan",
    "WorkerSpec",
    "exit_now",
    "worker_main",
]

RECYCLE_AFTER = 10


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    gpu: str | None = None  # a CUDA device id, or None for a CPU worker

    @property
    def name(self) -> str:
        return f"w{self.index}" + (f"-gpu{self.gpu}" if self.gpu is not None else "")


@dataclass(frozen=True)
class RunPlan:
    """Everything a worker needs, picklable: the settings travel as data, not as globals."""

    cfg: Config
    storage: str
    tracking_uri: str
    experiment_id: str
    parent_id: str
    recycle_after: int = RECYCLE_AFTER
    cpu_workers: int = 1  # CPU workers of this run: more than one share the cores
    log_dir: str = "studies/logs"
    study_name: str = ""  # the Optuna study whose trials run: "" = cfg's; else a companion

    @property
    def target(self) -> str:
        return self.study_name or self.cfg.study.name


def _redirect_output(spec: WorkerSpec, plan: RunPlan) -> None:
    """Send the worker's stdout/stderr (the backend's C++ chatter, warnings, crashes) to
    ``log_dir/STUDY-WORKER.log``, so the terminal shows only the coordinator's progress."""
    folder = Path(plan.log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / f"{plan.cfg.study.name}-{spec.name}.log", "a")  # noqa: SIM115 - for life
    for fd in (1, 2):
        os.dup2(log.fileno(), fd)


def _set_device(spec: WorkerSpec, plan: RunPlan) -> None:
    backend.prepare_worker(
        backend.resolve(plan.cfg.train.backend),
        gpu=spec.gpu,
        onednn=plan.cfg.train.onednn,
        shared_cores=plan.cpu_workers > 1,
        deterministic=plan.cfg.train.deterministic,
    )


def worker_main(spec: WorkerSpec, plan: RunPlan, conn: Connection) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    _redirect_output(spec, plan)
    try:
        _serve(spec, plan, conn)
    except (BrokenPipeError, EOFError):
        pass  # the coordinator ended (the run is over): nothing is left to tell or to run
    exit_now()  # an exception skips this and exits the usual way, its traceback in the log


def exit_now() -> None:
    """End a worker that finished cleanly, without the interpreter's shutdown.

    Everything a trial writes is stored when its call returns (the Optuna journal or database,
    MLflow through ``MlflowClient``), so the shutdown, which spends seconds tearing the backend
    down (benchmarks: overhead, "process exit"), buys nothing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _serve(spec: WorkerSpec, plan: RunPlan, conn: Connection) -> None:
    """Load once, then run the trials the coordinator sends until told to stop or retired."""
    try:
        _set_device(spec, plan)
        device = backend.open_device(spec.gpu)  # imports Keras, after the backend is chosen
        from segsweep.store.storage import load_study, make_sampler, study_assignment
        from segsweep.store.tracking import Tracker
        from segsweep.trial import objective

        main = load_study(plan.cfg.study.name, plan.storage, plan.cfg)
        data = objective.load_worker_data(plan.cfg, study_assignment(main))
        study = (
            main
            if plan.target == main.study_name
            else load_study(plan.target, plan.storage, plan.cfg)
        )
        tracker = Tracker(plan.tracking_uri)
    except Exception as err:  # noqa: BLE001 - anything here would fail every trial
        conn.send(("fatal", str(err) or type(err).__name__))
        return
    for _ in range(plan.recycle_after):
        # "ready" is this worker's promise to run the next trial it is sent: after its last one
        # it says "retire" instead, so the coordinator never hands a trial to a leaving worker.
        conn.send(("ready",))
        message = conn.recv()
        if message[0] == "stop":
            return
        _, trial_id, number = message
        study.sampler = make_sampler(plan.cfg, seed=plan.cfg.search.seed + number)
        _run_one(study, trial_id, data, plan, tracker, spec, device, conn)
    conn.send(("retire",))


def _run_one(
    study: Any,
    trial_id: int,
    data: Any,
    plan: RunPlan,
    tracker: Any,
    spec: WorkerSpec,
    device: str,
    conn: Connection,
) -> None:
    import gc

    import keras

    from segsweep.errors import ConfigError
    from segsweep.store.recovery import heartbeat
    from segsweep.trial import objective

    try:
        with heartbeat(study, trial_id):
            outcome = objective.run_trial(
                study,
                trial_id,
                data,
                plan.cfg,
                tracker=tracker,
                experiment_id=plan.experiment_id,
                parent_id=plan.parent_id,
                worker=spec.name,
                device=device,
                on_start=lambda number, run_id: conn.send(("started", number, run_id)),
            )
        conn.send(("done", outcome.number, outcome.state, outcome.value, outcome.reason))
    except ConfigError as err:  # a misconfiguration fails every trial: stop the study
        conn.send(("fatal", str(err)))
    except Exception as err:  # noqa: BLE001 - one bad trial must not stop the study
        conn.send(("crashed", f"{type(err).__name__}: {err}"))
    keras.backend.clear_session()
    gc.collect()
