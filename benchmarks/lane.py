"""A lane: one training process that runs an epoch each time the coordinator says so.

Lanes live side by side, each in its own process so that each can have its own environment
(``TF_ENABLE_ONEDNN_OPTS`` is read once per process). The coordinator (:mod:`benchmarks.lanes`)
hands out epochs in turn, so a busy spell of a shared machine falls on every lane alike. A lane
waits for its command at the start of every epoch (the ``Gate`` callback), so nothing of it runs
while another lane trains; its ``seconds`` span the training steps only, not the validation.

Run as ``python -m benchmarks.lane SPEC_JSON``; commands and replies are JSON lines on stdin and
on the process's original stdout (anything TensorFlow prints goes to stderr). A spec with a
``backend`` sets the lane up as a worker of that Keras backend sets itself up (its ``gpu``, None
for the CPU); ``matmul`` and ``profile`` need TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main", "matmul_gflops", "profile_ops"]


def _reply_channel() -> TextIO:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints (TensorFlow, absl) must not corrupt the protocol
    return out


def matmul_gflops(n: int, repeats: int) -> dict[str, float]:
    """GFLOP/s of ``tf.linalg.matmul`` on two n×n float32 tensors (the kernels convs use)."""
    import tensorflow as tf

    a, b = tf.random.normal((n, n), seed=1), tf.random.normal((n, n), seed=2)
    run = tf.function(tf.linalg.matmul)
    run(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(a, b).numpy()
        times.append(time.perf_counter() - start)
    times.sort()
    flops = 2.0 * n**3
    return {"median": flops / times[len(times) // 2] / 1e9, "best": flops / times[0] / 1e9}


def profile_ops(logdir: Path) -> dict[str, float]:
    """Seconds per TensorFlow op type in a trace (summed over the executor's threads)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
    totals: dict[str, float] = {}
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                # "scope/op_name:OpType"; skip the executor's own spans ("ExecutorState::Process")
                # that wrap the ops and would count their time twice
                if ":" in name and "::" not in name:
                    kind = name.rsplit(":", 1)[1]
                    totals[kind] = totals.get(kind, 0.0) + event.duration_ps / 1e12
    return totals


class _Protocol:
    def __init__(self, commands: TextIO, replies: TextIO, spec: dict[str, Any]) -> None:
        self.commands, self.replies, self.spec = commands, replies, spec

    def reply(self, **message: Any) -> None:
        self.replies.write(json.dumps(message) + "\n")

    def wait_for_epoch(self) -> dict[str, Any]:
        """Answer side commands until an epoch (or profiled epoch) is asked for."""
        while True:
            line = self.commands.readline()
            if not line:
                sys.exit(0)  # the coordinator is gone
            command = json.loads(line)
            if command["op"] in ("epoch", "profile"):
                return command
            if command["op"] == "matmul":
                self.reply(**matmul_gflops(command["n"], command["repeats"]))
            elif command["op"] == "pipeline":
                from benchmarks.backends import pipeline_rates

                self.reply(**pipeline_rates(self.spec, passes=command["passes"]))
            elif command["op"] == "stop":
                sys.exit(0)
            else:
                raise ValueError(f"unknown lane command {command!r}")


def _make_gate(protocol: _Protocol, *, steps: int, images: int):
    import keras

    class Gate(keras.callbacks.Callback):
        """Blocks at each epoch start until told to go; reports the epoch's training seconds."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.command = protocol.wait_for_epoch()
            self.logdir = None
            if self.command["op"] == "profile":
                import tensorflow as tf

                self.logdir = Path(tempfile.mkdtemp(prefix="segsweep-bench-prof-"))
                tf.profiler.experimental.start(str(self.logdir))
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            float((logs or {}).get("loss", 0.0))  # waits for the step to finish
            self.end, self.cpu_end = time.perf_counter(), time.process_time()
            if batch + 1 == steps and self.logdir is not None:
                import tensorflow as tf

                tf.profiler.experimental.stop()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            ops = None
            if self.logdir is not None:
                ops = profile_ops(self.logdir)
                shutil.rmtree(self.logdir, ignore_errors=True)
            protocol.reply(
                seconds=self.end - self.start,
                cpu_seconds=self.cpu_end - self.cpu_start,
                images=images,
                loss=float(logs.get("loss", math.nan)),
                val_dsc=float(logs.get("val_dsc", math.nan)),
                ops=ops,
            )

    return Gate()


def _load_split(spec: dict[str, Any]):
    from segsweep.data.io import load_dataset
    from segsweep.trial.train import Split

    ds = load_dataset(Path(spec["data_dir"]), image_size=spec["image_size"])
    n, v = spec["n_train"], spec["n_val"]
    return Split(ds.images[:n], ds.masks[:n], ds.images[n : n + v], ds.masks[n : n + v])


def _run_segsweep(spec: dict[str, Any], split, gate) -> None:
    from segsweep.config import Config
    from segsweep.trial.train import fit

    cfg = Config().replace(
        **{
            "data.image_size": spec["image_size"],
            "train.batch_size": spec["batch_size"],
            "train.epochs": spec["epochs"],
            "train.jit_compile": spec.get("jit_compile", "auto"),
            "train.mixed_precision": spec.get("mixed_precision", "auto"),
            "train.backend": spec.get("backend", "tensorflow"),
        }
    )
    fit(spec["params"], split, cfg, seed=spec["seed"], callbacks=[gate])


def _run_seed_style(spec: dict[str, Any], split, gate) -> None:
    import keras

    from benchmarks.seedstyle import flow
    from segsweep.model.losses import get_loss
    from segsweep.trial.train import build_model, make_optimizer

    params, batch = spec["params"], spec["batch_size"]
    keras.utils.set_random_seed(spec["seed"])
    net = build_model(params, in_channels=split.train_x.shape[-1], image_size=spec["image_size"])
    steps = len(split.train_x) // batch
    net.compile(  # Keras' defaults, as the seed case compiled it
        optimizer=make_optimizer(params, total_steps=steps * spec["epochs"]),
        loss=get_loss(
            params["loss"], dice_w2=params["dice_w2"], smooth=params["smooth"], per_image=False
        ),
    )
    batches = flow(
        split.train_x,
        split.train_y,
        batch_size=batch,
        rotation=10.0,
        shift=0.1,
        flip=True,
        seed=spec["seed"],
    )
    net.fit(batches, steps_per_epoch=steps, epochs=spec["epochs"], verbose=0, callbacks=[gate])


def main(argv: list[str] | None = None) -> None:
    spec = json.loads((argv or sys.argv[1:])[0])
    protocol = _Protocol(sys.stdin, _reply_channel(), spec)
    if spec.get("backend"):  # before Keras loads, as a worker does
        from segsweep.backend import prepare_worker

        prepare_worker(spec["backend"], gpu=spec.get("gpu"), onednn="auto", shared_cores=False)
    if spec.get("threads"):
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(spec["threads"][0])
        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"][1])
    split = _load_split(spec)
    steps = math.ceil(len(split.train_x) / spec["batch_size"])
    gate = _make_gate(protocol, steps=steps, images=len(split.train_x))
    protocol.reply(ready=True)
    run = _run_segsweep if spec["kind"] == "segsweep" else _run_seed_style
    run(spec, split, gate)
    while True:  # training is over; still answer matmul commands until stopped
        protocol.wait_for_epoch()
        raise RuntimeError("an epoch was asked of a lane that has finished training")


if __name__ == "__main__":
    main()
