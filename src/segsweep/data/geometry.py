"""Between an image's own grid and the model's square: where a prediction goes back.

Training squares every image (:func:`~segsweep.data.io.content_box` says where it lies in the
square); ``predict``, the champion and finalize's test scoring all map the model's (S, S)
probability back to each image's original (H, W) the same way, so they live here, below all
three.
"""

from __future__ import annotations

import numpy as np

from segsweep.data.io import content_box, resize_plane

__all__ = ["area_scale", "to_original"]


def to_original(
    prob: np.ndarray, size: tuple[int, int], *, resize: str, threshold: float
) -> np.ndarray:
    """A square (S, S) probability map -> the {0, 255} mask of an image of ``size`` (H, W); one
    predicted at the image's own size (by windows) is only thresholded."""
    if prob.shape == tuple(size):
        return np.where(prob > threshold, 255, 0).astype(np.uint8)
    top, left, h, w = content_box(*size, prob.shape[0], resize)
    inside = prob[top : top + h, left : left + w]
    return np.where(resize_plane(inside, *size) > threshold, 255, 0).astype(np.uint8)


def area_scale(size: tuple[int, int], image_size: int | None, resize: str) -> float:
    """How many of an image's own pixels one model pixel covers (an area ratio; 1 at the
    image's own size, ``image_size`` None).

    >>> area_scale((64, 64), 32, "stretch")
    4.0
    """
    _, _, h, w = content_box(*size, image_size, resize)
    return size[0] * size[1] / (h * w)
