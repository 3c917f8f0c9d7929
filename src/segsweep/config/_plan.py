"""The ``[plan]`` section: the budget `segsweep plan` fits a study's settings into."""

from __future__ import annotations

from dataclasses import dataclass

from segsweep.config._checks import float_in, int_in, setting


@dataclass(frozen=True)
class PlanSettings:
    trial_minutes: float = setting(
        30.0,
        "`segsweep plan`: the wall time one trial may take; resolution, filters and steps per "
        "epoch are planned to fit it",
        float_in(0, 10**6, open_lo=True),
    )
    memory_mb: int = setting(
        0,
        "`segsweep plan`: memory one training batch may fill, MB; 0 = from the device (80 % of "
        "the GPU's memory; on the CPU a quarter of the RAM)",
        int_in(0, 10**8),
    )
    gflops: float = setting(
        0.0,
        "`segsweep plan`: the device's training speed in GFLOP/s, for costing sizes and "
        "filters; 0 = 40 on the CPU (benchmarks/RESULTS.md section 2), 10000 on a GPU (where "
        "the batch ladder then times the planned network's steps)",
        float_in(0, 10**9),
    )
