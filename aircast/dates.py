"""Dates that a person types (CLI options, Prefect flow parameters), checked once.

Dates typed by people are ISO strings ``YYYY-MM-DD``; everything past this module works with
:class:`datetime.date`. A date that cannot be used is a :class:`DateError` that says how to
write it.
"""

from __future__ import annotations

import datetime as dt

from aircast.errors import AirCastError


class DateError(AirCastError, ValueError):
    """A date typed by a person (CLI option, flow parameter) that is not usable."""


def parse_day(value: str | dt.date, name: str) -> dt.date:
    """An ISO ``YYYY-MM-DD`` string (or a date) as a date, with a clear error otherwise."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise DateError(
            f"{name} = {value!r} is not a date; write it as YYYY-MM-DD, e.g. 2019-06-01"
        ) from None


def parse_range(start: str | dt.date, end: str | dt.date) -> tuple[dt.date, dt.date]:
    """Validate an inclusive date range typed by a person."""
    first, last = parse_day(start, "start"), parse_day(end, "end")
    if last < first:
        raise DateError(f"end {last} is before start {first}; swap them")
    return first, last
