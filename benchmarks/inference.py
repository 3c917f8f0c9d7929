"""Item 5: inference — ``segsweep predict`` against a plain ``model.predict`` loop, same files.

Both read every PNG of a phantom folder, scale it to [0, 1], predict, threshold at 0.5 and write
one PNG mask per image, in this process and alternating run by run. The plain loop calls
``model.predict`` on one image at a time, as a script written around ``model.predict`` does;
segsweep's :func:`segsweep.results.predict.predict_folder` predicts batches of 16 with
``predict_on_batch``. The end-to-end ``segsweep predict`` command (a new process: Python and
TensorFlow start-up, model load) is timed once too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import SEED_PARAMS, Section, Sizes, median, phantom, ratio_text

__all__ = ["measure", "inference_section"]


def _model(sizes: Sizes, workdir: Path) -> Path:
    from segsweep.model.unetpp import build_unetpp

    path = workdir / "predict-model.keras"
    build_unetpp(
        depth=sizes.predict_depth,
        base_filters=sizes.predict_filters,
        dropout=SEED_PARAMS["dropout"],
        batch_norm=False,
        l2=SEED_PARAMS["l2"],
        deep_supervision=False,
        in_channels=1,
        image_size=sizes.predict_size,
    ).save(path)
    return path


def plain_loop(net, images: Path, out: Path) -> int:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    files = sorted(images.glob("*.png"))
    for path in files:
        x = np.asarray(Image.open(path), np.float32)[None, :, :, None] / 255.0
        prob = net.predict(x, verbose=0)[0, :, :, 0]
        Image.fromarray(np.where(prob > 0.5, 255, 0).astype(np.uint8)).save(out / path.name)
    return len(files)


def measure(sizes: Sizes, workdir: Path, repeats: int = 3) -> dict[str, float]:
    from segsweep.results.predict import load_model, predict_folder

    images = phantom(workdir, n=sizes.predict_images, size=sizes.predict_size) / "images"
    model_path = _model(sizes, workdir)
    loaded = load_model(str(model_path))
    plain_loop(loaded.net, images, workdir / "plain-out")  # warm-up: traces both graphs
    predict_folder(loaded, images, workdir / "segsweep-out")
    times: dict[str, list[float]] = {"segsweep": [], "plain": []}
    for _ in range(repeats):
        t = time.perf_counter()
        predict_folder(loaded, images, workdir / "segsweep-out")
        times["segsweep"].append(time.perf_counter() - t)
        t = time.perf_counter()
        plain_loop(loaded.net, images, workdir / "plain-out")
        times["plain"].append(time.perf_counter() - t)
    n = sizes.predict_images
    result = {k: n / median(v) for k, v in times.items()}
    result["ratio"] = median(
        [p / s for s, p in zip(times["segsweep"], times["plain"], strict=True)]
    )
    result["cli_seconds"] = _cli(model_path, images, workdir / "cli-out")
    result["agree"] = _agreement(workdir / "segsweep-out", workdir / "plain-out")
    return result


def _cli(model_path: Path, images: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "segsweep", "predict", str(model_path), str(images), str(out)],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def _agreement(a: Path, b: Path) -> float:
    """Share of pixels on which the two sets of masks agree."""
    from PIL import Image

    same = total = 0
    for path in sorted(a.glob("*.png")):
        x, y = np.asarray(Image.open(path)), np.asarray(Image.open(b / path.name))
        same, total = same + int((x == y).sum()), total + x.size
    return same / max(total, 1)


def inference_section(result: dict[str, float], sizes: Sizes) -> Section:
    n = sizes.predict_images
    rows = [
        [
            "segsweep predict_folder (batches of 16)",
            f"{result['segsweep']:.1f}",
            ratio_text(result["ratio"]),
        ],
        ["plain model.predict loop (one image per call)", f"{result['plain']:.1f}", "1.00×"],
        ["`segsweep predict` command, end to end", f"{n / result['cli_seconds']:.1f}", "—"],
    ]
    notes = [
        f"{n} phantom PNGs of {sizes.predict_size} px; UNet++ filters {sizes.predict_filters}…"
        f"{sizes.predict_filters * 2**sizes.predict_depth}, depth {sizes.predict_depth}; "
        "read, scale, predict, threshold, write. Ratio = median over alternating runs.",
        f"The command's {result['cli_seconds']:.1f} s include process start, TensorFlow import "
        "and model load.",
        f"The two sets of masks agree on {100 * result['agree']:.2f} % of the pixels.",
    ]
    return Section(
        key="inference",
        title="5. Inference (images/s)",
        headline=f"segsweep predict {ratio_text(result['ratio'])} a plain model.predict loop",
        target="faster than a plain model.predict loop (no number set)",
        met=result["ratio"] > 1.0,
        columns=["method", "images/s", "× plain loop"],
        rows=rows,
        notes=notes,
    )
