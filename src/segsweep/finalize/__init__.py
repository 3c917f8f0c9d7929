"""``study finalize``: from the search's best configurations to one champion and one honest number.

1. The ``top`` best distinct completed configurations are cross-validated (``folds`` folds of
   train+validation, grouped and stratified; the test set stays out) through the same
   coordinator and workers as ``study run`` (see :mod:`segsweep.finalize._cv`).
2. Out-of-fold predictions rank them: each candidate's objective per fold (mean ± sd), and each
   one's difference to the leader with a paired bootstrap interval over cases; a cheaper
   candidate wins only when shown non-inferior within ``finalize.margin``
   (:mod:`segsweep.finalize._select`).
3. Test-time augmentation (a horizontal flip) and post-processing (dropping small predicted
   components) are kept only if the champion's CV objective rises.
4. The champion's fold models, averaged, are logged as one MLflow pyfunc model and registered as
   ``models:/NAME@champion`` (:mod:`segsweep.finalize.champion`); then, once, the test set is
   scored (:mod:`segsweep.finalize._test`).

May import every layer below it, up to ``study`` (its folds run on the same coordinator).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from segsweep import backend
from segsweep.config import Config
from segsweep.config.space import searched, suggest
from segsweep.errors import StudyError
from segsweep.finalize._cv import (
    companion,
    distinct_top,
    ensure_folds,
    fold_runs,
    pool_stems,
    queue_folds,
)
from segsweep.finalize._pool import Pool, load_pool, out_of_fold
from segsweep.finalize._record import append_test_record, stored_scoring
from segsweep.finalize._report import document, log_result, render
from segsweep.finalize._select import (
    Candidate,
    choose_champion,
    choose_postprocessing,
    cv_score,
)
from segsweep.finalize._test import score_test
from segsweep.finalize.champion import Champion, ChampionSettings, log_champion
from segsweep.store.recovery import (
    close_dead_parent_runs,
    recover_stale,
    register_parent_run,
    release_parent_run,
)
from segsweep.store.storage import (
    CHAMPION_ATTR,
    check_data_unchanged,
    check_not_finalized,
    load_study,
    study_assignment,
    study_objective,
)
from segsweep.store.tracking import Tracker, package_versions
from segsweep.store.views import FOLDS_VIEW
from segsweep.study.workers import RunPlan, WorkerSpec

__all__ = ["finalize", "render"]


def finalize(
    cfg: Config,
    *,
    storage: str,
    top: int,
    folds: int,
    specs: list[WorkerSpec],
    progress: Callable[[str], None] = print,
    rescore: bool = False,
    reason: str = "",
) -> dict[str, Any]:
    """Cross-validate, choose, register and test; returns the ``--json`` document.

    A study whose test set was scored already is refused unless ``rescore``: a test set used
    twice to decide is no longer a number no selection touched; the new score (with ``reason``)
    is added to the study's test records beside the first. Scores use the study's stored
    scoring settings (:mod:`segsweep.finalize._record`).
    """
    from segsweep.study.runner import coordinate

    if top < 1 or folds < 2:
        raise StudyError(f"--top must be >= 1 and --folds >= 2. Got {top} and {folds} instead.")
    # the fold models are loaded here in the end: with the study's backend, as workers train
    backend.activate(backend.resolve(cfg.train.backend))
    study = load_study(cfg.study.name, storage)
    cfg = cfg.replace(**{"search.objective": study_objective(study)})
    cfg, differ = stored_scoring(study, cfg)
    objective = cfg.search.objective
    for line in differ:
        progress(f"scoring with the study's stored {line}")
    check_data_unchanged(study, cfg)
    assignment = study_assignment(study)
    check_not_finalized(study, rescore=rescore)
    earlier = study.user_attrs.get(CHAMPION_ATTR)
    candidates = distinct_top(study, top)
    for t in candidates:
        _full_params(t, cfg)  # fail now, not after hours of cross-validation
    comp = companion(study)
    stems = pool_stems(cfg, assignment)
    fold_map = ensure_folds(comp, cfg, stems, folds)
    recover_stale(comp)  # folds a killed finalize left RUNNING are failed and queued again
    for run_id in close_dead_parent_runs(comp):  # and its parent run is closed as KILLED
        progress(f"closed the MLflow parent run {run_id} of a finalize that died: KILLED")
    waiting = queue_folds(comp, candidates, folds)
    tracker = Tracker(cfg.tracking.uri)
    experiment_id = tracker.experiment(cfg.study.name)
    tracker.save_view(
        experiment_id,
        FOLDS_VIEW,
        name=f"{cfg.study.name}: cross-validation folds by {objective}",
        study_name=comp.study_name,
        objective=objective,
        params=searched(cfg.space),
        tags=("config", "fold"),
    )
    parent = tracker.start_run(
        experiment_id,
        name=f"finalize-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={
            "study": cfg.study.name,
            "finalize": "true",
            "top": top,
            "folds": folds,
            "objective": objective,
            "host": os.uname().nodename,
            "pid": os.getpid(),
            **package_versions(),
        },
    )
    register_parent_run(comp, parent, tracker.uri)
    try:
        if waiting:
            progress(
                f"cross-validation: {waiting} fold trainings to run ({len(candidates)} "
                f"configurations x {folds} folds; the rest are done)"
            )
            plan = RunPlan(
                cfg=cfg,
                storage=storage,
                tracking_uri=tracker.uri,
                experiment_id=experiment_id,
                parent_id=parent,
                cpu_workers=sum(spec.gpu is None for spec in specs),
                study_name=comp.study_name,
            )
            coordinate(plan, specs, waiting, progress=progress)
        pool = load_pool(cfg, stems, fold_map)
        doc = _conclude(cfg, study, comp, candidates, pool, folds, tracker, parent)
        doc["scoring_differs_from_toml"] = differ
        if doc["champion"]["test"] is not None:
            doc["test_records"] = append_test_record(
                study, doc["champion"], reason, earlier=earlier
            )
    except KeyboardInterrupt:
        _end(tracker, comp, parent, "KILLED")
        raise
    except BaseException:
        _end(tracker, comp, parent, "FAILED")
        raise
    _end(tracker, comp, parent, "FINISHED")
    return {**doc, "experiment_id": experiment_id}


def _full_params(trial: Any, cfg: Config) -> dict:
    """The trial's parameters with the fixed ones, as a worker will train them."""
    try:
        return suggest(optuna.trial.FixedTrial(trial.params), cfg.space)
    except ValueError as err:  # the settings' space changed after the search
        raise StudyError(
            f"trial {trial.number}'s parameters no longer fit the study's space ({err}); "
            "restore the space in studies/NAME.toml"
        ) from None


def _end(tracker: Tracker, comp: Any, parent: str, status: str) -> None:
    tracker.end_run(parent, status)
    release_parent_run(comp)


def _flops(params: dict, cfg: Config, channels: int) -> int:
    from segsweep.model.unetpp import count_flops  # imports Keras, which finalize loads late

    return int(
        count_flops(
            depth=int(params["depth"]),
            base_filters=int(params["base_filters"]),
            image_size=cfg.data.patch_size or cfg.data.image_size,  # the network's input
            in_channels=channels,
        )
    )


def _candidates(cfg, comp, trials, pool: Pool, folds: int, tracker, workdir: Path):  # noqa: ANN001
    """Each trial's CV score from its out-of-fold predictions, and those predictions."""
    objective, probs, candidates = cfg.search.objective, {}, []
    for t in trials:
        params = _full_params(t, cfg)
        runs = fold_runs(comp, t, folds)
        plain, tta, models = out_of_fold(tracker.client, runs, pool.stems, workdir)
        probs[t.number] = (plain, tta, models)
        score = cv_score(pool.truth, pool.arrange(plain), pool.fold, objective, **pool.scoring)
        flops = _flops(params, cfg, pool.channels)
        candidates.append(Candidate(t.number, params, float(t.value), flops, score))
    return candidates, probs


def _conclude(
    cfg: Config,
    study: Any,
    comp: Any,
    trials: list,
    pool: Pool,
    folds: int,
    tracker: Tracker,
    parent: str,
) -> dict[str, Any]:
    objective, kw = cfg.search.objective, pool.scoring
    with tempfile.TemporaryDirectory(prefix="segsweep-finalize-") as tmp:
        workdir = Path(tmp)
        candidates, probs = _candidates(cfg, comp, trials, pool, folds, tracker, workdir)
        champion, compared, why = choose_champion(
            candidates, objective, margin=cfg.finalize.margin, seed=cfg.search.seed
        )
        plain, tta, models = probs[champion.trial]
        plain, tta = pool.arrange(plain), pool.arrange(tta)
        with_tta = cv_score(pool.truth, tta, pool.fold, objective, **kw)
        use_tta = with_tta.mean > champion.score.mean
        chosen = tta if use_tta else plain
        if pool.cases is None:
            min_px, by_size = choose_postprocessing(pool.truth, chosen, pool.fold, objective, **kw)
        else:  # the champion removes components slice by slice; CV would judge 3D ones
            min_px, by_size = 0, {0: cv_score(pool.truth, chosen, pool.fold, objective, **kw).mean}
        final = cv_score(pool.truth, chosen, pool.fold, objective, min_component_px=min_px, **kw)
        settings = ChampionSettings(
            image_size=cfg.data.image_size,
            channels=pool.channels,
            intensity=cfg.data.intensity,
            resize=cfg.data.resize,
            threshold=cfg.train.threshold,
            tta=use_tta,
            min_component_px=min_px,
            trial=champion.trial,
            study=cfg.study.name,
            slice_axis=cfg.data.slice_axis,
            ct_window=tuple(cfg.data.ct_window),
            patch_size=cfg.data.patch_size,
        )
        model_uri, version = log_champion(
            parent, tracker.uri, models, settings, registered_name=study.study_name,
            workdir=workdir,
        )  # fmt: skip
        model = _loaded(models, settings)
    assignment = study_assignment(study)
    test = score_test(cfg, assignment, model, objective) if assignment and assignment.test else None
    doc = document(
        study, objective, champion, candidates, compared, why, use_tta, with_tta, min_px,
        by_size, final, test, model_uri, version, margin=cfg.finalize.margin,
    )  # fmt: skip
    log_result(tracker, parent, doc, final)
    study.set_user_attr(CHAMPION_ATTR, json.dumps(doc["champion"]))
    return doc


def _loaded(models: list[Path], settings: ChampionSettings) -> Champion:
    """The champion as logged, loaded in this process (the same class the pyfunc loads)."""
    import keras

    champion = Champion()
    champion.settings = settings
    champion.nets = [keras.saving.load_model(p, compile=False) for p in models]
    return champion
