"""``doctor`` for NIfTI volumes: every case read once, every fault kept, the volume facts.

The per-case checks are :func:`segsweep.data.volumes.read_case`'s own, so doctor refuses
exactly what loading refuses; one error per case, and it keeps going past a bad case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segsweep.config import Config
from segsweep.data.slices import choose_axis, lesion_mask
from segsweep.data.volumes import (
    allowed_labels,
    detect_layout,
    find_cases,
    read_case,
    test_cases,
)
from segsweep.doctor._report import Finding
from segsweep.errors import DataError

__all__ = ["scan_volumes"]


def _case_facts(volume: Any, cfg: Config) -> dict[str, Any]:
    axis = choose_axis(volume.spacing, cfg.data.slice_axis)
    lesion = np.moveaxis(lesion_mask(volume.label, cfg.data.lesion_labels), axis, 0)
    per_slice = lesion.reshape(lesion.shape[0], -1).any(axis=1)
    return {
        "case": volume.case,
        "shape": list(volume.image.shape[:3]),
        "channels": int(volume.image.shape[-1]),
        "spacing": [round(s, 4) for s in volume.spacing],
        "axis": axis,
        "slices": int(lesion.shape[0]),
        "lesion_free_slices": int((~per_slice).sum()),
        "lesion_voxels": int(lesion.sum()),
    }


def _summary(layout: str, rows: list[dict], n_test: int) -> dict[str, Any]:
    spacings = np.array([r["spacing"] for r in rows]) if rows else np.ones((1, 3))
    voxels = np.array([r["lesion_voxels"] for r in rows]) if rows else np.zeros(1)
    slices = sum(r["slices"] for r in rows)
    free = sum(r["lesion_free_slices"] for r in rows)
    return {
        "layout": layout,
        "pairs": len(rows),  # what study create counts: here, cases
        "cases": len(rows),
        "test_cases": n_test,
        "slices": slices,
        "shapes": sorted({"x".join(map(str, r["shape"])) for r in rows}),
        "channels": sorted({r["channels"] for r in rows}),
        "spacing_mm": sorted({"x".join(f"{s:g}" for s in r["spacing"]) for r in rows}),
        "slice_axis": sorted({r["axis"] for r in rows}),
        "anisotropy": float((spacings.max(axis=1) / spacings.min(axis=1)).max()),
        "lesion_voxels_per_case": {
            "min": int(voxels.min()),
            "median": float(np.median(voxels)),
            "max": int(voxels.max()),
        },  # fmt: skip
        "lesion_free_slices": free,
        "lesion_free_share": free / slices if slices else None,
        "per_case": rows,
    }


def scan_volumes(cfg: Config) -> tuple[dict[str, Any], list[Finding]]:
    """The volume facts of ``cfg.data.dir`` and an error finding per unusable case."""
    data_dir = Path(cfg.data.dir)
    errors: list[Finding] = []
    try:
        layout = detect_layout(data_dir)
        cases = find_cases(data_dir)
        held = test_cases(data_dir) if not cfg.data.test_dir else find_cases(cfg.data.test_dir)
        allowed = allowed_labels(data_dir)
    except DataError as err:
        return {"layout": "unreadable", "pairs": 0}, [Finding("error", "layout", str(err))]
    rows = []
    for case in [*cases, *held]:
        try:
            volume = read_case(case, allowed=allowed)
        except DataError as err:
            errors.append(Finding("error", "volume", str(err), (case.case,)))
            continue
        if case in cases:
            rows.append(_case_facts(volume, cfg))
    if rows and not any(r["lesion_voxels"] for r in rows):
        msg = f"no lesion voxel in any of the {len(rows)} label volumes of {data_dir}"
        errors.append(Finding("error", "no_lesion", msg))
    if cfg.data.intensity == "dtype":
        msg = 'data.intensity "dtype" does not apply to volumes: use "zscore", "ct" or "minmax"'
        errors.append(Finding("error", "intensity", msg))
    return _summary(layout, rows, len(held)), errors
