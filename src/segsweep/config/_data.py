"""The ``data`` section of a study's settings: where the images or volumes are, how they are
read, prepared and split (2D pictures and NIfTI volumes alike)."""

from __future__ import annotations

from dataclasses import dataclass

from segsweep.config._checks import (
    float_in,
    int_in,
    is_str,
    one_of,
    setting,
)

__all__ = ["DataSettings"]


def _label_values(v: object) -> str | None:
    ok = isinstance(v, list | tuple) and all(
        isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v
    )
    return None if ok else "a list of label values > 0 ([] = every value > 0)"


def _window(v: object) -> str | None:
    ok = isinstance(v, list | tuple) and (
        not v or (len(v) == 4 and all(isinstance(x, int | float) for x in v) and v[3] > 0)
    )
    return None if ok else "[] or [low, high, mean, sd] with sd > 0"


@dataclass(frozen=True)
class DataSettings:
    dir: str = setting(
        "data/phantom",
        "folder with images/ and masks/ paired by stem (pictures or NIfTI), or an nnU-Net or "
        "Decathlon dataset folder",
        is_str,
    )
    image_size: int = setting(128, "square size images and masks are resized to", int_in(8, 4096))
    patch_size: int = setting(
        0,
        "0 = whole images, resized to image_size; > 0 = images kept at their own resolution, "
        "trained on random patch_size x patch_size patches (data.lesion_oversample of each "
        "batch centred on lesion) and predicted by overlapping windows blended with Gaussian "
        "weights; a multiple of 2**depth",
        int_in(0, 4096),
    )
    resize: str = setting(
        "stretch",
        '"stretch": each side to image_size (non-square images are distorted); "pad": the long '
        "side to image_size keeping the aspect ratio, the short side padded with zeros "
        "(predict crops the padding off)",
        one_of("stretch", "pad"),
    )
    val_fraction: float = setting(
        0.2, "share of images held out for validation", float_in(0, 1, open_lo=True, open_hi=True)
    )
    test_fraction: float = setting(
        0.2,
        "share of images set aside at study create as a test set the search never sees "
        "(scored once, by study finalize); 0 = none",
        float_in(0, 0.9),
    )
    test_dir: str = setting(
        "",
        "a separate folder with images/ and masks/ as the test set (e.g. a challenge's "
        'official one), used instead of data.test_fraction; "" = none',
        is_str,
    )
    group_pattern: str = setting(
        "", 'regex on the file stem naming its patient/case group; "" = no grouping', is_str
    )
    mask_threshold: float = setting(
        0.0,
        "0 = reject masks with in-between values; t in (0,1) = lesion where value > t * max",
        float_in(0, 1, open_hi=True),
    )
    intensity: str = setting(
        "dtype",
        '"dtype": divide by the type maximum (255, 65535); "minmax": per-image min-max; '
        'volumes: "zscore" (mean and sd of each volume\'s nonzero voxels, the default study '
        'create picks for volumes), "ct" (clip to data.ct_window, then z-score), "minmax"',
        one_of("dtype", "minmax", "zscore", "ct"),
    )
    slice_axis: str = setting(
        "auto",
        'volumes: the voxel axis slices are cut along; "auto" = the axis of largest voxel '
        'spacing, else the last; "0", "1" or "2"',
        one_of("auto", "0", "1", "2"),
    )
    lesion_labels: tuple = setting(
        (),
        "volumes: the label values that count as lesion, e.g. [3] for BraTS enhancing tumour; "
        "[] = every value > 0",
        _label_values,
    )
    lesion_oversample: float = setting(
        0.33,
        "patches: the share of each training batch centred on a lesion pixel; volumes (whole "
        "slices): the least share drawn from slices with lesion (nnU-Net's 0.33); whole 2D "
        "images are drawn uniformly",
        float_in(0, 1),
    )
    ct_window: tuple = setting(
        (),
        'volumes with intensity "ct": [low, high, mean, sd] of the labelled voxels pooled over '
        "the training cases (0.5 and 99.5 percentiles); [] = computed at study create",
        _window,
    )
    channels: int = setting(
        0,
        "input channels: 0 = auto (3 if any image has colour), 1, 3",
        lambda v: None if v in (0, 1, 3) and not isinstance(v, bool) else "0, 1 or 3",
    )

    @property
    def prepared_size(self) -> int | None:
        """The square every image is prepared at for the model, or None: each at its own size
        (patch training predicts any size by windows)."""
        return None if self.patch_size else self.image_size
