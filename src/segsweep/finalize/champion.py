"""The champion: one deployable model made of a configuration's k fold models.

:class:`Champion` is an MLflow ``PythonModel``. Its input is a batch of images already prepared
as in training: float32, shape ``(N, S, S, C)``, intensities
in [0, 1] by the study's ``data.intensity`` rule, ``S`` = ``data.image_size``; ``segsweep
predict`` does that preparation and maps masks back to each image's original size. Its output is
the lesion masks, uint8 ``(N, S, S)`` in {0, 1}: the fold models' probabilities averaged (and,
with test-time augmentation, averaged with the prediction of the horizontally flipped image,
flipped back), thresholded, then predicted components smaller than ``min_component_px`` removed.

A study trained on patches (``data.patch_size`` P) takes images at their own size instead,
``(N, H, W, C)`` with any H and W, not resized, and predicts each by overlapping P x P windows
blended with Gaussian weights (:func:`~segsweep.data.patches.predict_images`, as validation
did); its masks are ``(N, H, W)``.

Small components are removed where their size was chosen: at the model's resolution, on the
thresholded probability, before any resizing (:func:`keep_components`). ``predict`` and the
finalize test scoring resize what is left, so they never drop a component the served model keeps
(or the reverse), whatever each image's own size.

It loads with ``mlflow.pyfunc.load_model("models:/NAME@champion")`` wherever segsweep is
installed, and serves with ``mlflow models serve``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np

from segsweep.data.geometry import to_original
from segsweep.data.patches import predict_images
from segsweep.evaluation.sets import drop_small_components

__all__ = [
    "Champion",
    "ChampionSettings",
    "champion_mask",
    "champion_probabilities",
    "ensemble_probabilities",
    "keep_components",
    "log_champion",
]


@dataclass(frozen=True)
class ChampionSettings:
    image_size: int
    channels: int
    intensity: str
    resize: str  # how images were made square: "stretch" or "pad" (data.resize)
    threshold: float
    tta: bool
    min_component_px: int
    trial: int  # the search trial whose configuration this is
    study: str
    slice_axis: str = "auto"  # volumes: how slices were cut (data.slice_axis)
    ct_window: tuple = ()  # volumes with intensity "ct": the study's window
    patch_size: int = 0  # data.patch_size: > 0 predicts images at their own size by windows

    @property
    def prepared_size(self) -> int | None:
        """The square images are prepared at, or None: each at its own size (patches)."""
        return None if self.patch_size else self.image_size


def ensemble_probabilities(nets: list[Any], batch: np.ndarray, *, tta: bool) -> np.ndarray:
    """Lesion probability ``(N, S, S)``: the mean over ``nets`` (and over a horizontal flip)."""
    batch = np.asarray(batch, np.float32)
    views = [batch, batch[:, :, ::-1]] if tta else [batch]
    total = np.zeros(batch.shape[:3], np.float64)
    for net in nets:
        for i, view in enumerate(views):
            prob = np.asarray(net.predict_on_batch(np.ascontiguousarray(view)))[..., 0]
            total += prob[:, :, ::-1] if i else prob
    return (total / (len(nets) * len(views))).astype(np.float32)


def champion_probabilities(
    nets: list[Any], images: Any, settings: ChampionSettings, *, batch_size: int = 16
) -> list[np.ndarray]:
    """Each prepared (H, W, C) image's lesion probability by the fold models averaged (with
    flip TTA as ``settings.tta`` says): whole, or by windows of ``settings.patch_size``."""
    return predict_images(
        lambda b: ensemble_probabilities(nets, b, tta=settings.tta),
        images,
        window=settings.patch_size,
        batch_size=batch_size,
    )


def keep_components(prob: np.ndarray, threshold: float, min_px: int) -> np.ndarray:
    """``prob`` (S, S) with the predicted components under ``min_px`` pixels set to 0.

    Their 8-neighbours are all at or below ``threshold``, and bilinear resizing averages with
    non-negative weights, so nothing interpolated from a removed component rises above the
    threshold: it stays removed at any size, and the kept ones are untouched."""
    pred = prob > threshold
    dropped = pred & ~drop_small_components(pred, min_px)
    return np.where(dropped, 0, prob).astype(prob.dtype, copy=False)


def champion_mask(
    prob: np.ndarray,
    size: tuple[int, int],
    settings: ChampionSettings,
    *,
    threshold: float | None = None,
) -> np.ndarray:
    """The champion's {0, 255} mask of an image of ``size`` (H, W) from its (S, S) probability:
    components below ``min_component_px`` removed at the model's resolution, then resized back
    and thresholded as ``predict`` does."""
    t = settings.threshold if threshold is None else threshold
    kept = keep_components(prob, t, settings.min_component_px)
    return to_original(kept, size, resize=settings.resize, threshold=t)


with contextlib.redirect_stderr(io.StringIO()):
    # MLflow asks for type hints on predict to infer a signature from them; the input is an
    # array of images, not records, and the signature logged with the model documents it.
    # (MLflow resets the warning filters around that check, so only its output can be hushed.)

    class Champion(mlflow.pyfunc.PythonModel):
        """Fold ensemble + optional flip TTA + small-component removal, as one pyfunc model."""

        def load_context(self, context: Any) -> None:
            from segsweep.backend import choose_for_loading

            choose_for_loading()
            import keras

            arts = context.artifacts
            self.settings = ChampionSettings(**json.loads(Path(arts["settings"]).read_text()))
            folds = sorted(k for k in arts if k.startswith("fold_"))
            self.nets = [keras.saving.load_model(arts[k], compile=False) for k in folds]

        def probabilities(self, batch: np.ndarray) -> np.ndarray:
            batch = np.asarray(batch, np.float32)
            if batch.ndim == 3:
                batch = batch[..., None]
            s = self.settings
            size = s.prepared_size
            if (
                batch.ndim != 4
                or batch.shape[-1] != s.channels
                or (size is not None and batch.shape[1:3] != (size, size))
            ):
                side = "H, W" if size is None else f"{size}, {size}"
                raise ValueError(
                    f"the champion takes float32 images of shape (N, {side}, {s.channels}) in "
                    f"[0, 1]. Got {batch.shape} instead."
                )
            return np.stack(champion_probabilities(self.nets, batch, s))

        def masks_from(self, prob: np.ndarray) -> np.ndarray:
            s = self.settings
            return np.stack(
                [drop_small_components(p > s.threshold, s.min_component_px) for p in prob]
            ).astype(np.uint8)

        def predict(self, context, model_input, params=None):  # noqa: ANN001 - MLflow reads hints
            return self.masks_from(self.probabilities(np.asarray(model_input)))


def log_champion(
    run_id: str,
    tracking_uri: str,
    fold_models: list[Path],
    settings: ChampionSettings,
    *,
    registered_name: str,
    workdir: Path,
) -> tuple[str, int]:
    """Log the champion to ``run_id``, register it as ``registered_name`` with alias
    ``champion``; returns (``models:/NAME@champion``, version)."""
    from mlflow import MlflowClient

    from segsweep.store.tracking import fluent_tracking_uri

    settings_file = workdir / "champion.json"
    settings_file.write_text(json.dumps(asdict(settings), indent=2))
    artifacts = {f"fold_{i}": str(p) for i, p in enumerate(fold_models)}
    artifacts["settings"] = str(settings_file)
    signature = _signature(settings)
    with (
        fluent_tracking_uri(tracking_uri),
        mlflow.start_run(run_id=run_id),
        warnings.catch_warnings(),
    ):
        # MLflow warns that a Python object is pickled (Champion holds no state until
        # load_context) and that no input example was given (the signature documents the input)
        warnings.simplefilter("ignore", UserWarning)
        logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
        info = mlflow.pyfunc.log_model(
            name="champion",
            python_model=Champion(),
            artifacts=artifacts,
            signature=signature,
            pip_requirements=_requirements(),
            registered_model_name=registered_name,
        )
    client = MlflowClient(tracking_uri=tracking_uri)
    version = int(info.registered_model_version)
    client.set_registered_model_alias(registered_name, "champion", str(version))
    return f"models:/{registered_name}@champion", version


def _signature(settings: ChampionSettings) -> Any:
    """The input and output shapes: (N, S, S, C) -> (N, S, S), or any H and W with patches."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    size, ch = settings.prepared_size or -1, settings.channels
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, size, size, ch))]),
        outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, size, size))]),
    )


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    from segsweep.backend import requirement

    try:
        tracking = f"mlflow=={version('mlflow')}"
    except PackageNotFoundError:  # a machine with mlflow-skinny alone
        tracking = f"mlflow-skinny=={version('mlflow-skinny')}"
    pinned = [f"{p}=={version(p)}" for p in ("segsweep", "keras", "numpy")]
    return [*pinned, requirement(), tracking]  # the backend of this process; the folds load on any
