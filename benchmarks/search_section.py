"""Item 4's section: the table, the verdict and the anytime curves of the searches that
:mod:`benchmarks.search` ran and saved."""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.common import Section, Sizes
from benchmarks.search import DEFAULT, STRATEGIES, TENTHS, SearchRun

__all__ = ["search_section", "anytime_png"]


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
