"""What every benchmark shares: sizes, the seed case's model, results, the machine's description."""

from __future__ import annotations

import platform
import statistics
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = [
    "SEED_PARAMS",
    "Section",
    "Sizes",
    "FULL",
    "QUICK",
    "machine",
    "versions",
    "phantom",
    "median",
    "ratio_text",
]

# The seed case's UNet++ (filters 32..512, depth 4, Dropout 0.5 and L2 1e-4 on every
# convolution, no batch norm) with its loss, as segsweep's parameters.
SEED_PARAMS: dict[str, Any] = {
    "depth": 4,
    "base_filters": 32,
    "dropout": 0.5,
    "batch_norm": False,
    "bn_momentum": 0.9,
    "l2": 1e-4,
    "deep_supervision": False,
    "lr": 1e-3,
    "schedule": "poly",
    "loss": "weighted_dice",
    "dice_w2": 0.7,
    "smooth": 1.0,
    "dice_reduction": "batch",
}


@dataclass(frozen=True)
class Sizes:
    """Every size a run uses; ``--quick`` shrinks them all."""

    name: str
    # 1-2 throughput and compute efficiency
    train_size: int = 128
    train_batch: int = 8
    train_filters: int = 32
    train_depth: int = 4
    train_images: int = 16  # one measured "epoch"
    train_lanes: int = 4  # the first n of benchmarks.throughput.LANES
    warmup_epochs: int = 1
    measured_epochs: int = 4
    matmul_n: int = 2048
    # 3 per-trial overhead
    trial_size: int = 64
    trial_epochs: int = 5
    trial_filters: int = 16
    trial_depth: int = 4
    trial_phantoms: int = 200
    # 4 search efficiency
    search_size: int = 64
    search_phantoms: int = 120
    search_nuclei_train: int = 240  # of dsb2018_nuclei_96, to fit a CPU run
    search_nuclei_val: int = 80
    search_budget: int = 120  # total epochs per search: 10 trials that are never pruned
    search_max_epochs: int = 12  # epochs of a trial never pruned (as in benchmarks.signals)
    search_seeds: tuple[int, ...] = (0, 1, 2)
    # 5 inference
    predict_size: int = 128
    predict_images: int = 64
    predict_filters: int = 16
    predict_depth: int = 4


FULL = Sizes("full")
QUICK = Sizes(
    "quick",
    train_size=32,
    train_batch=4,
    train_filters=4,
    train_images=8,
    train_lanes=2,
    measured_epochs=2,
    matmul_n=512,
    trial_size=32,
    trial_epochs=2,
    trial_filters=4,
    trial_depth=2,
    trial_phantoms=20,
    search_size=32,
    search_phantoms=20,
    search_budget=4,
    search_max_epochs=2,
    search_seeds=(0,),
    predict_size=32,
    predict_images=8,
    predict_filters=4,
    predict_depth=2,
)


@dataclass
class Section:
    """One benchmark's figures: a headline ratio against its target, a table and notes."""

    key: str
    title: str
    headline: str
    target: str
    met: bool | None  # None: not measured here
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio_text(value: float) -> str:
    return f"{value:.2f}×"


def machine() -> dict[str, str]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import os

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "flags": _simd_flags(cpuinfo),
        "platform": platform.platform(),
    }


def _simd_flags(cpuinfo: Path) -> str:
    if not cpuinfo.exists():
        return ""
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
            return " ".join(f for f in wanted if f in flags)
    return ""


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("segsweep", "tensorflow", "keras", "optuna", "mlflow", "numpy", "scipy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def phantom(root: Path, *, n: int, size: int, seed: int = 0) -> Path:
    """The built-in phantom lesion set, written once per run under ``root``."""
    from segsweep.data.synth import synthesize

    folder = root / f"phantom-{n}-{size}-{seed}"
    if not folder.exists():
        synthesize(folder, n=n, size=size, seed=seed)
    return folder
