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


class DataStoreError(AirCastError, RuntimeError):
    """A data store refused a request, failed a job, or cannot be reached.

    The message carries the store's own words; it never carries the API key.
    """


class TransientDataStoreError(DataStoreError):
    """A failure that may go away on retry: throttling, server errors, broken transfers."""


class CorruptFileError(AirCastError, ValueError):
    """A downloaded file that is truncated or damaged: it is rejected whole, never half-loaded.

    Attributes
    ----------
    path
        The damaged file.
    message_number
        1-based number of the first GRIB message that failed, or None (NetCDF, or damage
        outside any message).
    """

    def __init__(self, path: object, problem: str, *, message_number: int | None = None) -> None:
        self.path = str(path)
        self.message_number = message_number
        where = "" if message_number is None else f" at GRIB message {message_number}"
        super().__init__(
            f"{self.path} is damaged{where}: {problem}; the whole file is rejected — "
            "delete it and fetch again"
        )


class ContentMismatchError(CorruptFileError):
    """A well-formed file that does not hold what its request asked for.

    Treated like damage: the file is quarantined and fetched again, never decoded into the
    pipeline; the message names what is missing or unexpected.
    """
