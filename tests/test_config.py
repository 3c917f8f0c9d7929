"""Settings: the TOML file, ``--set`` parsing and the checks that name what is accepted."""

from __future__ import annotations

import tomllib

import pytest

from segsweep.config import (
    Config,
    all_keys,
    config_from_dict,
    dump_toml,
    load_config,
    parse_assignment,
    save_config,
)
from segsweep.errors import ConfigError


def test_defaults_round_trip_through_toml():
    assert config_from_dict(tomllib.loads(dump_toml(Config()))) == Config()


def test_strings_with_quotes_and_backslashes_round_trip():
    cfg = Config().replace(**{"data.group_pattern": r'^(\d+)_"x"\\', "data.dir": r"C:\data"})
    assert config_from_dict(tomllib.loads(dump_toml(cfg))) == cfg


def test_every_setting_is_written_with_a_comment_above_it():
    lines = dump_toml(Config(), header=["made by a test"]).splitlines()
    assert lines[0] == "# made by a test"
    section = None
    seen = set()
    for i, line in enumerate(lines):
        if line.startswith("["):
            section = line.strip("[]")
        elif " = " in line and not line.startswith("#"):
            seen.add(f"{section}.{line.split(' = ')[0]}")
            assert lines[i - 1].startswith("# ") and len(lines[i - 1]) > 4, line
    assert seen == set(all_keys())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data.image_size=64", ("data.image_size", 64)),
        ("train.threshold = 0.3", ("train.threshold", 0.3)),
        ("space.depth=[3]", ("space.depth", [3])),
        ("space.lr=[1e-4, 1e-2]", ("space.lr", [1e-4, 1e-2])),
        ('space.loss=["dice_ce", "focal_tversky"]', ("space.loss", ["dice_ce", "focal_tversky"])),
        ("augment.flip=false", ("augment.flip", False)),
        ("tracking.log_model=true", ("tracking.log_model", True)),
        ("data.dir=data/scans", ("data.dir", "data/scans")),  # not TOML: taken as a string
        ("data.dir=/mnt/my scans/v2", ("data.dir", "/mnt/my scans/v2")),
        ('data.dir="quoted"', ("data.dir", "quoted")),
    ],
)
def test_set_parses_toml_values_and_bare_strings(text, expected):
    assert parse_assignment(text) == expected


@pytest.mark.parametrize("text", ["data.image_size", "=64", ""])
def test_set_without_key_and_value_is_an_error(text):
    with pytest.raises(ConfigError, match="KEY=VALUE") as err:
        parse_assignment(text)
    assert repr(text) in str(err.value)


def test_unknown_setting_suggests_the_close_one():
    with pytest.raises(
        ConfigError,
        match=r"Unknown setting 'data\.imge_size'\. "
        r"Did you mean 'data\.image_size'\?",
    ):
        config_from_dict({"data": {"imge_size": 64}})
    with pytest.raises(ConfigError, match="Did you mean 'train.epochs'"):
        Config().replace(**{"train.epoch": 2})


def test_unknown_section_suggests_or_lists_the_sections():
    with pytest.raises(ConfigError, match=r"Unknown section \[dat\]\. Did you mean \[data\]\?"):
        config_from_dict({"dat": {"image_size": 64}})
    with pytest.raises(ConfigError, match=r"Unknown section \[zzz\]\. Known: study, data"):
        config_from_dict({"zzz": {}})


@pytest.mark.parametrize(
    ("section", "name", "value", "accepted"),
    [
        ("data", "image_size", "big", "an int in [8, 4096]"),
        ("train", "epochs", True, "an int in [1, 10000]"),
        ("space", "lr", [0, 1], "[low, high] (log scale, within [1e-07, 1.0])"),
        ("space", "l2", [0.0, 1e-3], "[low, high] (log scale"),
        ("space", "dropout", [0.6, 0.2], "[low, high] (within [0.0, 0.95])"),
        ("space", "loss", ["dice"], "one of 'weighted_dice', 'dice_ce', 'focal_tversky'"),
        ("space", "depth", [], "a non-empty list"),
        ("search", "pruner", "asha", "one of 'hyperband', 'sha', 'median', 'none'"),
        ("data", "val_fraction", 1.0, "a number in (0, 1)"),
        ("augment", "flip", "yes", "true or false"),
        ("data", "channels", 2, "0, 1 or 3"),
    ],
)
def test_bad_value_names_key_value_and_what_is_accepted(section, name, value, accepted):
    with pytest.raises(ConfigError) as err:
        config_from_dict({section: {name: value}})
    message = str(err.value)
    assert f"'{section}.{name}'" in message
    assert f"Got {value!r} instead." in message
    assert accepted in message


def test_ints_are_accepted_for_float_settings_and_stored_as_float():
    cfg = config_from_dict({"augment": {"rotation": 5, "shift": 0}, "train": {"threshold": 0.5}})
    assert cfg.augment.rotation == 5.0 and isinstance(cfg.augment.rotation, float)
    assert isinstance(cfg.augment.shift, float)
    assert "rotation = 5.0" in dump_toml(cfg)


def test_log_range_may_be_fixed_at_zero_to_switch_it_off():
    assert config_from_dict({"space": {"l2": [0.0]}}).space.l2 == (0.0,)


def test_replace_changes_dotted_keys_and_keeps_the_rest():
    cfg = Config().replace(**{"train.epochs": 2, "space.depth": [3], "data.dir": "x"})
    assert (cfg.train.epochs, cfg.space.depth, cfg.data.dir) == (2, (3,), "x")
    assert cfg.train.batch_size == Config().train.batch_size
    assert Config().train.epochs == 20  # the original is untouched


def test_replace_checks_the_new_values():
    with pytest.raises(ConfigError, match="'train.epochs'.*Got 0 instead"):
        Config().replace(**{"train.epochs": 0})


def test_load_config_of_a_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="no such settings file") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_load_config_of_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[data]\nimage_size = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_load_config_names_the_file_of_a_bad_setting(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("[data]\nimage_size = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: The 'data.image_size' setting")


def test_load_config_applies_overrides_over_the_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("[train]\nepochs = 7\nbatch_size = 4\n")
    cfg = load_config(path, {"train.epochs": 9})
    assert (cfg.train.epochs, cfg.train.batch_size) == (9, 4)
    assert cfg.data == Config().data  # settings the file leaves out keep their default


def test_save_config_writes_atomically_and_reloads_equal(tmp_path):
    cfg = Config().replace(**{"train.epochs": 3, "space.loss": ["dice_ce"]})
    path = tmp_path / "studies" / "s.toml"
    save_config(cfg, path, header=["hello"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["s.toml"]
    assert path.read_text().startswith("# hello\n")
    assert load_config(path) == cfg
    save_config(Config(), path)  # overwriting an existing file works too
    assert load_config(path) == Config()
    assert sorted(p.name for p in path.parent.iterdir()) == ["s.toml"]
