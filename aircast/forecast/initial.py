"""The initial conditions of a daily forecast, and their health check.

A forecast for a date starts from that date's 00 UTC CAMS global forecast at lead 0 (weather
and pollutants alike), regridded to the training store's grid by the same conservative
regridding that built the store. Two kinds of channel cannot come from lead 0:

- **accumulated** channels (``tp``): the store holds the amount of the 3 h ending at each time,
  and a forecast's accumulation is zero at lead 0, so the amount comes from the previous day's
  run, lead 24 h minus lead 21 h (the 3 h ending at this 00 UTC);
- **static** channels (land-sea mask, orography): from the training store itself, so that the
  model sees exactly the fields it was trained with.

Nothing here touches the network: the CAMS runs are ingested into the raw cache first
(``flows/ingest.py``), and a run that is not in the cache is an :class:`InputError` that says
how to fetch it.

The health check compares the initial state with the training statistics stored with the
training store: NaN cells, cells far outside the training distribution, and an area mean that
drifted from the training mean (each in training standard deviations, in log space for the
heavy-tailed pollutants, as the model's normaliser sees them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from aircast.align.grid import TargetGrid
from aircast.config import AirCastConfig, HealthSettings
from aircast.errors import AirCastError
from aircast.sources.base import request_ids
from aircast.sources.cache import RawCache
from aircast.sources.cams import CAMS_FORECAST_SOURCE
from aircast.sources.ingest import raw_cache
from aircast.store.reader import TrainingStore
from aircast.store.schema import iso_hour
from aircast.store.stats import log_transform
from aircast.vocab import CAMS_FORECAST, Role, TimeKind, parse_channel

#: The lead of the previous day's run whose accumulation, minus that of lead 21 h, is the
#: amount of the 3 h ending at this 00 UTC.
ACCUMULATION_LEADS = (21, 24)


class InputError(AirCastError, ValueError):
    """Initial conditions that are missing or unhealthy: nothing may be forecast from them."""


@dataclass(frozen=True)
class InitialConditions:
    """The state a forecast starts from, on the training store's grid.

    Attributes
    ----------
    init_time
        00 UTC of the forecast's date, datetime64[ns].
    channels
        Channel names of ``values``: every channel of the training store, in its order.
    values
        float32 (channel, latitude, longitude), training-store units.
    request_ids
        The data store's request ids (or, where the store gave none, the cache keys) of the
        raw files the state was made from.
    source
        Where the state came from, in words (for the provenance).
    """

    init_time: np.datetime64
    channels: tuple[str, ...]
    values: np.ndarray
    request_ids: tuple[str, ...]
    source: str


def _decoded_run(
    config: AirCastConfig,
    cache: RawCache,
    day: dt.date,
    grid: TargetGrid,
    channels: Sequence[str],
    leads: Sequence[int],
) -> tuple[np.ndarray, list[str]]:
    """One run's fields on the grid, (lead, channel, lat, lon) float32 NaN where absent, and
    the request ids of its files."""
    run = CAMS_FORECAST_SOURCE.run(config, cache, day, grid, channels, leads)
    return run.values, request_ids(cache, run.fields.read)


def _static_fields(store: TrainingStore, names: Sequence[str]) -> np.ndarray:
    """The store's static channels ``names`` at its first time with data: (C, lat, lon)."""
    times = store.times
    have = times[store.available(times)]
    if not have.size:
        raise InputError(f"the training store at {store.url} holds no data to take static fields")
    fields = store.read(have[:1]).sel(channel=list(names))
    return np.asarray(fields.values[0], np.float32)


def load_initial_conditions(
    config: AirCastConfig,
    store: TrainingStore,
    day: dt.date,
    *,
    previous_cycle: bool = False,
) -> InitialConditions:
    """The initial state of the forecast for ``day`` 00 UTC, from the raw cache.

    Parameters
    ----------
    previous_cycle
        Start from the previous day's run at lead 24 h instead (the fallback when the day's
        own run is missing or unhealthy); said in :attr:`InitialConditions.source`.

    Raises
    ------
    InputError
        When a run it needs is not in the raw cache, naming the run and how to ingest it.
    """
    grid = store.grid
    names = store.channel_names
    roles = {n: parse_channel(n).spec.role for n in names}
    dynamic = [n for n in names if roles[n] is not Role.STATIC]
    accumulated = [n for n in dynamic if parse_channel(n).spec.time_kind is TimeKind.ACCUMULATED]
    instant = [n for n in dynamic if n not in accumulated]
    cache = raw_cache(config)
    previous = day - dt.timedelta(days=1)
    wanted = [previous] if previous_cycle or accumulated else []
    if not previous_cycle:
        wanted.append(day)
    for run_day in wanted:
        if CAMS_FORECAST_SOURCE.absent(config, cache, run_day, run_day):
            raise InputError(
                f"the CAMS global forecast of {run_day} 00 UTC is not in the raw cache "
                f"{config.paths.raw}; ingest it first: `aircast ingest {run_day} {run_day} "
                f"--config CONFIG --source forecast` (the daily_forecast flow does this itself)"
            )

    values = np.full((len(names), *grid.shape), np.nan, np.float32)
    index = {n: i for i, n in enumerate(names)}
    ids: list[str] = []
    if previous_cycle:
        run, run_ids = _decoded_run(config, cache, previous, grid, dynamic, (24,))
        for c, name in enumerate(dynamic):
            if name not in accumulated:
                values[index[name]] = run[0, c]
        ids += run_ids
        source = (
            f"{CAMS_FORECAST} {previous} 00 UTC at lead 24 h (fallback: the run of {day} "
            "was missing or unhealthy)"
        )
    else:
        run, run_ids = _decoded_run(config, cache, day, grid, instant, (0,))
        for c, name in enumerate(instant):
            values[index[name]] = run[0, c]
        ids += run_ids
        source = f"{CAMS_FORECAST} {day} 00 UTC at lead 0"
    if accumulated:
        run, run_ids = _decoded_run(config, cache, previous, grid, accumulated, ACCUMULATION_LEADS)
        for c, name in enumerate(accumulated):
            # an accumulation cannot shrink; rounding in the GRIB packing can make it do so
            values[index[name]] = np.maximum(run[1, c] - run[0, c], 0.0)
        ids += [i for i in run_ids if i not in ids]
        source += f"; {', '.join(accumulated)} from the run of {previous} (lead 24 h - 21 h)"
    static = [n for n in names if roles[n] is Role.STATIC]
    if static:
        values[[index[n] for n in static]] = _static_fields(store, static)
        source += f"; {', '.join(static)} from the training store"
    init = np.datetime64(day.isoformat(), "ns")
    return InitialConditions(init, tuple(names), values, tuple(ids), source)


# ---------------------------------------------------------------------------------------------
# Health


@dataclass(frozen=True)
class ChannelHealth:
    """What the health check found in one channel."""

    channel: str
    nan_fraction: float
    mean: float
    minimum: float
    maximum: float
    worst_cell_sigma: float
    drift_sigma: float
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class HealthReport:
    """The health of a forecast's initial conditions, channel by channel."""

    init_time: np.datetime64
    source: str
    channels: tuple[ChannelHealth, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.channels)

    @property
    def problems(self) -> list[str]:
        return [f"{c.channel}: {p}" for c in self.channels for p in c.problems]

    def markdown(self) -> str:
        """A table for the Prefect artifact and the log."""
        init = iso_hour(self.init_time).replace("T", " ")
        verdict = "healthy" if self.ok else f"**UNHEALTHY**: {len(self.problems)} problems"
        lines = [
            f"## Input health: {init} UTC ({verdict})",
            "",
            f"Source: {self.source}",
            "",
            "| channel | NaN % | min | mean | max | worst cell (σ) | drift of mean (σ) | status |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for c in self.channels:
            status = "ok" if c.ok else "; ".join(c.problems)
            lines.append(
                f"| {c.channel} | {100 * c.nan_fraction:.1f} | {c.minimum:.4g} | {c.mean:.4g} "
                f"| {c.maximum:.4g} | {c.worst_cell_sigma:.1f} | {c.drift_sigma:+.2f} | {status} |"
            )
        return "\n".join(lines)


def check_health(
    ic: InitialConditions, store: TrainingStore, settings: HealthSettings
) -> HealthReport:
    """Compare the initial state with the training statistics of ``store``.

    Static channels are the store's own fields and are not checked.
    """
    stats = store.statistics
    weights = store.grid.area_weights()[:, None]
    out = []
    for i, name in enumerate(ic.channels):
        spec = parse_channel(name).spec
        if spec.role is Role.STATIC:
            continue
        s = stats.channels.index(name)
        x = ic.values[i].astype(np.float64)
        finite = np.isfinite(x)
        nan_fraction = float(1 - finite.mean())
        problems = []
        if nan_fraction > settings.max_nan_fraction:
            problems.append(
                f"{100 * nan_fraction:.1f}% of cells are NaN (at most "
                f"{100 * settings.max_nan_fraction:.1f}% allowed)"
            )
        if not finite.any():
            out.append(
                ChannelHealth(
                    name, nan_fraction, np.nan, np.nan, np.nan, np.inf, np.inf, tuple(problems)
                )
            )
            continue
        heavy = bool(stats.log_count[s] > 0)
        if heavy:
            z = (log_transform(x, stats.log_offset[s]) - stats.log_mean[s]) / stats.log_std[s]
        else:
            z = (x - stats.mean[s]) / stats.std[s]
        worst = float(np.nanmax(np.abs(z)))
        w = np.broadcast_to(weights, z.shape)
        drift = float(np.sum(np.where(finite, z * w, 0.0)) / np.sum(np.where(finite, w, 0.0)))
        if worst > settings.max_cell_sigma:
            problems.append(
                f"a cell lies {worst:.1f} training standard deviations from the training mean "
                f"(at most {settings.max_cell_sigma:g}): wrong units or a damaged field?"
            )
        if abs(drift) > settings.max_drift_sigma:
            problems.append(
                f"the area mean drifted {drift:+.2f} training standard deviations from the "
                f"training mean (at most {settings.max_drift_sigma:g})"
            )
        if spec.positive and float(np.nanmin(x)) < 0:
            problems.append(f"negative values (min {float(np.nanmin(x)):.3g}) in a positive field")
        out.append(
            ChannelHealth(
                name,
                nan_fraction,
                float(np.nanmean(x)),
                float(np.nanmin(x)),
                float(np.nanmax(x)),
                worst,
                drift,
                tuple(problems),
            )
        )
    return HealthReport(ic.init_time, ic.source, tuple(out))
