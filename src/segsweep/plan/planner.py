"""The plan: every rule in the data's order, each reading the values decided before it.

A value the user set (``--set``) is taken instead of the rule's and marked as theirs, and the
rules after it read the user's value: ``--set data.image_size=64`` plans the depth for 64 px.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from segsweep.config import Config
from segsweep.data.io import INTENSITIES as PICTURE_INTENSITIES
from segsweep.data.volumes import is_volume_dir
from segsweep.errors import ConfigError
from segsweep.plan.budget import Budget, budget_for, step_seconds, train_memory_mb
from segsweep.plan.choices import (
    dropout_rule,
    intensity_rule,
    l2_rule,
    loss_rule,
    oversample_rule,
)
from segsweep.plan.decision import Decision, Thresholds
from segsweep.plan.fingerprint import Fingerprint, fingerprint
from segsweep.plan.geometry import (
    depth_rule,
    lesion_extents_at,
    resize_rule,
    working_resolution,
)
from segsweep.plan.ladder import Ladder, climb, ladder_key, load_ladder, save_ladder
from segsweep.plan.training import batch_cap, batch_rule, filters_rule, steps_rule
from segsweep.plan.volume_fingerprint import training_slices, volume_fingerprint

__all__ = ["Plan", "apply_plan", "make_plan", "plan_study", "shown"]

DEFAULT = Thresholds()


def shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Plan:
    fingerprint: Fingerprint
    budget: Budget
    decisions: dict[str, Decision]  # dotted setting -> decision, in the order decided
    ladder: Ladder | None = None

    def note(self, key: str) -> str:
        d = self.decisions[key]
        return f"{'yours' if d.source == 'yours' else 'planned'}: {d.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint.summary(),
            "budget": {
                "device": self.budget.device.name,
                "memory_mb": self.budget.memory_mb,
                "gflops": self.budget.gflops,
                "trial_minutes": self.budget.trial_seconds / 60,
            },
            "ladder": None if self.ladder is None else self.ladder.to_json(),
            "plan": {
                k: {"value": list(d.value) if isinstance(d.value, tuple) else d.value}
                | {"reason": d.reason, "source": d.source}
                for k, d in self.decisions.items()
            },
        }


def _n_train(fp: Fingerprint, cfg: Config) -> int:
    """The training images the study will have: what the validation and test shares leave
    (for volumes, the slices of the cases the study's split trains on)."""
    if fp.volumes is not None:
        return training_slices(fp, cfg)
    test = 0.0 if cfg.data.test_dir else cfg.data.test_fraction
    return max(1, round(fp.n_images * (1 - test - cfg.data.val_fraction)))


def make_plan(
    fp: Fingerprint,
    cfg: Config,
    budget: Budget,
    *,
    given: Mapping[str, Any] = {},
    ladder: Ladder | None = None,
    th: Thresholds = DEFAULT,
) -> Plan:
    """Every planned setting with its reason; ``cfg`` already holds the user's ``given``."""
    th = _batch_floor(cfg, th)
    decided: dict[str, Decision] = {}

    def take(key: str, planned: Decision) -> Any:
        if key in given:
            also = f"the plan: {shown(planned.value)}, as {planned.reason}"
            planned = Decision(given[key], f"set with --set ({also})", "yours")
        decided[key] = planned
        return planned.value

    channels = cfg.data.channels or fp.channels_used
    epochs, n_train = cfg.train.epochs, _n_train(fp, cfg)
    resize = take("data.resize", resize_rule(fp, th))
    image, patch = working_resolution(
        fp, budget, resize=resize, channels=channels, epochs=epochs, th=th
    )
    size = take("data.image_size", image)
    patch = take("data.patch_size", patch)
    work = patch or size
    extents = lesion_extents_at(fp, None if patch else size, resize)
    median = float(np.median(extents.max(axis=1))) if len(extents) else 0.0
    depth = max(take("space.depth", depth_rule(work, median, th)))
    net = dict(size=work, depth=depth, channels=channels)
    filters = max(
        take("space.base_filters", filters_rule(**net, budget=budget, epochs=epochs, th=th))
    )
    one = dict(**net, base_filters=filters, batch=1)
    batch = take(
        "train.batch_size",
        batch_rule(
            n_train,
            ladder=ladder,
            memory_per_image_mb=train_memory_mb(**one),
            seconds_per_image=step_seconds(**one, gflops=budget.gflops),
            epochs=epochs,
            budget=budget,
            th=th,
            unit=fp.unit,
        ),
    )
    step_s = (ladder.fits.get(batch) if ladder else None) or step_seconds(
        **net, base_filters=filters, batch=batch, gflops=budget.gflops
    )
    steps = steps_rule(
        step_s, epochs=epochs, n_train=n_train, batch=batch, budget=budget, th=th, unit=fp.unit
    )
    take("train.steps_per_epoch", steps)
    take("data.intensity", intensity_rule(fp))
    take("data.lesion_oversample", oversample_rule(fp, patches=bool(patch), th=th))
    take("space.l2", l2_rule(depth=depth, filters=filters, channels=channels, th=th))
    take("space.dropout", dropout_rule(th))
    take("space.loss", loss_rule(fp, th))
    return Plan(fp, budget, decided, ladder)


def _batch_floor(cfg: Config, th: Thresholds) -> Thresholds:
    """``th`` with the least batch the space's normalisation needs: every size and network is
    costed at it, so the time budget is not spent on a batch that batch norm cannot use."""
    if True not in cfg.space.batch_norm:
        return th
    return replace(th, min_batch=max(th.min_batch, th.batch_norm_min_batch))


def apply_plan(cfg: Config, plan: Plan) -> tuple[Config, dict[str, str]]:
    """``cfg`` with every planned value it can hold, and the ones it cannot (a setting or a
    value this segsweep lacks, or one that does nothing on this data), each with why."""
    left_out: dict[str, str] = {}
    patches = bool(plan.decisions["data.patch_size"].value)
    for key, decision in plan.decisions.items():
        if decision.source != "plan":
            continue  # the user's value is in cfg already
        if key == "data.image_size" and patches:
            left_out[key] = (
                "with data.patch_size the images keep their own resolution; data.image_size "
                "is not used"
            )
            continue
        pictures = plan.fingerprint.volumes is None
        if pictures and (why := _unused_on_pictures(key, decision.value, patches=patches)):
            left_out[key] = why
            continue
        try:
            cfg = cfg.replace(**{key: decision.value})
        except ConfigError as err:
            left_out[key] = str(err)
    return cfg, left_out


def _unused_on_pictures(key: str, value: Any, *, patches: bool) -> str | None:
    """Why a planned value, which the settings accept for NIfTI volumes or patches, does
    nothing on the 2D pictures the plan reads (so the settings keep theirs), or None."""
    if key == "data.intensity" and value not in PICTURE_INTENSITIES:
        return f"2D pictures load with {' or '.join(map(repr, PICTURE_INTENSITIES))} only"
    if key == "data.lesion_oversample" and not patches:
        return (
            "whole 2D pictures are drawn uniformly; data.lesion_oversample applies to patches "
            "and volumes"
        )
    return None


def _measured(plan: Plan, cfg: Config, cache: Path, th: Thresholds) -> Ladder:
    """The batch ladder for the plan's network on its GPU: cached, else climbed now."""
    from segsweep.plan.device import keras_try_batch

    d = plan.decisions
    work = d["data.patch_size"].value or d["data.image_size"].value
    net = dict(
        size=work,
        depth=max(d["space.depth"].value),
        filters=max(d["space.base_filters"].value),
        channels=cfg.data.channels or plan.fingerprint.channels_used,
    )
    # climb from the least batch any network takes, so a GPU where batch norm's 8 do not fit
    # still shows what does; stop at the cap the plan's floor allows
    cap = batch_cap(_n_train(plan.fingerprint, cfg), _batch_floor(cfg, th))
    device = plan.budget.device.name
    key = ladder_key(device, cfg.train.backend, **net, cap=cap)
    found = load_ladder(cache, key)
    if found is None:
        found = climb(keras_try_batch(cfg, **net), cap=cap, device=device, start=th.min_batch)
        save_ladder(cache, key, found)
    return found


def _fingerprint(cfg: Config, th: Thresholds) -> Fingerprint:
    d = cfg.data
    if not is_volume_dir(d.dir):
        return fingerprint(Path(d.dir), mask_threshold=d.mask_threshold)
    return volume_fingerprint(
        Path(d.dir),
        slice_axis=d.slice_axis,
        lesion_labels=d.lesion_labels,
        min_voxels=max(th.min_lesion_voxels, cfg.metrics.min_lesion_px),
        seed=cfg.search.seed,
    )


def plan_study(
    cfg: Config,
    *,
    given: Mapping[str, Any] = {},
    cache: Path | None = None,
    device: Any = None,
    th: Thresholds = DEFAULT,
) -> Plan:
    """Fingerprint ``cfg.data.dir`` and plan for ``device`` (default: the one found here); on a
    GPU, with a ``cache`` file, the batch is measured by the ladder (once per device)."""
    from segsweep.plan.device import probe_device

    fp = _fingerprint(cfg, th)
    budget = budget_for(cfg.plan, device or probe_device())
    plan = make_plan(fp, cfg, budget, given=given, th=th)
    if not budget.device.gpu or cache is None or "train.batch_size" in given:
        return plan
    return make_plan(fp, cfg, budget, given=given, ladder=_measured(plan, cfg, cache, th), th=th)
