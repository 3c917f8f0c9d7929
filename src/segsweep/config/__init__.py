"""Settings: one frozen table of every value that changes a result, parsed once at the edge.

A study's settings live in ``studies/NAME.toml``. Each field below carries its help text and its
check in ``metadata``, so the TOML writer, the ``--set`` parser and the validator all read the same
table; adding a setting is adding one field.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from segsweep.config._checks import Check, is_number
from segsweep.config._sections import (
    LOSSES,
    OBJECTIVES,
    SCHEDULES,
    SECTIONS,
    AugmentSettings,
    DataSettings,
    FinalizeSettings,
    MetricsSettings,
    PlanSettings,
    SearchSettings,
    SpaceSettings,
    StudySettings,
    TrackingSettings,
    TrainSettings,
)
from segsweep.errors import ConfigError

__all__ = [
    "LOSSES",
    "OBJECTIVES",
    "SCHEDULES",
    "AugmentSettings",
    "Check",
    "Config",
    "DataSettings",
    "FinalizeSettings",
    "MetricsSettings",
    "PlanSettings",
    "SearchSettings",
    "SpaceSettings",
    "StudySettings",
    "TrackingSettings",
    "TrainSettings",
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


@dataclass(frozen=True)
class Config:
    study: StudySettings = field(default_factory=StudySettings)
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    finalize: FinalizeSettings = field(default_factory=FinalizeSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    plan: PlanSettings = field(default_factory=PlanSettings)
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
    if isinstance(f.default, str) and is_number(value):
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


def dump_toml(
    cfg: Config, *, header: Iterable[str] = (), notes: Mapping[str, str] | None = None
) -> str:
    """Every setting with its value and a comment saying what it means; ``notes`` adds a second
    comment line to a dotted key (why the planner chose its value, or that the user set it)."""
    notes = notes or {}
    lines = [f"# {h}" for h in header]
    for section, cls in SECTIONS.items():
        lines += ["", f"[{section}]"]
        values = getattr(cfg, section)
        for f in fields(cls):
            lines.append(f"# {f.metadata['help']}")
            if note := notes.get(f"{section}.{f.name}"):
                lines.append(f"# {note}")
            lines.append(f"{f.name} = {_toml_value(getattr(values, f.name))}")
    return "\n".join(lines).lstrip("\n") + "\n"


def save_config(
    cfg: Config,
    path: Path,
    *,
    header: Iterable[str] = (),
    notes: Mapping[str, str] | None = None,
) -> None:
    """Write atomically, so an interrupted write never leaves half a settings file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dump_toml(cfg, header=header, notes=notes))
    tmp.replace(path)
