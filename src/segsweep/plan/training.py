"""The rules on training: filters, batch size and steps per epoch, each from the budget."""

from __future__ import annotations

import math

from segsweep.plan.budget import Budget, step_seconds, train_memory_mb
from segsweep.plan.decision import Decision, Thresholds
from segsweep.plan.ladder import Ladder

__all__ = ["batch_rule", "filters_rule", "steps_rule"]


def filters_rule(
    size: int, depth: int, budget: Budget, *, channels: int, epochs: int, th: Thresholds
) -> Decision:
    """``space.base_filters``: the widest choice whose network at the deepest ``depth`` fits
    the memory and time budgets at a batch of min_batch and keeps the deepest level at most
    max_top_filters wide, and half of it."""

    def cost(f: int) -> tuple[float, float]:
        net = dict(size=size, depth=depth, base_filters=f, channels=channels, batch=th.min_batch)
        seconds = epochs * th.min_steps * step_seconds(**net, gflops=budget.gflops)
        return train_memory_mb(**net), seconds

    def fits(f: int) -> bool:
        memory, seconds = cost(f)
        capped = f * 2**depth <= th.max_top_filters
        return capped and memory <= budget.memory_mb and seconds <= budget.trial_seconds

    ok = [f for f in th.filter_choices if fits(f)]
    top = ok[-1] if ok else th.filter_choices[0]
    memory, seconds = cost(top)
    why = (
        f"filters {top} at depth {depth}, {size} px: {memory:.0f} of {budget.memory_mb:.0f} MB "
        f"and {epochs}x{th.min_steps} steps in {seconds / 60:.2g} of "
        f"{budget.trial_seconds / 60:g} min at a batch of {th.min_batch}"
    )
    wider = [f for f in th.filter_choices if f > top]
    if not ok:
        why += ", over the budget: the narrowest choice"
    elif wider and wider[0] * 2**depth > th.max_top_filters:
        why += f"; {wider[0]} would put {wider[0] * 2**depth} filters at the deepest level "
        why += f"(nnU-Net caps it at {th.max_top_filters})"
    elif wider:
        memory, seconds = cost(wider[0])
        why += f"; {wider[0]} would need {memory:.0f} MB and {seconds / 60:.2g} min"
    choices = tuple(f for f in th.filter_choices if top // 2 <= f <= top)
    return Decision(choices, why)


def batch_cap(n_train: int, th: Thresholds) -> int:
    return max(th.min_batch, math.floor(th.batch_share * n_train))


def batch_rule(
    n_train: int,
    *,
    ladder: Ladder | None,
    memory_per_image_mb: float,
    seconds_per_image: float,
    epochs: int,
    budget: Budget,
    th: Thresholds,
    unit: str = "images",
) -> Decision:
    """``train.batch_size``: the largest that fits, measured by the ladder on a GPU, else
    estimated from the memory budget; at most batch_share of the training set, and no more
    than lets ``epochs`` x min_steps steps fit the time budget."""
    cap = batch_cap(n_train, th)
    if ladder is not None and ladder.largest() is not None:
        fits = ladder.largest()
        failed = f", {ladder.failed} ran out of memory" if ladder.failed else ""
        found = f"measured on {ladder.device}: {fits} fits{failed}"
        timed = [
            n for n, s in ladder.fits.items() if epochs * th.min_steps * s <= budget.trial_seconds
        ]
    else:
        fits = max(1, int(budget.memory_mb // max(memory_per_image_mb, 1e-9)))
        how = "no GPU to measure on" if not budget.device.gpu else "not measured"
        found = (
            f"estimated ({how}): {fits} {unit} of ~{memory_per_image_mb:.0f} MB fit "
            f"{budget.memory_mb:.0f} MB"
        )
        per_step = epochs * th.min_steps * max(seconds_per_image, 1e-12)
        timed = [int(budget.trial_seconds // per_step)]
    quick = max(timed, default=0)
    batch = max(1, min(fits, cap, quick) if quick >= th.min_batch else min(fits, cap, th.min_batch))
    if fits > cap and cap <= quick:
        found += (
            f"; one batch at most {th.batch_share:.0%} of the ~{n_train} training {unit}: {cap}"
        )
    elif quick < min(fits, cap):
        found += (
            f"; {epochs}x{th.min_steps} steps fit the {budget.trial_seconds / 60:g} min budget "
            f"up to a batch of {quick}"
        )
    if quick < th.min_batch <= batch:
        found += f", but a batch holds at least {th.min_batch} for batch norm's statistics"
    if batch < th.min_batch:
        found += f"; under {th.min_batch}, batch norm will be noisy"
    return Decision(batch, found)


def steps_rule(
    step_s: float,
    *,
    epochs: int,
    n_train: int,
    batch: int,
    budget: Budget,
    th: Thresholds,
    unit: str = "images",
) -> Decision:
    """``train.steps_per_epoch``: as many as the time budget allows over ``epochs`` epochs,
    between min_steps and nnU-Net's 250."""
    affordable = budget.trial_seconds / (epochs * step_s)
    steps = int(min(max(affordable, th.min_steps), th.steps))
    if th.min_steps < steps < th.steps:
        steps = max(th.min_steps, steps // 10 * 10)
    minutes = epochs * steps * step_s / 60
    why = f"{epochs} epochs x {steps} steps of ~{step_s:.2g} s take ~{minutes:.2g} min"
    if steps == th.steps:
        why += f" (nnU-Net's {th.steps}; the budget is {budget.trial_seconds / 60:g} min)"
    elif affordable < th.min_steps:
        why += f", over the {budget.trial_seconds / 60:g} min budget: {th.min_steps} is the least"
    else:
        why += f", the {budget.trial_seconds / 60:g} min budget"
    passes = steps * batch / max(n_train, 1)
    return Decision(steps, f"{why}; an epoch shows the ~{n_train} training {unit} {passes:.2g}x")
