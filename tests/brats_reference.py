"""The BraTS 2023 lesion-wise Dice, transcribed from the organisers' code to check segsweep's.

Source: github.com/rachitsaluja/BraTS-2023-Metrics, ``metrics.py``: ``dice``,
``get_GTseg_combinedByDilation``, the lesion loop of ``get_LesionWiseScores`` and the Dice part
of ``get_LesionWiseResults``, kept statement by statement. Changes, none of which touches a
rule: arrays in place of NIfTI files, unit spacing; ``cc3d.connected_components(x,
connectivity=26)`` is ``scipy.ndimage.label`` with the full 3×3(×3) structure (the same
connectivity, also in 2-D); the dilation structure is ``generate_binary_structure(ndim, 2)``
(the original's ``(3, 2)`` in 3-D, its 2-D analogue); pandas is replaced by lists; HD95 is left
out (it needs the ``surface_distance`` package).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage


def _cc(x):
    return scipy.ndimage.label(x, structure=np.ones((3,) * x.ndim, dtype=bool))[0]


def dice(im1, im2):
    im1 = np.asarray(im1).astype(bool)
    im2 = np.asarray(im2).astype(bool)
    intersection = np.logical_and(im1, im2)
    return 2.0 * (intersection.sum()) / (im1.sum() + im2.sum())


def get_GTseg_combinedByDilation(gt_dilated_cc_mat, gt_label_cc):  # noqa: N802
    gt_seg_combinedByDilation_mat = np.zeros_like(gt_dilated_cc_mat)  # noqa: N806
    for comp in range(np.max(gt_dilated_cc_mat)):
        comp += 1
        gt_d_tmp = np.zeros_like(gt_dilated_cc_mat)
        gt_d_tmp[gt_dilated_cc_mat == comp] = 1
        gt_d_tmp = gt_label_cc * gt_d_tmp
        np.place(gt_d_tmp, gt_d_tmp > 0, comp)
        gt_seg_combinedByDilation_mat += gt_d_tmp
    return gt_seg_combinedByDilation_mat


def lesion_wise_scores(pred_mat, gt_mat, dil_factor):
    """``get_LesionWiseScores`` from "Performing Dilation and CC analysis" on."""
    dilation_struct = scipy.ndimage.generate_binary_structure(gt_mat.ndim, 2)
    gt_mat_cc = _cc(gt_mat)
    pred_mat_cc = _cc(pred_mat)
    gt_mat_dilation = scipy.ndimage.binary_dilation(
        gt_mat, structure=dilation_struct, iterations=dil_factor
    )
    gt_mat_dilation_cc = _cc(gt_mat_dilation)
    gt_label_cc = get_GTseg_combinedByDilation(gt_mat_dilation_cc, gt_mat_cc)
    pred_label_cc = pred_mat_cc
    tp, metric_pairs = [], []
    for gtcomp in range(np.max(gt_label_cc)):
        gtcomp += 1
        gt_tmp = np.zeros_like(gt_label_cc)
        gt_tmp[gt_label_cc == gtcomp] = 1
        gt_tmp_dilation = scipy.ndimage.binary_dilation(
            gt_tmp, structure=dilation_struct, iterations=dil_factor
        )
        gt_vol = np.sum(gt_tmp)
        pred_tmp = np.copy(pred_label_cc)
        pred_tmp = pred_tmp * gt_tmp_dilation
        intersecting_cc = np.unique(pred_tmp)
        intersecting_cc = intersecting_cc[intersecting_cc != 0]
        for cc in intersecting_cc:
            tp.append(cc)
        pred_tmp = np.copy(pred_label_cc)
        pred_tmp[np.isin(pred_tmp, intersecting_cc, invert=True)] = 0
        pred_tmp[np.isin(pred_tmp, intersecting_cc)] = 1
        dice_score = dice(pred_tmp, gt_tmp)
        metric_pairs.append((intersecting_cc, gtcomp, gt_vol, dice_score))
    fp = np.unique(pred_label_cc[np.isin(pred_label_cc, tp + [0], invert=True)])
    return fp, metric_pairs


def lesion_wise_dice(pred_mat, gt_mat, dil_factor, lesion_volume_thresh):
    """``LesionWise_Score_Dice`` of ``get_LesionWiseResults`` for one label."""
    fp, metric_pairs = lesion_wise_scores(pred_mat, gt_mat, dil_factor)
    kept = [m for m in metric_pairs if m[2] > lesion_volume_thresh]
    with np.errstate(invalid="ignore", divide="ignore"):
        lesion_wise_dice = np.sum([m[3] for m in kept]) / np.float64(len(kept) + len(fp))
    if math.isnan(lesion_wise_dice):
        lesion_wise_dice = 1
    return float(lesion_wise_dice)
