"""``segsweep study``: create, run and inspect Optuna studies."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from segsweep import __version__
from segsweep.cli._common import (
    Group,
    print_best,
    resolve_study,
    set_option,
    storage_option,
    synth_line,
    tracking_option,
)
from segsweep.errors import ConfigError, DataError, SegsweepError


@click.group("study", cls=Group)
def command() -> None:
    """Create, run and inspect Optuna studies."""


@command.command("create")
@click.argument("name")
@click.option(
    "--data",
    "data_dir",
    default=None,
    type=click.Path(path_type=Path),
    help="folder with images/ and masks/; default: the built-in phantom set",
)
@storage_option
@set_option
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(path_type=Path),
    help="start from this settings file (e.g. studies/examples/seed-baseline.toml)",
)
@click.option("--exist-ok", is_flag=True, help="keep an existing study; update its settings")
@click.option(
    "--allow-overlap",
    is_flag=True,
    help="accept a data.test_dir sharing cases or images with the training data (recorded)",
)
def study_create(
    name: str,
    data_dir: Path | None,
    storage: str | None,
    assignments: tuple[str, ...],
    config_file: Path | None,
    exist_ok: bool,
    allow_overlap: bool,
) -> None:
    """Write studies/NAME.toml with every setting and create the Optuna study."""
    from segsweep.config import (
        Config,
        apply_overrides,
        config_from_dict,
        config_to_dict,
        load_config,
        parse_assignment,
        save_config,
    )
    from segsweep.store.storage import STUDIES_DIR, create_study, storage_url

    path = STUDIES_DIR / f"{name}.toml"
    if path.exists() and not exist_ok:
        raise SegsweepError(
            f"{path} already exists; pass --exist-ok to keep the study and update its settings"
        )
    overrides = dict(parse_assignment(a) for a in assignments)
    overrides["study.name"] = name
    if data_dir is not None:
        overrides["data.dir"] = str(data_dir)
    if storage is not None:
        overrides["study.storage"] = storage
    if config_file is not None:
        base = load_config(config_file)
    else:
        base = load_config(path) if path.exists() else Config()
    cfg = config_from_dict(apply_overrides(config_to_dict(base), overrides))
    if config_file is None and not path.exists():
        from segsweep.data.source import volume_defaults

        cfg = volume_defaults(cfg, given=overrides)
    _ensure_data(cfg, default_used=cfg.data.dir == Config().data.dir)
    url = storage_url(cfg)
    assignment = _assign(cfg, allow_overlap)
    if cfg.data.intensity == "ct" and not cfg.data.ct_window:
        from segsweep.data.slices import ct_window

        window = ct_window(Path(cfg.data.dir), assignment.train, seed=cfg.search.seed)
        cfg = cfg.replace(**{"data.ct_window": list(window)})  # stored with the study
        click.echo(f"CT window from the training cases: {', '.join(f'{v:.4g}' for v in window)}")
    study = create_study(cfg, url, exist_ok=exist_ok, assignment=assignment)
    split_line = _write_split(study, cfg.study.name)
    # The MLflow experiment (and, on a fresh database, its schema) is made here, once, so that
    # several hosts starting `study run` together never race to create it.
    from segsweep.store.tracking import Tracker

    Tracker(cfg.tracking.uri).experiment(cfg.study.name)
    save_config(
        cfg,
        path,
        header=[
            f"segsweep {__version__} study '{name}'",
            "command line beats this file; edit, then `study run`",
        ],
    )
    click.echo(f"study '{name}': settings in {path}, Optuna storage {url}")
    click.echo(split_line)
    click.echo(f"next: segsweep study run {name} --trials 20")


def _assign(cfg: Any, allow_overlap: bool) -> Any:
    """Every image to train, val or test, by the study's data settings."""
    from segsweep.data.assign import assign

    d = cfg.data
    return assign(
        Path(d.dir),
        val_fraction=d.val_fraction,
        test_fraction=d.test_fraction,
        test_dir=d.test_dir,
        seed=cfg.search.seed,
        group_pattern=d.group_pattern,
        mask_threshold=d.mask_threshold,
        allow_overlap=allow_overlap,
        slice_axis=d.slice_axis,
        lesion_labels=d.lesion_labels,
    )


def _write_split(study: Any, name: str) -> str:
    """studies/NAME.split.json from the assignment stored in the study; what it holds."""
    from segsweep.store.storage import split_json_path, study_assignment

    stored = study_assignment(study)
    if stored is None:
        return "split: this study was created before segsweep kept a test set; it has none"
    path = split_json_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored.as_split_json(), indent=1) + "\n")
    where = f" from {stored.test_dir}" if stored.test_dir else ""
    if stored.overlaps:
        where += f", {len(stored.overlaps)} of them sharing a case or image (--allow-overlap)"
    return (
        f"split: {len(stored.train)} train, {len(stored.val)} val, {len(stored.test)} test"
        f"{where} (in {path}; the search never sees the test images)"
    )


def _ensure_data(cfg: Any, *, default_used: bool) -> None:
    """With no --data, write the phantom set on first use; then run doctor's error checks, so
    data that `study run` would refuse fails here, before anything is written."""
    from segsweep.doctor import examine

    folder = Path(cfg.data.dir)
    if default_used and not folder.exists():
        from segsweep.data.synth import synthesize

        info = synthesize(folder, n=200, size=128, seed=0)
        click.echo(
            f"no --data given: wrote the phantom lesion set to {folder} ({synth_line(info)})"
        )
    report = examine(cfg)
    errors = report.of_level("error")
    if len(errors) == 1:
        raise DataError(f"{errors[0].message}; nothing was written")
    if errors:
        for finding in errors:
            click.echo(f"error: {finding.message}", err=True)
        raise DataError(
            f"{len(errors)} faults in {folder}, one per line above (as `segsweep doctor --data "
            f"{folder}` reports them); nothing was written"
        )
    if report.facts["layout"] == "pictures":
        click.echo(f"data: {report.facts['pairs']} image/mask pairs in {folder}")
    else:
        click.echo(
            f"data: {report.facts['cases']} cases ({report.facts['layout']} layout, "
            f"{report.facts['slices']} slices) in {folder}; intensity {cfg.data.intensity}, "
            f"objective {cfg.search.objective}"
        )


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
    from segsweep.store.tracking import TRIALS_VIEW, view_path

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
    from segsweep.store.tracking import FOLDS_VIEW

    for line in _browse_lines(cfg.tracking.uri, doc["experiment_id"], FOLDS_VIEW, "every fold"):
        click.echo(line)


@command.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@storage_option
def study_status(name: str | None, as_json: bool, storage: str | None) -> None:
    """Trial counts by state and the best trial."""
    from segsweep.store.storage import load_study, storage_url, summary

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
