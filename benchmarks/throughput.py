"""Items 1, 2 and 6: training throughput against the seed-style baseline, compute efficiency.

Four lanes train the seed case's UNet++ on the same phantom images, side by side, one epoch at a
time in turn (:mod:`benchmarks.lanes`):

- ``seed-style``: ``model.fit`` on the ``ImageDataGenerator``-style generator
  (:mod:`benchmarks.seedstyle`), Keras' default compile;
- ``segsweep``: :func:`segsweep.trial.train.fit` with its defaults, in a process set up as a lone
  CPU worker sets itself up (tf.data, joint Keras augmentation, ``LossSplitModel``;
  ``train.onednn``, ``train.jit_compile`` and ``train.mixed_precision`` resolve to off there);
- ``segsweep + XLA``: the same with ``train.jit_compile = "on"``;
- ``segsweep + oneDNN``: the same with oneDNN's kernels, as ``train.onednn = "auto"`` sets them
  when several CPU workers share the cores (TensorFlow turns oneDNN on by itself only on CPUs
  with AVX-512 VNNI/BF16 or AMX).

After each round every lane times a float32 ``tf.linalg.matmul`` in its own process: the
denominator of the compute efficiency, measured under the same load as the epochs next to it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import SEED_PARAMS, Section, Sizes, median, phantom, ratio_text
from benchmarks.lanes import Lane, start_lane

__all__ = ["TrainingRun", "measure", "throughput_section", "efficiency_section", "LANES"]

_CPU = {"CUDA_VISIBLE_DEVICES": "-1", "TF_ENABLE_ONEDNN_OPTS": "0"}  # TensorFlow's default here
_SHARED = {**_CPU, "TF_ENABLE_ONEDNN_OPTS": "1"}  # segsweep.backend.onednn_flag, shared cores
# name -> (spec overrides, environment); the first lane is the baseline.
LANES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "seed-style": ({"kind": "seed"}, _CPU),
    "segsweep": ({"kind": "segsweep"}, _CPU),
    "segsweep + XLA": ({"kind": "segsweep", "jit_compile": "on"}, _CPU),
    "segsweep + oneDNN": ({"kind": "segsweep"}, _SHARED),
}
PROFILED = ("segsweep", "segsweep + oneDNN")


@dataclass
class TrainingRun:
    sizes: Sizes
    device: str
    epochs: dict[str, list[dict]] = field(default_factory=dict)  # measured epochs per lane
    matmul: dict[str, list[dict]] = field(default_factory=dict)
    profiles: dict[str, dict] = field(default_factory=dict)
    pipeline: dict[str, float] = field(default_factory=dict)  # input pipelines alone, images/s
    fwd_flops: float = 0.0
    seconds: float = 0.0


def _spec(sizes: Sizes, data_dir: Path, epochs: int, image_size: int, batch: int) -> dict:
    return {
        "data_dir": str(data_dir),
        "image_size": image_size,
        "batch_size": batch,
        "n_train": sizes.train_images,
        "n_val": batch,
        "params": {
            **SEED_PARAMS,
            "base_filters": sizes.train_filters,
            "depth": sizes.train_depth,
        },
        "seed": 0,
        "epochs": epochs,
    }


def _rotated(lanes: list[Lane], r: int) -> list[Lane]:
    k = r % len(lanes)
    return lanes[k:] + lanes[:k]


def measure(
    sizes: Sizes,
    workdir: Path,
    *,
    lanes: dict[str, tuple[dict, dict]] | None = None,
    image_size: int | None = None,
    batch: int | None = None,
    device: str = "CPU",
) -> TrainingRun:
    """Warm every lane up, then alternate measured epochs and matmul timings between them."""
    from segsweep.model.unetpp import count_flops

    lanes = lanes or dict(list(LANES.items())[: sizes.train_lanes])
    size, batch = image_size or sizes.train_size, batch or sizes.train_batch
    data_dir = phantom(workdir, n=sizes.train_images + batch, size=size)
    run = TrainingRun(sizes, device)
    run.fwd_flops = count_flops(
        depth=sizes.train_depth, base_filters=sizes.train_filters, image_size=size, in_channels=1
    )
    if device == "CPU":
        run.pipeline = pipeline_rates(data_dir, size=size, batch=batch)
    start = time.perf_counter()
    started: list[Lane] = []
    try:
        for name, (extra, env) in lanes.items():
            epochs = sizes.warmup_epochs + sizes.measured_epochs + (name in PROFILED)
            spec = {**_spec(sizes, data_dir, epochs, size, batch), **extra}
            started.append(start_lane(name, spec, env=env, workdir=workdir))
        _run_rounds(run, started, sizes)
    finally:
        for lane in started:
            lane.stop()
    run.seconds = time.perf_counter() - start
    return run


def _run_rounds(run: TrainingRun, lanes: list[Lane], sizes: Sizes) -> None:
    for r in range(sizes.warmup_epochs):
        for lane in _rotated(lanes, r):
            lane.ask("epoch")
    for r in range(sizes.measured_epochs):
        for lane in _rotated(lanes, r):
            run.epochs.setdefault(lane.name, []).append(lane.ask("epoch"))
        for lane in _rotated(lanes, r):
            run.matmul.setdefault(lane.name, []).append(
                lane.ask("matmul", n=sizes.matmul_n, repeats=3)
            )
    for lane in lanes:
        if lane.name in PROFILED:
            run.profiles[lane.name] = lane.ask("profile")


def pipeline_rates(data_dir: Path, *, size: int, batch: int, passes: int = 3) -> dict[str, float]:
    """Images/s of each input pipeline alone (no training), alternated pass by pass."""
    import numpy as np

    from benchmarks.seedstyle import flow
    from segsweep.config import AugmentSettings
    from segsweep.data.io import load_dataset
    from segsweep.data.pipeline import train_dataset

    ds = load_dataset(data_dir, image_size=size)
    x, y = ds.images, ds.masks
    steps = len(x) // batch
    tf_data = train_dataset(x, y, batch_size=batch, augment=AugmentSettings(), seed=0)
    generator = flow(x, y, batch_size=batch, rotation=10.0, shift=0.1, flip=True, seed=0)
    for _ in tf_data:  # builds the augmentation graph once
        pass
    times: dict[str, list[float]] = {"segsweep tf.data": [], "seed-style generator": []}
    for _ in range(passes):
        t = time.perf_counter()
        for images, _masks in tf_data:
            np.asarray(images)
        times["segsweep tf.data"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(steps):
            next(generator)
        times["seed-style generator"].append(time.perf_counter() - t)
    return {k: steps * batch / median(v) for k, v in times.items()}


def _rates(run: TrainingRun, name: str, key: str = "seconds") -> list[float]:
    return [e["images"] / e[key] for e in run.epochs[name]]


def _paired_ratio(run: TrainingRun, name: str, base: str, key: str = "seconds") -> float:
    """Median over rounds of baseline time / lane time, each round's epochs run back to back."""
    pairs = zip(run.epochs[base], run.epochs[name], strict=True)
    return median([b[key] / c[key] for b, c in pairs])


def throughput_section(run: TrainingRun, *, target: float = 1.5) -> Section:
    names = list(run.epochs)
    base = names[0]
    rows = []
    for name in names:
        rows.append(
            [
                name,
                f"{median(_rates(run, name)):.3f}",
                ratio_text(_paired_ratio(run, name, base)),
                ratio_text(_paired_ratio(run, name, base, "cpu_seconds")),
                f"{run.epochs[name][-1]['loss']:.4f}",
            ]
        )
    default = _paired_ratio(run, "segsweep", base)
    best_name = max(names[1:], key=lambda n: _paired_ratio(run, n, base))
    best = _paired_ratio(run, best_name, base)
    s = run.sizes
    notes = [
        f"UNet++ filters {s.train_filters}…{s.train_filters * 2**s.train_depth}, depth "
        f"{s.train_depth}, dropout 0.5, L2 1e-4, no batch norm; {s.train_size} px, batch "
        f"{s.train_batch}; rotation 10°, shift 0.1, horizontal flip in every lane; an epoch is "
        f"{s.train_images} phantom images; {s.warmup_epochs} warm-up epoch(s), then "
        f"{s.measured_epochs} measured epochs per lane, lanes alternating epoch by epoch.",
        "Ratio = median over rounds of (baseline epoch seconds / lane epoch seconds); the CPU "
        "ratio uses the process CPU time of the same epochs, which a busy shared machine "
        "disturbs less than wall time.",
    ]
    if run.pipeline:
        line = ", ".join(f"{k} {v:.0f} images/s" for k, v in run.pipeline.items())
        train_rate = median(_rates(run, base))
        worst = max(train_rate / v for v in run.pipeline.values())
        notes.append(
            f"Input pipelines alone, no training: {line}. Preparing a batch costs at most "
            f"{100 * worst:.1f} % of a training step of this model ({train_rate:.2f} images/s), "
            "so the input pipeline cannot decide the ratio: the training step does (the same "
            "UNet++ in every lane; the lanes differ in the loss computation, in how fit is fed, "
            "and in the kernels oneDNN or XLA choose)."
        )
    return Section(
        key="throughput",
        title="1. Training throughput (images/s)",
        headline=f"segsweep defaults {ratio_text(default)}; best: {best_name} {ratio_text(best)}",
        target=f"≥ {target:.1f}× the seed-style baseline",
        met=best >= target,
        columns=[
            "lane",
            "images/s (median epoch)",
            "× baseline (wall)",
            "× baseline (CPU time)",
            "last loss",
        ],
        rows=rows,
        notes=notes,
    )


def _category(op: str) -> str:
    if "BackpropFilter" in op:
        return "conv: weight gradients (BackpropFilter)"
    if "BackpropInput" in op:
        return "conv: input gradients and transposed convs (BackpropInput)"
    if "Conv2D" in op:
        return "conv: forward (Conv2D, fused bias+ReLU)"
    if op in ("StatelessRandomUniformV2", "GreaterEqual", "SelectV2", "Mul"):
        return "dropout: random draw, compare, select, scale"
    if op in ("ConcatV2", "Slice"):
        return "skip concatenations and their gradient slices"
    return "other (ReLU/bias gradients, pooling, loss, Adam, L2)"


def profile_rows(profile: dict) -> list[tuple[str, float]]:
    ops: dict[str, float] = profile.get("ops") or {}
    total = sum(ops.values()) or 1.0
    shares: dict[str, float] = {}
    for op, seconds in ops.items():
        shares[_category(op)] = shares.get(_category(op), 0.0) + seconds / total
    return sorted(shares.items(), key=lambda kv: -kv[1])


def efficiency(run: TrainingRun, name: str) -> tuple[float, float, float]:
    """(achieved training GFLOP/s, the lane's own matmul GFLOP/s, achieved ÷ the machine's peak).

    The peak is the fastest lane's matmul: the best float32 rate this machine showed in the run
    (oneDNN's matmul beats Eigen's here), so no lane looks efficient by having a slow peak.
    """
    achieved = 3 * run.fwd_flops * median(_rates(run, name)) / 1e9
    own = median([m["median"] for m in run.matmul[name]])
    peak = max(median([m["median"] for m in run.matmul[n]]) for n in run.matmul)
    return achieved, own, achieved / peak


def efficiency_section(run: TrainingRun, *, target: float = 0.70) -> Section:
    rows = []
    for name in run.epochs:
        achieved, peak, share = efficiency(run, name)
        rows.append([name, f"{achieved:.1f}", f"{peak:.1f}", f"{100 * share:.0f} %"])
    default = efficiency(run, "segsweep")[2]
    best_name = max(list(run.epochs)[1:], key=lambda n: efficiency(run, n)[2])
    best = efficiency(run, best_name)[2]
    s = run.sizes
    notes = [
        f"FLOPs per image: 3 × {run.fwd_flops / 1e9:.2f} GFLOP forward "
        f"(segsweep.model.unetpp.count_flops; fwd + bwd ≈ 3× fwd) = "
        f"{3 * run.fwd_flops / 1e9:.1f} GFLOP.",
        f"Peak: median GFLOP/s of tf.linalg.matmul on two {s.matmul_n}×{s.matmul_n} float32 "
        "tensors, timed in each lane's own process after every round (Eigen where oneDNN is "
        "off, oneDNN where it is on) — not numpy, whose OpenBLAS may be slowed by "
        "OPENBLAS_CORETYPE here. Efficiency divides by the highest of the lanes' matmul rates, "
        "the machine's float32 peak in this run.",
    ]
    for name, profile in run.profiles.items():
        parts = "; ".join(f"{cat} {100 * share:.0f} %" for cat, share in profile_rows(profile))
        notes.append(
            f"Where the op time of a {name} training step goes (TF profiler, one epoch): {parts}."
        )
    notes.append(
        "Why the gap: the step is convolutions with few channels (32 at full resolution, the "
        "first with 1 input channel) whose weight and input gradients run well below matmul "
        "speed in TensorFlow's Eigen kernels, plus memory-bound work that does no FLOPs in the "
        "count (a dropout mask drawn for every activation of all 30 convolutions, ReLU, the "
        "dense skip concatenations and their gradient slices). oneDNN's kernels recover part "
        "of the CPU time (segsweep turns them on when CPU workers share the cores: "
        "train.onednn); XLA's fusion does not pay on this CPU."
    )
    return Section(
        key="efficiency",
        title="2. Compute efficiency (training FLOP/s ÷ matmul FLOP/s)",
        headline=f"segsweep defaults {100 * default:.0f} %; best: {best_name} {100 * best:.0f} %",
        target=f"≥ {100 * target:.0f} % at {s.train_size} px, batch {s.train_batch}",
        met=best >= target,
        columns=["lane", "training GFLOP/s", "matmul GFLOP/s (own process)", "efficiency"],
        rows=rows,
        notes=notes,
    )
