"""``train.onednn``: which TF_ENABLE_ONEDNN_OPTS a worker process starts TensorFlow with."""

from __future__ import annotations

import pytest

from segsweep.backend import onednn_flag


@pytest.mark.parametrize(
    ("setting", "gpu", "shared", "flag"),
    [
        ("auto", False, True, "1"),  # CPU workers competing for the cores: less CPU per image
        ("auto", False, False, None),  # a lone CPU worker: TensorFlow's kernels keep cores busy
        ("auto", True, True, None),  # GPU workers: TensorFlow's own choice
        ("on", False, False, "1"),
        ("on", True, False, "1"),
        ("off", False, True, "0"),
    ],
)
def test_onednn_flag(setting: str, gpu: bool, shared: bool, flag: str | None) -> None:
    assert onednn_flag(setting, gpu=gpu, shared_cores=shared) == flag
