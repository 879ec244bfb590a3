"""Reading the training store.

:func:`open_store` checks the store against the contract and gives a :class:`TrainingStore`:
the lazy xarray view (what ``xarray.open_zarr(url)`` gives), its grid, channel metadata,
statistics and histograms as plain arrays, and :meth:`TrainingStore.read`, which refuses a
range that contains a missing time instead of handing back silent NaNs.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import xarray as xr
import zarr

from aircast.align.grid import TargetGrid
from aircast.store import location
from aircast.store.integrity import (
    DECODE_ERRORS,
    ChunkScan,
    all_chunk_coords,
    bad_chunks_among,
    chunks_of_first_axis,
    corrupt_chunks,
    scan_chunks,
    training_store_fix,
)
from aircast.store.schema import (
    CHANNEL,
    FIELDS,
    HIST_COUNTS,
    HIST_EDGES_LOG,
    HIST_EDGES_NORMALISED,
    LATITUDE,
    LONGITUDE,
    MISSING_TIMES,
    NO_LEVEL,
    POLLUTANT,
    TIME,
    MissingDataError,
    StoreError,
    StoreIncompleteError,
    check_store,
    decode_times,
    iso_hour,
)


@dataclass(frozen=True)
class ChannelInfo:
    """One channel's metadata as the store records it."""

    name: str
    variable: str
    level: int | None
    units: str
    long_name: str
    role: str
    source: str
    positive: bool
    time_kind: str
    log_offset: float | None


@dataclass(frozen=True)
class Statistics:
    """Training-period normalisation statistics, each float64/int64 of shape (n_channels,).

    ``log_*`` are NaN (count 0) for channels that are not positive.
    """

    channels: tuple[str, ...]
    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    log_count: np.ndarray
    log_mean: np.ndarray
    log_std: np.ndarray
    log_offset: np.ndarray


@dataclass(frozen=True)
class Histogram:
    """A pollutant's training histogram.

    Attributes
    ----------
    edges_log
        float64, shape (n_bins + 1,): edges of ``log(max(x, 0) + offset)``.
    edges_normalised
        float64, shape (n_bins + 1,): the same edges in normalised log space.
    counts
        int64, shape (n_bins + 2,): underflow, the bins, overflow.
    """

    channel: str
    edges_log: np.ndarray
    edges_normalised: np.ndarray
    counts: np.ndarray


TimesLike = slice | Sequence[Any] | np.ndarray | str | dt.datetime | np.datetime64


class TrainingStore:
    """A checked, read-only training store.

    Parameters
    ----------
    url
        Local path or fsspec URL.
    storage_options
        fsspec options for a remote URL.
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.storage_options = dict(storage_options or {})
        self.group = location.open_group(url, self.storage_options, mode="r")
        try:
            self.attrs: dict[str, Any] = check_store(self.group)
        except DECODE_ERRORS as exc:  # a damaged coordinate, read by the contract check
            raise self.decode_failure_anywhere(exc) from exc

    # ---- identity

    @property
    def complete(self) -> bool:
        return bool(self.attrs["state"] == "complete")

    @property
    def recipe(self) -> dict[str, Any]:
        return dict(self.attrs["recipe"])

    @property
    def fingerprint(self) -> str:
        return str(self.attrs["recipe_fingerprint"])

    # ---- the xarray view

    @cached_property
    def ds(self) -> xr.Dataset:
        """The whole store as a lazy (dask-backed) dataset."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            ds: xr.Dataset = xr.open_zarr(
                self.url if not location.is_local(self.url) else str(location.local_path(self.url)),
                storage_options=self.storage_options or None,
                consolidated=True if self.complete else None,
            )
        return ds

    # ---- coordinates and metadata

    @cached_property
    def times(self) -> np.ndarray:
        """datetime64[ns], shape (n_times,)."""
        n = int(self.attrs["time_axis"]["n_times"])
        return decode_times(np.asarray(self._read(TIME))[:n])

    @cached_property
    def grid(self) -> TargetGrid:
        """The grid the store's fields are on (its coordinates and recorded resolution)."""
        return TargetGrid(
            np.asarray(self._read(LATITUDE)),
            np.asarray(self._read(LONGITUDE)),
            float(self.attrs["grid"]["resolution"]),
        )

    @cached_property
    def missing_times(self) -> np.ndarray:
        """datetime64[ns], shape (n_missing,), ascending."""
        return decode_times(np.asarray(self._read(MISSING_TIMES)))

    @cached_property
    def channels(self) -> tuple[ChannelInfo, ...]:
        names = [str(n) for n in self._read(CHANNEL)]
        cols = {
            k: list(self._read(f"channel_{k}"))
            for k in (
                "variable",
                "level",
                "units",
                "long_name",
                "role",
                "source",
                "positive",
                "time_kind",
                "log_offset",
            )
        }
        out = []
        for i, name in enumerate(names):
            level = int(cols["level"][i])
            offset = float(cols["log_offset"][i])
            out.append(
                ChannelInfo(
                    name=name,
                    variable=str(cols["variable"][i]),
                    level=None if level == NO_LEVEL else level,
                    units=str(cols["units"][i]),
                    long_name=str(cols["long_name"][i]),
                    role=str(cols["role"][i]),
                    source=str(cols["source"][i]),
                    positive=bool(cols["positive"][i]),
                    time_kind=str(cols["time_kind"][i]),
                    log_offset=None if np.isnan(offset) else offset,
                )
            )
        return tuple(out)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @cached_property
    def statistics(self) -> Statistics:
        """The normalisation statistics (only meaningful once the store is complete)."""
        self._require_complete("statistics")
        return Statistics(
            channels=self.channel_names,
            count=np.asarray(self._read("stat_count")),
            mean=np.asarray(self._read("stat_mean")),
            std=np.asarray(self._read("stat_std")),
            log_count=np.asarray(self._read("stat_log_count")),
            log_mean=np.asarray(self._read("stat_log_mean")),
            log_std=np.asarray(self._read("stat_log_std")),
            log_offset=np.asarray(self._read("channel_log_offset")),
        )

    @cached_property
    def histograms(self) -> dict[str, Histogram]:
        """Per pollutant channel: its training histogram."""
        self._require_complete("histograms")
        names = [str(n) for n in self._read(POLLUTANT)]
        edges = np.asarray(self._read(HIST_EDGES_LOG))
        normalised = np.asarray(self._read(HIST_EDGES_NORMALISED))
        counts = np.asarray(self._read(HIST_COUNTS))
        return {
            name: Histogram(name, edges[i], normalised[i], counts[i])
            for i, name in enumerate(names)
        }

    # ---- data

    def available(self, times: TimesLike) -> np.ndarray:
        """For each selected time: whether it has data, bool, shape (n,)."""
        selected = self._select(times)
        return ~np.isin(selected, self.missing_times)

    def read(self, times: TimesLike) -> xr.DataArray:
        """The fields at ``times``, loaded.

        Parameters
        ----------
        times
            A slice of times (inclusive, ``slice("2019-06-01", "2019-06-02T21")``), a
            sequence of times, or one time.

        Returns
        -------
        xarray.DataArray
            float32, dims (time, channel, latitude, longitude).

        Raises
        ------
        MissingDataError
            When a selected time is in ``missing_times``, naming them.
        StoreError
            When a time is not on the store's axis.
        """
        selected = self._select(times)
        gone = selected[np.isin(selected, self.missing_times)]
        if gone.size:
            shown = ", ".join(iso_hour(t) for t in gone[:6]) + (" …" if gone.size > 6 else "")
            raise MissingDataError(
                f"the store at {self.url} has no data for {gone.size} of the {selected.size} "
                f"requested times ({shown}): the data stores did not deliver them (they are in "
                "missing_times); choose a range without them, or skip them with "
                "TrainingStore.available(times)",
                gone,
            )
        index = np.searchsorted(self.times, selected)
        array = self.group[FIELDS]
        assert isinstance(array, zarr.Array)
        try:
            values = array.get_orthogonal_selection((index,))
        except DECODE_ERRORS as exc:
            raise self.decode_failure(array, exc, index.tolist()) from exc
        return xr.DataArray(
            np.asarray(values),
            dims=(TIME, CHANNEL, "latitude", "longitude"),
            coords={
                TIME: selected,
                CHANNEL: list(self.channel_names),
                "latitude": np.asarray(self._read("latitude")),
                "longitude": np.asarray(self._read("longitude")),
            },
            name=FIELDS,
        )

    def _select(self, times: TimesLike) -> np.ndarray:
        axis = self.times
        if isinstance(times, slice):
            start = axis[0] if times.start is None else np.datetime64(times.start, "ns")
            stop = axis[-1] if times.stop is None else np.datetime64(times.stop, "ns")
            selected: np.ndarray = axis[(axis >= start) & (axis <= stop)]
            if not selected.size:
                raise StoreError(
                    f"no store time between {times.start} and {times.stop}; the store covers "
                    f"{iso_hour(axis[0])}..{iso_hour(axis[-1])}"
                )
            return selected
        if isinstance(times, (str, dt.datetime, np.datetime64)):
            times = [times]
        wanted = np.asarray([np.datetime64(t, "ns") for t in np.asarray(times).ravel()])
        outside = wanted[~np.isin(wanted, axis)]
        if outside.size:
            raise StoreError(
                f"times {', '.join(iso_hour(t) for t in outside[:4])} are not on the store's "
                f"three-hourly axis {iso_hour(axis[0])}..{iso_hour(axis[-1])}"
            )
        return wanted

    def _read(self, name: str) -> Any:
        array = self.group[name]
        assert isinstance(array, zarr.Array)
        try:
            return array[...]
        except DECODE_ERRORS as exc:
            raise self.decode_failure(array, exc) from exc

    def decode_failure(
        self, array: zarr.Array, exc: Exception, positions: Sequence[int] | None = None
    ) -> Exception:
        """The error to raise for a failed read of ``array`` (at ``positions`` of its first
        axis, or all of it): a :class:`~aircast.store.integrity.CorruptChunkError` naming the
        store, the damaged chunks and the fix, or ``exc`` itself when every chunk decodes."""
        coords = (
            all_chunk_coords(array) if positions is None else chunks_of_first_axis(array, positions)
        )
        bad = bad_chunks_among(array, coords, self.url)
        if not bad:
            return exc
        return corrupt_chunks(f"{self.url} (training store)", bad, training_store_fix(bad))

    def _require_complete(self, what: str) -> None:
        if not self.complete:
            raise StoreIncompleteError(
                f"the store at {self.url} is not finalised (state {self.attrs['state']!r}), so "
                f"its {what} are not written yet: run `aircast store build CONFIG`"
            )

    def decode_failure_anywhere(self, exc: Exception) -> Exception:
        """The error for a failed read somewhere in the store: every chunk is read to name
        the damaged ones (``exc`` itself when all decode)."""
        bad = scan_chunks(self.group, self.url).bad
        if not bad:
            return exc
        return corrupt_chunks(f"{self.url} (training store)", bad, training_store_fix(bad))

    def check_chunks(self) -> ChunkScan:
        """Read every chunk of the store, one at a time.

        Raises
        ------
        CorruptChunkError
            Naming every chunk that cannot be decoded (array, key, path) and the fix.
        """
        scan = scan_chunks(self.group, self.url)
        if scan.bad:
            raise corrupt_chunks(
                f"{self.url} (training store)", scan.bad, training_store_fix(scan.bad)
            )
        return scan

    # ---- for people

    def size_on_disk(self) -> int:
        return location.size_on_disk(self.url, self.storage_options)

    def summary(self) -> str:
        """A readable multi-line summary (``aircast store inspect``)."""
        lines = [f"training store {self.url}"]
        recipe = self.recipe
        periods = recipe["periods"]
        lines.append(
            f"  state: {self.attrs['state']}; schema version {self.attrs['schema_version']}; "
            f"recipe {self.fingerprint[:12]}…"
        )
        grid = self.attrs["grid"]
        lines.append(
            f"  grid: {grid['n_lat']}×{grid['n_lon']} at {grid['resolution']}°, "
            f"{grid['first_latitude']:g}..{grid['last_latitude']:g}°N, "
            f"{grid['first_longitude']:g}..{grid['last_longitude']:g}°E"
        )
        times = self.times
        lines.append(
            f"  times: {iso_hour(times[0])} .. {iso_hour(times[-1])}, {times.size} "
            f"(every {self.attrs['time_axis']['step_hours']} h)"
        )
        lines.append(
            "  periods: "
            + ", ".join(
                f"{k} {periods[k]['start']}..{periods[k]['end']}"
                for k in ("train", "validation", "test")
            )
        )
        missing = self.missing_times
        if missing.size:
            days = np.unique(missing.astype("datetime64[D]"))
            per_day = [f"{d} ({int((missing.astype('datetime64[D]') == d).sum())})" for d in days]
            lines.append(
                f"  missing: {missing.size} times on {days.size} days: {', '.join(per_day)}"
            )
        else:
            lines.append("  missing: none")
        lines.append(f"  channels ({len(self.channels)}):")
        stats = self.statistics if self.complete else None
        header = f"    {'channel':<10} {'units':<9} {'role':<9} {'source':<31}"
        if stats is not None:
            header += f" {'mean':>11} {'std':>11} {'log mean':>9} {'log std':>8}"
        lines.append(header)
        for i, c in enumerate(self.channels):
            row = f"    {c.name:<10} {c.units:<9} {c.role:<9} {c.source:<31}"
            if stats is not None:
                log = f" {stats.log_mean[i]:>9.3f} {stats.log_std[i]:>8.3f}" if c.positive else ""
                row += f" {stats.mean[i]:>11.4g} {stats.std[i]:>11.4g}{log}"
            lines.append(row)
        if stats is not None:
            lines.append(
                f"  statistics: training {periods['train']['start']}..{periods['train']['end']}, "
                f"{int(stats.count[0])} values per channel"
            )
        lines.append(f"  size on disk: {_bytes(self.size_on_disk())}")
        return "\n".join(lines)


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    return f"{n} B"


def open_store(
    url: str, storage_options: Mapping[str, Any] | None = None, *, require_complete: bool = True
) -> TrainingStore:
    """Open and check a training store.

    Raises
    ------
    SchemaError
        When the URL holds no store of this contract and schema version.
    StoreIncompleteError
        When ``require_complete`` and the build has not been finalised.
    """
    if not location.has_zarr_group(location.zarr_store(url, storage_options, read_only=True)):
        raise StoreError(
            f"there is no training store at {url}: build one with `aircast store build CONFIG`"
        )
    store = TrainingStore(url, storage_options)
    if require_complete:
        store._require_complete("data")
    return store
