"""Section 11: what ``train.deterministic`` costs, and that it repeats a run.

Processes train the default trial's network of the phantoms' plan (filters 16, depth 3, batch
norm, dice_ce; 128 px, batch 8, the augmentation on) with :func:`segsweep.trial.train.fit`, one
at a time, alternating between TensorFlow's own CPU kernels and ``train.deterministic``, every
run seed 0. The cost is the ratio of median epoch times after the first (which traces the
graph); the repeat is whether two runs of a mode end every epoch at the same training loss.

One process at a time, not side-by-side lanes (:mod:`benchmarks.lanes`): a first try with four
lanes alive at once measured two identical lanes of default kernels 2x apart on the 2 cores, so
the lanes' ratio said more about which process the scheduler favoured than about the kernels.

    python -m benchmarks.determinism [--quick]     # ~3 min; writes section 11 of RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks.common import Section, median, ratio_text

__all__ = ["SCRIPT", "determinism_section", "main", "measure"]

SCRIPT = """
import json, sys, time, keras, numpy as np
from segsweep.config import Config
from segsweep.trial.train import Split, fit

on, size, images, epochs = sys.argv[1] == "on", *map(int, sys.argv[2:5])
rng = np.random.default_rng(0)
x = rng.random((images, size, size, 1), dtype=np.float32)
y = (x > 0.9).astype(np.uint8)
split = Split(x, y, x[:8], y[:8])
cfg = Config().replace(**{"data.image_size": size, "train.epochs": epochs,
    "train.batch_size": 8, "train.deterministic": on})
params = {"loss": "dice_ce", "smooth": 1e-5, "dice_reduction": "batch", "dropout": 0.0,
    "l2": 1e-5, "batch_norm": True, "base_filters": 16, "depth": 3, "lr": 1e-3,
    "schedule": "poly", "deep_supervision": False}
out = {"wall": [], "cpu": [], "loss": []}

class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
    def on_epoch_end(self, epoch, logs=None):
        out["wall"].append(time.perf_counter() - self.wall)
        out["cpu"].append(time.process_time() - self.cpu)
        out["loss"].append(float(logs["loss"]))

fit(params, split, cfg, seed=0, callbacks=[Clock()])
print(json.dumps(out))
"""
MODES = ("default kernels", "deterministic")


def _train(on: bool, *, size: int, images: int, epochs: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3",
           "CUDA_VISIBLE_DEVICES": "-1"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, "on" if on else "off", str(size), str(images), str(epochs)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(*, rounds: int, size: int, images: int, epochs: int) -> dict:
    """``rounds`` runs of each mode, alternating, one process at a time."""
    started, runs = time.time(), {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            runs[mode].append(_train(mode == "deterministic", size=size, images=images,
                                     epochs=epochs))  # fmt: skip
    sizes = {"size": size, "images": images, "epochs": epochs, "rounds": rounds}
    return {"runs": runs, "sizes": sizes, "seconds": time.time() - started}


def _after_first(runs: list[dict], key: str) -> float:
    return median([v for run in runs for v in run[key][1:]])


def _repeats(runs: list[dict]) -> bool:
    return all(run["loss"] == runs[0]["loss"] for run in runs[1:])


def determinism_section(result: dict) -> Section:
    runs, s = result["runs"], result["sizes"]
    base, det = runs["default kernels"], runs["deterministic"]
    wall = _after_first(det, "wall") / _after_first(base, "wall")
    cpu = _after_first(det, "cpu") / _after_first(base, "cpu")
    rows = [
        [mode, f"{_after_first(r, 'wall'):.1f}", f"{_after_first(r, 'cpu'):.1f}",
         "; ".join(" / ".join(f"{v:.6f}" for v in run["loss"]) for run in r)]
        for mode, r in runs.items()
    ]  # fmt: skip
    repeat = _repeats(det)
    notes = [
        f"UNet++ filters 16, depth 3, batch norm, dice_ce; {s['size']} px, batch 8, "
        f"{s['images']} random images an epoch (the augmentation on), {s['epochs']} epochs a "
        f"run, {s['rounds']} runs of each mode alternating, one process at a time, seed 0.",
        "Cost = median epoch time with `train.deterministic` / without, over every epoch but "
        f"each run's first: {ratio_text(wall)} by the clock, {ratio_text(cpu)} in CPU time.",
        "Repeat: the deterministic runs "
        + ("ended every epoch at the same loss" if repeat else "differed")
        + "; the runs with default kernels "
        + ("also agreed" if _repeats(base) else "drifted apart from the first epoch")
        + " (the losses per epoch, run by run, are in the table).",
        f"{result['seconds'] / 60:.1f} minutes on the 2 shared CPU cores.",
    ]
    return Section(
        key="determinism",
        title="11. train.deterministic: cost per epoch and repeat",
        headline=f"deterministic kernels take {ratio_text(wall)} the epoch time "
        f"({ratio_text(cpu)} the CPU time); a seed "
        + ("repeats" if repeat else "does NOT repeat"),
        target="a seed repeats to the bit; cost reported",
        met=repeat,
        columns=["mode", "epoch s (median, wall)", "epoch s (median, CPU)",
                 "training loss per epoch, run by run"],
        rows=rows,
        notes=notes,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.determinism", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes; writes nothing")
    args = p.parse_args(argv)
    if args.quick:
        result = measure(rounds=2, size=32, images=16, epochs=2)
    else:
        result = measure(rounds=2, size=128, images=48, epochs=4)
    section = determinism_section(result)
    from benchmarks.plangain_section import write_results
    from benchmarks.report import console

    print(console([section]))
    if not args.quick:
        write_results(section)


if __name__ == "__main__":
    main()
