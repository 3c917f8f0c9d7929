"""Worker processes and the coordinator that hands them trials.

``_coordinator``: the ``study run`` process, which asks Optuna for every trial, hands it to an
idle worker and keeps the books (exact budget, dead workers, interrupts). ``_process``: the
worker side, a spawned process that picks its backend and device before Keras is imported, loads
the data once and runs the trials it is sent. What travels between them is a picklable ``RunPlan``.
"""

from segsweep.study.workers._coordinator import Coordinator
from segsweep.study.workers._process import (
    RECYCLE_AFTER,
    RunPlan,
    WorkerSpec,
    exit_now,
    worker_main,
)

__all__ = [
    "RECYCLE_AFTER",
    "Coordinator",
    "RunPlan",
    "WorkerSpec",
    "exit_now",
    "worker_main",
]
