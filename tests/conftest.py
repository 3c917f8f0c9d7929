"""Fixtures shared across the test suite."""

from __future__ import annotations

from collections.abc import Callable
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
