"""Settings: one frozen table of every value that changes a result, parsed once at the edge.

A study's settings live in ``studies/NAME.toml``. Each field below carries its help text and its
check in ``metadata``, so the TOML writer, the ``--set`` parser and the validator all read the same
table; adding a setting is adding one field.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from segsweep.errors import ConfigError

__all__ = [
    "Config",
    "SECTIONS",
    "all_keys",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "dump_toml",
    "load_config",
    "parse_assignment",
    "save_config",
]

Check = Callable[[Any], str | None]  # returns what is accepted when the value is bad


def _setting(default: Any, help: str, check: Check, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, "check": check, **extra})


def _one_of(*options: str) -> Check:
    return lambda v: None if v in options else "one of " + ", ".join(repr(o) for o in options)


def _int_in(lo: int, hi: int) -> Check:
    ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi  # noqa: E731
    return lambda v: None if ok(v) else f"an int in [{lo}, {hi}]"


def _float_in(lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False) -> Check:
    def check(v: Any) -> str | None:
        good = (
            _is_number(v) and (v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)
        )
        return (
            None
            if good
            else f"a number in {'(' if open_lo else '['}{lo}, {hi}{')' if open_hi else ']'}"
        )

    return check


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def _is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


# ---- search-space checks: a list of choices, or [low, high] for a range ------------------------


def _choices(allowed: Check) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list | tuple) or not v or any(allowed(x) for x in v):
            return f"a non-empty list whose items are each {allowed(object())}"
        return None

    return check


def _range(lo: float, hi: float, *, log: bool) -> Check:
    def check(v: Any) -> str | None:
        accepted = (
            f"[low, high] ({'log scale, ' if log else ''}within [{lo}, {hi}]) or [value] to fix it"
        )
        if not isinstance(v, list | tuple) or len(v) not in (1, 2) or not all(map(_is_number, v)):
            return accepted
        if len(v) == 1:
            return None if lo <= v[0] <= hi or (log and v[0] == 0) else accepted
        low, high = v
        return None if lo <= low <= high <= hi and not (log and low <= 0) else accepted

    return check


LOSSES = ("weighted_dice", "dice_ce", "focal_tversky")
SCHEDULES = ("constant", "poly", "cosine")


@dataclass(frozen=True)
class StudySettings:
    name: str = _setting("lesion", "study name; also the MLflow experiment name", _is_str)
    storage: str = _setting(
        "",
        'Optuna storage: "" = studies/NAME.journal (safe for many local workers), '
        "or a URL such as sqlite:///x.db or postgresql://user@host/db",
        _is_str,
    )


@dataclass(frozen=True)
class DataSettings:
    dir: str = _setting("data/phantom", "folder with images/ and masks/, paired by stem", _is_str)
    image_size: int = _setting(128, "square size images and masks are resized to", _int_in(8, 4096))
    val_fraction: float = _setting(
        0.2, "share of images held out for validation", _float_in(0, 1, open_lo=True, open_hi=True)
    )
    group_pattern: str = _setting(
        "", 'regex on the file stem naming its patient/case group; "" = no grouping', _is_str
    )
    mask_threshold: float = _setting(
        0.0,
        "0 = reject masks with in-between values; t in (0,1) = lesion where value > t * max",
        _float_in(0, 1, open_hi=True),
    )
    intensity: str = _setting(
        "dtype",
        '"dtype": divide by the type maximum (255, 65535); "minmax": per-image min-max',
        _one_of("dtype", "minmax"),
    )
    channels: int = _setting(
        0,
        "input channels: 0 = auto (3 if any image has colour), 1, 3",
        lambda v: None if v in (0, 1, 3) and not isinstance(v, bool) else "0, 1 or 3",
    )


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = _setting(
        20, "epochs per trial (the pruner's maximum resource)", _int_in(1, 10000)
    )
    batch_size: int = _setting(8, "images per training step", _int_in(1, 4096))
    threshold: float = _setting(
        0.5,
        "probability above which a pixel counts as lesion in the hard metrics",
        _float_in(0, 1, open_lo=True, open_hi=True),
    )

    mixed_precision: str = _setting(
        "auto",
        '"auto" = float16 compute on a GPU, float32 on the CPU; "on"; "off"',
        _one_of("auto", "on", "off"),
    )
    jit_compile: str = _setting(
        "auto",
        '"auto" = XLA-compile the train step on a GPU, not on the CPU; "on"; "off"',
        _one_of("auto", "on", "off"),
    )
    onednn: str = _setting(
        "auto",
        '"auto" = oneDNN kernels when several CPU workers share the cores (~1.2x less CPU '
        'per image on an AVX2 CPU, but a lone worker trains faster without them; see '
        'benchmarks/RESULTS.md), else TensorFlow\'s choice (on only for CPUs with AVX-512 '
        'VNNI, BF16 or AMX); "on"; "off"',
        _one_of("auto", "on", "off"),
    )


@dataclass(frozen=True)
class AugmentSettings:
    flip: bool = _setting(True, "random horizontal flip (image and mask together)", _is_bool)
    rotation: float = _setting(10.0, "maximum rotation in degrees; 0 = off", _float_in(0, 180))
    shift: float = _setting(
        0.1, "maximum shift as a fraction of the size; 0 = off", _float_in(0, 1)
    )
    zoom: float = _setting(0.0, "maximum zoom in or out as a fraction; 0 = off", _float_in(0, 0.9))


@dataclass(frozen=True)
class SearchSettings:
    sampler: str = _setting("tpe", "Optuna sampler", _one_of("tpe", "random"))
    pruner: str = _setting(
        "hyperband",
        'Optuna pruner: "hyperband"; "sha" = successive halving (one bracket, prunes hardest: '
        'for small budgets); "median"; "none"',
        _one_of("hyperband", "sha", "median", "none"),
    )
    seed: int = _setting(
        0, "seed of the sampler; trial n trains with seed + n", _int_in(0, 2**31 - 1)
    )
    min_epochs: int = _setting(1, "epochs a trial runs before it may be pruned", _int_in(1, 10000))
    prune_collapsed: bool = _setting(
        True,
        "prune a trial that predicts no lesion pixel for several epochs while its loss falls",
        _is_bool,
    )
    startup_trials: int = _setting(
        10, "trials sampled at random before TPE models the results", _int_in(0, 10000)
    )


@dataclass(frozen=True)
class TrackingSettings:
    uri: str = _setting(
        "", 'MLflow tracking URI; "" = MLflow\'s default in the working directory', _is_str
    )
    overlay_every: int = _setting(
        5,
        "log overlay PNGs of fixed validation cases every N epochs (and at the end)",
        _int_in(1, 10000),
    )
    log_model: bool = _setting(
        True, "log each completed trial's best-epoch model as an MLflow Keras model", _is_bool
    )


@dataclass(frozen=True)
class SpaceSettings:
    base_filters: tuple = _setting(
        (16, 32), "filters of the first level (choices)", _choices(_int_in(1, 1024)), kind="choice"
    )
    depth: tuple = _setting(
        (3, 4), "number of downsamplings (choices)", _choices(_int_in(1, 6)), kind="choice"
    )
    dropout: tuple = _setting(
        (0.0, 0.5), "dropout after every convolution", _range(0.0, 0.95, log=False), kind="range"
    )
    batch_norm: tuple = _setting(
        (False, True), "batch normalisation (choices)", _choices(_is_bool), kind="choice"
    )
    bn_momentum: tuple = _setting(
        (0.9,),
        "batch-norm momentum (choices); 0.99 lags behind on small data",
        _choices(_float_in(0, 1, open_hi=True)),
        kind="choice",
    )
    l2: tuple = _setting(
        (1e-6, 1e-3),
        "L2 penalty on every kernel ([0.0] = none)",
        _range(1e-12, 1.0, log=True),
        kind="logrange",
    )
    lr: tuple = _setting(
        (1e-4, 1e-2), "Adam learning rate", _range(1e-7, 1.0, log=True), kind="logrange"
    )
    schedule: tuple = _setting(
        SCHEDULES, "learning-rate schedule (choices)", _choices(_one_of(*SCHEDULES)), kind="choice"
    )
    loss: tuple = _setting(
        LOSSES, "loss function (choices)", _choices(_one_of(*LOSSES)), kind="choice"
    )
    dice_w2: tuple = _setting(
        (0.5, 0.95),
        "lesion weight of weighted_dice (w1 = 1 - w2)",
        _range(0.0, 1.0, log=False),
        kind="range",
    )
    smooth: tuple = _setting(
        (1e-5, 1.0), "Dice smoothing term s", _range(1e-9, 100.0, log=True), kind="logrange"
    )
    dice_reduction: tuple = _setting(
        ("batch",),
        '"batch" pools the Dice over the batch, "image" averages per-image Dice (choices)',
        _choices(_one_of("batch", "image")),
        kind="choice",
    )
    deep_supervision: tuple = _setting(
        (False, True), "train a head on every top node (choices)", _choices(_is_bool), kind="choice"
    )


SECTIONS: dict[str, type] = {
    "study": StudySettings,
    "data": DataSettings,
    "train": TrainSettings,
    "augment": AugmentSettings,
    "search": SearchSettings,
    "tracking": TrackingSettings,
    "space": SpaceSettings,
}


@dataclass(frozen=True)
class Config:
    study: StudySettings = field(default_factory=StudySettings)
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    space: SpaceSettings = field(default_factory=SpaceSettings)

    def replace(self, **flat: Any) -> Config:
        """A copy with dotted keys changed: ``cfg.replace(**{"train.epochs": 2})``."""
        return config_from_dict(apply_overrides(config_to_dict(self), flat))


def all_keys() -> list[str]:
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in fields(cls)]


def _field(key: str) -> dataclasses.Field:
    section, _, name = key.partition(".")
    for f in fields(SECTIONS.get(section, StudySettings)):
        if section in SECTIONS and f.name == name:
            return f
    hint = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.6)
    suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
    raise ConfigError(f"Unknown setting '{key}'.{suggestion}")


def _checked(key: str, value: Any) -> Any:
    f = _field(key)
    if isinstance(f.default, str) and _is_number(value):
        value = str(value)  # --set data.dir=2024 means the folder "2024"
    accepted = f.metadata["check"](value)
    if accepted:
        raise ConfigError(f"The '{key}' setting must be {accepted}. Got {value!r} instead.")
    if isinstance(f.default, float) and isinstance(value, int):
        return float(value)
    return tuple(value) if isinstance(value, list) else value


def _flatten(nested: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, values in nested.items():
        if section not in SECTIONS or not isinstance(values, Mapping):
            hint = difflib.get_close_matches(section, SECTIONS, n=1)
            raise ConfigError(
                f"Unknown section [{section}]."
                + (f" Did you mean [{hint[0]}]?" if hint else f" Known: {', '.join(SECTIONS)}.")
            )
        flat.update({f"{section}.{k}": v for k, v in values.items()})
    return flat


def config_from_dict(nested: Mapping[str, Any]) -> Config:
    """Validate every value; unknown keys fail with a suggestion."""
    flat = {k: _checked(k, v) for k, v in _flatten(nested).items()}
    sections = {
        s: cls(**{k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith(s + ".")})
        for s, cls in SECTIONS.items()
    }
    return Config(**sections)


def config_to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    return {s: dataclasses.asdict(getattr(cfg, s)) for s in SECTIONS}


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"space.depth=[3]"`` -> ``("space.depth", [3])``; a value that is not TOML is a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set takes KEY=VALUE, for example data.image_size=64. Got {text!r}.")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


def apply_overrides(nested: Mapping[str, Any], flat: Mapping[str, Any]) -> dict[str, Any]:
    out = {s: dict(v) for s, v in nested.items()}
    for key, value in flat.items():
        _field(key)
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


def load_config(path: Path, overrides: Mapping[str, Any] | None = None) -> Config:
    try:
        nested = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such settings file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    try:
        return config_from_dict(apply_overrides(nested, overrides or {}))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def dump_toml(cfg: Config, *, header: Iterable[str] = ()) -> str:
    """Every setting with its value and a comment saying what it means."""
    lines = [f"# {h}" for h in header]
    for section, cls in SECTIONS.items():
        lines += ["", f"[{section}]"]
        values = getattr(cfg, section)
        for f in fields(cls):
            lines.append(f"# {f.metadata['help']}")
            lines.append(f"{f.name} = {_toml_value(getattr(values, f.name))}")
    return "\n".join(lines).lstrip("\n") + "\n"


def save_config(cfg: Config, path: Path, *, header: Iterable[str] = ()) -> None:
    """Write atomically, so an interrupted write never leaves half a settings file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dump_toml(cfg, header=header))
    tmp.replace(path)
