"""Training images/s of one backend and precision on the GPU, at the largest batch that fits.

``python -m benchmarks.device_throughput BACKEND MIXED [--size 256] [--budget 75]`` (run by
``benchmarks/device.sh``, one process per backend and precision, so an out-of-memory error
cannot spoil the next measurement). It trains the throughput benchmark's UNet++ with
:func:`segsweep.trial.train.fit`, as a GPU worker does (``train.jit_compile`` "auto", the PyDataset
input pipeline, the joint augmentation), at batch sizes rising 4× at a time until one runs out
of memory or the next might not finish within ``--budget`` seconds. Each batch size trains two
epochs of four steps; the second is timed. Prints one JSON line per batch size tried.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

__all__ = ["main"]


def _arrays(n: int, size: int):
    """``n`` images with a bright square lesion each, and their masks."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((n, size, size, 1), np.float32) * 0.3
    y = np.zeros((n, size, size, 1), np.uint8)
    for i, (r, c) in enumerate(rng.integers(0, size // 2, (n, 2))):
        y[i, r : r + size // 4, c : c + size // 4] = 1
    return x + 0.5 * y, y


def _timed_epochs(batch: int, size: int, mixed: str) -> dict:
    import keras

    from benchmarks.common import SEED_PARAMS
    from segsweep.config import Config
    from segsweep.trial.train import Split, fit

    x, y = _arrays(4 * batch + batch, size)
    split = Split(x[: 4 * batch], y[: 4 * batch], x[4 * batch :], y[4 * batch :])
    marks: dict[str, float] = {}

    class Clock(keras.callbacks.Callback):
        """The training steps of each epoch, without its validation."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch
            marks[f"begin{epoch}"] = time.perf_counter()

        def on_train_batch_end(self, step: int, logs: dict | None = None) -> None:
            float((logs or {}).get("loss", 0.0))  # waits for the step to finish
            marks[f"end{self.epoch}"] = time.perf_counter()

    cfg = Config().replace(
        **{
            "data.image_size": size,
            "train.batch_size": batch,
            "train.epochs": 2,
            "train.mixed_precision": mixed,
            "train.backend": keras.config.backend(),
        }
    )
    params = {**SEED_PARAMS, "base_filters": 32, "depth": 4}
    start = time.perf_counter()
    fit(params, split, cfg, seed=0, callbacks=[Clock()])
    keras.backend.clear_session()  # the next, larger batch gets the memory back
    seconds = marks["end1"] - marks["begin1"]
    return {"images_per_s": 4 * batch / seconds, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.device_throughput")
    p.add_argument("backend", choices=("tensorflow", "jax", "torch"))
    p.add_argument("mixed", choices=("on", "off"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--budget", type=float, default=75.0)
    p.add_argument("--batches", default="32,128,512")
    p.add_argument("--gpu", default="0", help='a CUDA device id, or "" for the CPU')
    args = p.parse_args(argv)
    from segsweep.backend import is_out_of_memory, open_device, prepare_worker

    gpu = args.gpu or None
    prepare_worker(args.backend, gpu=gpu, onednn="auto", shared_cores=False)
    device = open_device(gpu)
    start = time.perf_counter()
    for batch in map(int, args.batches.split(",")):
        row = {"backend": args.backend, "mixed": args.mixed, "size": args.size, "batch": batch}
        try:
            row |= _timed_epochs(batch, args.size, args.mixed)
        except Exception as err:  # noqa: BLE001 - any failure ends the ladder, reported
            oom = is_out_of_memory(err)
            row |= {"error": "out of memory" if oom else f"{type(err).__name__}: {err}"[:300]}
            print(json.dumps({**row, "device": device}), flush=True)
            break
        print(json.dumps({**row, "device": device}), flush=True)
        used = time.perf_counter() - start
        # on a GPU compiling dominates a rung (each batch size compiles anew), so the next
        # rung takes about as long as this one, rarely twice
        if used + 2 * row["seconds"] > args.budget:
            break
    sys.stdout.flush()
    os._exit(0)  # skip tearing the backend down


if __name__ == "__main__":
    main()
