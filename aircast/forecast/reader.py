"""Reading the published forecast store.

:func:`open_forecast` reads the store's root ``zarr.json`` **once** and serves everything from
that snapshot: the complete inits, their metadata and the lazy dataset all agree, even while a
publisher appends the next init (the contract is in :mod:`aircast.forecast.schema`, why
readers never see a half-written init in :mod:`aircast.forecast.publish`). Plain
``xarray.open_zarr(url)`` reads the same consolidated metadata and shows the same complete
inits, in publication order; this reader sorts them by ``init_time`` and adds the usual
questions: one init's forecast, a point's time series, a map at one lead, an init's
provenance.

Example
-------
>>> import aircast
>>> store = aircast.open_forecast("s3://bucket/forecast.zarr")  # doctest: +SKIP
>>> store.point(28.6, 77.2, variables=["pm2p5"])["pm2p5"]  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import xarray as xr

from aircast.forecast.schema import (
    INIT_TIME,
    LATITUDE,
    LONGITUDE,
    PROVENANCE,
    Committed,
    ForecastStoreError,
    check_root,
    committed,
    iso,
    read_root,
)
from aircast.store import location
from aircast.store.integrity import (
    DECODE_ERRORS,
    bad_chunks_among,
    chunks_of_first_axis,
    corrupt_chunks,
)

InitLike = str | np.datetime64 | dt.datetime | None


class ForecastQueryError(ForecastStoreError):
    """A question the store cannot answer: an init, variable, lead or place it does not hold."""


def open_forecast(url: str, *, storage_options: Mapping[str, Any] | None = None) -> ForecastStore:
    """Open the forecast store at ``url`` for reading.

    Parameters
    ----------
    url
        Local path, ``file://`` or fsspec URL (``s3://bucket/forecast.zarr``).
    storage_options
        fsspec options for a remote URL (credentials come from the environment).

    Raises
    ------
    ForecastStoreError
        When there is no store at ``url``, no complete init in it yet, something else is
        there, or a forecast store of another schema version.
    """
    store = location.zarr_store(url, storage_options, read_only=True)
    root = read_root(store)
    if root is None:
        raise ForecastStoreError(
            f"no forecast store at {url}; check the URL (forecast.url of the recipe) — the "
            "first publish_forecast creates it"
        )
    check_root(url, root, action="open")
    state = committed(url, store, root)
    if state is None or state.n_inits == 0:
        raise ForecastStoreError(
            f"no forecast is published in {url} yet (no init is complete); open it after the "
            "first publish_forecast has finished"
        )
    return ForecastStore(state, storage_options)


class ForecastStore:
    """A snapshot of a published forecast store: its complete inits, sorted by init_time.

    Use :func:`open_forecast` to make one; open again to see inits published since.

    Attributes
    ----------
    url
        Where the store lives.
    attrs
        The store's root attributes (grid, leads, schema version, …).
    init_times
        The complete inits, sorted, datetime64[ns].
    variables
        The published channels (``t2m``, ``pm2p5``, ``go3_925``), in store order.
    lead_hours
        The leads every init holds, in hours.
    """

    def __init__(self, state: Committed, storage_options: Mapping[str, Any] | None = None):
        self._state = state
        self.url = state.url
        self.storage_options = dict(storage_options or {})
        self.attrs: dict[str, Any] = dict(state.attrs)
        published = state.init_times()
        # stable sort: publication order breaks no tie, since an init is published once
        self._order = np.argsort(published, kind="stable")
        self.init_times: np.ndarray = published[self._order]
        self.variables: tuple[str, ...] = state.variables
        self.lead_hours: tuple[int, ...] = state.lead_hours

    def __repr__(self) -> str:
        return (
            f"ForecastStore({self.url!r}: {self.init_times.size} inits "
            f"{iso(self.init_times[0])} .. {iso(self.init_times[-1])}, "
            f"leads {self.lead_hours[0]}-{self.lead_hours[-1]} h, "
            f"variables {', '.join(self.variables)})"
        )

    @property
    def latest_init_time(self) -> np.datetime64:
        """The latest complete init, datetime64[ns]."""
        return np.datetime64(self.init_times[-1], "ns")

    @cached_property
    def dataset(self) -> xr.Dataset:
        """Every complete init, sorted by init_time, read lazily (nothing is loaded until
        asked for): ``(init_time, lead_time, latitude, longitude)`` per variable, with the
        ``valid_time`` and ``provenance`` coordinates."""
        # the snapshot's group, not the URL: opening the URL again could see a later commit
        backend = xr.backends.ZarrStore(self._state.group, mode="r")
        ds = xr.open_dataset(backend, chunks=None)
        ds = ds[list(self.variables)]
        return ds.isel({INIT_TIME: self._order})

    # ---- questions

    def forecast(self, init_time: InitLike = None) -> xr.Dataset:
        """One init's forecast (the latest if ``init_time`` is None), lazily.

        Returns
        -------
        xarray.Dataset
            ``(lead_time, latitude, longitude)`` per variable, the 1-D ``valid_time``
            coordinate, and ``init_time`` and ``provenance`` as scalar coordinates.
        """
        return self.dataset.isel({INIT_TIME: self._position(init_time)})

    def point(
        self,
        latitude: float,
        longitude: float,
        *,
        init_time: InitLike = None,
        variables: Sequence[str] | None = None,
    ) -> xr.Dataset:
        """The time series over lead_time at the grid cell nearest to a point, loaded.

        Parameters
        ----------
        latitude, longitude
            Degrees; longitude in [-180, 180) or [0, 360).
        init_time
            The init (latest if None).
        variables
            Channels to read (all if None).

        Returns
        -------
        xarray.Dataset
            ``(lead_time,)`` per variable; ``latitude``/``longitude`` are the cell's centre,
            the attributes ``requested_latitude``/``requested_longitude`` the point asked for.

        Raises
        ------
        ForecastQueryError
            For an unknown init or variable, or a point outside the grid.
        """
        names = self._variables(variables)
        i, j = self._cell(latitude, longitude)
        position = self._position(init_time)
        try:
            ds = self.forecast(init_time)[names].isel({LATITUDE: i, LONGITUDE: j}).load()
        except DECODE_ERRORS as exc:
            raise self._decode_failure(position, names, exc) from exc
        ds.attrs = {
            **ds.attrs,
            "requested_latitude": float(latitude),
            "requested_longitude": float(longitude),
        }
        return ds

    def map(self, variable: str, *, lead_hours: int, init_time: InitLike = None) -> xr.DataArray:
        """One variable over the grid at one lead of one init (latest if None), loaded."""
        (name,) = self._variables([variable])
        if int(lead_hours) not in self.lead_hours:
            raise ForecastQueryError(
                f"lead {lead_hours} h is not published in {self.url}; leads: "
                f"{', '.join(str(h) for h in self.lead_hours)} h"
            )
        lead = self.lead_hours.index(int(lead_hours))
        position = self._position(init_time)
        try:
            return self.dataset[name].isel({INIT_TIME: position, "lead_time": lead}).load()
        except DECODE_ERRORS as exc:
            raise self._decode_failure(position, [name], exc) from exc

    def provenance(self, init_time: InitLike = None) -> dict[str, Any]:
        """An init's provenance (latest if None): checkpoint_sha256, input_request_ids,
        input_source, code_version, created, content_sha256, …"""
        position = self._position(init_time)
        index = int(self._order[position])
        try:
            text = self._state.array(PROVENANCE)[index]
        except DECODE_ERRORS as exc:
            raise self._decode_failure(position, [PROVENANCE], exc) from exc
        record: dict[str, Any] = json.loads(str(text))
        return record

    def _decode_failure(self, position: int, names: Sequence[str], exc: Exception) -> Exception:
        """The error for a failed read of init ``position`` (in :attr:`init_times`): the
        damaged chunks of ``names`` at that init, the init and the fix, or ``exc`` itself
        when every chunk decodes."""
        index = int(self._order[position])
        bad = []
        for name in names:
            array = self._state.array(name)
            bad.extend(bad_chunks_among(array, chunks_of_first_axis(array, [index]), self.url))
        if not bad:
            return exc
        return corrupt_chunks(
            f"{self.url} (forecast store)",
            bad,
            f"they hold init {iso(self.init_times[position])}, which cannot be read; a published "
            "init is never rewritten in place: restore those files from a copy of the store, or "
            "republish it into a new store (set forecast.url to a new location and run `aircast "
            "backfill START END --config CONFIG`)",
        )

    # ---- helpers

    def _position(self, init_time: InitLike) -> int:
        """Position of an init in :attr:`init_times` (ForecastQueryError if not published)."""
        if init_time is None:
            return int(self.init_times.size - 1)
        wanted = _as_time(init_time)
        hits = np.flatnonzero(self.init_times == wanted)
        if not hits.size:
            raise ForecastQueryError(
                f"init {iso(wanted)} is not published in {self.url}; published inits: "
                f"{_listing(self.init_times)}"
            )
        return int(hits[0])

    def _variables(self, names: Iterable[str] | None) -> list[str]:
        if names is None:
            return list(self.variables)
        if isinstance(names, str):
            names = [names]
        names = list(names)
        unknown = [n for n in names if n not in self.variables]
        if unknown:
            raise ForecastQueryError(
                f"{', '.join(unknown)} not published in {self.url}; variables: "
                f"{', '.join(self.variables)}"
            )
        return names

    def _cell(self, latitude: float, longitude: float) -> tuple[int, int]:
        """Indices of the cell nearest to a point (ForecastQueryError outside the grid)."""
        lats = np.asarray(self.dataset[LATITUDE].values, np.float64)
        lons = np.asarray(self.dataset[LONGITUDE].values, np.float64)
        if not -90 <= latitude <= 90:
            raise ForecastQueryError(f"latitude {latitude} is not within [-90, 90]")
        # longitudes compared on the circle: 350 and -10 are the same meridian
        dlon = (lons - float(longitude) + 180.0) % 360.0 - 180.0
        i = int(np.argmin(np.abs(lats - latitude)))
        j = int(np.argmin(np.abs(dlon)))
        half = _half_cell(lats, lons, self.attrs.get("grid", {}).get("resolution"))
        if abs(lats[i] - latitude) > half or abs(dlon[j]) > half:
            grid = self.attrs.get("grid", {})
            raise ForecastQueryError(
                f"point ({latitude}, {longitude}) is outside the forecast grid of {self.url} "
                f"({grid.get('south')}..{grid.get('north')}°N, "
                f"{grid.get('west')}..{grid.get('east')}°E, cell centres)"
            )
        return i, j


def _as_time(value: Any) -> np.datetime64:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, str):
        value = value.removesuffix("Z")
    try:
        time_ = np.datetime64(value, "ns")
    except (TypeError, ValueError):
        raise ForecastQueryError(
            f"{value!r} is not a time; give an init as 2019-06-01 or 2019-06-01T00:00"
        ) from None
    if np.isnat(time_):
        raise ForecastQueryError(f"{value!r} is not a time")
    return time_


def _listing(times: np.ndarray, most: int = 10) -> str:
    text = [iso(t).removesuffix(":00:00") for t in times]
    if len(text) <= most:
        return ", ".join(text)
    return f"{', '.join(text[:3])}, …, {', '.join(text[-3:])} ({len(text)} inits)"


def _half_cell(lats: np.ndarray, lons: np.ndarray, resolution: Any) -> float:
    """Half a grid spacing (a little more, for rounding): how far a point may be from the
    nearest cell centre and still lie in the grid."""
    steps = np.abs(np.concatenate([np.diff(lats), np.diff(lons)]))
    if steps.size:
        spacing = float(steps.max())
    elif isinstance(resolution, int | float):
        spacing = float(resolution)
    else:
        spacing = 0.0
    return spacing / 2 * (1 + 1e-9) + 1e-9
