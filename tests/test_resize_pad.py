"""``data.resize = "pad"``: non-square images keep their aspect ratio, and predict undoes it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from procs import TINY, mlflow_client, segsweep

from segsweep.data.geometry import to_original
from segsweep.data.io import prepare_image

SIZES = [(64, 48), (48, 64)]  # (H, W): tall and wide, each padded on its short side


def bands(height: int, width: int) -> np.ndarray:
    """Lesion bands across the short side, edges on even pixels: a 2x resize keeps them exact.

    A wrong padding offset or a stretch moves or bends the bands, so the round trip fails.
    """
    mask = np.zeros((height, width), np.uint8)
    if height > width:
        mask[:, 8:20] = mask[:, 32:40] = 255
    else:
        mask[8:20] = mask[32:40] = 255
    return mask


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_a_padded_mask_maps_back_to_its_original(height, width):
    mask = bands(height, width)
    square = prepare_image(mask, image_size=32, intensity="dtype", channels=1, resize="pad")
    back = to_original(square[..., 0], (height, width), resize="pad", threshold=0.5)
    np.testing.assert_array_equal(back, mask)
    stretched = to_original(square[..., 0], (height, width), resize="stretch", threshold=0.5)
    assert (stretched != mask).sum() > 100  # the test sees a wrong mapping


@pytest.mark.slow
def test_predict_through_the_cli_maps_a_synthetic_mask_back_exactly(tmp_path):
    import keras

    image = keras.Input((32, 32, 1))
    keras.Model(image, keras.layers.Identity()(image)).save(tmp_path / "identity.keras")
    images = tmp_path / "images"
    images.mkdir()
    for height, width in SIZES:
        Image.fromarray(bands(height, width)).save(images / f"{height}x{width}.png")
    out = tmp_path / "out"
    model = str(tmp_path / "identity.keras")
    segsweep(tmp_path, "predict", model, str(images), str(out), "--resize", "pad")
    for height, width in SIZES:
        got = np.asarray(Image.open(out / f"{height}x{width}.png"))
        np.testing.assert_array_equal(got, bands(height, width))


@pytest.mark.slow
def test_a_padded_study_predicts_masks_at_each_original_size(tmp_path):
    segsweep(tmp_path, "data", "synth", "ph", "--n", "16", "--size", "48", "--seed", "5")
    for path in sorted((tmp_path / "ph").glob("*/*.png")):  # 48x48 -> 48x32 (H x W)
        Image.fromarray(np.asarray(Image.open(path))[:, 8:40]).save(path)
    sets = ["--set", 'data.resize="pad"', "--set", "train.epochs=1"]
    sets += ["--set", "tracking.log_model=true"]
    segsweep(tmp_path, "study", "create", "pad", "--data", "ph", *TINY, *sets)
    stretched = segsweep(tmp_path, "doctor", "--data", "ph", check=False)
    assert stretched.returncode == 1 and 'set data.resize = "pad"' in stretched.stdout
    padded = segsweep(tmp_path, "doctor", "pad", check=False)
    assert padded.returncode in (0, 1) and "data.resize" not in padded.stdout
    segsweep(tmp_path, "study", "run", "--trials", "1", "--workers", "1")
    status = json.loads(segsweep(tmp_path, "study", "status", "--json").stdout)
    run = mlflow_client(tmp_path).get_run(status["best"]["mlflow_run_id"])
    assert run.data.params["data.resize"] == "pad"  # predict reads the rule from here
    out = tmp_path / "out"
    segsweep(tmp_path, "predict", "study:pad", str(tmp_path / "ph" / "images"), str(out))
    written = sorted(out.iterdir())
    assert len(written) == 16
    for path in written:
        mask = np.asarray(Image.open(path))
        assert mask.shape == (48, 32) and set(np.unique(mask)) <= {0, 255}
