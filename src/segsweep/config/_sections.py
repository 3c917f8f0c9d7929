"""The sections of a study's settings: one frozen dataclass each, every field a setting."""

from __future__ import annotations

from dataclasses import dataclass

from segsweep.config._checks import (
    choices,
    float_in,
    int_in,
    is_bool,
    is_str,
    one_of,
    setting,
    value_range,
)
from segsweep.config._data import DataSettings
from segsweep.config._plan import PlanSettings

LOSSES = ("weighted_dice", "dice_ce", "focal_tversky")
SCHEDULES = ("constant", "poly", "cosine")
OBJECTIVES = (
    "val_dsc",
    "val_lesion_dsc",
    "val_lesion_f1",
    "val_dsc_global",
    # volume data: each case's slices stacked back into its volume and scored there
    "val_case_dsc",
    "val_case_lesion_dsc",
    "val_case_lesion_f1",
)


@dataclass(frozen=True)
class StudySettings:
    name: str = setting("lesion", "study name; also the MLflow experiment name", is_str)
    storage: str = setting(
        "",
        'Optuna storage: "" = studies/NAME.journal (safe for many local workers), '
        "or a URL such as sqlite:///x.db or postgresql://user@host/db",
        is_str,
    )


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = setting(20, "epochs per trial (the pruner's maximum resource)", int_in(1, 10000))
    batch_size: int = setting(8, "images per training step", int_in(1, 4096))
    steps_per_epoch: int = setting(
        0,
        "training steps per epoch; 0 = one pass over the training images. nnU-Net's 250 steps "
        "give a small set enough updates per epoch; `segsweep plan` picks it from the budget",
        int_in(0, 10**6),
    )
    threshold: float = setting(
        0.5,
        "probability above which a pixel counts as lesion in the hard metrics",
        float_in(0, 1, open_lo=True, open_hi=True),
    )

    backend: str = setting(
        "tensorflow",
        'the Keras backend every worker trains with: "tensorflow", "jax" or "torch" (install '
        "segsweep[jax] or segsweep[torch]); an exported KERAS_BACKEND takes the place of the "
        "default, and conflicts with any other value",
        one_of("tensorflow", "jax", "torch"),
    )
    mixed_precision: str = setting(
        "auto",
        '"auto" = float16 compute on a GPU, float32 on the CPU; "on"; "off"',
        one_of("auto", "on", "off"),
    )
    jit_compile: str = setting(
        "auto",
        '"auto" = Keras\' choice: XLA-compile the train step on TensorFlow with a GPU (not on '
        "the CPU), always on JAX (else it runs op by op), never on torch (there it means "
        'torch.compile, which compiles every trial\'s new model again); "on"; "off"',
        one_of("auto", "on", "off"),
    )
    eager: bool = setting(
        False,
        "run Keras op by op instead of compiling the train step (Keras' run_eagerly): for "
        "debugging a loss or a layer, and for smoke runs of a few steps, where tracing the "
        "graph costs more than the steps (a 3-step trial of a tiny UNet++ on the CPU: ~2 s "
        "against ~5 s); slower per step on real training",
        is_bool,
    )
    deterministic: bool = setting(
        False,
        "the same seed trains the same model: each backend's deterministic kernels "
        "(TensorFlow's op determinism, torch's deterministic algorithms, XLA's deterministic "
        "GPU ops); off, parallel kernels sum in varying order and two runs of one seed differ "
        "(see benchmarks/RESULTS.md for the cost)",
        is_bool,
    )
    onednn: str = setting(
        "auto",
        '"auto" = oneDNN kernels when several CPU workers share the cores (~1.2x less CPU '
        "per image on an AVX2 CPU, but a lone worker trains faster without them; see "
        "benchmarks/RESULTS.md), else TensorFlow's choice (on only for CPUs with AVX-512 "
        'VNNI, BF16 or AMX); "on"; "off"',
        one_of("auto", "on", "off"),
    )


@dataclass(frozen=True)
class AugmentSettings:
    flip: bool = setting(True, "random horizontal flip (image and mask together)", is_bool)
    rotation: float = setting(10.0, "maximum rotation in degrees; 0 = off", float_in(0, 180))
    shift: float = setting(0.1, "maximum shift as a fraction of the size; 0 = off", float_in(0, 1))
    zoom: float = setting(0.0, "maximum zoom in or out as a fraction; 0 = off", float_in(0, 0.9))


@dataclass(frozen=True)
class SearchSettings:
    sampler: str = setting("tpe", "Optuna sampler", one_of("tpe", "random"))
    pruner: str = setting(
        "sha",
        'Optuna pruner: "sha" = successive halving (reduction factor 3, rungs at min_epochs x '
        "1, 3, 9, ...: keeps a third at each; measured to buy 3.6-4.2x the trials, "
        'benchmarks/RESULTS.md section 4); "hyperband"; "median"; "none"',
        one_of("hyperband", "sha", "median", "none"),
    )
    seed: int = setting(
        0, "seed of the sampler; trial n trains with seed + n", int_in(0, 2**31 - 1)
    )
    min_epochs: int = setting(1, "epochs a trial runs before it may be pruned", int_in(1, 10000))
    default_first: bool = setting(
        True,
        "a new study's first trial is a sound default (dice_ce, batch norm, Adam 1e-3 with poly "
        "decay, no dropout, the median network), tagged default=true; the search must beat it",
        is_bool,
    )
    prune_collapsed: bool = setting(
        True,
        "prune a trial that predicts no lesion pixel for several epochs while its loss falls",
        is_bool,
    )
    startup_trials: int = setting(
        10, "trials sampled at random before TPE models the results", int_in(0, 10000)
    )
    objective: str = setting(
        "val_dsc",
        "the value Optuna maximises, reports each epoch for pruning, and that picks a trial's "
        'best epoch: "val_dsc" (per-image Dice), "val_lesion_dsc" (BraTS lesion-wise Dice), '
        '"val_lesion_f1" (lesion detection F1), "val_dsc_global" (pixels pooled); fixed once '
        "a study has trials",
        one_of(*OBJECTIVES),
    )


@dataclass(frozen=True)
class MetricsSettings:
    match_dilation: int = setting(
        0,
        "a predicted component matches a true lesion when it touches the lesion dilated by "
        "this many pixels (3x3 square, as BraTS); true lesions whose dilations touch are one",
        int_in(0, 20),
    )
    min_lesion_px: int = setting(
        0,
        "true lesions smaller than this many pixels (at the model's resolution) are left out "
        "of the lesion-wise scores; false positives count at any size",
        int_in(0, 10**6),
    )


@dataclass(frozen=True)
class FinalizeSettings:
    margin: float = setting(
        0.01,
        "non-inferiority margin, in the objective's units: a cheaper candidate becomes champion "
        "only if the 95 % bootstrap interval (over cases) of its difference to the CV leader "
        "lies above -margin",
        float_in(0, 1),
    )


@dataclass(frozen=True)
class TrackingSettings:
    uri: str = setting(
        "", 'MLflow tracking URI; "" = MLflow\'s default in the working directory', is_str
    )
    overlay_every: int = setting(
        5,
        "log overlay PNGs of fixed validation cases every N epochs (and at the end)",
        int_in(1, 10000),
    )
    log_model: bool = setting(
        True, "log each completed trial's best-epoch model as an MLflow Keras model", is_bool
    )


@dataclass(frozen=True)
class SpaceSettings:
    base_filters: tuple = setting(
        (16, 32), "filters of the first level (choices)", choices(int_in(1, 1024)), kind="choice"
    )
    depth: tuple = setting(
        (3, 4), "number of downsamplings (choices)", choices(int_in(1, 6)), kind="choice"
    )
    dropout: tuple = setting(
        (0.0, 0.5),
        "dropout after every convolution",
        value_range(0.0, 0.95, log=False),
        kind="range",
    )
    batch_norm: tuple = setting(
        (False, True), "batch normalisation (choices)", choices(is_bool), kind="choice"
    )
    bn_momentum: tuple = setting(
        (0.9,),
        "batch-norm momentum (choices); 0.99 lags behind on small data",
        choices(float_in(0, 1, open_hi=True)),
        kind="choice",
    )
    l2: tuple = setting(
        (1e-6, 1e-3),
        "L2 penalty on every kernel ([0.0] = none)",
        value_range(1e-12, 1.0, log=True),
        kind="logrange",
    )
    lr: tuple = setting(
        (1e-4, 1e-2), "Adam learning rate", value_range(1e-7, 1.0, log=True), kind="logrange"
    )
    schedule: tuple = setting(
        SCHEDULES, "learning-rate schedule (choices)", choices(one_of(*SCHEDULES)), kind="choice"
    )
    loss: tuple = setting(
        LOSSES, "loss function (choices)", choices(one_of(*LOSSES)), kind="choice"
    )
    dice_w2: tuple = setting(
        (0.5, 0.95),
        "lesion weight of weighted_dice (w1 = 1 - w2)",
        value_range(0.0, 1.0, log=False),
        kind="range",
    )
    smooth: tuple = setting(
        (1e-5, 1.0), "Dice smoothing term s", value_range(1e-9, 100.0, log=True), kind="logrange"
    )
    dice_reduction: tuple = setting(
        ("batch",),
        '"batch" pools the Dice over the batch, "image" averages per-image Dice (choices)',
        choices(one_of("batch", "image")),
        kind="choice",
    )
    deep_supervision: tuple = setting(
        (False, True), "train a head on every top node (choices)", choices(is_bool), kind="choice"
    )


SECTIONS: dict[str, type] = {
    "study": StudySettings,
    "data": DataSettings,
    "train": TrainSettings,
    "augment": AugmentSettings,
    "search": SearchSettings,
    "metrics": MetricsSettings,
    "finalize": FinalizeSettings,
    "tracking": TrackingSettings,
    "plan": PlanSettings,
    "space": SpaceSettings,
}
