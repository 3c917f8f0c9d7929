"""Item 6: the GPU settings, and the throughput benchmark at 256 px whenever a GPU is at hand.

``train.mixed_precision`` and ``train.jit_compile`` ("auto" = on with a GPU, off on the CPU) are
recorded with every trial as ``train.mixed_precision_used`` and ``train.jit_compile_used``. With a
GPU, two lanes train side by side on it: the seed-style baseline (Keras' defaults, which turn XLA
on with a GPU) and segsweep's defaults (float16 compute and XLA).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import Section, Sizes, median, ratio_text

__all__ = ["gpu_name", "gpu_section", "GPU_SIZE", "GPU_BATCH"]

GPU_SIZE = 256
GPU_BATCH = 32  # fits an UNet++ 32..512 at 256 px in float16 on a 16 GB card
_GPU_LANES = {
    "seed-style": ({"kind": "seed"}, {}),
    "segsweep": ({"kind": "segsweep"}, {}),
    "segsweep, float32, no XLA": (
        {"kind": "segsweep", "jit_compile": "off", "mixed_precision": "off"},
        {},
    ),
}


def gpu_name() -> str | None:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return str(details.get("device_name", gpus[0].name))


def gpu_section(sizes: Sizes, workdir: Path) -> Section:
    name = gpu_name()
    columns = ["lane", "images/s (median epoch)", "× baseline"]
    if name is None:
        return Section(
            key="gpu",
            title=f"6. GPU throughput at {GPU_SIZE} px",
            headline="unmeasured: no GPU on this machine",
            target="recorded whenever a GPU is at hand",
            met=None,
            columns=columns,
            rows=[["(no GPU)", "unmeasured", "unmeasured"]],
            notes=[
                'train.mixed_precision and train.jit_compile default to "auto": on with a GPU, '
                "off on the CPU; each trial records the values used as params "
                "(train.mixed_precision_used, train.jit_compile_used).",
                "Run `python -m benchmarks --only gpu` on a machine with a GPU to fill this in.",
            ],
        )
    from benchmarks import throughput

    run = throughput.measure(
        sizes, workdir, lanes=_GPU_LANES, image_size=GPU_SIZE, batch=GPU_BATCH, device=name
    )
    base = next(iter(run.epochs))
    rows = [
        [
            lane,
            f"{median([e['images'] / e['seconds'] for e in epochs]):.1f}",
            ratio_text(throughput._paired_ratio(run, lane, base)),
        ]
        for lane, epochs in run.epochs.items()
    ]
    ratio = throughput._paired_ratio(run, "segsweep", base)
    return Section(
        key="gpu",
        title=f"6. GPU throughput at {GPU_SIZE} px ({name})",
        headline=f"segsweep {ratio_text(ratio)} the seed-style baseline on {name}",
        target="recorded whenever a GPU is at hand",
        met=None,
        columns=columns,
        rows=rows,
        notes=[f"Batch {GPU_BATCH}, {GPU_SIZE} px, UNet++ filters 32…512, depth 4."],
    )
