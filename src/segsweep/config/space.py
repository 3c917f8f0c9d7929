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

__all__ = ["suggest", "fixed_params", "is_fixed", "default_params", "searched", "DEFAULT_CONFIG"]

# The configuration a careful user trains first (``search.default_first``), as Auto-nnU-Net
# samples nnU-Net's defaults first: whatever the search finds is then compared with it.
# ``base_filters`` takes the widest choice: nnU-Net trains the widest network its budget allows,
# and the plan's filters are the widest that fits the study's budget and half of it (trained at
# half width, the planned default trailed today's by 0.10-0.23 Dice at equal steps: benchmarks/
# RESULTS.md section 10). ``depth`` takes the median choice (the lower of two). ``dice_w2`` and
# ``dice_reduction`` matter only when a space without dice_ce forces another loss.
DEFAULT_CONFIG: dict[str, Any] = {
    "loss": "dice_ce",
    "deep_supervision": False,
    "dropout": 0.0,
    "batch_norm": True,
    "bn_momentum": 0.9,
    "l2": 1e-5,
    "lr": 1e-3,
    "schedule": "poly",
    "smooth": 1e-5,
    "dice_reduction": "batch",
    "dice_w2": 0.7,
}


def is_fixed(values: tuple) -> bool:
    return len(values) == 1 or (
        len(values) == 2 and values[0] == values[1] and not isinstance(values[0], bool)
    )


def _kind(name: str) -> str:
    return next(f.metadata["kind"] for f in fields(SpaceSettings) if f.name == name)


def _fixed(name: str, values: tuple) -> bool:
    kind = _kind(name)
    return kind == "choice" and len(set(values)) == 1 or kind != "choice" and is_fixed(values)


def searched(space: SpaceSettings) -> list[str]:
    """The parameters Optuna chooses (a one-value setting fixes the others), in field order."""
    return [f.name for f in fields(SpaceSettings) if not _fixed(f.name, getattr(space, f.name))]


def _one(trial: optuna.Trial, space: SpaceSettings, name: str) -> Any:
    values = getattr(space, name)
    kind = _kind(name)
    if _fixed(name, values):
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


def _snap(name: str, value: Any, values: tuple) -> Any:
    """``value`` moved into the space: the nearest numeric choice, else the first choice, or
    clipped into a range."""
    if _kind(name) != "choice":
        low, high = sorted(float(v) for v in values[:2]) if len(values) > 1 else (values[0],) * 2
        return min(max(float(value), low), high)
    if value in values:
        return value
    numeric = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if numeric and isinstance(value, int | float) and not isinstance(value, bool):
        return min(numeric, key=lambda v: abs(v - value))
    return values[0]


def default_params(space: SpaceSettings) -> dict[str, Any]:
    """The default configuration snapped into ``space`` (a fixed parameter keeps its value)."""
    wanted = {
        name: _snap(name, value, getattr(space, name)) for name, value in DEFAULT_CONFIG.items()
    }
    wanted["base_filters"] = max(space.base_filters)
    depths = sorted(space.depth)
    wanted["depth"] = depths[(len(depths) - 1) // 2]
    return suggest(optuna.trial.FixedTrial(wanted), space)


def fixed_params(space: SpaceSettings, **chosen: Any) -> dict[str, Any]:
    """The parameters of one configuration without a study, e.g. for ``study enqueue``."""
    trial = optuna.trial.FixedTrial(
        {**{f.name: getattr(space, f.name)[0] for f in fields(SpaceSettings)}, **chosen}
    )
    return suggest(trial, space)
