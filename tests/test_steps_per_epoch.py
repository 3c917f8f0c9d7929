"""``train.steps_per_epoch``: an epoch of a fixed number of steps instead of one pass, on the
tf.data pipeline (TensorFlow) and the PyDataset one (JAX), each in its own process because Keras
picks its backend at import; whole images and native-resolution patches (``data.patch_size``)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

# 8 training images at batch 4 are 2 steps a pass; for steps_per_epoch 0 and 5 the script
# prints the steps each epoch ran and the learning rate after each epoch
SCRIPT = """
import sys, keras, numpy as np
from segsweep.config import Config
from segsweep.trial.train import Split, fit

x = np.random.default_rng(0).random((8, 16, 16, 1), dtype=np.float32)
y = (x > 0.5).astype(np.uint8)
split = Split(x, y, x[:2], y[:2])
base = Config().replace(**{"data.image_size": 16, "train.epochs": 2, "train.batch_size": 4,
    "augment.flip": False, "augment.rotation": 0.0,
    "augment.shift": 0.0})
params = {"loss": "dice_ce", "smooth": 1e-5, "dice_reduction": "batch", "dropout": 0.0,
    "l2": 0.0, "batch_norm": False, "base_filters": 4, "depth": 1, "lr": 1e-3,
    "schedule": "poly", "deep_supervision": False}

class Count(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.per_epoch = []
    def on_epoch_begin(self, epoch, logs=None):
        self.per_epoch.append(0)
    def on_train_batch_end(self, batch, logs=None):
        self.per_epoch[-1] += 1

# whole images; 8 px patches drawn endlessly, steps 0 meaning one pass's worth of batches
for patch, steps in ((0, 0), (0, 5), (8, 0)):
    count = Count()
    cfg = base.replace(**{"train.steps_per_epoch": steps, "data.patch_size": patch})
    result = fit(params, split, cfg, seed=0, callbacks=[count])
    print(f"{patch}/{steps}", "steps", *count.per_epoch)
    print(f"{patch}/{steps}", "epochs", len(result.history["loss"]))
    print(f"{patch}/{steps}", "lr", *result.history["lr"])
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_an_epoch_runs_the_set_number_of_steps(backend: str) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed in this environment")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {tuple(line.split()[:2]): line.split()[2:] for line in proc.stdout.splitlines()}
    # 0: one pass of 8 images at batch 4, or as many batches of patches
    for run, expected in (("0/0", 2), ("0/5", 5), ("8/0", 2)):
        # both epochs ran in full: the pipeline did not run dry after one pass
        assert lines[(run, "steps")] == [str(expected)] * 2, proc.stdout
        assert lines[(run, "epochs")] == ["2"]
        # the poly decay's horizon is every step of the trial: halfway after the first epoch
        first, last = map(float, lines[(run, "lr")])
        assert first == pytest.approx(1e-3 * 0.5**0.9, rel=1e-4), proc.stdout
        assert last == pytest.approx(0.0)
