"""Item 3: per-trial overhead — a trial's wall time outside its training epochs.

In a fresh working directory: ``segsweep study create`` on the built-in phantom data (64 px,
5 epochs, the search space fixed to one configuration so every trial trains the same model),
then, back to back:

- ``segsweep study run --trials 1``, a real subprocess timed end to end (coordinator, spawned
  worker, one trial, exit);
- :mod:`benchmarks.trialprobe`, a fresh process that does what a worker does and runs one trial
  through :func:`segsweep.trial.objective.run_trial`, with timestamps around every part.

The overhead of the CLI run uses the training time of the probe's epochs, which train the same
model on the same data (another trial seed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import SEED_PARAMS, Section, Sizes, median, phantom
from segsweep.study.workers import RECYCLE_AFTER

__all__ = ["measure", "overhead_section"]

_ENV = {"CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"}
_ONCE_PER_WORKER = ("process", "segsweep /", "data load", "open study")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _settings(sizes: Sizes) -> list[str]:
    params = {**SEED_PARAMS, "base_filters": sizes.trial_filters, "depth": sizes.trial_depth}
    fixed = [f"space.{k}=[{_toml(v)}]" for k, v in params.items()]
    return [
        f"data.image_size={sizes.trial_size}",
        f"train.epochs={sizes.trial_epochs}",
        'search.pruner="none"',
        *fixed,
    ]


def _segsweep(args: list[str], cwd: Path) -> float:
    start = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "segsweep", *args],
        cwd=cwd,
        env={**os.environ, **_ENV},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"segsweep {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return time.time() - start


def _probe(cwd: Path) -> dict[str, Any]:
    launched = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.trialprobe", "bench", repr(launched)],
        cwd=cwd,
        env={**os.environ, **_ENV, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        capture_output=True,
        text=True,
    )
    exited = time.time()
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"trial probe failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1])
    result["marks"]["exit"] = exited
    return result


def measure(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    cwd = workdir / "overhead"
    cwd.mkdir(parents=True, exist_ok=True)
    # n=200 at 128 px is the built-in phantom set `study create` writes without --data
    data = phantom(workdir, n=sizes.trial_phantoms, size=128)
    sets = [x for s in _settings(sizes) for x in ("--set", s)]
    _segsweep(["study", "create", "bench", "--data", str(data), *sets], cwd)
    cli = _segsweep(["study", "run", "bench", "--trials", "1", "--workers", "1"], cwd)
    return {"cli_seconds": cli, "probe": _probe(cwd)}


def _tracker_seconds(probe: dict[str, Any], lo: float, hi: float, *names: str) -> float:
    return sum(
        d for name, t, d in probe["tracker"] if lo <= t < hi and (not names or name in names)
    )


def parts(probe: dict[str, Any]) -> tuple[list[tuple[str, float]], float, float]:
    """(named parts in seconds, training seconds, total seconds) of the probed trial."""
    m, epochs = probe["marks"], probe["epochs"]
    train = sum(e["trained"] - e["begin"] for e in epochs)
    validation = sum(e["validated"] - e["trained"] for e in epochs)
    callbacks = sum(e["end"] - e["validated"] for e in epochs)
    between = sum(b["begin"] - a["end"] for a, b in zip(epochs, epochs[1:], strict=False))
    mlflow_before = _tracker_seconds(probe, m["opened"], m["fit"])
    named = [
        ("process start, Python, TensorFlow import", m["tensorflow"] - m["launch"]),
        ("segsweep / Keras / Optuna / MLflow imports", m["imports"] - m["tensorflow"]),
        ("data load (decode, resize, split)", m["data"] - m["imports"]),
        ("open study and MLflow store, ask trial", m["opened"] - m["data"]),
        ("MLflow run start, params, tags, settings", mlflow_before),
        (
            "suggest, model build, compile, tf.data",
            epochs[0]["begin"] - m["opened"] - mlflow_before,
        ),
        ("validation on the whole validation set, every epoch", validation),
        ("per-epoch callbacks: Optuna report, MLflow metrics/overlays", callbacks + between),
        ("after training: final overlay, model save + log", m["trial_end"] - epochs[-1]["end"]),
        ("process exit", m["exit"] - m["trial_end"]),
    ]
    return named, train, m["exit"] - m["launch"]


def overhead_section(result: dict[str, Any], sizes: Sizes, *, target: float = 0.10) -> Section:
    probe = result["probe"]
    named, train, total = parts(probe)
    share = (total - train) / total
    cli_share = (result["cli_seconds"] - train) / result["cli_seconds"]
    epoch_seconds = median([e["end"] - e["begin"] for e in probe["epochs"]])
    m = probe["marks"]
    metrics = _tracker_seconds(probe, m["fit"], m["fit_end"], "log_metrics")
    metrics_per_epoch = metrics / len(probe["epochs"])
    steps = [s for e in probe["epochs"] for s in e["steps"]]
    tracing = steps[0] - median(steps[1:]) if len(steps) > 1 else 0.0
    largest = sorted(named, key=lambda kv: -kv[1])[:3]
    once = sum(seconds for name, seconds in named if name.startswith(_ONCE_PER_WORKER))
    in_worker = (total - once - train) / (total - once)
    rows = [[name, f"{seconds:.2f}", f"{100 * seconds / total:.1f} %"] for name, seconds in named]
    rows.append(["training epochs (the work)", f"{train:.2f}", f"{100 * train / total:.1f} %"])
    rows.append(["total (probe process, launch to exit)", f"{total:.2f}", "100 %"])
    notes = [
        f"Trial: UNet++ filters {sizes.trial_filters}…"
        f"{sizes.trial_filters * 2**sizes.trial_depth}, depth {sizes.trial_depth} (dropout 0.5, "
        f"L2 1e-4), {sizes.trial_size} px, batch 8, {sizes.trial_epochs} epochs on the built-in "
        f"phantom set ({sizes.trial_phantoms} images, 80/20 split), MLflow's default store "
        "(mlflow.db), Optuna journal, model logged.",
        f"Real `segsweep study run --trials 1` subprocess: {result['cli_seconds']:.1f} s end to "
        "end (coordinator + spawned worker); overhead with the probe's training time: "
        f"{100 * cli_share:.0f} %.",
        f"MLflow metric logging: {1000 * metrics_per_epoch:.0f} ms per epoch = "
        f"{100 * metrics_per_epoch / epoch_seconds:.2f} % of an epoch (target < 2 %).",
        f"Graph tracing inside the first epoch (first step − median step): {tracing:.1f} s; "
        "counted as training time here, as the definition asks.",
        "Largest parts of the overhead: "
        + "; ".join(f"{name} {seconds:.1f} s" for name, seconds in largest)
        + ".",
        f"A worker pays process start, imports, data load and exit once for up to "
        f"{RECYCLE_AFTER} trials; without them this trial's overhead is "
        f"{100 * in_worker:.0f} %.",
    ]
    return Section(
        key="overhead",
        title="3. Per-trial overhead (wall time outside the training epochs)",
        headline=f"{100 * share:.0f} % of the trial (CLI run: {100 * cli_share:.0f} %)",
        target=f"< {100 * target:.0f} % of a {sizes.trial_epochs}-epoch trial at "
        f"{sizes.trial_size} px; MLflow < 2 % of an epoch",
        met=share < target and metrics_per_epoch / epoch_seconds < 0.02,
        columns=["part", "seconds", "share of the trial"],
        rows=rows,
        notes=notes,
    )
