"""Fixtures shared across the test suite."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image


def save_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` in the format its suffix names (.npy, .tif/.tiff, else through PIL)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, array)
    elif suffix in (".tif", ".tiff"):
        tifffile.imwrite(path, array)
    else:
        Image.fromarray(array).save(
            path, **({"quality": 95} if suffix in (".jpg", ".jpeg") else {})
        )


@pytest.fixture(autouse=True)
def no_tracking_uri_leaks() -> Iterator[None]:
    """A test must leave ``MLFLOW_TRACKING_URI`` as it found it.

    Every later ``segsweep`` process the suite starts inherits the variable, so a leak sends
    those processes' runs into another test's store, far from the test that leaked.
    """
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    after = os.environ.get("MLFLOW_TRACKING_URI")
    assert after == before, f"MLFLOW_TRACKING_URI changed from {before!r} to {after!r}"


MakeDataDir = Callable[..., Path]


@pytest.fixture
def make_data_dir(tmp_path: Path) -> MakeDataDir:
    """Write a data folder: ``make_data_dir({"a.png": image}, {"a.png": mask})`` -> its path.

    Values may be arrays (saved by suffix) or bytes (written as they are). Call it again with
    ``name=`` for a second folder in the same test.
    """

    def make(images: dict, masks: dict, *, name: str = "data") -> Path:
        root = tmp_path / name
        for folder, files in (("images", images), ("masks", masks)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            for file_name, content in files.items():
                path = root / folder / file_name
                if isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    save_array(path, content)
        return root

    return make
