"""Issue 10 item 2, second half: replay recorded learning curves through Optuna's pruners.

The curves of :mod:`benchmarks.signals` (trials trained to the end, never pruned) are fed, in
many random orders, to a study with the pruner under test: each epoch's signal is reported and
``should_prune`` decides whether the trial would have stopped there. Nothing trains again, so
every pruner, signal and budget is compared on the same trials. Per configuration:

- epochs spent against no pruning (the trials a fixed budget of epochs would buy: ``×``);
- regret: the best final value among the trials it let finish, below the best of all;
- how often the trial with the best final value was pruned.

One worker, trials in sequence: the search a single process would run. TPE's choices are not
replayed (the trials were sampled at random), so this ranks pruners, not samplers.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import Section
from benchmarks.signals import Curve, load_curves, signal

__all__ = ["PRUNERS", "Replay", "replay", "prunesim_section"]


def _pruners(epochs: int) -> dict[str, Callable[[], object]]:
    import optuna.pruners as p

    return {
        "none": p.NopPruner,
        "Hyperband, min 1": lambda: p.HyperbandPruner(1, epochs, 3),
        "Hyperband, min 2": lambda: p.HyperbandPruner(2, epochs, 3),
        "Hyperband, min 3": lambda: p.HyperbandPruner(3, epochs, 3),
        "SHA η=3, min 1": lambda: p.SuccessiveHalvingPruner(1, 3),
        "SHA η=3, min 2": lambda: p.SuccessiveHalvingPruner(2, 3),
        "SHA η=3, min 3": lambda: p.SuccessiveHalvingPruner(3, 3),
        "SHA η=2, min 2": lambda: p.SuccessiveHalvingPruner(2, 2),
        "median, warm-up 2": lambda: p.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
        "median, warm-up 3": lambda: p.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
        "percentile 33, warm-up 2": lambda: p.PercentilePruner(
            33.0, n_startup_trials=5, n_warmup_steps=2
        ),
        "patient(2) SHA η=3, min 2": lambda: p.PatientPruner(
            p.SuccessiveHalvingPruner(2, 3), patience=2
        ),
    }


PRUNERS = tuple(_pruners(12))
REPLAY_SIGNALS = ("val_dsc", "running best", "val_dsc_soft", "best of mean hard+soft")


@dataclass
class Replay:
    pruner: str
    signal: str
    dataset: str
    epochs: list[int]  # epochs spent per ordering
    regret: list[float]  # best of all minus best finished, per ordering
    best_pruned: list[bool]
    full: int  # epochs without pruning

    @property
    def gain(self) -> float:
        return self.full / statistics.fmean(self.epochs)


def _one_order(curves: list[Curve], order, make, name: str) -> tuple[int, float, bool]:
    import optuna

    study = optuna.create_study(direction="maximize", pruner=make())
    spent, finished, best_pruned = 0, [], False
    top = max(range(len(curves)), key=lambda i: curves[i].final)
    for i in order:
        curve, trial = curves[i], study.ask()
        epochs = len(curve.val_dsc)
        for e in range(1, epochs + 1):
            trial.report(signal(curve, name, e), e)
            spent += 1
            if e < epochs and trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                best_pruned |= i == top
                break
        else:
            study.tell(trial, curve.final)
            finished.append(curve.final)
    return spent, curves[top].final - max(finished, default=0.0), best_pruned


def replay(
    curves: list[Curve], pruner: str, name: str, *, orders: int = 20, seed: int = 0
) -> Replay:
    make = _pruners(len(curves[0].val_dsc))[pruner]
    rng = np.random.default_rng(seed)
    runs = [_one_order(curves, rng.permutation(len(curves)), make, name) for _ in range(orders)]
    return Replay(
        pruner,
        name,
        curves[0].dataset,
        [r[0] for r in runs],
        [r[1] for r in runs],
        [r[2] for r in runs],
        full=sum(len(c.val_dsc) for c in curves),
    )


BUDGET_PRUNERS = (
    "none",
    "SHA η=3, min 1",
    "SHA η=3, min 2",
    "SHA η=3, min 3",
    "SHA η=2, min 2",
    "Hyperband, min 1",
    "median, warm-up 2",
)


def budget_search(
    curves: list[Curve], pruner: str, name: str, *, budget: int, rng: np.random.Generator
) -> tuple[int, float]:
    """One search of ``budget`` epochs that draws recorded trials at random (with
    replacement): (trials started, best final value of a trial that finished). A trial cut by
    the budget counts with its best epoch so far, as in benchmarks.search."""
    import optuna

    study = optuna.create_study(direction="maximize", pruner=_pruners(12)[pruner]())
    left, best, started = budget, 0.0, 0
    while left > 0:
        curve, trial = curves[rng.integers(len(curves))], study.ask()
        started += 1
        epochs = len(curve.val_dsc)
        for e in range(1, epochs + 1):
            trial.report(signal(curve, name, e), e)
            left -= 1
            if e == epochs or left <= 0:
                value = curve.final if e == epochs else max(curve.val_dsc[:e])
                study.tell(trial, value)
                best = max(best, value)
                break
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
    return started, best


def budget_section(groups: dict[str, list[Curve]], *, budget: int, searches: int) -> Section:
    rows = []
    for pruner in BUDGET_PRUNERS:
        for name in ("val_dsc", "best of mean hard+soft") if pruner != "none" else ("val_dsc",):
            cells = []
            for curves in groups.values():
                rng = np.random.default_rng(0)
                runs = [budget_search(curves, pruner, name, budget=budget, rng=rng)
                        for _ in range(searches)]  # fmt: skip
                bests = [b for _, b in runs]
                cells += [
                    f"{statistics.fmean(n for n, _ in runs):.1f}",
                    f"{statistics.fmean(bests):.3f}",
                    f"{np.percentile(bests, 10):.3f}",
                ]
            rows.append([pruner, name, *cells])
    columns = ["pruner", "signal"]
    for d in groups:
        columns += [f"{d}: trials", f"{d}: mean best", f"{d}: 10th pct best"]
    return Section(
        key="budget",
        title="4c. Fixed-budget searches simulated on the recorded curves",
        headline="see the table",
        target="more trials and a higher best for the same epochs",
        met=None,
        columns=columns,
        rows=rows,
        notes=[
            f"{searches} simulated searches of {budget} epochs (10 full trials) per row, each "
            "drawing recorded trials at random with replacement, as a random sampler would; "
            "best = the best final value of a trial the pruner let finish.",
        ],
    )


def prunesim_section(groups: dict[str, list[Curve]], *, orders: int = 20) -> Section:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows, results = [], []
    for pruner in PRUNERS:
        for name in REPLAY_SIGNALS if pruner != "none" else ("val_dsc",):
            cells = []
            for curves in groups.values():
                r = replay(curves, pruner, name, orders=orders)
                results.append(r)
                cells += [
                    f"{r.gain:.2f}×",
                    f"{statistics.fmean(r.regret):.3f}",
                    f"{sum(r.best_pruned)}/{len(r.best_pruned)}",
                ]
            rows.append([pruner, name, *cells])
    columns = ["pruner", "signal"]
    for d in groups:
        columns += [f"{d}: trials ×", f"{d}: regret", f"{d}: best pruned"]
    return Section(
        key="prunesim",
        title="4b. Pruners replayed on the recorded curves",
        headline="see the table",
        target="the most trials per epoch at a regret near zero on both data sets",
        met=None,
        columns=columns,
        rows=rows,
        notes=[
            f"Each configuration replays the trials in {orders} random orders, one at a time. "
            "trials × = epochs without pruning ÷ epochs spent (what a fixed budget buys); "
            "regret = best final value of all trials − best final value of the trials left to "
            "finish (mean over orders); best pruned = orders in which the trial with the best "
            "final value was pruned.",
        ],
    )


def main() -> None:
    import argparse

    from benchmarks.report import _md_table
    from benchmarks.signals import signals_section

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("curves", type=Path, nargs="+")
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--searches", type=int, default=200)
    args = parser.parse_args()
    groups = {}
    for path in args.curves:
        curves = load_curves(path)
        groups[curves[0].dataset] = curves
    sections = (
        signals_section(groups),
        prunesim_section(groups, orders=args.orders),
        budget_section(groups, budget=120, searches=args.searches),
    )
    for section in sections:
        print(f"## {section.title}\n\n**{section.headline}**\n")
        print("\n".join(_md_table(section.columns, section.rows)))
        print("\n".join(f"- {note}" for note in section.notes) + "\n")


if __name__ == "__main__":
    main()
