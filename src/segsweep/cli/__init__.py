"""The ``segsweep`` command: a thin click layer over the Python API.

Every user error (:class:`segsweep.errors.SegsweepError`) ends here as one line on stderr and
exit code 2. Heavy modules (TensorFlow, MLflow) are imported inside the commands that need them,
so ``segsweep --help`` stays instant. One module per command group; each registers here.
"""

from __future__ import annotations

import click

from segsweep import __version__
from segsweep.cli._common import Group

__all__ = ["main"]


@click.group(cls=Group)
@click.version_option(__version__, prog_name="segsweep")
def main() -> None:
    """Search UNet++ settings for 2D lesion segmentation; every run browsable in `mlflow ui`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # segsweep prints its own progress


def _register() -> None:
    # Importing `create` and `report` adds their commands to the `study` group.
    from segsweep.cli import (  # noqa: F401
        create,
        data,
        doctor,
        explain,
        plan,
        predict,
        report,
        study,
    )

    for module in (data, doctor, explain, plan, predict, study):
        main.add_command(module.command)


_register()
