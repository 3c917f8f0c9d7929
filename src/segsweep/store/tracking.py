"""MLflow: one experiment per study, a parent run per ``study run``, a child run per trial.

Runs are addressed by id through ``MlflowClient`` so a coordinator and several worker processes
can write to the same runs. The tracking URI is resolved once by the coordinator and handed to
workers, so every process writes to the same store whatever its working directory.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus

from segsweep.errors import StudyError
from segsweep.store.views import VIEW_TAG, saved_view

__all__ = [
    "Tracker",
    "EXPERIMENT_KIND",
    "RUN_STATUS",
    "package_versions",
]

# MLflow 3's UI opens an experiment without this tag in its GenAI view (traces), one toggle away
# from the runs and their metric columns; this kind opens it in the model-training view.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

# Optuna trial state -> MLflow run status.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
# The installed ones are recorded: a machine may hold one backend of three, or mlflow-skinny.
_PACKAGES = (
    "segsweep", "tensorflow", "jax", "jaxlib", "torch", "keras", "optuna", "mlflow",
    "mlflow-skinny", "numpy", "scikit-learn",
)  # fmt: skip


def package_versions() -> dict[str, str]:
    found = {}
    for package in _PACKAGES:
        try:
            found[f"version.{package}"] = version(package)
        except PackageNotFoundError:
            pass
    found["version.python"] = platform.python_version()
    return found


def _chunks(items: list, size: int = 100) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# Several workers write to one SQLite file. SQLite allows one writer at a time: each connection
# waits up to SQLITE_TIMEOUT s for the lock (MLflow's default is 5 s), and a call that still
# finds the database locked is retried with jittered backoff. Writes are small (one batch per
# epoch), so waiting is cheap; losing a metric is not.
SQLITE_TIMEOUT = 60
RETRIES = 8


def _sqlite_parts(uri: str) -> tuple[str, str] | None:
    """(file path, query) of a ``sqlite:///`` URI; None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path, _, query = uri.removeprefix("sqlite:///").partition("?")
    return path, query


def _patient_uri(uri: str) -> str:
    """The same SQLite file by its absolute path, with a longer lock wait; other stores as given.

    The absolute path is what workers, recovery and ``explain`` get (it is stored with each
    trial), so they find the store from any working directory.
    """
    if (parts := _sqlite_parts(uri)) is None:
        return uri
    path, query = parts
    if path and path != ":memory:":
        path = str(Path(path).absolute())  # absolute() is "/..." so the URI gets its 4th slash
    if "timeout=" not in query:
        query = "&".join(q for q in (query, f"timeout={SQLITE_TIMEOUT}") if q)
    return f"sqlite:///{path}?{query}"


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: beside the SQLite file, else the store's default.

    MLflow's SQLite store puts artifacts under ``./mlruns/<experiment id>`` of whatever folder
    the process was started in, so two stores used from one folder (a study with
    ``--tracking-uri sqlite:///elsewhere.db`` next to the default ``mlflow.db``) would write
    into each other's ``mlruns/1``. Naming the folder after the experiment, next to the
    database, keeps every store's files with it.
    """
    if (parts := _sqlite_parts(uri)) is None:
        return None  # a server or a database: its own --default-artifact-root decides
    database = Path(parts[0])
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", experiment)
    return (database.resolve().parent / "mlruns" / folder).as_uri()


def with_retries(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    for attempt in range(RETRIES):
        try:
            return call(*args, **kwargs)
        except Exception as err:  # MLflow wraps the driver's OperationalError in its own types
            if "database is locked" not in str(err) or attempt == RETRIES - 1:
                raise
            time.sleep(min(0.05 * 2**attempt, 2.0) * (1 + random.random()))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``start_run``, ``log_model``) at ``uri`` for one block.

    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI``, which every process
    started afterwards inherits: left set, one study's URI would silently redirect the runs of
    the next study run from the same Python process (a notebook, a test session) or its children.
    The variable and MLflow's own setting are put back as they were when the block ends.
    """
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None unsets both MLflow's setting and the variable


class _PatientClient:
    """``MlflowClient`` whose every call is retried while SQLite reports a locked database."""

    def __init__(self, client: MlflowClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return functools.partial(with_retries, attr)


class Tracker:
    """A thin layer over ``MlflowClient`` that speaks in studies, trials and epochs."""

    def __init__(self, uri: str = "") -> None:
        self.uri = _patient_uri(uri or mlflow.get_tracking_uri())
        self.client = _PatientClient(MlflowClient(tracking_uri=self.uri))

    def experiment(self, name: str) -> str:
        """The id of the study's experiment, created (and tagged for the UI) when missing."""
        try:
            found = self.client.get_experiment_by_name(name)
            if found:
                for key, value in EXPERIMENT_KIND.items():
                    if key not in found.tags:  # made by a segsweep without the tag
                        self.client.set_experiment_tag(found.experiment_id, key, value)
                return found.experiment_id
            return self.client.create_experiment(
                name, artifact_location=_artifact_location(self.uri, name), tags=EXPERIMENT_KIND
            )
        except Exception as err:  # MLflow raises many types; the user needs the URI
            raise StudyError(f"cannot open MLflow tracking store {self.uri}: {err}") from None

    def start_run(
        self,
        experiment_id: str,
        *,
        name: str,
        tags: Mapping[str, Any],
        parent_id: str | None = None,
    ) -> str:
        tags = {k: str(v) for k, v in tags.items()}
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        return self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id

    def save_view(
        self,
        experiment_id: str,
        key: str,
        *,
        name: str,
        study_name: str,
        objective: str,
        params: Sequence[str],
        tags: Sequence[str] = (),
    ) -> None:
        """Write (or overwrite) saved view ``key``: the trial runs of Optuna study
        ``study_name``, best ``objective`` first, with the lesion metrics, ``params`` and
        ``tags`` as columns. Opened by :func:`~segsweep.store.views.view_path`."""
        view = saved_view(name, study_name, objective, params, tags)
        self.client.set_experiment_tag(experiment_id, VIEW_TAG + key, view)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(k, str(v)) for k, v in sorted(params.items())]
        for chunk in _chunks(items):
            self.client.log_batch(run_id, params=chunk, synchronous=True)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, str(value))

    def log_metrics(self, run_id: str, values: Mapping[str, float], *, step: int) -> None:
        now = int(1000 * time.time())
        metrics = [
            Metric(k, float(v), now, step) for k, v in sorted(values.items()) if np.isfinite(v)
        ]
        for chunk in _chunks(metrics, 1000):
            self.client.log_batch(run_id, metrics=chunk, synchronous=True)

    def log_image(self, run_id: str, image: np.ndarray, path: str) -> None:
        self.client.log_image(run_id, image, artifact_file=path)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def log_file(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    def log_keras_model(self, run_id: str, net: Any) -> None:
        """The model as an MLflow Keras model, loadable with ``mlflow.keras.load_model``."""
        from mlflow.models import infer_signature

        from segsweep.backend import requirement

        pins = [requirement(), f"keras=={version('keras')}"]  # the backend it was trained on
        shape = tuple(int(d) for d in net.input_shape[1:])
        signature = infer_signature(
            np.zeros((1, *shape), np.float32), np.zeros((1, *shape[:2], 1), np.float32)
        )
        with_retries(self._log_model, run_id, net, pins, signature)

    def _log_model(self, run_id: str, net: Any, pins: list[str], signature: Any) -> None:
        import mlflow.keras

        with fluent_tracking_uri(self.uri), mlflow.start_run(run_id=run_id):
            mlflow.keras.log_model(net, name="model", pip_requirements=pins, signature=signature)
        # start_run(run_id) ends the run as FINISHED on exit; the caller sets the real status.

    def end_run(self, run_id: str, status: str, description: str | None = None) -> None:
        if description:
            self.client.set_tag(run_id, "mlflow.note.content", description)
        self.client.set_terminated(run_id, status=status)

    def run_status(self, run_id: str) -> str:
        return RunStatus.to_string(RunStatus.from_string(self.client.get_run(run_id).info.status))

    def download_model(self, run_id: str) -> Path:
        target = Path(tempfile.mkdtemp(prefix="segsweep-model-"))
        try:
            # runs:/ finds an MLflow 3 logged model through the fluent URI, not tracking_uri=
            with fluent_tracking_uri(self.uri):
                path = mlflow.artifacts.download_artifacts(
                    f"runs:/{run_id}/model", dst_path=str(target), tracking_uri=self.uri
                )
            return Path(path)
        except Exception as err:
            raise StudyError(
                f"no model logged for MLflow run {run_id} in {self.uri}: {str(err).splitlines()[0]}"
            ) from None
