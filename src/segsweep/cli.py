"""The ``segsweep`` command: a thin click layer over the Python API.

Every user error (:class:`segsweep.errors.SegsweepError`) ends here as one line on stderr and
exit code 2. Heavy modules (TensorFlow, MLflow) are imported inside the commands that need them,
so ``segsweep --help`` stays instant.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from segsweep import __version__
from segsweep.errors import SegsweepError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any TensorFlow import: quiet logs


class UserError(click.ClickException):
    exit_code = 2


class Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SegsweepError as err:
            raise UserError(str(err)) from None


storage_option = click.option(
    "--storage", default=None, metavar="URL",
    help="Optuna storage (journal file path, sqlite:///…, postgresql://…); "
         "default: the study's settings, else studies/NAME.journal.")
tracking_option = click.option(
    "--tracking-uri", default=None, metavar="URI",
    help="MLflow tracking URI; default: the study's settings, else MLflow's own default "
         "(mlflow.db in the working directory).")


@click.group(cls=Group)
@click.version_option(__version__, prog_name="segsweep")
def main() -> None:
    """Search UNet++ settings for 2D lesion segmentation; every run browsable in `mlflow ui`."""


@main.group(cls=Group)
def data() -> None:
    """Data sets: the built-in phantom lesion set."""


@data.command("synth")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--n", "n", default=200, show_default=True, help="number of images")
@click.option("--size", default=128, show_default=True, help="image side in pixels")
@click.option("--seed", default=0, show_default=True, help="same seed, same files")
@click.option("--overwrite", is_flag=True, help="replace an existing phantom set in OUT")
def data_synth(out: Path, n: int, size: int, seed: int, overwrite: bool) -> None:
    """Write the phantom lesion set to OUT/images and OUT/masks."""
    from segsweep.data.synth import synthesize

    info = synthesize(out, n=n, size=size, seed=seed, overwrite=overwrite)
    click.echo(f"wrote {n} phantom images to {out}: {_synth_line(info)}")


def _synth_line(info: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in info.items() if k != "n")


@main.group(cls=Group)
def study() -> None:
    """Create, run and inspect Optuna studies."""


def _resolve(name: str | None, storage: str | None, tracking_uri: str | None):
    """Settings from studies/NAME.toml, or from the study in --storage (another host)."""
    from segsweep.config import load_config
    from segsweep.study import STUDIES_DIR, find_study_name, load_study, study_config

    name = name or find_study_name()
    path = STUDIES_DIR / f"{name}.toml"
    if path.exists():
        cfg = load_config(path)
    elif storage:
        cfg = study_config(load_study(name, storage))
    else:
        raise SegsweepError(f"{path} not found; create the study with `segsweep study create "
                            f"{name}` or pass --storage to read it from a shared storage")
    overrides = {"study.storage": storage, "tracking.uri": tracking_uri}
    return cfg.replace(**{k: v for k, v in overrides.items() if v is not None})


@study.command("create")
@click.argument("name")
@click.option("--data", "data_dir", default=None, type=click.Path(path_type=Path),
              help="folder with images/ and masks/; default: the built-in phantom set")
@storage_option
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="a setting, in TOML syntax: --set data.image_size=64 --set space.depth=[3]")
@click.option("--exist-ok", is_flag=True, help="keep an existing study; update its settings")
def study_create(name: str, data_dir: Path | None, storage: str | None,
                 assignments: tuple[str, ...], exist_ok: bool) -> None:
    """Write studies/NAME.toml with every setting and create the Optuna study."""
    from segsweep.config import (Config, apply_overrides, config_from_dict, config_to_dict,
                                 load_config, parse_assignment, save_config)
    from segsweep.study import STUDIES_DIR, create_study, storage_url

    path = STUDIES_DIR / f"{name}.toml"
    if path.exists() and not exist_ok:
        raise SegsweepError(f"{path} already exists; pass --exist-ok to keep the study and "
                            "update its settings")
    overrides = dict(parse_assignment(a) for a in assignments)
    overrides["study.name"] = name
    if data_dir is not None:
        overrides["data.dir"] = str(data_dir)
    if storage is not None:
        overrides["study.storage"] = storage
    base = load_config(path) if path.exists() else Config()
    cfg = config_from_dict(apply_overrides(config_to_dict(base), overrides))
    _ensure_data(cfg, default_used=data_dir is None)
    url = storage_url(cfg)
    create_study(cfg, url, exist_ok=exist_ok)
    save_config(cfg, path, header=[f"segsweep {__version__} study '{name}'",
                                   "command line beats this file; edit, then `study run`"])
    click.echo(f"study '{name}': settings in {path}, Optuna storage {url}")
    click.echo(f"next: segsweep study run {name} --trials 20")


def _ensure_data(cfg: Any, *, default_used: bool) -> None:
    """Check the pairing now; with no --data, write the phantom set on first use."""
    from segsweep.data.io import find_pairs

    folder = Path(cfg.data.dir)
    if default_used and not folder.exists():
        from segsweep.data.synth import synthesize

        info = synthesize(folder, n=200, size=128, seed=0)
        click.echo(f"no --data given: wrote the phantom lesion set to {folder} "
                   f"({_synth_line(info)})")
    pairs = find_pairs(folder)
    click.echo(f"data: {len(pairs)} image/mask pairs in {folder}")


@study.command("run")
@click.argument("name", required=False)
@click.option("--trials", type=int, required=True, help="run until N more trials have finished")
@click.option("--workers", type=int, default=None, help="K worker processes on the CPU")
@click.option("--gpus", default=None, metavar="0,1",
              help="one worker per listed GPU (CUDA_VISIBLE_DEVICES per worker)")
@click.option("--timeout", type=float, default=None, metavar="S",
              help="start no new trial after S seconds")
@storage_option
@tracking_option
def study_run(name: str | None, trials: int, workers: int | None, gpus: str | None,
              timeout: float | None, storage: str | None, tracking_uri: str | None) -> None:
    """Run N more trials of study NAME (NAME may be left out when studies/ holds one)."""
    from segsweep.runner import run_study, worker_specs
    from segsweep.study import storage_url

    cfg = _resolve(name, storage, tracking_uri)
    specs = worker_specs(workers=workers, gpus=gpus)
    click.echo(f"study '{cfg.study.name}': {trials} trials on {len(specs)} worker(s)")
    try:
        result = run_study(cfg, storage=storage_url(cfg), n_trials=trials, specs=specs,
                           timeout=timeout, progress=click.echo)
    except KeyboardInterrupt:
        click.echo("interrupted: running trials ended as FAIL (reason: interrupted)", err=True)
        sys.exit(130)
    _print_best(result)
    uri = cfg.tracking.uri
    click.echo("browse every trial: mlflow ui" + (f" --backend-store-uri {uri}" if uri else "")
               + f"  (experiment '{cfg.study.name}')")


def _print_best(result: dict) -> None:
    states = ", ".join(f"{k.lower()} {v}" for k, v in result["states"].items() if v)
    click.echo(f"trials: {states or 'none'}")
    best = result["best"]
    if best is None:
        click.echo("no trial has completed yet")
        return
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in best["params"].items())
    click.echo(f"best: trial {best['number']} val_dsc={best['value']:.4f} "
               f"(MLflow run {best['mlflow_run_id']})\n  {params}")


@study.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@storage_option
def study_status(name: str | None, as_json: bool, storage: str | None) -> None:
    """Trial counts by state and the best trial."""
    from segsweep.study import load_study, storage_url, summary

    cfg = _resolve(name, storage, None)
    result = summary(load_study(cfg.study.name, storage_url(cfg)))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"study '{result['study']}'")
        _print_best(result)


@main.command("predict")
@click.argument("model")
@click.argument("images_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--threshold", default=0.5, show_default=True, help="lesion probability cut-off")
@click.option("--intensity", type=click.Choice(["dtype", "minmax"]), default=None,
              help="intensity rule; default: the one the model was trained with")
@tracking_option
def predict(model: str, images_dir: Path, out_dir: Path, threshold: float,
            intensity: str | None, tracking_uri: str | None) -> None:
    """Write a PNG mask {0,255} per image of IMAGES_DIR at its original size.

    MODEL is a .keras file, an MLflow run id, or study:NAME (the best trial's model).
    """
    from segsweep.predict import load_model, predict_folder

    def best_run(study_name: str) -> str:
        from segsweep.study import load_study, storage_url, summary

        cfg = _resolve(study_name, None, None)
        best = summary(load_study(cfg.study.name, storage_url(cfg)))["best"]
        if best is None or not best["mlflow_run_id"]:
            raise SegsweepError(f"study '{study_name}' has no completed trial with a model yet")
        return best["mlflow_run_id"]

    uri = tracking_uri
    if uri is None and model.startswith("study:"):
        uri = _resolve(model.removeprefix("study:"), None, None).tracking.uri
    loaded = load_model(model, tracking_uri=uri or "", intensity=intensity, best_run=best_run)
    n = predict_folder(loaded, images_dir, out_dir, threshold=threshold)
    click.echo(f"wrote {n} masks to {out_dir} (model: {loaded.source})")
