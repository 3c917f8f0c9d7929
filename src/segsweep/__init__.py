"""segsweep: search UNet++ settings for 2D lesion segmentation; every run browsable in MLflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("segsweep")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
