"""What happened in one run, in plain words: the loss split, the Dice, the lesion fractions.

Everything is read back from MLflow (params, tags, per-epoch metric histories) and the diagnoses are
recomputed with :func:`~segsweep.evaluation.diagnose.diagnose`, so any run logged by segsweep can be
explained, finished or not. :func:`explain_run` returns a JSON-ready dict; :func:`render` turns it
into the text ``segsweep explain`` prints.
"""

from __future__ import annotations

import math
from typing import Any

from segsweep.evaluation.diagnose import CODES, Rules, diagnose
from segsweep.results.runs import RunRecord, fetch_run
from segsweep.store.tracking import Tracker

__all__ = ["explain", "explain_run", "render"]

KEY_PARAMS = ("loss", "dice_w2", "dropout", "l2", "batch_norm", "bn_momentum", "lr", "schedule")
TABLE = ("loss", "loss_data", "loss_l2", "val_dsc", "val_dsc_soft", "val_pred_fg", "val_true_fg")
LESION_TABLE = (
    "val_lesion_recall",
    "val_lesion_precision",
    "val_lesion_f1",
    "val_lesion_dsc",
    "val_hd95",
    "val_lesions_missed",
    "val_lesions_fp",
)
# volume data: each case's slices stacked into its volume and scored there
CASE_TABLE = (
    "val_case_dsc",
    "val_case_lesion_recall",
    "val_case_lesion_precision",
    "val_case_lesion_f1",
    "val_case_lesion_dsc",
    "val_case_hd95",
)
_COUNTS = ("val_lesions_missed", "val_lesions_fp", "val_hd95", "val_case_hd95")
_FRACTIONS = ("val_pred_fg", "val_true_fg")


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _num(params: dict[str, str], key: str) -> float | None:
    try:
        return float(params[key])
    except (KeyError, ValueError):
        return None


def _span(epochs: list[int]) -> str:
    if len(epochs) == 1:
        return f"epoch {epochs[0]}"
    if epochs == list(range(epochs[0], epochs[-1] + 1)):
        return f"epochs {epochs[0]}–{epochs[-1]}"
    return "epochs " + ", ".join(map(str, epochs))


def _pct(x: float) -> str:
    return "0 %" if x == 0 else f"{100 * x:.2g} %"


def _above_one(r: RunRecord) -> str:
    """Why the loss reads above 1, when it does."""
    h, epochs = r.history, r.epochs
    if "loss" not in h or "loss_data" not in h:
        return ""
    over = [e for e, v in zip(epochs, h["loss"], strict=True) if v > 1]
    if not over:
        return ""
    if all(v <= 1 for v in h["loss_data"] if math.isfinite(v)):
        return (
            f"the loss is above 1 at {_span(over)} only because the L2 penalty is added to "
            "loss_data, which stays at or below 1"
        )
    return f"the loss is above 1 at {_span(over)}, and loss_data itself exceeds 1 there"


def _reading(r: RunRecord) -> str:
    h = r.history
    if not r.epochs or "loss" not in h or "val_dsc" not in h:
        return "no epoch finished, so there is nothing to read"
    parts = [
        f"loss went {h['loss'][0]:.3g} → {h['loss'][-1]:.3g} while val_dsc went "
        f"{h['val_dsc'][0]:.3g} → {h['val_dsc'][-1]:.3g} over {_span(r.epochs)}"
    ]
    if "loss_l2" in h and h["loss"][-1] > 0:
        l2 = h["loss_l2"][-1]
        parts.append(f"{l2:.3g} of the final loss ({_pct(l2 / h['loss'][-1])}) is the L2 penalty")
    if above := _above_one(r):
        parts.append(above)
    if all(k in h for k in _FRACTIONS):
        pred, true = h["val_pred_fg"][-1], h["val_true_fg"][-1]
        parts.append(f"the model predicts {_pct(pred)} lesion against {_pct(true)} true")
    return "; ".join(parts) + "."


def _stuck_advice(codes: set[str], params: dict[str, str]) -> list[str]:
    """Changes for a run that does not learn the lesion (collapsed, not learning)."""
    tips = []
    w2, dropout, lr = _num(params, "dice_w2"), _num(params, "dropout"), _num(params, "lr")
    if params.get("loss") == "weighted_dice":
        raise_w2 = f", or raise dice_w2 from {w2:g} towards 0.9" if w2 and w2 < 0.9 else ""
        tips.append(
            "loss weighted_dice rewards the background Dice: try dice_ce or focal_tversky"
            + raise_w2
        )
    if dropout is not None and dropout >= 0.3:
        tips.append(f"dropout {dropout:g} after every convolution: try 0–0.2")
    momentum = _num(params, "bn_momentum")
    if params.get("batch_norm") == "True" and momentum is not None and momentum >= 0.99:
        tips.append(f"bn_momentum {momentum:g} lags behind on small data: try 0.9")
    if "not_learning" in codes and lr is not None and lr <= 1e-4:
        tips.append(f"lr {lr:g}: try 1e-3")
    return tips


def _advice(codes: set[str], params: dict[str, str]) -> list[str]:
    """Concrete changes to this run's settings for the diagnoses found."""
    tips = _stuck_advice(codes, params) if codes & {"collapsed", "not_learning"} else []
    l2, w2, lr = _num(params, "l2"), _num(params, "dice_w2"), _num(params, "lr")
    if codes - {"over_segmenting"} and l2 is not None and l2 >= 1e-5:
        tips.append(f"l2 {l2:g} on every kernel: try 1e-6 or 0")
    if "over_segmenting" in codes:
        if params.get("loss") == "focal_tversky":
            tips.append("focal_tversky weights missed lesion 0.7 against 0.3: try dice_ce")
        if w2 is not None and w2 >= 0.9:
            tips.append(f"dice_w2 {w2:g} rewards lesion over background: try 0.7")
        if lr is not None and lr >= 3e-3:
            tips.append(f"lr {lr:g}: try 1e-3")
    return tips


def explain(record: RunRecord, rules: Rules | None = None) -> dict[str, Any]:
    """The JSON-ready explanation of one run."""
    doc: dict[str, Any] = {
        "run_id": record.run_id,
        "run_name": record.run_name,
        "experiment": record.experiment,
        "trial": int(record.tags["trial"]) if record.tags.get("trial", "").isdigit() else None,
        "state": record.tags.get("state", record.status),
        "reason": record.tags.get("reason", ""),
        "params": {k: record.params[k] for k in KEY_PARAMS if k in record.params},
        "objective": record.params.get("search.objective", "val_dsc"),
        "epochs": [
            {
                "epoch": e,
                **{
                    k: _finite(record.history[k][i])
                    for k in (*TABLE, *LESION_TABLE, *CASE_TABLE)
                    if k in record.history
                },
            }
            for i, e in enumerate(record.epochs)
        ],
        "reading": _reading(record),
        "not_diagnosed": None,
    }
    try:
        found = diagnose(record.history, rules or Rules())
    except ValueError as err:  # a run that failed before its first epoch, or not from segsweep
        return {**doc, "diagnoses": None, "not_diagnosed": str(err), "advice": []}
    return {
        **doc,
        "diagnoses": [{"code": d.code, "epoch": d.epoch, "message": d.message} for d in found],
        "advice": _advice({d.code for d in found}, record.params),
    }


def explain_run(
    run_id: str, *, tracking_uri: str = "", rules: Rules | None = None
) -> dict[str, Any]:
    return explain(fetch_run(Tracker(tracking_uri).client, run_id), rules)


def _cell(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    if key in _COUNTS:
        return f"{value:.4g}"
    return _pct(value) if key in _FRACTIONS else f"{value:.4f}"


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...] = TABLE) -> list[str]:
    keys = [k for k in columns if any(k in row for row in rows)]
    if not keys:
        return []
    widths = [max(len(k), 9) for k in keys]
    lines = ["epoch  " + "  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True))]
    for row in rows:
        cells = [_cell(k, row.get(k)).rjust(w) for k, w in zip(keys, widths, strict=True)]
        lines.append(f"{row['epoch']:>5}  " + "  ".join(cells))
    return lines


def render(doc: dict[str, Any]) -> str:
    trial = f"trial {doc['trial']} of " if doc["trial"] is not None else ""
    lines = [f"run {doc['run_id']} ({doc['run_name']}, {trial}experiment '{doc['experiment']}')"]
    lines.append(f"state: {doc['state']}" + (f" ({doc['reason']})" if doc["reason"] else ""))
    lines.append("params: " + (" ".join(f"{k}={v}" for k, v in doc["params"].items()) or "–"))
    lines += ["", *_table(doc["epochs"])]
    if lesions := _table(doc["epochs"], LESION_TABLE):
        lines += ["", "lesions (8-connected components; hd95 in pixels):", *lesions]
    if cases := _table(doc["epochs"], CASE_TABLE):
        lines += ["", "cases (each volume scored whole; 26-connected lesions; hd95 in mm):", *cases]
    lines.append(f"\nthe study maximises {doc['objective']}; reading: {doc['reading']}\n")
    if doc["diagnoses"] is None:
        lines.append(f"diagnoses: cannot diagnose this run: {doc['not_diagnosed']}")
    elif not doc["diagnoses"]:
        lines.append(f"diagnoses: none fired (checked: {', '.join(CODES)}).")
    else:
        lines.append("diagnoses:")
        lines += [f"  - {d['code']} (epoch {d['epoch']}): {d['message']}" for d in doc["diagnoses"]]
    if doc["advice"]:
        lines += ["", "what to change in this run's settings:"]
        lines += [f"  - {tip}" for tip in doc["advice"]]
    return "\n".join(lines)
