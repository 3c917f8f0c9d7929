"""The built-in phantom lesion set."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from segsweep.data.io import find_pairs, load_dataset
from segsweep.data.synth import synthesize
from segsweep.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    return out, synthesize(out, n=100, size=64, seed=3)


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_same_seed_writes_the_same_bytes(tmp_path):
    first = synthesize(tmp_path / "a", n=6, size=32, seed=7)
    again = synthesize(tmp_path / "b", n=6, size=32, seed=7)
    other = synthesize(tmp_path / "c", n=6, size=32, seed=8)
    assert first == again
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")
    assert first != other


def test_writes_gray_images_and_binary_masks(phantoms):
    out, summary = phantoms
    pairs = find_pairs(out)
    assert len(pairs) == summary["n"] == 100
    assert pairs[0].image.name == "case_0000.png"
    image, mask = Image.open(pairs[0].image), Image.open(pairs[0].mask)
    assert (image.mode, image.size, mask.mode) == ("L", (64, 64), "L")
    masks = np.stack([np.asarray(Image.open(p.mask)) for p in pairs])
    assert set(np.unique(masks)) == {0, 255}


def test_lesion_fractions_and_lesion_free_share(phantoms):
    out, summary = phantoms
    ds = load_dataset(out, image_size=64)  # strict mask reading must accept the phantoms
    fractions = ds.lesion_fraction
    assert summary["lesion_free"] == int((fractions == 0).sum()) == 18
    with_lesion = fractions[fractions > 0]
    assert with_lesion.min() >= 0.005 and with_lesion.max() <= 0.05
    assert summary["lesion_fraction_min"] == pytest.approx(with_lesion.min())
    assert summary["lesion_fraction_max"] == pytest.approx(with_lesion.max())
    assert summary["lesion_fraction_mean"] == pytest.approx(with_lesion.mean())
    assert summary["pixel_fraction"] == pytest.approx(fractions.mean())


def test_lesions_stand_out_but_not_trivially(phantoms):
    """Lesions differ from the tissue just around them by a modest contrast."""
    out, _ = phantoms
    ds = load_dataset(out, image_size=64)
    contrasts = []
    for image, mask in zip(ds.images[..., 0], ds.masks[..., 0].astype(bool), strict=True):
        if mask.any():
            ring = binary_dilation(mask, iterations=3) & ~binary_dilation(mask)
            contrasts.append(abs(image[mask].mean() - image[ring].mean()))
    assert 0.08 < np.median(contrasts) < 0.3
    assert min(contrasts) > 0.03


def test_refuses_a_filled_folder_unless_overwrite(tmp_path):
    synthesize(tmp_path, n=5, size=32)
    with pytest.raises(DataError, match=r"images is not empty; pass --overwrite"):
        synthesize(tmp_path, n=3, size=32)
    summary = synthesize(tmp_path, n=3, size=32, overwrite=True)
    assert summary["n"] == len(find_pairs(tmp_path)) == 3


def test_overwrite_keeps_files_it_did_not_write(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "scan.png").write_bytes(b"precious")
    with pytest.raises(DataError, match=r"holds files synthesize did not write \(scan\.png"):
        synthesize(tmp_path, n=3, size=32, overwrite=True)
    assert (tmp_path / "images" / "scan.png").read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "The 'n' parameter of synthesize must be an integer >= 1. Got 0 instead."),
        (
            {"size": 16},
            "The 'size' parameter of synthesize must be an integer >= 32. Got 16 instead.",
        ),
        (
            {"seed": -1},
            "The 'seed' parameter of synthesize must be an integer >= 0. Got -1 instead.",
        ),
    ],
)
def test_refuses_bad_settings(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        synthesize(tmp_path, **kwargs)
