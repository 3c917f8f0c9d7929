"""What a trial measures at each epoch's end: hard metrics over the whole validation set, the
epoch with the best objective kept, and every epoch's logs.

Split out of :mod:`.train`, which builds and fits the model these callbacks watch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from segsweep.config import MetricsSettings
from segsweep.data.patches import fixed_batches, predict_images, regions
from segsweep.errors import TrialFailed
from segsweep.evaluation.metrics import lesion_metrics, segmentation_metrics

__all__ = ["History", "KeepBest", "ValidationMetrics", "predict_set"]


class ValidationMetrics(keras.callbacks.Callback):
    """Hard metrics over the whole validation set at each epoch end, added to the logs.

    Keras' own validation averages batch metrics; the Dice papers report is per image and
    thresholded, so it is computed here from one prediction of the whole set. With patches
    (``window`` > 0) each validation image is predicted whole, at its own size (``sizes``: its
    region of the canvas), by overlapping windows, and scored there.
    """

    def __init__(
        self,
        net: keras.Model,
        val_x: np.ndarray,
        val_y: np.ndarray,
        *,
        threshold: float,
        batch_size: int,
        lesions: MetricsSettings,
        cases: tuple[str, ...] | None = None,
        volumes: Any = None,
        window: int = 0,
        sizes: tuple | None = None,
    ) -> None:
        super().__init__()
        self.net, self.val_x, self.val_y = net, val_x, val_y
        self.window, self.sizes = window, sizes
        self.cases, self.volumes = cases, volumes
        self.threshold, self.batch_size, self.lesions = threshold, batch_size, lesions
        self.last_prob: np.ndarray | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        loss = float(logs.get("loss", 0.0))
        if not math.isfinite(loss):
            kind = "NaN" if math.isnan(loss) else "infinite"
            raise TrialFailed(f"loss became {kind} at epoch {epoch + 1}")
        prob = predict_set(
            self.net.predict_on_batch,
            self.val_x,
            sizes=self.sizes,
            window=self.window,
            batch_size=self.batch_size,
        )[..., None]
        if not np.isfinite(prob).all():  # diverged weights can give NaN outputs at a finite loss
            raise TrialFailed(f"predictions became NaN at epoch {epoch + 1}")
        self.last_prob = prob
        scores = segmentation_metrics(self.val_y, prob, threshold=self.threshold)
        scores |= lesion_metrics(
            self.val_y,
            prob,
            threshold=self.threshold,
            match_dilation=self.lesions.match_dilation,
            min_lesion_px=self.lesions.min_lesion_px,
            cases=self.cases,
        )
        if self.volumes is not None:
            from segsweep.evaluation.cases import case_metrics

            scores |= case_metrics(
                self.val_y,
                prob,
                self.volumes,
                threshold=self.threshold,
                match_dilation=self.lesions.match_dilation,
                min_lesion_px=self.lesions.min_lesion_px,
            )
        logs.update({f"val_{k}": float(v) for k, v in scores.items()})
        logs["lr"] = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))


def predict_set(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    *,
    sizes: tuple | None,
    window: int,
    batch_size: int,
) -> np.ndarray:
    """(N, H, W) probabilities of a set held as in training: the model's squares, or images at
    their own sizes on a canvas (``sizes`` their regions; zeros outside them), each predicted
    by :func:`~segsweep.data.patches.predict_images` (whole, or by windows of ``window``), in
    batches of exactly ``batch_size`` so one graph serves them all."""
    maps = predict_images(
        fixed_batches(predict, batch_size), regions(x, sizes), window=window, batch_size=batch_size
    )
    out = np.zeros(x.shape[:3], np.float32)
    for row, prob in zip(out, maps, strict=True):
        row[: prob.shape[0], : prob.shape[1]] = prob
    return out


class KeepBest(keras.callbacks.Callback):
    """Holds the weights of the epoch with the highest objective (``val_dsc`` by default).

    An epoch that predicts no lesion pixel on a validation set that has lesions is chosen only
    when no epoch predicted any: its ``val_dsc`` is just the share of lesion-free images (each
    scores 1), which can beat a model that is still learning and would steer the search towards
    collapse.
    """

    def __init__(self, net: keras.Model, objective: str = "val_dsc") -> None:
        super().__init__()
        self.net, self.objective = net, objective
        self.best_value, self.best_epoch, self.weights = -math.inf, 0, None
        self._best_key: tuple[bool, float] = (False, -math.inf)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        predicts = logs.get("val_pred_fg", 1.0) > 0 or logs.get("val_true_fg", 0.0) == 0
        key = (predicts, logs[self.objective])
        if key > self._best_key:
            self._best_key = key
            self.best_value, self.best_epoch = logs[self.objective], epoch + 1
            self.weights = self.net.get_weights()


class History(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            self.values.setdefault(key, []).append(float(value))
