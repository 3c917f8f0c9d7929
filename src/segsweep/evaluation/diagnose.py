"""Diagnoses of a training run, read from its per-epoch history while it trains.

A diagnosis names a way a segmentation run goes wrong that the loss curve alone hides:

- ``collapsed``: after the warm-up, no validation pixel is predicted as lesion for ``k`` epochs in
  a row while ``loss_data`` still falls (its last value is below the one of the epoch before the
  streak). The loss is being lowered through the background.
- ``penalty_dominates``: the L2 penalty ``loss_l2`` is larger than the data loss ``loss_data``.
- ``over_segmenting``: after the warm-up, the predicted lesion fraction is more than ``factor``
  times the true one for ``k`` epochs in a row.
- ``not_learning``: ``val_dsc`` stays within ``flat_tol`` of its epoch-1 value for the first
  ``flat_epochs`` epochs (or longer).

:func:`diagnose` is pure and works on any history (a finished MLflow run, or a run in progress);
:class:`DiagnosisMonitor` runs it at every epoch end inside ``keras.Model.fit``. This module knows
neither Optuna nor MLflow; the tag names a tracker should use are :func:`diagnosis_tags`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import keras

__all__ = [
    "CODES",
    "REQUIRED",
    "Diagnosis",
    "DiagnosisMonitor",
    "Rules",
    "diagnose",
    "diagnosis_tags",
    "describe",
]

CODES = ("collapsed", "penalty_dominates", "over_segmenting", "not_learning")
REQUIRED = ("loss_data", "loss_l2", "val_dsc", "val_pred_fg", "val_true_fg")


@dataclass(frozen=True)
class Diagnosis:
    """One finding: its ``code`` (one of :data:`CODES`), the 1-based ``epoch`` it was first seen,
    and a plain-language ``message`` with the numbers, the likely cause and what to change."""

    code: str
    epoch: int
    message: str


@dataclass(frozen=True)
class Rules:
    """Thresholds of the diagnoses, as data; the defaults suit short trials (5–20 epochs).

    - ``warmup = 2``: epochs 1..warmup are never part of a ``collapsed`` or ``over_segmenting``
      streak (a fresh network often predicts all or nothing at first).
    - ``k = 3``: consecutive epochs a ``collapsed`` or ``over_segmenting`` streak needs, so with
      the defaults the earliest either can fire is epoch 5.
    - ``empty_fg = 0.0``: a predicted lesion fraction ``val_pred_fg <= empty_fg`` counts as "no
      lesion pixel predicted"; 0 means exactly none above the threshold.
    - ``over_factor = 5.0``: ``over_segmenting`` when ``val_pred_fg > over_factor * val_true_fg``.
    - ``flat_tol = 0.01``, ``flat_epochs = 5``: ``not_learning`` when ``val_dsc`` stays within
      ``flat_tol`` of its epoch-1 value for the first ``flat_epochs`` epochs.
    - ``penalty_ratio = 1.0``: ``penalty_dominates`` when ``loss_l2 > penalty_ratio *
      loss_data`` at any epoch (no warm-up: the penalty is largest at initialisation).
    """

    warmup: int = 2
    k: int = 3
    empty_fg: float = 0.0
    over_factor: float = 5.0
    flat_tol: float = 0.01
    flat_epochs: int = 5
    penalty_ratio: float = 1.0

    def __post_init__(self) -> None:
        def is_int(v: object, low: int) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= low

        checks = {
            "warmup": ("an int >= 0", is_int(self.warmup, 0)),
            "k": ("an int >= 1", is_int(self.k, 1)),
            "empty_fg": ("a number in [0, 1)", 0.0 <= self.empty_fg < 1.0),
            "over_factor": ("a number > 1", self.over_factor > 1.0),
            "flat_tol": ("a number >= 0", self.flat_tol >= 0.0),
            "flat_epochs": ("an int >= 2", is_int(self.flat_epochs, 2)),
            "penalty_ratio": ("a number > 0", self.penalty_ratio > 0.0),
        }
        for name, (accepted, ok) in checks.items():
            if not ok:
                raise ValueError(
                    f"The '{name}' parameter of Rules must be {accepted}. "
                    f"Got {getattr(self, name)!r} instead."
                )


def _pct(x: float) -> str:
    return f"{100 * x:.2g} %"


def _streak(flags: Sequence[bool], start: int, k: int) -> tuple[int, int] | None:
    """The first run of ``k`` True flags at index >= ``start``, as 0-based (first, last)."""
    count = 0
    for i in range(start, len(flags)):
        count = count + 1 if flags[i] else 0
        if count == k:
            return i - k + 1, i
    return None


def _collapsed(h: Mapping[str, Sequence[float]], r: Rules) -> Diagnosis | None:
    empty = [fg <= r.empty_fg for fg in h["val_pred_fg"]]
    loss, count = h["loss_data"], 0
    for i in range(r.warmup, len(empty)):
        count = count + 1 if empty[i] else 0
        a = i - r.k + 1
        # The loss of the epoch before the streak: the streak's k epochs of training all count,
        # and one noisy epoch-mean inside a slow fall does not hide it.
        before = max(a - 1, 0)
        if count >= r.k and loss[i] < loss[before]:
            dsc = h["val_dsc"][i]
            lesion_free = (
                f" (its val_dsc of {dsc:.3g} comes only from validation images without lesion, "
                "which score 1 when nothing is predicted)"
                if dsc > 0
                else ""
            )
            return Diagnosis(
                "collapsed",
                i + 1,
                f"predicted no lesion pixel on validation for {r.k} epochs in a row (epochs "
                f"{a + 1}–{i + 1}) while loss_data fell {loss[before]:.4f} → {loss[i]:.4f}, "
                f"against {_pct(h['val_true_fg'][i])} true lesion{lesion_free}: the loss is "
                "being lowered through the background, whose Dice is nearly 1 for free when "
                "lesions are rare, so the lesion Dice cannot rise. Try the loss dice_ce or "
                "focal_tversky, a higher dice_w2, less dropout and L2, and with batch norm a "
                "momentum of 0.9.",
            )
    return None


def _penalty(h: Mapping[str, Sequence[float]], r: Rules) -> Diagnosis | None:
    for i, (data, l2) in enumerate(zip(h["loss_data"], h["loss_l2"], strict=True)):
        if l2 > r.penalty_ratio * data:
            loss = h["loss"][i] if "loss" in h else data + l2
            above = (
                f"loss > 1 ({loss:.3g}) because the L2 penalty ({l2:.3g}) is added to the data "
                f"loss ({data:.3g})"
                if loss > 1
                else f"the L2 penalty ({l2:.3g}) is larger than the data loss ({data:.3g})"
            )
            return Diagnosis(
                "penalty_dominates",
                i + 1,
                f"{above} at epoch {i + 1}: most of what the optimiser lowers is the size of the "
                "weights, not the error on the masks. Judge the run by loss_data, and lower l2 "
                "(1e-6 or 0) or use fewer filters.",
            )
    return None


def _over_segmenting(h: Mapping[str, Sequence[float]], r: Rules) -> Diagnosis | None:
    pred, true = h["val_pred_fg"], h["val_true_fg"]
    over = [p > 0 and p > r.over_factor * t for p, t in zip(pred, true, strict=True)]
    found = _streak(over, r.warmup, r.k)
    if found is None:
        return None
    a, b = found
    times = f"{pred[b] / true[b]:.0f}×" if true[b] > 0 else "with no true lesion"
    return Diagnosis(
        "over_segmenting",
        b + 1,
        f"predicted {_pct(pred[b])} of validation pixels as lesion against {_pct(true[b])} true "
        f"({times}) for {r.k} epochs in a row (epochs {a + 1}–{b + 1}): the model marks far "
        "more than the lesions, as a loss that rewards recall does (focal_tversky, a high "
        "dice_w2). Try dice_ce or a lower dice_w2, a lower learning rate, or more epochs.",
    )


def _not_learning(h: Mapping[str, Sequence[float]], r: Rules) -> Diagnosis | None:
    dsc = h["val_dsc"]
    if len(dsc) < r.flat_epochs or not math.isfinite(dsc[0]):
        return None
    start = dsc[0]
    if all(abs(v - start) <= r.flat_tol for v in dsc[: r.flat_epochs]):
        return Diagnosis(
            "not_learning",
            r.flat_epochs,
            f"val_dsc stayed at {start:.3g} (within ±{r.flat_tol:g} of its epoch-1 value) for "
            f"epochs 1–{r.flat_epochs}: nothing the model learns reaches the validation "
            "lesions. Try a higher learning rate, less dropout and L2, another loss, and with "
            "batch norm a momentum of 0.9 (0.99 lags behind when an epoch has few steps).",
        )
    return None


_RULES = (_collapsed, _penalty, _over_segmenting, _not_learning)


def diagnose(history: Mapping[str, Sequence[float]], rules: Rules = Rules()) -> list[Diagnosis]:
    """Every diagnosis that fires on ``history``, once each at the epoch it first fires.

    ``history`` maps a metric to its per-epoch values (index 0 = epoch 1) and must hold
    :data:`REQUIRED`, all of one length; ``loss`` is optional (else ``loss_data + loss_l2``).
    NaN never fires a rule. A missing key raises ``ValueError`` naming it, because a renamed
    metric would otherwise silently switch the diagnosis off.

    >>> h = {"loss_data": [.8, .7, .6, .5, .4], "loss_l2": [.1] * 5, "val_dsc": [.1, .2, 0, 0, 0],
    ...      "val_pred_fg": [.3, .1, 0, 0, 0], "val_true_fg": [.02] * 5}
    >>> [(d.code, d.epoch) for d in diagnose(h)]
    [('collapsed', 5)]
    """
    missing = [k for k in REQUIRED if k not in history]
    if missing:
        raise ValueError(
            f"diagnose needs the per-epoch metrics {', '.join(missing)}; the history holds "
            f"{', '.join(sorted(history)) or 'nothing'}."
        )
    keys = [*REQUIRED, *(["loss"] if "loss" in history else [])]
    lengths = {k: len(history[k]) for k in keys}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"diagnose needs histories of one length. Got {lengths} instead.")
    h = {k: [float(v) for v in history[k]] for k in keys}
    found = [d for rule in _RULES if (d := rule(h, rules)) is not None]
    return sorted(found, key=lambda d: (d.epoch, CODES.index(d.code)))


def diagnosis_tags(found: Sequence[Diagnosis]) -> dict[str, str]:
    """MLflow tags: ``diagnosis`` = the codes comma-joined (or ``healthy``) and
    ``diagnosis.<code>`` = ``"true"`` for each, so ``mlflow ui`` can filter on either."""
    codes = [d.code for d in found]
    return {"diagnosis": ",".join(codes) or "healthy", **{f"diagnosis.{c}": "true" for c in codes}}


def describe(found: Sequence[Diagnosis]) -> str:
    """The messages as one text (a run description), or a line saying none fired."""
    if not found:
        return f"No diagnosis fired (checked: {', '.join(CODES)})."
    return "\n\n".join(f"**{d.code}** (epoch {d.epoch}): {d.message}" for d in found)


class DiagnosisMonitor(keras.callbacks.Callback):
    """Diagnoses the run at every epoch end; stops training on ``collapsed`` when told to.

    Must run after the validation metrics are in the epoch logs (``train.fit`` runs its
    ``callbacks`` after its own validation callback). ``found`` holds each diagnosis once, from
    the epoch it first fired; ``stopped_at`` is the epoch training was stopped at, 0 if never.
    """

    def __init__(self, rules: Rules = Rules(), *, prune_collapsed: bool = True) -> None:
        super().__init__()
        self.rules, self.prune_collapsed = rules, prune_collapsed
        self.history: dict[str, list[float]] = {}
        self.found: list[Diagnosis] = []
        self.stopped_at = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        known = {d.code for d in self.found}
        self.found += [d for d in diagnose(self.history, self.rules) if d.code not in known]
        if self.prune_collapsed and not self.stopped_at and "collapsed" in self.codes:
            self.stopped_at = epoch + 1
            self.model.stop_training = True

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.found]
