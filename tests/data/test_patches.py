"""Native-resolution patches: random patches with lesion oversampling, sliding-window prediction
with Gaussian blending."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from segsweep.data.patches import (
    PatchSampler,
    canvas,
    crop,
    fixed_batches,
    gaussian_weights,
    predict_images,
    regions,
    sliding_window_predict,
    tiles_needed,
    window_starts,
)


def coordinates(h: int, w: int, start: int = 1) -> np.ndarray:
    """An (h, w, 1) image whose pixel values say where they are: start + row * w + column."""
    return (start + np.arange(h * w, dtype=np.float32).reshape(h, w, 1)).copy()


def nonlinear(batch: np.ndarray) -> np.ndarray:
    """A stand-in network that sees its neighbours and its window's border (zero-padded 5x5 mean,
    then a sigmoid): its output for a pixel depends on where the window lies."""
    smoothed = uniform_filter(batch[..., 0], size=(1, 5, 5), mode="constant")
    return 1 / (1 + np.exp(-(smoothed - smoothed.mean())))


# ---- sliding window --------------------------------------------------------------------------


def test_a_window_covering_the_image_reproduces_the_whole_image_prediction() -> None:
    image = np.random.default_rng(0).random((48, 48, 1), dtype=np.float32)
    whole = nonlinear(image[None])[0]
    blended = sliding_window_predict(image, nonlinear, window=48)
    np.testing.assert_allclose(blended, whole, rtol=0, atol=1e-6)


def test_an_image_smaller_than_the_window_is_padded_and_cropped_back() -> None:
    image = coordinates(20, 36)
    seen = []

    def pixelwise(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return 2 * batch[..., 0] + 1

    out = sliding_window_predict(image, pixelwise, window=48)
    assert seen == [(1, 48, 48, 1)] and out.shape == (20, 36)
    np.testing.assert_allclose(out, 2 * image[..., 0] + 1, rtol=1e-6)


@pytest.mark.parametrize("shape", [(100, 70), (64, 64), (33, 129), (160, 96)])
def test_a_pixelwise_linear_model_is_reproduced_exactly_over_many_windows(shape) -> None:
    image = coordinates(*shape)
    calls = []

    def linear(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return (0.5 * batch - 3)[..., :1]  # (B, p, p, 1): the channel axis is dropped

    out = sliding_window_predict(image, linear, window=32, batch_size=5)
    assert out.shape == shape
    np.testing.assert_allclose(out, 0.5 * image[..., 0] - 3, rtol=1e-6)
    assert sum(calls) == tiles_needed(*shape, 32) and max(calls) <= 5


def test_a_constant_model_is_constant_everywhere_and_channels_are_kept() -> None:
    image = np.zeros((50, 90, 3), np.float32)
    out = sliding_window_predict(
        image, lambda b: np.full((*b.shape[:3], 2), (0.25, 0.75), np.float32), window=32
    )
    assert out.shape == (50, 90, 2)
    np.testing.assert_allclose(out[..., 0], 0.25, rtol=1e-6)
    np.testing.assert_allclose(out[..., 1], 0.75, rtol=1e-6)


def test_windows_are_a_half_window_apart_and_the_last_is_flush_with_the_edge() -> None:
    assert window_starts(100, 32) == [0, 16, 32, 48, 64, 68]
    assert window_starts(64, 32) == [0, 16, 32]
    assert window_starts(32, 32) == [0] and window_starts(10, 32) == [0]
    assert tiles_needed(100, 64, 32) == 6 * 3


def test_gaussian_weights_peak_at_the_centre_with_sigma_an_eighth_of_the_window() -> None:
    w = gaussian_weights(64)
    assert w.shape == (64, 64) and w.dtype == np.float32
    assert w[31, 31] == w[32, 32] == w.max() <= 1 and w.min() > 0
    assert np.array_equal(w, w.T) and np.array_equal(w, w[::-1, ::-1])
    # sigma = 64 / 8 = 8 px about the centre 31.5: column 39 lies 7.5 px off it, column 31 0.5
    assert w[31, 39] / w[31, 31] == pytest.approx(np.exp(-(7.5**2 - 0.5**2) / (2 * 8**2)), 1e-5)


def test_blending_weighs_each_window_by_its_gaussian() -> None:
    """A model that answers each window's own column index: where two windows overlap, each
    pixel's value is the Gaussian-weighted mean of what the two windows said."""
    image = np.zeros((32, 48, 1), np.float32)  # columns: windows at 0 and 16 (window 32)

    def column(batch: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.arange(32, dtype=np.float32), batch.shape[:3]).copy()

    out = sliding_window_predict(image, column, window=32)
    axis = gaussian_weights(32)[15]
    for x in (5, 20, 30, 40):
        said = [(x - s, axis[x - s]) for s in (0, 16) if 0 <= x - s < 32]
        expected = sum(v * wt for v, wt in said) / sum(wt for _, wt in said)
        assert out[10, x] == pytest.approx(expected, rel=1e-5), x


# ---- the one prediction path: whole images or windows ----------------------------------------


def test_predict_images_batches_windows_across_images_of_different_sizes() -> None:
    rng = np.random.default_rng(0)
    images = [rng.random((*shape, 1), dtype=np.float32) for shape in ((40, 56), (12, 20), (64, 64))]
    calls = []

    def window_by_window(batch: np.ndarray) -> np.ndarray:  # each window on its own
        smoothed = uniform_filter(batch[..., 0], size=(1, 5, 5), mode="constant")
        return 1 / (1 + np.exp(-(smoothed - 0.4)))

    def recorded(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return window_by_window(batch)

    out = predict_images(recorded, images, window=32, batch_size=4)
    assert [o.shape for o in out] == [(40, 56), (12, 20), (64, 64)]
    total = sum(tiles_needed(*i.shape[:2], 32) for i in images)
    assert sum(calls) == total and calls == [4] * (total // 4) + [total % 4] * (total % 4 > 0)
    for image, got in zip(images, out, strict=True):  # the same as each image on its own
        alone = sliding_window_predict(image, window_by_window, window=32)
        np.testing.assert_allclose(got, alone, rtol=1e-6)


def test_predict_images_without_a_window_predicts_whole_squares() -> None:
    images = np.random.default_rng(1).random((5, 16, 16, 1), dtype=np.float32)
    out = predict_images(lambda b: nonlinear(b)[..., None], images, window=0, batch_size=2)
    np.testing.assert_allclose(np.stack(out), np.concatenate([nonlinear(images[:2]),
                               nonlinear(images[2:4]), nonlinear(images[4:])]))  # fmt: skip


def test_fixed_batches_pad_a_short_batch_and_drop_the_padding() -> None:
    seen = []
    padded = fixed_batches(lambda b: seen.append(b.shape) or b * 2, 4)
    out = padded(np.ones((3, 2, 2, 1), np.float32))
    assert seen == [(4, 2, 2, 1)] and out.shape == (3, 2, 2, 1) and (out == 2).all()


def test_a_canvas_holds_images_of_different_sizes_in_their_corners() -> None:
    a, b = coordinates(30, 20), coordinates(10, 40, 100)
    stacked = canvas([a, b])
    assert stacked.shape == (2, 30, 40, 1) and stacked[0, :, 20:].max() == 0
    mine = regions(stacked, [(30, 20), (10, 40)])
    assert np.array_equal(mine[0], a) and np.array_equal(mine[1], b)
    assert canvas([a, a]).shape == (2, 30, 20, 1) and len(regions(stacked, None)) == 2


# ---- random patches --------------------------------------------------------------------------


def test_crop_pads_beyond_the_edges() -> None:
    a = np.arange(1, 10).reshape(3, 3)
    assert crop(a, -1, 1, 3).tolist() == [[0, 0, 0], [2, 3, 0], [5, 6, 0]]


def sampler_set():
    """Images of three sizes, one smaller than the patch, their values apart (image k from
    k * 10**5 + 1); one small lesion in the largest."""
    images = [coordinates(80, 120, 1), coordinates(40, 40, 10**5 + 1), coordinates(20, 30, 2e5 + 1)]
    masks = [np.zeros(img.shape[:2], np.uint8) for img in images]
    masks[0][70:73, 5:9] = 1
    return images, masks


def test_patches_are_crops_of_one_image_with_their_mask() -> None:
    images, masks = sampler_set()
    x, y = PatchSampler(images, masks, size=32, oversample=0.5, seed=0).batch(40)
    assert x.shape == (40, 32, 32, 1) and y.shape == (40, 32, 32)
    for patch, mask in zip(x[..., 0], y, strict=True):
        inside = patch > 0
        values = patch[inside]
        width = images[int(values.max() // 10**5)].shape[1]
        rows, cols = np.nonzero(inside)
        # a contiguous crop: the value at (r, c) is the first value plus the offset in the image
        first = patch[rows[0], cols[0]]
        offsets = (rows - rows[0]) * width + (cols - cols[0])
        assert np.array_equal(values, first + offsets)
        assert mask[~inside].sum() == 0  # padding is background


def test_a_share_of_the_patches_is_centred_on_a_lesion() -> None:
    images, masks = sampler_set()
    lesion_px = masks[0].sum()  # 12 of the set's 11,600 pixels
    sampler = PatchSampler(images, masks, size=32, oversample=0.33, seed=1)
    for _ in range(5):
        _, y = sampler.batch(12)
        hit = y.reshape(12, -1).sum(axis=1) == lesion_px  # the whole lesion: it is near a centre
        assert hit[-4:].all()  # round(0.33 * 12) = 4: the batch's last patches
    _, y = PatchSampler(images, masks, size=32, oversample=0.0, seed=1).batch(200)
    assert (y.reshape(200, -1).sum(axis=1) > 0).mean() < 0.2  # uniform patches mostly miss it


def test_an_image_smaller_than_the_patch_is_padded_whole() -> None:
    image, mask = coordinates(20, 30), np.ones((20, 30), np.uint8)
    x, y = PatchSampler([image], [mask], size=32, oversample=1.0, seed=0).batch(3)
    for patch, m in zip(x, y, strict=True):
        assert np.array_equal(patch[6:26, 1:31], image) and m.sum() == 600


def test_the_same_seed_draws_the_same_patches() -> None:
    images, masks = sampler_set()
    a = PatchSampler(images, masks, size=16, oversample=0.33, seed=7).batch(9)
    b = PatchSampler(images, masks, size=16, oversample=0.33, seed=7).batch(9)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
