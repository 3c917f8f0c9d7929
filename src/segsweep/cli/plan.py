"""``segsweep plan``: the data's fingerprint and the settings planned from it, with reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from segsweep.cli._common import set_option
from segsweep.config import Config, parse_assignment

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


def _counts(counts: dict[str, int]) -> str:
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{k} x{v}" for k, v in counts.items())


def volume_lines(summary: dict[str, Any]) -> list[str]:
    v = summary["volumes"]
    sizes = _counts(summary["sizes"])
    test = f", {v['test_cases']} held-out test cases" if v["test_cases"] else ""
    return [
        f"data: {summary['data']}: {v['cases']} cases ({v['layout']} layout){test}, "
        f"{_counts(v['shapes'])} voxels of {_counts(v['spacing_mm'])} mm, {summary['dtype']}",
        f"  slices: {v['slices']} along voxel axis {'/'.join(map(str, v['slice_axis']))}, "
        f"{sizes} px, {_counts(v['in_plane_spacing_mm'])} mm pixels, "
        f"{'/'.join(f'{s:g}' for s in v['slice_spacing_mm'])} mm apart",
        f"  3D lesions: {v['lesions_3d']} (26-connected); per lesion, p5 / median / p95: "
        f"{_pct(v['lesion_voxels'])} voxels, {_pct(v['lesion_mm3'])} mm3; "
        f"{v['specks']['count']} under {v['specks']['under_voxels']} voxels left out as specks",
        f"  lesions planned for: {summary['lesions']}; {summary['lesion_free_share']:.0%} of "
        f"slices lesion-free; {summary['lesion_pixel_fraction']:.2%} of voxels",
        f"  per lesion in-plane, p5 / median / p95: largest section "
        f"{_pct(summary['lesion_area_px'])} px, smallest extent "
        f"{_pct(summary['lesion_smallest_extent_px'])} px ("
        f"{_pct(summary['lesion_smallest_extent_mm'])} mm), largest extent "
        f"{_pct(summary['lesion_largest_extent_px'])} px",
        f"  channel statistics from {v['channel_statistics_from']}, sampled per case:",
    ]


def fingerprint_lines(summary: dict[str, Any]) -> list[str]:
    sizes = _counts(summary["sizes"])
    sy, sx = summary["spacing"]
    lines = volume_lines(summary) if "volumes" in summary else [
        f"data: {summary['data']}: {summary['images']} images ({sizes}), {summary['dtype']}"
        f"{', colour' if summary['colour'] else ''}, pixel spacing {sy:g} x {sx:g}",
        f"  lesions: {summary['lesions']}; {summary['lesion_free_share']:.0%} of images "
        f"lesion-free; {summary['lesion_pixel_fraction']:.2%} of pixels",
        f"  per lesion, p5 / median / p95: area {_pct(summary['lesion_area_px'])} px, smallest "
        f"extent {_pct(summary['lesion_smallest_extent_px'])} px, largest extent "
        f"{_pct(summary['lesion_largest_extent_px'])} px",
    ]  # fmt: skip
    for i, c in enumerate(summary["channels"]):
        name = f" '{c['name']}'" if c["name"] else ""
        lines.append(
            f"  channel {i}{name}: mean {c['mean']:.4g}, sd {c['sd']:.4g}, 0.5-99.5 % "
            f"{c['low']:.4g}..{c['high']:.4g}, range {c['min']:.4g}..{c['max']:.4g}"
        )
    return lines


def render(plan: Plan, left_out: dict[str, str], cfg: Config) -> str:
    from segsweep.plan import shown

    lines = fingerprint_lines(plan.fingerprint.summary())
    lines.append(f"budget: {plan.budget.describe()} (the [plan] settings)")
    lines.append("plan:")
    for key, d in plan.decisions.items():
        mark = " (yours)" if d.source == "yours" else ""
        lines.append(f"  {key} = {shown(d.value)}{mark}")
        lines.append(f"      {d.reason}")
        if key in left_out:  # the setting keeps its value: this data does not use it
            lines.append(f"      not applied: {left_out[key]}")
    if plan.fingerprint.volumes is not None:
        lines.append(f"  search.objective = {cfg.search.objective} (not planned)")
        lines.append("      volumes are scored per case, as study create sets them up")
    return "\n".join(lines)


@click.command("plan")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="folder with images/ and masks/ (pictures or NIfTI), or an nnU-Net or Decathlon "
    "dataset folder",
)
@set_option
@click.option("--json", "as_json", is_flag=True, help="print the fingerprint and plan as JSON")
def command(data_dir: Path, assignments: tuple[str, ...], as_json: bool) -> None:
    """Plan resolution, depth, filters, batch, steps per epoch, intensity and search ranges
    from the data in DIR, each with its reason; `study create` writes the same plan.

    A --set value (say train.epochs=40 or plan.trial_minutes=60) wins over the plan and is
    marked as yours; the rules after it plan around it.
    """
    from segsweep.data.source import volume_defaults

    given = dict(parse_assignment(a) for a in assignments)
    cfg = Config().replace(**given, **{"data.dir": str(data_dir)})
    cfg = volume_defaults(cfg, given=given)  # the objective a volume study is created with
    plan, _, left_out = make(cfg, given)
    if as_json:
        click.echo(json.dumps(plan.to_dict() | {"not_settings_yet": sorted(left_out)}, indent=1))
    else:
        click.echo(render(plan, left_out, cfg))
