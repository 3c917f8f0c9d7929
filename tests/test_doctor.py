"""``segsweep doctor``: every data fault named with its file, risky settings warned, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from segsweep.cli import main
from segsweep.config import Config, save_config
from segsweep.data.synth import synthesize
from segsweep.doctor import Report, examine, l2_penalty_at_init

DSB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dsb2018_nuclei_96"

GRAY8 = np.random.default_rng(0).integers(0, 256, (6, 5), dtype=np.uint8)
LESION = np.zeros((6, 5), np.uint8)
LESION[1:4, 2:4] = 255
IN_BETWEEN = np.resize(np.array([0, 3, 128, 250, 255], np.uint8), (6, 5))  # resized or JPEG'd
SAFE = {  # nothing risky for the phantoms below
    "data.image_size": 64,
    "space.loss": ["dice_ce"],
    "space.dropout": [0.0, 0.2],
    "space.l2": [1e-7, 1e-6],
    "space.batch_norm": [False],
}
SEED = {  # the seed case's setup
    "space.loss": ["weighted_dice"],
    "space.dice_w2": [0.7],
    "space.dropout": [0.5],
    "space.l2": [1e-4],
    "space.base_filters": [32],
    "space.depth": [4],
    "space.deep_supervision": [False],
}


def doctor(*args: str):
    return CliRunner().invoke(main, ["doctor", *args])


def sets(settings: dict) -> list[str]:
    """``{"a.b": [1]}`` -> ``["--set", "a.b=[1]"]`` (TOML values)."""
    out = []
    for key, value in settings.items():
        out += ["--set", f"{key}={json.dumps(value)}"]
    return out


def codes(report: Report, level: str) -> set[str]:
    return {f.code for f in report.of_level(level)}


def check(data: Path, **settings) -> Report:
    return examine(Config().replace(**{"data.dir": str(data), **settings}))


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phantoms")
    synthesize(out, n=40, size=64, seed=0)
    return out


# --- data faults: every one reported with its file, exit 2 -------------------------------------


@pytest.mark.parametrize(
    ("images", "masks", "code", "files"),
    [
        ({}, {"b.png": LESION}, "orphan_mask", ["masks/b.png"]),
        ({"b.png": GRAY8}, {}, "orphan_image", ["images/b.png"]),
        (
            {"b.png": GRAY8},
            {"b.png": np.zeros((5, 6), np.uint8)},
            "size_mismatch",
            ["images/b.png", "masks/b.png"],
        ),
        ({"b.png": b"garbage"}, {"b.png": LESION}, "unreadable", ["images/b.png"]),
        ({"b.png": GRAY8}, {"b.png": b"garbage"}, "unreadable", ["masks/b.png"]),
        (
            {"b.png": GRAY8},
            {"b.png": np.dstack([LESION, LESION, 0 * LESION])},
            "unreadable",
            ["masks/b.png"],
        ),  # a colour mask
        ({"b.png": GRAY8}, {"b.png": IN_BETWEEN}, "in_between_mask", ["masks/b.png"]),
        ({"b.png": GRAY8}, {"b.jpg": LESION}, "jpeg_mask", ["masks/b.jpg"]),
        ({"b.png": GRAY8}, {"b.gif": LESION}, "unsupported_file", ["masks/b.gif"]),
        (
            {"b.png": GRAY8, "b.tif": GRAY8},
            {"b.png": LESION},
            "stem_clash",
            ["images/b.png", "images/b.tif"],
        ),
        ({"b.npy": GRAY8 * 2.0}, {"b.png": LESION}, "intensity", ["images/b.npy"]),
    ],
)
def test_each_data_fault_is_an_error_naming_its_file(make_data_dir, images, masks, code, files):
    root = make_data_dir({"ok.png": GRAY8, **images}, {"ok.png": LESION, **masks})
    found = [f for f in check(root).findings if f.code == code]
    assert [f.level for f in found] == ["error"] and list(found[0].files) == files
    result = doctor("--data", str(root))
    assert result.exit_code == 2
    assert "error: " in result.output and files[-1].split("/")[1] in result.output


@pytest.mark.parametrize(
    ("images", "masks", "code", "files"),
    [
        ({}, {"a.png": LESION}, "empty_folder", ["images"]),
        ({"a.png": GRAY8}, {}, "empty_folder", ["masks"]),
        (
            {"a.png": GRAY8, "b.png": GRAY8},
            {"a.png": 0 * LESION, "b.png": 0 * LESION},
            "no_lesion",
            [],
        ),
    ],
)
def test_folder_faults_are_one_error(make_data_dir, images, masks, code, files):
    report = check(make_data_dir(images, masks))
    assert [(f.code, list(f.files)) for f in report.of_level("error")] == [(code, files)]
    assert report.exit_code == 2


def test_missing_data_folder_is_one_error(tmp_path):
    report = check(tmp_path / "nowhere")
    assert [f.code for f in report.of_level("error")] == ["folder_missing"]
    result = doctor("--data", str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "nowhere not found" in result.output


def test_every_fault_in_one_folder_is_reported_not_just_the_first(make_data_dir):
    root = make_data_dir(
        {"ok.png": GRAY8, "a.png": b"garbage", "b.png": GRAY8, "c.png": GRAY8, "d.png": GRAY8},
        {
            "ok.png": LESION,
            "a.png": LESION,
            "b.png": IN_BETWEEN,
            "c.png": LESION[:5],
            "e.png": LESION,
        },
    )
    errors = {(f.code, f.files[-1]) for f in check(root).of_level("error")}
    assert errors == {
        ("unreadable", "images/a.png"),
        ("in_between_mask", "masks/b.png"),
        ("size_mismatch", "masks/c.png"),
        ("orphan_image", "images/d.png"),
        ("orphan_mask", "masks/e.png"),
    }


def test_mask_threshold_accepts_in_between_masks(make_data_dir):
    root = make_data_dir({"a.png": GRAY8}, {"a.png": IN_BETWEEN})
    assert "in_between_mask" in codes(check(root), "error")
    report = check(root, **{"data.mask_threshold": 0.5})
    assert not report.of_level("error")
    assert report.facts["mask_values"] == {"in-between": 1}


# --- facts -------------------------------------------------------------------------------------


def test_facts_of_a_small_mixed_folder(make_data_dir):
    root = make_data_dir(
        {"a.png": GRAY8, "b.png": GRAY8, "c.tif": np.dstack([GRAY8] * 3).astype(np.uint16)},
        {"a.png": LESION, "b.png": LESION // 255, "c.npy": np.zeros((6, 5), bool)},
    )
    facts = check(root).facts
    assert facts["pairs"] == facts["usable"] == 3
    assert facts["sizes"] == {"6x5": 3}
    assert facts["dtypes"] == {"uint8": 2, "uint16": 1} and facts["channels"] == {"1": 2, "3": 1}
    assert facts["colour"] == 0  # three equal channels are gray
    assert facts["mask_values"] == {"{0, 1}": 1, "{0, 255}": 1, "{0}": 1}
    assert facts["lesion_fraction"] == {"min": 0.2, "median": 0.2, "max": 0.2}
    assert facts["lesion_free"] == 1 and facts["lesion_pixel_fraction"] == pytest.approx(0.4 / 3)
    assert facts["lesions"] == {"count": 2, "smallest_px": 6, "median_px": 6.0}


# --- settings: clean, the seed case, and each risk ---------------------------------------------


def test_clean_phantoms_with_safe_settings_exit_0(phantoms):
    result = doctor("--data", str(phantoms), *sets(SAFE))
    assert result.exit_code == 0, result.output
    assert "warning:" not in result.output and "exit 0: nothing wrong" in result.output


def test_seed_setup_warns_about_weighted_dice_dropout_and_l2(phantoms):
    report = check(phantoms, **{**SAFE, **SEED})
    assert codes(report, "warning") == {"weighted_dice", "dropout", "l2_at_init"}
    assert report.exit_code == 1
    assert report.facts["l2_at_init"]["penalty"] == pytest.approx(1.0626)
    message = next(f.message for f in report.findings if f.code == "weighted_dice")
    assert "w1 = 0.3" in message and "1.55% of the pixels" in message
    result = doctor("--data", str(phantoms), *sets({**SAFE, **SEED}))
    assert result.exit_code == 1 and result.output.count("warning:") == 3


@pytest.mark.parametrize(
    ("settings", "code"),
    [
        ({"data.image_size": 16}, "small_lesions"),
        ({"space.batch_norm": [True], "space.bn_momentum": [0.99]}, "bn_momentum"),
        ({"data.val_fraction": 0.05}, "few_val_lesions"),
        ({"space.loss": ["weighted_dice"], "space.dice_w2": [0.5, 0.9]}, "weighted_dice"),
        ({"space.dropout": [0.0, 0.5]}, "dropout"),
        ({"space.l2": [1e-6, 1e-5]}, "l2_at_init"),  # 1e-5 already costs about 0.11 at start
    ],
)
def test_each_risky_setting_warns(phantoms, settings, code):
    report = check(phantoms, **{**SAFE, **settings})
    assert [f.code for f in report.of_level("warning")] == [code]
    assert report.exit_code == 1


def test_enough_steps_per_epoch_let_a_slow_batch_norm_catch_up(phantoms):
    slow = {**SAFE, "space.batch_norm": [True], "space.bn_momentum": [0.99]}
    assert codes(check(phantoms, **slow), "warning") == {"bn_momentum"}
    assert not check(phantoms, **slow, **{"train.steps_per_epoch": 100}).of_level("warning")


def test_small_lesion_warning_names_the_size_that_keeps_them(phantoms):
    report = check(phantoms, **{**SAFE, "data.image_size": 16})
    (finding,) = report.of_level("warning")
    assert "at data.image_size = 16" in finding.message and finding.files
    wanted = int(finding.message.rsplit(" ", 1)[1])
    assert not check(phantoms, **{**SAFE, "data.image_size": wanted}).of_level("warning")


def test_image_size_not_divisible_by_the_depth_is_an_error(phantoms):
    report = check(phantoms, **{**SAFE, "data.image_size": 100, "space.depth": [2, 3]})
    (error,) = report.of_level("error")
    assert error.code == "image_size" and "set data.image_size to 96 or 104" in error.message


@pytest.mark.parametrize(
    ("images", "settings", "code"),
    [
        ({"a.tif": (GRAY8.astype(np.uint16) * 16)}, {}, "dim_images"),  # 12-bit in 16-bit files
        ({"a.png": np.zeros((6, 10), np.uint8)}, {}, "not_square"),
        ({"a.png": np.dstack([GRAY8, GRAY8, 255 - GRAY8])}, {}, "mixed_colour"),
        ({}, {}, "few_pairs"),
    ],
)
def test_risky_data_warns(make_data_dir, images, settings, code):
    masks = {f"{Path(n).stem}.png": np.zeros(np.shape(a)[:2], np.uint8) for n, a in images.items()}
    root = make_data_dir({"ok.png": GRAY8, **images}, {"ok.png": LESION, **masks})
    report = check(root, **{**SAFE, **settings})
    assert code in codes(report, "warning") and not report.of_level("error")


def test_non_square_warning_names_data_resize_and_goes_with_pad(make_data_dir):
    tall = np.zeros((12, 6), np.uint8)
    square = {"ok.png": GRAY8[:5]}, {"ok.png": LESION[:5]}  # GRAY8 itself is 6x5
    root = make_data_dir({**square[0], "t.png": tall}, {**square[1], "t.png": tall})
    (finding,) = [f for f in check(root).findings if f.code == "not_square"]
    assert 'data.resize = "stretch"' in finding.message
    assert 'set data.resize = "pad"' in finding.message and finding.files == ("images/t.png",)
    assert "not_square" not in codes(check(root, **{"data.resize": "pad"}), "warning")


def test_small_lesion_size_under_pad_follows_the_long_side(make_data_dir):
    mask = np.zeros((64, 16), np.uint8)
    mask[10:14, 5:9] = 255  # 16 px; at image_size 32 with pad: scale (32/64)**2 -> 4 px
    root = make_data_dir({"a.png": np.zeros((64, 16), np.uint8)}, {"a.png": mask})
    assert "small_lesions" not in codes(check(root, **{"data.resize": "pad"}), "warning")
    report = check(root, **{"data.resize": "pad", "data.image_size": 16})
    (finding,) = [f for f in report.findings if f.code == "small_lesions"]
    assert finding.message.endswith("set data.image_size to at least 32")


def test_dim_images_warning_goes_with_minmax(make_data_dir):
    root = make_data_dir({"a.tif": GRAY8.astype(np.uint16) * 16}, {"a.png": LESION})
    assert "dim_images" in codes(check(root), "warning")
    assert "dim_images" not in codes(check(root, **{"data.intensity": "minmax"}), "warning")


# --- the L2 penalty at initialisation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # depth 1, filters 2, 4: convs 2+2 (X00) + 4+4 (X10) + 2+2 (X01), transposed c_in 4,
        # one head 1 -> 2 * 21
        ({"depth": 1, "base_filters": 2}, 42.0),
        ({"depth": 1, "base_filters": 2, "deep_supervision": True}, 42.0),
        ({"depth": 2, "base_filters": 2, "deep_supervision": True}, 2 * 62.0),
        ({"depth": 4, "base_filters": 32}, 2 * 5313),  # the seed case's filters 32..512
    ],
)
def test_l2_penalty_at_init_by_hand(model, expected):
    assert l2_penalty_at_init(l2=1.0, **model) == pytest.approx(expected)


@pytest.mark.slow
def test_l2_penalty_at_init_matches_a_fresh_keras_model():
    keras = pytest.importorskip("keras")
    from segsweep.model.unetpp import build_unetpp

    keras.utils.set_random_seed(0)
    model = build_unetpp(
        depth=3,
        base_filters=8,
        dropout=0.0,
        batch_norm=False,
        l2=1e-4,
        deep_supervision=True,
        in_channels=1,
    )
    measured = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    expected = l2_penalty_at_init(l2=1e-4, depth=3, base_filters=8, deep_supervision=True)
    assert measured == pytest.approx(expected, rel=0.03)


# --- the command -------------------------------------------------------------------------------


def test_json_output_parses_and_matches_the_api(phantoms):
    result = doctor("--data", str(phantoms), "--json", *sets({**SAFE, **SEED}))
    out = json.loads(result.output)
    report = check(phantoms, **{**SAFE, **SEED})
    assert out == json.loads(json.dumps(report.to_dict()))
    assert out["exit_code"] == result.exit_code == 1
    assert set(out) == {"data", "facts", "findings", "exit_code"}
    assert {"level", "code", "message", "files"} == set(out["findings"][0])


def test_name_reads_the_study_settings(phantoms, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config().replace(**{"data.dir": str(phantoms), "study.name": "lesion", **SAFE})
    save_config(cfg, tmp_path / "studies" / "lesion.toml")
    assert doctor("lesion").exit_code == 0
    assert doctor().exit_code == 0  # the one study in studies/
    assert doctor("lesion", "--set", "space.dropout=[0.6]").exit_code == 1


def test_no_study_and_no_data_says_how_to_go_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctor()
    assert result.exit_code == 2 and "or pass --data DIR" in result.output


def test_unknown_setting_fails_with_a_suggestion(phantoms):
    result = doctor("--data", str(phantoms), "--set", "space.dropuot=[0.1]")
    assert result.exit_code == 2 and "Did you mean 'space.dropout'?" in result.output


@pytest.mark.skipif(not DSB.is_dir(), reason=f"{DSB} is not here (it ships in ../shared/data)")
def test_dsb2018_has_no_data_error():
    report = check(DSB, **{"data.image_size": 96})
    assert not report.of_level("error")
    assert report.facts["pairs"] == 670 and report.facts["mask_values"] == {"{0, 255}": 670}
    assert report.facts["colour"] == 108
