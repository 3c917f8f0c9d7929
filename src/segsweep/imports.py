"""What a process imports, and how quietly: two finders on ``sys.meta_path``.

- :func:`quiet_tensorflow_start` lets TensorFlow import without its C++ start-up notices;
- :class:`NoTensorFlow` makes ``import tensorflow`` fail in a JAX or torch process
  (:func:`segsweep.backend.activate` says why).

Written by hand: neither TensorFlow nor Python offers a switch for either.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["NoTensorFlow", "quiet_tensorflow_start"]


# TensorFlow's C++ start-up notices: INFO lines (oneDNN is on, no CUDA driver, CPU features) and
# absl's note that they go to stderr. absl prints them before its logging is initialised, which
# TF_CPP_MIN_LOG_LEVEL cannot stop (TensorFlow 2.19-2.21, tensorflow/tensorflow#100442).
_START_UP_NOTICE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|I\d{4} [\d:.]+ +\d+ \S+\] "  # absl's INFO prefix: I0000 00:00:1796.05 5052 port.cc:153]
    rb"|\d{4}-\d\d-\d\d [\d:.]+: I \S+\] "  # TensorFlow's own INFO prefix
    rb"|To enable the following instructions: "  # the second line of cpu_feature_guard's notice
)


def quiet_tensorflow_start() -> None:
    """From now on, importing TensorFlow prints no start-up notices; its warnings, errors and
    anything else it prints still reach stderr. Call before TensorFlow is imported."""
    if not any(isinstance(finder, _QuietTensorFlow) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the other finders do, and imports it with stderr held back."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            run = spec.loader.exec_module  # this spec's own loader object: only this import

            def exec_module(module: Any) -> None:
                with _start_up_notices_dropped():
                    run(module)

            spec.loader.exec_module = exec_module
        return spec


@contextmanager
def _start_up_notices_dropped() -> Iterator[None]:
    """Hold what is written to file descriptor 2 (C++ writes there directly), then pass on all
    but TensorFlow's start-up notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = b"".join(line for line in held if not _START_UP_NOTICE.match(line))
            while kept:
                kept = kept[os.write(2, kept) :]


class NoTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import tensorflow`` fails as if it were not installed (``find_spec`` still answers, so
    libraries that only look, such as torch's dynamo, carry on)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec: Any) -> Any:
        raise ModuleNotFoundError(
            f"No module named {spec.name!r} (not loaded beside another Keras backend)",
            name=spec.name,
        )

    def exec_module(self, module: Any) -> None:  # never reached: create_module raises
        raise AssertionError
