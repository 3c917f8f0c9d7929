"""The benchmarks' seed-style baseline behaves as Keras 2's ImageDataGenerator did, and the
report says met / not met. (Running the benchmarks takes minutes: ``python -m benchmarks``.)"""

from __future__ import annotations

import numpy as np

from benchmarks.common import Section
from benchmarks.report import markdown
from benchmarks.seedstyle import apply_transform, flow, random_transform

NO_MOVE = {"theta": 0.0, "tx": 0.0, "ty": 0.0, "flip": False}


def _image() -> np.ndarray:
    return np.random.default_rng(0).random((16, 12, 1)).astype(np.float32)


def test_identity_transform_returns_the_image() -> None:
    np.testing.assert_allclose(apply_transform(_image(), NO_MOVE), _image(), atol=1e-6)


def test_flip_mirrors_columns() -> None:
    out = apply_transform(_image(), {**NO_MOVE, "flip": True})
    np.testing.assert_allclose(out, _image()[:, ::-1], atol=1e-6)


def test_row_shift_moves_content_up_and_fills_with_nearest() -> None:
    image = np.zeros((10, 10, 1), np.float32)
    image[5] = 1.0
    out = apply_transform(image, {**NO_MOVE, "tx": 2.0})
    assert out[3, :, 0].min() == 1.0 and out[5, :, 0].max() == 0.0
    assert out[-1, 0, 0] == 0.0  # nearest fill repeats the zero border row


def test_random_transform_stays_within_the_ranges() -> None:
    rng = np.random.default_rng(1)
    draws = [
        random_transform(rng, (100, 50, 1), rotation=10, shift=0.1, flip=True) for _ in range(200)
    ]
    assert max(abs(d["theta"]) for d in draws) <= 10
    assert max(abs(d["tx"]) for d in draws) <= 10 and max(abs(d["ty"]) for d in draws) <= 5
    assert 0 < sum(d["flip"] for d in draws) < 200


def test_flow_transforms_images_but_passes_masks_through() -> None:
    rng = np.random.default_rng(2)
    x = rng.random((6, 16, 16, 1)).astype(np.float32)
    y = (rng.random((6, 16, 16, 1)) > 0.8).astype(np.uint8)
    batches = flow(x, y, batch_size=3, rotation=10, shift=0.1, flip=True, seed=0)
    seen = [next(batches) for _ in range(2)]
    masks = np.concatenate([b[1] for b in seen])
    images = np.concatenate([b[0] for b in seen])
    # one epoch holds every mask exactly once, untouched (flow(x, y) never augments y)
    assert sorted(m.tobytes() for m in masks) == sorted(m.astype(np.float32).tobytes() for m in y)
    assert not any(np.allclose(img, orig) for img in images for orig in x)


def test_markdown_report_states_each_verdict() -> None:
    sections = [
        Section("a", "1. A", "2.00×", "≥ 1.5×", True, ["lane", "x"], [["b", "1"]]),
        Section("b", "2. B", "50 %", "≥ 70 %", False, ["lane", "x"], [["c", "2"]], ["why"]),
        Section("c", "6. GPU", "unmeasured", "when a GPU is at hand", None, ["x"], [["-"]]),
    ]
    text = markdown(sections, header={"machine": {"cpu": "x"}}, command="cmd", seconds=60)
    assert "| 1. A | 2.00× | ≥ 1.5× | met |" in text
    assert "| 2. B | 50 % | ≥ 70 % | not met |" in text
    assert "| 6. GPU | unmeasured | when a GPU is at hand | — |" in text
    assert "- why" in text
