"""Typed errors whose messages name the key, the bad value and the fix.

Every error a user can cause derives from :class:`AirCastError`, so the command line can turn
it into one clear line and a non-zero exit instead of a traceback.
"""

from __future__ import annotations


class AirCastError(Exception):
    """Base of every error caused by input that a user can fix."""


class VocabularyError(AirCastError, KeyError):
    """An unknown variable, channel, dataset or GRIB parameter."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(AirCastError, ValueError):
    """A configuration file that does not validate; one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


class RequestError(AirCastError, ValueError):
    """A data-store request that the store's form would reject."""
