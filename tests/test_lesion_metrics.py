"""Lesion-wise metrics: tables of tiny hand-computed masks, and medpy as an independent check."""

from __future__ import annotations

import numpy as np
import pytest

from segsweep.evaluation.metrics import (
    LesionCounts,
    hd95,
    lesion_counts,
    lesion_metrics,
    lesion_scores,
)


def grid(*rows: str) -> np.ndarray:
    """A boolean mask drawn with '#' for lesion and '.' for background."""
    return np.array([[c == "#" for c in row] for row in rows])


def counts(truth, pred, **kw) -> LesionCounts:
    return lesion_counts(truth, pred, **kw)


# Two true lesions, one found exactly, one missed.
TWO_ONE_MISSED = (
    grid("##....", "##....", "......", "....##", "....##"),
    grid("##....", "##....", "......", "......", "......"),
)
# One true lesion (2x4) covered by two predicted components (2x1 each, at both ends).
ONE_BY_TWO = (
    grid("......", ".####.", ".####.", "......"),
    grid("......", ".#..#.", ".#..#.", "......"),
)
# A false positive on a lesion-free image.
FP_ON_EMPTY = (grid("....", "....", "....", "...."), grid("....", ".#..", "....", "...."))
BOTH_EMPTY = (grid("...", "..."), grid("...", "..."))


@pytest.mark.parametrize(
    ("pair", "kw", "expected"),
    [
        (TWO_ONE_MISSED, {}, LesionCounts(true=2, found=1, pred=1, pred_matched=1, dice_sum=1.0)),
        # the union of both components (4 px) against the lesion (8 px): 2*4 / (8 + 4)
        (ONE_BY_TWO, {}, LesionCounts(true=1, found=1, pred=2, pred_matched=2, dice_sum=8 / 12)),
        (FP_ON_EMPTY, {}, LesionCounts(true=0, found=0, pred=1, pred_matched=0, dice_sum=0.0)),
        (BOTH_EMPTY, {}, LesionCounts()),
        # both 4-px lesions fall below min_lesion_px=5: left out, so nothing is missed, and the
        # component touching one of them is neither a hit nor a false positive
        (TWO_ONE_MISSED, {"min_lesion_px": 5}, LesionCounts()),
        # only the missed 8-px lesion is scored once the threshold is 5 px in a bigger case
        (ONE_BY_TWO, {"min_lesion_px": 9}, LesionCounts(pred=0)),
    ],
    ids=[
        "one-missed",
        "one-lesion-two-components",
        "fp-on-empty",
        "both-empty",
        "below-min",
        "below-min-two-components",
    ],
)
def test_lesion_counts_table(pair, kw, expected):
    got = counts(*pair, **kw)
    assert (got.true, got.found, got.pred, got.pred_matched) == (
        expected.true,
        expected.found,
        expected.pred,
        expected.pred_matched,
    )
    assert got.dice_sum == pytest.approx(expected.dice_sum)


def test_scores_of_a_set_sum_counts_over_images_then_divide():
    # one-missed + one-lesion-two-components + fp-on-empty as one validation set
    truth = [TWO_ONE_MISSED[0], ONE_BY_TWO[0], FP_ON_EMPTY[0]]
    pred = [TWO_ONE_MISSED[1], ONE_BY_TWO[1], FP_ON_EMPTY[1]]
    total = sum((counts(t, p) for t, p in zip(truth, pred, strict=True)), LesionCounts())
    s = lesion_scores(total)
    # 3 true lesions, 2 found; 4 components, 3 touch a lesion; 1 false positive
    assert s["lesion_recall"] == pytest.approx(2 / 3)
    assert s["lesion_precision"] == pytest.approx(3 / 4)
    assert s["lesion_f1"] == pytest.approx(2 * (2 / 3) * (3 / 4) / (2 / 3 + 3 / 4))
    # (1 + 8/12 + 0 for the missed one) / (3 true lesions + 1 false positive)
    assert s["lesion_dsc"] == pytest.approx((1 + 8 / 12) / 4)
    assert (s["lesions_true"], s["lesions_missed"], s["lesions_fp"]) == (3, 1, 1)


@pytest.mark.parametrize(
    ("total", "recall", "precision", "f1", "dsc"),
    [
        (LesionCounts(), 1.0, 1.0, 1.0, 1.0),  # nothing to find, nothing found
        (LesionCounts(pred=2), 0.0, 0.0, 0.0, 0.0),  # only false positives
        (LesionCounts(true=3), 0.0, 0.0, 0.0, 0.0),  # every lesion missed, nothing predicted
    ],
    ids=["both-empty", "only-fp", "all-missed"],
)
def test_empty_rules(total, recall, precision, f1, dsc):
    s = lesion_scores(total)
    assert (s["lesion_recall"], s["lesion_precision"], s["lesion_f1"], s["lesion_dsc"]) == (
        recall,
        precision,
        f1,
        dsc,
    )


def test_a_component_on_a_lesion_too_small_to_score_leaves_precision_alone():
    truth = grid("#.....", "......", "...###", "...###")
    pred = grid("#.....", "......", "......", "#.....")  # hits the 1-px lesion; one false alarm
    c = counts(truth, pred, min_lesion_px=2)
    assert (c.true, c.found, c.pred, c.pred_matched) == (1, 0, 1, 0)
    s = lesion_scores(c)
    assert s["lesion_precision"] == 0.0 and s["lesions_fp"] == 1


def test_dilation_wider_than_the_image_matches_everything_in_it():
    truth, pred = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    truth[0, 0], pred[7, 7] = True, True
    assert counts(truth, pred, match_dilation=20).found == 1


def test_diagonal_neighbours_are_one_lesion_and_dilation_widens_matching():
    truth = grid("#.....", ".#....", "......", "......")
    near = grid("......", "......", "..#...", "......")  # touches the lesion only diagonally
    assert counts(truth, truth).true == 1  # 8-connected: the two pixels are one lesion
    assert counts(truth, near).found == 0
    assert counts(truth, near, match_dilation=1).found == 1
    assert counts(truth, near, match_dilation=1).false_positive == 0


def test_a_component_touching_two_lesions_counts_for_both():
    truth = grid("#.#", "...", "...")
    pred = grid("###", "...", "...")
    c = counts(truth, pred)
    assert (c.true, c.found, c.pred, c.pred_matched) == (2, 2, 1, 1)
    assert c.dice_sum == pytest.approx(2 * (2 * 1 / (1 + 3)))


def test_hd95_empty_rules_and_a_hand_value():
    empty = np.zeros((3, 4), bool)
    one = empty.copy()
    one[1, 1] = True
    assert hd95(empty, empty) == 0.0
    assert hd95(empty, one) == hd95(one, empty) == pytest.approx(5.0)  # the 3x4 diagonal
    shifted = np.zeros((3, 4), bool)
    shifted[1, 3] = True
    assert hd95(one, shifted) == pytest.approx(2.0)


def test_lesion_metrics_of_probabilities_average_hd95_over_images():
    truth = np.stack([TWO_ONE_MISSED[0], TWO_ONE_MISSED[0]]).astype(np.float32)[..., None]
    prob = np.stack([TWO_ONE_MISSED[1], TWO_ONE_MISSED[0]]).astype(np.float32)[..., None] * 0.9
    m = lesion_metrics(truth, prob, threshold=0.5)
    assert m["lesion_recall"] == pytest.approx(3 / 4)
    assert m["hd95"] == pytest.approx(np.mean([hd95(*TWO_ONE_MISSED), 0.0]))
    assert "hd95" not in lesion_metrics(truth, prob, with_hd95=False)


def _blobs(rng: np.random.Generator, size: int = 48, n: int = 5) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), bool)
    for _ in range(n):
        cy, cx = rng.integers(4, size - 4, 2)
        r = rng.uniform(1.0, 4.0)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask


def test_hd95_agrees_with_medpy_on_random_masks():
    binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth, pred = _blobs(rng), _blobs(rng)
        assert hd95(truth, pred) == pytest.approx(binary.hd95(pred, truth), rel=1e-9)


def test_hd95_agrees_with_medpy_on_volumes_with_spacing_touching_the_edges():
    """Speckled volumes (many boundary voxels, some on the grid's faces, where the bounding-box
    crop must not change the erosion) with anisotropic voxels."""
    binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(1)
    for _ in range(20):
        truth = rng.random((9, 10, 11)) > 0.8
        pred = rng.random((9, 10, 11)) > 0.85
        truth[:, :3], pred[4:] = False, False
        got = hd95(truth, pred, (2.5, 0.8, 1.2))
        assert got == pytest.approx(binary.hd95(pred, truth, voxelspacing=(2.5, 0.8, 1.2)))


def test_lesion_recall_agrees_with_medpy_obj_tpr_where_matching_is_one_to_one():
    binary = pytest.importorskip("medpy.metric.binary")
    from segsweep.evaluation.metrics import label_lesions, matched_pairs

    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(60):
        truth = _blobs(rng)
        pred = np.roll(truth, tuple(rng.integers(-2, 3, 2)), axis=(0, 1)) | _blobs(rng, n=1)
        t_lab, _ = label_lesions(truth)
        p_lab, _ = label_lesions(pred)
        pairs = matched_pairs(t_lab, p_lab, 0)
        one_to_one = len(np.unique(pairs[:, 0])) == len(np.unique(pairs[:, 1])) == len(pairs)
        if not one_to_one or not len(pairs):
            continue
        c = counts(truth, pred)
        # medpy's obj_tpr(result, reference) = matched reference objects / result objects
        # (its docstring's 0.8 example); with 8-connectivity (connectivity=2) ours is its
        # precision of predicted components and, swapped, its recall.
        assert c.pred_matched / c.pred == pytest.approx(binary.obj_tpr(pred, truth, 2))
        assert c.found / c.true == pytest.approx(binary.obj_tpr(truth, pred, 2))
        checked += 1
    assert checked >= 10
