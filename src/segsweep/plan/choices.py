"""The rules on the input and the search space: intensity, lesion oversampling, and the ranges
that doctor would warn about, narrowed before the search samples them."""

from __future__ import annotations

import math
import re

import numpy as np

from segsweep.config import LOSSES
from segsweep.doctor import l2_penalty_at_init
from segsweep.plan.decision import Decision, Thresholds
from segsweep.plan.fingerprint import Fingerprint

__all__ = ["dropout_rule", "intensity_rule", "l2_rule", "loss_rule", "oversample_rule"]

# dataset.json channel names (nnU-Net's "channel_names", v1's "modality"), matched as words
CT_WORDS = frozenset({"ct", "cta", "cect", "nect", "hu"})
MRI_WORDS = frozenset(
    {"mr", "mri", "t1", "t1w", "t1c", "t1ce", "t1gd", "t2", "t2w", "flair", "dwi", "adc", "pd"}
    | {"swi", "cbf", "cbv", "ttp", "mtt", "dce", "perfusion", "diffusion"}
)
DIM_SHARE = 1 / 8  # as doctor: integer images that use under an eighth of their type's range


def _words(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", name.lower())) - {""}


def intensity_rule(fp: Fingerprint) -> Decision:
    """``data.intensity``: "ct" for CT channels, "zscore" for MRI ones (no fixed scale),
    "dtype" for 8-bit images such as photographs, "minmax" for dim or float ones."""
    names = [c.name for c in fp.channels if c.name]
    ct = [n for n in names if _words(n) & CT_WORDS]
    mri = [n for n in names if _words(n) & MRI_WORDS]
    listed = ", ".join(repr(n) for n in names)
    if ct:
        return Decision(
            "ct",
            f"dataset.json names CT channels ({listed}): Hounsfield units mean the same on every "
            "scan, so each is clipped to the training lesions' 0.5-99.5 percentiles and "
            "z-scored with their mean and sd (nnU-Net's CT rule)",
        )
    if mri:
        return Decision(
            "zscore",
            f"dataset.json names MRI channels ({listed}), whose intensities have no fixed scale "
            f"from scan to scan: each {'image' if fp.volumes is None else 'volume'} z-scored "
            "(nnU-Net's rule for MRI)",
        )
    top = max((c.high for c in fp.channels), default=0.0)
    named = f"channels {listed} are neither CT nor MRI; " if names else ""
    if fp.volumes is not None:  # "dtype" means nothing for scanner values; "ct" needs HU
        return Decision(
            "zscore",
            f"{named}volumes of a scale that varies from scan to scan are each z-scored over "
            "their nonzero voxels (nnU-Net's default rule)",
        )
    if fp.dtype in ("uint8", "bool"):
        return Decision("dtype", f"{named}8-bit images (photographs, microscopy): divided by 255")
    if fp.dtype.startswith(("uint", "int")):
        type_max = np.iinfo(fp.dtype).max
        if top < DIM_SHARE * type_max:
            return Decision(
                "minmax",
                f"{named}{fp.dtype} images reaching {top:g} of {type_max} (99.5th percentile): "
                "dividing by the type's maximum would leave them nearly black",
            )
        return Decision("dtype", f"{named}{fp.dtype} images use their type's range: divided by it")
    return Decision("minmax", f"{named}{fp.dtype} images have no type maximum: min-max scaled")


def oversample_rule(fp: Fingerprint, *, patches: bool, th: Thresholds) -> Decision:
    """``data.lesion_oversample``: the share of each batch centred on (or drawn from) a lesion."""
    share, unit = fp.lesion_free_share, fp.unit
    if patches:
        return Decision(
            th.oversample,
            f"patches at native resolution mostly miss the lesions ({fp.lesion_pixel_fraction:.2%}"
            " of the pixels): a third of them centred on a lesion pixel, as nnU-Net",
        )
    if share >= 0.5:
        return Decision(
            th.oversample,
            f"{share:.0%} of the {unit} hold no lesion: a third of each batch drawn from those "
            "that do, as nnU-Net",
        )
    return Decision(0.0, f"{share:.0%} of the {unit} are lesion-free: uniform batches show lesions")


def l2_rule(*, depth: int, filters: int, channels: int, th: Thresholds) -> Decision:
    """``space.l2``: an upper bound whose penalty at initialisation (doctor's computation for
    the largest network of the space) stays under max_l2_penalty of a Dice loss."""
    per_unit = l2_penalty_at_init(l2=1.0, depth=depth, base_filters=filters, in_channels=channels)
    limit = th.max_l2_penalty / per_unit
    unit = 10.0 ** math.floor(math.log10(limit))
    high = min(1e-3, math.floor(limit / unit) * unit)  # one significant digit, rounded down
    return Decision(
        (min(1e-6, high / 100), high),
        f"at l2 = {high:g} the kernel penalty at initialisation of filters {filters}, depth "
        f"{depth} is {high * per_unit:.2g}, under {th.max_l2_penalty:g} of a Dice loss "
        "(doctor's limit)",
    )


def dropout_rule(th: Thresholds) -> Decision:
    return Decision(
        (0.0, th.max_dropout),
        "doctor warns from 0.5: dropout after every convolution pushes towards predicting no "
        "lesion",
    )


def loss_rule(fp: Fingerprint, th: Thresholds) -> Decision:
    """``space.loss``: without weighted_dice when lesions are rare (its background term is then
    nearly 1 for predicting nothing, the seed case's trap)."""
    share = fp.lesion_pixel_fraction
    if share < th.rare_lesion:
        return Decision(
            tuple(loss for loss in LOSSES if loss != "weighted_dice"),
            f"lesions are {share:.2%} of the pixels (under {th.rare_lesion:.0%}): weighted_dice's "
            "background Dice is nearly 1 for predicting no lesion",
        )
    return Decision(LOSSES, f"lesions are {share:.2%} of the pixels: every loss is sound")
