"""search.default_first: a new study's first trial is a sound default, snapped into its space."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from segsweep.config import Config
from segsweep.config.space import default_params
from segsweep.store.storage import create_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def space(**flat):
    return Config().replace(**{f"space.{k}": v for k, v in flat.items()}).space


def test_default_space_gives_the_issue_defaults() -> None:
    assert default_params(space()) == {
        "loss": "dice_ce",
        "base_filters": 32,  # the widest choice
        "depth": 3,
        "deep_supervision": False,
        "dropout": 0.0,
        "batch_norm": True,
        "bn_momentum": 0.9,
        "l2": 1e-5,
        "lr": 1e-3,
        "schedule": "poly",
        "smooth": 1e-5,
        "dice_reduction": "batch",
    }


def test_values_are_snapped_into_the_space_and_fixed_ones_win() -> None:
    p = default_params(
        space(
            base_filters=[4, 8, 32],
            depth=[2, 3, 4, 5],
            loss=["weighted_dice", "focal_tversky"],
            lr=[1e-2, 1e-1],
            l2=[0.0],
            batch_norm=[False],
            bn_momentum=[0.5, 0.99],
            dropout=[0.1, 0.5],
            schedule=["cosine"],
        )
    )
    assert p["base_filters"] == 32 and p["depth"] == 3  # the widest; the lower middle depth
    assert p["loss"] == "weighted_dice" and p["dice_w2"] == 0.7  # first choice; w2 applies
    assert p["lr"] == 1e-2 and p["dropout"] == 0.1  # clipped into the range
    assert p["l2"] == 0.0 and p["schedule"] == "cosine"  # fixed parameters keep their value
    assert p["batch_norm"] is False and "bn_momentum" not in p
    assert default_params(space(bn_momentum=[0.5, 0.99]))["bn_momentum"] == 0.99  # nearest


def test_a_new_study_queues_the_default_once(tmp_path: Path) -> None:
    cfg = Config().replace(**{"study.name": "d", "space.base_filters": [4, 8, 16]})
    url = str(tmp_path / "d.journal")
    study = create_study(cfg, url, exist_ok=False)
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    assert waiting.user_attrs == {"default": True}
    fixed = waiting.system_attrs["fixed_params"]
    assert fixed["loss"] == "dice_ce" and fixed["base_filters"] == 16 and fixed["lr"] == 1e-3
    assert "bn_momentum" not in fixed  # a one-choice parameter is not asked of Optuna
    again = create_study(cfg, url, exist_ok=True)
    assert len(again.get_trials()) == 1  # updating the study queues nothing more


def test_default_first_off_queues_nothing(tmp_path: Path) -> None:
    cfg = Config().replace(**{"study.name": "n", "search.default_first": False})
    assert create_study(cfg, str(tmp_path / "n.journal"), exist_ok=False).get_trials() == []
