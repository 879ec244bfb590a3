"""The diurnal climatology the forecaster's baseline is built on (:class:`DiurnalMean`).

The mean of each target channel by hour of day over the *training period* of the store, in
the model's normalised space (log space for heavy-tailed channels), per grid cell. It is
computed once when a model is built, in one pass of ``chunk`` times at a time (memory: two
float64 arrays of hours × channels × grid), and then lives in the model as buffers, so every
checkpoint carries the climatology it was trained with.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from aircast.align.time import hour_and_day_of_year
from aircast.errors import AirCastError
from aircast.model.forecaster import DiurnalMean
from aircast.model.normaliser import Normaliser
from aircast.store.reader import TrainingStore

LOG = logging.getLogger(__name__)


def diurnal_mean(
    store: TrainingStore,
    channels: Sequence[str],
    period: tuple[dt.date, dt.date],
    normaliser: Normaliser,
    *,
    chunk: int = 64,
) -> DiurnalMean:
    """Mean normalised state of ``channels`` by hour of day over ``period`` (inclusive).

    Parameters
    ----------
    normaliser
        Statistics of at least ``channels`` (the model's).
    chunk
        Times read at once (a long pass logs its progress about every 10 %).

    Raises
    ------
    AirCastError
        When the period holds no data in the store.
    """
    start, end = period
    axis = store.times
    first = np.datetime64(start.isoformat(), "ns")
    stop = np.datetime64((end + dt.timedelta(days=1)).isoformat(), "ns")
    times = axis[(axis >= first) & (axis < stop)]
    times = times[store.available(times)] if times.size else times
    if not times.size:
        raise AirCastError(
            f"the training period {start}..{end} holds no data in {store.url}: the model's "
            "climatology comes from it; build the store for the whole recipe"
        )
    norm = normaliser.subset(channels)
    hour_of_time, _ = hour_and_day_of_year(times)
    hours = np.unique(hour_of_time)
    n_lat, n_lon = store.ds.sizes["latitude"], store.ds.sizes["longitude"]
    shape = (hours.size, len(channels), n_lat, n_lon)
    sums = torch.zeros(shape, dtype=torch.float64)
    counts = torch.zeros(shape, dtype=torch.float64)
    slot_of_time = torch.from_numpy(np.searchsorted(hours, hour_of_time))
    began, reported = time.monotonic(), 0
    for i in range(0, times.size, chunk):
        part = store.read(times[i : i + chunk]).sel(channel=list(channels))
        with torch.no_grad():
            z = norm.normalise(torch.from_numpy(np.asarray(part.values, dtype=np.float32)))
        finite = torch.isfinite(z)
        slots = slot_of_time[i : i + chunk]
        sums.index_add_(0, slots, torch.where(finite, z, 0.0).double())
        counts.index_add_(0, slots, finite.double())
        done = min(i + chunk, times.size)
        if done * 10 // times.size > reported and times.size > 10 * chunk:
            reported = done * 10 // times.size
            LOG.info(
                "climatology: %d/%d training times (%.0f s)",
                done,
                times.size,
                time.monotonic() - began,
            )
    # a cell never valid at an hour gets the channel's training mean (0 in normalised space)
    mean = torch.where(counts > 0, sums / counts.clamp(min=1), 0.0).float()
    return DiurnalMean(torch.from_numpy(hours), mean)
