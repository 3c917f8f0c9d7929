"""The device the plan is for, and the real ``try_batch`` the ladder climbs on it.

Finding the GPU asks ``nvidia-smi`` rather than a Keras backend, so ``plan`` and ``study
create`` on a CPU machine never import TensorFlow; only measuring the ladder on a GPU does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

import numpy as np

from segsweep.backend import accelerator_settings, activate, open_device, resolve
from segsweep.config import Config
from segsweep.plan.budget import Device, ram_mb

__all__ = ["keras_try_batch", "probe_device"]


def _visible() -> list[str] | None:
    # read here, at the edge, as a launcher sets it: "-1" or "" hides every GPU
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return (
        None if visible is None else [v for v in visible.split(",") if v.strip() not in ("", "-1")]
    )


def probe_device() -> Device:
    """The first GPU ``nvidia-smi`` lists among those visible, else the CPU and its RAM."""
    cpu = Device("CPU", ram_mb(), gpu=False)
    visible, smi = _visible(), shutil.which("nvidia-smi")
    if smi is None or visible == []:
        return cpu
    query = "--query-gpu=index,uuid,name,memory.total"
    try:
        proc = subprocess.run(
            [smi, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return cpu
    rows = [[c.strip() for c in line.split(",")] for line in proc.stdout.splitlines() if line]
    rows = [r for r in rows if len(r) == 4 and r[3].isdigit()]
    if visible:
        rows = [r for r in rows if r[0] == visible[0].strip() or r[1] == visible[0].strip()]
    if proc.returncode != 0 or not rows:
        return cpu
    return Device(rows[0][2], float(rows[0][3]), gpu=True)


def keras_try_batch(
    cfg: Config, *, size: int, depth: int, filters: int, channels: int, steps: int = 3
) -> Callable[[int], float]:
    """``try_batch(n)``: seconds per training step of the planned network at batch ``n`` on
    this process's device (the GPU, for the ladder), with the trial's precision and
    compilation; raises the backend's out-of-memory error when ``n`` does not fit. Activates
    the study's backend first."""
    activate(resolve(cfg.train.backend), gpu=True)
    import keras

    from segsweep.model.losses import get_loss
    from segsweep.model.unetpp import build_unetpp

    open_device(None)  # TensorFlow's memory growth; the GPU itself was found by nvidia-smi
    accel = accelerator_settings(cfg)
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if accel["mixed_precision"] else "float32"
    )

    def try_batch(n: int) -> float:
        keras.backend.clear_session()  # the previous rung's model and its memory go
        net = build_unetpp(
            depth=depth,
            base_filters=filters,
            dropout=0.0,
            batch_norm=True,
            l2=0.0,
            deep_supervision=False,
            in_channels=channels,
            image_size=size,
        )
        net.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=get_loss("dice_ce", smooth=1e-5),
            jit_compile=accel["jit_compile"],
        )
        x = np.zeros((n, size, size, channels), np.float32)
        y = np.zeros((n, size, size, 1), np.float32)
        net.train_on_batch(x, y)  # traces and compiles the step
        start = time.perf_counter()
        for _ in range(steps):
            loss = net.train_on_batch(x, y)
        float(np.asarray(loss))  # waits for the device to finish
        return (time.perf_counter() - start) / steps

    return try_batch
