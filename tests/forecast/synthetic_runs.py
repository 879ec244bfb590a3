"""Synthetic forecast runs for the forecast-store tests (imported from this folder only).

The values of a run are a deterministic function of its init (:func:`published_value`), so any
reader can check that what it sees is whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aircast.forecast.publish import ForecastRun

LATS = np.array([12.0, 11.25, 10.5, 9.75])  # north → south
LONS = np.array([-1.5, -0.75, 0.0, 0.75, 1.5])
CHANNELS = ("t2m", "pm2p5", "pm10", "go3_925")
LEADS = tuple(range(0, 13, 3))
CREATED = "2019-06-01T06:30:00"
EPOCH = np.datetime64("2019-01-01T00", "ns")
#: store units → published units (PM: kg m-3 → µg m-3)
FACTOR = {"pm1": 1e9, "pm2p5": 1e9, "pm10": 1e9}


def published_value(
    init: np.datetime64,
    leads: Sequence[int] = LEADS,
    channels: Sequence[str] = CHANNELS,
    lats: np.ndarray = LATS,
    lons: np.ndarray = LONS,
    offset: float = 0.0,
) -> np.ndarray:
    """The published values of the test run of ``init``: (lead, channel, lat, lon), float64.

    Distinct for every init (0.5 per day), lead, channel, and cell, and positive."""
    day = float((np.datetime64(init, "ns") - EPOCH) / np.timedelta64(1, "D"))
    lead = np.asarray(leads, np.float64)[:, None, None, None]
    channel = np.arange(len(channels), dtype=np.float64)[None, :, None, None]
    y = np.arange(lats.size, dtype=np.float64)[None, None, :, None]
    x = np.arange(lons.size, dtype=np.float64)[None, None, None, :]
    return 1 + day * 0.5 + lead * 0.01 + channel * 100 + y * 0.1 + x * 0.001 + offset


def make_run(
    init: str | np.datetime64,
    *,
    leads: Sequence[int] = LEADS,
    channels: Sequence[str] = CHANNELS,
    lats: np.ndarray = LATS,
    lons: np.ndarray = LONS,
    offset: float = 0.0,
    created: str | None = CREATED,
    **provenance: Any,
) -> ForecastRun:
    """The test run of ``init``, in training-store units (PM in kg m-3)."""
    init_time = np.datetime64(init, "ns")
    values = published_value(init_time, leads, channels, lats, lons, offset)
    for i, name in enumerate(channels):
        values[:, i] /= FACTOR.get(name, 1.0)
    day = str(np.datetime64(init_time, "D"))
    record: dict[str, Any] = {
        "checkpoint_sha256": "c" * 64,
        "input_request_ids": [f"req-{day}-a", f"req-{day}-b"],
        "input_source": f"cams-global-atmospheric-composition-forecasts {day} 00 UTC lead 0",
        **({} if created is None else {"created": created}),
        **provenance,
    }
    return ForecastRun(
        init_time=init_time,
        lead_hours=tuple(leads),
        channels=tuple(channels),
        values=values.astype(np.float32),
        latitudes=lats,
        longitudes=lons,
        provenance=record,
    )
