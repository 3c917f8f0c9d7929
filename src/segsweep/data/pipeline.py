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

With ``data.patch_size`` the images are at their own resolution and every batch is drawn anew by
:class:`~segsweep.data.patches.PatchSampler` (random patches, a share centred on lesion), then
augmented the same way, endlessly (:func:`patch_dataset`): on TensorFlow a ``tf.data`` generator
whose augmentation runs in parallel with training, elsewhere :class:`PatchBatches`.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from segsweep.config import AugmentSettings
from segsweep.data.patches import PatchSampler, regions

__all__ = [
    "JointBatches",
    "PatchBatches",
    "augmenter",
    "epoch_order",
    "patch_dataset",
    "tf_dataset",
    "train_dataset",
]


def epoch_order(
    has_lesion: np.ndarray, *, batch_size: int, share: float, rng: np.random.Generator
) -> np.ndarray:
    """One epoch's row order: a permutation, or, with ``share`` > 0, batches whose last
    ``ceil(share * batch_size)`` rows are drawn from the rows with lesion (nnU-Net's foreground
    oversampling), the rest uniformly from every row. Most slices of a volume hold no lesion;
    uniform batches would teach the model mostly background."""
    n = len(has_lesion)
    lesion_rows = np.flatnonzero(has_lesion)
    if share <= 0 or lesion_rows.size == 0:
        return rng.permutation(n)
    forced = math.ceil(share * batch_size)
    order = rng.integers(0, n, size=(math.ceil(n / batch_size), batch_size))
    order[:, batch_size - forced :] = rng.choice(lesion_rows, size=(order.shape[0], forced))
    return order.ravel()  # whole batches: ceil(n / batch_size) of them, as without


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
    lesion_oversample: float = 0.0,
) -> Any:
    """Shuffled, batched, jointly augmented (image, mask) pairs; masks as float32 {0, 1}:
    ``tf.data`` on TensorFlow, :class:`JointBatches` on the other backends. With
    ``lesion_oversample``, each batch holds at least that share of images with lesion."""
    make = tf_dataset if keras.config.backend() == "tensorflow" else JointBatches
    return make(
        images,
        masks,
        batch_size=batch_size,
        augment=augment,
        seed=seed,
        lesion_oversample=lesion_oversample,
    )


def tf_dataset(
    images: np.ndarray,
    masks: np.ndarray,
    *,
    batch_size: int,
    augment: AugmentSettings,
    seed: int,
    lesion_oversample: float = 0.0,
) -> Any:
    """The pipeline as a ``tf.data.Dataset`` (TensorFlow only)."""
    import tensorflow as tf

    if lesion_oversample > 0:
        ds = _oversampled(images, masks, batch_size, lesion_oversample, seed)
    else:
        ds = tf.data.Dataset.from_tensor_slices((images, masks.astype(np.float32)))
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return _tf_augmented(ds.batch(batch_size), augmenter(augment, seed=seed))


def _tf_augmented(ds: Any, pipe: keras.layers.Pipeline | None) -> Any:
    """Batches of ``ds`` jointly augmented in parallel, prefetched."""
    import tensorflow as tf

    if pipe is not None:

        def joint(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            out = pipe({"images": x, "segmentation_masks": y}, training=True)
            return out["images"], out["segmentation_masks"]

        ds = ds.map(joint, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _oversampled(images, masks, batch_size: int, share: float, seed: int) -> Any:  # noqa: ANN001
    """Rows in :func:`epoch_order`, drawn anew each epoch (the generator restarts)."""
    import tensorflow as tf

    has_lesion = masks.reshape(len(masks), -1).max(axis=1) > 0
    rng = np.random.default_rng(seed)
    x, y = tf.constant(images), tf.constant(masks.astype(np.float32))

    def rows():  # noqa: ANN202
        yield from epoch_order(has_lesion, batch_size=batch_size, share=share, rng=rng)

    order = tf.data.Dataset.from_generator(rows, output_signature=tf.TensorSpec((), tf.int64))
    # a generator's length is unknown to Keras, which then reads "ran out of data" into the
    # second epoch; every epoch is ceil(n / batch_size) whole batches
    length = math.ceil(len(images) / batch_size) * batch_size
    order = order.apply(tf.data.experimental.assert_cardinality(length))
    return order.map(lambda i: (tf.gather(x, i), tf.gather(y, i)))


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
        lesion_oversample: float = 0.0,
    ) -> None:
        super().__init__()
        self.images, self.masks = images, masks.astype(np.float32)
        self.batch_size, self.share = batch_size, lesion_oversample
        self.has_lesion = masks.reshape(len(masks), -1).max(axis=1) > 0
        self.pipe = augmenter(augment, seed=seed)
        self._rng = np.random.default_rng(seed)
        self.order = self._draw()

    def _draw(self) -> np.ndarray:
        if self.share <= 0:
            return self._rng.permutation(len(self.images))
        return epoch_order(
            self.has_lesion, batch_size=self.batch_size, share=self.share, rng=self._rng
        )

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return _joint(self.pipe, self.images[rows], self.masks[rows])

    def on_epoch_end(self) -> None:
        self.order = self._draw()


def _joint(pipe: keras.layers.Pipeline | None, x: np.ndarray, y: np.ndarray) -> tuple:
    """Image and float mask augmented by one draw, as channels of one tensor; the mask
    thresholded back to {0, 1}."""
    if pipe is None:
        return x, y
    channels = x.shape[-1]
    both = keras.ops.convert_to_numpy(pipe(np.concatenate([x, y], axis=-1), training=True))
    return both[..., :channels], (both[..., channels:] > 0.5).astype(np.float32)


def patch_dataset(
    images: np.ndarray,
    masks: np.ndarray,
    sizes: tuple | None,
    *,
    patch_size: int,
    batch_size: int,
    steps: int,
    augment: AugmentSettings,
    seed: int,
    lesion_oversample: float,
) -> Any:
    """Endless batches of random ``patch_size`` patches of images at their own resolution
    (``sizes``: each image's region of the canvas; None: all of it), a share
    ``lesion_oversample`` centred on a lesion pixel, jointly augmented; ``steps`` make an epoch
    (the length Keras is given with a :class:`PatchBatches`)."""
    sampler = PatchSampler(
        regions(images, sizes),
        [m[..., 0] for m in regions(masks, sizes)],
        size=patch_size,
        oversample=lesion_oversample,
        seed=seed,
    )
    pipe = augmenter(augment, seed=seed)
    if keras.config.backend() != "tensorflow":
        return PatchBatches(sampler, batch_size=batch_size, steps=steps, pipe=pipe)
    import tensorflow as tf

    def draws():  # noqa: ANN202 - sampled in tf.data's thread while the model trains
        while True:
            x, y = sampler.batch(batch_size)
            yield x.astype(np.float32), y[..., None].astype(np.float32)

    shape = (batch_size, patch_size, patch_size)
    spec = (
        tf.TensorSpec((*shape, images.shape[-1]), tf.float32),
        tf.TensorSpec((*shape, 1), tf.float32),
    )
    return _tf_augmented(tf.data.Dataset.from_generator(draws, output_signature=spec), pipe)


class PatchBatches(keras.utils.PyDataset):
    """:func:`patch_dataset` as a ``PyDataset`` (JAX, torch): ``steps`` batches an epoch, each a
    fresh draw of ``sampler`` whatever its index, augmented as :class:`JointBatches` does."""

    def __init__(
        self,
        sampler: PatchSampler,
        *,
        batch_size: int,
        steps: int,
        pipe: keras.layers.Pipeline | None,
    ) -> None:
        super().__init__()
        self.sampler, self.batch_size, self.steps, self.pipe = sampler, batch_size, steps, pipe

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.sampler.batch(self.batch_size)
        return _joint(self.pipe, x.astype(np.float32), y[..., None].astype(np.float32))
