"""ERA5 from the Climate Data Store: the source of the training store's weather and statics.

:data:`ERA5_SOURCE` says which requests a recipe needs for a span of days and reads their
fields onto a grid (:class:`aircast.sources.base.DataSource`).

Weather is stored three-hourly (00, 03, … 21 UTC, the EAC4 axis). Instantaneous fields are
requested at those hours only; precipitation is an hourly accumulation in ERA5, so it is
requested at every hour (and from the day before the period, for the interval ending at the
first 00 UTC) and summed over each three-hour interval when aligning.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from aircast.catalogue import DATASETS, MONTHS
from aircast.config import AirCastConfig
from aircast.sources.base import DataSource, Source
from aircast.sources.requests import (
    SourceRequest,
    canonical_request,
    days_between,
    group_by_levels,
    padded_area,
)
from aircast.vocab import ERA5_PRESSURE, ERA5_SINGLE, VARIABLES, LevelType, Role, TimeKind

#: Hours of the aligned time axis.
STORE_HOURS = tuple(range(0, 24, 3))


def _day_keys(day: dt.date) -> dict[str, Any]:
    return {"year": [str(day.year)], "month": [MONTHS[day.month - 1]], "day": [f"{day.day:02d}"]}


def era5_area(config: AirCastConfig) -> list[float]:
    """The ``area`` of every ERA5 request: the region plus a regridding margin."""
    r = config.region
    step = DATASETS[ERA5_SINGLE].grid_step
    return padded_area(
        r.north, r.west, r.south, r.east, pad=config.grid.resolution / 2 + step, step=step
    )


class Era5Source(DataSource):
    """ERA5 weather (single and pressure levels) and static fields from the CDS."""

    name: ClassVar[Source] = "era5"
    datasets: ClassVar[tuple[str, ...]] = (ERA5_SINGLE, ERA5_PRESSURE)

    def requests(self, config: AirCastConfig, start: dt.date, end: dt.date) -> list[SourceRequest]:
        """The canonical ERA5 requests for days ``start`` to ``end``, one per day and group.

        Groups: ``single`` (instantaneous single-level weather, 3-hourly), ``accumulated``
        (hourly precipitation, from the day before ``start``), ``pressure-<levels>`` (one per
        set of levels), and ``static`` (land-sea mask and orography, once, at ``start``).
        """
        fmt = config.ingest.data_format
        area = era5_area(config)
        channels = config.variables.channels()
        instant = [
            c.spec
            for c in channels
            if c.spec.role is Role.WEATHER
            and c.level is None
            and c.spec.time_kind is TimeKind.INSTANT
        ]
        accumulated = [
            c.spec
            for c in channels
            if c.spec.role is Role.WEATHER and c.spec.time_kind is TimeKind.ACCUMULATED
        ]
        static = [c.spec for c in channels if c.spec.role is Role.STATIC]
        levels: dict[str, list[int]] = {}
        for c in channels:
            if c.spec.role is Role.WEATHER and c.spec.level_type is LevelType.PRESSURE:
                assert c.level is not None
                levels.setdefault(c.variable, []).append(c.level)

        def single(
            day: dt.date, names: list[str], hours: tuple[int, ...], group: str
        ) -> SourceRequest:
            request = {
                "product_type": ["reanalysis"],
                "variable": names,
                **_day_keys(day),
                "time": [f"{h:02d}:00" for h in hours],
                "area": area,
                "data_format": fmt,
            }
            return SourceRequest(ERA5_SINGLE, canonical_request(ERA5_SINGLE, request), day, group)

        out: list[SourceRequest] = []
        if static:
            out.append(single(start, [v.request_name(ERA5_SINGLE) for v in static], (0,), "static"))
        for day in days_between(start, end):
            if instant:
                out.append(
                    single(
                        day, [v.request_name(ERA5_SINGLE) for v in instant], STORE_HOURS, "single"
                    )
                )
            for level_set, names in group_by_levels(levels).items():
                request = {
                    "product_type": ["reanalysis"],
                    "variable": [VARIABLES[n].request_name(ERA5_PRESSURE) for n in names],
                    **_day_keys(day),
                    "time": [f"{h:02d}:00" for h in STORE_HOURS],
                    "pressure_level": [f"{p}_hpa" for p in level_set],
                    "area": area,
                    "data_format": fmt,
                }
                out.append(
                    SourceRequest(
                        ERA5_PRESSURE,
                        canonical_request(ERA5_PRESSURE, request),
                        day,
                        "pressure-" + "-".join(map(str, level_set)),
                    )
                )
        if accumulated:
            for day in days_between(start - dt.timedelta(days=1), end):
                out.append(
                    single(
                        day,
                        [v.request_name(ERA5_SINGLE) for v in accumulated],
                        tuple(range(24)),
                        "accumulated",
                    )
                )
        return out


#: The ERA5 source.
ERA5_SOURCE = Era5Source()
