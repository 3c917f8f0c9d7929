"""The built-in phantom lesion set: textured gray tissue with 0-3 faint, irregular lesions.

Each image is an 8-bit gray PNG of a soft round "organ" with multi-scale texture and vessel-like
streaks; lesions are blobs inside the organ, brighter or darker by 0.15-0.3 of the intensity range
against texture and noise of about 0.07 standard deviation, with a soft edge in the image and a
hard {0, 255} mask. About 18 % of the images hold no lesion; a lesion-bearing image has 0.5-5 %
lesion pixels. The same seed writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, label, zoom

from segsweep.errors import ConfigError, DataError

__all__ = ["synthesize"]

LESION_FREE_SHARE = 0.18
FRACTION_RANGE = (0.005, 0.05)  # lesion pixels per lesion-bearing image
CONTRAST_RANGE = (0.15, 0.30)
_PREFIX = "case_"


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to unit standard deviation.

    Wide kernels are slow, so broad noise is smoothed on a coarser grid and enlarged.
    """
    step = max(1, int(sigma // 2))
    coarse = -(-size // step)
    field = gaussian_filter(rng.standard_normal((coarse, coarse)), sigma / step, mode="wrap")
    if step > 1:
        field = zoom(field, step, order=1)[:size, :size]
    return field / (field.std() + 1e-12)


def _ellipse_radius(size: int, centre: np.ndarray, radii: np.ndarray, angle: float) -> np.ndarray:
    """Normalised elliptical radius: < 1 inside the ellipse."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = yy - centre[0], xx - centre[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (dx * cos + dy * sin) / radii[0], (-dx * sin + dy * cos) / radii[1]
    return np.sqrt(u * u + v * v)


def _tissue(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Background in [0, 1] and the organ's radius map (where lesions may sit)."""
    centre = size / 2 + rng.uniform(-0.06, 0.06, 2) * size
    radius = _ellipse_radius(size, centre, rng.uniform(0.36, 0.46, 2) * size, rng.uniform(0, np.pi))
    organ = 1 / (1 + np.exp((radius - 1) * 12))  # soft boundary
    texture = sum(w * _smooth_noise(rng, size, s * size) for w, s in ((0.5, 0.02), (0.35, 0.06)))
    ridges = _smooth_noise(rng, size, 0.05 * size)
    vessels = np.exp(-((ridges / 0.12) ** 2)) * (rng.random() < 0.8)
    shading = 0.05 * _smooth_noise(rng, size, 0.25 * size)
    image = 0.12 + 0.33 * organ + shading + 0.05 * texture * organ + 0.08 * vessels * organ
    return image, radius


def _lesion(
    rng: np.random.Generator, size: int, organ_radius: np.ndarray, area: float
) -> np.ndarray:
    """One irregular blob of about ``area`` pixels whose centre lies inside the organ."""
    inside = np.argwhere(organ_radius < 0.7)
    centre = inside[rng.integers(len(inside))].astype(np.float64)
    aspect = rng.uniform(0.6, 1.0)
    base = np.sqrt(area / (np.pi * aspect))
    radius = _ellipse_radius(size, centre, np.array([base, base * aspect]), rng.uniform(0, np.pi))
    wobble = np.clip(_smooth_noise(rng, size, max(1.0, base / 2)), -2, 2)
    blob, _ = label(radius * (1 + 0.25 * wobble) < 1)
    # the wobble can pinch off specks; one lesion is the piece holding its centre (radius 0 there)
    return blob == blob[int(centre[0]), int(centre[1])]


def _lesion_mask(rng: np.random.Generator, size: int, organ_radius: np.ndarray) -> np.ndarray:
    """1-3 blobs whose union covers a fraction drawn log-uniformly from FRACTION_RANGE."""
    count = int(rng.integers(1, 4))
    lo, hi = np.log(FRACTION_RANGE[0] * 1.2), np.log(FRACTION_RANGE[1] * 0.8)
    target = np.exp(rng.uniform(lo, hi)) * size * size
    shares = rng.dirichlet(np.full(count, 2.0))
    for _ in range(20):  # blobs clipped at the border or merged can miss the range; redraw
        mask = np.zeros((size, size), bool)
        for share in shares:
            mask |= _lesion(rng, size, organ_radius, max(target * share, 6.0))
        if FRACTION_RANGE[0] <= mask.mean() <= FRACTION_RANGE[1]:
            return mask
    raise RuntimeError("could not place lesions in range")  # not seen for size >= 32


def _case(rng: np.random.Generator, size: int, with_lesion: bool) -> tuple[np.ndarray, np.ndarray]:
    """One uint8 image and its {0, 255} mask."""
    image, organ_radius = _tissue(rng, size)
    mask = np.zeros((size, size), bool)
    if with_lesion:
        mask = _lesion_mask(rng, size, organ_radius)
        contrast = rng.uniform(*CONTRAST_RANGE) * rng.choice([-1.0, 1.0])
        own_texture = 0.04 * _smooth_noise(rng, size, 0.015 * size)
        edge = gaussian_filter(mask.astype(np.float64), 1.0)  # soft in the image, hard in the mask
        image = image + edge * (contrast + own_texture)
    image = image + 0.03 * rng.standard_normal((size, size))
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return pixels, mask.astype(np.uint8) * 255


def _prepare_folders(out_dir: Path, overwrite: bool) -> None:
    """Create images/ and masks/; clear our own old cases only when asked to overwrite."""
    for name in ("images", "masks"):
        folder = out_dir / name
        existing = sorted(folder.iterdir()) if folder.is_dir() else []
        if existing and not overwrite:
            raise DataError(
                f"{folder} is not empty; pass --overwrite (overwrite=True) to replace the phantoms"
            )
        foreign = [p.name for p in existing if not p.name.startswith(_PREFIX)]
        if foreign:
            raise DataError(
                f"{folder} holds files synthesize did not write ({foreign[0]}, ...); "
                "choose an empty folder"
            )
        for path in existing:
            path.unlink()
        folder.mkdir(parents=True, exist_ok=True)


def _check_settings(n: object, size: object, seed: object) -> None:
    for name, value, least in (("n", n, 1), ("size", size, 32), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(
                f"The {name!r} parameter of synthesize must be an integer >= {least}. "
                f"Got {value!r} instead."
            )


def synthesize(
    out_dir: Path, *, n: int = 200, size: int = 128, seed: int = 0, overwrite: bool = False
) -> dict[str, float | int]:
    """Write ``n`` phantom pairs to ``out_dir/images`` and ``out_dir/masks`` as ``case_0000.png``.

    Returns a summary: ``n``, ``size``, ``seed``, ``lesion_free`` (count), ``lesion_fraction_*``
    (mean/min/max over the images that hold a lesion) and ``pixel_fraction`` (lesion share of all
    pixels, the class imbalance a model sees).
    """
    _check_settings(n, size, seed)
    out_dir = Path(out_dir)
    _prepare_folders(out_dir, overwrite)
    lesion_free = set(np.random.default_rng(seed).permutation(n)[: round(LESION_FREE_SHARE * n)])
    fractions = []
    for i in range(n):
        image, mask = _case(np.random.default_rng([seed, i]), size, i not in lesion_free)
        Image.fromarray(image, mode="L").save(out_dir / "images" / f"{_PREFIX}{i:04d}.png")
        Image.fromarray(mask, mode="L").save(out_dir / "masks" / f"{_PREFIX}{i:04d}.png")
        fractions.append(float((mask > 0).mean()))
    with_lesion = [f for f in fractions if f > 0]
    return {
        "n": n,
        "size": size,
        "seed": seed,
        "lesion_free": n - len(with_lesion),
        "lesion_fraction_mean": float(np.mean(with_lesion)) if with_lesion else 0.0,
        "lesion_fraction_min": min(with_lesion, default=0.0),
        "lesion_fraction_max": max(with_lesion, default=0.0),
        "pixel_fraction": float(np.mean(fractions)),
    }
