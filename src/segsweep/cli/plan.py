"""``segsweep plan``: the data's fingerprint and the settings planned from it, with reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from segsweep.cli._common import set_option
from segsweep.config import Config, parse_assignment
from segsweep.errors import DataError

if TYPE_CHECKING:
    from segsweep.plan import Plan

LADDER_CACHE = Path("studies") / "batch-ladder.json"  # beside the studies, one per machine


def make(cfg: Config, given: dict[str, Any]) -> tuple[Plan, Config, dict[str, str]]:
    """The plan for ``cfg`` (holding the user's ``given``), ``cfg`` with it applied, and the
    planned settings this segsweep cannot hold yet."""
    from segsweep.plan import apply_plan, plan_study

    plan = plan_study(cfg, given=given, cache=LADDER_CACHE)
    planned_cfg, left_out = apply_plan(cfg, plan)
    return plan, planned_cfg, left_out


def planned(cfg: Config, *, given: dict[str, Any]) -> tuple[Config, dict[str, str]]:
    """For ``study create``: ``cfg`` with the plan applied, and the TOML notes beside each
    planned value and each value the user set."""
    from segsweep.plan import shown

    plan, cfg, left_out = make(cfg, given)
    notes = {k: "yours: set with --set" for k in given}
    notes |= {k: plan.note(k) for k in plan.decisions if k not in left_out}
    values = ", ".join(
        f"{k.split('.')[1]} {shown(d.value)}"
        for k, d in plan.decisions.items()
        if k not in left_out and d.source == "plan"
    )
    click.echo(f"planned from the data ({plan.budget.describe()}): {values}")
    return cfg, notes


def _pct(p: dict | None) -> str:
    return "none" if p is None else f"{p['p5']:.3g} / {p['median']:.3g} / {p['p95']:.3g}"


def fingerprint_lines(summary: dict[str, Any]) -> list[str]:
    sizes = ", ".join(f"{k} x{v}" for k, v in summary["sizes"].items())
    sy, sx = summary["spacing"]
    lines = [
        f"data: {summary['data']}: {summary['images']} images ({sizes}), {summary['dtype']}"
        f"{', colour' if summary['colour'] else ''}, pixel spacing {sy:g} x {sx:g}",
        f"  lesions: {summary['lesions']}; {summary['lesion_free_share']:.0%} of images "
        f"lesion-free; {summary['lesion_pixel_fraction']:.2%} of pixels",
        f"  per lesion, p5 / median / p95: area {_pct(summary['lesion_area_px'])} px, smallest "
        f"extent {_pct(summary['lesion_smallest_extent_px'])} px, largest extent "
        f"{_pct(summary['lesion_largest_extent_px'])} px",
    ]
    for i, c in enumerate(summary["channels"]):
        name = f" '{c['name']}'" if c["name"] else ""
        lines.append(
            f"  channel {i}{name}: mean {c['mean']:.4g}, sd {c['sd']:.4g}, 0.5-99.5 % "
            f"{c['low']:.4g}..{c['high']:.4g}, range {c['min']:.4g}..{c['max']:.4g}"
        )
    return lines


def render(plan: Plan, left_out: dict[str, str]) -> str:
    from segsweep.plan import shown

    lines = fingerprint_lines(plan.fingerprint.summary())
    lines.append(f"budget: {plan.budget.describe()} (the [plan] settings)")
    lines.append("plan:")
    for key, d in plan.decisions.items():
        mark = " (yours)" if d.source == "yours" else ""
        later = " (not a setting of this segsweep yet)" if key in left_out else ""
        lines.append(f"  {key} = {shown(d.value)}{mark}{later}")
        lines.append(f"      {d.reason}")
    return "\n".join(lines)


@click.command("plan")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="folder with images/ and masks/",
)
@set_option
@click.option("--json", "as_json", is_flag=True, help="print the fingerprint and plan as JSON")
def command(data_dir: Path, assignments: tuple[str, ...], as_json: bool) -> None:
    """Plan resolution, depth, filters, batch, steps per epoch, intensity and search ranges
    from the data in DIR, each with its reason; `study create` writes the same plan.

    A --set value (say train.epochs=40 or plan.trial_minutes=60) wins over the plan and is
    marked as yours; the rules after it plan around it.
    """
    from segsweep.data.volumes import is_volume_dir

    if is_volume_dir(data_dir):
        raise DataError(
            f"{data_dir} holds NIfTI volumes; `segsweep plan` reads 2D image/mask pictures so "
            "far (study create gives volumes their own defaults)"
        )
    given = dict(parse_assignment(a) for a in assignments)
    cfg = Config().replace(**given, **{"data.dir": str(data_dir)})
    plan, _, left_out = make(cfg, given)
    if as_json:
        click.echo(json.dumps(plan.to_dict() | {"not_settings_yet": sorted(left_out)}, indent=1))
    else:
        click.echo(render(plan, left_out))
