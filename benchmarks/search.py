"""Item 4: search efficiency — what a fixed budget of epochs buys with and without pruning.

Simplified on purpose, to fit a CPU run: in this process, with Optuna's in-memory storage, no
MLflow and no worker processes. Each strategy spends the same total number of epochs on the
phantom data; a trial trains with :func:`segsweep.train.fit` (the same training a worker runs)
and reports ``val_dsc`` to Optuna after every epoch, as ``ReportToOptuna`` does. The search space
is segsweep's default with the network fixed small (filters 8, depth 3). When the budget runs
out mid-trial, that trial stops there and counts with its best epoch so far.

- ``TPE + Hyperband``: segsweep's defaults (``make_sampler``/``make_pruner``);
- ``TPE + successive halving``: ``search.pruner = "sha"``, one bracket that prunes from the
  first epoch on;
- ``TPE, no pruning`` and ``random, no pruning``: every trial runs all its epochs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import Section, Sizes, phantom

__all__ = ["STRATEGIES", "SearchRun", "measure", "search_section"]

STRATEGIES = {  # name -> (search.sampler, search.pruner)
    "TPE + Hyperband pruning": ("tpe", "hyperband"),
    "TPE + successive halving": ("tpe", "sha"),
    "TPE, no pruning": ("tpe", "none"),
    "random, no pruning": ("random", "none"),
}
PRUNING = ["TPE + Hyperband pruning", "TPE + successive halving"]


@dataclass
class SearchRun:
    strategy: str
    seed: int
    trials: int = 0
    pruned_at: list[int] = field(default_factory=list)  # epoch each pruned trial stopped at
    best: float = float("nan")
    seconds: float = 0.0


def _reporter(trial, budget: dict[str, int]):
    import keras

    class Report(keras.callbacks.Callback):
        """``val_dsc`` to Optuna each epoch; stops on pruning or when the budget is spent."""

        pruned_at = 0

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            budget["left"] -= 1
            trial.report(float((logs or {})["val_dsc"]), step=epoch + 1)
            if trial.should_prune():
                self.pruned_at = epoch + 1
                self.model.stop_training = True
            if budget["left"] <= 0:
                self.model.stop_training = True

    return Report()


def _config(sizes: Sizes, data_dir: Path, sampler: str, pruner: str, seed: int):
    from segsweep.config import Config

    return Config().replace(
        **{
            "data.dir": str(data_dir),
            "data.image_size": sizes.search_size,
            "train.epochs": sizes.search_max_epochs,
            "search.sampler": sampler,
            "search.pruner": pruner,
            "search.seed": seed,
            "space.base_filters": [8],
            "space.depth": [3],
        }
    )


def run_one(sizes: Sizes, data, data_dir: Path, strategy: str, seed: int) -> SearchRun:
    import keras
    import optuna
    from optuna.trial import TrialState

    from segsweep.space import suggest
    from segsweep.study import make_pruner, make_sampler
    from segsweep.train import fit

    sampler, pruner = STRATEGIES[strategy]
    cfg = _config(sizes, data_dir, sampler, pruner, seed)
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(cfg, seed=seed), pruner=make_pruner(cfg)
    )
    run, budget, start = SearchRun(strategy, seed), {"left": sizes.search_budget}, time.time()
    while budget["left"] > 0:
        trial = study.ask()
        report = _reporter(trial, budget)
        result = fit(
            suggest(trial, cfg.space),
            data.split,
            cfg,
            seed=100 * seed + trial.number,
            callbacks=[report],
        )
        keras.backend.clear_session()
        run.trials += 1
        if report.pruned_at:
            run.pruned_at.append(report.pruned_at)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, result.best_value)
    completed = [t.value for t in study.trials if t.state == TrialState.COMPLETE]
    run.best = max(completed) if completed else float("nan")
    run.seconds = time.time() - start
    return run


def measure(sizes: Sizes, workdir: Path) -> list[SearchRun]:
    """Every strategy for every seed, strategies alternating within each seed."""
    from segsweep.objective import load_worker_data

    data_dir = phantom(workdir, n=sizes.search_phantoms, size=sizes.search_size)
    data = load_worker_data(_config(sizes, data_dir, "tpe", "none", 0))
    return [
        run_one(sizes, data, data_dir, strategy, seed)
        for seed in sizes.search_seeds
        for strategy in STRATEGIES
    ]


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def search_section(runs: list[SearchRun], sizes: Sizes, *, target: float = 3.0) -> Section:
    by = {s: [r for r in runs if r.strategy == s] for s in STRATEGIES}
    rows = []
    for strategy, group in by.items():
        bests = [r.best for r in group]
        pruned = sorted(e for r in group for e in r.pruned_at)
        stops = ", ".join(f"epoch {e}: {pruned.count(e)}" for e in sorted(set(pruned))) or "—"
        rows.append(
            [
                strategy,
                " / ".join(str(r.trials) for r in group),
                f"{_mean([r.trials for r in group]):.1f}",
                " / ".join(f"{b:.3f}" for b in bests),
                f"{_mean(bests):.3f}",
                stops,
            ]
        )
    plain = by["TPE, no pruning"]
    spread = max(r.best for r in plain) - min(r.best for r in plain)
    verdicts = {
        name: (
            _mean([r.trials for r in by[name]]) / _mean([r.trials for r in plain]),
            _mean([r.best for r in by[name]]) >= _mean([r.best for r in plain]) - spread,
        )
        for name in PRUNING
    }
    best_name = max(PRUNING, key=lambda n: (verdicts[n][1], verdicts[n][0]))
    ratio, no_worse = verdicts[best_name]
    notes = [
        f"{sizes.search_phantoms} phantom images at {sizes.search_size} px (stratified 80/20 "
        f"split), budget {sizes.search_budget} epochs per search, at most "
        f"{sizes.search_max_epochs} epochs per trial (the pruners' max resource), filters 8, "
        f"depth 3, the rest of segsweep's default space; seeds {list(sizes.search_seeds)}.",
        "Best val_dsc = the best completed trial's best-epoch val_dsc (the study's value). "
        f"The no-worse check allows the seed spread of TPE without pruning ({spread:.3f}).",
        "Run in one process with in-memory Optuna storage and without MLflow (a simplification "
        "of `study run`: same sampler, pruner, space and training function; segsweep's collapse "
        "pruning, `search.prune_collapsed`, is left out, so pruning here is the pruner's alone).",
        *(
            f"{name}: {verdicts[name][0]:.1f}× the trials of TPE without pruning, best val_dsc "
            f"{'no worse' if verdicts[name][1] else 'worse'} within the seed spread; pruned "
            f"{sum(len(r.pruned_at) for r in by[name])} of {sum(r.trials for r in by[name])} "
            "trials."
            for name in PRUNING
        ),
        "Hyperband splits the trials into brackets and ranks a trial only against the trials "
        "of its own bracket, one of which never prunes; with a budget of a handful of full "
        "trials, each bracket sees too few trials to prune much. Successive halving is one "
        "bracket that ranks every trial at epochs 1, 3, 9.",
    ]
    return Section(
        key="search",
        title="4. Search efficiency (fixed budget of epochs)",
        headline=f"{best_name}: {ratio:.1f}× the trials of TPE without pruning; best val_dsc "
        f"{'no worse' if no_worse else 'worse'} within the seed spread",
        target=f"≥ {target:.0f}× the trials at no worse best val_dsc",
        met=ratio >= target and no_worse,
        columns=[
            "strategy",
            "trials per seed",
            "mean trials",
            "best val_dsc per seed",
            "mean best",
            "pruned trials stopped at",
        ],
        rows=rows,
        notes=notes,
    )
