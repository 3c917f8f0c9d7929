"""Put a hand-made configuration into a study, and retrain one trial under other seeds.

``enqueue`` lets a user run their own baseline beside the search (Optuna's ``enqueue_trial``);
``rerun`` retrains a trial's parameters under several seeds so a "best" trial that was luck
shows as luck. Reruns are MLflow runs nested under the trial's run and tagged ``rerun_of``.
"""

from __future__ import annotations

import difflib
import statistics
from dataclasses import dataclass, fields
from typing import Any

import optuna

from segsweep.config import Config, SpaceSettings
from segsweep.config.space import is_fixed, suggest
from segsweep.errors import ConfigError, StudyError

__all__ = ["enqueue", "space_assignment", "rerun", "RerunResult"]

SPACE_KEYS = tuple(f.name for f in fields(SpaceSettings))


def space_assignment(key: str, value: Any, space: SpaceSettings) -> tuple[str, Any]:
    """Check ``space.KEY = VALUE`` against the study's space; returns (KEY, VALUE)."""
    name = key.removeprefix("space.")
    if not key.startswith("space.") or name not in SPACE_KEYS:
        hint = difflib.get_close_matches(name, SPACE_KEYS, n=1)
        raise ConfigError(
            f"study enqueue takes space.KEY=VALUE; '{key}' is not a search "
            "parameter." + (f" Did you mean 'space.{hint[0]}'?" if hint else "")
        )
    allowed = getattr(space, name)
    kind = next(f.metadata["kind"] for f in fields(SpaceSettings) if f.name == name)
    if isinstance(value, list | tuple | dict):
        raise ConfigError(f"space.{name} takes one value here. Got {value!r} instead.")
    inside = (
        value in allowed
        if kind == "choice"
        else (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and min(allowed) <= value <= max(allowed)
        )
    )
    if not inside:
        raise ConfigError(
            f"space.{name} = {value!r} lies outside the study's space {list(allowed)}; widen it "
            f"with `segsweep study create NAME --exist-ok --set space.{name}=[...]`"
        )
    return name, float(value) if kind != "choice" else value


def enqueue(study: optuna.Study, cfg: Config, assignments: dict[str, Any]) -> dict[str, Any]:
    """Queue the configuration as the study's next trial; unset parameters are sampled."""
    params = dict(space_assignment(k, v, cfg.space) for k, v in assignments.items())
    searched = {k: v for k, v in params.items() if not is_fixed(getattr(cfg.space, k))}
    study.enqueue_trial(searched, user_attrs={"enqueued": True})
    return params


@dataclass(frozen=True)
class RerunResult:
    trial: int
    state: str  # the trial's state in the search
    original: float | None
    seeds: tuple[int, ...]
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise StudyError(
            f"study '{study.study_name}' has no trial {number} with parameters "
            f"(it holds trials 0–{len(trials) - 1})"
        )
    return trials[number]


def rerun(
    study: optuna.Study, cfg: Config, number: int, *, seeds: int, progress: Any = print
) -> RerunResult:
    """Retrain trial ``number``'s parameters under ``seeds`` new seeds, logging each run."""
    from segsweep import backend

    # reruns train in this process, whose Keras must load with the study's backend
    backend.activate(backend.resolve(cfg.train.backend), onednn=cfg.train.onednn)
    from segsweep.store.storage import study_assignment
    from segsweep.store.tracking import Tracker
    from segsweep.trial import objective

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1. Got {seeds} instead.")
    frozen = _trial(study, number)
    params = suggest(optuna.trial.FixedTrial(frozen.params), cfg.space)
    base = int(frozen.user_attrs.get("seed", cfg.search.seed + number))
    tracker = Tracker(cfg.tracking.uri)
    experiment_id = tracker.experiment(cfg.study.name)
    data = objective.load_worker_data(cfg, study_assignment(study))
    values = []
    for k in range(1, seeds + 1):
        seed = base + 1000 * k
        value = objective.train_once(
            params,
            data,
            cfg,
            seed=seed,
            tracker=tracker,
            experiment_id=experiment_id,
            parent_id=frozen.user_attrs.get("mlflow_run_id"),
            name=f"trial-{number}-seed-{seed}",
            tags={"rerun_of": number},
        )
        progress(f"trial {number} with seed {seed}: {cfg.search.objective}={value:.4f}")
        values.append(value)
    return RerunResult(
        number,
        frozen.state.name,
        frozen.value,
        tuple(base + 1000 * k for k in range(1, seeds + 1)),
        tuple(values),
    )
