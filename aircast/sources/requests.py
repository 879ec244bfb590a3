"""Canonical data-store requests: one form, one hash, one cache entry.

Two requests that ask for the same thing must hash the same, however their lists were ordered
or their numbers written; so every request is validated against the store's form
(:func:`aircast.catalogue.validate_request`) and rewritten into one canonical form before it is
hashed, cached, or sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aircast.catalogue import DATASETS, ParsedRequest, validate_request

#: Keys whose values are numbers written as strings: sorted numerically, not as text.
_NUMERIC_KEYS = {"pressure_level", "leadtime_hour", "year", "day"}


def canonical_request(
    dataset: str, request: Mapping[str, Any], *, today: dt.date | None = None
) -> dict[str, Any]:
    """Validate ``request`` and return its canonical form.

    Lists become sorted lists of unique strings (numbers sorted by value), single values of
    list keys become one-element lists, ``area`` becomes four floats rounded to 1e-6 degrees.

    Raises
    ------
    RequestError
        When the store's form would reject the request.
    """
    validate_request(dataset, request, today=today)
    canonical: dict[str, Any] = {}
    for key in sorted(request):
        value = request[key]
        if key == "area":
            canonical[key] = [round(float(v), 6) + 0.0 for v in value]
        elif key in ("data_format", "format", "download_format"):
            canonical[key] = str(value[0] if isinstance(value, list) else value)
        else:
            values = [value] if isinstance(value, (str, int, float)) else list(value)
            unique = {str(v) for v in values}
            if key in _NUMERIC_KEYS:
                canonical[key] = sorted(unique, key=lambda v: float(v.removesuffix("_hpa")))
            elif key == "month":
                from aircast.catalogue import MONTHS

                canonical[key] = sorted(unique, key=MONTHS.index)
            else:
                canonical[key] = sorted(unique)
    return canonical


def request_hash(dataset: str, canonical: Mapping[str, Any]) -> str:
    """SHA-256 of the dataset and the canonical request: the raw cache's file name."""
    text = json.dumps(
        {"dataset": dataset, "request": canonical}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class SourceRequest:
    """One request to one store, in canonical form, with what it covers.

    Attributes
    ----------
    dataset
        Catalogue id.
    request
        Canonical request (see :func:`canonical_request`).
    day
        The day the request covers (the run's date for a forecast).
    group
        Which variable group of that day it is (``single``, ``pressure-850``, ``static``…).
    """

    dataset: str
    request: Mapping[str, Any]
    day: dt.date
    group: str

    @property
    def key(self) -> str:
        return request_hash(self.dataset, self.request)

    @property
    def store(self) -> str:
        return DATASETS[self.dataset].store

    @property
    def suffix(self) -> str:
        """File suffix of the delivered product (a zip only for mixed-level NetCDF)."""
        fmt = self.request.get("data_format", self.request.get("format", "grib"))
        return ".grib" if fmt == "grib" else ".nc"

    @property
    def label(self) -> str:
        return f"{self.dataset} {self.day.isoformat()} {self.group}"

    def parsed(self) -> ParsedRequest:
        """The request parsed again (to decode or verify its product).

        Validated as on the first date it could be sent (``day`` plus the dataset's lag, e.g.
        five days for ERA5), so that a planned or cached request never stops parsing as the
        calendar moves and never depends on this machine's clock.
        """
        lag = dt.timedelta(days=DATASETS[self.dataset].lag_days)
        return validate_request(self.dataset, self.request, today=self.day + lag)


def padded_area(
    north: float, west: float, south: float, east: float, *, pad: float, step: float
) -> list[float]:
    """The store ``area`` that covers a region plus ``pad`` degrees, snapped outward to ``step``.

    Conservative regridding needs every source cell that overlaps a target cell, so the
    request reaches half a target cell and one native cell beyond the region.
    """

    def out(value: float, direction: int) -> float:
        snapped = (math.ceil if direction > 0 else math.floor)(round(value / step, 9)) * step
        return round(snapped, 6) + 0.0

    return [
        min(90.0, out(north + pad, +1)),
        out(west - pad, -1),
        max(-90.0, out(south - pad, -1)),
        out(east + pad, +1),
    ]


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every day from ``start`` to ``end`` inclusive."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def group_by_levels(
    levels_by_variable: Mapping[str, Sequence[int]],
) -> dict[tuple[int, ...], list[str]]:
    """Group variables that need the same set of levels, so no request asks for fields that
    are not wanted (a request is the product of its variables and its levels)."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for name, levels in levels_by_variable.items():
        groups.setdefault(tuple(sorted(set(levels))), []).append(name)
    return groups
