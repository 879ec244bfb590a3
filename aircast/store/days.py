"""Loading days for the training store: sources → grid → the store's time axis → channels.

The raw inputs of a span (:mod:`aircast.store.inputs`) that the stores delivered are read onto
the target grid by their sources (:meth:`aircast.sources.base.DataSource.read`: each file
decoded and regridded conservatively on its own), aligned to the three-hourly axis by
timestamp and stacked in store channel order. A time is missing when any channel lacks it;
a delivered value that is not finite after regridding is an error, never a silent hole.
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
from aircast.store.inputs import TRAINING_SOURCES, inputs_digest, raw_inputs
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
    digest
        :func:`aircast.store.inputs.inputs_digest` of the inputs.
    """

    times: np.ndarray
    values: np.ndarray
    missing: np.ndarray
    notes: tuple[str, ...]
    digest: str


def load_days(layout: Layout, first: dt.date, last: dt.date) -> LoadedDays:
    """Read the raw inputs of days ``first``..``last`` onto the grid (through their sources),
    align them to the store's axis and stack the channels."""
    times = axis_times(first, last)
    cache = raw_cache(layout.config)
    inputs = raw_inputs(layout, cache, first, last)
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
    return LoadedDays(times, values, ~available, notes, inputs_digest(inputs))


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
