"""Native-resolution patches: random training patches with lesion oversampling, and prediction
of a whole image by overlapping windows blended with Gaussian weights.

Both as nnU-Net and MONAI do them, in numpy only. Training: a share of each batch is centred on
a lesion pixel (nnU-Net's foreground oversampling), the rest placed uniformly; a patch that
would leave the image is moved back inside it, and an image smaller than the patch is padded
with zeros (its mask with background). Prediction (MONAI's ``sliding_window_inference``,
nnU-Net's ``predict_sliding_window``): windows a half-window apart, the last flush with the
image's edge, each window's prediction weighted by a Gaussian of sigma = window / 8 centred
on it, so every pixel takes most from the windows that see it near their centre.

:func:`predict_images` is the one way segsweep predicts images, whole or by windows: training's
validation, finalize, ``predict`` and the champion all call it with their model's batch
prediction. Native-resolution images of different sizes are held in one :func:`canvas`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "PatchSampler",
    "canvas",
    "crop",
    "fixed_batches",
    "gaussian_weights",
    "predict_images",
    "regions",
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


class _Blend:
    """One image's windows and the Gaussian-weighted sum of their predictions so far."""

    def __init__(self, image: np.ndarray, window: int, overlap: float) -> None:
        h, w = image.shape[:2]
        pad_h, pad_w = max(window - h, 0), max(window - w, 0)
        self.top, self.left, self.size = pad_h // 2, pad_w // 2, (h, w)
        extra = [(0, 0)] * (image.ndim - 2)
        pads = ((self.top, pad_h - self.top), (self.left, pad_w - self.left), *extra)
        self.padded = np.pad(image, pads)
        ph, pw = self.padded.shape[:2]
        self.corners = [
            (r, c)
            for r in window_starts(ph, window, overlap)
            for c in window_starts(pw, window, overlap)
        ]
        self.window, self.total, self.weight_sum = window, None, np.zeros((ph, pw), np.float32)

    def tile(self, r: int, c: int) -> np.ndarray:
        return self.padded[r : r + self.window, c : c + self.window]

    def add(self, r: int, c: int, prob: np.ndarray, weights: np.ndarray) -> None:
        if self.total is None:
            self.total = np.zeros((*self.weight_sum.shape, *prob.shape[2:]), np.float32)
        win = self.window
        self.total[r : r + win, c : c + win] += (
            weights.reshape(win, win, *[1] * (prob.ndim - 2)) * prob
        )
        self.weight_sum[r : r + win, c : c + win] += weights

    def result(self) -> np.ndarray:
        denominator = self.weight_sum.reshape(*self.weight_sum.shape, *[1] * (self.total.ndim - 2))
        h, w = self.size
        return (self.total / denominator)[self.top : self.top + h, self.left : self.left + w]


def _probabilities(predict: Predict, batch: np.ndarray) -> np.ndarray:
    probs = np.asarray(predict(batch), dtype=np.float32)
    return probs[..., 0] if probs.ndim == 4 and probs.shape[-1] == 1 else probs


def _by_windows(
    images: Sequence[np.ndarray],
    predict: Predict,
    *,
    window: int,
    batch_size: int,
    overlap: float,
    sigma_scale: float,
) -> list[np.ndarray]:
    """Every image's windows, ``batch_size`` at a time across images (a batch is not left
    half empty at each image's end), each blended back into its own image."""
    blends = [_Blend(image, window, overlap) for image in images]
    jobs = [(b, r, c) for b in blends for r, c in b.corners]
    weights = gaussian_weights(window, sigma_scale)
    for first in range(0, len(jobs), batch_size):
        chunk = jobs[first : first + batch_size]
        probs = _probabilities(predict, np.stack([b.tile(r, c) for b, r, c in chunk]))
        for (blend, r, c), prob in zip(chunk, probs, strict=True):
            blend.add(r, c, prob, weights)
    return [b.result() for b in blends]


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
    return _by_windows(
        [image],
        predict,
        window=window,
        batch_size=batch_size,
        overlap=overlap,
        sigma_scale=sigma_scale,
    )[0]


def predict_images(
    predict: Predict, images: Sequence[np.ndarray], *, window: int, batch_size: int
) -> list[np.ndarray]:
    """The lesion probability of each prepared (H, W, C) image, as (H, W): the one way a model
    predicts images, in training's validation, finalize, ``predict`` and the champion.

    ``window`` 0: the images are the model's squares and go to ``predict`` whole,
    ``batch_size`` at a time. ``window`` > 0 (``data.patch_size``): each image, at its own size,
    by overlapping windows a half-window apart blended with Gaussian weights of sigma =
    window / 8 (:func:`sliding_window_predict`), windows of all images batched together.
    """
    if window:
        return _by_windows(
            images, predict, window=window, batch_size=batch_size, overlap=0.5, sigma_scale=1 / 8
        )
    out: list[np.ndarray] = []
    for first in range(0, len(images), batch_size):
        out.extend(_probabilities(predict, np.stack(images[first : first + batch_size])))
    return out


def fixed_batches(predict: Predict, batch_size: int) -> Predict:
    """``predict`` fed batches of exactly ``batch_size``, a short one padded with zeros and
    its padding dropped: one compiled graph serves every call (a Keras model traces another
    for each new batch shape)."""

    def padded(batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        if n >= batch_size:
            return predict(batch)
        filler = np.zeros((batch_size - n, *batch.shape[1:]), batch.dtype)
        return np.asarray(predict(np.concatenate([batch, filler])))[:n]

    return padded


def canvas(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """(H, W, ...) arrays of possibly different sizes stacked as (N, max H, max W, ...), each
    in the top-left corner, zeros around it: native-resolution images kept in one array (its
    own region is ``array[:h, :w]``)."""
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    h = max(a.shape[0] for a in arrays)
    w = max(a.shape[1] for a in arrays)
    out = np.zeros((len(arrays), h, w, *arrays[0].shape[2:]), arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0], : a.shape[1]] = a
    return out


def regions(stacked: np.ndarray, sizes: Sequence[tuple[int, int]] | None) -> list[np.ndarray]:
    """Each image's own (h, w) region of a :func:`canvas` (views); all of each without sizes."""
    if sizes is None:
        return list(stacked)
    return [a[:h, :w] for a, (h, w) in zip(stacked, sizes, strict=True)]


def tiles_needed(height: int, width: int, window: int, overlap: float = 0.5) -> int:
    """How many windows :func:`sliding_window_predict` runs on an image of that size."""
    rows = len(window_starts(max(height, window), window, overlap))
    return rows * len(window_starts(max(width, window), window, overlap))
