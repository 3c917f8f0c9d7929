"""The rules on sizes: how images become square, the working resolution, the network's depth.

Lesion sizes are read at the working resolution: a lesion ``ey × ex`` px in an ``h × w`` image
is ``S·ey/h × S·ex/w`` px once the image is stretched to ``S × S`` (``S·ey/L × S·ex/L`` padded,
``L`` the long side), and its own size in a native-resolution patch.
"""

from __future__ import annotations

import math

import numpy as np

from segsweep.model.shapes import receptive_field
from segsweep.plan.budget import Budget, step_seconds, train_memory_mb
from segsweep.plan.decision import Decision, Thresholds
from segsweep.plan.fingerprint import Fingerprint

__all__ = [
    "deepest",
    "depth_rule",
    "lesion_extents_at",
    "reference_cost",
    "resize_rule",
    "working_resolution",
]


def resize_rule(fp: Fingerprint, th: Thresholds) -> Decision:
    """``stretch`` when the images are square in pixels, or in physical size once the pixel
    spacing is counted (stretching then makes the pixels square); else ``pad``."""
    ratio = fp.shapes.max(axis=1) / fp.shapes.min(axis=1)
    unit = fp.unit
    if (ratio <= th.square).all():
        return Decision("stretch", f"every {unit[:-1]} is square (sides within 10 %)")
    physical = fp.shapes * fp.pixel_spacing()
    odd, worst = int((ratio > th.square).sum()), int(np.argmax(ratio))
    h, w = fp.shapes[worst]
    if (physical.max(axis=1) / physical.min(axis=1) <= th.square).all():
        sy, sx = fp.pixel_spacing()[worst]
        return Decision(
            "stretch",
            f"{odd} {unit} are not square in pixels (e.g. {h}x{w}) but are in physical size at "
            f"spacing {sy:g} x {sx:g}: stretching to a square makes their pixels square",
        )
    return Decision(
        "pad",
        f"{odd} of {fp.n_images} {unit} are not square (e.g. {h}x{w}): padding keeps their "
        "aspect ratio, and the lesions' shapes with it",
    )


def lesion_extents_at(fp: Fingerprint, size: int | None, resize: str) -> np.ndarray:
    """(k, 2) every lesion's extents in px once its image is at ``size`` (None: native)."""
    extents = fp.lesion_extents.astype(float)
    if size is None or not len(extents):
        return extents
    shapes = fp.shapes[fp.lesion_image].astype(float)
    if resize == "pad":
        return extents * size / shapes.max(axis=1, keepdims=True)
    return extents * size / shapes


def deepest(size: int, th: Thresholds) -> int:
    """The most poolings ``size`` takes: a whole bottleneck of at least min_bottleneck_px."""
    depth = 1
    while (
        depth < th.max_depth
        and size % 2 ** (depth + 1) == 0
        and size // 2 ** (depth + 1) >= th.min_bottleneck_px
    ):
        depth += 1
    return depth


def reference_cost(size: int, budget: Budget, *, channels: int, epochs: int, th: Thresholds):
    """(MB, seconds) of the network a size is costed with: reference filters, the deepest
    depth, a batch of min_batch, epochs × min_steps steps."""
    net = dict(size=size, depth=deepest(size, th), base_filters=th.reference_filters)
    memory = train_memory_mb(**net, channels=channels, batch=th.min_batch)
    step = step_seconds(**net, channels=channels, batch=th.min_batch, gflops=budget.gflops)
    return memory, epochs * th.min_steps * step


def _affordable(budget: Budget, limit: int, *, channels: int, epochs: int, th: Thresholds) -> int:
    """The largest size up to ``limit`` whose reference network fits both budgets (at least
    min_size, even when that does not fit)."""
    best = th.min_size
    for size in range(th.min_size, limit + 1, th.size_step):
        memory, seconds = reference_cost(size, budget, channels=channels, epochs=epochs, th=th)
        if memory <= budget.memory_mb and seconds <= budget.trial_seconds:
            best = size
    return best


def _costs(size: int, budget: Budget, channels: int, epochs: int, th: Thresholds) -> str:
    memory, seconds = reference_cost(size, budget, channels=channels, epochs=epochs, th=th)
    return (
        f"filters {th.reference_filters}, batch {th.min_batch}: {memory:.0f} of "
        f"{budget.memory_mb:.0f} MB, {epochs}x{th.min_steps} steps in {seconds / 60:.2g} of "
        f"{budget.trial_seconds / 60:g} min"
    )


def _volume_note(fp: Fingerprint, size: int, resize: str, th: Thresholds) -> str:
    """For slices of volumes: where the pixels come from and what the rule's lesion is in mm,
    since an anisotropic scan makes a pixel mean different lengths along each axis."""
    v = fp.volumes
    if v is None:
        return ""
    axis = int(np.bincount(v.axes).argmax())
    sy, sx = np.median(v.in_plane(), axis=0)
    plane = np.median(fp.shapes, axis=0)  # padding scales both sides by the long one
    py, px = np.array([sy, sx]) * (plane.max() if resize == "pad" else plane) / size
    note = (
        f"; slices cut along voxel axis {axis} ({np.median(v.through_plane()):g} mm apart), "
        f"{sy:g} x {sx:g} mm pixels in-plane, {py:.2g} x {px:.2g} mm at {size} px"
    )
    if v.specks:
        note += (
            f"; {v.specks} of {len(v.lesion_voxels)} 3D lesions under {v.min_voxels} voxels are"
            " label specks, left out"
        )
    if len(fp.lesion_extents):
        mm = (fp.lesion_extents * fp.lesion_spacing()).min(axis=1)
        note += (
            f"; the {th.lesion_percentile:g}th-percentile lesion is "
            f"{np.percentile(mm, th.lesion_percentile):.3g} mm across in-plane"
        )
    return note


def working_resolution(
    fp: Fingerprint, budget: Budget, *, resize: str, channels: int, epochs: int, th: Thresholds
) -> tuple[Decision, Decision]:
    """``(data.image_size, data.patch_size)``: the images' own size when it fits the budget;
    else the largest size that does, unless the 5th-percentile lesion would shrink below
    min_extent_px there: then patches of that size at native resolution (patch_size 0 = whole
    images)."""
    image, patch = _resolution(fp, budget, resize=resize, channels=channels, epochs=epochs, th=th)
    note = _volume_note(fp, image.value, resize, th)
    return Decision(image.value, image.reason + note), patch


def _resolution(
    fp: Fingerprint, budget: Budget, *, resize: str, channels: int, epochs: int, th: Thresholds
) -> tuple[Decision, Decision]:
    native_px = fp.long_side
    step = th.size_step
    native = max(th.min_size, round(native_px / step) * step)
    smallest = lesion_extents_at(fp, 1, resize).min(axis=1)  # px per px of working size
    unit = float(np.percentile(smallest, th.lesion_percentile)) if smallest.size else math.inf
    if native < native_px and native * unit < th.min_extent_px:
        native += step  # rounding down would cost the small lesions their last pixels
    cap = _affordable(budget, native, channels=channels, epochs=epochs, th=th)
    pct = f"{th.lesion_percentile:g}th-percentile lesion"
    if native <= cap:
        across = f"; the {pct} is {native * unit:.1f} px across there" if smallest.size else ""
        why = f"the {fp.unit}' own size (median long side {native_px:g} px) fits the budget"
        return (
            Decision(native, f"{why} ({_costs(native, budget, channels, epochs, th)}){across}"),
            Decision(0, f"whole {fp.unit}: they fit the budget at their own size"),
        )
    if cap * unit >= th.min_extent_px:
        return (
            Decision(
                cap,
                f"the largest size the budget allows ({_costs(cap, budget, channels, epochs, th)}"
                f"); the {native_px:g} px {fp.unit} shrink {native_px / cap:.2g}x and the {pct} "
                f"stays {cap * unit:.1f} px across (at least {th.min_extent_px:g})",
            ),
            Decision(0, f"whole {fp.unit}: at {cap} px the lesions stay wide enough"),
        )
    shrunk = (
        f"shrinking the {native_px:g} px {fp.unit} to {cap} px, the largest the budget allows, "
        f"would leave the {pct} {cap * unit:.1f} px across (under {th.min_extent_px:g})"
    )
    return (
        Decision(cap, f"whole {fp.unit} would be resized to {cap} px, but {shrunk}"),
        Decision(cap, f"{cap} px patches at native resolution: {shrunk}"),
    )


def depth_rule(size: int, median_extent: float, th: Thresholds) -> Decision:
    """Depth choices for a ``size`` px input: the deepest keeping a min_bottleneck_px
    bottleneck, and one shallower while its receptive field still covers the median lesion's
    largest extent ``median_extent`` (px at the working resolution)."""
    top = deepest(size, th)
    covering = [d for d in range(1, top + 1) if receptive_field(d) >= median_extent]
    low = max(covering[0] if covering else top, top - 1)
    why = (
        f"at {size} px input depth {top} leaves a {size // 2**top} px bottleneck (nnU-Net "
        f"keeps at least {th.min_bottleneck_px})"
    )
    if not covering:
        why += (
            f"; even its receptive field ({receptive_field(top)} px) is narrower than the "
            f"median lesion ({median_extent:.0f} px across)"
        )
    elif low < top:
        why += (
            f"; depth {low} ({size // 2**low} px bottleneck) still sees {receptive_field(low)} "
            f"px, covering the median lesion ({median_extent:.0f} px across)"
        )
    else:
        why += f"; depth {top - 1} would see only {receptive_field(top - 1)} px" if top > 1 else ""
        why += f" of the median lesion's {median_extent:.0f} px"
    return Decision(tuple(range(low, top + 1)), why)
