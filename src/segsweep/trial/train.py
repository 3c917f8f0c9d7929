"""One training run: build, compile, fit, and measure on the whole validation set every epoch.

Every epoch's logs hold ``loss`` (what Keras optimises and reports), split into ``loss_data`` (the
loss function alone) and ``loss_l2`` (the sum of the kernel penalties), the learning rate, and the
hard validation metrics ``val_*`` of :mod:`segsweep.evaluation.metrics` (computed by
:mod:`.validation`'s callbacks). Tracking and pruning plug in as extra Keras callbacks; this
module knows neither Optuna nor MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from segsweep import reproducible
from segsweep.backend import accelerator_settings
from segsweep.config import Config
from segsweep.data.pipeline import patch_dataset, train_dataset
from segsweep.model.losses import get_loss
from segsweep.model.unetpp import build_unetpp, float32_model, inference_model
from segsweep.trial.validation import History, KeepBest, ValidationMetrics

__all__ = [
    "Split",
    "FitResult",
    "LossSplitModel",
    "build_model",
    "fit",
    "make_optimizer",
]


@dataclass(frozen=True)
class Split:
    """The arrays of one train/validation split, decoded once per worker."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    # each validation image's case (a patient, a volume), so val_lesion_dsc averages over
    # cases as finalize does; None: every image is its own case
    val_cases: tuple[str, ...] | None = None
    # volume data: how validation slices stack into case volumes (an evaluation.cases.CaseIndex),
    # scored in 3D every epoch (val_case_*), and the least share of lesion slices in each
    # training batch
    val_volumes: Any = None
    lesion_oversample: float = 0.0
    # patches (data.patch_size): the arrays hold images at their own sizes on a canvas, each
    # in its (h, w) region; None: every image fills its array (the model's square)
    train_sizes: tuple | None = None
    val_sizes: tuple | None = None


@dataclass
class FitResult:
    history: dict[str, list[float]]
    best_epoch: int  # 1-based; 0 when no epoch finished
    best_value: float
    net: keras.Model  # the float32 inference model holding the best epoch's weights
    stopped_early: bool = False


class LossSplitModel(keras.Model):
    """Wraps the network so each step records the data loss and the penalty apart.

    Keras adds every regularisation penalty to the loss it reports; this is why a Dice loss
    "bounded by 1" can read above 1. Overriding ``compute_loss`` is the Keras 3 extension point.
    """

    def __init__(self, net: keras.Model, data_loss: keras.losses.Loss, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.net = net
        self.data_loss = data_loss
        self.loss_data_tracker = keras.metrics.Mean(name="loss_data")
        self.loss_l2_tracker = keras.metrics.Mean(name="loss_l2")

    def call(self, x: Any, training: bool = False) -> Any:
        return self.net(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        heads = y_pred if isinstance(y_pred, list | tuple) else [y_pred]
        # Deep supervision: every head is trained on the same mask, weighted equally.
        data = ops.mean(ops.stack([ops.cast(self.data_loss(y, p), "float32") for p in heads]))
        penalties = [ops.cast(loss, "float32") for loss in self.losses]
        reg = ops.sum(ops.stack(penalties)) if penalties else ops.zeros((), "float32")
        # Keras weights its epoch mean of ``loss`` by batch size; the parts must match it, or
        # a short last batch makes loss != loss_data + loss_l2
        size = ops.shape(x)[0]
        self.loss_data_tracker.update_state(data, sample_weight=size)
        self.loss_l2_tracker.update_state(reg, sample_weight=size)
        return data + reg

    @property
    def metrics(self) -> list:
        return [*super().metrics, self.loss_data_tracker, self.loss_l2_tracker]


def build_model(params: dict[str, Any], *, in_channels: int, image_size: int) -> keras.Model:
    return build_unetpp(
        depth=int(params["depth"]),
        base_filters=int(params["base_filters"]),
        dropout=float(params["dropout"]),
        batch_norm=bool(params["batch_norm"]),
        bn_momentum=float(params.get("bn_momentum", 0.9)),
        l2=float(params["l2"]),
        deep_supervision=bool(params["deep_supervision"]),
        in_channels=in_channels,
        image_size=image_size,
    )


def make_optimizer(params: dict[str, Any], *, total_steps: int) -> keras.optimizers.Optimizer:
    lr = float(params["lr"])
    schedule = params["schedule"]
    if schedule == "poly":  # the "poly" policy of segmentation papers: lr·(1 − t/T)^0.9
        lr = keras.optimizers.schedules.PolynomialDecay(
            lr, total_steps, end_learning_rate=0.0, power=0.9
        )
    elif schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, total_steps)
    return keras.optimizers.Adam(learning_rate=lr)


def _batches(split: Split, cfg: Config, *, seed: int, steps: int) -> tuple[Any, int | None]:
    """The training input and the ``steps_per_epoch`` Keras is given (None: one pass).

    With patches every batch is a fresh draw of random patches, endlessly, so an epoch is
    ``steps`` batches by definition; ``train.steps_per_epoch`` 0 then means as many steps as one
    pass of the whole images would take (ceil(images / batch)), so patch and whole-image
    training of one study take the same number of updates."""
    if cfg.data.patch_size:
        patches = patch_dataset(
            split.train_x,
            split.train_y,
            split.train_sizes,
            patch_size=cfg.data.patch_size,
            batch_size=cfg.train.batch_size,
            steps=steps,
            augment=cfg.augment,
            seed=seed,
            lesion_oversample=split.lesion_oversample,
        )
        return patches, steps
    data = train_dataset(
        split.train_x,
        split.train_y,
        batch_size=cfg.train.batch_size,
        augment=cfg.augment,
        seed=seed,
        lesion_oversample=split.lesion_oversample,
    )
    if cfg.train.steps_per_epoch:  # Keras then keeps one iterator across epochs
        data = _passes(data) if isinstance(data, keras.utils.PyDataset) else data.repeat()
    return data, cfg.train.steps_per_epoch or None


def _passes(data: Any) -> Any:  # a PyDataset without end, shuffled again after each pass
    while True:
        yield from (data[i] for i in range(len(data)))
        data.on_epoch_end()


def fit(
    params: dict[str, Any],
    split: Split,
    cfg: Config,
    *,
    seed: int,
    callbacks: list[keras.callbacks.Callback] = (),
    on_validation: Callable[[ValidationMetrics], None] | None = None,
    keep_best: bool = True,
) -> FitResult:
    """Train one configuration; ``callbacks`` run after the validation metrics are in the logs.

    With ``keep_best`` the returned model holds the weights of the epoch with the best objective
    (the search's choice); without, the last epoch's (cross-validation folds: choosing an epoch
    on the held-out fold would make its out-of-fold score optimistic).

    ``on_validation`` receives the validation callback, whose ``last_prob`` holds the latest
    predictions of the whole validation set (for overlays drawn without predicting again).

    With ``data.patch_size`` the network takes patches of that size, trains on random patches
    of the images at their own resolution, and is validated on whole images by windows.
    """
    keras.utils.set_random_seed(seed)
    reproducible.apply(cfg.train.deterministic)
    accel = accelerator_settings(cfg)
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if accel["mixed_precision"] else "float32"
    )
    size = cfg.data.patch_size or cfg.data.image_size
    net = build_model(params, in_channels=split.train_x.shape[-1], image_size=size)
    infer = inference_model(net)
    loss = get_loss(
        params["loss"],
        dice_w2=float(params.get("dice_w2", 0.7)),
        smooth=float(params["smooth"]),
        per_image=params["dice_reduction"] == "image",
    )
    model = LossSplitModel(net, loss)
    steps = cfg.train.steps_per_epoch or math.ceil(len(split.train_x) / cfg.train.batch_size)
    model.compile(
        optimizer=make_optimizer(params, total_steps=steps * cfg.train.epochs),
        jit_compile=accel["jit_compile"] and not cfg.train.eager,
        run_eagerly=cfg.train.eager,
    )
    data, steps_per_epoch = _batches(split, cfg, seed=seed, steps=steps)
    val = ValidationMetrics(
        infer,
        split.val_x,
        split.val_y,
        threshold=cfg.train.threshold,
        batch_size=2 * cfg.train.batch_size,
        lesions=cfg.metrics,
        cases=split.val_cases,
        volumes=split.val_volumes,
        window=cfg.data.patch_size,
        sizes=split.val_sizes,
    )
    if on_validation is not None:
        on_validation(val)
    best, history = KeepBest(infer, cfg.search.objective), History()
    model.fit(
        data,
        epochs=cfg.train.epochs,
        steps_per_epoch=steps_per_epoch,
        verbose=0,
        shuffle=False,  # shuffled by the input pipeline
        callbacks=[val, best, history, *callbacks],
    )
    epochs = len(history.values.get("loss", []))
    if keep_best and best.weights is not None:
        infer.set_weights(best.weights)
        best_epoch, best_value = best.best_epoch, best.best_value
    else:
        last = history.values.get(cfg.search.objective, [math.nan])[-1]
        best_epoch, best_value = epochs, last
    return FitResult(
        history=history.values,
        best_epoch=best_epoch,
        best_value=best_value,
        # what is logged and predicted with: float32, so it runs at full speed on any CPU
        net=float32_model(infer) if accel["mixed_precision"] else infer,
        stopped_early=epochs < cfg.train.epochs,
    )
