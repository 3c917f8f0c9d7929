"""The coordinator: the ``study run`` process that asks Optuna for each trial and hands it out.

It sends each trial's id to an idle worker, so the budget is exact: ``--trials N`` asks exactly N
trials, whatever the number of workers. A worker that dies mid-trial has its trial failed with the
reason, its MLflow run marked FAILED, its parameters queued again once, and a replacement started.
A worker says "ready" before each trial it will run, and "retire" instead after its last, so a
trial is only handed to a worker that runs it; one whose worker still left cleanly before starting
it goes to the next worker, neither failed nor counted twice.

This module must not import TensorFlow: the coordinator holds no GPU.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from segsweep.errors import StudyError
from segsweep.store.recovery import HOST
from segsweep.study.workers._process import RunPlan, WorkerSpec, worker_main

__all__ = ["Coordinator"]

RECOVERY_EVERY = 60.0  # seconds between looks for trials whose process died elsewhere


@dataclass
class _Worker:
    spec: WorkerSpec
    process: Any
    conn: Connection
    ready: bool = False  # it waits for a trial and has promised to run it
    trial: tuple[int, int] | None = None  # (trial_id, number) running now
    run_id: str | None = None


@dataclass
class Coordinator:
    """Hands out exactly ``n_trials`` trials to the workers and keeps the books."""

    plan: RunPlan
    specs: list[WorkerSpec]
    n_trials: int
    timeout: float | None = None
    progress: Callable[[str], None] = print
    asked: int = 0
    finished: int = 0
    best: tuple[float, int] | None = None
    workers: dict[int, _Worker] = field(default_factory=dict)
    requeued: list[tuple[int, int]] = field(default_factory=list)  # asked, no worker started it

    def run(self) -> None:
        from segsweep.store.storage import load_study

        self.study = load_study(self.plan.target, self.plan.storage, self.plan.cfg)
        self._deadline = time.monotonic() + self.timeout if self.timeout else None
        self._recover()
        for spec in self.specs:
            self._start(spec)
        try:
            while self.finished < self.asked or self._may_ask():
                self._step()
                if time.monotonic() > self._next_recovery:
                    self._recover()
        except KeyboardInterrupt:
            self._abort("interrupted")
            raise
        except BaseException as err:
            self._abort(f"study stopped: {err}")
            raise
        self._shutdown()

    def _recover(self) -> None:
        """Fail and re-queue trials left RUNNING by dead processes (this host's, or any host's
        whose heartbeat stopped on an RDB storage), and close those processes' parent runs."""
        from segsweep.store.recovery import close_dead_parent_runs, recover_stale

        for number in recover_stale(self.study):
            self.progress(
                f"trial {number} was left RUNNING by a process that died: "
                "failed it and queued its parameters again"
            )
        for run_id in close_dead_parent_runs(self.study):
            self.progress(f"closed the MLflow parent run {run_id} of a study run that died: KILLED")
        self._next_recovery = time.monotonic() + RECOVERY_EVERY

    def _may_ask(self) -> bool:
        in_time = self._deadline is None or time.monotonic() < self._deadline
        return self.asked < self.n_trials and in_time

    def _start(self, spec: WorkerSpec) -> None:
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(
            target=worker_main, args=(spec, self.plan, theirs), name=spec.name, daemon=True
        )
        proc.start()
        theirs.close()
        self.workers[spec.index] = _Worker(spec, proc, ours)

    def _step(self) -> None:
        self._hand_out()
        conns = {w.conn: w for w in self.workers.values()}
        sentinels = {w.process.sentinel: w for w in self.workers.values()}
        for ready in wait([*conns, *sentinels], timeout=1.0):
            worker = conns.get(ready) or sentinels[ready]
            if ready in conns:
                self._receive(worker)
            # `is`: a replacement started earlier in this loop holds the dead worker's index
            if not worker.process.is_alive() and self.workers.get(worker.spec.index) is worker:
                self._drain(worker)
                self._lost(worker)

    def _drain(self, worker: _Worker) -> None:
        while worker.conn.poll():
            try:
                self._handle(worker, worker.conn.recv())
            except (EOFError, OSError):
                return

    def _receive(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            return  # the sentinel reports the death
        self._handle(worker, message)

    def _handle(self, worker: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
        elif kind == "started":
            worker.run_id = message[2]
        elif kind == "done":
            worker.trial, worker.run_id = None, None
            self._finished(message[1], message[2], message[3], message[4])
        elif kind == "crashed":
            self._fail_running(worker, message[1])
        elif kind == "retire":
            worker.ready = False
        elif kind == "fatal":
            self._fail_running(worker, message[1])
            raise StudyError(f"worker {worker.spec.name}: {message[1]}")

    def _hand_out(self) -> None:
        for worker in self.workers.values():
            if not worker.ready or worker.trial is not None:
                continue
            worker.trial = self._next_trial(worker.spec.name)
            if worker.trial is None:
                return
            worker.ready = False  # until it says "ready" again, after this trial
            try:
                worker.conn.send(("run", *worker.trial))
            except OSError:
                pass  # it just died: its sentinel reports it, and _lost ends or requeues the trial

    def _next_trial(self, worker_name: str) -> tuple[int, int] | None:
        """A trial no worker started yet, else a newly asked one while the budget allows."""
        if self.requeued:
            trial_id, number = self.requeued.pop(0)
            self.study._storage.set_trial_user_attr(trial_id, "worker", worker_name)
            return trial_id, number
        if not self._may_ask():
            return None
        trial = self.study.ask()
        attrs = {"worker": worker_name, "host": HOST, "coordinator_pid": os.getpid()}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        self.asked += 1
        return trial._trial_id, trial.number

    def _finished(self, number: int, state: str, value: float | None, reason: str) -> None:
        self.finished += 1
        if value is not None and (self.best is None or value > self.best[0]):
            self.best = (value, number)
        best = f"{self.best[0]:.4f} (trial {self.best[1]})" if self.best else "-"
        objective = self.plan.cfg.search.objective
        shown = f"{objective}={value:.4f}" if value is not None else reason.split(":", 1)[0]
        running = (
            ", ".join(f"{w.spec.name}:#{w.trial[1]}" for w in self.workers.values() if w.trial)
            or "none"
        )
        self.progress(
            f"[{self.finished}/{self.n_trials} finished, {self.asked} asked] "
            f"trial {number} {state} {shown} | best {objective} {best} | running: {running}"
        )

    def _ensure_run(self, trial: tuple[int, int], worker_name: str) -> None:
        """A trial that died before its worker opened its MLflow run still gets one (FAILED),
        so every trial has exactly one child run."""
        from segsweep.store.tracking import Tracker

        trial_id, number = trial
        if self.study.get_trials(deepcopy=False)[number].user_attrs.get("mlflow_run_id"):
            return
        tracker = Tracker(self.plan.tracking_uri)
        run_id = tracker.start_run(
            self.plan.experiment_id,
            name=f"trial-{number}",
            parent_id=self.plan.parent_id,
            tags={"trial": number, "worker": worker_name},
        )
        storage = self.study._storage  # Study has no public setter for a trial it did not ask
        storage.set_trial_user_attr(trial_id, "mlflow_run_id", run_id)
        storage.set_trial_user_attr(trial_id, "tracking_uri", tracker.uri)

    def _fail_running(
        self, worker: _Worker, reason: str, *, status: str = "FAILED", retry: bool = False
    ) -> None:
        """End the worker's trial as FAIL with ``reason``, in Optuna and in MLflow."""
        if worker.trial is not None:
            trial, worker.trial, worker.run_id = worker.trial, None, None
            self._fail(trial, worker.spec.name, reason, status=status, retry=retry)

    def _fail(
        self, trial: tuple[int, int], worker_name: str, reason: str, *, status: str, retry: bool
    ) -> None:
        from segsweep.store.recovery import fail_trial

        self._ensure_run(trial, worker_name)
        fail_trial(self.study, trial[1], reason, status=status, retry=retry)
        self._finished(trial[1], "FAIL", None, reason)

    def _lost(self, worker: _Worker) -> None:
        code = worker.process.exitcode
        if code == 0 and worker.trial is not None and worker.run_id is None:
            self.requeued.append(worker.trial)  # it left cleanly before starting the trial
            worker.trial = None
        reason = f"worker died (signal {-code})" if code and code < 0 else f"worker exited ({code})"
        self._fail_running(worker, reason, retry=True)
        del self.workers[worker.spec.index]
        if self.requeued or self._may_ask():  # only for a trial to run, never to idle at the end
            self._start(worker.spec)

    def _abort(self, reason: str) -> None:
        """Kill the workers now and end their trials as FAIL with ``reason``; nothing RUNNING."""
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C kills at once
        status = "KILLED" if reason == "interrupted" else "FAILED"
        for worker in list(self.workers.values()):
            worker.process.kill()
            worker.process.join(timeout=10)
            self._fail_running(worker, reason, status=status)
        self.workers.clear()
        while self.requeued:  # asked, and no worker had started them yet
            self._fail(self.requeued.pop(), "-", reason, status=status, retry=False)

    def _shutdown(self) -> None:
        for worker in self.workers.values():
            try:
                worker.conn.send(("stop",))
            except (BrokenPipeError, OSError):
                pass
        for worker in self.workers.values():
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
