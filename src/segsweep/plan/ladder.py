"""The batch ladder: a few training steps at rising batch sizes until one runs out of memory.

:func:`climb` takes any ``try_batch(n) -> seconds per step`` that raises when ``n`` images do not
fit, so the rule is tested without a GPU; :func:`segsweep.plan.device.keras_try_batch` is the real
one. The result is cached per device and network in a JSON file, so a second ``plan`` or
``study create`` on the same machine does not measure again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from segsweep.backend import is_out_of_memory

__all__ = ["Ladder", "climb", "ladder_key", "load_ladder", "out_of_memory", "save_ladder"]


@dataclass(frozen=True)
class Ladder:
    """What the ladder found on ``device``: seconds per step of each batch that fit, and the
    first that ran out of memory (None: every rung up to the cap fit)."""

    device: str
    fits: dict[int, float] = field(default_factory=dict)
    failed: int | None = None

    def largest(self) -> int | None:
        return max(self.fits) if self.fits else None

    def to_json(self) -> dict:
        return {"device": self.device, "fits": self.fits, "failed": self.failed}

    @classmethod
    def from_json(cls, data: dict) -> Ladder:
        fits = {int(n): float(s) for n, s in data["fits"].items()}
        return cls(device=str(data["device"]), fits=fits, failed=data.get("failed"))


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says a batch did not fit: TensorFlow's ResourceExhaustedError, JAX's
    RESOURCE_EXHAUSTED runtime error or torch's OutOfMemoryError (each recognised only when its
    package is loaded, without importing it), or Python's MemoryError."""
    return isinstance(err, MemoryError) or is_out_of_memory(err)


def rungs(cap: int, start: int = 2) -> list[int]:
    """Powers of two from ``start`` below ``cap``, then ``cap`` itself."""
    out, n = [], start
    while n < cap:
        out.append(n)
        n *= 2
    return [*out, cap] if cap >= 1 else out


def climb(try_batch: Callable[[int], float], *, cap: int, device: str, start: int = 2) -> Ladder:
    """Try rising batch sizes up to ``cap``; stop at the first that runs out of memory.

    Any other error is not about the batch size and propagates.
    """
    fits: dict[int, float] = {}
    for n in rungs(cap, min(start, cap)):
        try:
            fits[n] = float(try_batch(n))
        except Exception as err:  # noqa: BLE001 - only out-of-memory is an answer here
            if not out_of_memory(err):
                raise
            return Ladder(device, fits, failed=n)
    return Ladder(device, fits)


def ladder_key(
    device: str, backend: str, *, size: int, depth: int, filters: int, channels: int, cap: int
) -> str:
    return f"{device}|{backend}|{size}px|depth {depth}|filters {filters}|{channels}ch|cap {cap}"


def load_ladder(path: Path, key: str) -> Ladder | None:
    """The cached ladder for ``key``, or None (no file, no entry, or an unreadable file)."""
    try:
        entry = json.loads(Path(path).read_text()).get(key)
        return None if entry is None else Ladder.from_json(entry)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save_ladder(path: Path, key: str, ladder: Ladder) -> None:
    path = Path(path)
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    cache[key] = ladder.to_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
