"""Find, read, check and load image/mask pairs from ``DIR/images`` and ``DIR/masks``.

Files pair by stem (``a.png`` pairs ``a.tif``). Images may be PNG, TIFF, BMP, NPY or JPEG; masks
must be lossless (PNG, TIFF, BMP, NPY). Every problem is a :class:`DataError` of one line that
names the file, raised before any training starts.

Mask values are read strictly (see :func:`mask_kind`): a binary mask ``{0, v}`` or a small label
map (whole numbers ``0..16``, lesion = ``> 0``) is accepted; anything else has *in-between*
values, which bilinear resizing or JPEG compression leave behind, and is refused unless a
threshold is set.

The work is split along the data's path: ``_read`` decodes one file, ``_pairs`` pairs, checks
and describes files, ``_prepare`` turns one array into model input; this module loads a whole
folder into a :class:`Dataset`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segsweep.data.io._pairs import Pair, check_pair, describe_pair, find_pairs, manifest_hash
from segsweep.data.io._prepare import (
    INTENSITIES,
    RESIZES,
    check_choice,
    check_image_size,
    content_box,
    prepare_image,
    prepare_mask,
    resize_plane,
    to_channels,
)
from segsweep.data.io._read import (
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    check_threshold,
    is_colour,
    label,
    mask_kind,
    read_image,
    read_mask,
    read_mask_plane,
)
from segsweep.data.patches import canvas
from segsweep.errors import DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_SUFFIXES",
    "RESIZES",
    "Dataset",
    "Pair",
    "check_pair",
    "content_box",
    "describe_pair",
    "find_pairs",
    "load_dataset",
    "manifest_hash",
    "mask_kind",
    "prepare_image",
    "prepare_mask",
    "read_image",
    "read_mask",
    "read_mask_plane",
    "resize_plane",
]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images and masks resized to one square size, ready to feed a model; or, loaded for patch
    training, each at its own size on one :func:`~segsweep.data.patches.canvas` (its region is
    ``[:h, :w]`` of ``original_sizes``).

    ``resize`` says how: "stretch" or "pad" (see :func:`content_box`). ``lesion_fraction`` is
    measured on each mask at its original resolution. ``manifest_hash`` identifies the files
    (see :func:`manifest_hash`), not the loading settings.
    """

    stems: tuple[str, ...]
    images: np.ndarray  # (N, S, S, C) float32 in [0, 1]; native: (N, max H, max W, C)
    masks: np.ndarray  # (N, S, S, 1) uint8 in {0, 1}; native: as the images
    original_sizes: tuple[tuple[int, int], ...]  # (height, width)
    lesion_fraction: np.ndarray  # (N,) float
    manifest_hash: str
    intensity: str
    channels: int
    resize: str = "stretch"
    # volume data only: each case's segsweep.data.slices.CaseGeometry; stems are its slices
    volumes: tuple = ()


def _load_pair(
    pair: Pair, image_size: int | None, intensity: str, threshold: float, resize: str
) -> tuple:
    raw, mask = read_image(pair.image), read_mask(pair.mask, threshold=threshold)
    check_pair(pair, raw, mask)
    image = prepare_image(
        raw,
        image_size=image_size,
        intensity=intensity,
        channels=3 if is_colour(raw) else 1,
        name=label(pair.image),
        resize=resize,
    )
    prepared = prepare_mask(mask, image_size=image_size, resize=resize)
    return image, prepared, mask.shape, float(mask.mean())


def load_dataset(
    data_dir: Path,
    *,
    image_size: int | None,
    intensity: str = "dtype",
    mask_threshold: float = 0.0,
    channels: int = 0,
    resize: str = "stretch",
    only: Collection[str] | None = None,
) -> Dataset:
    """Read, check and resize every pair in ``data_dir``; refuse data without a lesion pixel.

    ``channels`` 0 picks 3 when any image has colour (channels that differ), else 1.
    ``resize``: "stretch" or "pad" (keep the aspect ratio; see :func:`content_box`);
    ``image_size`` None: every image at its own size (patch training). ``only`` names the stems
    to load (a study's train and validation images); the others are never read.
    """
    if image_size is not None:
        check_image_size(image_size)
    check_choice("intensity", intensity, INTENSITIES)
    check_threshold(mask_threshold)
    check_choice("channels", channels, (0, 1, 3))
    check_choice("resize", resize, RESIZES)
    pairs = find_pairs(Path(data_dir))
    if only is not None:
        missing = set(only) - {p.stem for p in pairs}
        if missing:
            raise DataError(
                f"{data_dir} lacks {len(missing)} image(s) the study was created with, e.g. "
                f"{sorted(missing)[0]!r}"
            )
        pairs = [p for p in pairs if p.stem in only]
    images, masks, sizes, fractions = zip(
        *(_load_pair(p, image_size, intensity, mask_threshold, resize) for p in pairs),
        strict=True,
    )
    if not any(fractions):
        raise DataError(
            f"no lesion pixel in any of the {len(pairs)} masks in {Path(data_dir) / 'masks'}"
        )
    channels = channels or max(image.shape[-1] for image in images)
    return Dataset(
        stems=tuple(p.stem for p in pairs),
        images=canvas([to_channels(image, channels) for image in images]).astype(np.float32),
        masks=canvas(masks),
        original_sizes=tuple((int(h), int(w)) for h, w in sizes),
        lesion_fraction=np.array(fractions),
        manifest_hash=manifest_hash(pairs),
        intensity=intensity,
        channels=channels,
        resize=resize,
    )
