"""The pruners a study can name, on Optuna's in-memory storage: what each stops."""

from __future__ import annotations

import optuna
import pytest

from segsweep.config import Config
from segsweep.store.storage import make_pruner


def _study(pruner: str) -> optuna.Study:
    cfg = Config().replace(**{"search.pruner": pruner, "train.epochs": 9})
    return optuna.create_study(direction="maximize", pruner=make_pruner(cfg))


def _reports(study: optuna.Study, values: list[float]) -> bool:
    """Report ``values`` epoch by epoch; True if the trial was pruned on the way."""
    trial = study.ask()
    for epoch, value in enumerate(values, start=1):
        trial.report(value, epoch)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return True
    study.tell(trial, max(values))
    return False


def test_successive_halving_stops_a_worse_trial_after_its_first_epoch() -> None:
    study = _study("sha")
    assert not _reports(study, [0.5, 0.6, 0.7])
    assert _reports(study, [0.2, 0.9])  # worse than the first at epoch 1: stopped there
    assert study.trials[1].last_step == 1
    assert not _reports(study, [0.6, 0.65])  # better at epoch 1: goes on


def test_no_pruner_stops_nothing() -> None:
    study = _study("none")
    assert not any(_reports(study, [v, v]) for v in (0.9, 0.1, 0.05))


def test_the_reported_signal_is_the_running_best_of_hard_and_soft_dice() -> None:
    from segsweep.trial.callbacks import ReportToOptuna

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    report = ReportToOptuna(trial, "val_dsc")
    epochs = [(0.2, 0.4), (0.0, 0.1), (0.6, 0.5)]  # (val_dsc, val_dsc_soft)
    assert [report.signal({"val_dsc": h, "val_dsc_soft": s}) for h, s in epochs] == (
        pytest.approx([0.3, 0.3, 0.55])  # a collapsed epoch does not pull the signal down
    )
    lesion = ReportToOptuna(study.ask(), "val_lesion_dsc")  # no soft twin: its running best
    assert [lesion.signal({"val_lesion_dsc": v, "val_dsc_soft": 0.9}) for v in (0.5, 0.4)] == [
        0.5,
        0.5,
    ]


def test_the_default_pruner_is_successive_halving_from_the_first_epoch() -> None:
    pruner = make_pruner(Config())
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert (pruner._min_resource, pruner._reduction_factor) == (1, 3)


def test_the_default_trial_is_never_pruned() -> None:
    import keras

    from segsweep.trial.callbacks import ReportToOptuna

    study = optuna.create_study(
        direction="maximize", pruner=make_pruner(Config().replace(**{"train.epochs": 9}))
    )
    assert not _reports(study, [0.9, 0.9, 0.9])  # a better trial reached the rungs first
    study.enqueue_trial({}, user_attrs={"default": True})
    worse = study.ask()
    report = ReportToOptuna(worse, "val_dsc")
    report.set_model(keras.Sequential())
    for epoch in range(3):
        report.on_epoch_end(epoch, {"val_dsc": 0.1, "val_dsc_soft": 0.1})
    assert report.pruned_at == 0 and worse.should_prune()  # the pruner would have: it did not
