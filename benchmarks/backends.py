"""Item 8: training throughput of the three Keras backends side by side, on this CPU.

One lane per installed backend (:mod:`benchmarks.lane`), each a process set up as a CPU worker of
that backend sets itself up (:func:`segsweep.backend.prepare_worker`: ``KERAS_BACKEND``, no GPU, and
no TensorFlow in the JAX and torch lanes), trains the same UNet++ with
:func:`~segsweep.trial.train.fit` on the same images, batch and augmentation, with segsweep's
defaults for each backend (``train.jit_compile`` "auto": off on TensorFlow's CPU, on for JAX, off
for torch). Epochs alternate between the lanes. Each lane also times its input pipeline alone:
``tf.data`` and the ``PyDataset`` on TensorFlow, the ``PyDataset`` on JAX and torch.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import Section, Sizes, median, phantom, ratio_text
from benchmarks.lanes import Lane, start_lane

__all__ = ["BackendRun", "backends_section", "installed", "measure", "pipeline_rates"]

BACKENDS = ("tensorflow", "jax", "torch")
JIT_AUTO = {"tensorflow": "off", "jax": "on", "torch": "off"}  # segsweep.backend, on a CPU


def installed() -> list[str]:
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


@dataclass
class BackendRun:
    sizes: Sizes
    epochs: dict[str, list[dict]] = field(default_factory=dict)  # measured epochs per lane
    pipeline: dict[str, dict[str, float]] = field(default_factory=dict)  # lane -> name -> img/s
    seconds: float = 0.0


def measure(sizes: Sizes, workdir: Path, *, backends: list[str] | None = None) -> BackendRun:
    """Warm every lane up, then alternate measured epochs; then time each lane's pipeline."""
    from benchmarks.throughput import _spec

    names = backends or installed()
    size, batch = sizes.train_size, sizes.train_batch
    data_dir = phantom(workdir, n=sizes.train_images + batch, size=size)
    run, start = BackendRun(sizes), time.perf_counter()
    lanes: list[Lane] = []
    try:
        for name in names:
            epochs = sizes.warmup_epochs + sizes.measured_epochs
            spec = {**_spec(sizes, data_dir, epochs, size, batch), "kind": "segsweep"}
            spec |= {"backend": name, "jit_compile": "auto", "mixed_precision": "off"}
            lanes.append(start_lane(name, spec, env={}, workdir=workdir))
        for r in range(sizes.warmup_epochs + sizes.measured_epochs):
            for lane in lanes[r % len(lanes) :] + lanes[: r % len(lanes)]:
                reply = lane.ask("epoch")
                if r >= sizes.warmup_epochs:
                    run.epochs.setdefault(lane.name, []).append(reply)
        for lane in lanes:
            run.pipeline[lane.name] = lane.ask("pipeline", passes=3)
    finally:
        for lane in lanes:
            lane.stop()
    run.seconds = time.perf_counter() - start
    return run


def pipeline_rates(spec: dict[str, Any], *, passes: int, images: int = 64) -> dict[str, float]:
    """Images/s of this process's input pipelines alone (no training), alternated pass by pass;
    ``images`` training images (the lane's, repeated) per pass."""
    import keras
    import numpy as np

    from segsweep.config import AugmentSettings
    from segsweep.data.io import load_dataset
    from segsweep.data.pipeline import JointBatches, tf_dataset

    ds = load_dataset(Path(spec["data_dir"]), image_size=spec["image_size"])
    reps = -(-images // len(ds.images))
    x, y = np.concatenate([ds.images] * reps)[:images], np.concatenate([ds.masks] * reps)[:images]
    args = {"batch_size": spec["batch_size"], "augment": AugmentSettings(), "seed": 0}
    makers = {"PyDataset": JointBatches}
    if keras.config.backend() == "tensorflow":
        makers["tf.data"] = tf_dataset
    pipes = {name: make(x, y, **args) for name, make in makers.items()}
    times: dict[str, list[float]] = {name: [] for name in pipes}
    for p in range(passes + 1):  # the first pass builds graphs and warms caches
        for name, pipe in pipes.items():
            t = time.perf_counter()
            _one_pass(pipe)
            if p:
                times[name].append(time.perf_counter() - t)
    return {name: images / median(v) for name, v in times.items()}


def _one_pass(pipe: Any) -> None:
    import numpy as np

    if hasattr(pipe, "on_epoch_end"):  # the PyDataset, as fit reads it
        for i in range(len(pipe)):
            np.asarray(pipe[i][0])
        pipe.on_epoch_end()
    else:
        for batch, _ in pipe:
            np.asarray(batch)


def _rates(run: BackendRun, name: str) -> list[float]:
    return [e["images"] / e["seconds"] for e in run.epochs[name]]


def _paired(run: BackendRun, name: str, base: str) -> float:
    pairs = zip(run.epochs[base], run.epochs[name], strict=True)
    return median([b["seconds"] / c["seconds"] for b, c in pairs])


def backends_section(run: BackendRun) -> Section:
    names = [b for b in BACKENDS if b in run.epochs]
    base = names[0]  # TensorFlow where installed: the default
    rows = []
    for name in names:
        pipes = run.pipeline.get(name, {})
        rows.append(
            [
                name,
                f"{median(_rates(run, name)):.3f}",
                ratio_text(_paired(run, name, base)),
                ", ".join(f"{k} {v:.0f}" for k, v in sorted(pipes.items())),
                JIT_AUTO[name],
                f"{run.epochs[name][-1]['loss']:.4f}",
            ]
        )
    fastest = max(names, key=lambda n: median(_rates(run, n)))
    s = run.sizes
    notes = [
        f"UNet++ filters {s.train_filters}…{s.train_filters * 2**s.train_depth}, depth "
        f"{s.train_depth}, dropout 0.5, L2 1e-4, no batch norm; {s.train_size} px, batch "
        f"{s.train_batch}, float32; rotation 10°, shift 0.1, horizontal flip; an epoch is "
        f"{s.train_images} phantom images; {s.warmup_epochs} warm-up epoch(s) (JAX compiles "
        f"there), then {s.measured_epochs} measured epochs per lane, lanes alternating epoch by "
        "epoch; each lane a process set up as a CPU worker of its backend.",
        "Ratio = median over rounds of (TensorFlow epoch seconds / lane epoch seconds), wall "
        "time. No CPU-time ratio: this VM's process CPU time undercounts TensorFlow's threads "
        "(a float32 matmul showed 158 GFLOP per CPU second, above one AVX2 core's peak).",
        "Input pipeline alone: images/s of augmented batches, no training, 3 passes over 64 "
        "images after a warm-up pass. tf.data prepares batches on background threads while "
        "the step runs; the PyDataset is read between steps, in the training thread.",
    ]
    return Section(
        key="backends",
        title=f"8. Keras backends: training throughput on the CPU at {s.train_size} px",
        headline=f"{fastest} fastest here; "
        + ", ".join(f"{n} {ratio_text(_paired(run, n, base))}" for n in names if n != base)
        + f" {base}'s images/s",
        target="recorded (issue 12 sets no number)",
        met=None,
        columns=[
            "backend",
            "images/s (median epoch)",
            f"× {base}",
            "input pipeline alone (images/s)",
            "jit_compile (auto)",
            "last loss",
        ],
        rows=rows,
        notes=notes,
    )
