"""A separate test folder must hold no patient and no image that training sees.

``data.test_dir`` is meant for a set the search never touches (a challenge's official one). Two
mistakes make its number a training number: a file of a patient who also has images in the
training data (``patient03_s9`` beside ``patient03``'s training slices), and the same image saved
under another name. The first is found by case (:func:`segsweep.data.split.case_ids`: the group
under ``data.group_pattern``; for volumes the case itself), the second by the sha256 of the image
file (every channel file of a volume).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from segsweep.data.io import Pair
from segsweep.data.split import case_ids
from segsweep.data.volumes import VolumeCase
from segsweep.errors import DataError

__all__ = ["check_no_leaks", "find_leaks", "find_volume_leaks", "leak_error"]

_Row = tuple[str, Path]  # (a file's case, the file)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same_case(pool: Sequence[_Row], test: Sequence[_Row]) -> list[str]:
    by_case = dict(pool)
    return [
        f"test file {image} is of case {case!r}, as training file {by_case[case]} is"
        for case, image in test
        if case in by_case
    ]


def _same_content(pool: Sequence[Path], test: Sequence[Path]) -> list[str]:
    by_digest = {_digest(image): image for image in pool}
    return [
        f"test file {image} has the same content as training file {by_digest[d]}"
        for image, d in ((image, _digest(image)) for image in test)
        if d in by_digest
    ]


def find_leaks(pool: Sequence[Pair], test: Sequence[Pair], group_pattern: str = "") -> list[str]:
    """One line per test file that shares a case or an image's content with a pool file."""
    found = []
    if group_pattern:  # without a pattern each image is its own case: stems are the names

        def rows(pairs: Sequence[Pair]) -> list[_Row]:
            cases = case_ids([p.stem for p in pairs], group_pattern)
            return [(c, p.image) for c, p in zip(cases, pairs, strict=True)]

        found = _same_case(rows(pool), rows(test))
    return found + _same_content([p.image for p in pool], [p.image for p in test])


def find_volume_leaks(pool: Sequence[VolumeCase], test: Sequence[VolumeCase]) -> list[str]:
    """The same for volumes: a test case named as a training case (a volume is its case), or a
    channel file whose content a training case has."""
    return _same_case(
        [(c.case, c.images[0]) for c in pool], [(c.case, c.images[0]) for c in test]
    ) + _same_content([p for c in pool for p in c.images], [p for c in test for p in c.images])


def leak_error(found: Sequence[str]) -> DataError:
    """The one line that refuses a leaky test set."""
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return DataError(
        f"{found[0]}{more}: the test set would not be unseen; remove the overlap, or pass "
        "--allow-overlap to keep it (recorded in the study)"
    )


def check_no_leaks(pool: Sequence[Pair], test: Sequence[Pair], group_pattern: str = "") -> None:
    """Refuse a test folder that shares a case or an image with the training data."""
    found = find_leaks(pool, test, group_pattern)
    if found:
        raise leak_error(found)
