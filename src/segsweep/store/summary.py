"""A study read back as a person sees it: the counts of trials by state, the best trial, the
default configuration's trial, the diagnoses, the champion and the test records
(``study status --json``, ``explain``, ``predict --study``)."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from segsweep.store.storage import (
    CHAMPION_ATTR,
    DEFAULT_ATTR,
    TEST_RECORDS_ATTR,
    study_objective,
)

__all__ = ["completed", "summary"]


def completed(study: optuna.Study) -> list[FrozenTrial]:
    """The completed trials with a finite value."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]


def _best(study: optuna.Study) -> dict[str, Any] | None:
    done = completed(study)
    if not done:
        return None
    best = max(done, key=lambda t: t.value)
    return {
        "number": best.number,
        "value": best.value,
        "params": best.params,
        "metrics": best.user_attrs.get("metrics", {}),
        "mlflow_run_id": best.user_attrs.get("mlflow_run_id"),
    }


def _default(trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """The default configuration's trial (its retry, if the first try failed)."""
    found = [t for t in trials if t.user_attrs.get(DEFAULT_ATTR)]
    if not found:
        return None
    t = next((t for t in found if t.state == TrialState.COMPLETE), found[-1])
    return {"number": t.number, "state": t.state.name, "value": t.value}


def summary(study: optuna.Study) -> dict[str, Any]:
    """The ``study status --json`` document."""
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name for t in trials)
    states = {s: counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    diagnoses = Counter(code for t in trials for code in t.user_attrs.get("diagnoses", []))
    return {
        "study": study.study_name,
        "objective": study_objective(study),
        "states": states,
        "best": _best(study),
        "default": _default(trials),
        "diagnoses": dict(sorted(diagnoses.items())),
        "champion": json.loads(study.user_attrs[CHAMPION_ATTR])
        if CHAMPION_ATTR in study.user_attrs
        else None,
        "test_records": json.loads(study.user_attrs.get(TEST_RECORDS_ATTR, "[]")),
    }
