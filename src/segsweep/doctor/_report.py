"""What doctor hands back: findings and facts, frozen, with the exit code they imply."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EXIT_CODES", "LEVELS", "Finding", "Report"]

LEVELS = ("error", "warning", "info")
EXIT_CODES = {"error": 2, "warning": 1, "info": 0}


@dataclass(frozen=True)
class Finding:
    """One line of the report.

    ``level``: "error" (loading would refuse the data, or every trial would fail), "warning"
    (a setting the search space allows is risky for this data) or "info" (a check that passed).
    ``code`` is stable for scripts, e.g. "orphan_mask"; ``files`` are named as
    ``images/a.png``, ``masks/a.png``.
    """

    level: str
    code: str
    message: str
    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(
                f"The 'level' of a Finding must be one of {LEVELS}. Got {self.level!r} instead."
            )


@dataclass(frozen=True)
class Report:
    """The data folder examined, its facts (JSON-ready) and every finding, errors first."""

    data: str
    facts: dict[str, Any]
    findings: tuple[Finding, ...]

    @property
    def exit_code(self) -> int:
        """0 when nothing is wrong, 1 when something warns, 2 on errors."""
        return max((EXIT_CODES[f.level] for f in self.findings), default=0)

    def of_level(self, level: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == level)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form: ``data``, ``facts``, ``findings`` (each ``level``, ``code``,
        ``message``, ``files``) and ``exit_code``."""
        findings = [{**asdict(f), "files": list(f.files)} for f in self.findings]
        return {
            "data": self.data,
            "facts": self.facts,
            "findings": findings,
            "exit_code": self.exit_code,
        }
