"""Diagnoses: each fires on a constructed history, none on a healthy one, and the user's own
setup (weighted Dice, dropout 0.5 and L2 1e-4 everywhere) is caught while it trains."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from segsweep.evaluation.diagnose import (
    Diagnosis,
    DiagnosisMonitor,
    Rules,
    describe,
    diagnose,
    diagnosis_tags,
)

TRUE_FG = 0.02


def history(
    *,
    loss_data: list[float] | None = None,
    loss_l2: float | list[float] = 0.05,
    val_dsc: list[float] | None = None,
    val_pred_fg: list[float] | None = None,
    n: int = 6,
) -> dict[str, list[float]]:
    """A healthy run of ``n`` epochs, with the given series replaced."""
    data = loss_data or list(np.linspace(0.8, 0.3, n))
    l2 = loss_l2 if isinstance(loss_l2, list) else [loss_l2] * len(data)
    return {
        "loss": [d + p for d, p in zip(data, l2, strict=True)],
        "loss_data": data,
        "loss_l2": l2,
        "val_dsc": val_dsc or list(np.linspace(0.1, 0.7, len(data))),
        "val_pred_fg": val_pred_fg or [0.03, 0.025, 0.022, 0.021, 0.02, 0.02][: len(data)],
        "val_true_fg": [TRUE_FG] * len(data),
    }


def fired(h: dict, rules: Rules | None = None) -> list[tuple[str, int]]:
    return [(d.code, d.epoch) for d in diagnose(h, rules or Rules())]


COLLAPSE = [0.3, 0.1, 0.0, 0.0, 0.0, 0.0]
DSC_COLLAPSE = [0.05, 0.04, 0.18, 0.18, 0.18, 0.18]


@pytest.mark.parametrize(
    ("case", "h", "expected"),
    [
        ("healthy", history(), []),
        (
            "collapsed: 3 empty epochs after warm-up, loss falling",
            history(val_pred_fg=COLLAPSE, val_dsc=DSC_COLLAPSE),
            [("collapsed", 5)],
        ),
        (
            "collapse only during the warm-up",
            history(val_pred_fg=[0.0, 0.0, 0.02, 0.02, 0.02, 0.02]),
            [],
        ),
        (
            "empty in the warm-up and 2 epochs after: the warm-up does not count",
            history(val_pred_fg=[0.0, 0.0, 0.0, 0.0, 0.02, 0.02]),
            [],
        ),
        (
            "k - 1 empty epochs",
            history(val_pred_fg=[0.3, 0.1, 0.0, 0.0, 0.02, 0.02], val_dsc=DSC_COLLAPSE),
            [],
        ),
        (
            "empty while the loss rises is not 'collapsed'",
            history(
                loss_data=[0.8, 0.7, 0.72, 0.75, 0.8, 0.85],
                val_pred_fg=COLLAPSE,
                val_dsc=DSC_COLLAPSE,
            ),
            [],
        ),
        (
            "a few predicted pixels are not 'no lesion pixel' (exact zero by default)",
            history(val_pred_fg=[0.3, 0.1, 1e-5, 1e-5, 1e-5, 1e-5], val_dsc=DSC_COLLAPSE),
            [],
        ),
        (
            "penalty larger than the data loss, from epoch 1",
            history(loss_data=[0.55, 0.5, 0.45, 0.4, 0.35, 0.3], loss_l2=0.62),
            [("penalty_dominates", 1)],
        ),
        (
            "penalty equal to the data loss does not dominate",
            history(loss_data=[0.5] * 6, loss_l2=0.5, val_dsc=list(np.linspace(0.1, 0.6, 6))),
            [],
        ),
        (
            "over-segmenting: 10x the true fraction for 3 epochs after warm-up",
            history(val_pred_fg=[0.5, 0.3, 0.2, 0.2, 0.2, 0.2]),
            [("over_segmenting", 5)],
        ),
        (
            "4.5x is not 'many times'",
            history(val_pred_fg=[0.5, 0.3, 0.09, 0.09, 0.09, 0.09]),
            [],
        ),
        (
            "over-segmenting only in the warm-up",
            history(val_pred_fg=[0.5, 0.3, 0.03, 0.02, 0.02, 0.02]),
            [],
        ),
        (
            "not learning: val_dsc flat at its start value for 5 epochs",
            history(val_dsc=[0.30, 0.305, 0.298, 0.302, 0.30, 0.31]),
            [("not_learning", 5)],
        ),
        (
            "a slow rise of 0.02 is learning",
            history(val_dsc=[0.30, 0.305, 0.31, 0.315, 0.32, 0.33]),
            [],
        ),
        (
            "flat for only 4 epochs",
            history(val_dsc=[0.3, 0.3, 0.3, 0.3], loss_data=[0.8, 0.7, 0.6, 0.5]),
            [],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_diagnosis_fires_on_its_case_only(case: str, h: dict, expected: list) -> None:
    assert fired(h) == expected, case


def test_the_seed_case_history_is_collapsed_and_its_loss_above_one_is_the_penalty() -> None:
    # The seed case measured: loss 1.110 -> 0.946, Dice 0.038 -> 0.015, zero lesion pixels.
    n = 10
    l2 = list(np.linspace(0.17, 0.15, n))
    data = list(np.linspace(0.94, 0.796, n))
    h = history(
        loss_data=data,
        loss_l2=l2,
        val_dsc=list(np.linspace(0.038, 0.015, n)),
        val_pred_fg=[0.05, 0.01, 0.001, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    )
    (found,) = diagnose(h)
    assert (found.code, found.epoch) == ("collapsed", 6)
    assert "epochs 4–6" in found.message and "dice_ce" in found.message


def test_the_messages_carry_the_numbers_and_what_to_change() -> None:
    collapsed = diagnose(history(val_pred_fg=COLLAPSE, val_dsc=DSC_COLLAPSE))[0].message
    assert "no lesion pixel" in collapsed and "0.18" in collapsed and "dropout" in collapsed
    above_one = diagnose(history(loss_data=[0.55] * 6, loss_l2=0.62))
    assert above_one[0].message.startswith("loss > 1 (1.17) because the L2 penalty (0.62)")
    below_one = diagnose(history(loss_data=[0.3] * 6, loss_l2=0.4))
    assert below_one[0].code == "penalty_dominates" and "loss > 1" not in below_one[0].message
    over = diagnose(history(val_pred_fg=[0.5, 0.3, 0.2, 0.2, 0.2, 0.2]))[0].message
    assert "20 % of validation pixels" in over and "(10×)" in over


def test_rules_are_data() -> None:
    h = history(val_pred_fg=[0.3, 0.1, 1e-5, 1e-5, 1e-5, 1e-5], val_dsc=DSC_COLLAPSE)
    assert fired(h, Rules(empty_fg=1e-4)) == [("collapsed", 5)]
    assert fired(history(val_pred_fg=COLLAPSE, val_dsc=DSC_COLLAPSE), Rules(k=4)) == [
        ("collapsed", 6)
    ]
    assert fired(history(val_pred_fg=[0.0] * 6, val_dsc=DSC_COLLAPSE), Rules(warmup=0)) == [
        ("collapsed", 3)
    ]
    with pytest.raises(ValueError, match="'k' parameter of Rules must be an int >= 1. Got 0"):
        Rules(k=0)


def test_a_missing_metric_is_an_error_naming_it() -> None:
    h = history()
    del h["val_pred_fg"]
    with pytest.raises(ValueError, match="val_pred_fg"):
        diagnose(h)
    with pytest.raises(ValueError, match="one length"):
        diagnose({**history(), "val_dsc": [0.1]})


def test_nan_never_fires() -> None:
    nan = float("nan")
    h = history(loss_data=[nan] * 6, val_pred_fg=[nan] * 6, val_dsc=[nan] * 6)
    assert fired(h) == []


def test_tags_and_description() -> None:
    found = [Diagnosis("collapsed", 5, "m1"), Diagnosis("penalty_dominates", 1, "m2")]
    assert diagnosis_tags(found) == {
        "diagnosis": "collapsed,penalty_dominates",
        "diagnosis.collapsed": "true",
        "diagnosis.penalty_dominates": "true",
    }
    assert diagnosis_tags([]) == {"diagnosis": "healthy"}
    assert "m1" in describe(found) and "m2" in describe(found)


class _Replay(keras.callbacks.Callback):
    """Puts a constructed history into the epoch logs, as the validation callback would."""

    def __init__(self, h: dict) -> None:
        super().__init__()
        self.h = h

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs.update({k: v[epoch] for k, v in self.h.items()})


def _fit_with(monitor: DiagnosisMonitor, h: dict) -> int:
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    run = model.fit(
        np.zeros((4, 1)), np.zeros((4, 1)), epochs=6, verbose=0, callbacks=[_Replay(h), monitor]
    )
    return len(run.history["loss"])


@pytest.mark.parametrize(("prune", "epochs_run", "stopped_at"), [(True, 5, 5), (False, 6, 0)])
def test_the_monitor_stops_a_collapsed_run_only_when_told(
    prune: bool, epochs_run: int, stopped_at: int
) -> None:
    monitor = DiagnosisMonitor(Rules(), prune_collapsed=prune)
    h = history(val_pred_fg=COLLAPSE, val_dsc=DSC_COLLAPSE)
    assert _fit_with(monitor, h) == epochs_run
    assert monitor.codes == ["collapsed"] and monitor.found[0].epoch == 5
    assert monitor.stopped_at == stopped_at


def test_the_monitor_lets_a_healthy_run_finish() -> None:
    monitor = DiagnosisMonitor(Rules(), prune_collapsed=True)
    assert _fit_with(monitor, history()) == 6
    assert monitor.found == [] and monitor.stopped_at == 0


def test_the_monitor_fails_when_the_logs_lack_the_validation_metrics() -> None:
    h = history()
    del h["val_true_fg"]
    with pytest.raises(ValueError, match="val_true_fg"):
        _fit_with(DiagnosisMonitor(), h)


@pytest.mark.slow
def test_the_users_setup_collapses_while_training(tmp_path: Path) -> None:
    from segsweep.config import Config
    from segsweep.data.io import load_dataset
    from segsweep.data.split import split_indices
    from segsweep.data.synth import synthesize
    from segsweep.trial.train import Split, fit

    synthesize(tmp_path / "ph", n=40, size=32)
    ds = load_dataset(tmp_path / "ph", image_size=32)
    has_lesion = ds.masks.reshape(len(ds.masks), -1).max(axis=1) > 0
    train, val = split_indices(ds.stems, has_lesion, val_fraction=0.2, seed=0, group_pattern="")
    split = Split(ds.images[train], ds.masks[train], ds.images[val], ds.masks[val])
    cfg = Config().replace(**{"data.image_size": 32, "train.epochs": 8, "train.batch_size": 8})
    params = {
        "loss": "weighted_dice", "dice_w2": 0.7, "smooth": 1.0, "dice_reduction": "batch",
        "dropout": 0.5, "l2": 1e-4, "batch_norm": False, "base_filters": 8, "depth": 3,
        "lr": 1e-3, "schedule": "constant", "deep_supervision": False,
    }  # fmt: skip
    monitor = DiagnosisMonitor(Rules(), prune_collapsed=True)
    result = fit(params, split, cfg, seed=0, callbacks=[monitor])

    h = result.history
    assert "collapsed" in monitor.codes, h
    assert monitor.stopped_at == len(h["loss"])  # stopped the epoch it fired (5–7 seen)
    assert h["val_pred_fg"][-1] == 0.0 < h["val_true_fg"][-1]
    # The reported loss is the Dice loss plus the kernel penalties, shown apart.
    assert min(h["loss_l2"]) > 0.05
    np.testing.assert_allclose(
        np.add(h["loss_data"], h["loss_l2"]), h["loss"], rtol=1e-4, atol=1e-5
    )
