"""``segsweep predict``: masks for a folder of images from a trained model."""

from __future__ import annotations

from pathlib import Path

import click

from segsweep.cli._common import (
    resolve_study,
    tracking_option,
)
from segsweep.errors import SegsweepError


@click.command("predict")
@click.argument("model")
@click.argument("images_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="lesion probability cut-off; default: the champion's, else 0.5",
)
@click.option(
    "--intensity",
    type=click.Choice(["dtype", "minmax"]),
    default=None,
    help="intensity rule; default: the one the model was trained with",
)
@click.option(
    "--resize",
    type=click.Choice(["stretch", "pad"]),
    default=None,
    help="how images were made square (data.resize); default: as the model was trained, "
    "'stretch' for a .keras file",
)
@click.option(
    "--windows/--no-windows",
    default=None,
    help="predict each image at its own resolution by overlapping windows of the network's "
    "input size (a model trained on patches, data.patch_size); default: as the model was "
    "trained, off for a .keras file",
)
@tracking_option
def command(
    model: str,
    images_dir: Path,
    out_dir: Path,
    threshold: float | None,
    intensity: str | None,
    resize: str | None,
    windows: bool | None,
    tracking_uri: str | None,
) -> None:
    """Write a PNG mask {0,255} per image of IMAGES_DIR at its original size.

    MODEL is a .keras file, an MLflow run id, or study:NAME: the study's champion once
    `study finalize` has made one, else its best trial's model.
    """
    from segsweep.results.predict import load_champion, load_model, predict_folder

    def best_run(study_name: str) -> str:
        from segsweep.store.storage import load_study, storage_url
        from segsweep.store.summary import summary

        cfg = resolve_study(study_name, None, None)
        best = summary(load_study(cfg.study.name, storage_url(cfg)))["best"]
        if best is None or not best["mlflow_run_id"]:
            raise SegsweepError(f"study '{study_name}' has no completed trial with a model yet")
        return best["mlflow_run_id"]

    uri = tracking_uri
    champion = None
    if model.startswith("study:"):
        cfg = resolve_study(model.removeprefix("study:"), None, None)
        uri = cfg.tracking.uri if uri is None else uri
        champion = _champion_uri(cfg)
    if champion is not None and intensity is None and resize is None and windows is None:
        loaded = load_champion(champion, uri or "")
    else:
        loaded = load_model(
            model,
            tracking_uri=uri or "",
            intensity=intensity,
            resize=resize,
            windows=windows,
            best_run=best_run,
        )
    n = predict_folder(loaded, images_dir, out_dir, threshold=threshold)
    click.echo(f"wrote {n} masks to {out_dir} (model: {loaded.source})")


def _champion_uri(cfg) -> str | None:
    from segsweep.store.storage import load_study, storage_url
    from segsweep.store.summary import summary

    champion = summary(load_study(cfg.study.name, storage_url(cfg)))["champion"]
    return None if champion is None else champion["model_uri"]
