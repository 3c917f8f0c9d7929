"""The search space: the one place that calls ``trial.suggest_*``.

A parameter is suggested only where it matters (``dice_w2`` only for ``weighted_dice``,
``bn_momentum`` only with batch norm), and a one-element list fixes a parameter without asking
Optuna, so fixed values do not dilute parameter importances.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import optuna

from segsweep.config import SpaceSettings

__all__ = ["suggest", "fixed_params", "is_fixed"]


def is_fixed(values: tuple) -> bool:
    return len(values) == 1 or (
        len(values) == 2 and values[0] == values[1] and not isinstance(values[0], bool)
    )


def _kind(name: str) -> str:
    return next(f.metadata["kind"] for f in fields(SpaceSettings) if f.name == name)


def _one(trial: optuna.Trial, space: SpaceSettings, name: str) -> Any:
    values = getattr(space, name)
    kind = _kind(name)
    if kind == "choice" and len(set(values)) == 1 or kind != "choice" and is_fixed(values):
        return values[0]
    if kind == "choice":
        return trial.suggest_categorical(name, list(values))
    low, high = float(values[0]), float(values[1])
    return trial.suggest_float(name, low, high, log=kind == "logrange")


def suggest(trial: optuna.Trial, space: SpaceSettings) -> dict[str, Any]:
    """Every hyperparameter of one trial; parameters that do not apply are left out."""
    p: dict[str, Any] = {}
    for name in (
        "loss",
        "base_filters",
        "depth",
        "deep_supervision",
        "dropout",
        "batch_norm",
        "l2",
        "lr",
        "schedule",
        "smooth",
        "dice_reduction",
    ):
        p[name] = _one(trial, space, name)
    if p["batch_norm"]:
        p["bn_momentum"] = _one(trial, space, "bn_momentum")
    if p["loss"] == "weighted_dice":
        p["dice_w2"] = _one(trial, space, "dice_w2")
    return p


def fixed_params(space: SpaceSettings, **chosen: Any) -> dict[str, Any]:
    """The parameters of one configuration without a study, e.g. for ``study enqueue``."""
    trial = optuna.trial.FixedTrial(
        {**{f.name: getattr(space, f.name)[0] for f in fields(SpaceSettings)}, **chosen}
    )
    return suggest(trial, space)
