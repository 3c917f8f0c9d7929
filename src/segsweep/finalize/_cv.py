"""Cross-validation folds as trials of a companion study, so the coordinator runs them.

``study finalize`` keeps its folds in the Optuna study ``NAME.finalize`` of the same storage.
Each fold is one enqueued trial with the candidate's fixed parameters and the user attributes
``finalize_of`` (the search trial), ``fold`` and ``folds``; the fold of every image is stored on
the companion study. So the same workers, GPUs, hosts, crash recovery, exact counts and Ctrl-C
serve cross-validation, and a finalize run again after an interruption trains only the folds
that have not completed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from segsweep.config import Config
from segsweep.data.assign import Assignment, fold_of
from segsweep.data.io import find_pairs
from segsweep.data.source import group_pattern_for, pool_lesions
from segsweep.errors import DataError, StudyError
from segsweep.store.storage import FOLDS_ATTR
from segsweep.store.summary import completed

__all__ = [
    "FoldRun",
    "companion",
    "distinct_top",
    "ensure_folds",
    "fold_runs",
    "pool_stems",
    "queue_folds",
]


def companion_name(study: optuna.Study) -> str:
    return f"{study.study_name}.finalize"


def companion(study: optuna.Study) -> optuna.Study:
    return optuna.create_study(
        study_name=companion_name(study),
        storage=study._storage,  # the same storage, so every host sees the folds
        direction="maximize",
        load_if_exists=True,
    )


def distinct_top(study: optuna.Study, top: int) -> list[FrozenTrial]:
    """The ``top`` best completed trials whose parameters differ (a retry or an enqueued copy
    of one configuration counts once)."""
    picked, seen = [], set()
    for t in sorted(completed(study), key=lambda t: (-t.value, t.number)):
        key = json.dumps(t.params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            picked.append(t)
    if not picked:
        raise StudyError(
            f"study '{study.study_name}' has no completed trial to finalize; run "
            f"`segsweep study run {study.study_name} --trials N` first"
        )
    return picked[:top]


def pool_stems(cfg: Config, assignment: Assignment | None) -> list[str]:
    """The images cross-validation uses: train + validation, never the test set."""
    if assignment is not None:
        return [*assignment.train, *assignment.val]
    return [p.stem for p in find_pairs(Path(cfg.data.dir))]


def ensure_folds(comp: optuna.Study, cfg: Config, stems: list[str], folds: int) -> dict[str, int]:
    """Each pool image's fold for ``folds``-fold CV, made once and stored on the companion."""
    stored = json.loads(comp.user_attrs.get(FOLDS_ATTR, "{}"))
    if str(folds) in stored and set(stems) - set(stored[str(folds)]):
        new = sorted(set(stems) - set(stored[str(folds)]))
        raise DataError(
            f"{len(new)} image(s) joined the data after this study's {folds}-fold split was made "
            f"(e.g. {new[0]!r}); restore the data, or create a new study for it"
        )
    if str(folds) not in stored:
        stored[str(folds)] = fold_of(
            stems,
            pool_lesions(cfg.data, stems),
            folds=folds,
            seed=cfg.search.seed,
            group_pattern=group_pattern_for(cfg.data),  # a volume's slices: one fold per case
        )
        comp.set_user_attr(FOLDS_ATTR, json.dumps(stored))
    return stored[str(folds)]


def _key(t: FrozenTrial) -> tuple[int, int, int] | None:
    a = t.user_attrs
    if not all(k in a for k in ("finalize_of", "fold", "folds")):
        return None
    return int(a["finalize_of"]), int(a["fold"]), int(a["folds"])


def queue_folds(comp: optuna.Study, candidates: list[FrozenTrial], folds: int) -> int:
    """Enqueue every (candidate, fold) this finalize needs that is neither completed, running
    nor queued; returns how many of them wait to run.

    Folds queued by an earlier, interrupted finalize with other ``--top``/``--folds`` are failed
    here, so the workers train only what this one needs.
    """
    wanted = {(c.number, f, folds) for c in candidates for f in range(folds)}
    keep = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    have = {_key(t) for t in comp.get_trials(deepcopy=False, states=keep)}
    for cand in candidates:
        for fold in range(folds):
            if (cand.number, fold, folds) not in have:
                attrs = {"finalize_of": cand.number, "fold": fold, "folds": folds}
                comp.enqueue_trial(dict(cand.params), user_attrs=attrs)
    waiting = comp.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for t in waiting:
        if _key(t) not in wanted:
            comp._storage.set_trial_user_attr(t._trial_id, "reason", "not asked for by finalize")
            comp._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return sum(_key(t) in wanted for t in waiting)


@dataclass(frozen=True)
class FoldRun:
    fold: int
    run_id: str
    tracking_uri: str
    value: float


def fold_runs(comp: optuna.Study, cand: FrozenTrial, folds: int) -> list[FoldRun]:
    """The completed fold trials of ``cand``, one per fold, or an error naming what is missing."""
    done: dict[int, FrozenTrial] = {}
    failed: dict[int, str] = {}
    for t in comp.get_trials(deepcopy=False):
        key = _key(t)
        if key is None or key[0] != cand.number or key[2] != folds:
            continue
        if t.state == TrialState.COMPLETE:
            done[key[1]] = t
        elif t.state == TrialState.FAIL:
            failed[key[1]] = t.user_attrs.get("reason", "no reason recorded")
    missing = [f for f in range(folds) if f not in done]
    if missing:
        f = missing[0]
        why = f" ({failed[f]})" if f in failed else ""
        raise StudyError(
            f"fold {f} of trial {cand.number} did not complete{why}; run `segsweep study "
            "finalize` again to train the missing folds"
        )
    return [
        FoldRun(
            f,
            done[f].user_attrs["mlflow_run_id"],
            done[f].user_attrs.get("tracking_uri", ""),
            float(done[f].value),
        )
        for f in range(folds)
    ]
