"""Optuna's plots of a study as PNG files, and the parameter importances behind one of them.

The plots are Optuna's matplotlib visualisations (optimisation history, parameter importances,
parallel coordinates, intermediate values). A plot the study cannot support yet (too few
completed trials, no parameter that varies) raises :class:`Unsupported` with the reason, which
the report prints in its place.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from segsweep.store.summary import completed

__all__ = ["Unsupported", "importances", "write_plots"]


class Unsupported(Exception):
    """A plot the study cannot support yet; the message says why."""


def _evaluator() -> Any:
    from optuna.importance import FanovaImportanceEvaluator

    return FanovaImportanceEvaluator(seed=0)  # seeded: the same study gives the same ranking


def _check_importances(study: optuna.Study) -> None:
    done = completed(study)
    varying = {k for t in done for k in t.params if len({repr(u.params.get(k)) for u in done}) > 1}
    if len(done) < 2 or not varying:
        raise Unsupported("needs at least 2 completed trials whose parameters differ")


def importances(study: optuna.Study) -> dict[str, float]:
    """Each parameter's share of the value's variance (fANOVA), largest first.

    No ``target`` is passed: Optuna then reads the trials' values with the study's own
    direction. (fANOVA splits variance, which a sign flip leaves alone; evaluators that rank
    by the top trials, such as PED-ANOVA, are the ones a maximised study's sign would turn.)
    """
    _check_importances(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        found = optuna.importance.get_param_importances(study, evaluator=_evaluator())
    return {name: float(share) for name, share in found.items()}


def _importances(study: optuna.Study) -> Any:
    from optuna.visualization.matplotlib import plot_param_importances

    _check_importances(study)
    return plot_param_importances(study, evaluator=_evaluator())


def _needs_completed(n: int, plot: Callable[[optuna.Study], Any]) -> Callable:
    def guarded(study: optuna.Study) -> Any:
        if len(completed(study)) < n:
            raise Unsupported(f"needs at least {n} completed trial{'s' if n > 1 else ''}")
        return plot(study)

    return guarded


def _intermediate(study: optuna.Study) -> Any:
    from optuna.visualization.matplotlib import plot_intermediate_values

    if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        raise Unsupported("no trial reported a per-epoch value")
    return plot_intermediate_values(study)


def _plots() -> dict[str, Callable[[optuna.Study], Any]]:
    from optuna.visualization import matplotlib as ov

    return {
        "optimization_history": _needs_completed(1, ov.plot_optimization_history),
        "param_importances": _importances,
        "parallel_coordinate": _needs_completed(2, ov.plot_parallel_coordinate),
        "intermediate_values": _intermediate,
    }


def write_plots(study: optuna.Study, out_dir: Path) -> tuple[list[Path], dict[str, str]]:
    """One PNG per plot the study supports; the others with the reason they were skipped."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    written, skipped = [], {}
    for name, plot in _plots().items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # a parameter searched over one value has one y: nothing for the user to act on
                warnings.filterwarnings("ignore", "Attempting to set identical low and high ylims")
                axes = plot(study)
        except Unsupported as why:
            skipped[name] = str(why)
            continue
        figure = getattr(axes, "figure", None) or axes.ravel()[0].figure
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written, skipped
