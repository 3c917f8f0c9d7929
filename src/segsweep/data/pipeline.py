"""Training input pipelines over arrays decoded once per worker.

Images and masks are decoded, resized and scaled once by :func:`segsweep.data.io.load_dataset`
and held in memory; every trial of a worker reuses them. Augmentation uses Keras 3 preprocessing
layers on ``{"images": ..., "segmentation_masks": ...}``: one random draw moves image and mask
together, and masks are resampled with nearest so they stay binary.

On TensorFlow the batches come from ``tf.data`` (augmented in parallel with training); on JAX
and torch, which may run where TensorFlow is not installed, from a ``keras.utils.PyDataset``
that calls the same layers on image and mask stacked as channels of one tensor, the mask
thresholded back to {0, 1} at 0.5 (as nearest would keep it, up to boundary pixels): in Keras
3.15 the dictionary form rotates masks differently from images on torch. Both reshuffle every
epoch.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from segsweep.config import AugmentSettings

__all__ = ["JointBatches", "augmenter", "tf_dataset", "train_dataset"]


def augmenter(aug: AugmentSettings, *, seed: int) -> keras.layers.Pipeline | None:
    """The joint image/mask augmentation, or None when every transform is off."""
    layers: list[keras.layers.Layer] = []
    if aug.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if aug.rotation > 0:
        layers.append(
            keras.layers.RandomRotation(aug.rotation / 360.0, fill_mode="constant", seed=seed + 1)
        )
    if aug.shift > 0:
        layers.append(
            keras.layers.RandomTranslation(
                aug.shift, aug.shift, fill_mode="constant", seed=seed + 2
            )
        )
    if aug.zoom > 0:
        layers.append(keras.layers.RandomZoom(aug.zoom, fill_mode="constant", seed=seed + 3))
    return keras.layers.Pipeline(layers) if layers else None


def train_dataset(
    images: np.ndarray,
    masks: np.ndarray,
    *,
    batch_size: int,
    augment: AugmentSettings,
    seed: int,
) -> Any:
    """Shuffled, batched, jointly augmented (image, mask) pairs; masks as float32 {0, 1}:
    ``tf.data`` on TensorFlow, :class:`JointBatches` on the other backends."""
    make = tf_dataset if keras.config.backend() == "tensorflow" else JointBatches
    return make(images, masks, batch_size=batch_size, augment=augment, seed=seed)


def tf_dataset(
    images: np.ndarray,
    masks: np.ndarray,
    *,
    batch_size: int,
    augment: AugmentSettings,
    seed: int,
) -> Any:
    """The pipeline as a ``tf.data.Dataset`` (TensorFlow only)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, masks.astype(np.float32)))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    pipe = augmenter(augment, seed=seed)
    if pipe is not None:

        def joint(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            out = pipe({"images": x, "segmentation_masks": y}, training=True)
            return out["images"], out["segmentation_masks"]

        ds = ds.map(joint, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


class JointBatches(keras.utils.PyDataset):
    """The pipeline as a ``PyDataset``: any backend, no TensorFlow needed.

    Each batch is a slice of a permutation drawn again at every epoch's end; the augmentation
    layers get image and mask as channels of one tensor, so one random draw moves both the same.
    """

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        *,
        batch_size: int,
        augment: AugmentSettings,
        seed: int,
    ) -> None:
        super().__init__()
        self.images, self.masks = images, masks.astype(np.float32)
        self.batch_size = batch_size
        self.pipe = augmenter(augment, seed=seed)
        self._rng = np.random.default_rng(seed)
        self.order = self._rng.permutation(len(images))

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        x, y = self.images[rows], self.masks[rows]
        if self.pipe is None:
            return x, y
        channels = x.shape[-1]
        both = self.pipe(np.concatenate([x, y], axis=-1), training=True)
        both = keras.ops.convert_to_numpy(both)
        return both[..., :channels], (both[..., channels:] > 0.5).astype(np.float32)

    def on_epoch_end(self) -> None:
        self.order = self._rng.permutation(len(self.images))
