"""``segsweep study create``: settings, the train/val/test assignment and the Optuna study.

Kept apart from :mod:`segsweep.cli.study` (the group and the commands that use a study) since
creating one is its own path: the data examined by doctor, the volume defaults, the split and
its leak check, the CT window, then the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from segsweep import __version__
from segsweep.cli._common import set_option, storage_option, synth_line
from segsweep.cli.study import command as study_group
from segsweep.errors import DataError, SegsweepError


@study_group.command("create")
@click.argument("name")
@click.option(
    "--data",
    "data_dir",
    default=None,
    type=click.Path(path_type=Path),
    help="images/ + masks/ (pictures or NIfTI), or an nnU-Net or Decathlon dataset folder; "
    "default: the built-in phantom set",
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
    "--no-plan",
    "no_plan",
    is_flag=True,
    help="a new study without --config takes today's defaults instead of `segsweep plan`'s",
)
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
    no_plan: bool,
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
    fresh = config_file is None and not path.exists()  # a new study from the defaults
    if fresh:
        from segsweep.data.source import volume_defaults

        cfg = volume_defaults(cfg, given=overrides)
    _ensure_data(cfg, default_used=cfg.data.dir == Config().data.dir)
    notes = None
    if fresh and not no_plan:
        cfg, notes = _planned(cfg, given=dict(parse_assignment(a) for a in assignments))
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
        notes=notes,
    )
    click.echo(f"study '{name}': settings in {path}, Optuna storage {url}")
    click.echo(split_line)
    click.echo(f"next: segsweep study run {name} --trials 20")


def _planned(cfg: Any, *, given: dict[str, Any]) -> tuple[Any, dict[str, str] | None]:
    """The settings `segsweep plan` derives from the data (2D pictures, or the slices of
    volumes), with their reasons as notes."""
    from segsweep.cli.plan import planned

    return planned(cfg, given=given)


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
