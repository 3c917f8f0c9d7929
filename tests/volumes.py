"""Tiny NIfTI volume sets written with nibabel, in each layout segsweep reads.

Every case is a ``shape`` volume of textured background with one or two bright ellipsoid
lesions (label 1, or labels 1 and 2), spacing ``spacing`` mm, an affine with a translation, and
a lesion-free case when asked; known values a test can compute by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (24, 24, 8)
SPACING = (0.8, 0.8, 2.5)


def affine(spacing: tuple[float, ...] = SPACING) -> np.ndarray:
    a = np.diag([*spacing, 1.0])
    a[:3, 3] = (-10.0, 12.5, 3.0)
    return a


def case_arrays(seed: int, shape=SHAPE, *, lesion: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, label uint8): a head of noise, lesions bright; label 2 inside label 1."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(np.float32)
    centre = np.array(shape, np.float32)[:, None, None, None] / 2
    head = (((grid - centre) / (centre * 0.9)) ** 2).sum(axis=0) < 1
    image = np.where(head, 100 + 10 * rng.standard_normal(shape), 0).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    if lesion:
        c = np.array([shape[0] * 0.4 + seed % 3, shape[1] * 0.5, shape[2] * 0.5])[
            :, None, None, None
        ]
        r = np.array([4, 3, 2.0])[:, None, None, None]
        blob = (((grid - c) / r) ** 2).sum(axis=0) < 1
        core = (((grid - c) / (r / 2)) ** 2).sum(axis=0) < 1
        label[blob], label[core] = 1, 2
        image[blob] += 80
    return image, label


def _save(array: np.ndarray, path: Path, spacing=SPACING) -> None:
    img = nib.Nifti1Image(array, affine(spacing))
    img.header.set_qform(affine(spacing), code=1)
    img.header.set_sform(affine(spacing), code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)


def write_nnunet(
    root: Path, n: int = 4, *, channels: int = 1, test: int = 0, empty: tuple[int, ...] = ()
) -> Path:
    """nnU-Net v2 raw layout: dataset.json, imagesTr/CASE_000c.nii.gz, labelsTr/CASE.nii.gz."""
    doc = {
        "channel_names": {str(c): f"mod{c}" for c in range(channels)},
        "labels": {"background": 0, "edema": 1, "core": 2},
        "numTraining": n,
        "file_ending": ".nii.gz",
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(doc))
    for i in range(n + test):
        part = "Tr" if i < n else "Ts"
        image, label = case_arrays(i, lesion=i not in empty)
        for c in range(channels):
            _save(image * (1 + c), root / f"images{part}" / f"case_{i:03d}_{c:04d}.nii.gz")
        _save(label, root / f"labels{part}" / f"case_{i:03d}.nii.gz")
    return root


def write_decathlon(root: Path, n: int = 4, *, channels: int = 2) -> Path:
    """Decathlon layout: dataset.json with "modality", 4D images (channels last)."""
    doc = {
        "modality": {str(c): f"mod{c}" for c in range(channels)},
        "labels": {"0": "background", "1": "edema", "2": "core"},
        "numTraining": n,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(doc))
    for i in range(n):
        image, label = case_arrays(i)
        stacked = np.stack([image * (1 + c) for c in range(channels)], axis=-1)
        _save(stacked, root / "imagesTr" / f"case_{i:03d}.nii.gz")
        _save(label, root / "labelsTr" / f"case_{i:03d}.nii.gz")
    return root


def write_pairs(root: Path, n: int = 4) -> Path:
    """images/*.nii.gz + masks/*.nii.gz, paired by stem."""
    for i in range(n):
        image, label = case_arrays(i)
        _save(image, root / "images" / f"case_{i:03d}.nii.gz")
        _save(label, root / "masks" / f"case_{i:03d}.nii.gz")
    return root


def write_arrays(
    root: Path,
    cases: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    spacing: tuple[float, float, float] = SPACING,
    names: tuple[str, ...] = ("mod0",),
) -> Path:
    """nnU-Net v2 raw layout from arrays: ``cases`` maps a case to (image (X, Y, Z[, C]),
    label (X, Y, Z)); ``names`` are dataset.json's channel names."""
    doc = {
        "channel_names": {str(c): name for c, name in enumerate(names)},
        "labels": {"background": 0, "lesion": 1},
        "numTraining": len(cases),
        "file_ending": ".nii.gz",
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(doc))
    for case, (image, label) in cases.items():
        planes = image if image.ndim == 4 else image[..., None]
        for c in range(planes.shape[-1]):
            path = root / "imagesTr" / f"{case}_{c:04d}.nii.gz"
            _save(planes[..., c].astype(np.float32), path, spacing)
        _save(label.astype(np.uint8), root / "labelsTr" / f"{case}.nii.gz", spacing)
    return root
