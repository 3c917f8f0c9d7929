"""Item 7: what the lesion-wise metrics cost per epoch, on many small objects per image.

A small UNet++ (filters 8, depth 3) trains on ``../shared/data/dsb2018_nuclei_96`` at 64 px (a
few dozen nuclei per image; the phantom set when the nuclei are absent) through
``trial.train.fit``, which times every epoch: the training steps, the prediction of the whole
validation set and every validation metric. The metrics are then timed alone on the
validation predictions of the trained model and of the untrained one (a noisy map with many
components, the worst case for labelling), median of repeats, each as a share of the median
epoch, side by side in this one process.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.common import Section, Sizes, median, phantom

__all__ = ["measure", "lesion_cost_section", "NUCLEI"]

NUCLEI = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018_nuclei_96"
PARAMS = {
    "depth": 3,
    "base_filters": 8,
    "dropout": 0.0,
    "batch_norm": True,
    "bn_momentum": 0.9,
    "l2": 1e-5,
    "deep_supervision": False,
    "lr": 3e-3,
    "schedule": "constant",
    "loss": "dice_ce",
    "smooth": 1e-5,
    "dice_reduction": "batch",
}


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


def _metric_times(val_y: np.ndarray, prob: np.ndarray, repeats: int) -> dict[str, float]:
    from segsweep.evaluation.metrics import hd95, lesion_metrics, segmentation_metrics

    truth = val_y[..., 0] > 0.5
    pred = prob[..., 0] > 0.5
    return {
        "pixel": _timed(lambda: segmentation_metrics(val_y, prob), repeats),
        "lesion": _timed(lambda: lesion_metrics(val_y, prob, with_hd95=False), repeats),
        "hd95": _timed(lambda: [hd95(t, p) for t, p in zip(truth, pred, strict=True)], repeats),
    }


class _EpochClock:
    def __init__(self) -> None:
        import keras

        class Clock(keras.callbacks.Callback):
            def on_epoch_begin(inner, epoch, logs=None):  # noqa: N805
                inner.start = time.perf_counter()

            def on_epoch_end(inner, epoch, logs=None):  # noqa: N805
                self.seconds.append(time.perf_counter() - inner.start)

        self.seconds: list[float] = []
        self.callback = Clock()


def measure(sizes: Sizes, workdir: Path, repeats: int = 5) -> dict:
    from segsweep.config import Config
    from segsweep.data.io import load_dataset
    from segsweep.trial.train import Split, build_model, fit
    from segsweep.trial.validation import predict_set

    size, epochs = (64, 4) if sizes.name == "full" else (32, 2)
    folder = NUCLEI if NUCLEI.is_dir() else phantom(workdir, n=40, size=64)
    ds = load_dataset(folder, image_size=size, intensity="dtype", mask_threshold=0.0, channels=0)
    n_val = len(ds.images) // 5
    split = Split(ds.images[n_val:], ds.masks[n_val:], ds.images[:n_val], ds.masks[:n_val])
    cfg = Config().replace(
        **{"data.image_size": size, "train.epochs": epochs, "train.batch_size": 16}
    )
    untrained = build_model(PARAMS, in_channels=ds.channels, image_size=size)
    whole = dict(sizes=None, window=0, batch_size=32)
    noisy = predict_set(untrained.predict_on_batch, split.val_x, **whole)[..., None]
    clock = _EpochClock()
    result = fit(PARAMS, split, cfg, seed=0, callbacks=[clock.callback])
    trained = predict_set(result.net.predict_on_batch, split.val_x, **whole)[..., None]
    lesions_per_image = float(np.mean([_count(m) for m in split.val_y]))
    return {
        "data": folder.name,
        "size": size,
        "n_train": len(split.train_x),
        "n_val": n_val,
        "lesions_per_image": lesions_per_image,
        "epoch": median(clock.seconds[1:] or clock.seconds),  # the first epoch traces graphs
        "trained": _metric_times(split.val_y, trained, repeats),
        "untrained": _metric_times(split.val_y, noisy, repeats),
        "val_lesion_f1": result.history["val_lesion_f1"][-1],
    }


def _count(mask: np.ndarray) -> int:
    from segsweep.evaluation.metrics import label_lesions

    return label_lesions(mask[..., 0] > 0.5)[1]


def lesion_cost_section(run: dict) -> Section:
    epoch = run["epoch"]
    rows = [
        [
            name,
            f"{1000 * t['pixel']:.1f}",
            f"{1000 * t['lesion']:.1f}",
            f"{1000 * t['hd95']:.1f}",
            f"{100 * (t['lesion'] + t['hd95']) / epoch:.2f} %",
        ]
        for name, t in (("trained model", run["trained"]), ("untrained (noisy)", run["untrained"]))
    ]
    worst = max(t["lesion"] + t["hd95"] for t in (run["trained"], run["untrained"])) / epoch
    return Section(
        key="lesion_cost",
        title="7. Lesion-wise metrics: cost per epoch",
        headline=f"lesion metrics + hd95 at most {100 * worst:.2f} % of an epoch",
        target="< 5 % of an epoch at 64 px on dsb2018_nuclei_96",
        met=worst < 0.05 if run["size"] == 64 else None,
        columns=["predictions", "pixel metrics ms", "lesion metrics ms", "hd95 ms", "share"],
        rows=rows,
        notes=[
            f"{run['data']} at {run['size']} px: {run['n_train']} training and {run['n_val']} "
            f"validation images, {run['lesions_per_image']:.1f} lesions per validation image; "
            f"median epoch {epoch:.2f} s (UNet++ filters 8, depth 3, batch 16, including the "
            "validation prediction and every metric); metric times are medians of 5 calls over "
            "the whole validation set.",
            "The untrained model's thresholded output is the worst case for labelling: many "
            f"small components. The trained model's val_lesion_f1: {run['val_lesion_f1']:.3f}.",
        ],
    )
