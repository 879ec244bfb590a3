"""The baselines a forecast is scored against: persistence, climatology, the CAMS forecast.

- **Persistence**: the initial state, held at every lead.
- **Climatology** (:func:`training_climate`): the mean of the *training period* of the store,
  so no test or validation value leaks into it. With at least a year of training data it is
  the mean by day of year and hour of day, smoothed over ``±window_days`` days (one year of
  3-hourly data gives ~one value per day and hour, too noisy to score against); with a shorter
  training period (the demo's three weeks do not contain the test days' dates) it falls back
  to the mean by hour of day over the whole training period. :attr:`Climatology.method`
  records which, and the scorecard carries it in its attributes.
- **CAMS forecast** (:func:`cams_forecast_from`): the CAMS global forecast of the same 00 UTC
  cycle, ingested through :func:`aircast.sources.ingest.ingest` (product ``forecast``, the
  recipe's data stores: the embedded sandbox by default) and read onto the store's grid by
  its source (:meth:`aircast.sources.cams.CamsForecastSource.run`: decoded and regridded
  conservatively, the same path as the training store's inputs), pollutant channels only (a
  pressure-level channel such as ``go3_925`` is variable ``go3`` at level 925).

The same pass over the training period also gives each channel's 99th percentile (for the
extreme-value scores): a histogram in the channel's normalised space (log space for the
heavy-tailed ones, as the model sees them) with 0.005-standard-deviation bins, so memory does
not grow with the length of the training period and the percentile is exact to a fraction of
a bin. The percentile is the inverse of the empirical CDF (the smallest value with 99 % of the
values at or below it: numpy's ``inverted_cdf``) over every cell and time of the period, not
area-weighted: a threshold of what is rare, like an air-quality percentile.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import xarray as xr

from aircast.align.grid import TargetGrid
from aircast.align.time import STEP_HOURS, hour_and_day_of_year
from aircast.config import AirCastConfig
from aircast.errors import AirCastError
from aircast.sources.cams import CAMS_FORECAST_SOURCE, cams_channels
from aircast.sources.fetch import FetchReport
from aircast.sources.ingest import raw_cache
from aircast.store.reader import TrainingStore
from aircast.store.stats import LOG_SCALES
from aircast.vocab import parse_channel

LOG = logging.getLogger(__name__)

ClimatologyMethod = Literal["day_of_year_hour", "hour_of_day"]

#: Days of training data from which the day-of-year climatology is used (else hour of day).
MIN_DAYS_FOR_DAY_OF_YEAR = 365
#: Half-width of the day-of-year window, days.
WINDOW_DAYS = 15
#: Histogram of the percentile pass: normalised values in [-Z_RANGE, Z_RANGE], bins of Z_BIN.
Z_RANGE, Z_BIN = 12.0, 0.005
_YEAR_DAYS = 365.25


# ---------------------------------------------------------------------------------------------
# Persistence


def persistence(initial: np.ndarray, n_leads: int) -> np.ndarray:
    """The initial state held at every lead.

    Parameters
    ----------
    initial
        State at the initial times, shape (init, channel, lat, lon).
    n_leads
        Number of leads.

    Returns
    -------
    numpy.ndarray
        A read-only view of shape (init, lead, channel, lat, lon).
    """
    state = np.asarray(initial)
    return np.broadcast_to(state[:, None], (state.shape[0], n_leads, *state.shape[1:]))


# ---------------------------------------------------------------------------------------------
# The training period: climatology and percentiles

FieldSource = TrainingStore | xr.DataArray


def _training_times(times: np.ndarray, start: dt.date, end: dt.date) -> np.ndarray:
    first = np.datetime64(start.isoformat(), "ns")
    last = np.datetime64((end + dt.timedelta(days=1)).isoformat(), "ns")
    inside: np.ndarray = times[(times >= first) & (times < last)]
    return inside


def _times(source: FieldSource, start: dt.date, end: dt.date) -> np.ndarray:
    """The training period's times that have data, datetime64[ns], shape (n,)."""
    if isinstance(source, TrainingStore):
        times = _training_times(source.times, start, end)
        return times[source.available(times)] if times.size else times
    return _training_times(np.asarray(source["time"].values), start, end)


def _chunks(
    source: FieldSource, channels: Sequence[str], times: np.ndarray, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(times (n,), values (n, C, H, W) float64) at ``times``, chunk by chunk."""
    if isinstance(source, TrainingStore):
        index = [source.channel_names.index(c) for c in channels]
        for i in range(0, times.size, chunk):
            part = times[i : i + chunk]
            yield part, np.asarray(source.read(part).values[:, index], dtype=np.float64)
    else:
        da = source.sel(channel=list(channels)).transpose("time", "channel", ...)
        for i in range(0, times.size, chunk):
            part = times[i : i + chunk]
            yield part, np.asarray(da.sel(time=part).values, dtype=np.float64)


@dataclass(frozen=True)
class _Scale:
    """Per channel: the transform into normalised space, shape (C,) each."""

    heavy: np.ndarray
    offset: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Physical (n, C, H, W) → normalised (n, C, H, W)."""
        shape = (1, -1, 1, 1)
        logged = np.log(np.maximum(x, 0.0) + self.offset.reshape(shape))
        t = np.where(self.heavy.reshape(shape), logged, x)
        z: np.ndarray = (t - self.mean.reshape(shape)) / self.std.reshape(shape)
        return z

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Normalised (C,) → physical (C,)."""
        t = z * self.std + self.mean
        x: np.ndarray = t.copy()
        x[self.heavy] = np.exp(t[self.heavy]) - self.offset[self.heavy]
        return x


def _scale(source: FieldSource, channels: Sequence[str], times: np.ndarray, chunk: int) -> _Scale:
    """The training statistics: the store's, or computed from an in-memory array."""
    specs = [parse_channel(c).spec for c in channels]
    heavy = np.array([s.heavy_tailed for s in specs])
    offset = np.array([LOG_SCALES[s.name].offset if s.heavy_tailed else 1.0 for s in specs])
    if isinstance(source, TrainingStore):
        stats = source.statistics
        index = [stats.channels.index(c) for c in channels]
        mean = np.where(heavy, stats.log_mean[index], stats.mean[index])
        std = np.where(heavy, stats.log_std[index], stats.std[index])
        offset = np.where(heavy, stats.log_offset[index], 1.0)
    else:
        parts = [v for _, v in _chunks(source, channels, times, chunk)]
        if not parts:
            mean, std = np.zeros(len(channels)), np.ones(len(channels))
        else:
            values = np.concatenate(parts)
            t = np.where(
                heavy.reshape(1, -1, 1, 1),
                np.log(np.maximum(values, 0.0) + offset.reshape(1, -1, 1, 1)),
                values,
            )
            axes = (0, 2, 3)
            mean, std = np.nanmean(t, axis=axes), np.nanstd(t, axis=axes)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    return _Scale(heavy, offset, np.asarray(mean, np.float64), np.asarray(std, np.float64))


@dataclass(frozen=True)
class Climatology:
    """Mean fields of the training period by (day of year, hour) or by hour of day.

    Attributes
    ----------
    method
        ``day_of_year_hour`` or ``hour_of_day`` (the fallback for short training periods).
    channels
        Channel names, in the order of ``values``.
    day_of_year, hour
        The key of each entry, int64 shape (K,); ``day_of_year`` is 0 for ``hour_of_day``.
    values
        float64 (K, C, H, W), store units; NaN where no training value fell in the key.
    count
        Training times behind each entry, int64 (K,).
    window_days
        Half-width of the day-of-year window (0 for ``hour_of_day``).
    train
        The training period (first day, last day).
    """

    method: ClimatologyMethod
    channels: tuple[str, ...]
    day_of_year: np.ndarray
    hour: np.ndarray
    values: np.ndarray
    count: np.ndarray
    window_days: int
    train: tuple[dt.date, dt.date]

    def at(self, times: np.ndarray) -> np.ndarray:
        """The climatology at ``times`` (datetime64, shape (n,)) → (n, C, H, W) float64.

        NaN for a time whose key the climatology does not hold.
        """
        times = np.asarray(times)
        hours, doys = hour_and_day_of_year(times)
        if self.method != "day_of_year_hour":
            doys = np.zeros_like(hours)
        lookup = {
            (int(d), int(h)): i
            for i, (d, h) in enumerate(zip(self.day_of_year, self.hour, strict=True))
        }
        out = np.full((times.size, *self.values.shape[1:]), np.nan)
        for i, key in enumerate(zip(doys.tolist(), hours.tolist(), strict=True)):
            k = lookup.get(key)
            if k is not None:
                out[i] = self.values[k]
        return out

    def describe(self) -> str:
        first, last = self.train
        if self.method == "day_of_year_hour":
            return (
                f"mean by day of year (±{self.window_days} days) and hour of day over the "
                f"training period {first}..{last}"
            )
        days = (last - first).days + 1
        return (
            f"mean by hour of day over the training period {first}..{last}: {days} days are "
            f"fewer than the {MIN_DAYS_FOR_DAY_OF_YEAR} a day-of-year climatology needs"
        )


@dataclass(frozen=True)
class TrainingClimate:
    """What the training period says about every channel.

    Attributes
    ----------
    climatology
        The climatology baseline.
    quantile
        The quantile of ``thresholds`` (0.99).
    thresholds
        float64 (C,): the ``quantile`` of each channel over every cell and time of the
        training period, store units.
    """

    climatology: Climatology
    quantile: float
    thresholds: np.ndarray


def _keys(
    method: ClimatologyMethod, train_times: np.ndarray, valid_times: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(day of year, hour) of each climatology entry, int64 (K,) each."""
    if method == "hour_of_day":
        hours = np.unique(hour_and_day_of_year(train_times)[0])
        return np.zeros_like(hours), hours
    if valid_times is None:
        hours = np.unique(hour_and_day_of_year(train_times)[0])
        doys = np.arange(1, 367)
        grid_d, grid_h = np.meshgrid(doys, hours, indexing="ij")
        return grid_d.ravel(), grid_h.ravel()
    hours, doys = hour_and_day_of_year(valid_times)
    pairs = np.unique(np.stack([doys, hours], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _quantile_from_histogram(
    counts: np.ndarray, edges: np.ndarray, low: float, high: float, q: float
) -> float:
    """The ``q`` quantile of the values behind ``counts`` (underflow, bins, overflow)."""
    total = counts.sum()
    if total == 0:
        return float("nan")
    # bin b spans bounds[b]..bounds[b + 1]; the outer bins reach the observed extremes
    bounds = np.concatenate([[min(low, edges[0])], edges, [max(high, edges[-1])]])
    cumulative = np.cumsum(counts)
    rank = q * total
    b = int(np.searchsorted(cumulative, rank, side="left"))
    before = cumulative[b - 1] if b > 0 else 0
    inside = (rank - before) / counts[b] if counts[b] else 0.0
    value = bounds[b] + inside * (bounds[b + 1] - bounds[b])
    return float(np.clip(value, low, high))


def training_climate(
    source: FieldSource,
    channels: Sequence[str],
    train: tuple[dt.date, dt.date],
    *,
    valid_times: np.ndarray | None = None,
    quantile: float = 0.99,
    window_days: int = WINDOW_DAYS,
    min_days: int = MIN_DAYS_FOR_DAY_OF_YEAR,
    chunk: int = 64,
) -> TrainingClimate:
    """Climatology and per-channel percentiles of the training period, in one pass.

    Parameters
    ----------
    source
        A training store, or a store-like DataArray with dims (time, channel, latitude,
        longitude) (tests, notebooks).
    channels
        Channels to summarise.
    train
        Training period (first day, last day), inclusive.
    valid_times
        Times the climatology will be asked for: the day-of-year climatology keeps only their
        (day, hour) keys, so its memory is that of the evaluation, not of a whole year.
    quantile
        Quantile of the extreme-value thresholds.
    window_days
        Half-width of the day-of-year window.
    min_days
        Shortest training period for the day-of-year climatology.

    Notes
    -----
    Memory: float64 sums of (day, hour) bins plus the climatology itself, each about
    (keys) × C × H × W; the training period is read ``chunk`` times at a time.

    Raises
    ------
    AirCastError
        When the training period holds no data.
    """
    start, end = train
    method: ClimatologyMethod = (
        "day_of_year_hour" if (end - start).days + 1 >= min_days else "hour_of_day"
    )
    times = _times(source, start, end)
    if not times.size:
        raise AirCastError(
            f"the training period {start}..{end} holds no data in the store: the climatology "
            "and the extreme thresholds come from it; build the store for the whole recipe"
        )
    scale = _scale(source, channels, times, chunk)
    key_doy, key_hour = _keys(method, times, valid_times)
    # Two stages, so that each training time is added once: sums per (day of year, hour) bin
    # of the training times, then each key's mean over the bins of its window (at most
    # 2 * window_days + 1 of them), instead of adding every time to each of its ~31 keys.
    by_day = method == "day_of_year_hour"
    hours, doys = hour_and_day_of_year(times)
    time_bins = np.stack([doys if by_day else np.zeros(times.size, np.int64), hours], axis=1)
    bins, bin_of_time = np.unique(time_bins, axis=0, return_inverse=True)
    bin_of_time = bin_of_time.ravel()
    feeds = bins[:, 1][:, None] == key_hour[None, :]  # (n_bins, K): bin b feeds key k
    if by_day:
        gap = np.abs(bins[:, 0][:, None] - key_doy[None, :]).astype(np.float64)
        feeds &= np.minimum(gap, _YEAR_DAYS - gap) <= window_days
    used = np.flatnonzero(feeds.any(axis=1))
    slot = np.full(bins.shape[0], -1)
    slot[used] = np.arange(used.size)
    edges = np.arange(-Z_RANGE, Z_RANGE + Z_BIN / 2, Z_BIN)
    n_c = len(channels)
    histogram = np.zeros((n_c, edges.size + 1), np.int64)
    low, high = np.full(n_c, np.inf), np.full(n_c, -np.inf)
    sums: np.ndarray | None = None
    counts: np.ndarray | None = None
    n_times = np.zeros(used.size, np.int64)
    done = 0
    for part, values in _chunks(source, channels, times, chunk):
        if sums is None or counts is None:
            sums = np.zeros((used.size, *values.shape[1:]))
            counts = np.zeros((used.size, *values.shape[1:]))
        slots = slot[bin_of_time[done : done + part.size]]
        done += part.size
        finite = np.isfinite(values)
        filled = np.where(finite, values, 0.0)
        for s_ in np.unique(slots[slots >= 0]):
            rows = slots == s_
            sums[s_] += filled[rows].sum(axis=0)
            counts[s_] += finite[rows].sum(axis=0)
            n_times[s_] += int(rows.sum())
        z = scale.forward(values)
        for c in range(n_c):
            zc = z[:, c][np.isfinite(z[:, c])]
            if zc.size:
                histogram[c] += np.bincount(
                    np.searchsorted(edges, zc, side="right"), minlength=edges.size + 1
                )
                low[c], high[c] = min(low[c], zc.min()), max(high[c], zc.max())
    assert sums is not None and counts is not None  # times is not empty
    values = np.full((key_doy.size, *sums.shape[1:]), np.nan)
    behind = np.zeros(key_doy.size, np.int64)
    for k in range(key_doy.size):
        window = slot[feeds[:, k]]
        total, count = sums[window].sum(axis=0), counts[window].sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            values[k] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        behind[k] = int(n_times[window].sum())
    quantiles = np.array(
        [
            _quantile_from_histogram(histogram[c], edges, low[c], high[c], quantile)
            for c in range(n_c)
        ]
    )
    climatology = Climatology(
        method,
        tuple(channels),
        key_doy.astype(np.int64),
        key_hour.astype(np.int64),
        values,
        behind,
        window_days if method == "day_of_year_hour" else 0,
        (start, end),
    )
    return TrainingClimate(climatology, quantile, scale.inverse(quantiles))


# ---------------------------------------------------------------------------------------------
# The CAMS global forecast


@dataclass(frozen=True)
class CamsForecast:
    """The CAMS forecasts of a range of 00 UTC runs, read from the raw cache day by day on
    demand.

    Attributes
    ----------
    channels
        The channels it provides (pollutants the product offers).
    grid
        The store's grid.
    lead_hours
        Leads ingested (0, 3, … ``ingest.forecast_lead_hours``).
    runs
        The run days of which the data store delivered at least one file.
    note
        What happened (for the scorecard's attributes).
    config
        The recipe whose raw cache holds the runs (None when there are none).
    """

    channels: tuple[str, ...]
    grid: TargetGrid
    lead_hours: tuple[int, ...]
    runs: tuple[dt.date, ...] = ()
    note: str = ""
    config: AirCastConfig | None = None

    @property
    def available(self) -> bool:
        return bool(self.runs) and bool(self.channels)

    def fields(self, init_times: np.ndarray, lead_hours: Sequence[int]) -> np.ndarray:
        """The forecasts of the 00 UTC runs at ``init_times`` (datetime64, shape (B,)).

        Returns
        -------
        numpy.ndarray
            float32 (B, L, C, H, W) in ``channels`` order, store units; NaN for a run, lead or
            channel that was not delivered.
        """
        out = np.full(
            (len(init_times), len(lead_hours), len(self.channels), *self.grid.shape),
            np.nan,
            np.float32,
        )
        if self.config is None:
            return out
        cache = raw_cache(self.config)
        for b, t in enumerate(np.asarray(init_times)):
            day = dt.date.fromisoformat(str(np.datetime64(t, "D")))
            if day not in self.runs or hour_and_day_of_year(np.asarray([t]))[0][0] != 0:
                continue
            run = CAMS_FORECAST_SOURCE.run(
                self.config, cache, day, self.grid, self.channels, lead_hours
            )
            out[b] = run.values
        return out


#: How a scorecard gets its CAMS forecast baseline: (first day, last day, the model's target
#: channels, the store's grid) → the runs of those days (00 UTC). The evaluate job
#: (:mod:`aircast.jobs.evaluate`) fetches them; evaluation itself never talks to a data store.
CamsProvider = Callable[[dt.date, dt.date, Sequence[str], TargetGrid], "CamsForecast"]


def cams_forecast_leads(config: AirCastConfig) -> tuple[int, ...]:
    """The leads (hours) of the CAMS forecast runs the recipe ingests."""
    return tuple(range(0, config.ingest.forecast_lead_hours + 1, STEP_HOURS))


def cams_forecast_unavailable(
    config: AirCastConfig, channels: Sequence[str], grid: TargetGrid, why: str
) -> CamsForecast:
    """A CAMS baseline left out of a scorecard, saying why (the scorecard is still written)."""
    return CamsForecast(cams_channels(channels), grid, cams_forecast_leads(config), note=why)


def cams_forecast_from(
    config: AirCastConfig,
    report: FetchReport,
    first: dt.date,
    last: dt.date,
    channels: Sequence[str],
    grid: TargetGrid,
) -> CamsForecast:
    """The CAMS forecast runs of ``first``..``last`` (00 UTC) that an ingestion brought into
    the recipe's raw cache (``report``), as a baseline read through the source.

    Runs whose requests failed are left out, and the note says so.
    """
    provided = cams_channels(channels)
    leads = cams_forecast_leads(config)
    if not provided:
        return CamsForecast(provided, grid, leads, note="no channel that CAMS forecasts")
    runs = sorted(
        {
            result.request.day
            for result in report.results
            if result.path is not None and result.outcome != "failed"
        }
    )
    failed = report.failed
    note = f"{len(runs)} runs {first}..{last} 00 UTC, leads to {leads[-1]} h"
    if failed:
        note += f"; {len(failed)} requests failed: " + "; ".join(
            f"{r.request.label} ({r.error})" for r in failed[:3]
        )
    LOG.info("CAMS forecast: %s", report.summary())
    return CamsForecast(provided, grid, leads, tuple(runs), note, config)
