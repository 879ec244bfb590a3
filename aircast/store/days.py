"""Loading days for the training store: sources → grid → the store's time axis → channels.

The raw inputs of a span (:mod:`aircast.store.inputs`) that the stores delivered are read onto
the target grid by their sources (:meth:`aircast.sources.base.DataSource.read`: each file
decoded and regridded conservatively on its own), aligned to the three-hourly axis by
timestamp and stacked in store channel order. A time is missing when any channel lacks it;
a delivered value that is not finite after regridding is an error, never a silent hole.

Before anything is read, inputs that could not be fetched stop the load unless holes are
accepted (:func:`aircast.store.inputs.require_no_holes`), and every delivered file's sha256 is
checked against the manifest (:func:`aircast.store.inputs.require_intact`), so a file damaged
on disk since it was fetched never reaches the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from aircast.align.time import align_time, axis_times, covered_times
from aircast.sources.ingest import raw_cache
from aircast.sources.registry import get_source
from aircast.store.inputs import (
    TRAINING_SOURCES,
    RawInput,
    inputs_digest,
    raw_inputs,
    require_intact,
    require_no_holes,
)
from aircast.store.layout import Layout
from aircast.store.schema import StoreError, iso_hour


class StoreBuildError(StoreError):
    """Delivered data that cannot go into the store (non-finite values, no training data)."""


@dataclass(frozen=True)
class LoadedDays:
    """Aligned fields of a range of days.

    Attributes
    ----------
    times
        datetime64[ns], shape (n,).
    values
        float32, shape (n, n_channels, n_lat, n_lon), NaN at missing times.
    missing
        bool, shape (n,).
    notes
        Why inputs were missing (for the log).
    reasons
        Why each missing time is missing, parallel to ``times[missing]``: the reasons of the
        undelivered inputs of its day (``no data at the store: …``, ``fetch failed: …``).
    digest
        :func:`aircast.store.inputs.inputs_digest` of the inputs.
    """

    times: np.ndarray
    values: np.ndarray
    missing: np.ndarray
    notes: tuple[str, ...]
    digest: str
    reasons: tuple[str, ...] = ()


def load_days(
    layout: Layout, first: dt.date, last: dt.date, *, accept_holes: bool = False
) -> LoadedDays:
    """Read the raw inputs of days ``first``..``last`` onto the grid (through their sources),
    align them to the store's axis and stack the channels.

    Parameters
    ----------
    accept_holes
        Let inputs that could not be fetched become missing times instead of stopping.

    Raises
    ------
    HolesError
        When inputs could not be fetched (and ``accept_holes`` is False).
    DamagedInputError
        When a cached file's bytes are not those the manifest recorded (it is quarantined).
    """
    times = axis_times(first, last)
    cache = raw_cache(layout.config)
    inputs = raw_inputs(layout, cache, first, last)
    if not accept_holes:
        require_no_holes(layout, cache, inputs)
    require_intact(cache, inputs)
    delivered = [item.request for item in inputs if item.path is not None]
    # dataset id → variable → its values on the grid, over the span
    fields: dict[str, Mapping[str, xr.DataArray]] = {}
    for name in TRAINING_SOURCES:
        source = get_source(name)
        mine = [r for r in delivered if r.dataset in source.datasets]
        variables = source.read(cache, mine, layout.grid).variables
        fields.update((dataset, variables) for dataset in source.datasets)
    n_lat, n_lon = layout.grid.shape
    values = np.full((times.size, len(layout.channels), n_lat, n_lon), np.nan, np.float32)
    available = np.ones(times.size, dtype=bool)
    per_channel: list[xr.Dataset] = []
    for channel, dataset in zip(layout.channels, layout.sources, strict=True):
        da = fields[dataset].get(channel.variable)
        if da is None:
            available[:] = False
            per_channel.append(xr.Dataset())
            continue
        if channel.level is not None:
            da = da.sel(level=channel.level, drop=True)
        single = xr.Dataset({channel.variable: da})
        available &= covered_times(single, times)
        per_channel.append(single)
    if available.any():
        for index, (channel, single) in enumerate(zip(layout.channels, per_channel, strict=True)):
            aligned = align_time(single, times[available])[channel.variable]
            values[available, index] = aligned.transpose("time", "latitude", "longitude").values
        _require_finite(layout, times[available], values[available])
    notes = tuple(f"{i.request.label}: {i.note}" for i in inputs if i.path is None)
    missing = ~available
    reasons = missing_reasons(times[missing], inputs)
    return LoadedDays(times, values, missing, notes, inputs_digest(inputs), reasons)


def missing_reasons(times: np.ndarray, inputs: list[RawInput]) -> tuple[str, ...]:
    """Why each of the missing ``times`` is missing: the reasons of the undelivered inputs of
    its day, else (00 UTC, whose three-hour amounts need the previous day's last hours) of the
    day before, joined by ``"; "``."""
    by_day: dict[dt.date, list[str]] = {}
    for item in inputs:
        if item.path is None:
            by_day.setdefault(item.request.day, []).append(item.reason)
    out = []
    for time in times.astype("datetime64[h]"):
        day = time.astype("datetime64[D]").astype(dt.date)
        found = by_day.get(day) or []
        if not found and time == time.astype("datetime64[D]"):
            found = by_day.get(day - dt.timedelta(days=1), [])
        out.append("; ".join(found) if found else "no input delivered this time")
    return tuple(out)


def _require_finite(layout: Layout, times: np.ndarray, values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    t, c = (int(i[0]) for i in np.nonzero(bad.any(axis=(2, 3))))
    raise StoreBuildError(
        f"channel {layout.channels[c].name} at {iso_hour(times[t])} has "
        f"{int(bad[t, c].sum())} non-finite values after regridding although its input was "
        "delivered; the raw file holds gaps: check it with aircast.sources.decode, delete it "
        "from the raw cache and ingest that day again"
    )
