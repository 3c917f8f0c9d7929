"""Side-by-side overlay pictures of validation cases: image | truth | prediction.

Pure numpy so it is cheap to call every few epochs. Truth is drawn in green, prediction in red
over the gray image, so a model that collapsed to background shows an empty third panel.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pick_cases", "overlay_grid"]

_GREEN = np.array([0.1, 0.9, 0.2], np.float32)
_RED = np.array([1.0, 0.15, 0.1], np.float32)


def pick_cases(masks: np.ndarray) -> dict[str, int]:
    """Indices of the smallest lesion, the largest lesion and a lesion-free image (if any)."""
    area = masks.reshape(len(masks), -1).sum(axis=1)
    cases: dict[str, int] = {}
    if (area > 0).any():
        with_lesion = np.flatnonzero(area > 0)
        cases["smallest"] = int(with_lesion[np.argmin(area[with_lesion])])
        cases["largest"] = int(with_lesion[np.argmax(area[with_lesion])])
    if (area == 0).any():
        cases["lesion_free"] = int(np.flatnonzero(area == 0)[0])
    return cases


def _gray_rgb(image: np.ndarray) -> np.ndarray:
    gray = image.mean(axis=-1) if image.ndim == 3 else image
    return np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)


def _tint(rgb: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[mask] = 0.45 * out[mask] + 0.55 * colour
    return out


def overlay_grid(
    images: np.ndarray, truth: np.ndarray, prob: np.ndarray, *, threshold: float = 0.5
) -> np.ndarray:
    """One row per case (image, truth, prediction), uint8 RGB, 2-pixel white gutters."""
    rows = []
    for image, t, p in zip(images, truth, prob, strict=True):
        rgb = _gray_rgb(image)
        panels = [
            rgb,
            _tint(rgb, t.squeeze(-1) > 0, _GREEN),
            _tint(rgb, p.squeeze(-1) > threshold, _RED),
        ]
        gutter = np.ones((rgb.shape[0], 2, 3), np.float32)
        rows.append(np.concatenate([panels[0], gutter, panels[1], gutter, panels[2]], axis=1))
        rows.append(np.ones((2, rows[-1].shape[1], 3), np.float32))
    grid = np.concatenate(rows[:-1], axis=0)
    return (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
