"""Native-resolution patches (``data.patch_size``): a study trains on patches and is scored on
whole images at their own size; ``predict`` and the champion's pyfunc predict any image size by
overlapping windows, through the same function as validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from procs import TINY

from segsweep.cli import main
from segsweep.config import load_config
from segsweep.data.patches import sliding_window_predict
from segsweep.data.synth import synthesize

NATIVE, PATCH = 48, 16  # the phantoms' own size, and the patches (TINY's image_size is 32)
PARAMS = {
    "loss": "dice_ce", "smooth": 1e-5, "dice_reduction": "batch", "dropout": 0.0, "l2": 0.0,
    "batch_norm": True, "base_filters": 4, "depth": 2, "lr": 1e-3, "schedule": "poly",
    "deep_supervision": False,
}  # fmt: skip


@pytest.fixture(scope="module")
def net():
    """An untrained network with PATCH x PATCH input: prediction paths only need its output
    to depend on every pixel and on where the window lies."""
    from segsweep.trial.train import build_model

    return build_model(PARAMS, in_channels=1, image_size=PATCH)


def windows(net, image: np.ndarray) -> np.ndarray:
    """The reference: the network over one image by sliding windows, nothing else."""
    return sliding_window_predict(image, lambda b: net.predict_on_batch(b), window=PATCH)


def test_a_patch_study_trains_and_scores_validation_on_whole_native_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segsweep.trial.train import fit
    from segsweep.trial.workerdata import load_worker_data

    synthesize(tmp_path / "ph", n=12, size=NATIVE, seed=3)
    monkeypatch.chdir(tmp_path)
    patches = ["--set", f"data.patch_size={PATCH}", "--set", "train.epochs=1"]
    created = CliRunner().invoke(main, ["study", "create", "p", "--data", "ph", *TINY, *patches])
    assert created.exit_code == 0, created.output
    cfg = load_config(tmp_path / "studies" / "p.toml")
    assert (cfg.data.image_size, cfg.data.patch_size) == (32, PATCH)
    data = load_worker_data(cfg)
    assert data.split.train_x.shape[1:3] == (NATIVE, NATIVE)  # not resized to image_size
    seen = []
    result = fit(PARAMS, data.split, cfg, seed=0, on_validation=seen.append)
    assert result.net.input_shape[1:3] == (PATCH, PATCH)  # trained on patches
    prob = seen[0].last_prob  # what the validation metrics were computed from
    assert prob.shape == (len(data.split.val_x), NATIVE, NATIVE, 1)
    np.testing.assert_allclose(prob[0, ..., 0], windows(result.net, data.split.val_x[0]), atol=1e-5)
    assert 0.0 <= result.history["val_dsc"][0] <= 1.0


def test_a_volume_study_trains_on_patches_and_scores_whole_cases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Volumes and patches together: slices stay at their own 24 px, the network takes 16 px
    patches, and the validation cases are scored whole in 3D from windowed predictions."""
    from volumes import SHAPE, write_nnunet

    from segsweep.trial.train import fit
    from segsweep.trial.workerdata import load_worker_data

    write_nnunet(tmp_path / "vol", n=4)
    monkeypatch.chdir(tmp_path)
    sets = ["--set", f"data.patch_size={PATCH}", "--set", "train.epochs=1"]
    created = CliRunner().invoke(main, ["study", "create", "v", "--data", "vol", *TINY, *sets])
    assert created.exit_code == 0, created.output
    cfg = load_config(tmp_path / "studies" / "v.toml")
    assert cfg.search.objective == "val_case_dsc"
    data = load_worker_data(cfg)
    assert data.split.train_x.shape[1:3] == SHAPE[:2]  # slices at their own size
    seen = []
    result = fit(PARAMS, data.split, cfg, seed=0, on_validation=seen.append)
    assert result.net.input_shape[1:3] == (PATCH, PATCH)
    prob = seen[0].last_prob
    assert prob.shape == (len(data.split.val_x), *SHAPE[:2], 1)
    np.testing.assert_allclose(prob[0, ..., 0], windows(result.net, data.split.val_x[0]), atol=1e-5)
    assert 0.0 <= result.history["val_case_dsc"][0] <= 1.0


def test_predict_writes_a_mask_of_each_images_own_size(tmp_path: Path, net) -> None:
    from segsweep.results.predict import LoadedModel, predict_folder

    rng = np.random.default_rng(0)
    shapes = {"tall": (80, 44), "small": (12, 40)}  # larger than the patch, and under it
    (tmp_path / "in").mkdir()
    for stem, shape in shapes.items():
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(
            tmp_path / "in" / f"{stem}.png"
        )
    model = LoadedModel(net, "dtype", "a patch model", patch_size=PATCH)
    assert predict_folder(model, tmp_path / "in", tmp_path / "out", threshold=0.5) == 2
    for stem, shape in shapes.items():
        mask = np.asarray(Image.open(tmp_path / "out" / f"{stem}.png"))
        image = np.asarray(Image.open(tmp_path / "in" / f"{stem}.png"), np.float32)[..., None]
        expected = np.where(windows(net, image / 255) > 0.5, 255, 0)
        assert mask.shape == shape and np.mean(mask != expected) < 1e-3


def test_a_bare_keras_file_predicts_by_windows_when_asked(tmp_path: Path, net) -> None:
    """A .keras file records no patch size: --windows predicts by windows of its input size."""
    from segsweep.results.predict import load_model

    net.save(tmp_path / "patches.keras")
    assert load_model(str(tmp_path / "patches.keras")).patch_size == 0  # whole images
    assert load_model(str(tmp_path / "patches.keras"), windows=True).patch_size == PATCH
    image = np.random.default_rng(2).integers(0, 256, (40, 28), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(image).save(tmp_path / "in" / "a.png")
    args = ["predict", str(tmp_path / "patches.keras"), str(tmp_path / "in"), str(tmp_path / "o")]
    done = CliRunner().invoke(main, [*args, "--windows"])
    assert done.exit_code == 0, done.output
    mask = np.asarray(Image.open(tmp_path / "o" / "a.png"))
    expected = np.where(windows(net, image[..., None].astype(np.float32) / 255) > 0.5, 255, 0)
    assert mask.shape == image.shape and np.mean(mask != expected) < 1e-3


def test_windows_refuse_a_model_without_a_square_input_in_one_line(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((None, None, 1))
    keras.Model(inputs, keras.layers.Conv2D(1, 1)(inputs)).save(tmp_path / "any.keras")
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "in" / "a.png")
    args = ["predict", str(tmp_path / "any.keras"), str(tmp_path / "in"), str(tmp_path / "o")]
    done = CliRunner().invoke(main, [*args, "--windows"])
    assert done.exit_code == 2 and "Traceback" not in done.output, done.output
    [line] = [x for x in done.output.splitlines() if x.startswith("Error:")]
    assert "any.keras takes any input size, not a square window" in line
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_the_champion_pyfunc_predicts_any_size_by_windows(tmp_path: Path, net) -> None:
    import mlflow
    from mlflow import MlflowClient

    from segsweep.finalize.champion import ChampionSettings, log_champion
    from segsweep.store.tracking import fluent_tracking_uri

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("c")).info.run_id
    net.save(tmp_path / "fold0.keras")
    settings = ChampionSettings(
        image_size=32, channels=1, intensity="dtype", resize="stretch", threshold=0.5,
        tta=False, min_component_px=0, trial=0, study="c", patch_size=PATCH,
    )  # fmt: skip
    model_uri, _ = log_champion(
        run, uri, [tmp_path / "fold0.keras"], settings, registered_name="c", workdir=tmp_path
    )
    with fluent_tracking_uri(uri):
        champion = mlflow.pyfunc.load_model(model_uri)
    images = np.random.default_rng(1).random((2, 40, 56, 1), dtype=np.float32)
    masks = champion.predict(images)
    assert masks.shape == (2, 40, 56) and masks.dtype == np.uint8
    expected = np.stack([windows(net, x) > 0.5 for x in images])
    assert np.mean(masks != expected) < 1e-3
