"""A study report: Optuna's plots as PNG and a one-page Markdown summary, logged to MLflow.

The plots are Optuna's matplotlib visualisations (optimisation history, parameter importances,
parallel coordinates, intermediate values). A plot the study cannot support yet (too few
completed trials, no parameter that varies) is skipped and the summary says why. The summary
counts trials by state, lists the best trials, what was pruned or failed and why (trial user attr
``reason``), and how many trials each diagnosis hit (trial user attr ``diagnoses``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from segsweep import __version__
from segsweep.evaluation.diagnose import CODES
from segsweep.results.plots import Unsupported, importances, write_plots
from segsweep.store.storage import study_objective
from segsweep.store.summary import completed
from segsweep.store.tracking import Tracker

__all__ = [
    "Report",
    "counts",
    "report_run",
    "summary_markdown",
    "write_report",
]

TOP = 5
OBJECTIVE_MEANING = {
    "val_dsc": "hard lesion Dice per image, averaged over images",
    "val_dsc_global": "hard lesion Dice of all pixels pooled",
    "val_lesion_dsc": "BraTS 2023 lesion-wise Dice",
    "val_lesion_f1": "lesion detection F1",
    "val_case_dsc": "hard lesion Dice of each case's volume, averaged over cases",
    "val_case_lesion_dsc": "BraTS 2023 lesion-wise Dice of 3D lesions, per case's volume",
    "val_case_lesion_f1": "detection F1 of 3D lesions, per case's volume",
}
REPORT_RUN = "study-report"
_MEANING = {
    "collapsed": "predicted no lesion pixel for several epochs while the loss fell",
    "penalty_dominates": "the L2 penalty was larger than the data loss",
    "over_segmenting": "predicted many times the true lesion fraction",
    "not_learning": "val_dsc stayed flat at its start value",
}


@dataclass(frozen=True)
class Report:
    out_dir: Path
    files: list[Path]
    skipped: dict[str, str]  # plot name -> why it was not drawn
    run_id: str | None  # the MLflow run the files were logged to


def counts(study: optuna.Study) -> dict[str, dict[str, int]]:
    """Trials by state, and finished trials by diagnosis (``healthy``: diagnosed, none fired;
    ``not diagnosed``: finished without a ``diagnoses`` attr, e.g. failed before epoch 1)."""
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    finished = [t for t in trials if t.state.is_finished()]
    hits = Counter(code for t in finished for code in t.user_attrs.get("diagnoses", []))
    diagnoses = {code: hits.get(code, 0) for code in CODES}
    diagnoses["healthy"] = sum(t.user_attrs.get("diagnoses") == [] for t in finished)
    diagnoses["not diagnosed"] = sum("diagnoses" not in t.user_attrs for t in finished)
    order = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
    return {
        "states": {s: states.get(s, 0) for s in (*order, *sorted(set(states) - set(order)))},
        "diagnoses": diagnoses,
    }


def _params(t: FrozenTrial) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in t.params.items())  # fmt: skip


def _codes(t: FrozenTrial) -> str:
    found = t.user_attrs.get("diagnoses")
    return "–" if found is None else ", ".join(found) or "healthy"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


# The best epoch's validation metrics shown beside the objective (trial user attr ``metrics``).
METRIC_COLUMNS = ("val_dsc", "val_lesion_dsc", "val_lesion_f1", "val_hd95", "val_case_dsc",
                  "val_case_hd95")  # fmt: skip


def _metric(t: FrozenTrial, key: str) -> str:
    value = t.user_attrs.get("metrics", {}).get(key)
    return "–" if value is None else f"{value:.4g}"


def _best_rows(study: optuna.Study, columns: list[str]) -> list[list[Any]]:
    best = sorted(completed(study), key=lambda t: t.value, reverse=True)[:TOP]
    return [
        [t.number, f"{t.value:.4f}", *(_metric(t, k) for k in columns), _params(t), _codes(t),
         t.user_attrs.get("mlflow_run_id", "–")]
        for t in best
    ]  # fmt: skip


def _trial_sections(study: optuna.Study) -> list[str]:
    objective = study_objective(study)
    seen = {k for t in completed(study) for k in t.user_attrs.get("metrics", {})}
    # the case columns only for volume data, whose trials record them
    columns = [k for k in METRIC_COLUMNS if k != objective and (k in seen or "_case_" not in k)]
    rows = _best_rows(study, columns)
    lines = [f"## Best {len(rows)} trials", ""]
    header = ["trial", objective, *columns, "params", "diagnoses", "MLflow run"]
    lines += _table(header, rows) if rows else ["No trial has completed yet."]
    for state, title in ((TrialState.PRUNED, "Pruned trials"), (TrialState.FAIL, "Failed trials")):
        trials = study.get_trials(deepcopy=False, states=(state,))
        rows = [
            [t.number, len(t.intermediate_values), t.user_attrs.get("reason", "not recorded"),
             _codes(t)]
            for t in trials
        ]  # fmt: skip
        header = ["trial", "epochs reported", "why", "diagnoses"]
        lines += ["", f"## {title} ({len(trials)})", ""]
        lines += _table(header, rows) if rows else ["None."]
    return lines


def _importance_section(study: optuna.Study) -> list[str]:
    lines = ["## Parameter importances", ""]
    try:
        found = importances(study)
    except Unsupported as why:
        return [*lines, f"Not computed: {why}."]
    lines += ["Share of the objective's variance over the completed trials that each parameter "
              "explains (fANOVA, seeded), largest first.", ""]  # fmt: skip
    return lines + _table(["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in found.items()])


def summary_markdown(
    study: optuna.Study, *, plots: list[Path], skipped: dict[str, str], run_id: str | None
) -> str:
    found = counts(study)
    lines = [
        f"# Study `{study.study_name}`",
        "",
        f"segsweep {__version__}, {time.strftime('%Y-%m-%d %H:%M')}; objective: the best "
        f"epoch's {study_objective(study)} ({OBJECTIVE_MEANING[study_objective(study)]}), "
        "maximised; the other metrics are of that same epoch."
        + (f" Logged to MLflow run `{run_id}`." if run_id else ""),
        "",
        "## Trials by state",
        "",
        *_table(["state", "trials"], [[s, n] for s, n in found["states"].items()]),
        "",
        *_trial_sections(study),
        "",
        *_importance_section(study),
        "",
        "## Diagnoses",
        "",
        *_table(
            ["diagnosis", "trials", "meaning"],
            [[c, n, _MEANING.get(c, "")] for c, n in found["diagnoses"].items()],
        ),
        "",
        "## Plots",
        "",
        *[f"![{p.stem}]({p.name})" for p in plots],
        *[f"- {name} not drawn: {why}." for name, why in skipped.items()],
    ]
    return "\n".join(lines) + "\n"


def report_run(tracker: Tracker, experiment: str) -> str:
    """The study's newest parent run (a ``study run``); without one, a run named
    ``study-report``, created once and reused."""
    experiment_id = tracker.experiment(experiment)
    parents = tracker.client.search_runs(
        [experiment_id],
        "tags.`mlflow.parentRunId` IS NULL",
        order_by=["attributes.start_time DESC"],
        max_results=50,
    )
    runs = [r for r in parents if r.info.run_name != REPORT_RUN] or parents
    if runs:
        return runs[0].info.run_id
    run_id = tracker.start_run(experiment_id, name=REPORT_RUN, tags={"study": experiment})
    tracker.client.set_terminated(run_id, "FINISHED")
    return run_id


def write_report(study: optuna.Study, out_dir: Path, *, tracking_uri: str = "") -> Report:
    """Plots and ``summary.md`` in ``out_dir``, logged under ``report/`` of :func:`report_run`
    in the study's MLflow experiment (named like the study)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots, skipped = write_plots(study, out_dir)
    tracker = Tracker(tracking_uri)
    run_id = report_run(tracker, study.study_name)
    summary = out_dir / "summary.md"
    summary.write_text(summary_markdown(study, plots=plots, skipped=skipped, run_id=run_id))
    files = [*plots, summary]
    for path in files:
        tracker.log_file(run_id, path, "report")
    return Report(out_dir=out_dir, files=files, skipped=skipped, run_id=run_id)
