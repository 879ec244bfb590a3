"""CAMS from the Atmosphere Data Store: the EAC4 reanalysis and the global forecast.

EAC4 (the reanalysis, :data:`EAC4_SOURCE`) gives the pollutants of the training store,
three-hourly. The CAMS global forecast (:data:`CAMS_FORECAST_SOURCE`) gives the daily
forecast's initial conditions (lead 0 of the 00 UTC run, weather and pollutants alike) and the
operational baseline the model is scored against (its leads up to
``ingest.forecast_lead_hours``). Both are :class:`aircast.sources.base.DataSource`: the
requests a recipe needs for a span of days, and their fields on a grid; a forecast run's
fields also come as channels × leads (:meth:`CamsForecastSource.run`), which is what the
initial conditions, the verification and the scorecard's baseline read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from aircast.catalogue import DATASETS
from aircast.config import AirCastConfig
from aircast.sources.base import DataSource, Grid, GriddedFields, Source
from aircast.sources.cache import RawCache
from aircast.sources.requests import (
    SourceRequest,
    canonical_request,
    days_between,
    group_by_levels,
    padded_area,
)
from aircast.vocab import CAMS_EAC4, CAMS_FORECAST, LevelType, Role, Variable, parse_channel

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


class Eac4Source(DataSource):
    """The CAMS global reanalysis EAC4: the training store's pollutants."""

    name: ClassVar[Source] = "eac4"
    datasets: ClassVar[tuple[str, ...]] = (CAMS_EAC4,)

    def requests(self, config: AirCastConfig, start: dt.date, end: dt.date) -> list[SourceRequest]:
        """EAC4 pollutant requests for ``start``..``end``: one per day and level group."""
        times = {"time": [f"{h:02d}:00" for h in STORE_HOURS]}
        return _requests(CAMS_EAC4, config, days_between(start, end), (Role.POLLUTANT,), times)


@dataclass(frozen=True)
class CamsRun:
    """One 00 UTC run of the CAMS global forecast on a target grid.

    Attributes
    ----------
    day
        The run's date (00 UTC).
    channels
        Channel names of ``values`` (``pm2p5``, ``go3_925`` …).
    lead_hours
        Leads of ``values``.
    values
        float32 (lead, channel, latitude, longitude), store units; NaN for a lead, channel or
        file of the run that was not delivered.
    fields
        The run's decoded fields, and which of its requests were read or are absent.
    """

    day: dt.date
    channels: tuple[str, ...]
    lead_hours: tuple[int, ...]
    values: np.ndarray
    fields: GriddedFields

    @property
    def complete(self) -> bool:
        """Every file of the run is in the raw cache."""
        return self.fields.complete


class CamsForecastSource(DataSource):
    """The CAMS global atmospheric composition forecast: the 00 UTC runs and their leads."""

    name: ClassVar[Source] = "forecast"
    datasets: ClassVar[tuple[str, ...]] = (CAMS_FORECAST,)
    along: ClassVar[str] = "init_time"

    def requests(
        self,
        config: AirCastConfig,
        start: dt.date,
        end: dt.date,
        *,
        lead_hours: int | None = None,
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

    def run(
        self,
        config: AirCastConfig,
        cache: RawCache,
        day: dt.date,
        grid: Grid,
        channels: Sequence[str],
        lead_hours: Sequence[int],
    ) -> CamsRun:
        """The run of ``day`` 00 UTC from the raw cache, as ``channels`` at ``lead_hours``.

        A channel whose variable or level the product lacks, a lead it lacks, the variables of
        a file that is not in the cache, and any non-finite value come out NaN.
        """
        wanted = {parse_channel(c).variable for c in channels}
        fields = self.fields(config, cache, day, day, grid, variables=wanted)
        init = np.datetime64(day.isoformat(), "ns")
        on_grid = forecast_channels(fields.variables, init, grid, channels, lead_hours)
        values = np.full(on_grid.shape, np.nan, np.float32)
        filled = np.isfinite(on_grid)
        values[filled] = on_grid[filled]
        return CamsRun(day, tuple(channels), tuple(int(h) for h in lead_hours), values, fields)


def cams_channels(channels: Sequence[str]) -> tuple[str, ...]:
    """The pollutant channels among ``channels`` that the CAMS global forecast offers."""
    out = []
    for name in channels:
        spec = parse_channel(name).spec
        if spec.role is Role.POLLUTANT and CAMS_FORECAST in spec.request_names:
            out.append(name)
    return tuple(out)


def forecast_channels(
    variables: Mapping[str, xr.DataArray],
    init_time: np.datetime64,
    grid: Grid,
    channels: Sequence[str],
    lead_hours: Sequence[int],
) -> np.ndarray:
    """One run of regridded CAMS forecast variables as channels at leads.

    Parameters
    ----------
    variables
        Vocabulary name → DataArray (init_time, lead_time, [level], latitude, longitude) on
        ``grid`` (:attr:`aircast.sources.base.GriddedFields.variables`).
    init_time
        The run, datetime64[ns].
    channels
        Channels wanted (``pm2p5``, ``go3_925`` …; a pressure-level channel is its variable at
        its level); a channel whose variable or level is not there comes out NaN.
    lead_hours
        Leads wanted; a lead that is not there comes out NaN.

    Returns
    -------
    numpy.ndarray
        float32 (lead, channel, latitude, longitude).
    """
    leads = np.asarray(lead_hours, np.int64)
    out = np.full((leads.size, len(channels), *grid.shape), np.nan, np.float32)
    for c, name in enumerate(channels):
        channel = parse_channel(name)
        da = variables.get(channel.variable)
        if da is None:
            continue
        if channel.level is not None:
            if "level" not in da.dims or channel.level not in da["level"].values:
                continue
            da = da.sel(level=channel.level)
        have = np.round(da["lead_time"].values / np.timedelta64(1, "h")).astype(np.int64)
        where = {int(h): i for i, h in enumerate(have)}
        values = da.sel(init_time=init_time).transpose("lead_time", "latitude", "longitude").values
        for j, h in enumerate(leads):
            if int(h) in where:
                out[j, c] = values[where[int(h)]]
    return out


#: The EAC4 source.
EAC4_SOURCE = Eac4Source()
#: The CAMS global forecast source.
CAMS_FORECAST_SOURCE = CamsForecastSource()
