"""One exception tree for segsweep.

Every error a user can cause (bad data, bad settings, a study that does not exist) derives from
:class:`SegsweepError`; the CLI turns it into one line and exit code 2. Anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "SegsweepError",
    "ConfigError",
    "DataError",
    "StudyError",
    "TrialFailed",
]


class SegsweepError(Exception):
    """Base class of every error segsweep reports to the user."""


class ConfigError(SegsweepError):
    """A setting is unknown, has the wrong type, or lies outside what is accepted."""


class DataError(SegsweepError):
    """An image or mask file (or the data folder) cannot be used; the message names the file."""


class StudyError(SegsweepError):
    """A study is missing, already exists, or cannot be reached in its storage."""


class TrialFailed(SegsweepError):
    """One trial cannot go on (NaN loss, out of memory); the study continues with the next."""
