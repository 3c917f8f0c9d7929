"""One cross-validation fold inside a worker: ``study finalize`` queues them as trials.

A fold trial belongs to the study's companion ``NAME.finalize``; its user attributes say which
search trial's configuration it trains (``finalize_of``) and which fold it holds out (``fold``
of ``folds``). It trains ``train.epochs`` epochs without pruning on the other folds, keeps the
last epoch's model (an epoch chosen on the held-out fold would flatter it), and logs to its
MLflow run what finalize needs: the out-of-fold probabilities, plain and averaged with a
horizontal flip (``oof/oof.npz``), and the fold model (``fold/model.keras``).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from segsweep.config import Config
from segsweep.config.space import suggest
from segsweep.errors import TrialFailed
from segsweep.evaluation.diagnose import DiagnosisMonitor, Rules
from segsweep.store.recovery import FOLD_ATTRS
from segsweep.store.storage import FOLDS_ATTR
from segsweep.store.tracking import Tracker
from segsweep.trial.callbacks import LogToMlflow
from segsweep.trial.lifecycle import (
    TrialOutcome,
    best_epoch_metrics,
    finish,
    guarded_fit,
    log_setup,
    run_params,
    start_run,
)
from segsweep.trial.validation import predict_set
from segsweep.trial.workerdata import WorkerData, fold_data

__all__ = ["run_fold_trial"]


def out_of_fold(net: Any, x: np.ndarray, **how: Any) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, S, S) of the held-out images: plain, and the mean with a horizontal
    flip of each batch the model sees (each window, with patches: as the champion's TTA).
    ``how``: :func:`~segsweep.trial.validation.predict_set`'s sizes, window and batch size."""

    def flipped(batch: np.ndarray) -> np.ndarray:
        prob = np.asarray(net.predict_on_batch(np.ascontiguousarray(batch[:, :, ::-1])))
        return prob[:, :, ::-1]

    plain = predict_set(net.predict_on_batch, x, **how)
    return plain, (plain + predict_set(flipped, x, **how)) / 2


def _log_fold_outputs(tracker: Tracker, run_id: str, data: WorkerData, net: Any, cfg: Config):
    plain, tta = out_of_fold(
        net,
        data.split.val_x,
        sizes=data.split.val_sizes,
        window=cfg.data.patch_size,
        batch_size=2 * cfg.train.batch_size,
    )
    with tempfile.TemporaryDirectory(prefix="segsweep-fold-") as tmp:
        oof = Path(tmp) / "oof.npz"
        np.savez_compressed(
            oof,
            stems=np.array(data.val_stems),
            prob=plain.astype(np.float16),
            prob_tta=tta.astype(np.float16),
        )
        tracker.log_file(run_id, oof, "oof")
        model = Path(tmp) / "model.keras"
        net.save(model)
        tracker.log_file(run_id, model, "fold")


def run_fold_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    data: WorkerData,
    cfg: Config,
    *,
    tracker: Tracker,
    experiment_id: str,
    parent_id: str,
    worker: str,
    device: str,
    on_start: Any = None,
) -> TrialOutcome:
    of, fold, folds = (int(trial.user_attrs[k]) for k in FOLD_ATTRS)
    seed = cfg.search.seed + of + 1000 * (fold + 1)
    run_id = start_run(
        trial,
        tracker,
        experiment_id=experiment_id,
        parent_id=parent_id,
        worker=worker,
        device=device,
        seed=seed,
        name=f"trial-{of}-fold-{fold}",
        tags={"config": of, "fold": fold, "folds": folds},
    )
    if on_start is not None:
        on_start(trial.number, run_id)
    fold_of = json.loads(study.user_attrs[FOLDS_ATTR])[str(folds)]
    try:
        fd = fold_data(data, fold_of, fold)
        params = suggest(trial, cfg.space)
        logged = {**run_params(cfg, params, fd, seed), "fold": fold, "folds": folds}
        log_setup(tracker, run_id, cfg, logged, fd)
        logger = LogToMlflow(tracker, run_id, fd, cfg)
        monitor = DiagnosisMonitor(Rules(), prune_collapsed=False)
        result = guarded_fit(params, fd, cfg, seed, [monitor], logger, keep_best=False)
        logger.log_overlay("final")
        _log_fold_outputs(tracker, run_id, fd, result.net, cfg)
    except TrialFailed as err:
        return finish(study, trial, tracker, run_id, ("FAIL", None, str(err)), [])
    last = best_epoch_metrics(result)
    trial.set_user_attr("metrics", {k: v for k, v in last.items() if math.isfinite(v)})
    return finish(
        study, trial, tracker, run_id, ("COMPLETE", result.best_value, ""), monitor.found
    )
