"""The facts doctor reports about a data folder, as JSON-ready numbers and counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from segsweep.doctor._scan import Sample, Scan

__all__ = ["facts", "lesion_pixel_fraction", "usable"]


def usable(samples: Sequence[Sample]) -> list[Sample]:
    """The pairs loading would accept (readable, matching, masks read as lesion or not)."""
    return [s for s in samples if s.ok]


def lesion_pixel_fraction(samples: Sequence[Sample]) -> float:
    """The share of lesion pixels over all pixels: the class imbalance a batch-pooled Dice sees."""
    pixels = sum(s.height * s.width for s in samples)
    lesion = sum(s.lesion_fraction * s.height * s.width for s in samples)
    return lesion / pixels if pixels else 0.0


def _counts(values) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def _image_facts(samples: Sequence[Sample]) -> dict[str, Any]:
    ranges = {}
    for dtype in sorted({s.dtype for s in samples}):
        of_type = [s for s in samples if s.dtype == dtype]
        ranges[dtype] = [min(s.low for s in of_type), max(s.high for s in of_type)]
    return {
        "sizes": _counts(f"{s.height}x{s.width}" for s in samples),
        "dtypes": _counts(s.dtype for s in samples),
        "channels": _counts(str(s.channels) for s in samples),
        "colour": sum(s.colour for s in samples),
        "intensity_range": ranges,
    }


def _lesion_facts(samples: Sequence[Sample]) -> dict[str, Any]:
    """Fractions over the images that hold a lesion; lesion-free images are counted apart."""
    bearing = np.array([s.lesion_fraction for s in samples if s.lesion_fraction > 0])
    areas = np.array([a for s in samples for a in s.lesion_areas])
    n = len(samples)
    spread = None
    if bearing.size:
        spread = {"min": bearing.min(), "median": np.median(bearing), "max": bearing.max()}
        spread = {k: float(v) for k, v in spread.items()}
    return {
        "lesion_fraction": spread,
        "lesion_free": n - int(bearing.size),
        "lesion_free_share": (n - bearing.size) / n if n else None,
        "lesion_pixel_fraction": lesion_pixel_fraction(samples),
        "lesions": {
            "count": int(areas.size),
            "smallest_px": int(areas.min()) if areas.size else None,
            "median_px": float(np.median(areas)) if areas.size else None,
        },
    }


def facts(found: Scan) -> dict[str, Any]:
    """Pairs matched, their sizes and pixel types, mask value sets and lesion statistics.

    Image and mask-value facts cover every readable pair; lesion facts only the usable ones.
    """
    samples = found.samples
    good = usable(samples)
    return {
        "pairs": found.pairs,
        "readable": len(samples),
        "usable": len(good),
        **_image_facts(samples),
        "mask_values": _counts(s.mask_values for s in samples),
        **_lesion_facts(good),
    }
