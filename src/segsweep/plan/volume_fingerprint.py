"""The fingerprint of a NIfTI volume folder, in the numbers of the 2D slices the model trains on.

Each case is read once, as the loader reads it (:func:`segsweep.data.volumes.read_case`, so the
same files are refused with the same line), and cut along the axis the loader would cut it
(:func:`segsweep.data.slices.choose_axis`: the coarsest one of an anisotropic scan). The slices
fill the 2D arrays (their sizes, their lesion share), every 26-connected 3D lesion gives its
in-plane bounding box (the extents the 2D rules read) and its largest cross-section, and its
voxels and mm³ go to :class:`~segsweep.plan.volume_facts.VolumeFacts`. Intensities are sampled
from the labelled voxels of each case, as nnU-Net's fingerprint does: a bright tumour and a
dark background share a scan, and it is the labelled tissue the normalisation must keep apart.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import find_objects, label

from segsweep.config import Config
from segsweep.data.assign import split_stems, volume_test_cases
from segsweep.data.slices import choose_axis, lesion_mask
from segsweep.data.split import SLICE_GROUP_PATTERN
from segsweep.data.volumes import allowed_labels, detect_layout, find_cases, read_case
from segsweep.plan.fingerprint import SAMPLED_PIXELS, Fingerprint, channel_names, channel_stats
from segsweep.plan.volume_facts import VolumeFacts

__all__ = ["training_slices", "volume_fingerprint"]

_TWENTY_SIX = np.ones((3, 3, 3), bool)  # as the BraTS lesion-wise metrics count 3D lesions


def _lesions(lesion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Of the 3D lesions of ``lesion`` (slices first): (k, 2) in-plane extents, (k,) voxels,
    (k,) largest cross-section in px and (k,) the slice holding it."""
    labels, count = label(lesion, structure=_TWENTY_SIX)
    boxes = find_objects(labels)
    extents = np.array([[b[1].stop - b[1].start, b[2].stop - b[2].start] for b in boxes], int)
    where = np.nonzero(labels)  # the lesion voxels only: a few % of the volume
    n_slices = lesion.shape[0]
    per_slice = np.bincount(
        labels[where].astype(np.int64) * n_slices + where[0], minlength=(count + 1) * n_slices
    ).reshape(count + 1, n_slices)[1:]
    voxels = per_slice.sum(axis=1)
    return extents.reshape(-1, 2), voxels, per_slice.max(axis=1), per_slice.argmax(axis=1)


def _sample(image: np.ndarray, where: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(m, C) at most SAMPLED_PIXELS voxels of ``where`` (every channel), drawn seeded."""
    index = np.flatnonzero(where)
    picked = rng.choice(index, size=min(SAMPLED_PIXELS, index.size), replace=False)
    return image.reshape(-1, image.shape[-1])[picked]


def volume_fingerprint(
    data_dir: Path,
    *,
    slice_axis: str = "auto",
    lesion_labels=(),
    min_voxels: int = 1,
    seed: int = 0,
) -> Fingerprint:
    """Read every training case of ``data_dir`` once; a case loading would refuse raises its
    one-line DataError. 3D lesions under ``min_voxels`` are counted but left out of the lesion
    arrays the size rules read."""
    data_dir = Path(data_dir)
    rng = np.random.default_rng(seed)
    allowed = allowed_labels(data_dir)
    rows: dict[str, list[Any]] = {k: [] for k in ("shape", "spacing", "axis", "case_of_slice")}
    lesions: dict[str, list[Any]] = {k: [] for k in ("ext", "vox", "area", "slice", "case")}
    fractions, labelled, nonzero, dtypes = [], [], [], Counter()
    cases = find_cases(data_dir)
    first_slice = 0
    for c, case in enumerate(cases):  # one full-resolution volume in memory at a time
        volume = read_case(case, allowed=allowed)
        axis = choose_axis(volume.spacing, slice_axis)
        lesion = np.moveaxis(lesion_mask(volume.label, lesion_labels), axis, 0)
        n_slices = lesion.shape[0]
        rows["shape"].append(volume.image.shape[:3])
        rows["spacing"].append(volume.spacing)
        rows["axis"].append(axis)
        rows["case_of_slice"].append(np.full(n_slices, c))
        fractions.append(lesion.reshape(n_slices, -1).mean(axis=1))
        ext, vox, area, at = _lesions(lesion)
        kept = vox >= min_voxels
        found = (ext[kept], vox, area[kept], first_slice + at[kept], np.full(len(vox), c))
        for key, value in zip(lesions, found, strict=True):
            lesions[key].append(value)
        first_slice += n_slices
        _sample_case(volume, labelled, nonzero, rng)
        dtypes[str(volume.header.get_data_dtype())] += 1
    return _assemble(data_dir, cases, rows, lesions, fractions, labelled or nonzero, dtypes,
                     from_labels=bool(labelled), min_voxels=min_voxels)  # fmt: skip


def _sample_case(volume: Any, labelled: list, nonzero: list, rng: np.random.Generator) -> None:
    """The case's labelled voxels into ``labelled``; a case without any gives its nonzero
    voxels to ``nonzero``, used only when no case has labelled ones."""
    if (volume.label > 0).any():
        labelled.append(_sample(volume.image, volume.label > 0, rng))
    else:
        nonzero.append(_sample(volume.image, volume.image.any(axis=-1), rng))


def _assemble(
    data_dir, cases, rows, lesions, fractions, samples, dtypes, *, from_labels, min_voxels
) -> Fingerprint:
    shapes, axes = np.array(rows["shape"], int), np.array(rows["axis"], int)
    planes = shapes[np.arange(3)[None, :] != axes[:, None]].reshape(-1, 2)
    slice_case = np.concatenate(rows["case_of_slice"])
    facts = VolumeFacts(
        layout=detect_layout(data_dir),
        cases=tuple(c.case for c in cases),
        shapes=shapes,
        spacings=np.array(rows["spacing"], float),
        axes=axes,
        slice_case=slice_case,
        lesion_voxels=np.concatenate(lesions["vox"]),
        lesion_case=np.concatenate(lesions["case"]),
        test_cases=len(volume_test_cases(data_dir, "")),
        min_voxels=min_voxels,
        sampled_from="labelled voxels" if from_labels else "nonzero voxels (no labelled ones)",
    )
    pooled = np.concatenate(samples)
    return Fingerprint(
        shapes=planes[slice_case],
        lesion_extents=np.concatenate(lesions["ext"]),
        lesion_areas=np.concatenate(lesions["area"]),
        lesion_image=np.concatenate(lesions["slice"]),
        lesion_fraction=np.concatenate(fractions),
        channels=channel_stats(
            [[pooled[:, c]] for c in range(pooled.shape[1])], channel_names(data_dir)
        ),
        dtype=dtypes.most_common(1)[0][0],
        spacing=tuple(float(s) for s in np.median(facts.in_plane(), axis=0)),
        source=str(data_dir),
        volumes=facts,
    )


def training_slices(fp: Fingerprint, cfg: Config) -> int:
    """The slices the study's training side will hold: the split ``study create`` makes
    (whole cases, stratified by lesion presence), run on the fingerprint's slices."""
    assert fp.volumes is not None
    held = [c.case for c in volume_test_cases(Path(cfg.data.dir), cfg.data.test_dir)]
    train, _, _ = split_stems(
        fp.volumes.slice_stems(),
        fp.lesion_fraction > 0,
        test=held,
        val_fraction=cfg.data.val_fraction,
        test_fraction=cfg.data.test_fraction,
        seed=cfg.search.seed,
        group_pattern=SLICE_GROUP_PATTERN,
        where=str(cfg.data.dir),
    )
    return len(train)
