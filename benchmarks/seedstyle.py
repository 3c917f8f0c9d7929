"""The seed case's input pipeline, rebuilt: Keras 2's ``ImageDataGenerator(...).flow(x, y)``.

``ImageDataGenerator`` is gone from Keras 3, so its behaviour is reimplemented here line for line
from ``keras_preprocessing.image``: for each image of a batch, one after the other on one thread,
draw a rotation in ±``rotation`` degrees, a shift of ±``shift`` of the height and of the width and
a coin for the horizontal flip, build one 3×3 affine matrix about the image centre and resample
every channel with ``scipy.ndimage.affine_transform`` (order 1, ``fill_mode="nearest"``), then
flip. As in ``flow(x, y)``, only the images are transformed; the masks pass through unchanged.
The batches come from a plain Python generator that ``model.fit`` consumes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage

__all__ = ["random_transform", "apply_transform", "flow"]


def random_transform(
    rng: np.random.Generator, shape: tuple[int, ...], *, rotation: float, shift: float, flip: bool
) -> dict[str, float | bool]:
    """``ImageDataGenerator.get_random_transform`` for rotation, shifts and horizontal flip."""
    theta = rng.uniform(-rotation, rotation) if rotation else 0.0
    tx = rng.uniform(-shift, shift) * shape[0] if shift else 0.0  # rows, as a fraction < 1
    ty = rng.uniform(-shift, shift) * shape[1] if shift else 0.0
    return {"theta": theta, "tx": tx, "ty": ty, "flip": bool(flip and rng.random() < 0.5)}


def _offset_center(matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    o_x, o_y = height / 2 + 0.5, width / 2 + 0.5
    offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return offset @ matrix @ reset


def apply_transform(image: np.ndarray, params: dict[str, float | bool]) -> np.ndarray:
    """``apply_affine_transform`` (order 1, nearest fill) then ``flip_axis`` on one HWC image."""
    theta = np.deg2rad(params["theta"])
    rot = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    move = np.array([[1, 0, params["tx"]], [0, 1, params["ty"]], [0, 0, 1]])
    matrix = _offset_center(rot @ move, image.shape[0], image.shape[1])
    out = np.stack(
        [
            ndimage.affine_transform(
                image[..., c], matrix[:2, :2], matrix[:2, 2], order=1, mode="nearest", cval=0.0
            )
            for c in range(image.shape[-1])
        ],
        axis=-1,
    )
    return out[:, ::-1] if params["flip"] else out


def flow(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    rotation: float,
    shift: float,
    flip: bool,
    seed: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless shuffled batches, images augmented one by one, masks untouched (``flow(x, y)``)."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(x) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            batch = np.zeros((len(index), *x.shape[1:]), np.float32)
            for i, j in enumerate(index):
                params = random_transform(
                    rng, x.shape[1:], rotation=rotation, shift=shift, flip=flip
                )
                batch[i] = apply_transform(x[j].astype(np.float32), params)
            yield batch, y[index].astype(np.float32)
