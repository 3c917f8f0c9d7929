"""``segsweep data``: the built-in phantom lesion set."""

from __future__ import annotations

from pathlib import Path

import click

from segsweep.cli._common import (
    Group,
    synth_line,
)


@click.group("data", cls=Group)
def command() -> None:
    """Data sets: the built-in phantom lesion set."""


@command.command("synth")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--n", "n", default=200, show_default=True, help="number of images")
@click.option("--size", default=128, show_default=True, help="image side in pixels")
@click.option("--seed", default=0, show_default=True, help="same seed, same files")
@click.option("--overwrite", is_flag=True, help="replace an existing phantom set in OUT")
def data_synth(out: Path, n: int, size: int, seed: int, overwrite: bool) -> None:
    """Write the phantom lesion set to OUT/images and OUT/masks."""
    from segsweep.data.synth import synthesize

    info = synthesize(out, n=n, size=size, seed=seed, overwrite=overwrite)
    click.echo(f"wrote {n} phantom images to {out}: {synth_line(info)}")
