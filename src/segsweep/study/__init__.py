"""Many trials: worker processes (one per GPU or CPU slot, on one host or many), the
coordinator that hands them trials and keeps exact counts, ``study run``, ``enqueue`` and
``rerun``.

- :mod:`.workers`: the coordinator and the worker processes.
- :mod:`.runner`: ``study run`` from settings to a finished batch of trials.
- :mod:`.rerun`: a fixed configuration queued, or one trial retrained under new seeds.

May import every layer below it; a worker runs :mod:`segsweep.trial.objective`.
"""
