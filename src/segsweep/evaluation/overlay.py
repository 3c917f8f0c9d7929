"""Side-by-side overlay pictures of validation cases: image | truth | prediction.

Numpy and Pillow only, cheap enough for every few epochs. In the truth panel a lesion the
model found is green and one it missed is yellow; in the prediction panel a component that
touches a true lesion is red and a false positive (touching none) magenta, matched by the rules
of the lesion-wise metrics. So a model that collapsed to background shows an empty third panel
and a yellow second one. For people, :func:`overlay_grid` enlarges each panel (nearest
neighbour, so pixels stay pixels) and labels each row with the case's file name, its Dice and
its lesions found, missed and invented.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from segsweep.evaluation.metrics import label_lesions, matched_pairs, per_image_dice

__all__ = ["COLOURS", "pick_cases", "overlay_grid", "panel_scale"]

COLOURS = {
    "found": np.array([0.1, 0.9, 0.2], np.float32),  # green
    "missed": np.array([1.0, 0.85, 0.0], np.float32),  # yellow
    "matched": np.array([1.0, 0.15, 0.1], np.float32),  # red
    "false positive": np.array([0.95, 0.1, 0.95], np.float32),  # magenta
}
PANEL_PX = 256  # the smallest panel drawn for a person to look at


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


def panel_scale(size: int, target: int = PANEL_PX) -> int:
    """The whole-number enlargement that draws a ``size``-pixel panel at ``target`` px or more."""
    return max(1, math.ceil(target / size))


def _gray_rgb(image: np.ndarray) -> np.ndarray:
    gray = image.mean(axis=-1) if image.ndim == 3 else image
    return np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)


def _tint(rgb: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[mask] = 0.45 * out[mask] + 0.55 * colour
    return out


def _classified(truth: np.ndarray, pred: np.ndarray, dilation: int, min_px: int) -> dict:
    """Masks of found and missed true lesions, matched and false-positive components."""
    true_lab, n_true = label_lesions(truth)
    pred_lab, n_pred = label_lesions(pred)
    pairs = matched_pairs(true_lab, pred_lab, dilation) if n_true and n_pred else np.zeros((0, 2))
    found = np.zeros(n_true + 1, bool)
    found[pairs[:, 0].astype(int)] = True
    scored = np.bincount(true_lab.ravel(), minlength=n_true + 1) >= min_px
    matched = np.zeros(n_pred + 1, bool)
    matched[pairs[:, 1].astype(int)] = True
    missed = ~found & scored
    missed[0] = matched[0] = False
    return {
        "missed": missed[true_lab],
        "found": truth & ~missed[true_lab],
        "matched": matched[pred_lab],
        "false positive": pred & ~matched[pred_lab],
        "n": (int(found[1:][scored[1:]].sum()), int(scored[1:].sum()), int((~matched[1:]).sum())),
    }


def _panels(image, truth, pred, dilation: int, min_px: int) -> tuple[list[np.ndarray], tuple]:
    parts = _classified(truth, pred, dilation, min_px)
    rgb = _gray_rgb(image)
    truth_panel, pred_panel = rgb, rgb
    for name in ("found", "missed"):
        truth_panel = _tint(truth_panel, parts[name], COLOURS[name])
    for name in ("matched", "false positive"):
        pred_panel = _tint(pred_panel, parts[name], COLOURS[name])
    return [rgb, truth_panel, pred_panel], parts["n"]


def _row_label(name: str, dice: float, counts: tuple[int, int, int]) -> str:
    found, true, fp = counts
    return f"{name}   Dice {dice:.3f}   lesions found {found} of {true}   false positives {fp}"


def _strip(text: str, width: int, *, height: int = 22, legend: bool = False) -> np.ndarray:
    """A white strip holding one line of text (and, for the legend, colour swatches)."""
    strip = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=14)
    x = 4
    if legend:
        for name, colour in COLOURS.items():
            fill = tuple(int(255 * c) for c in colour)
            draw.rectangle([x, 5, x + 12, 17], fill=fill)
            draw.text((x + 16, 3), name, fill="black", font=font)
            x += 24 + int(draw.textlength(name, font=font))
        x += 8
    draw.text((x, 3), text, fill="black", font=font)
    return np.asarray(strip, np.float32) / 255.0


def overlay_grid(
    images: np.ndarray,
    truth: np.ndarray,
    prob: np.ndarray,
    *,
    threshold: float = 0.5,
    names: list[str] | None = None,
    scale: int = 1,
    match_dilation: int = 0,
    min_lesion_px: int = 0,
) -> np.ndarray:
    """One row per case (image, truth, prediction), uint8 RGB, 2-pixel white gutters.

    With ``names``, a legend strip heads the grid and each row gets a strip with its name, hard
    Dice and lesion counts; ``scale`` enlarges every panel by nearest neighbour.
    """
    pred = prob[..., 0] > threshold
    truth_b = truth[..., 0] > 0
    dice = per_image_dice(truth_b, prob[..., 0], threshold=threshold)
    rows = []
    for i, image in enumerate(images):
        panels, counts = _panels(image, truth_b[i], pred[i], match_dilation, min_lesion_px)
        panels = [np.kron(p, np.ones((scale, scale, 1), np.float32)) for p in panels]
        gutter = np.ones((panels[0].shape[0], 2, 3), np.float32)
        row = np.concatenate([panels[0], gutter, panels[1], gutter, panels[2]], axis=1)
        if names is not None:
            row = np.concatenate([_strip(_row_label(names[i], dice[i], counts), row.shape[1]), row])
        rows += [row, np.ones((2, row.shape[1], 3), np.float32)]
    if names is not None:
        rows.insert(0, _strip("", rows[0].shape[1], legend=True))
    grid = np.concatenate(rows[:-1], axis=0)
    return (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
