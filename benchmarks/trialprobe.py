"""One real trial in a fresh process, as a ``study run`` worker runs it, with a stopwatch on it.

``python -m benchmarks.trialprobe STUDY LAUNCH_TIME`` (in the study's working directory) does what
:func:`~segsweep.study.workers.worker_main` does — import TensorFlow, load the data once, open the
study and the MLflow store — then asks one trial and runs it with
:func:`segsweep.trial.objective.run_trial`. Nothing of segsweep is changed: ``keras.Model.fit`` gets
two timing callbacks (one first, one right after the validation callback) and the ``Tracker``
methods are timed. It prints one JSON line of timestamps and totals on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

__all__ = ["main"]


def _timed_tracker(calls: list[tuple[str, float, float]]) -> None:
    """Record (method, start, seconds) of every Tracker call."""
    from segsweep.store.tracking import Tracker

    def wrap(name: str) -> None:
        original = getattr(Tracker, name)

        def timed(self, *args: Any, **kwargs: Any) -> Any:
            start = time.time()
            try:
                return original(self, *args, **kwargs)
            finally:
                calls.append((name, start, time.time() - start))

        setattr(Tracker, name, timed)

    for name in (
        "start_run",
        "log_params",
        "set_tags",
        "log_metrics",
        "log_image",
        "log_text",
        "log_keras_model",
        "end_run",
    ):
        wrap(name)


def _epoch_clock(epochs: list[dict[str, Any]], marks: dict[str, float]) -> None:
    """Time every epoch: begin, last step done, validation done, all callbacks done."""
    import keras

    class Begin(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            epochs.append({"begin": time.time(), "steps": []})

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            self.step = time.time()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            float((logs or {}).get("loss", 0.0))  # waits for the step
            epochs[-1]["trained"] = time.time()
            epochs[-1]["steps"].append(time.time() - self.step)

    class Mark(keras.callbacks.Callback):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            epochs[-1][self.key] = time.time()

    original = keras.Model.fit

    def fit(self, *args: Any, callbacks: list | None = None, **kwargs: Any) -> Any:
        callbacks = list(callbacks or [])
        names = [type(c).__name__ for c in callbacks]
        if "ValidationMetrics" not in names:
            raise RuntimeError(f"no ValidationMetrics callback among {names}")
        callbacks.insert(names.index("ValidationMetrics") + 1, Mark("validated"))
        marks["fit"] = time.time()
        try:
            return original(self, *args, callbacks=[Begin(), *callbacks, Mark("end")], **kwargs)
        finally:
            marks["fit_end"] = time.time()

    keras.Model.fit = fit


def main(argv: list[str] | None = None) -> None:
    marks: dict[str, float] = {"main": time.time()}
    name, launched = (argv or sys.argv[1:])[:2]
    marks["launch"] = float(launched)
    from segsweep.backend import activate
    from segsweep.config import load_config
    from segsweep.store.storage import STUDIES_DIR
    from segsweep.study.workers import exit_now

    cfg = load_config(STUDIES_DIR / f"{name}.toml")
    activate("tensorflow", onednn=cfg.train.onednn)  # as a CPU worker does, before TF loads
    import tensorflow  # noqa: F401  - timed on its own: the largest import

    marks["tensorflow"] = time.time()
    from segsweep.store.storage import load_study, storage_url
    from segsweep.store.tracking import Tracker
    from segsweep.trial import objective

    marks["imports"] = time.time()
    data = objective.load_worker_data(cfg)
    marks["data"] = time.time()
    study = load_study(cfg.study.name, storage_url(cfg), cfg)
    tracker = Tracker(cfg.tracking.uri)
    experiment = tracker.experiment(cfg.study.name)
    trial = study.ask()
    marks["opened"] = time.time()
    calls: list[tuple[str, float, float]] = []
    epochs: list[dict[str, Any]] = []
    _timed_tracker(calls)
    _epoch_clock(epochs, marks)
    outcome = objective.run_trial(
        study,
        trial._trial_id,
        data,
        cfg,
        tracker=tracker,
        experiment_id=experiment,
        parent_id="",
        worker="probe",
        device="CPU",
    )
    marks["trial_end"] = time.time()
    result = {"marks": marks, "epochs": epochs, "tracker": calls, "state": outcome.state}
    print(json.dumps(result), flush=True)
    exit_now()  # as a worker ends


if __name__ == "__main__":
    main()
