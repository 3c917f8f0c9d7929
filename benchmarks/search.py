"""Item 4 (issue 10): what a fixed budget of epochs buys — segsweep's default search against TPE
without pruning and random search, on the phantom set and on dsb2018 nuclei, seed by seed.

Simplified on purpose, to fit a CPU run: in one process per search, with Optuna's in-memory
storage, no MLflow and no worker processes. Each strategy spends the same number of epochs; a
trial trains with :func:`segsweep.trial.train.fit` (the training a worker runs), and the default
search reports to Optuna through segsweep's own :class:`~segsweep.trial.callbacks.ReportToOptuna`
with the pruner ``make_pruner`` builds from segsweep's default settings. When the budget runs
out mid-trial, that trial stops there and counts with its best epoch so far.

- ``segsweep defaults``: ``search.*`` as shipped: the default configuration first
  (``search.default_first``), TPE, the default pruner, signal and ``min_epochs``;
- ``TPE, no pruning`` and ``random, no pruning``: every trial runs all its epochs.

The space is segsweep's default with the network kept small (filters 4 or 8, depth 2 or 3), as
in :mod:`benchmarks.signals`, whose curves chose the pruner.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.common import Section, Sizes
from benchmarks.signals import NUCLEI, config, dataset_dir, subset

__all__ = ["STRATEGIES", "SearchRun", "run_one", "measure", "search_section", "anytime_png"]

STRATEGIES = {  # name -> settings over segsweep's defaults
    "segsweep defaults": {},
    "TPE, no pruning": {"search.pruner": "none", "search.default_first": False},
    "random, no pruning": {
        "search.sampler": "random",
        "search.pruner": "none",
        "search.default_first": False,
    },
}
DEFAULT = "segsweep defaults"
TENTHS = tuple(range(1, 11))


@dataclass
class SearchRun:
    dataset: str
    strategy: str
    seed: int
    trials: int = 0
    pruned_at: list[int] = field(default_factory=list)  # epoch each pruned trial stopped at
    best: float = float("nan")
    default_value: float | None = None  # the default configuration's trial, where run
    anytime: list[float] = field(default_factory=list)  # best after each tenth of the budget
    seconds: float = 0.0


def _budget_stop(budget: dict[str, int]):
    import keras

    class Budget(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            budget["left"] -= 1
            if budget["left"] <= 0:
                self.model.stop_training = True

    return Budget()


def load_split(dataset: str, sizes: Sizes, workdir: Path):
    from segsweep.trial.workerdata import load_worker_data

    data_dir = dataset_dir(dataset, workdir, sizes.search_size, sizes.search_phantoms)
    cfg = config(data_dir, size=sizes.search_size, epochs=sizes.search_max_epochs, batch=8, seed=0)
    split = load_worker_data(cfg).split
    if dataset == "nuclei":
        split = subset(split, sizes.search_nuclei_train, sizes.search_nuclei_val, seed=0)
    return data_dir, split


def run_one(sizes: Sizes, dataset: str, data_dir: Path, split, strategy: str, seed: int):
    import keras
    import optuna
    from optuna.trial import TrialState

    from segsweep.config.space import suggest
    from segsweep.store.storage import enqueue_default, make_pruner, make_sampler
    from segsweep.trial.callbacks import ReportToOptuna
    from segsweep.trial.train import fit

    batch = 16 if dataset == "nuclei" else 8
    base = config(
        data_dir, size=sizes.search_size, epochs=sizes.search_max_epochs, batch=batch, seed=seed
    )
    cfg = base.replace(**STRATEGIES[strategy])
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(cfg, seed=seed), pruner=make_pruner(cfg)
    )
    if cfg.search.default_first:
        enqueue_default(study, cfg)
    run, start = SearchRun(dataset, strategy, seed), time.time()
    budget = {"left": sizes.search_budget}
    marks = [round(sizes.search_budget * t / 10) for t in TENTHS]
    while budget["left"] > 0:
        trial = study.ask()
        report = ReportToOptuna(trial, cfg.search.objective)
        result = fit(
            suggest(trial, cfg.space),
            split,
            cfg,
            seed=cfg.search.seed + trial.number,
            callbacks=[report, _budget_stop(budget)],
        )
        keras.backend.clear_session()
        run.trials += 1
        if report.pruned_at:
            run.pruned_at.append(report.pruned_at)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, result.best_value)
            if trial.user_attrs.get("default"):
                run.default_value = result.best_value
        spent = sizes.search_budget - budget["left"]
        best = max((t.value for t in study.trials if t.state == TrialState.COMPLETE), default=0.0)
        while len(run.anytime) < len(marks) and spent >= marks[len(run.anytime)]:
            run.anytime.append(best)
    run.best = run.anytime[-1]
    run.seconds = time.time() - start
    return run


def datasets(sizes: Sizes) -> list[str]:
    return ["phantom", "nuclei"] if NUCLEI.exists() and sizes.name == "full" else ["phantom"]


def measure(sizes: Sizes, workdir: Path) -> list[SearchRun]:
    """Every strategy for every seed and data set, strategies alternating within each seed."""
    runs = []
    for dataset in datasets(sizes):
        data_dir, split = load_split(dataset, sizes, workdir)
        for seed in sizes.search_seeds:
            for strategy in STRATEGIES:
                runs.append(run_one(sizes, dataset, data_dir, split, strategy, seed))
    return runs


def save(runs: list[SearchRun], path: Path) -> None:
    path.write_text(json.dumps([asdict(r) for r in runs], indent=1))


def load(paths: list[Path]) -> list[SearchRun]:
    return [SearchRun(**r) for p in paths for r in json.loads(Path(p).read_text())]


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _verdict(runs: list[SearchRun], dataset: str, target: float) -> tuple[float, bool, str]:
    """(trials ratio, met, text) of the default search against TPE without pruning."""
    by = {
        s: {r.seed: r for r in runs if r.dataset == dataset and r.strategy == s} for s in STRATEGIES
    }
    seeds = sorted(set(by[DEFAULT]) & set(by["TPE, no pruning"]))
    ours, plain = [by[DEFAULT][s] for s in seeds], [by["TPE, no pruning"][s] for s in seeds]
    ratio = _mean([r.trials for r in ours]) / _mean([r.trials for r in plain])
    diffs = [a.best - b.best for a, b in zip(ours, plain, strict=True)]
    no_worse = _mean(diffs) >= 0
    floor = all(r.default_value is None or r.best >= r.default_value for r in ours)
    wins = sum(d > 0 for d in diffs)
    text = (
        f"{dataset}: {ratio:.1f}× the trials; best {_mean(diffs):+.3f} (sd {_sd(diffs):.3f}) "
        f"against TPE without pruning, ahead in {wins} of {len(seeds)} seeds"
    )
    return ratio, ratio >= target and no_worse and floor, text


def search_section(runs: list[SearchRun], sizes: Sizes, *, target: float = 3.0) -> Section:
    rows = []
    present = [d for d in ("phantom", "nuclei") if any(r.dataset == d for r in runs)]
    for dataset in present:
        for strategy in STRATEGIES:
            group = sorted(
                (r for r in runs if r.dataset == dataset and r.strategy == strategy),
                key=lambda r: r.seed,
            )
            bests = [r.best for r in group]
            pruned = sorted(e for r in group for e in r.pruned_at)
            stops = ", ".join(f"{e}: {pruned.count(e)}" for e in sorted(set(pruned))) or "—"
            defaults = [f"{r.default_value:.3f}" for r in group if r.default_value is not None]
            rows.append(
                [
                    dataset,
                    strategy,
                    " / ".join(str(r.trials) for r in group),
                    " / ".join(f"{b:.3f}" for b in bests),
                    f"{_mean(bests):.3f} ± {_sd(bests):.3f}",
                    " / ".join(defaults) or "—",
                    stops,
                ]
            )
    verdicts = [_verdict(runs, d, target) for d in present]
    notes = [
        f"Phantom set: {sizes.search_phantoms} images; nuclei: {sizes.search_nuclei_train} "
        f"training and {sizes.search_nuclei_val} validation images of dsb2018_nuclei_96; both at "
        f"{sizes.search_size} px. Budget {sizes.search_budget} epochs per search = "
        f"{sizes.search_budget // sizes.search_max_epochs} full trials of "
        f"{sizes.search_max_epochs} epochs; seeds {list(sizes.search_seeds)}, the same seeds "
        "for every strategy.",
        "Best = the best completed trial's best-epoch val_dsc (the study's value); mean ± sd "
        "over seeds. The verdict compares seed by seed: the default search must evaluate "
        f"≥ {target:.0f}× the trials of TPE without pruning, end no worse on the mean of the "
        "per-seed differences, and never below its own default trial.",
        *[v[2] + "." for v in verdicts],
        "Run in one process per search with in-memory Optuna storage and without MLflow (a "
        "simplification of `study run`: same sampler, pruner, reporting callback, space and "
        "training function; collapse pruning, `search.prune_collapsed`, is left out).",
    ]
    met = all(v[1] for v in verdicts) if verdicts else None
    return Section(
        key="search",
        title="4. Search efficiency (fixed budget of epochs)",
        headline="; ".join(v[2] for v in verdicts),
        target=f"≥ {target:.0f}× the trials of TPE without pruning at a mean best no worse, "
        "never below the default trial",
        met=met,
        columns=[
            "data",
            "strategy",
            "trials per seed",
            "best val_dsc per seed",
            "mean ± sd",
            "default trial",
            "pruned at epoch: trials",
        ],
        rows=rows,
        notes=notes,
    )


def anytime_png(runs: list[SearchRun], path: Path) -> Path:
    """Best value after every tenth of the budget, mean over seeds, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [d for d in ("phantom", "nuclei") if any(r.dataset == d for r in runs)]
    fig, axes = plt.subplots(1, len(present), figsize=(5.5 * len(present), 4), squeeze=False)
    for ax, dataset in zip(axes[0], present, strict=True):
        for strategy in STRATEGIES:
            group = [r for r in runs if r.dataset == dataset and r.strategy == strategy]
            if not group:
                continue
            x = [10 * t for t in TENTHS]
            mean = [statistics.fmean(r.anytime[i] for r in group) for i in range(len(TENTHS))]
            line = ax.plot(x, mean, marker="o", label=strategy)[0]
            for r in group:
                ax.plot(x, r.anytime, color=line.get_color(), alpha=0.25, linewidth=0.8)
        ax.set(title=dataset, xlabel="% of the epoch budget spent", ylabel="best val_dsc so far")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    import argparse

    from benchmarks.common import FULL
    from benchmarks.report import _md_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="some searches, saved as JSON")
    run.add_argument("--dataset", choices=["phantom", "nuclei"], required=True)
    run.add_argument("--strategy", choices=list(STRATEGIES), nargs="+", default=list(STRATEGIES))
    run.add_argument("--seeds", type=int, nargs="+", default=list(FULL.search_seeds))
    run.add_argument("--save", type=Path, required=True)
    run.add_argument("--workdir", type=Path, default=Path("/tmp/segsweep-bench"))
    rep = sub.add_parser("report", help="the section and the anytime PNG from saved runs")
    rep.add_argument("runs", type=Path, nargs="+")
    rep.add_argument("--png", type=Path, default=Path(__file__).parent / "search_anytime.png")
    args = parser.parse_args()
    if args.cmd == "run":
        data_dir, split = load_split(args.dataset, FULL, args.workdir)
        runs = []
        for seed in args.seeds:
            for strategy in args.strategy:
                runs.append(run_one(FULL, args.dataset, data_dir, split, strategy, seed))
                r = runs[-1]
                print(
                    f"{r.dataset} {r.strategy} seed {r.seed}: {r.trials} trials, best "
                    f"{r.best:.3f}, default {r.default_value}, {r.seconds:.0f} s",
                    flush=True,
                )
                save(runs, args.save)
        return
    runs = load(args.runs)
    section = search_section(runs, FULL)
    print(f"**{section.headline}** — target {section.target}: {section.met}\n")
    print("\n".join(_md_table(section.columns, section.rows)))
    print("\n".join(f"- {n}" for n in section.notes))
    print(f"wrote {anytime_png(runs, args.png)}")


if __name__ == "__main__":
    main()
