"""CAMS from the Atmosphere Data Store: which requests a recipe needs.

EAC4 (the reanalysis) gives the pollutants of the training store, three-hourly. The CAMS
global forecast gives the daily forecast's initial conditions (lead 0 of the 00 UTC run, weather
and pollutants alike) and the operational baseline the model is scored against (its leads up
to ``ingest.forecast_lead_hours``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aircast.catalogue import DATASETS
from aircast.config import AirCastConfig
from aircast.sources.requests import (
    SourceRequest,
    canonical_request,
    days_between,
    group_by_levels,
    padded_area,
)
from aircast.vocab import CAMS_EAC4, CAMS_FORECAST, LevelType, Role, Variable

STORE_HOURS = tuple(range(0, 24, 3))


def cams_area(config: AirCastConfig, dataset: str) -> list[float]:
    """The ``area`` of a CAMS request: the region plus a regridding margin."""
    r = config.region
    step = DATASETS[dataset].grid_step
    return padded_area(
        r.north, r.west, r.south, r.east, pad=config.grid.resolution / 2 + step, step=step
    )


def _split(
    config: AirCastConfig, roles: tuple[Role, ...]
) -> tuple[list[Variable], dict[str, list[int]]]:
    single: list[Variable] = []
    levels: dict[str, list[int]] = {}
    for c in config.variables.channels():
        if c.spec.role not in roles:
            continue
        if c.spec.level_type is LevelType.PRESSURE:
            assert c.level is not None
            levels.setdefault(c.variable, []).append(c.level)
        else:
            single.append(c.spec)
    return single, levels


def _requests(
    dataset: str,
    config: AirCastConfig,
    days: list[dt.date],
    roles: tuple[Role, ...],
    extra: dict[str, Any],
) -> list[SourceRequest]:
    from aircast.vocab import VARIABLES

    fmt_key = "format" if dataset == CAMS_EAC4 else "data_format"
    single, levels = _split(config, roles)
    area = cams_area(config, dataset)
    out: list[SourceRequest] = []
    for day in days:
        base = {
            "date": [f"{day.isoformat()}/{day.isoformat()}"],
            "area": area,
            fmt_key: config.ingest.data_format,
            **extra,
        }
        if single:
            request = {**base, "variable": [v.request_name(dataset) for v in single]}
            out.append(
                SourceRequest(
                    dataset, canonical_request(dataset, request, today=day), day, "single"
                )
            )
        for level_set, names in group_by_levels(levels).items():
            request = {
                **base,
                "variable": [VARIABLES[n].request_name(dataset) for n in names],
                "pressure_level": [str(p) for p in level_set],
            }
            out.append(
                SourceRequest(
                    dataset,
                    canonical_request(dataset, request, today=day),
                    day,
                    "pressure-" + "-".join(map(str, level_set)),
                )
            )
    return out


def eac4_requests(config: AirCastConfig, start: dt.date, end: dt.date) -> list[SourceRequest]:
    """EAC4 pollutant requests for ``start``..``end``: one per day and level group."""
    times = {"time": [f"{h:02d}:00" for h in STORE_HOURS]}
    return _requests(CAMS_EAC4, config, days_between(start, end), (Role.POLLUTANT,), times)


def forecast_requests(
    config: AirCastConfig, start: dt.date, end: dt.date, *, lead_hours: int | None = None
) -> list[SourceRequest]:
    """CAMS global forecast requests for the 00 UTC runs of ``start``..``end``.

    Weather and pollutant channels at leads 0, 3, … ``lead_hours`` (default
    ``ingest.forecast_lead_hours``): lead 0 is the daily forecast's initial condition, the
    later leads are the baseline the model is scored against.
    """
    last = config.ingest.forecast_lead_hours if lead_hours is None else lead_hours
    extra = {
        "time": ["00:00"],
        "type": ["forecast"],
        "leadtime_hour": [str(h) for h in range(0, last + 1, 3)],
    }
    return _requests(
        CAMS_FORECAST, config, days_between(start, end), (Role.WEATHER, Role.POLLUTANT), extra
    )
