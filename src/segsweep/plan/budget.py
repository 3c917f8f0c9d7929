"""What one trial may spend, and what a network at a size costs: memory and time per step.

The costs are arithmetic on the UNet++'s shapes (:mod:`segsweep.model.shapes`): FLOPs per image
(a training step is about 3× the forward pass) over the device's speed, and the activations a
step keeps for the backward pass. On a GPU the batch ladder (:mod:`segsweep.plan.ladder`)
measures both instead; these estimates cost the candidates the rules compare.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from segsweep.config import PlanSettings
from segsweep.model.shapes import activation_floats, count_flops

__all__ = ["Budget", "Device", "budget_for", "step_seconds", "train_memory_mb"]

# float32, and beside each convolution's output the batch norm's and the ReLU's (and a dropout
# mask when searched): about 2.5 stored numbers per counted one
BYTES_PER_ACTIVATION = 4 * 2.5
TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward ≈ 3× forward (benchmarks/RESULTS.md section 2)
CPU_GFLOPS = 40.0  # segsweep's training step on this project's 2-core CPU (section 2: 43-48)
GPU_GFLOPS = 10_000.0  # a stand-in until the batch ladder has timed the GPU
GPU_MEMORY_SHARE = 0.8  # of a GPU's memory; the backend and its workspace take the rest
CPU_MEMORY_SHARE = 0.25  # of the RAM: several workers and the data share the rest


@dataclass(frozen=True)
class Device:
    """Where trials train: a GPU by name and memory, or the CPU with the machine's RAM."""

    name: str  # "CPU" or the GPU's name, e.g. "NVIDIA H200"
    memory_mb: float
    gpu: bool


@dataclass(frozen=True)
class Budget:
    memory_mb: float  # what one training step may fill
    gflops: float  # the device's training speed
    trial_seconds: float
    device: Device

    def describe(self) -> str:
        return (
            f"{self.device.name}: {self.memory_mb:.0f} MB per batch, {self.gflops:g} GFLOP/s, "
            f"{self.trial_seconds / 60:g} min per trial"
        )


def ram_mb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


def budget_for(settings: PlanSettings, device: Device) -> Budget:
    """The ``[plan]`` settings, their zeros filled from the device."""
    share = GPU_MEMORY_SHARE if device.gpu else CPU_MEMORY_SHARE
    return Budget(
        memory_mb=settings.memory_mb or share * device.memory_mb,
        gflops=settings.gflops or (GPU_GFLOPS if device.gpu else CPU_GFLOPS),
        trial_seconds=60 * settings.trial_minutes,
        device=device,
    )


def train_memory_mb(
    *, size: int, depth: int, base_filters: int, channels: int, batch: int
) -> float:
    """Activation memory of one training step, MB (weights and Adam's moments are small
    beside it at these filter counts and are left out)."""
    floats = activation_floats(
        depth=depth, base_filters=base_filters, image_size=size, in_channels=channels
    )
    return batch * floats * BYTES_PER_ACTIVATION / 2**20


def step_seconds(
    *, size: int, depth: int, base_filters: int, channels: int, batch: int, gflops: float
) -> float:
    """Seconds of one training step at ``gflops``."""
    flops = count_flops(
        depth=depth, base_filters=base_filters, image_size=size, in_channels=channels
    )
    return TRAIN_FLOPS_PER_FORWARD * flops * batch / (gflops * 1e9)
