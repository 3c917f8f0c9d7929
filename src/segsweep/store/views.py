"""What ``mlflow ui`` opens on: a saved view of the study's trials (or finalize's folds),
filtered, sorted best first and with the lesion metrics and searched parameters as columns, and
the URL that opens it without a click."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

__all__ = ["FOLDS_VIEW", "TRIALS_VIEW", "VIEW_TAG", "saved_view", "view_path"]

# MLflow 3's UI opens the saved view kept in experiment tag VIEW_TAG + key (JSON: name, dates and
# the view's state as a JSON string) when its URL names the key: runs filtered, sorted and shown
# with chosen columns, without a click. A filter or a metric sort lists child runs flat.
VIEW_TAG = "mlflow.sharedViewState."
TRIALS_VIEW, FOLDS_VIEW = "segsweep-trials", "segsweep-folds"  # keys: the search's, finalize's
# the best epoch's values (best_*), the ones the trial's value and `study status` come from
VIEW_METRICS = (
    "val_dsc",
    "val_lesion_dsc",
    "val_lesion_f1",
    "val_lesion_recall",
    "val_lesion_precision",
    "val_pred_fg",
)


def view_path(experiment_id: str, key: str) -> str:
    """Where the UI shows saved view ``key``: on the runs tab, since opening the experiment
    alone redirects there and drops every query parameter but ``workflowType``."""
    return (
        f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={key}"
    )


def _view_state(study_name: str, objective: str, params: Sequence[str], tags: Sequence[str]):
    quoted = f'"{study_name}"' if "'" in study_name else f"'{study_name}'"
    metrics = dict.fromkeys(f"best_{m}" for m in (objective, *VIEW_METRICS))  # ordered, unique
    return {
        # every trial run carries both tags, whichever `study run` made it; parent runs do not
        "searchFilter": f"tags.study = {quoted} AND tags.trial IS NOT NULL",
        "orderByKey": f"metrics.`best_{objective}`",
        "orderByAsc": False,  # every objective is maximised
        "selectedColumns": [
            *(f"tags.`{t}`" for t in ("state", *tags)),
            *(f"metrics.`{m}`" for m in metrics),
            *(f"params.`{p}`" for p in params),
        ],
        "runsHiddenMode": "SHOW_ALL",  # the charts too show every trial, not the first ten
    }


def saved_view(
    name: str, study_name: str, objective: str, params: Sequence[str], tags: Sequence[str] = ()
) -> str:
    """The experiment tag's value for a view called ``name``: the trial runs of Optuna study
    ``study_name``, best ``objective`` first (JSON, its state a JSON string, as the UI keeps it)."""
    now = int(1000 * time.time())
    state = _view_state(study_name, objective, params, tags)
    return json.dumps(
        {"name": name, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
    )
