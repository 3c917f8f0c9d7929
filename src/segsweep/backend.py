"""Everything that differs between Keras' backends: TensorFlow, JAX and PyTorch.

A worker process calls :func:`prepare_worker` before Keras is imported (Keras reads
``KERAS_BACKEND`` once, at import; TensorFlow reads ``CUDA_VISIBLE_DEVICES`` and oneDNN once, JAX
its memory rule), then :func:`open_device` once it is. The rest answers what a trial records or
catches: whether a GPU is in use, the accelerator settings, and whether an error means out of
memory. Nothing in this module imports Keras or a backend at import time.

A JAX or PyTorch process cannot load TensorFlow even where it is installed (:func:`activate`):
Keras imports it when it can (``keras.utils.set_random_seed`` seeds it), which costs seconds and
memory, and the GPU machines the torch and JAX paths exist for have no TensorFlow at all. The
import hooks that keep TensorFlow out, or quiet, are :mod:`segsweep.imports`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from segsweep import reproducible
from segsweep.config import Config
from segsweep.errors import ConfigError, StudyError
from segsweep.imports import NoTensorFlow, quiet_tensorflow_start

__all__ = [
    "BACKENDS",
    "accelerator_settings",
    "activate",
    "choose_for_loading",
    "describe_device",
    "gpu_in_use",
    "is_out_of_memory",
    "onednn_enabled",
    "onednn_flag",
    "open_device",
    "prepare_worker",
    "requirement",
    "resolve",
]

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT = "tensorflow"  # train.backend's default, which an exported KERAS_BACKEND replaces


def resolve(setting: str) -> str:
    """The backend a process trains with: ``train.backend``, or an exported ``KERAS_BACKEND``
    when the setting is left at its default; a conflict between the two is an error."""
    exported = os.environ.get("KERAS_BACKEND", "")
    if exported and exported not in BACKENDS:
        raise ConfigError(
            f"KERAS_BACKEND must be one of {', '.join(BACKENDS)}. Got {exported!r} instead."
        )
    if exported and setting != DEFAULT and exported != setting:
        raise ConfigError(
            f"train.backend is {setting!r} but KERAS_BACKEND={exported} is exported: "
            "unset one or make them agree"
        )
    name = exported or setting
    if importlib.util.find_spec(name) is None:
        extra = "" if name == DEFAULT else f"[{name}]"
        raise ConfigError(
            f"the {name} backend is not installed here: pip install 'segsweep{extra}', or pick "
            f"another with train.backend ({', '.join(BACKENDS)})"
        )
    return name


def activate(
    name: str, *, gpu: bool = False, onednn: str = "auto", shared_cores: bool = False
) -> None:
    """Make this process train with backend ``name``; call before Keras is imported."""
    if "keras" in sys.modules:
        loaded = sys.modules["keras"].config.backend()
        if loaded != name:
            raise ConfigError(
                f"Keras is already loaded with the {loaded} backend in this process, so it "
                f"cannot train with {name}: export KERAS_BACKEND={name} before starting it"
            )
        return
    os.environ["KERAS_BACKEND"] = name
    if name == "tensorflow":
        flag = onednn_flag(onednn, gpu=gpu, shared_cores=shared_cores)
        if flag is not None and "tensorflow" not in sys.modules:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = flag
        # CPU processes: silence TensorFlow's C++ start-up chatter about missing CUDA drivers.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2" if gpu else "3"
        return
    if "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, NoTensorFlow())
    if name == "jax":
        # JAX takes 75 % of the GPU at start-up by default: two workers could not share one.
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"


def prepare_worker(
    name: str, *, gpu: str | None, onednn: str, shared_cores: bool, deterministic: bool = False
) -> None:
    """A worker's device and backend, before Keras is imported: ``gpu`` is a CUDA device id,
    or None for a CPU worker (then no GPU is visible to it at all)."""
    # The environment writes the style allows: before the backend is imported, which reads them.
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu if gpu is not None else "-1"
    os.environ.update(reproducible.environment(name, on=deterministic, gpu=gpu is not None))
    if name == "jax" and gpu is None:
        os.environ["JAX_PLATFORMS"] = "cpu"  # no probing for CUDA in a CPU worker
    quiet_tensorflow_start()
    activate(name, gpu=gpu is not None, onednn=onednn, shared_cores=shared_cores)


def choose_for_loading() -> None:
    """Before Keras loads only to predict: where TensorFlow is not installed and no backend is
    exported, use an installed one (a saved model predicts the same on any backend)."""
    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND"):
        return
    if importlib.util.find_spec("tensorflow") is not None:
        return
    for name in BACKENDS[1:]:
        if importlib.util.find_spec(name) is not None:
            activate(name, gpu=True)
            return


def _backend() -> str:
    import keras

    return keras.config.backend()


def _gpus() -> list[str]:
    """The GPUs the loaded backend sees, by name."""
    name = _backend()
    if name == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def open_device(gpu: str | None) -> str:
    """Check a GPU worker sees its GPU and let workers share it; returns the device's label."""
    name = _backend()
    if name == "tensorflow":
        import tensorflow as tf

        for device in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(device, True)  # --gpus 0,0 shares one
    seen = _gpus()
    if gpu is not None and not seen:
        extra = "gpu" if name == "tensorflow" else name
        shown = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}[name]
        raise StudyError(
            f"--gpus asked for GPU {gpu}, but {shown} sees no GPU there "
            f"(check nvidia-smi and that the segsweep[{extra}] extra is installed)"
        )
    return f"GPU {gpu}" if seen else "CPU"


def gpu_in_use() -> bool:
    return bool(_gpus())


def describe_device() -> str:
    gpus = _gpus()
    return gpus[0] if gpus else "CPU"


def accelerator_settings(cfg: Config) -> dict[str, Any]:
    """What a trial runs with, as recorded in its params (``train.*_used``).

    ``train.mixed_precision`` "auto" = on with a GPU. ``train.jit_compile`` "auto" follows
    Keras' own choice: on TensorFlow with a GPU (XLA is slower on the CPU), always on JAX (which
    otherwise dispatches op by op), never on torch (there it means ``torch.compile``, which
    would compile every trial's new model again). oneDNN is read back from TensorFlow, since the
    worker set it before TensorFlow loaded.
    """
    name, gpu = _backend(), gpu_in_use()
    pick = {"on": True, "off": False}
    jit_auto = {"tensorflow": gpu, "jax": True, "torch": False}[name]
    return {
        "backend": name,
        "mixed_precision": pick.get(cfg.train.mixed_precision, gpu),
        "jit_compile": pick.get(cfg.train.jit_compile, jit_auto),
        "onednn": onednn_enabled() if name == "tensorflow" else False,
    }


def onednn_flag(setting: str, *, gpu: bool, shared_cores: bool) -> str | None:
    """``TF_ENABLE_ONEDNN_OPTS`` for ``train.onednn``; None leaves TensorFlow's own choice.

    "auto" turns oneDNN on for CPU workers that share the machine's cores. Measured side by side
    (benchmarks/RESULTS.md, 2-core AVX2 CPU): oneDNN needs ~1.2x less CPU time per training
    image, which decides when workers compete for the cores, but keeps the cores less busy, so a
    lone process trains ~10 % slower by the clock than with TensorFlow's own kernels.
    """
    if setting != "auto":
        return {"on": "1", "off": "0"}[setting]
    return "1" if shared_cores and not gpu else None


def onednn_enabled() -> bool:
    """Whether this process's TensorFlow runs oneDNN kernels (fixed when TensorFlow loads)."""
    try:  # the only place TensorFlow answers it; private, hence the fallback
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is the loaded backend running out of (GPU) memory."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(err, tf.errors.ResourceExhaustedError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    # JAX raises XlaRuntimeError (JaxRuntimeError in newer releases) for every runtime failure
    jax_error = type(err).__module__.split(".")[0] in ("jax", "jaxlib")
    return jax_error and "RESOURCE_EXHAUSTED" in str(err)


def requirement() -> str:
    """The pip pin of the loaded backend's package, logged with a model."""
    from importlib.metadata import version

    name = _backend()
    return f"{name}=={version(name)}"
