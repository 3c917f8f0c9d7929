"""Plan a study from its data, as nnU-Net plans from its dataset fingerprint.

:func:`~segsweep.plan.fingerprint.fingerprint` reads the data once (sizes, spacing, every
lesion's area and extents, intensity statistics per channel, ``dataset.json``'s channel names);
:func:`~segsweep.plan.volume_fingerprint.volume_fingerprint` reads NIfTI volumes into the same
numbers for the 2D slices the model trains on (with each case's voxel spacing and slicing axis,
and each 3D lesion's volume, in :class:`~segsweep.plan.volume_facts.VolumeFacts`), so one set
of rules plans both;
the rules turn it and a budget (``[plan]``: minutes per trial, memory, device speed) into
settings, each with the reason it is written beside in ``studies/NAME.toml``:

- :mod:`.geometry`: how images become square, the working resolution (image size, or patches
  at native resolution when shrinking would erase small lesions), the depth;
- :mod:`.training`: filters, batch size (measured by :mod:`.ladder` on a GPU), steps per epoch;
- :mod:`.choices`: intensity rule, lesion oversampling, and search ranges doctor would warn on.

:func:`~segsweep.plan.planner.plan_study` runs them in that order for a study's settings; every
rule is a pure function of a :class:`~segsweep.plan.fingerprint.Fingerprint` and numbers, so the
tests build fingerprints by hand. May import: ``errors``, ``config``, ``backend``, ``data``,
``doctor``, ``model``; Keras only to measure the ladder on a GPU.
"""

from __future__ import annotations

from segsweep.plan.budget import Budget, Device, budget_for
from segsweep.plan.decision import Decision, Thresholds
from segsweep.plan.fingerprint import ChannelStats, Fingerprint, fingerprint
from segsweep.plan.ladder import Ladder, climb
from segsweep.plan.planner import Plan, apply_plan, make_plan, plan_study, shown
from segsweep.plan.volume_facts import VolumeFacts
from segsweep.plan.volume_fingerprint import volume_fingerprint

__all__ = [
    "Budget",
    "ChannelStats",
    "Decision",
    "Device",
    "Fingerprint",
    "Ladder",
    "Plan",
    "Thresholds",
    "VolumeFacts",
    "apply_plan",
    "budget_for",
    "climb",
    "fingerprint",
    "make_plan",
    "plan_study",
    "shown",
    "volume_fingerprint",
]
