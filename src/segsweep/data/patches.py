"""Native-resolution patches: random training patches with lesion oversampling, and prediction
of a whole image by overlapping windows blended with Gaussian weights.

Both as nnU-Net and MONAI do them, in numpy only. Training: a share of each batch is centred on
a lesion pixel (nnU-Net's foreground oversampling), the rest placed uniformly; a patch that
would leave the image is moved back inside it, and an image smaller than the patch is padded
with zeros (its mask with background). Prediction (MONAI's ``sliding_window_inference``,
nnU-Net's ``predict_sliding_window``): windows a half-window apart, the last flush with the
image's edge, each window's prediction weighted by a Gaussian of sigma = window / 8 centred
on it, so every pixel takes most from the windows that see it near their centre.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "PatchSampler",
    "crop",
    "gaussian_weights",
    "sliding_window_predict",
    "tiles_needed",
    "window_starts",
]

Predict = Callable[[np.ndarray], np.ndarray]  # (B, p, p, C) -> (B, p, p) or (B, p, p, K)


def crop(array: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """``array[top:top+size, left:left+size]``, zero beyond the array's edges."""
    out = np.zeros((size, size, *array.shape[2:]), array.dtype)
    h, w = array.shape[:2]
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + size, h), min(left + size, w)
    if r1 > r0 and c1 > c0:
        out[r0 - top : r1 - top, c0 - left : c1 - left] = array[r0:r1, c0:c1]
    return out


def _start(centre: int, length: int, size: int) -> int:
    """The first row (or column) of a patch centred on ``centre``, moved inside the image; an
    image shorter than the patch is centred in it."""
    if length <= size:
        return -((size - length) // 2)
    return min(max(centre - size // 2, 0), length - size)


class PatchSampler:
    """Random ``size`` x ``size`` patches of images at their own sizes.

    ``images``: (H, W, C) arrays, ``masks``: (H, W) arrays of {0, 1}, sizes may differ between
    pairs. In each batch the last ``round(oversample * n)`` patches are centred on a lesion
    pixel drawn uniformly from a random image with lesion; the others lie uniformly at random.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        *,
        size: int,
        oversample: float,
        seed: int,
    ) -> None:
        if len(images) != len(masks) or not len(images):
            raise ValueError(f"need as many masks as images, at least one; got {len(images)}")
        if not 0.0 <= oversample <= 1.0:
            raise ValueError(f"oversample must be in [0, 1]; got {oversample}")
        self.images, self.masks, self.size = images, masks, size
        self.oversample = oversample
        self.rng = np.random.default_rng(seed)
        # flat indices of each image's lesion pixels, found once
        self.lesion_pixels = [np.flatnonzero(m) for m in masks]
        self.with_lesion = [i for i, px in enumerate(self.lesion_pixels) if px.size]

    def _corner(self, i: int, on_lesion: bool) -> tuple[int, int]:
        h, w = self.masks[i].shape
        if on_lesion:
            r, c = divmod(int(self.rng.choice(self.lesion_pixels[i])), w)
        else:  # a centre anywhere a whole patch fits, so every position is equally likely
            half = self.size // 2
            r = int(self.rng.integers(half, max(h - self.size, 0) + half + 1))
            c = int(self.rng.integers(half, max(w - self.size, 0) + half + 1))
        return _start(r, h, self.size), _start(c, w, self.size)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` patches: images (n, size, size, C) and masks (n, size, size)."""
        forced = round(self.oversample * n) if self.with_lesion else 0
        xs, ys = [], []
        for k in range(n):
            on_lesion = k >= n - forced
            pool = self.with_lesion if on_lesion else range(len(self.images))
            i = int(self.rng.choice(pool))
            top, left = self._corner(i, on_lesion)
            xs.append(crop(self.images[i], top, left, self.size))
            ys.append(crop(self.masks[i], top, left, self.size))
        return np.stack(xs), np.stack(ys)


def gaussian_weights(size: int, sigma_scale: float = 1 / 8) -> np.ndarray:
    """(size, size) weights: a Gaussian of sigma = ``sigma_scale`` * size centred on the window
    (at (size - 1) / 2, so both halves are alike), 1 at the centre; its smallest values are
    raised to the least positive one so no pixel's total weight is 0 (as MONAI and nnU-Net)."""
    sigma = sigma_scale * size
    axis = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    weights = np.outer(axis, axis)
    return np.maximum(weights / weights.max(), weights[weights > 0].min()).astype(np.float32)


def window_starts(length: int, window: int, overlap: float = 0.5) -> list[int]:
    """Starts of windows covering ``length``: ``(1 - overlap) * window`` apart, the last one
    flush with the end; one window at 0 when the window covers it all."""
    if length <= window:
        return [0]
    step = max(1, int(window * (1 - overlap)))
    starts = list(range(0, length - window, step))
    return [*starts, length - window]


def sliding_window_predict(
    image: np.ndarray,
    predict: Predict,
    *,
    window: int,
    batch_size: int = 8,
    overlap: float = 0.5,
    sigma_scale: float = 1 / 8,
) -> np.ndarray:
    """``predict`` over ``window`` x ``window`` tiles of an (H, W, C) image, blended with
    Gaussian weights: (H, W) probabilities (or (H, W, K) when ``predict`` returns K channels).

    An image smaller than the window is padded with zeros around it, and the padding is cropped
    off the result. Windows go to ``predict`` ``batch_size`` at a time.
    """
    h, w = image.shape[:2]
    pad_h, pad_w = max(window - h, 0), max(window - w, 0)
    top, left = pad_h // 2, pad_w // 2
    padded = np.pad(image, ((top, pad_h - top), (left, pad_w - left), *[(0, 0)] * (image.ndim - 2)))
    ph, pw = padded.shape[:2]
    corners = [
        (r, c)
        for r in window_starts(ph, window, overlap)
        for c in window_starts(pw, window, overlap)
    ]
    weights = gaussian_weights(window, sigma_scale)
    total = weight_sum = None
    for first in range(0, len(corners), batch_size):
        chunk = corners[first : first + batch_size]
        tiles = np.stack([padded[r : r + window, c : c + window] for r, c in chunk])
        probs = np.asarray(predict(tiles), dtype=np.float32)
        if probs.ndim == 4 and probs.shape[-1] == 1:
            probs = probs[..., 0]
        if total is None:
            total = np.zeros((ph, pw, *probs.shape[3:]), np.float32)
            weight_sum = np.zeros((ph, pw), np.float32)
        for (r, c), prob in zip(chunk, probs, strict=True):
            w_tile = weights.reshape(window, window, *[1] * (prob.ndim - 2))
            total[r : r + window, c : c + window] += w_tile * prob
            weight_sum[r : r + window, c : c + window] += weights
    denominator = weight_sum.reshape(ph, pw, *[1] * (total.ndim - 2))
    return (total / denominator)[top : top + h, left : left + w]


def tiles_needed(height: int, width: int, window: int, overlap: float = 0.5) -> int:
    """How many windows :func:`sliding_window_predict` runs on an image of that size."""
    rows = len(window_starts(max(height, window), window, overlap))
    return rows * len(window_starts(max(width, window), window, overlap))
