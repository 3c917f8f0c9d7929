"""``segsweep explain``: one run in plain words, from what MLflow holds."""

from __future__ import annotations

import json

import click

from segsweep.cli._common import resolve_study, tracking_option
from segsweep.errors import SegsweepError


@click.command("explain")
@click.argument("target", metavar="RUN | study:NAME")
@click.option(
    "--trial",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="with study:NAME, trial N instead of the best trial",
)
@click.option("--json", "as_json", is_flag=True, help="print the explanation as JSON")
@tracking_option
def command(target: str, trial: int | None, as_json: bool, tracking_uri: str | None) -> None:
    """The loss split, the Dice, the lesion fractions and the diagnoses of one run.

    RUN is an MLflow run id; study:NAME is the best trial of study NAME (or --trial N): the best
    completed one, else, with none completed, the finished one whose last reported value is
    best, else the latest finished one.
    """
    from segsweep.results.explain import explain_run, render
    from segsweep.results.runs import run_of_trial

    if target.startswith("study:"):
        from segsweep.store.storage import load_study, storage_url

        cfg = resolve_study(target.removeprefix("study:"), None, None)
        run_id, _, why = run_of_trial(load_study(cfg.study.name, storage_url(cfg)), trial)
        uri = tracking_uri if tracking_uri is not None else cfg.tracking.uri
    elif trial is not None:
        raise SegsweepError(f"--trial needs study:NAME, not a run id ({target})")
    else:
        run_id, uri, why = target, tracking_uri or "", ""
    doc = explain_run(run_id, tracking_uri=uri)
    if why:
        doc = {"chosen": why, **doc}
    if as_json:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        click.echo((f"explaining {why}\n" if why else "") + render(doc))
