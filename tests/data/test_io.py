"""Reading, pairing, checking and loading image/mask folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segsweep.data.io import (
    content_box,
    describe_pair,
    find_pairs,
    load_dataset,
    mask_kind,
    prepare_image,
    prepare_mask,
    read_image,
    read_mask,
)
from segsweep.errors import ConfigError, DataError

DSB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dsb2018_nuclei_96"

RNG = np.random.default_rng(0)
GRAY8 = RNG.integers(0, 256, (6, 5), dtype=np.uint8)
RGB8 = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, (6, 5), dtype=np.uint16)
LESION = np.zeros((6, 5), bool)
LESION[1:4, 2:4] = True
SMOOTH = np.tile(np.linspace(40, 200, 5), (6, 1)).astype(np.uint8)  # survives JPEG closely


@pytest.mark.parametrize(
    ("name", "array", "expected"),
    [
        ("gray8.png", GRAY8, GRAY8),
        ("rgb8.png", RGB8, RGB8),
        ("rgba8.png", np.dstack([RGB8, np.full((6, 5), 7, np.uint8)]), RGB8),
        ("gray16.png", GRAY16, GRAY16),
        ("gray16.tif", GRAY16, GRAY16),
        ("rgb16.tiff", np.dstack([GRAY16] * 3), np.dstack([GRAY16] * 3)),
        ("gray8.bmp", GRAY8, GRAY8),
        ("rgb8.bmp", RGB8, RGB8),
        ("float.npy", GRAY8 / 255.0, GRAY8 / 255.0),
        ("single_channel.npy", GRAY8[..., None], GRAY8),
        ("big_endian.npy", GRAY16.astype(">u2"), GRAY16),
    ],
)
def test_read_image_keeps_values_and_dtype(make_data_dir, name, array, expected):
    path = make_data_dir({name: array}, {}) / "images" / name
    image = read_image(path)
    assert image.dtype == expected.dtype
    np.testing.assert_array_equal(image, expected)


def test_read_jpeg_image(make_data_dir):
    path = make_data_dir({"a.jpg": SMOOTH}, {}) / "images" / "a.jpg"
    image = read_image(path)
    assert image.shape == (6, 5) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - SMOOTH).max() <= 8


@pytest.mark.parametrize(
    ("name", "array"),
    [
        ("zero_one.png", LESION.astype(np.uint8)),
        ("zero_255.png", LESION.astype(np.uint8) * 255),
        ("zero_max16.png", LESION.astype(np.uint16) * 65535),
        ("zero_255.tif", LESION.astype(np.uint8) * 255),
        ("zero_255.bmp", LESION.astype(np.uint8) * 255),
        ("bool.npy", LESION),
        ("float.npy", LESION.astype(np.float32)),
        ("labels.png", (LESION * np.arange(5)).astype(np.uint8)),  # {0, 2, 3}
        ("labels.npy", (LESION * np.arange(5)).astype(np.int64)),
        ("gray_as_rgb.png", np.dstack([LESION.astype(np.uint8) * 255] * 3)),
        ("empty.png", np.zeros((6, 5), np.uint8)),
    ],
)
def test_read_mask_accepts_binary_and_label_masks(make_data_dir, name, array):
    path = make_data_dir({}, {name: array}) / "masks" / name
    mask = read_mask(path)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, np.asarray(array).reshape(6, 5, -1)[..., 0] > 0)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([0, 1], "binary"),
        ([0, 255], "binary"),
        ([0, 7], "binary"),
        ([255], "binary"),
        ([0, 1, 2, 3], "labels"),
        (list(range(17)), "labels"),
        ([0, 1, 17], "in-between"),
        ([0, 3, 12, 128, 250, 255], "in-between"),
        ([0, 1, 2, 255], "in-between"),
        ([0.0, 1.0, 2.0], "labels"),
        ([0.0, 0.5, 1.0], "in-between"),
        ([-1, 0, 1], "invalid"),
        ([0.0, np.nan], "invalid"),
    ],
)
def test_mask_kind(values, kind):
    assert mask_kind(np.array(values)) == kind


def test_in_between_mask_is_refused_naming_file_and_values(make_data_dir):
    resized = np.array([[0, 3, 12, 128, 250, 255]], np.uint8)
    path = make_data_dir({}, {"x.png": resized}) / "masks" / "x.png"
    with pytest.raises(
        DataError, match=r"masks/x\.png has in-between values \(6 distinct, e\.g\. 0, 3"
    ):
        read_mask(path)
    with pytest.raises(DataError, match="data.mask_threshold = 0.5"):
        read_mask(path)


@pytest.mark.parametrize(
    ("array", "threshold", "expected"),
    [
        (np.array([[0, 3, 127, 128, 250, 255]], np.uint8), 0.5, [[0, 0, 0, 1, 1, 1]]),
        (np.array([[0, 3, 127, 128, 250, 255]], np.uint8), 0.01, [[0, 1, 1, 1, 1, 1]]),
        (np.array([[0, 900, 40000, 65535]], np.uint16), 0.5, [[0, 0, 1, 1]]),
        (np.array([[0.0, 0.2, 0.7, 1.0]], np.float32), 0.5, [[0, 0, 1, 1]]),
        # binary masks and label maps keep their meaning whatever the threshold
        (np.array([[0, 1, 1, 0]], np.uint8), 0.5, [[0, 1, 1, 0]]),
        (np.array([[0, 1, 2, 3]], np.uint8), 0.9, [[0, 1, 1, 1]]),
    ],
)
def test_threshold_binarises_in_between_masks(make_data_dir, array, threshold, expected):
    name = "m.npy" if array.dtype.kind == "f" else "m.png"
    path = make_data_dir({}, {name: array}) / "masks" / name
    np.testing.assert_array_equal(read_mask(path, threshold=threshold), np.array(expected, bool))


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        (
            "x.png",
            np.dstack([LESION, LESION, ~LESION]).astype(np.uint8) * 255,
            r"masks/x\.png is a colour mask",
        ),
        ("x.npy", np.array([[0, -1], [1, 0]]), r"masks/x\.npy has negative"),
        (
            "x.npy",
            np.array([[0, 300], [7, 0]]),
            r"masks/x\.npy has dtype int64 .*mask_threshold works on",
        ),
        ("x.npy", np.zeros((2, 3, 5)), r"masks/x\.npy has shape \(2, 3, 5\)"),
        ("x.png", b"not a png", r"masks/x\.png cannot be read"),
    ],
)
def test_bad_mask_is_refused_naming_file(make_data_dir, name, array, message):
    path = make_data_dir({}, {name: array}) / "masks" / name
    with pytest.raises(DataError, match=message):
        read_mask(path, threshold=0.5)


def _pairs_dir(make_data_dir, images: list[str], masks: list[str]) -> Path:
    mask = LESION.astype(np.uint8)
    return make_data_dir({n: GRAY8 for n in images}, {n: mask for n in masks})


def test_find_pairs_pairs_by_stem_across_formats(make_data_dir):
    root = _pairs_dir(make_data_dir, ["b.jpg", "a.png", "c.tif"], ["c.npy", "a.tif", "b.png"])
    pairs = find_pairs(root)
    assert [(p.stem, p.image.name, p.mask.name) for p in pairs] == [
        ("a", "a.png", "a.tif"),
        ("b", "b.jpg", "b.png"),
        ("c", "c.tif", "c.npy"),
    ]


@pytest.mark.parametrize(
    ("images", "masks", "message"),
    [
        (
            ["a.png"],
            ["a.png", "b.png", "c.png", "d.png"],
            r"no image for 3 masks in .*masks: b\.png, c\.png, d\.png$",
        ),
        (["a.png", "b.png"], ["a.png"], r"no mask for 1 image in .*images: b\.png$"),
        (
            [f"{i}.png" for i in range(8)],
            ["0.png"],
            r"no mask for 7 images .* 1\.png, 2\.png, 3\.png, 4\.png, 5\.png, \.\.\. \(\+2 more\)$",
        ),
        (["a.png", "a.tif"], ["a.png"], r"1 stem used twice in .*images: a\.png and a\.tif"),
        (
            ["a.png", "x.gif"],
            ["a.png"],
            r"unsupported extension on 1 file in .*images \(x\.gif\); accepted: \.bmp",
        ),
        (
            ["a.png"],
            ["a.jpg"],
            r"1 JPEG mask in .*masks \(a\.jpg\): masks must be lossless; accepted: \.bmp",
        ),
        ([], ["a.png"], r"images is empty"),
        (["a.png"], [], r"masks is empty"),
    ],
)
def test_find_pairs_failures_name_the_files(make_data_dir, images, masks, message):
    with pytest.raises(DataError, match=message):
        find_pairs(_pairs_dir(make_data_dir, images, masks))


def test_find_pairs_missing_folder(tmp_path):
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match=r"images not found"):
        find_pairs(tmp_path)


def test_find_pairs_ignores_hidden_files(make_data_dir):
    root = _pairs_dir(make_data_dir, ["a.png"], ["a.png"])
    (root / "images" / ".DS_Store").write_bytes(b"x")
    assert [p.stem for p in find_pairs(root)] == ["a"]


@pytest.mark.parametrize(
    ("raw", "intensity", "expected"),
    [
        (np.array([[0, 51, 255]], np.uint8), "dtype", [0.0, 0.2, 1.0]),
        (np.array([[0, 13107, 65535]], np.uint16), "dtype", [0.0, 0.2, 1.0]),
        (np.array([[0.0, 0.2, 1.0]]), "dtype", [0.0, 0.2, 1.0]),
        (np.array([[10, 20, 30]], np.uint16), "minmax", [0.0, 0.5, 1.0]),
        (np.array([[-5.0, 0.0, 5.0]]), "minmax", [0.0, 0.5, 1.0]),
        (np.array([[7, 7, 7]], np.uint8), "minmax", [0.0, 0.0, 0.0]),
    ],
)
def test_prepare_image_intensity(raw, intensity, expected):
    image = prepare_image(raw, image_size=3, intensity=intensity, channels=1)
    assert image.shape == (3, 3, 1) and image.dtype == np.float32
    # a 1x3 row resized to 3x3 repeats the row (no horizontal change)
    np.testing.assert_allclose(image[1, :, 0], expected, atol=1e-6)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (np.array([[0.0, 2.0]]), r"holds floats in \[0, 2\].*data.intensity = 'minmax'"),
        (np.array([[0, 300]], np.int32), r"has dtype int32.*data.intensity = 'minmax'"),
    ],
)
def test_prepare_image_dtype_rule_refuses_unknown_ranges(raw, message):
    with pytest.raises(DataError, match=message):
        prepare_image(raw, image_size=2, intensity="dtype", channels=1, name="images/a.npy")


def test_prepare_image_channels():
    gray = np.array([[0, 255]], np.uint8)
    three = prepare_image(gray, image_size=2, intensity="dtype", channels=3)
    np.testing.assert_array_equal(three[..., 0], three[..., 2])
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    one = prepare_image(red, image_size=2, intensity="dtype", channels=1)
    np.testing.assert_allclose(one, 0.299, atol=1e-6)  # BT.601 luminance of pure red


def test_prepare_image_resizes_bilinearly():
    step = np.zeros((8, 8), np.uint8)
    step[:, 4:] = 255
    image = prepare_image(step, image_size=16, intensity="dtype", channels=1)
    assert image.shape == (16, 16, 1)
    between = image[(image > 0.01) & (image < 0.99)]
    assert between.size > 0, "bilinear resizing blends across the edge"
    assert image.min() >= 0 and image.max() <= 1


@pytest.mark.parametrize("size", [4, 16, 64])
def test_prepare_mask_resizes_nearest_and_stays_binary(size):
    mask = np.random.default_rng(1).random((37, 23)) > 0.7
    out = prepare_mask(mask, image_size=size)
    assert out.shape == (size, size, 1) and out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 1}
    assert abs(out.mean() - mask.mean()) < 0.15


def test_prepare_mask_keeps_a_square_lesion_exact():
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    out = prepare_mask(mask, image_size=16)[..., 0]
    assert out.sum() == 64 and out[4:12, 4:12].all()


@pytest.mark.parametrize(
    ("height", "width", "box"),
    [
        (48, 32, (0, 5, 32, 21)),
        (32, 48, (5, 0, 21, 32)),
        (64, 48, (0, 4, 32, 24)),
        (9, 9, (0, 0, 32, 32)),
    ],
)
def test_content_box_keeps_the_aspect_ratio_and_centres(height, width, box):
    assert content_box(height, width, 32, "pad") == box
    assert content_box(height, width, 32, "stretch") == (0, 0, 32, 32)


def test_pad_puts_image_and_mask_in_the_same_box_with_zeros_around():
    raw = np.full((48, 32), 200, np.uint8)
    mask = np.zeros((48, 32), bool)
    mask[:, :16] = True  # the left half
    image = prepare_image(raw, image_size=32, intensity="dtype", channels=1, resize="pad")[..., 0]
    padded = prepare_mask(mask, image_size=32, resize="pad")[..., 0]
    assert image.shape == padded.shape == (32, 32)
    np.testing.assert_allclose(image[:, 5:26], 200 / 255, atol=1e-6)  # no bleed into the pad
    assert not image[:, :5].any() and not image[:, 26:].any()
    assert padded[:, 5:15].all() and not padded[:, 16:].any() and not padded[:, :5].any()
    stretched = prepare_mask(mask, image_size=32)[..., 0]  # the default keeps the old result
    assert stretched[:, :16].all() and not stretched[:, 16:].any()


def test_load_dataset_pads_non_square_pairs(make_data_dir):
    lesion = np.zeros((12, 6), np.uint8)
    lesion[2:6, :] = 255
    root = make_data_dir({"a.png": np.full((12, 6), 255, np.uint8)}, {"a.png": lesion})
    ds = load_dataset(root, image_size=8, resize="pad")
    assert ds.resize == "pad" and ds.original_sizes == ((12, 6),)
    assert ds.images[0, :, 2:6].min() == 1.0 and ds.images[0, :, :2].max() == 0.0
    np.testing.assert_array_equal(ds.masks[0, :, :, 0].any(axis=0), [0, 0, 1, 1, 1, 1, 0, 0])
    # rows 2-5 of 12 at scale 2/3, nearest: rows 1-3 of 8
    np.testing.assert_array_equal(ds.masks[0, :, :, 0].any(axis=1), [0, 1, 1, 1, 0, 0, 0, 0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"resize": "crop"},
            "The 'resize' parameter must be one of 'stretch', 'pad'. Got 'crop' instead.",
        ),
        (
            {"intensity": "x"},
            "The 'intensity' parameter must be one of 'dtype', 'minmax'. Got 'x' instead.",
        ),
        ({"channels": 2}, "The 'channels' parameter must be one of 0, 1, 3. Got 2 instead."),
        (
            {"image_size": 0},
            "The 'image_size' parameter must be a positive integer. Got 0 instead.",
        ),
        ({"mask_threshold": 1.5}, r"The 'mask_threshold' parameter must be 0 .* Got 1.5 instead."),
        ({"mask_threshold": True}, r"The 'mask_threshold' parameter .* Got True instead."),
    ],
)
def test_load_dataset_refuses_bad_settings(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(tmp_path, **{"image_size": 8, **kwargs})


def _mixed_folder(make_data_dir, colour: bool = False) -> Path:
    first = RGB8 if colour else np.dstack([GRAY8] * 3)  # 3 equal channels count as gray
    return make_data_dir(
        {"a.png": first, "b.tif": GRAY16, "c.jpg": SMOOTH},
        {
            "a.png": LESION.astype(np.uint8) * 255,
            "b.npy": LESION,
            "c.bmp": np.zeros((6, 5), np.uint8),
        },
    )


def test_load_dataset_mixed_formats(make_data_dir):
    ds = load_dataset(_mixed_folder(make_data_dir), image_size=8)
    assert ds.stems == ("a", "b", "c")
    assert ds.images.shape == (3, 8, 8, 1) and ds.images.dtype == np.float32
    assert ds.masks.shape == (3, 8, 8, 1) and ds.masks.dtype == np.uint8
    assert set(np.unique(ds.masks)) == {0, 1}
    assert ds.original_sizes == ((6, 5),) * 3
    np.testing.assert_allclose(ds.lesion_fraction, [6 / 30, 6 / 30, 0.0])
    assert (ds.channels, ds.intensity) == (1, "dtype")
    assert 0 <= ds.images.min() and ds.images.max() <= 1


@pytest.mark.parametrize(
    ("colour", "channels", "expected"), [(True, 0, 3), (False, 0, 1), (False, 3, 3), (True, 1, 1)]
)
def test_load_dataset_channels(make_data_dir, colour, channels, expected):
    ds = load_dataset(_mixed_folder(make_data_dir, colour), image_size=8, channels=channels)
    assert ds.channels == expected and ds.images.shape[-1] == expected


def test_manifest_hash_follows_file_bytes(make_data_dir):
    root = _mixed_folder(make_data_dir)
    first = load_dataset(root, image_size=8).manifest_hash
    assert load_dataset(root, image_size=16, intensity="minmax").manifest_hash == first
    mask = LESION.copy()
    mask[0, 0] = True
    np.save(root / "masks" / "b.npy", mask)
    assert load_dataset(root, image_size=8).manifest_hash != first


@pytest.mark.parametrize(
    ("images", "masks", "message"),
    [
        (
            {"a.png": GRAY8},
            {"a.png": np.zeros((5, 6), np.uint8)},
            r"images/a\.png is 6x5 \(HxW\) but masks/a\.png is 5x6",
        ),
        ({"a.png": b"garbage"}, {"a.png": LESION}, r"images/a\.png cannot be read"),
        (
            {"a.npy": GRAY8 * 2.0},
            {"a.png": LESION},
            r"images/a\.npy holds floats in \[\d+, \d+\]; .*'minmax'",
        ),
        (
            {"a.png": GRAY8, "b.png": GRAY8},
            {"a.png": np.zeros((6, 5), np.uint8), "b.png": np.zeros((6, 5), np.uint8)},
            r"no lesion pixel in any of the 2 masks in .*masks",
        ),
    ],
)
def test_load_dataset_failures_name_the_file(make_data_dir, images, masks, message):
    with pytest.raises(DataError, match=message):
        load_dataset(make_data_dir(images, masks), image_size=8)


def test_describe_pair_reports_in_between_masks_without_raising(make_data_dir):
    root = make_data_dir(
        {"a.png": RGB8}, {"a.png": np.array([[0, 3, 128], [250, 255, 0]], np.uint8)}
    )
    info = describe_pair(find_pairs(root)[0])
    assert info["mask_kind"] == "in-between" and info["lesion_fraction"] is None
    assert info["colour"] and not info["size_match"]
    assert info["mask_values"].startswith("5 distinct")


@pytest.mark.skipif(not DSB.is_dir(), reason=f"{DSB} is not here (it ships in ../shared/data)")
def test_dsb2018_masks_are_binary_and_load_strictly():
    # stats.json says "nonbinary_masks": 670, but that counts the source masks before SOURCE.md's
    # ">127" binarisation; the files hold exactly {0, 255}, so strict loading must succeed.
    stats = json.loads((DSB / "stats.json").read_text())
    ds = load_dataset(DSB, image_size=96)
    assert len(ds.stems) == stats["pairs"] == 670
    assert ds.channels == 3  # 108 of the 670 images have colour
    assert ds.original_sizes[0] == (96, 96)
    assert ds.lesion_fraction.mean() == pytest.approx(stats["fg_mean"], rel=1e-6)
    assert ds.lesion_fraction.min() == pytest.approx(stats["fg_min"], rel=1e-6)
