"""A separate test folder must hold no patient and no image that training sees.

``data.test_dir`` is meant for a set the search never touches (a challenge's official one). Two
mistakes make its number a training number: a file of a patient who also has images in the
training data (``patient03_s9`` beside ``patient03``'s training slices), and the same image saved
under another name. The first is found by case (:func:`segsweep.data.split.case_ids`: the group
under ``data.group_pattern``, or a volume's case), the second by the sha256 of the image file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from segsweep.data.io import Pair
from segsweep.data.split import case_ids
from segsweep.errors import DataError

__all__ = ["check_no_leaks", "find_leaks"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_leaks(pool: Sequence[Pair], test: Sequence[Pair], group_pattern: str = "") -> list[str]:
    """One line per test file that shares a case or an image's content with a pool file."""
    found = []
    if group_pattern:  # without a pattern each image is its own case: stems are the names
        by_case = dict(zip(case_ids([p.stem for p in pool], group_pattern), pool, strict=True))
        for case, pair in zip(case_ids([p.stem for p in test], group_pattern), test, strict=True):
            if case in by_case:
                found.append(
                    f"test file {pair.image} is of case {case!r}, as training file "
                    f"{by_case[case].image} is"
                )
    by_digest = {_digest(p.image): p for p in pool}
    for pair in test:
        twin = by_digest.get(_digest(pair.image))
        if twin is not None:
            found.append(
                f"test file {pair.image} has the same content as training file {twin.image}"
            )
    return found


def check_no_leaks(pool: Sequence[Pair], test: Sequence[Pair], group_pattern: str = "") -> None:
    """Refuse a test folder that shares a case or an image with the training data."""
    found = find_leaks(pool, test, group_pattern)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise DataError(
            f"{found[0]}{more}: the test set would not be unseen; remove the overlap, or pass "
            "--allow-overlap to keep it (recorded in the study)"
        )
