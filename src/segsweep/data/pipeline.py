"""tf.data input pipelines over arrays decoded once per worker.

Images and masks are decoded, resized and scaled once by :func:`segsweep.data.io.load_dataset`
and held in memory; every trial of a worker reuses them. Augmentation uses Keras 3 preprocessing
layers on ``{"images": ..., "segmentation_masks": ...}``: one random draw moves image and mask
together, and masks are resampled with nearest so they stay binary.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from segsweep.config import AugmentSettings

__all__ = ["augmenter", "train_dataset"]


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
) -> tf.data.Dataset:
    """Shuffled, batched, jointly augmented (image, mask) pairs; masks as float32 {0, 1}."""
    ds = tf.data.Dataset.from_tensor_slices((images, masks.astype(np.float32)))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    pipe = augmenter(augment, seed=seed)
    if pipe is not None:

        def joint(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            out = pipe({"images": x, "segmentation_masks": y}, training=True)
            return out["images"], out["segmentation_masks"]

        ds = ds.map(joint, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
