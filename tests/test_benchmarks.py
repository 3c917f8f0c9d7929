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


def _pair(dataset: str, seed: int, planned: float, default: float) -> dict:
    def arm(best: float, size: int, batch: int, epochs: int, steps: int) -> dict:
        return {
            "objective": "val_dsc", "best": best, "params": {"base_filters": 8, "depth": 3},
            "image_size": size, "batch": batch, "epochs": epochs, "steps_per_epoch": steps,
            "steps": epochs * steps, "wall": 100.0,
        }  # fmt: skip

    return {
        "dataset": dataset,
        "seed": seed,
        "planned": arm(planned, 96, 2, 2, 70),
        "default": arm(default, 128, 8, 3, 51),
    }


def test_plan_gain_section_states_the_gain_per_set_and_the_verdict() -> None:
    from benchmarks.plangain_section import plangain_section

    gains = {"phantom": (0.10, 0.05), "nuclei": (0.04, 0.05), "brats": (0.0, 0.01)}
    pairs = [
        _pair(d, seed, base + gain, base) for d, (gain, base) in gains.items() for seed in (0, 1, 2)
    ]
    s = plangain_section({"target_steps": 120, "pairs": pairs, "skipped": []})
    assert s.met is True  # ahead by >= 0.03 on two sets, behind on none
    planned = next(r for r in s.rows if r[0].startswith("phantoms") and r[1] == "planned")
    assert planned[3] == "2×70 / 2×70 / 2×70" and planned[-1].startswith("0.100 ± 0.000")
    assert "nuclei: +0.040 (ahead in 3 of 3 seeds)" in s.headline
    assert "phantom: 280 against 1224 images, 1.00× the wall time" in s.notes[-1]

    behind = [p | {"planned": p["planned"] | {"best": 0.0}} if p["dataset"] == "brats" else p
              for p in pairs]  # fmt: skip
    assert plangain_section({"target_steps": 120, "pairs": behind, "skipped": []}).met is False

    partial = plangain_section({"target_steps": 120, "pairs": pairs[:3],
                                "skipped": [{"dataset": "brats", "seed": 0}]})  # fmt: skip
    assert partial.met is None  # one set measured: the target cannot be told yet
    assert any("not measured" in r for r in partial.rows)
    assert "brats seed 0" in partial.notes[-1]


def test_plan_gain_section_goes_into_results_once(tmp_path) -> None:
    from benchmarks.plangain_section import plangain_section, write_results

    results = tmp_path / "RESULTS.md"
    results.write_text(
        "## Summary\n\n| 9. GPU | x | y | — |\n\n## 9. GPU\n\ntext\n\n## Analysis\n\nwhy\n"
    )
    pairs = [_pair("phantom", 0, 0.5, 0.4)]
    write_results(plangain_section({"target_steps": 120, "pairs": pairs}), results)
    pairs = [_pair("phantom", 0, 0.6, 0.4)]
    write_results(plangain_section({"target_steps": 120, "pairs": pairs}), results)
    text = results.read_text()
    assert text.count("| 10. Planned") == 1 and text.count("## 10. Planned") == 1
    assert "phantom: +0.200" in text and "phantom: +0.100" not in text
    assert text.index("| 9. GPU") < text.index("| 10. Planned") < text.index("## 9. GPU")
    assert text.index("## 9. GPU") < text.index("## 10. Planned") < text.index("## Analysis")


def test_determinism_section_reads_cost_and_repeat_from_the_runs(tmp_path) -> None:
    from benchmarks.determinism import determinism_section
    from benchmarks.plangain_section import plangain_section, write_results

    def run(wall: float, losses: list[float]) -> dict:  # the first epoch traces: left out
        return {"wall": [30.0, wall, wall], "cpu": [40.0, 2 * wall, 2 * wall], "loss": losses}

    sizes = {"size": 128, "images": 48, "epochs": 3, "rounds": 2}
    runs = {
        "default kernels": [run(10.0, [1.5, 1.4, 1.3]), run(10.0, [1.5, 1.41, 1.3])],
        "deterministic": [run(12.0, [1.5, 1.4, 1.2]), run(12.0, [1.5, 1.4, 1.2])],
    }
    s = determinism_section({"runs": runs, "sizes": sizes, "seconds": 60.0})
    assert s.met is True and "1.20× the epoch time" in s.headline
    assert "drifted apart" in s.notes[2]
    runs["deterministic"][1] = run(12.0, [1.5, 1.4, 1.21])
    assert determinism_section({"runs": runs, "sizes": sizes, "seconds": 60.0}).met is False

    results = tmp_path / "RESULTS.md"
    results.write_text(
        "## Summary\n\n| 9. GPU | x | y | — |\n| 10. Planned | x | y | — |\n\n## 10. Planned\n\n"
        "text\n\n## Analysis\n\nwhy\n"
    )
    write_results(s, results)
    text = results.read_text()
    assert text.index("| 10. Planned") < text.index("| 11. train.deterministic")
    assert text.index("## 10. Planned") < text.index("## 11. train") < text.index("## Analysis")
    write_results(plangain_section({"target_steps": 120, "pairs": [_pair("phantom", 0, 0.5, 0.4)]}),
                  results)  # fmt: skip
    text = results.read_text()  # section 10 rewritten in its place, section 11 kept after it
    assert text.index("## 10. Planned") < text.index("## 11. train") < text.index("## Analysis")
    assert "phantom: +0.100" in text and text.count("## 11. train") == 1
