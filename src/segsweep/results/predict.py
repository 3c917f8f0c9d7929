"""Apply a trained model to a folder of images: one PNG mask {0, 255} per image, original size.

The model comes from a ``.keras`` file, an MLflow run id, or ``study:NAME`` (the best trial's
model). Images are prepared exactly as in training (intensity rule, channels, bilinear resize,
stretched or padded as ``data.resize`` says); the lesion probability is cropped to where the
image lies, resized back bilinearly and thresholded
(:func:`~segsweep.data.geometry.to_original`), which gives smoother edges than resizing a
thresholded mask. A model trained on patches (its run's ``data.patch_size``) predicts each image
at its own size by overlapping windows instead (:func:`~segsweep.data.patches.predict_images`),
nothing resized.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segsweep.data.geometry import to_original
from segsweep.data.io import IMAGE_SUFFIXES, prepare_image, read_image
from segsweep.data.patches import fixed_batches, predict_images
from segsweep.errors import DataError, StudyError

__all__ = [
    "LoadedChampion",
    "LoadedModel",
    "list_images",
    "load_champion",
    "load_model",
    "predict_folder",
]

BATCH = 16  # images, or windows with patches, a model predicts at once


@dataclass(frozen=True)
class LoadedModel:
    net: Any  # a keras.Model; Keras is imported only once a model file is known to exist
    intensity: str  # how training scaled intensities, so inference scales the same way
    source: str
    resize: str = "stretch"  # how training made images square: "stretch" or "pad"
    slice_axis: str = "auto"  # volumes: data.slice_axis of the run
    ct_window: tuple = ()  # volumes with intensity "ct": the study's window
    patch_size: int = 0  # data.patch_size of the run: > 0 predicts by windows

    @property
    def image_size(self) -> int:
        return int(self.net.input_shape[1])

    @property
    def prepared_size(self) -> int | None:
        """The square images are prepared at, or None: their own size (patches)."""
        return None if self.patch_size else self.image_size

    @property
    def channels(self) -> int:
        return int(self.net.input_shape[-1])

    def probabilities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        predict = fixed_batches(self.net.predict_on_batch, BATCH)
        return predict_images(predict, images, window=self.patch_size, batch_size=BATCH)

    def mask(self, prob: np.ndarray, size: tuple[int, int], threshold: float | None) -> np.ndarray:
        t = 0.5 if threshold is None else threshold
        return to_original(prob, size, resize=self.resize, threshold=t)


@dataclass(frozen=True)
class LoadedChampion:
    """A study's champion (fold ensemble, TTA, post-processing) used like a single model."""

    champion: Any  # a segsweep.finalize.champion.Champion with its context loaded
    source: str

    @property
    def image_size(self) -> int:
        return self.champion.settings.image_size

    @property
    def prepared_size(self) -> int | None:
        return self.champion.settings.prepared_size

    @property
    def channels(self) -> int:
        return self.champion.settings.channels

    @property
    def intensity(self) -> str:
        return self.champion.settings.intensity

    @property
    def resize(self) -> str:
        return self.champion.settings.resize

    @property
    def slice_axis(self) -> str:
        return self.champion.settings.slice_axis

    @property
    def ct_window(self) -> tuple:
        return tuple(self.champion.settings.ct_window)

    def probabilities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        from segsweep.finalize.champion import champion_probabilities

        c = self.champion
        return champion_probabilities(c.nets, images, c.settings, batch_size=BATCH)

    def mask(self, prob: np.ndarray, size: tuple[int, int], threshold: float | None) -> np.ndarray:
        from segsweep.finalize.champion import champion_mask

        return champion_mask(prob, size, self.champion.settings, threshold=threshold)


def load_champion(model_uri: str, tracking_uri: str) -> LoadedChampion:
    """The champion registered by ``study finalize`` (``models:/NAME@champion``)."""
    import mlflow.pyfunc

    from segsweep.store.tracking import Tracker, fluent_tracking_uri

    with fluent_tracking_uri(Tracker(tracking_uri).uri):  # "" -> MLflow's default, resolved
        model = mlflow.pyfunc.load_model(model_uri)
    return LoadedChampion(model.unwrap_python_model(), f"{model_uri} (the study's champion)")


def _from_file(path: Path, intensity: str) -> LoadedModel:
    from segsweep.backend import choose_for_loading

    choose_for_loading()
    import keras

    from segsweep.model.unetpp import float32_model

    try:
        net = keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras raises ValueError, OSError, zipfile errors...
        raise DataError(f"{path} is not a loadable .keras model: {err}") from None
    if any(layer.dtype_policy.compute_dtype != "float32" for layer in net.layers):
        net = float32_model(net)  # saved by an older segsweep under mixed precision
    return LoadedModel(net, intensity, str(path))


def _window(net: Any, source: str) -> int:
    """The side of the square input a network trained on patches takes: its window."""
    height, width = net.input_shape[1:3]
    if height is None or height != width:
        took = "any input size" if height is None or width is None else f"{height}x{width} input"
        raise DataError(f"{source} takes {took}, not a square window to predict by; drop --windows")
    return int(height)


def _from_run(
    run_id: str, tracking_uri: str, intensity: str | None, resize: str | None, windows: bool | None
) -> LoadedModel:
    from segsweep.store.tracking import Tracker

    tracker = Tracker(tracking_uri)
    try:
        params = tracker.client.get_run(run_id).data.params
    except Exception:  # noqa: BLE001 - MLflow's error text is long; say what was looked up
        raise StudyError(
            f"no MLflow run {run_id!r} in {tracker.uri}; MODEL must be a .keras "
            "file, an MLflow run id or study:NAME"
        ) from None
    folder = tracker.download_model(run_id)
    files = sorted(folder.rglob("*.keras"))
    if not files:
        raise StudyError(f"the model of run {run_id} holds no .keras file")
    loaded = _from_file(files[0], intensity or params.get("data.intensity", "dtype"))
    # runs logged before data.resize existed were all stretched
    resize = resize or params.get("data.resize", "stretch")
    window = ast.literal_eval(params.get("data.ct_window", "()"))
    axis = params.get("data.slice_axis", "auto")
    patch = int(params.get("data.patch_size", "0"))  # runs before patches: whole images
    if windows is not None:
        patch = _window(loaded.net, f"run {run_id}") if windows else 0
    return LoadedModel(loaded.net, loaded.intensity, f"run {run_id}", resize, axis, window, patch)


def load_model(
    ref: str,
    *,
    tracking_uri: str = "",
    intensity: str | None = None,
    resize: str | None = None,
    windows: bool | None = None,
    best_run: Callable[[str], str] | None = None,
) -> LoadedModel:
    """``ref``: a ``.keras`` path, an MLflow run id, or ``study:NAME`` resolved by ``best_run``.

    ``intensity``, ``resize`` and ``windows`` (predict by windows of the network's input size,
    as a model trained on patches) default to the run's own settings; a bare ``.keras`` file
    has none recorded, so it defaults to "dtype", "stretch" and whole images.
    """
    if ref.startswith("study:"):
        if best_run is None:
            raise StudyError("study:NAME needs a study to look up")
        run = best_run(ref.removeprefix("study:"))
        return _from_run(run, tracking_uri, intensity, resize, windows)
    path = Path(ref)
    if path.suffix == ".keras":
        if not path.is_file():
            raise DataError(f"{path}: no such model file")
        loaded = _from_file(path, intensity or "dtype")
        patch = _window(loaded.net, str(path)) if windows else 0
        return LoadedModel(
            loaded.net, loaded.intensity, loaded.source, resize or "stretch", patch_size=patch
        )
    return _from_run(ref, tracking_uri, intensity, resize, windows)


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of images")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(f"{folder} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return files


def predict_folder(
    model: LoadedModel | LoadedChampion,
    images_dir: Path,
    out_dir: Path,
    *,
    threshold: float | None = None,
    batch_size: int = 16,
) -> int:
    """Write ``out_dir/<stem>.png`` for every image (``<case>.nii.gz`` for every NIfTI
    volume); returns how many were written."""
    from segsweep.results.predict_nifti import has_volumes, predict_volumes

    if has_volumes(images_dir):
        return predict_volumes(model, images_dir, out_dir, threshold=threshold)
    files = list_images(images_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        raws = [read_image(p) for p in chunk]
        images = [
            prepare_image(
                r,
                image_size=model.prepared_size,
                channels=model.channels,
                intensity=model.intensity,
                name=p.name,
                resize=model.resize,
            )
            for r, p in zip(raws, chunk, strict=True)
        ]
        prob = model.probabilities(images)
        for raw, p, path in zip(raws, prob, chunk, strict=True):
            mask = model.mask(p, raw.shape[:2], threshold)
            Image.fromarray(mask, mode="L").save(out_dir / f"{path.stem}.png")
    return len(files)
