"""Masks for NIfTI volumes, written back as NIfTI that overlay exactly on their scans.

Each case (a NIfTI file, nnU-Net's ``CASE_XXXX`` channel files, or a layout folder's
``imagesTs``/``images``) is normalised and sliced as in training, every slice predicted and
mapped back to its original size, and the slices stacked into ``OUT/CASE.nii.gz``: uint8
{0, 1}, the input's shape, affine and header, its qform and sform codes kept, so any NIfTI viewer
lays it on the scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segsweep.data.slices import choose_axis
from segsweep.data.volumes import Volume, read_case, unlabelled_cases
from segsweep.evaluation.cases import segment_volume

__all__ = ["has_volumes", "mask_image", "predict_volumes"]


def has_volumes(folder: Path) -> bool:
    """Whether ``folder`` (or its imagesTs/ or images/) holds NIfTI files."""
    try:
        unlabelled_cases(Path(folder))
    except Exception:  # noqa: BLE001 - not a volume folder: the picture path reports it
        return False
    return True


def mask_image(mask: np.ndarray, volume: Volume) -> Any:
    """``mask`` as a NIfTI image on ``volume``'s grid: its affine, header and xform codes."""
    import nibabel as nib

    header = volume.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)  # an image's intensity scaling must not rescale a mask
    image = nib.Nifti1Image(mask.astype(np.uint8), volume.affine, header=header)
    image.set_qform(volume.header.get_qform(), code=int(volume.header["qform_code"]))
    image.set_sform(volume.header.get_sform(), code=int(volume.header["sform_code"]))
    return image


def predict_volumes(
    model: Any,
    folder: Path,
    out_dir: Path,
    *,
    threshold: float | None = None,
    batch_size: int = 16,
) -> int:
    """Write ``out_dir/CASE.nii.gz`` for every case of ``folder``; returns how many.

    Every case is read and checked before anything is written, so bad input leaves no files.
    """
    import nibabel as nib

    cases = unlabelled_cases(Path(folder))
    for case in cases:  # decoded twice, never held together: one bad file fails before output
        read_case(case)
    out_dir.mkdir(parents=True, exist_ok=True)
    for case in cases:
        volume = read_case(case)
        mask = segment_volume(
            volume,
            axis=choose_axis(volume.spacing, model.slice_axis),
            image_size=model.prepared_size,
            resize=model.resize,
            intensity=model.intensity,
            ct_window=model.ct_window,
            probabilities=model.probabilities,
            mask=lambda prob, size: model.mask(prob, size, threshold),
            batch_size=batch_size,
        )
        nib.save(mask_image(mask, volume), out_dir / f"{case.case}.nii.gz")
    return len(cases)
