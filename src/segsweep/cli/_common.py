"""Pieces every ``segsweep`` command shares: the error boundary, shared options, study lookup."""

from __future__ import annotations

import os
from typing import Any

import click

from segsweep.errors import SegsweepError
from segsweep.imports import quiet_tensorflow_start

__all__ = [
    "Group",
    "UserError",
    "set_option",
    "storage_option",
    "tracking_option",
    "resolve_study",
    "print_best",
    "metrics_line",
    "synth_line",
]

# Before TensorFlow or MLflow is imported: their start-up chatter is not for the terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
quiet_tensorflow_start()  # the notices TF_CPP_MIN_LOG_LEVEL cannot stop


class UserError(click.ClickException):
    exit_code = 2


class Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SegsweepError as err:
            raise UserError(str(err)) from None


storage_option = click.option(
    "--storage",
    default=None,
    metavar="URL",
    help="Optuna storage (journal file path, sqlite:///…, postgresql://…); "
    "default: the study's settings, else studies/NAME.journal.",
)
set_option = click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="a setting, in TOML syntax: --set data.image_size=64 --set space.depth=[3]",
)
tracking_option = click.option(
    "--tracking-uri",
    default=None,
    metavar="URI",
    help="MLflow tracking URI; default: the study's settings, else MLflow's own default "
    "(mlflow.db in the working directory).",
)


def synth_line(info: dict) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items() if k != "n"
    )


def resolve_study(name: str | None, storage: str | None, tracking_uri: str | None):
    """Settings from studies/NAME.toml, or from the study in --storage (another host)."""
    from segsweep.config import load_config
    from segsweep.store.storage import STUDIES_DIR, find_study_name, load_study, study_config

    name = name or find_study_name()
    path = STUDIES_DIR / f"{name}.toml"
    if path.exists():
        cfg = load_config(path)
    elif storage:
        cfg = study_config(load_study(name, storage))
    else:
        raise SegsweepError(
            f"{path} not found; create the study with `segsweep study create "
            f"{name}` or pass --storage to read it from a shared storage"
        )
    overrides = {"study.storage": storage, "tracking.uri": tracking_uri}
    return cfg.replace(**{k: v for k, v in overrides.items() if v is not None})


def print_best(result: dict) -> None:
    states = ", ".join(f"{k.lower()} {v}" for k, v in result["states"].items() if v)
    click.echo(f"trials: {states or 'none'}")
    if result.get("diagnoses"):
        found = ", ".join(f"{code} {n}" for code, n in result["diagnoses"].items())
        click.echo(f"diagnoses: {found}  (segsweep explain study:NAME --trial N says why)")
    best = result["best"]
    if best is None:
        click.echo("no trial has completed yet")
        return
    params = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items()
    )
    objective = result.get("objective", "val_dsc")
    default = result.get("default")
    mark = " (the default configuration)" if default and default["number"] == best["number"] else ""
    click.echo(
        f"best: trial {best['number']}{mark} {objective}={best['value']:.4f} "
        f"(MLflow run {best['mlflow_run_id']})\n  {params}"
    )
    if shown := metrics_line(best.get("metrics", {}), skip=objective):
        click.echo(f"  at its best epoch: {shown}")
    if default and not mark:
        click.echo(default_line(default, best["value"], objective))


def default_line(default: dict, best_value: float, objective: str) -> str:
    """How the search compares with the default configuration's trial."""
    head = f"default configuration: trial {default['number']}"
    if default["value"] is None:
        return f"{head}, {default['state'].lower()}"
    gain = best_value - default["value"]
    return f"{head} {objective}={default['value']:.4f}; the best trial is {gain:+.4f} above it"


SHOWN_METRICS = (
    "val_case_dsc",  # volume data only
    "val_case_lesion_f1",
    "val_case_hd95",
    "val_dsc",
    "val_dsc_global",
    "val_lesion_dsc",
    "val_lesion_f1",
    "val_lesion_recall",
    "val_lesion_precision",
    "val_hd95",
)


def metrics_line(metrics: dict[str, float], *, skip: str = "") -> str:
    """The headline validation metrics of one epoch, in one line."""
    return ", ".join(f"{k}={metrics[k]:.4g}" for k in SHOWN_METRICS if k in metrics and k != skip)
