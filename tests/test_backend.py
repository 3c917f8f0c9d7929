"""segsweep.backend and the TensorFlow-free input pipeline, in this process (any backend)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from segsweep import backend
from segsweep.config import AugmentSettings
from segsweep.data.pipeline import JointBatches
from segsweep.errors import ConfigError, SegsweepError


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backend counts as installed, so the rules are tested wherever the suite runs."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name in backend.BACKENDS else real(name, *a),
    )


@pytest.mark.parametrize(
    ("setting", "exported", "used"),
    [
        ("tensorflow", None, "tensorflow"),
        ("jax", None, "jax"),
        ("tensorflow", "torch", "torch"),  # the default gives way to an exported backend
        ("jax", "jax", "jax"),
    ],
)
def test_the_backend_is_the_setting_or_an_exported_one_in_place_of_the_default(
    installed: None, monkeypatch: pytest.MonkeyPatch, setting: str, exported: str, used: str
) -> None:
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    if exported:
        monkeypatch.setenv("KERAS_BACKEND", exported)
    assert backend.resolve(setting) == used


def test_an_exported_backend_that_contradicts_the_setting_is_an_error_naming_both(
    installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    with pytest.raises(ConfigError, match="train.backend is 'jax' but KERAS_BACKEND=torch"):
        backend.resolve("jax")
    monkeypatch.setenv("KERAS_BACKEND", "mxnet")
    with pytest.raises(ConfigError, match="Got 'mxnet' instead"):
        backend.resolve("tensorflow")


def test_a_backend_that_is_not_installed_is_an_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a)
    )
    with pytest.raises(SegsweepError, match=r"pip install 'segsweep\[jax\]'"):
        backend.resolve("jax")


def _jax_like_error(message: str) -> Exception:
    kind = type("XlaRuntimeError", (RuntimeError,), {"__module__": "jaxlib._jax"})
    return kind(message)


def test_each_backends_out_of_memory_error_is_recognised_and_nothing_else() -> None:
    assert backend.is_out_of_memory(_jax_like_error("RESOURCE_EXHAUSTED: Out of memory"))
    assert not backend.is_out_of_memory(_jax_like_error("INTERNAL: something else"))
    assert not backend.is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED"))  # not JAX's
    assert not backend.is_out_of_memory(ValueError("shapes"))
    if importlib.util.find_spec("tensorflow"):
        import tensorflow as tf

        assert backend.is_out_of_memory(tf.errors.ResourceExhaustedError(None, None, "OOM"))
    if importlib.util.find_spec("torch"):
        import torch

        assert backend.is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))


def _pairs(n: int = 6, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Square lesions, and images equal to their masks: one warp of both keeps them alike."""
    masks = np.zeros((n, size, size, 1), np.uint8)
    for i in range(n):
        masks[i, 4 + i : 16 + i, 8 : 8 + 2 + 2 * i] = 1  # a different lesion in every image
    return masks.astype(np.float32), masks


def test_one_random_draw_moves_image_and_mask_and_masks_stay_binary() -> None:
    images, masks = _pairs()
    aug = AugmentSettings(flip=True, rotation=20.0, shift=0.2, zoom=0.2)
    batches = JointBatches(images, masks, batch_size=4, augment=aug, seed=1)
    assert len(batches) == 2  # the short last batch is kept, as tf.data's batch does
    moved = 0
    for i in range(len(batches)):
        x, y = batches[i]
        assert x.dtype == y.dtype == np.float32 and set(np.unique(y)) <= {0.0, 1.0}
        # the image was the mask: where the warped mask is lesion, the warped image is bright
        assert x[y == 1].mean() > 0.8 and x[y == 0].mean() < 0.1
        moved += int(not np.array_equal(y, masks[batches.order[i * 4 : i * 4 + 4]]))
    assert moved  # the augmentation did change something


def test_batches_cover_every_image_once_and_reshuffle_each_epoch() -> None:
    images, masks = _pairs(n=10)
    none = AugmentSettings(flip=False, rotation=0.0, shift=0.0, zoom=0.0)
    batches = JointBatches(images, masks, batch_size=4, augment=none, seed=0)
    first = batches.order.copy()
    seen = np.concatenate([batches[i][1] for i in range(len(batches))])
    assert sorted(seen.reshape(10, -1).sum(axis=1)) == sorted(masks.reshape(10, -1).sum(axis=1))
    batches.on_epoch_end()
    assert sorted(batches.order) == list(range(10)) and not np.array_equal(batches.order, first)


def test_a_process_whose_keras_runs_another_backend_cannot_switch() -> None:
    import keras

    loaded = keras.config.backend()
    other = next(b for b in backend.BACKENDS if b != loaded)
    with pytest.raises(ConfigError, match=f"already loaded with the {loaded} backend"):
        backend.activate(other)
    backend.activate(loaded)  # the backend it runs: nothing to do
