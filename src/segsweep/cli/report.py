"""``segsweep study report``: Optuna's plots and a one-page summary, logged to MLflow."""

from __future__ import annotations

from pathlib import Path

import click

from segsweep.cli._common import resolve_study, storage_option, tracking_option
from segsweep.cli.study import command as study_group


@study_group.command("report")
@click.argument("name", required=False)
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(path_type=Path),
    help="folder for the PNGs and summary.md; default: reports/NAME",
)
@storage_option
@tracking_option
def study_report(
    name: str | None, out_dir: Path | None, storage: str | None, tracking_uri: str | None
) -> None:
    """Plots (history, importances, parallel coordinates, per-epoch values) and summary.md."""
    from segsweep.results.report import write_report
    from segsweep.store.storage import load_study, storage_url

    cfg = resolve_study(name, storage, tracking_uri)
    study = load_study(cfg.study.name, storage_url(cfg))
    out = out_dir or Path("reports") / cfg.study.name
    report = write_report(study, out, tracking_uri=cfg.tracking.uri)
    click.echo(f"wrote {len(report.files)} files to {out} (logged to MLflow run {report.run_id})")
    for plot, why in report.skipped.items():
        click.echo(f"  {plot} not drawn: {why}")
    click.echo(f"summary: {out / 'summary.md'}")
