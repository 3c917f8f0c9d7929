"""Overlay pictures: which validation cases are drawn, and what each panel shows."""

from __future__ import annotations

import numpy as np

from segsweep.evaluation.overlay import overlay_grid, panel_scale, pick_cases


def masks_with_areas(*areas, size=8):
    """(N, size, size, 1) masks whose lesions cover the given pixel counts."""
    out = np.zeros((len(areas), size * size), np.float32)
    for i, area in enumerate(areas):
        out[i, :area] = 1
    return out.reshape(len(areas), size, size, 1)


def test_pick_cases_finds_smallest_largest_and_lesion_free():
    masks = masks_with_areas(5, 0, 2, 30, 0, 9)
    assert pick_cases(masks) == {"smallest": 2, "largest": 3, "lesion_free": 1}


def test_pick_cases_without_a_lesion_free_image():
    assert pick_cases(masks_with_areas(4, 1, 7)) == {"smallest": 1, "largest": 2}


def test_pick_cases_when_no_image_holds_a_lesion():
    assert pick_cases(masks_with_areas(0, 0)) == {"lesion_free": 0}


def case(size=6):
    """One gray ramp image with a lesion in its top-left corner, predicted at its bottom right."""
    image = np.linspace(0.1, 0.9, size * size, dtype=np.float32).reshape(size, size, 1)
    truth = np.zeros((size, size, 1), np.float32)
    truth[:2, :2] = 1
    prob = np.full((size, size, 1), 0.2, np.float32)
    prob[-2:, -2:] = 0.9
    prob[0, -1] = 0.5  # exactly at the threshold: not lesion
    return image, truth, prob


def test_grid_has_one_row_per_case_with_three_panels_and_gutters():
    image, truth, prob = case(size=6)
    grid = overlay_grid(np.stack([image] * 3), np.stack([truth] * 3), np.stack([prob] * 3))
    assert grid.dtype == np.uint8
    assert grid.shape == (3 * 6 + 2 * 2, 3 * 6 + 2 * 2, 3)
    assert (grid[6:8] == 255).all()  # white gutter between rows
    assert (grid[:, 6:8] == 255).all()  # white gutter between panels


def test_prediction_panel_marks_false_positives_and_truth_panel_missed_lesions():
    # the case's lesion (top left) is missed and its prediction (bottom right) touches nothing
    image, truth, prob = case(size=6)
    grid = overlay_grid(image[None], truth[None], prob[None], threshold=0.5).astype(int)
    gray = np.round(image[..., 0] * 255).astype(int)
    panels = {"image": grid[:, 0:6], "truth": grid[:, 8:14], "prediction": grid[:, 16:22]}

    predicted = prob[..., 0] > 0.5
    magenta = panels["prediction"][predicted]
    assert (magenta[:, 0] > magenta[:, 1] + 50).all() and (magenta[:, 2] > magenta[:, 1] + 50).all()
    for channel in range(3):
        assert (panels["prediction"][~predicted][:, channel] == gray[~predicted]).all()
        assert (panels["image"][..., channel] == gray).all()

    lesion = truth[..., 0] > 0
    yellow = panels["truth"][lesion]
    assert (yellow[:, 0] > yellow[:, 2] + 50).all() and (yellow[:, 1] > yellow[:, 2] + 50).all()
    assert (panels["truth"][~lesion][:, 0] == gray[~lesion]).all()


def test_a_found_lesion_is_green_and_its_prediction_red():
    image, truth, _ = case(size=6)
    prob = truth * 0.9
    grid = overlay_grid(image[None], truth[None], prob[None]).astype(int)
    lesion = truth[..., 0] > 0
    green, red = grid[:, 8:14][lesion], grid[:, 16:22][lesion]
    assert (green[:, 1] > green[:, 0] + 50).all() and (green[:, 1] > green[:, 2] + 50).all()
    assert (red[:, 0] > red[:, 1] + 50).all() and (red[:, 0] > red[:, 2] + 50).all()


def test_labelled_grid_is_enlarged_and_headed_by_a_legend_and_row_labels():
    image, truth, prob = case(size=8)
    plain = overlay_grid(image[None], truth[None], prob[None])
    grid = overlay_grid(image[None], truth[None], prob[None], names=["case_7"], scale=32)
    assert panel_scale(8) == 32 and panel_scale(64) == 4 and panel_scale(512) == 1
    # a legend strip and a label strip (22 px each) above one 256-px row
    assert grid.shape == (22 + 22 + 256, 3 * 256 + 2 * 2, 3)
    row = grid[-256:]
    assert (row[::32, ::32][:, :8] == plain[:, :8][:8]).all()  # nearest neighbour: same pixels
    label = grid[22:44]
    assert (label < 128).any() and (label[:, -50:] == 255).all()  # dark text, white margin


def test_a_collapsed_model_leaves_the_prediction_panel_plain_gray():
    image, truth, _ = case(size=6)
    grid = overlay_grid(image[None], truth[None], np.zeros_like(truth)[None])
    assert (grid[:, 16:22] == grid[:, 0:6]).all()


def test_colour_images_are_shown_in_gray():
    rgb = np.zeros((4, 4, 3), np.float32)
    rgb[..., 0] = 0.6  # mean over channels: 0.2
    grid = overlay_grid(rgb[None], np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 4, 1)))
    assert (grid[:, :4] == 51).all()
