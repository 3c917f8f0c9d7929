"""The search space: what is suggested to Optuna, when, and within which bounds."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FixedTrial

from segsweep.config import Config
from segsweep.config.space import fixed_params, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)

BASE = {
    "loss": "dice_ce",
    "base_filters": 16,
    "depth": 3,
    "deep_supervision": False,
    "dropout": 0.1,
    "batch_norm": False,
    "l2": 1e-5,
    "lr": 1e-3,
    "schedule": "poly",
    "smooth": 1e-3,
}


def space(**flat):
    return Config().replace(**{f"space.{k}": v for k, v in flat.items()}).space


def random_trials(space_settings, n=30):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    out = []
    for _ in range(n):
        trial = study.ask()
        params = suggest(trial, space_settings)
        study.tell(trial, 0.0)
        out.append((trial, params))
    return out


def test_fixed_trial_gives_back_its_values():
    params = suggest(FixedTrial(BASE), space())
    assert params == {**BASE, "dice_reduction": "batch"}


def test_dice_w2_only_for_weighted_dice():
    params = suggest(FixedTrial({**BASE, "loss": "weighted_dice", "dice_w2": 0.8}), space())
    assert params["dice_w2"] == 0.8
    assert "dice_w2" not in suggest(FixedTrial({**BASE, "loss": "focal_tversky"}), space())


def test_bn_momentum_only_with_batch_norm():
    with_bn = FixedTrial({**BASE, "batch_norm": True, "bn_momentum": 0.99})
    assert suggest(with_bn, space(bn_momentum=[0.9, 0.99]))["bn_momentum"] == 0.99
    assert "bn_momentum" in with_bn.params
    assert "bn_momentum" not in suggest(FixedTrial(BASE), space(bn_momentum=[0.9, 0.99]))


def test_conditional_parameters_in_a_real_study():
    trials = random_trials(space(bn_momentum=[0.9, 0.99]), n=40)
    for trial, params in trials:
        assert ("dice_w2" in trial.params) == (params["loss"] == "weighted_dice")
        assert ("dice_w2" in params) == (params["loss"] == "weighted_dice")
        assert ("bn_momentum" in trial.params) == params["batch_norm"]
    # both branches were taken, so the checks above saw both cases
    assert {p["loss"] for _, p in trials} == {"weighted_dice", "dice_ce", "focal_tversky"}
    assert {p["batch_norm"] for _, p in trials} == {False, True}


def test_one_element_lists_fix_a_parameter_without_asking_optuna():
    fixed = space(depth=[4], lr=[3e-4], loss=["weighted_dice"], dice_w2=[0.7], batch_norm=[True])
    for trial, params in random_trials(fixed, n=5):
        assert (params["depth"], params["lr"], params["loss"]) == (4, 3e-4, "weighted_dice")
        assert (params["dice_w2"], params["batch_norm"], params["bn_momentum"]) == (0.7, True, 0.9)
        for name in (
            "depth",
            "lr",
            "loss",
            "dice_w2",
            "batch_norm",
            "bn_momentum",
            "dice_reduction",
        ):
            assert name not in trial.params
            assert name not in trial.distributions
        assert "base_filters" in trial.params  # a parameter with choices is still searched


def test_equal_bounds_fix_a_range_too():
    trial, params = random_trials(space(dropout=[0.2, 0.2]), n=1)[0]
    assert params["dropout"] == 0.2
    assert "dropout" not in trial.params


def test_log_scale_parameters_have_log_distributions():
    trial, _ = random_trials(space(), n=1)[0]
    for name in ("l2", "lr", "smooth"):
        assert trial.distributions[name] == FloatDistribution(
            *getattr(Config().space, name), log=True
        )
    assert trial.distributions["dropout"] == FloatDistribution(0.0, 0.5, log=False)
    assert isinstance(trial.distributions["loss"], CategoricalDistribution)


def test_sampled_values_lie_within_the_configured_bounds():
    settings = space(
        lr=[1e-3, 5e-3],
        l2=[1e-5, 1e-4],
        dropout=[0.1, 0.3],
        dice_w2=[0.6, 0.9],
        smooth=[1e-2, 1.0],
        base_filters=[8, 24],
        schedule=["cosine", "poly"],
    )
    trials = random_trials(settings, n=30)
    for _, p in trials:
        assert 1e-3 <= p["lr"] <= 5e-3
        assert 1e-5 <= p["l2"] <= 1e-4
        assert 0.1 <= p["dropout"] <= 0.3
        assert 1e-2 <= p["smooth"] <= 1.0
        assert p["base_filters"] in (8, 24)
        assert p["schedule"] in ("cosine", "poly")
        if "dice_w2" in p:
            assert 0.6 <= p["dice_w2"] <= 0.9
    assert len({p["lr"] for _, p in trials}) == 30  # it really samples


def test_fixed_params_is_the_users_seed_configuration():
    params = fixed_params(
        space(),
        loss="weighted_dice",
        dice_w2=0.7,
        batch_norm=True,
        bn_momentum=0.9,
        lr=1e-3,
        depth=4,
        base_filters=32,
    )
    assert params["loss"] == "weighted_dice" and params["dice_w2"] == 0.7
    assert (params["batch_norm"], params["bn_momentum"]) == (True, 0.9)
    assert (params["lr"], params["depth"], params["base_filters"]) == (1e-3, 4, 32)
    # what the user left out takes the first value of its range or choices
    assert params["l2"] == Config().space.l2[0]
    assert params["schedule"] == Config().space.schedule[0]


def test_fixed_params_leaves_out_what_does_not_apply():
    params = fixed_params(space(), loss="dice_ce", batch_norm=False)
    assert "dice_w2" not in params and "bn_momentum" not in params
