"""What a volume folder adds to its fingerprint: each case's grid, spacing and slicing axis,
and every 3D lesion's volume; the slice-level numbers stay in
:class:`~segsweep.plan.fingerprint.Fingerprint`, which the 2D rules read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from segsweep.data.slices import slice_stem

__all__ = ["VolumeFacts", "percentiles"]


def percentiles(values: np.ndarray) -> dict[str, float] | None:
    """p5 / median / p95 of ``values`` for the summaries; None when there are none."""
    if not values.size:
        return None
    qs = np.percentile(values.astype(float), [5, 50, 95])
    return {"p5": float(qs[0]), "median": float(qs[1]), "p95": float(qs[2])}


@dataclass(frozen=True, eq=False)
class VolumeFacts:
    """What a volume folder adds to the slice-level arrays. Per case (c rows): ``shapes`` and
    ``spacings`` (c, 3) the voxel grid and mm per voxel as stored, ``axes`` (c,) the axis the
    loader cuts it along; ``slice_case`` (n,) each slice's case; per 3D lesion (every one):
    ``lesion_voxels`` and ``lesion_case``. The fingerprint's lesion arrays, which the size rules
    read, hold those of at least ``min_voxels`` voxels, in the same order."""

    layout: str
    cases: tuple[str, ...]
    shapes: np.ndarray
    spacings: np.ndarray
    axes: np.ndarray
    slice_case: np.ndarray
    lesion_voxels: np.ndarray
    lesion_case: np.ndarray
    test_cases: int = 0  # held out by imagesTs/labelsTs
    min_voxels: int = 1  # smaller 3D lesions are label specks to the size rules
    sampled_from: str = "labelled voxels"  # what the channel statistics sample

    def in_plane(self) -> np.ndarray:
        """(c, 2) mm per pixel of each case's slices: (row, column)."""
        keep = np.arange(3)[None, :] != self.axes[:, None]
        return self.spacings[keep].reshape(-1, 2)

    def through_plane(self) -> np.ndarray:
        """(c,) mm between each case's slices."""
        return self.spacings[np.arange(len(self.axes)), self.axes]

    def slice_stems(self) -> list[str]:
        """``CASE_z042`` for every slice, as the loader names them."""
        counts: dict[int, int] = {}
        stems = []
        for c in self.slice_case.tolist():
            stems.append(slice_stem(self.cases[c], counts.get(c, 0)))
            counts[c] = counts.get(c, 0) + 1
        return stems

    @property
    def specks(self) -> int:
        return int((self.lesion_voxels < self.min_voxels).sum())

    def lesion_mm3(self) -> np.ndarray:
        return self.lesion_voxels * self.spacings.prod(axis=1)[self.lesion_case]

    def summary(self) -> dict[str, Any]:
        inplane, through = self.in_plane(), self.through_plane()
        return {
            "layout": self.layout,
            "cases": len(self.cases),
            "test_cases": self.test_cases,
            "slices": int(len(self.slice_case)),
            "shapes": dict(Counter("x".join(map(str, s)) for s in self.shapes.tolist())),
            "spacing_mm": dict(Counter("x".join(f"{v:g}" for v in s) for s in self.spacings)),
            "slice_axis": sorted(set(self.axes.tolist())),
            "in_plane_spacing_mm": dict(Counter(f"{a:g}x{b:g}" for a, b in inplane)),
            "slice_spacing_mm": sorted(set(through.round(4).tolist())),
            "lesions_3d": int(len(self.lesion_voxels)),
            "specks": {"under_voxels": self.min_voxels, "count": self.specks},
            "lesion_voxels": percentiles(self.lesion_voxels),
            "lesion_mm3": percentiles(self.lesion_mm3()),
            "channel_statistics_from": self.sampled_from,
        }
