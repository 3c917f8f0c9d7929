"""The checks behind every setting: each returns what is accepted when a value is bad, else None.

``setting`` attaches a default, its help text and its check to a dataclass field, so the TOML
writer, the ``--set`` parser and the validator all read the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any

Check = Callable[[Any], str | None]  # returns what is accepted when the value is bad


def setting(default: Any, help: str, check: Check, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, "check": check, **extra})


def one_of(*options: str) -> Check:
    return lambda v: None if v in options else "one of " + ", ".join(repr(o) for o in options)


def int_in(lo: int, hi: int) -> Check:
    ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi  # noqa: E731
    return lambda v: None if ok(v) else f"an int in [{lo}, {hi}]"


def float_in(lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False) -> Check:
    def check(v: Any) -> str | None:
        good = (
            is_number(v) and (v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)
        )
        return (
            None
            if good
            else f"a number in {'(' if open_lo else '['}{lo}, {hi}{')' if open_hi else ']'}"
        )

    return check


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def is_str(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


# ---- search-space checks: a list of choices, or [low, high] for a range ------------------------


def choices(allowed: Check) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list | tuple) or not v or any(allowed(x) for x in v):
            return f"a non-empty list whose items are each {allowed(object())}"
        return None

    return check


def value_range(lo: float, hi: float, *, log: bool) -> Check:
    def check(v: Any) -> str | None:
        accepted = (
            f"[low, high] ({'log scale, ' if log else ''}within [{lo}, {hi}]) or [value] to fix it"
        )
        if not isinstance(v, list | tuple) or len(v) not in (1, 2) or not all(map(is_number, v)):
            return accepted
        if len(v) == 1:
            return None if lo <= v[0] <= hi or (log and v[0] == 0) else accepted
        low, high = v
        return None if lo <= low <= high <= hi and not (log and low <= 0) else accepted

    return check
