"""``train.deterministic``: the same seed trains the same model, on every backend.

Seeds alone do not make a trial repeatable. TensorFlow's multi-threaded CPU kernels (the
convolution weight gradients, the reductions) add their partial sums in whatever order the
threads finish, and cuDNN, cuBLAS and XLA pick GPU kernels that do the same, so two runs of one
seed drift apart from the first step; at ~100 optimizer steps one phantom seed's best Dice moved
by 0.1 between runs (benchmarks/RESULTS.md, section 10). Each backend has its own switch:

- TensorFlow: ``tf.config.experimental.enable_op_determinism`` (kernels and ``tf.data``);
- PyTorch: ``torch.use_deterministic_algorithms``; on a GPU cuBLAS also needs
  ``CUBLAS_WORKSPACE_CONFIG`` before it starts (:func:`environment`);
- JAX: XLA is deterministic on the CPU; on a GPU ``--xla_gpu_deterministic_ops`` before start.
"""

from __future__ import annotations

import os

__all__ = ["apply", "environment"]

CUBLAS_WORKSPACE = ":4096:8"  # the value PyTorch's reproducibility notes give
XLA_GPU_FLAG = "--xla_gpu_deterministic_ops=true"


def environment(name: str, *, on: bool, gpu: bool) -> dict[str, str]:
    """What a GPU worker's environment needs before backend ``name`` starts (cuBLAS and XLA read
    it once); nothing on the CPU or with the setting off. Imports no backend."""
    if not (on and gpu):
        return {}
    if name == "torch":
        return {"CUBLAS_WORKSPACE_CONFIG": CUBLAS_WORKSPACE}
    if name == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        return {} if XLA_GPU_FLAG in flags else {"XLA_FLAGS": f"{flags} {XLA_GPU_FLAG}".strip()}
    return {}


def apply(on: bool) -> None:
    """Turn the loaded backend's deterministic kernels on or off for the trials that follow
    (off again matters where one process trains several configurations, as tests do)."""
    import keras

    name = keras.config.backend()
    if name == "tensorflow":
        _tensorflow(on)
    elif name == "torch":
        import torch

        # warn_only: nearest-neighbour upsampling's CUDA gradient, on UNet++'s every decoder
        # path, has no deterministic kernel; failing every torch GPU trial would be worse than
        # a warning in the worker's log that one op still varies
        torch.use_deterministic_algorithms(on, warn_only=True)
        if on:  # cuDNN's autotuner may pick a different kernel per run
            torch.backends.cudnn.benchmark = False


def _tensorflow(on: bool) -> None:
    import tensorflow as tf

    if on:
        tf.config.experimental.enable_op_determinism()
        return
    # TensorFlow has no public switch back (2.21); its config module has the private one
    from tensorflow.python.framework import config as tf_config

    if tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()
