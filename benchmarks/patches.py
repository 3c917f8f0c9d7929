"""What patch training costs per epoch against whole-image training at the same patch size.

``python -m benchmarks.patches [--n 120] [--patch 48] [--steps 20] [--epochs 3] [--repeats 2]``

Both train the same UNet++ (filters 8, depth 3, input ``--patch`` px) through
:func:`segsweep.trial.train.fit`, the same number of steps an epoch at the same batch size, on
the first ``--n`` images of ``../shared/data/dsb2018_nuclei_96`` (96 px; the 128 px phantom set
when absent):

- whole: ``data.image_size`` = the patch size, every image resized to it, validation one
  prediction per image at that size;
- patches: ``data.patch_size`` = the patch size, images at their own resolution, each batch
  drawn by ``PatchSampler`` (a third centred on lesion), validation of every whole image at its
  own size by half-overlapping windows blended with Gaussian weights.

Each epoch is split into its training steps (first step to last) and its validation (the
epoch-end callbacks: prediction and every metric); the first epoch (tracing) is dropped and the
median of the rest is kept. The two modes alternate ``--repeats`` times in this one process, so
a machine shared with other jobs weighs on both alike. Prints a table and the ratios.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

NUCLEI = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018_nuclei_96"
PARAMS = {
    "depth": 3, "base_filters": 8, "dropout": 0.0, "batch_norm": True, "bn_momentum": 0.9,
    "l2": 1e-5, "deep_supervision": False, "lr": 3e-3, "schedule": "constant",
    "loss": "dice_ce", "smooth": 1e-5, "dice_reduction": "batch",
}  # fmt: skip


def _subset(source: Path, n: int, into: Path) -> Path:
    """The first ``n`` pairs of ``source``, linked into a folder of their own."""
    from segsweep.data.io import find_pairs

    for pair in find_pairs(source)[:n]:
        for path, kind in ((pair.image, "images"), (pair.mask, "masks")):
            (into / kind).mkdir(parents=True, exist_ok=True)
            os.symlink(path.resolve(), into / kind / path.name)
    return into


def _clock():
    import keras

    class Clock(keras.callbacks.Callback):
        """Per epoch: (seconds of training steps, seconds of the epoch-end validation)."""

        def __init__(self) -> None:
            super().__init__()
            self.epochs: list[tuple[float, float]] = []

        def on_epoch_begin(self, epoch, logs=None) -> None:  # noqa: ANN001
            self.start = self.last = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None) -> None:  # noqa: ANN001
            self.last = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:  # noqa: ANN001 - runs after validation
            self.epochs.append((self.last - self.start, time.perf_counter() - self.last))

    return Clock()


def _epoch_seconds(folder: Path, patch: int, mode: str, args: argparse.Namespace) -> tuple:
    from segsweep.config import Config
    from segsweep.trial.train import fit
    from segsweep.trial.workerdata import load_worker_data

    size = {"data.image_size": patch, "data.patch_size": patch if mode == "patches" else 0}
    cfg = Config().replace(
        **size,
        **{
            "data.dir": str(folder),
            "data.test_fraction": 0.0,
            "train.epochs": args.epochs,
            "train.batch_size": args.batch,
            "train.steps_per_epoch": args.steps,
        },
    )
    data = load_worker_data(cfg)
    clock = _clock()
    fit(PARAMS, data.split, cfg, seed=0, callbacks=[clock])
    kept = clock.epochs[1:]  # the first epoch traces the graphs
    train = sorted(t for t, _ in kept)[len(kept) // 2]
    val = sorted(v for _, v in kept)[len(kept) // 2]
    return train, val, len(data.split.val_x), data.split.val_x.shape[1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.patches", description=__doc__)
    p.add_argument("--n", type=int, default=120, help="images used (80 %% train, 20 %% val)")
    p.add_argument("--patch", type=int, default=48)
    p.add_argument("--steps", type=int, default=20, help="training steps an epoch, both modes")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3, help="the first is not counted")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    from benchmarks.common import phantom

    with tempfile.TemporaryDirectory(prefix="segsweep-patches-") as tmp:
        source = NUCLEI if NUCLEI.is_dir() else phantom(Path(tmp), n=args.n, size=128)
        folder = _subset(source, args.n, Path(tmp) / "subset")
        runs: dict[str, list[tuple]] = {"whole": [], "patches": []}
        for _ in range(args.repeats):
            for mode in runs:
                runs[mode].append(_epoch_seconds(folder, args.patch, mode, args))
    print(
        f"data: {source.name}, {args.n} images; model: UNet++ depth 3, filters 8, "
        f"{args.patch} px input; {args.steps} steps of batch {args.batch} an epoch; median of "
        f"epochs 2-{args.epochs}, {args.repeats} alternating runs each"
    )
    print(f"{'mode':<8} {'val images':>10} {'at px':>6} {'train s':>8} {'val s':>7} {'epoch s':>8}")
    mean = {}
    for mode, rows in runs.items():
        train = sum(r[0] for r in rows) / len(rows)
        val = sum(r[1] for r in rows) / len(rows)
        mean[mode] = (train, val, train + val)
        n_val, px = rows[0][2], rows[0][3]
        print(f"{mode:<8} {n_val:>10} {px:>6} {train:>8.2f} {val:>7.2f} {train + val:>8.2f}")
    (tw, vw, ew), (tp, vp, ep) = mean["whole"], mean["patches"]
    print(
        f"patches / whole: training steps {tp / tw:.2f}x, validation {vp / vw:.2f}x, "
        f"whole epoch {ep / ew:.2f}x"
    )


if __name__ == "__main__":
    main()
