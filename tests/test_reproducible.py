"""``train.deterministic``: one seed, one model. Without it TensorFlow's multi-threaded CPU
kernels sum in varying order, so the test first shows two runs of one seed differ, then that
with the setting they agree to the bit (on and off again in one process, as tests train)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from segsweep import reproducible

# 48 px and 8 filters: big enough that TensorFlow shards the gradients over both cores (at 32 px
# and 4 filters two runs agree even without the setting, and the test could not fail)
SCRIPT = """
import numpy as np
from segsweep.config import Config
from segsweep.trial.train import Split, fit

rng = np.random.default_rng(0)
x = rng.random((16, 48, 48, 1), dtype=np.float32)
y = (x > 0.7).astype(np.uint8)
split = Split(x, y, x[:4], y[:4])
base = Config().replace(**{"data.image_size": 48, "train.epochs": 1, "train.batch_size": 8,
    "train.eager": True})
params = {"loss": "dice_ce", "smooth": 1e-5, "dice_reduction": "batch", "dropout": 0.0,
    "l2": 0.0, "batch_norm": True, "base_filters": 8, "depth": 2, "lr": 1e-3,
    "schedule": "poly", "deep_supervision": False}

def weights(on):
    cfg = base.replace(**{"train.deterministic": on})
    return np.concatenate([w.ravel() for w in fit(params, split, cfg, seed=0).net.get_weights()])

def largest_difference(on, tries):  # the varying order is a race: off, it may tie once
    for _ in range(tries):
        a, b = weights(on), weights(on)
        if (diff := float(np.abs(a - b).max())) > 0:
            break
    return diff

for on, tries in ((False, 3), (True, 1), (False, 3)):
    print("on" if on else "off", largest_difference(on, tries))
"""


@pytest.mark.slow
def test_one_seed_trains_the_same_weights_only_when_deterministic() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    off, on, off_again = (float(line.split()[1]) for line in proc.stdout.splitlines())
    assert off > 0, "3 pairs of runs of one seed agreed without the setting: the test shows nothing"
    assert on == 0.0, proc.stdout
    assert off_again > 0, "the setting stayed on for the next configuration in the process"


def test_a_gpu_worker_sets_cublas_and_xla_before_its_backend_starts(monkeypatch) -> None:
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    env = reproducible.environment
    assert env("torch", on=True, gpu=True) == {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    assert env("jax", on=True, gpu=True) == {
        "XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_gpu_deterministic_ops=true"
    }
    assert env("tensorflow", on=True, gpu=True) == {}  # op determinism is switched at run time
    assert env("torch", on=True, gpu=False) == env("jax", on=False, gpu=True) == {}
