"""``segsweep doctor``: a report on the data and the study settings before anything trains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from segsweep.cli._common import resolve_study, set_option, storage_option
from segsweep.config import Config, parse_assignment
from segsweep.errors import StudyError

if TYPE_CHECKING:
    from segsweep.doctor import Report

_PREFIX = {"error": "error:", "warning": "warning:", "info": "ok:"}
_SHOWN = 5  # findings of one code printed before "... N more like this"


def _settings(
    name: str | None, data_dir: Path | None, storage: str | None, assignments: tuple[str, ...]
) -> Config:
    """studies/NAME.toml (NAME may be left out when studies/ holds one), else defaults + --data."""
    overrides = dict(parse_assignment(a) for a in assignments)
    if data_dir is not None:
        overrides["data.dir"] = str(data_dir)
    if name is None and data_dir is not None:
        from segsweep.data.source import volume_defaults

        return volume_defaults(Config().replace(**overrides), given=overrides)
    try:
        base = resolve_study(name, storage, None)
    except StudyError as err:
        if name is not None:
            raise
        # no study in studies/, or several: --data is the other way in
        raise StudyError(
            f"{err}; or pass --data DIR to check a folder with the default settings"
        ) from None
    return base.replace(**overrides)


def _pct(x: float) -> str:
    return f"{100 * x:.3g} %"


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in counts.items()) or "none"


def _volume_lines(facts: dict[str, Any]) -> list[str]:
    if "cases" not in facts:
        return [f"  layout: {facts['layout']}"]
    voxels = facts["lesion_voxels_per_case"]
    share = facts["lesion_free_share"]
    return [
        f"  layout: {facts['layout']} (NIfTI volumes); {facts['cases']} cases, "
        f"{facts['test_cases']} test cases",
        f"  volumes: {', '.join(facts['shapes'])} voxels, spacing {', '.join(facts['spacing_mm'])}"
        f" mm, anisotropy {facts['anisotropy']:.3g}, channels "
        f"{', '.join(map(str, facts['channels']))}",
        f"  slices: {facts['slices']} along axis {', '.join(map(str, facts['slice_axis']))}; "
        f"{facts['lesion_free_slices']} lesion-free ({_pct(share) if share is not None else '-'})",
        f"  lesion voxels per case: min {voxels['min']}, median {voxels['median']:g}, "
        f"max {voxels['max']}",
    ]


def _fact_lines(facts: dict[str, Any]) -> list[str]:
    if facts.get("layout", "pictures") != "pictures":
        return _volume_lines(facts)
    ranges = ", ".join(f"{d} {lo:g}..{hi:g}" for d, (lo, hi) in facts["intensity_range"].items())
    lines = [
        f"  pairs: {facts['pairs']} matched, {facts['readable']} readable, "
        f"{facts['usable']} usable",
        f"  sizes: {_counted(facts['sizes'])}",
        f"  images: {_counted(facts['dtypes'])}; channels {_counted(facts['channels'])}, "
        f"{facts['colour']} with colour; intensity {ranges or 'none'}",
        f"  masks: {_counted(facts['mask_values'])}",
    ]
    spread, lesions = facts["lesion_fraction"], facts["lesions"]
    if spread:
        lines.append(
            f"  lesion fraction per image with a lesion: min {_pct(spread['min'])}, median "
            f"{_pct(spread['median'])}, max {_pct(spread['max'])}; "
            f"{facts['lesion_free']} images lesion-free ({_pct(facts['lesion_free_share'])}); "
            f"{_pct(facts['lesion_pixel_fraction'])} of all pixels"
        )
        lines.append(
            f"  lesions (8-connected, at source size): {lesions['count']}, smallest "
            f"{lesions['smallest_px']} px, median {lesions['median_px']:g} px"
        )
    return lines


def render(report: Report) -> str:
    """The human report: facts, then one line per finding (at most _SHOWN per code)."""
    lines = [f"data: {report.data}", *_fact_lines(report.facts), "checks:"]
    shown: dict[str, int] = {}
    for finding in report.findings:
        shown[finding.code] = shown.get(finding.code, 0) + 1
        if shown[finding.code] <= _SHOWN:
            lines.append(f"  {_PREFIX[finding.level]} {finding.message}")
    for code, count in shown.items():
        if count > _SHOWN:
            lines.append(f"  ... {count - _SHOWN} more {code} findings (--json lists all)")
    verdict = {0: "nothing wrong", 1: "warnings", 2: "errors"}[report.exit_code]
    lines.append(f"exit {report.exit_code}: {verdict}")
    return "\n".join(lines)


@click.command("doctor")
@click.argument("name", required=False)
@click.option(
    "--data",
    "data_dir",
    default=None,
    type=click.Path(path_type=Path),
    help="folder with images/ and masks/; without NAME, judged against the default settings",
)
@set_option
@storage_option
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.pass_context
def command(
    ctx: click.Context,
    name: str | None,
    data_dir: Path | None,
    assignments: tuple[str, ...],
    storage: str | None,
    as_json: bool,
) -> None:
    """Check the data and the settings of study NAME (or --data DIR) before anything trains.

    Exit 0 when nothing is wrong, 1 when a setting is risky for the data, 2 on data errors.
    """
    from segsweep.doctor import examine

    report = examine(_settings(name, data_dir, storage, assignments))
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else render(report))
    ctx.exit(report.exit_code)
