"""Time in the toy atmosphere: hours since 2000-01-01 UTC, the seasons and the sun's declination.

The atmosphere is defined from 1900-01-01 to 2099-12-31: every date the served datasets cover
(ERA5 from 1940, up to about five days before today) with their spin-up and forecast leads, and
decades to spare. Nothing in it depends on a calendar year (waves, pressure systems and random
draws are functions of the hour or of counters, seasons of the day of the mean year), so a date
of 2026 renders the same on every run. :func:`to_hours` refuses any other time, so a bad date
fails where it enters.
"""

from __future__ import annotations

import math

import numpy as np

from aircast.sandbox.constants import RAD, YEAR_DAYS
from aircast.sandbox.numerics import F64

__all__ = ["day_of_year", "declination", "seasonal_cycle", "to_hours"]

_EPOCH = np.datetime64("2000-01-01T00:00:00", "s")
_FIRST = np.datetime64("1900-01-01T00:00:00", "s")
_LAST = np.datetime64("2100-01-01T00:00:00", "s")  # exclusive
FIRST_DAY, LAST_DAY = "1900-01-01", "2099-12-31"


def to_hours(times: object, name: str) -> F64:
    """Hours since 2000-01-01T00 UTC of tz-naive datetime64 values, (T,)."""
    arr = np.atleast_1d(np.asarray(times))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "MOU":
        raise ValueError(f"{name} must be datetime64 values, got dtype {arr.dtype}")
    try:
        sec = arr.astype("datetime64[s]")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be tz-naive datetime64 values: {exc}") from None
    if np.isnat(sec).any():
        raise ValueError(f"{name} contains NaT")
    if (sec < _FIRST).any() or (sec >= _LAST).any():
        bad = sec[(sec < _FIRST) | (sec >= _LAST)][0]
        raise ValueError(
            f"{name} value {bad} is outside the toy atmosphere's range {FIRST_DAY}..{LAST_DAY}"
        )
    out: F64 = (sec - _EPOCH).astype(np.int64).astype(np.float64) / 3600.0
    return out


def seasonal_cycle(t: F64, lag_days: float) -> F64:
    """+1 at northern midsummer + ``lag_days``, -1 half a year later."""
    out: F64 = np.sin(
        2.0 * math.pi * (t / 24.0 - 79.0 - 91.3 - lag_days) / YEAR_DAYS + 0.5 * math.pi
    )
    return out


def declination(t: F64) -> F64:
    """Solar declination (radians) at hours ``t``."""
    out: F64 = 23.44 * RAD * np.sin(2.0 * math.pi * (t / 24.0 - 79.0) / YEAR_DAYS)
    return out


def day_of_year(t: F64) -> F64:
    """Fractional day of the mean (365.2422-day) year at hours ``t``."""
    out: F64 = (t / 24.0 - 0.5) % YEAR_DAYS
    return out
