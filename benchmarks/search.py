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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.common import Sizes
from benchmarks.signals import NUCLEI, config, dataset_dir, subset

__all__ = ["STRATEGIES", "SearchRun", "run_one", "measure", "save", "load"]

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


def main() -> None:
    import argparse

    from benchmarks.common import FULL
    from benchmarks.report import _md_table
    from benchmarks.search_section import anytime_png, search_section

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
