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


def _shares_a_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a module-scoped fixture its own module defines (a finished tiny
    study, say). pytest has no public way to ask a test for its fixtures; ``_fixtureinfo`` has
    held them since pytest 3 (and without it a test simply is not grouped)."""
    info = getattr(item, "_fixtureinfo", None)
    defs = [d[-1] for d in info.name2fixturedefs.values() if d] if info else []
    module = item.module.__name__
    return any(d.scope == "module" and d.func.__module__ == module for d in defs)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order and group the tests for pytest-xdist (scripts/test.sh: ``-n 2 --dist loadgroup``).

    - The tests that share a module's fixture (a finished tiny study) form one group, so one
      worker builds that fixture once; every other test is handed out on its own.
    - Modules with slow tests go first: xdist hands work out in this order, and a long test
      left to the end would keep one worker busy while the other waits.
    A module's tests stay together and in pytest's order, so a run without xdist still builds
    each module fixture once.
    """
    for item in items:
        if _shares_a_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Under ``--dist loadgroup`` a grouped test's node id carries ``@group``, which is all
    xdist schedules by; a pytest/xdist pair that drops it would build each shared study once
    per worker, silently. Say so instead."""
    if not session.config.getoption("loadgroup", default=False):
        return
    marked = [i for i in session.items if i.get_closest_marker("xdist_group")]
    if marked and not any("@" in i.nodeid for i in marked):
        raise pytest.UsageError(
            "pytest-xdist did not group the tests that share a module's study (pytest "
            f"{pytest.__version__}; see pytest-dev/pytest-xdist#1386): install pytest<9.2"
        )
