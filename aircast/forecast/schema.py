"""The forecast store (schema version 1): AirCast's public product, as readers find it.

This module is the contract that the writer (:mod:`aircast.forecast.publish`) and the reader
(:mod:`aircast.forecast.reader`) share: names, attributes, the schema version, and the
committed state read from the root ``zarr.json``. How a publish keeps it atomic and
idempotent is told in :mod:`aircast.forecast.publish`.

The contract
------------
One Zarr (format 3) group at a local path or any fsspec URL, readable with plain
``xarray.open_zarr(url)`` through its consolidated metadata. Times are tz-naive UTC.

``<channel> [init_time, lead_time, latitude, longitude]``
    float32, one array per published channel, named as the training store names channels
    (``t2m``, ``pm2p5``, ``go3_925``). Published units: particulate matter in µg m-3
    (``aircast.align.units``), every other channel in the training store's units. CF
    attributes ``units``, ``long_name``, ``standard_name`` (where the vocabulary has one) and
    ``coordinates``; ``aircast_channel``, and ``pressure_level_hpa`` for pressure-level
    channels. Fill value NaN, but every published value is finite.
``init_time [init_time]``
    int64 ``hours since 1970-01-01 00:00:00``: the forecasts' initial times, **in publication
    order** (a backfill appends older inits after newer ones); readers sort.
``lead_time [lead_time]``
    int64 hours, decoded by xarray as timedelta64 (``0, 3, … 72 h``); fixed by the first
    publish.
``valid_time [init_time, lead_time]``
    int64 hours since 1970-01-01: ``init_time + lead_time``.
``latitude [latitude]``, ``longitude [longitude]``
    float64 degrees; latitude north to south, longitude ascending within [-180, 180).
``provenance [init_time]``
    One JSON object per init (sorted keys): ``checkpoint_sha256``, ``input_request_ids``,
    ``input_source``, ``code_version``, ``created``, ``init_time``, ``content_sha256`` (the
    sha256 of the published values, see :func:`content_sha256`) and whatever else the
    caller's run carried.

Root attributes: ``aircast_store`` (``"forecast"``), ``aircast_forecast_schema_version``
(:data:`FORECAST_SCHEMA_VERSION`), ``Conventions`` (``CF-1.10``), ``title``, ``source``,
``grid`` (resolution, edges, shape), ``lead_hours``, ``variables`` (the channels, in array
creation order), ``complete_inits`` (N) and, last, ``latest_complete_init_time`` (ISO, the
latest of the complete inits; null before the first).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import AsyncGroup
from zarr.core.sync import sync
from zarr.storage import StorePath

import aircast
from aircast.errors import AirCastError
from aircast.store import coordinates
from aircast.store.coordinates import Coordinate
from aircast.vocab import Channel, LevelType

FORECAST_SCHEMA_VERSION: int = 1
STORE_KIND = "forecast"

# ---- names
INIT_TIME = "init_time"
LEAD_TIME = "lead_time"
LATITUDE = coordinates.LATITUDE
LONGITUDE = coordinates.LONGITUDE
VALID_TIME = "valid_time"
PROVENANCE = "provenance"
#: Arrays other than the variables; a channel may not take one of these names.
COORDINATES = (INIT_TIME, LEAD_TIME, LATITUDE, LONGITUDE, VALID_TIME, PROVENANCE)
#: Arrays with an ``init_time`` dimension besides the variables.
INIT_COORDINATES = (INIT_TIME, VALID_TIME, PROVENANCE)
DATA_DIMS = (INIT_TIME, LEAD_TIME, LATITUDE, LONGITUDE)

REQUIRED_PROVENANCE = ("checkpoint_sha256", "input_request_ids", "input_source")
TITLE = "AirCast forecast of air quality and weather"


class ForecastStoreError(AirCastError, ValueError):
    """A forecast store that cannot be read or written: missing, foreign, or another schema."""


# ---------------------------------------------------------------------------------------------
# the committed state, shared by the writer and the reader


@dataclass(frozen=True)
class Committed:
    """The store as readers see it: one read of the root ``zarr.json``.

    ``group`` is built from that one document, so every array it gives has the committed
    shape, whatever a crashed publish did to the arrays' own metadata.
    """

    url: str
    attrs: dict[str, Any]
    group: zarr.Group
    n_inits: int

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(self.attrs["variables"])

    @property
    def lead_hours(self) -> tuple[int, ...]:
        return tuple(int(h) for h in self.attrs["lead_hours"])

    def array(self, name: str) -> zarr.Array:
        """The committed array ``name``."""
        return get_array(self.group, name)

    def init_times(self) -> np.ndarray:
        """Complete inits in publication order, datetime64[ns]."""
        if self.n_inits == 0:
            return np.empty(0, "datetime64[ns]")
        return decode_hours(np.asarray(self.array(INIT_TIME)[:]))


def read_root(store: Any) -> dict[str, Any] | None:
    """The root ``zarr.json`` as JSON, or None when there is none."""
    try:
        buffer = sync(store.get("zarr.json", prototype=default_buffer_prototype()))
    except FileNotFoundError:  # a read-only local store whose directory does not exist
        return None
    if buffer is None:
        return None
    document: dict[str, Any] = json.loads(buffer.to_bytes())
    return document


def check_root(url: str, root: Mapping[str, Any], *, action: str) -> None:
    """Refuse a root ``zarr.json`` that is not an AirCast forecast store of this schema."""
    attrs = root.get("attributes") or {}
    if root.get("node_type") != "group" or attrs.get("aircast_store") != STORE_KIND:
        raise ForecastStoreError(
            f"{url} holds a Zarr node that is not an AirCast forecast store "
            f"(aircast_store={attrs.get('aircast_store')!r}); cannot {action} it — use the URL of "
            "a forecast store, or an empty location for a new one"
        )
    found = attrs.get("aircast_forecast_schema_version")
    if found != FORECAST_SCHEMA_VERSION:
        raise ForecastStoreError(
            f"{url} is a forecast store of schema version {found!r}, but this AirCast "
            f"({aircast.__version__}) reads and writes schema version "
            f"{FORECAST_SCHEMA_VERSION}; cannot {action} it — use the AirCast version that "
            "wrote it, or publish to a new store URL"
        )


def committed(url: str, store: Any, root: Mapping[str, Any]) -> Committed | None:
    """The committed state from a checked root document; None while the store is being
    created (no consolidated metadata yet: nothing was ever committed)."""
    consolidated = root.get("consolidated_metadata")
    if not consolidated or INIT_TIME not in (consolidated.get("metadata") or {}):
        return None
    group = zarr.Group(AsyncGroup.from_dict(StorePath(store), dict(root)))
    n_inits = int(get_array(group, INIT_TIME).shape[0])
    attrs = dict(root["attributes"])
    if attrs.get("complete_inits") != n_inits:
        raise ForecastStoreError(
            f"{url}: the root attributes say {attrs.get('complete_inits')} complete inits but "
            f"the committed init_time axis has {n_inits}; the store was changed by something "
            "other than publish_forecast — publish to a new store URL"
        )
    return Committed(url=url, attrs=attrs, group=group, n_inits=n_inits)


def decode_hours(hours: np.ndarray) -> np.ndarray:
    """int64 hours since 1970-01-01 → datetime64[ns], shape unchanged."""
    return np.asarray(hours, np.int64).astype("datetime64[h]").astype("datetime64[ns]")


def encode_hours(times: np.ndarray | np.datetime64) -> np.ndarray:
    """datetime64 (whole hours) → int64 hours since 1970-01-01, shape unchanged."""
    return np.asarray(times, "datetime64[ns]").astype("datetime64[h]").astype(np.int64)


def iso(time_: Any) -> str:
    """``2019-06-01T00:00:00`` (tz-naive UTC) for a datetime64."""
    seconds: Any = np.datetime64(time_, "s")
    return str(seconds)


def get_array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of the store's ``group`` (ForecastStoreError if it is a group)."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise ForecastStoreError(f"{name!r} of the forecast store is a group, not an array")
    return node


def content_sha256(
    init_time: np.datetime64,
    lead_hours: Sequence[int],
    latitudes: np.ndarray,
    longitudes: np.ndarray,
    values: Mapping[str, np.ndarray],
) -> str:
    """sha256 of what readers get for one init: time, leads, grid and published values.

    Channels are hashed in name order (little-endian float32, C order), so the hash does not
    depend on the order a run lists them in; provenance is not part of it.
    """
    digest = hashlib.sha256()
    header = {"init_time": iso(init_time), "lead_hours": [int(h) for h in lead_hours]}
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(latitudes, "<f8").tobytes())
    digest.update(np.ascontiguousarray(longitudes, "<f8").tobytes())
    for name in sorted(values):
        digest.update(name.encode() + b"\0")
        digest.update(np.ascontiguousarray(values[name], "<f4").tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# attributes and coordinates


def grid_attrs(latitudes: np.ndarray, longitudes: np.ndarray) -> dict[str, Any]:
    """The root attribute ``grid``: resolution, edges and shape of the cell centres."""
    steps = np.concatenate([-np.diff(latitudes), np.diff(longitudes)])
    resolution = float(steps[0]) if steps.size and np.allclose(steps, steps[0]) else None
    return {
        "resolution": resolution,
        "north": float(latitudes[0]),
        "south": float(latitudes[-1]),
        "west": float(longitudes[0]),
        "east": float(longitudes[-1]),
        "shape": [int(latitudes.size), int(longitudes.size)],
        "description": "cell centres; latitude north to south, longitude ascending",
    }


def root_attrs(
    *,
    latitudes: np.ndarray,
    longitudes: np.ndarray,
    lead_hours: Sequence[int],
    variables: Sequence[str],
    n_inits: int,
    latest: np.datetime64 | None,
) -> dict[str, Any]:
    """The root attributes of a store of ``variables`` on this grid and these leads, with
    ``n_inits`` complete inits, the latest at ``latest`` (None before the first)."""
    return {
        "aircast_store": STORE_KIND,
        "aircast_forecast_schema_version": FORECAST_SCHEMA_VERSION,
        "Conventions": "CF-1.10",
        "title": TITLE,
        "source": "AirCast forecaster (ERA5 weather and CAMS composition); per-init "
        "provenance in the provenance variable",
        "grid": grid_attrs(latitudes, longitudes),
        "lead_hours": list(lead_hours),
        "variables": list(variables),
        "complete_inits": n_inits,
        # the commit marker: last key of the attributes, written in the same put as the shapes
        "latest_complete_init_time": None if latest is None else iso(latest),
    }


def variable_attrs(channel: Channel, units: str) -> dict[str, Any]:
    """The CF and AirCast attributes of a published channel's array, in ``units``."""
    spec = channel.spec
    long_name = spec.long_name
    attrs: dict[str, Any] = {"units": units}
    if spec.level_type is LevelType.PRESSURE:
        long_name = f"{long_name} at {channel.level} hPa"
    attrs["long_name"] = long_name
    if spec.standard_name:
        attrs["standard_name"] = spec.standard_name
    attrs["aircast_channel"] = channel.name
    if channel.level is not None:
        attrs["pressure_level_hpa"] = channel.level
    attrs["coordinates"] = f"{VALID_TIME} {PROVENANCE}"
    return attrs


def coordinate_arrays(
    lead_hours: Sequence[int], latitudes: np.ndarray, longitudes: np.ndarray
) -> list[Coordinate]:
    """The store's coordinate arrays as its creation writes them.

    The arrays along ``init_time`` start empty and grow by one init per publish; ``lead_time``,
    ``latitude`` and ``longitude`` are whole, one chunk each.
    """
    n_leads = len(lead_hours)
    return [
        Coordinate(
            INIT_TIME,
            (INIT_TIME,),
            coordinates.time_attrs("forecast_reference_time", "initial time of the forecast (UTC)"),
            shape=(0,),
            dtype=np.int64,
            chunks=(1,),
            fill_value=0,
        ),
        Coordinate(
            LEAD_TIME,
            (LEAD_TIME,),
            {
                "units": "hours",
                # xarray's own marker: decode as timedelta64, not as a number of hours
                "dtype": "timedelta64[ns]",
                "standard_name": "forecast_period",
                "long_name": "lead time (time since the initial time)",
            },
            np.asarray(lead_hours, np.int64),
            dtype=np.int64,
            chunks=(n_leads,),
            fill_value=0,
        ),
        Coordinate(
            VALID_TIME,
            (INIT_TIME, LEAD_TIME),
            coordinates.time_attrs("time", "valid time of the forecast (UTC)"),
            shape=(0, n_leads),
            dtype=np.int64,
            chunks=(1, n_leads),
            fill_value=0,
        ),
        Coordinate(
            PROVENANCE,
            (INIT_TIME,),
            {"long_name": "provenance of each init (JSON): checkpoint, inputs, code, content hash"},
            shape=(0,),
            dtype=str,
            chunks=(1,),
            fill_value="",
        ),
        coordinates.latitude(latitudes, fill_value=np.nan, long_name=LATITUDE),
        coordinates.longitude(longitudes, fill_value=np.nan, long_name=LONGITUDE),
    ]
