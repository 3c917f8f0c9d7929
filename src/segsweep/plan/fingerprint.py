"""The data's fingerprint: what the planning rules read, as nnU-Net's dataset fingerprint.

One pass over the image/mask pairs records every image's size, every 8-connected lesion's area
and bounding box (its extent along each axis, in pixels), intensity statistics per channel from
a seeded sample of pixels, the channel names ``dataset.json`` gives, and the pixel spacing
(1 where the files do not say). Nothing here resizes: the rules ask what a size would do.

Volumes (:mod:`.volume_fingerprint`) fill the same arrays with the numbers of the 2D slices the
model trains on, so the 2D rules plan them unchanged, and keep the 3D facts (each case's grid,
spacing and slicing axis, each 3D lesion's volume) in
:class:`~segsweep.plan.volume_facts.VolumeFacts`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import find_objects, label

from segsweep.data.io import find_pairs, read_image, read_mask
from segsweep.errors import DataError
from segsweep.plan.volume_facts import VolumeFacts, percentiles

__all__ = [
    "ChannelStats",
    "Fingerprint",
    "channel_names",
    "channel_stats",
    "fingerprint",
]

_EIGHT_CONNECTED = np.ones((3, 3), bool)  # as doctor and the lesion metrics count lesions
SAMPLED_PIXELS = 10_000  # per image and channel, as nnU-Net samples foreground voxels per case


@dataclass(frozen=True)
class ChannelStats:
    """One input channel's intensities over a sample of every image's pixels."""

    name: str  # from dataset.json; "" when it names none
    mean: float
    sd: float
    low: float  # 0.5th percentile
    high: float  # 99.5th percentile
    min: float
    max: float


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """The facts the rules read. Arrays: ``shapes`` (n, 2) rows and columns of each image;
    ``lesion_extents`` (k, 2) bounding-box rows and columns of each lesion, ``lesion_areas``
    (k,) its pixels, ``lesion_image`` (k,) the image it lies in; ``lesion_fraction`` (n,)."""

    shapes: np.ndarray
    lesion_extents: np.ndarray
    lesion_areas: np.ndarray
    lesion_image: np.ndarray
    lesion_fraction: np.ndarray
    channels: tuple[ChannelStats, ...] = ()
    dtype: str = "uint8"
    colour: bool = False  # some image's channels differ
    spacing: tuple[float, float] = (1.0, 1.0)  # (row, column) size of a pixel, e.g. in mm
    source: str = ""
    volumes: VolumeFacts | None = None  # a volume folder: its slices fill the arrays above

    @property
    def n_images(self) -> int:
        return len(self.shapes)

    @property
    def unit(self) -> str:
        """What the model trains on, in the reasons' words."""
        return "images" if self.volumes is None else "slices"

    @property
    def channels_used(self) -> int:
        """The model's input channels with ``data.channels = 0``: 3 when any image has colour;
        a volume's channels (its modalities) as they are."""
        if self.volumes is not None:
            return max(1, len(self.channels))
        return 3 if self.colour else 1

    def pixel_spacing(self) -> np.ndarray:
        """(n, 2) mm per pixel of each image (each slice: its case's in-plane spacing)."""
        if self.volumes is not None:
            return self.volumes.in_plane()[self.volumes.slice_case]
        return np.tile(np.asarray(self.spacing, float), (self.n_images, 1))

    def lesion_spacing(self) -> np.ndarray:
        """(k, 2) mm per pixel of the image each lesion lies in."""
        return self.pixel_spacing()[self.lesion_image]

    @property
    def long_side(self) -> float:
        """The median of each image's longer side, px."""
        return float(np.median(self.shapes.max(axis=1)))

    @property
    def lesion_free_share(self) -> float:
        return float(np.mean(self.lesion_fraction == 0)) if self.n_images else 0.0

    @property
    def lesion_pixel_fraction(self) -> float:
        pixels = self.shapes.prod(axis=1)
        return float((self.lesion_fraction * pixels).sum() / pixels.sum())

    def relative_extents(self) -> np.ndarray:
        """(k, 2) each lesion's extent as a share of its image's rows and columns."""
        return self.lesion_extents / self.shapes[self.lesion_image]

    def summary(self) -> dict[str, Any]:
        """JSON-ready: sizes, spacing, lesion size percentiles, channels, counts."""
        smallest = self.lesion_extents.min(axis=1) if len(self.lesion_extents) else np.zeros(0)
        pct = percentiles
        sizes = Counter(f"{h}x{w}" for h, w in self.shapes.tolist())
        volumes = {} if self.volumes is None else {"volumes": self.volumes.summary()}
        return volumes | {
            "data": self.source,
            "images": self.n_images,
            "sizes": dict(sizes.most_common(5)),
            "median_long_side_px": self.long_side,
            "spacing": list(self.spacing),
            "dtype": self.dtype,
            "colour": self.colour,
            "lesions": int(len(self.lesion_areas)),
            "lesion_free_share": self.lesion_free_share,
            "lesion_pixel_fraction": self.lesion_pixel_fraction,
            "lesion_area_px": pct(self.lesion_areas.astype(float)),
            "lesion_smallest_extent_px": pct(smallest.astype(float)),
            "lesion_smallest_extent_mm": pct(
                (self.lesion_extents * self.lesion_spacing()).min(axis=1)
            )
            if self.volumes is not None and len(smallest)
            else None,
            "lesion_largest_extent_px": pct(self.lesion_extents.max(axis=1).astype(float))
            if len(self.lesion_extents)
            else None,
            "channels": [c.__dict__ for c in self.channels],
        }


def channel_names(data_dir: Path) -> tuple[str, ...]:
    """``dataset.json``'s channel names in channel order: nnU-Net v2's ``channel_names`` or
    v1's ``modality`` (``{"0": "CT"}``); none when the file is absent."""
    path = Path(data_dir) / "dataset.json"
    if not path.is_file():
        return ()
    try:
        meta = json.loads(path.read_text())
        names = meta.get("channel_names") or meta.get("modality") or {}
        return tuple(str(names[k]) for k in sorted(names, key=int))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, ValueError) as err:
        raise DataError(
            f'{path}: not a dataset.json with channel_names {{"0": "CT", ...}} ({err})'
        ) from None


def _lesions(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, 2) bounding-box extents and (k,) areas of the 8-connected lesions of one mask."""
    labels, count = label(mask, structure=_EIGHT_CONNECTED)
    boxes = find_objects(labels)
    extents = np.array([[b[0].stop - b[0].start, b[1].stop - b[1].start] for b in boxes], int)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return extents.reshape(-1, 2), areas


def channel_stats(samples: list[list[np.ndarray]], names: tuple[str, ...]) -> tuple:
    out = []
    for c, parts in enumerate(samples):
        values = np.concatenate(parts).astype(np.float64)
        low, high = np.percentile(values, [0.5, 99.5])
        out.append(
            ChannelStats(
                name=names[c] if c < len(names) else "",
                mean=float(values.mean()),
                sd=float(values.std()),
                low=float(low),
                high=float(high),
                min=float(values.min()),
                max=float(values.max()),
            )
        )
    return tuple(out)


def fingerprint(
    data_dir: Path,
    *,
    mask_threshold: float = 0.0,
    spacing: tuple[float, float] = (1.0, 1.0),
    seed: int = 0,
) -> Fingerprint:
    """Read every pair of ``data_dir`` once; a file loading would refuse raises its DataError."""
    rng = np.random.default_rng(seed)
    shapes, fractions, extents, areas, owner = [], [], [], [], []
    samples: list[list[np.ndarray]] = []
    dtypes: Counter[str] = Counter()
    colour = False
    for i, pair in enumerate(find_pairs(Path(data_dir))):
        image = read_image(pair.image)
        mask = read_mask(pair.mask, threshold=mask_threshold)
        shapes.append(mask.shape)
        fractions.append(float(mask.mean()))
        found, sizes = _lesions(mask)
        extents.append(found)
        areas.append(sizes)
        owner.append(np.full(len(sizes), i))
        dtypes[str(image.dtype)] += 1
        colour = colour or (image.ndim == 3 and not (image == image[..., :1]).all())
        pixels = image.reshape(-1, 1 if image.ndim == 2 else image.shape[-1])
        rows = rng.choice(len(pixels), size=min(SAMPLED_PIXELS, len(pixels)), replace=False)
        while len(samples) < pixels.shape[1]:
            samples.append([])
        for c in range(pixels.shape[1]):
            samples[c].append(pixels[rows, c])
    return Fingerprint(
        shapes=np.array(shapes, int).reshape(-1, 2),
        lesion_extents=np.concatenate(extents) if extents else np.zeros((0, 2), int),
        lesion_areas=np.concatenate(areas) if areas else np.zeros(0, int),
        lesion_image=np.concatenate(owner) if owner else np.zeros(0, int),
        lesion_fraction=np.array(fractions),
        channels=channel_stats(samples, channel_names(Path(data_dir))),
        dtype=dtypes.most_common(1)[0][0] if dtypes else "uint8",
        colour=bool(colour),
        spacing=tuple(float(s) for s in spacing),
        source=str(data_dir),
    )
