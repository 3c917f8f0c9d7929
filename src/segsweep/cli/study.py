"""``segsweep study``: create, run and inspect Optuna studies."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import click

from segsweep.cli._common import (
    Group,
    print_best,
    resolve_study,
    storage_option,
    tracking_option,
)
from segsweep.errors import ConfigError


@click.group("study", cls=Group)
def command() -> None:
    """Create, run and inspect Optuna studies."""


@command.command("run")
@click.argument("name", required=False)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    required=True,
    help="run until N more trials have finished",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="K worker processes on the CPU"
)
@click.option(
    "--gpus",
    default=None,
    metavar="0,1",
    help="one worker per listed GPU (CUDA_VISIBLE_DEVICES per worker)",
)
@click.option(
    "--timeout", type=float, default=None, metavar="S", help="start no new trial after S seconds"
)
@storage_option
@tracking_option
def study_run(
    name: str | None,
    trials: int,
    workers: int | None,
    gpus: str | None,
    timeout: float | None,
    storage: str | None,
    tracking_uri: str | None,
) -> None:
    """Run N more trials of study NAME (NAME may be left out when studies/ holds one)."""
    from segsweep.data.source import objective_error
    from segsweep.store.storage import storage_url
    from segsweep.study.runner import run_study, worker_specs

    cfg = resolve_study(name, storage, tracking_uri)
    if msg := objective_error(cfg):  # doctor refuses it at create; the settings may be edited
        raise ConfigError(msg)
    specs = worker_specs(workers=workers, gpus=gpus)
    click.echo(f"study '{cfg.study.name}': {trials} trials on {len(specs)} worker(s)")
    try:
        result = run_study(
            cfg,
            storage=storage_url(cfg),
            n_trials=trials,
            specs=specs,
            timeout=timeout,
            progress=click.echo,
        )
    except KeyboardInterrupt:
        click.echo("interrupted: running trials ended as FAIL (reason: interrupted)", err=True)
        sys.exit(130)
    print_best(result)
    for line in _browse_lines(cfg.tracking.uri, result["experiment_id"]):
        click.echo(line)


def _mlflow_executable() -> str:
    """``mlflow`` as the user can type it here: the one beside this Python (same MLflow).

    After ``scripts/demo.sh`` that is ``.venv/bin/mlflow``, which is not on the user's PATH.
    """
    beside = Path(sys.executable).parent / "mlflow"
    if not beside.is_file():
        return "mlflow"
    on_path = shutil.which("mlflow")
    if on_path and Path(on_path).resolve() == beside.resolve():
        return "mlflow"
    try:
        return str(beside.absolute().relative_to(Path.cwd()))
    except ValueError:
        return shlex.quote(str(beside))


def _browse_lines(
    tracking_uri: str, experiment_id: str, key: str = "", what: str = "every trial"
) -> list[str]:
    """How to open saved view ``key`` of the study's runs in MLflow's UI."""
    from segsweep.store.views import TRIALS_VIEW, view_path

    view = view_path(experiment_id, key or TRIALS_VIEW)
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith(("http://", "https://")):  # a tracking server already serves the UI
        return [f"browse {what}: {uri.rstrip('/')}{view}"]
    command = f"{_mlflow_executable()} ui"
    if uri:  # `mlflow ui` reads mlflow.db in the working directory unless told otherwise
        command += f" --backend-store-uri {shlex.quote(uri)}"
    return [f"browse {what}: {command}", f"  then open http://127.0.0.1:5000{view}"]


@command.command("finalize")
@click.argument("name", required=False)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="the best distinct completed configurations to cross-validate",
)
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="cross-validation folds of train+validation",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="K worker processes on the CPU"
)
@click.option("--gpus", default=None, metavar="0,1", help="one worker per listed GPU")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option(
    "--rescore",
    is_flag=True,
    help="finalize again a study whose test set was scored already (a second test record)",
)
@click.option("--reason", default="", help="why the test set is scored again, kept with its record")
@storage_option
@tracking_option
def study_finalize(
    name: str | None,
    top: int,
    folds: int,
    workers: int | None,
    gpus: str | None,
    as_json: bool,
    rescore: bool,
    reason: str,
    storage: str | None,
    tracking_uri: str | None,
) -> None:
    """Cross-validate the best configurations, register a champion, score the test set once."""
    from segsweep.store.storage import check_not_finalized, load_study, storage_url
    from segsweep.study.runner import worker_specs

    cfg = resolve_study(name, storage, tracking_uri)
    specs = worker_specs(workers=workers, gpus=gpus)
    # refused before the modelling code (and TensorFlow) loads: the answer is one line
    check_not_finalized(load_study(cfg.study.name, storage_url(cfg)), rescore=rescore)
    from segsweep.finalize import finalize, render

    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    try:
        doc = finalize(
            cfg,
            storage=storage_url(cfg),
            top=top,
            folds=folds,
            specs=specs,
            progress=say,
            rescore=rescore,
            reason=reason,
        )
    except KeyboardInterrupt:
        click.echo(
            "interrupted: run `segsweep study finalize` again to train the missing folds", err=True
        )
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(render(doc))
    from segsweep.store.views import FOLDS_VIEW

    for line in _browse_lines(cfg.tracking.uri, doc["experiment_id"], FOLDS_VIEW, "every fold"):
        click.echo(line)


@command.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@storage_option
def study_status(name: str | None, as_json: bool, storage: str | None) -> None:
    """Trial counts by state and the best trial."""
    from segsweep.store.storage import load_study, storage_url
    from segsweep.store.summary import summary

    cfg = resolve_study(name, storage, None)
    result = summary(load_study(cfg.study.name, storage_url(cfg)))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"study '{result['study']}'")
        print_best(result)


@command.command("enqueue")
@click.argument("name", required=False)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    required=True,
    metavar="space.KEY=VALUE",
    help="a parameter of the configuration; parameters left out are sampled",
)
@storage_option
def study_enqueue(name: str | None, assignments: tuple[str, ...], storage: str | None) -> None:
    """Put a fixed configuration into the study as its next trial (e.g. your own baseline)."""
    from segsweep.config import parse_assignment
    from segsweep.store.storage import load_study, storage_url
    from segsweep.study.rerun import enqueue

    cfg = resolve_study(name, storage, None)
    values = dict(parse_assignment(a) for a in assignments)
    params = enqueue(load_study(cfg.study.name, storage_url(cfg)), cfg, values)
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    click.echo(f"queued as the next trial of '{cfg.study.name}': {shown}")


@command.command("rerun")
@click.argument("name", required=False)
@click.option(
    "--trial",
    "number",
    type=click.IntRange(min=0),
    required=True,
    help="the trial whose parameters to train again",
)
@click.option(
    "--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="how many new seeds"
)
@storage_option
@tracking_option
def study_rerun(
    name: str | None, number: int, seeds: int, storage: str | None, tracking_uri: str | None
) -> None:
    """Retrain one trial's parameters under new seeds: is its value luck?"""
    from segsweep.store.storage import load_study, storage_url
    from segsweep.study.rerun import rerun

    cfg = resolve_study(name, storage, tracking_uri)
    result = rerun(
        load_study(cfg.study.name, storage_url(cfg)), cfg, number, seeds=seeds, progress=click.echo
    )
    objective = cfg.search.objective
    original = f" at {objective} {result.original:.4f}" if result.original is not None else ""
    click.echo(
        f"trial {number}: {objective} {result.mean:.4f} ± {result.sd:.4f} (mean ± sd over "
        f"{len(result.values)} seeds); in the search it ended {result.state}{original}"
    )
