"""How AirCast opens, checks and decodes the files the data stores deliver.

Three layers, each built on the one before:

Integrity
    :func:`verify_grib` and :func:`verify_netcdf` decode every GRIB message / read every
    NetCDF variable. A download that is truncated or damaged is rejected whole with
    :class:`~aircast.errors.CorruptFileError`, never half-loaded: cfgrib on its own skips a
    damaged message with a warning and returns the rest, which would silently leave holes in
    the training store.
Canonical form
    :func:`decode_grib` brings any GRIB file on a regular grid into the canonical form
    described in the banner below, without a request. It reads the file in one pass with
    ecCodes; the pass that decodes the values is the integrity check, so a damaged file
    raises before anything is returned. NetCDF products are read with netCDF4 (through
    xarray) and pass through the same canonicalisation helpers (orientation, levels,
    vocabulary names and attributes, ERA5/ERA5T ``expver``, accumulations).
Content against request
    :func:`verify_product` (at download time) and :func:`decode_product` (what the pipeline
    reads) check that a product holds exactly the times, variables, levels and grid of its
    request, and raise :class:`~aircast.errors.ContentMismatchError` naming what is missing.

Why the canonical decoder reads ecCodes itself rather than through cfgrib: cfgrib builds its
index by reading some fifty keys of every message, among them ecCodes "concepts" (``paramId``,
``shortName``, ``units``) that cost 0.2-0.5 ms each, and then decodes every message's values a
second time; on one day of ERA5 that is about 7× the cost of decoding the values alone, and
about 19× with the xarray reshaping that followed it (``bench/bench_decode.py``, recorded in
``bench/results/decode.json``). The reader here evaluates the expensive keys once per *kind*
of field (a signature of cheap integer keys: parameter numbers, level type, template, local
section) and only cheap integer keys per message, and writes each decoded field straight into
its place in the canonical array. It names fields as cfgrib does (``cfVarName``) where the
vocabulary has no name for them. :func:`open_grib` keeps cfgrib's own view of a file for
inspection, and the tests check the two against each other on the real ECMWF files.
"""

from __future__ import annotations

import tempfile
import warnings
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

import cfgrib
import eccodes
import netCDF4
import numpy as np
import xarray as xr
from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

from aircast.catalogue import ParsedRequest, product_grid
from aircast.errors import AirCastError, ContentMismatchError, CorruptFileError
from aircast.vocab import VARIABLES, LevelType, TimeKind, Variable

#: cfgrib backend options: ``indexpath=''`` writes no ``.idx`` file beside read-only or shared
#: inputs; ``errors='raise'`` makes cfgrib fail on a damaged message instead of skipping it
#: (a second line of defence behind :func:`verify_grib`).
GRIB_BACKEND_KWARGS: Mapping[str, Any] = MappingProxyType({"indexpath": "", "errors": "raise"})

#: ``xr.open_dataset(path, **GRIB_OPEN_KWARGS)`` for one GRIB hypercube. ``decode_timedelta``
#: makes ``step`` a timedelta (and silences xarray's warning about the default changing).
GRIB_OPEN_KWARGS: Mapping[str, Any] = MappingProxyType(
    {
        "engine": "cfgrib",
        "backend_kwargs": GRIB_BACKEND_KWARGS,
        "decode_timedelta": True,
    }
)

#: MARS pads GRIB1 messages with zero bytes to a multiple of 120 bytes; longer gaps, or
#: non-zero bytes between messages, are not something the archive writes.
GRIB_PADDING = 120

_HINT_ZIP = b"PK\x03\x04"


class DecodeError(AirCastError, ValueError):
    """A well-formed file that cannot be brought into the canonical form.

    A grid that is not a regular latitude/longitude (or regular Gaussian) grid, fields on
    several grids, two different fields for the same variable, member, level and time, or
    accumulations over intervals of different lengths. Fetching the file again does not
    help: the message says what to request instead.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path} cannot be decoded into the canonical form: {problem}")


# ---------------------------------------------------------------------------------------------
# Canonical form (what ``decode_grib`` and ``decode_product`` return; every later stage relies
# on it and ``check_decoded`` checks it at the boundary)
#
#   dims       by valid time: (time[, number][, level], latitude, longitude), the layout of
#              reanalyses and of decode_grib unless several forecast runs overlap;
#              by run: (init_time, lead_time[, number][, level], latitude, longitude) with a
#              2-D ``valid_time`` coordinate (init_time + lead_time), the CAMS forecast's
#   time       UTC, tz-naive datetime64[ns], the valid time (the end of an accumulation
#              interval); for monthly means (MARS monthly streams such as ``moda``) the first
#              day of the month at the field's time of day, said in ``time_convention``
#   init_time  datetime64[ns] start of the forecast run; lead_time timedelta64[ns]
#   number     ensemble member, a dimension only where a variable has several members
#   level      pressure in hPa, ascending, int64 (float64 only for levels that are not whole
#              hPa); files with levels in Pa are converted. Other multi-level types keep a
#              dimension named by ecCodes' ``typeOfLevel`` (``hybrid``); a single non-pressure
#              level (2 m, 10 m, surface) is no dimension
#   latitude   degrees north, float64, strictly decreasing (north → south), whatever the
#              file's scanning mode
#   longitude  degrees east, float64, strictly increasing within [-180, 180) (0..360 grids
#              are wrapped and reordered, a repeated 360° column dropped)
#   variables  float32, missing values (GRIB bitmap, NetCDF _FillValue) NaN. Named by the
#              vocabulary where the (paramId, on pressure levels or not) pair is in it
#              (``t2m``, ``z_sfc``, ``z``), with the vocabulary's units and attributes
#              ``units``, ``long_name``, ``standard_name``, ``GRIB_paramId``, ``GRIB_shortName``;
#              other fields keep cfgrib's name (ecCodes ``cfVarName``, suffixed
#              ``_<typeOfLevel>`` on a clash), the GRIB units and name, and also
#              ``GRIB_typeOfLevel``, ``GRIB_stepType``. decode_product adds ``source`` (the
#              dataset) and accepts vocabulary variables only
#   accumulations  amounts over the interval that ends at the valid time, its length in hours
#              in the ``accumulation_hours`` attribute: ERA5's hourly steps stay as they are;
#              fields accumulated from the start of a run are differenced between consecutive
#              steps, and where no interval of the common length ends (lead 0, or a first lead
#              longer than the spacing) the amount is NaN
#   expver     ERA5 (0001) and ERA5T (0005) in one file collapse to one field per time, 0001
#              preferred and 0005 filling the times 0001 lacks (a NetCDF ``expver``
#              dimension, or the same GRIB field under both versions); the dataset attribute
#              ``expver`` lists the versions, ``expver_collapsed`` says what was merged
#
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GribSummary:
    """What a GRIB file holds, as found by walking every message.

    Attributes
    ----------
    path
        The file.
    size
        Size in bytes.
    n_messages
        Number of GRIB messages.
    editions
        GRIB editions found, sorted.
    short_names
        ecCodes ``shortName`` of the fields, sorted unique.
    param_ids
        ECMWF ``paramId`` of the fields, sorted unique.
    type_of_levels
        ecCodes ``typeOfLevel`` values, sorted unique.
    pressure_levels
        Pressure levels in hPa of isobaric fields, sorted unique.
    valid_times
        Valid times (as the file states them), datetime64[ns], sorted unique, shape (n_times,).
    fields
        One ``(paramId, pressure level in hPa or None, valid time)`` per message, for
        comparing a file with its request.
    grids
        The distinct grids: ``(Nj, Ni, first lat, first lon, last lat, last lon)``, the
        corners in millidegrees as GRIB1 stores them.
    """

    path: Path
    size: int
    n_messages: int
    editions: tuple[int, ...]
    short_names: tuple[str, ...]
    param_ids: tuple[int, ...]
    type_of_levels: tuple[str, ...]
    pressure_levels: tuple[int, ...]
    valid_times: np.ndarray
    fields: tuple[tuple[int, int | None, np.datetime64], ...] = ()
    grids: frozenset[tuple[int, int, int, int, int, int]] = frozenset()


@dataclass(frozen=True)
class NetcdfSummary:
    """What a NetCDF file holds.

    Attributes
    ----------
    path
        The file.
    size
        Size in bytes.
    dimensions
        Dimension name -> length (root group).
    variables
        Names of all variables, groups as ``group/name``, in file order.
    """

    path: Path
    size: int
    dimensions: Mapping[str, int]
    variables: tuple[str, ...]


def _check_gap(
    raw: BinaryIO, path: Path, start: int, stop: int, where: str, message_number: int | None
) -> None:
    """Bytes ``start:stop`` between messages must be the archive's zero padding."""
    if stop <= start:
        return
    raw.seek(start)
    gap = raw.read(stop - start)
    if len(gap) >= GRIB_PADDING or gap.count(0) != len(gap):
        raise CorruptFileError(
            path,
            f"{stop - start} bytes of non-GRIB data {where}",
            message_number=message_number,
        )


def _messages(stream: BinaryIO, path: Path) -> Iterator[tuple[int, int]]:
    """Yield (1-based number, handle) for each message; the caller releases handles."""
    number = 0
    while True:
        number += 1
        try:
            handle = eccodes.codes_grib_new_from_file(stream)
        except eccodes.GribInternalError as err:
            raise CorruptFileError(
                path, f"ecCodes cannot read it ({err})", message_number=number
            ) from err
        if handle is None:
            return
        yield number, handle


# ---------------------------------------------------------------------------------------------
# One pass over a GRIB file: integrity, metadata and (optionally) values

#: ecCodes ``stepUnits`` (GRIB2 code table 4.4, which ecCodes uses for both editions) -> s
_STEP_SECONDS = {0: 60, 1: 3600, 2: 86400, 10: 10800, 11: 21600, 12: 43200, 13: 1}
_STEP_UNIT_SECOND = 13

#: MARS streams of monthly means: their fields describe a calendar month
_MONTHLY_STREAMS = frozenset(
    {"moda", "mnth", "mdfa", "msmm", "mmsa", "mmaf", "mofm", "edmm", "edmo", "ewmm", "ewmo"}
    | {"wamo", "wamd", "swmm", "smmm"}
)

#: Level types whose level value does not change what a field is, only where it is: they are
#: left out of a kind's signature so that one kind (one evaluation of the concepts) covers
#: every level. GRIB1 indicatorOfTypeOfLevel: isobaric hPa, hybrid, isobaric Pa (ECMWF);
#: GRIB2 typeOfFirstFixedSurface: isobaric, hybrid, generalised height.
_G1_LEVEL_FREE = frozenset({100, 109, 210})
_G2_LEVEL_FREE = frozenset({100, 105, 150})

#: GRIB2 product definition templates whose concept keys the signature covers, with the keys
#: each adds; fields of other templates have their concepts read message by message.
_G2_TEMPLATE_KEYS: Mapping[int, tuple[str, ...]] = MappingProxyType(
    {
        0: (),
        1: (),
        8: ("typeOfStatisticalProcessing",),
        11: ("typeOfStatisticalProcessing",),
        40: ("constituentType",),
        41: ("constituentType",),
        42: ("constituentType", "typeOfStatisticalProcessing"),
        43: ("constituentType", "typeOfStatisticalProcessing"),
    }
)

_PRESSURE_TYPES = ("isobaricInhPa", "isobaricInPa")
_MISSING_LONG = 2147483647  # ecCodes' value of a missing integer key


@dataclass(frozen=True)
class _Kind:
    """What a kind of field's expensive ecCodes concepts resolve to, read once per kind."""

    param_id: int
    short_name: str
    cf_name: str  # cfgrib's name: cfVarName, else shortName, else p<paramId>
    units: str
    long_name: str
    type_of_level: str
    step_type: str
    pressure: bool
    has_number: bool
    has_mars: bool  # MARS keys (expver, stream) from an ECMWF local section


def _read_kind(handle: int) -> _Kind:
    get = eccodes.codes_get_string
    param_id = int(eccodes.codes_get_long(handle, "paramId"))
    short_name = get(handle, "shortName")
    cf_name = get(handle, "cfVarName")
    if cf_name in ("", "unknown"):
        cf_name = short_name if short_name not in ("", "unknown") else f"p{param_id}"
    type_of_level = get(handle, "typeOfLevel")
    return _Kind(
        param_id=param_id,
        short_name=short_name,
        cf_name=cf_name,
        units=get(handle, "units"),
        long_name=get(handle, "name"),
        type_of_level=type_of_level,
        step_type=get(handle, "stepType"),
        pressure=type_of_level in _PRESSURE_TYPES,
        has_number=bool(eccodes.codes_is_defined(handle, "number")),
        has_mars=bool(
            eccodes.codes_is_defined(handle, "expver")
            and eccodes.codes_is_defined(handle, "stream")
        ),
    )


@dataclass(frozen=True)
class _AxisOrder:
    """How one horizontal axis reaches its canonical order: ``out = field[index]``.

    Attributes
    ----------
    coords
        The canonical coordinate, float64, shape (n_out,).
    index
        Positions in the file's order, int64, shape (n_out,).
    runs
        ``(output slice, input slice)`` pairs that copy the axis in a few contiguous pieces
        (a reversal, the two halves of a 0..360 → -180..180 roll); empty when the order is
        irregular and ``index`` must gather.
    """

    coords: np.ndarray
    index: np.ndarray
    runs: tuple[tuple[slice, slice], ...]

    @property
    def identity(self) -> bool:
        return bool(self.index.size == 0 or np.array_equal(self.index, np.arange(self.index.size)))


_MAX_RUNS = 4


def _runs(index: np.ndarray) -> tuple[tuple[slice, slice], ...]:
    """Split ``index`` into runs of step +1 or -1; () when there are more than a few."""
    runs: list[tuple[slice, slice]] = []
    start, n = 0, index.size
    while start < n:
        step = 1
        if start + 1 < n and abs(int(index[start + 1]) - int(index[start])) == 1:
            step = int(index[start + 1]) - int(index[start])
        stop = start + 1
        while stop < n and int(index[stop]) - int(index[stop - 1]) == step:
            stop += 1
        first, after = int(index[start]), int(index[stop - 1]) + step
        runs.append((slice(start, stop), slice(first, after if after >= 0 else None, step)))
        if len(runs) > _MAX_RUNS:
            return ()
        start = stop
    return tuple(runs)


def _axis_order(values: np.ndarray, *, descending: bool) -> _AxisOrder:
    """Canonical order of one axis: sorted, duplicates dropped (the first occurrence kept)."""
    coords, first = np.unique(np.asarray(values, dtype=np.float64), return_index=True)
    if descending:
        coords, first = coords[::-1], first[::-1]
    index = first.astype(np.int64)
    return _AxisOrder(coords=coords + 0.0, index=index, runs=_runs(index))


def _latitude_order(latitudes: np.ndarray) -> _AxisOrder:
    """Latitudes as stored → north to south."""
    return _axis_order(np.round(np.asarray(latitudes, dtype=np.float64), 6), descending=True)


def _longitude_order(longitudes: np.ndarray) -> _AxisOrder:
    """Longitudes as stored → increasing within [-180, 180)."""
    wrapped = (np.asarray(longitudes, dtype=np.float64) + 180.0) % 360.0 - 180.0
    # rounding can carry 179.9999999 up to 180: put it back at -180, where it belongs
    wrapped = np.round(wrapped, 6)
    wrapped[wrapped >= 180.0] -= 360.0
    return _axis_order(wrapped, descending=False)


@dataclass(frozen=True)
class _Grid:
    """A regular grid's canonical coordinates and how a decoded field lands on them.

    ``problem`` is set instead when the grid cannot be laid out (spectral, reduced Gaussian,
    rotated …); the file still verifies, only the canonical decode refuses it.
    """

    summary: tuple[int, int, int, int, int, int]
    geometry: tuple[Any, ...]  # what makes two grid sections the same grid
    shape: tuple[int, int] = (0, 0)  # (Nj, Ni) as stored
    columns_first: bool = False  # jPointsAreConsecutive: stored column by column
    latitude: _AxisOrder | None = None
    longitude: _AxisOrder | None = None
    problem: str = ""

    def put(self, out: np.ndarray, values: np.ndarray) -> None:
        """Write one decoded field into ``out`` (n_lat, n_lon) in canonical order.

        Parameters
        ----------
        out
            Destination, float32, shape (n_lat, n_lon) of the canonical grid.
        values
            The field as ecCodes decodes it, shape (Nj * Ni,).
        """
        assert self.latitude is not None and self.longitude is not None
        nj, ni = self.shape
        field = values.reshape(ni, nj).T if self.columns_first else values.reshape(nj, ni)
        rows, cols = self.latitude.runs, self.longitude.runs
        if rows and cols:  # a few slice copies: no index arrays, no temporaries
            for out_rows, in_rows in rows:
                for out_cols, in_cols in cols:
                    out[out_rows, out_cols] = field[in_rows, in_cols]
        else:
            out[...] = field[np.ix_(self.latitude.index, self.longitude.index)]


def _read_grid(handle: int, edition: int) -> _Grid:
    """Coordinates of the message's grid (read once per distinct grid section)."""
    get_long, get_double = eccodes.codes_get_long, eccodes.codes_get_double
    grid_type = eccodes.codes_get_string(handle, "gridType")
    try:
        nj, ni, *corners, scanning = (
            int(get_long(handle, key))
            for key in (
                "Nj",
                "Ni",
                "latitudeOfFirstGridPoint",
                "longitudeOfFirstGridPoint",
                "latitudeOfLastGridPoint",
                "longitudeOfLastGridPoint",
                "scanningMode",
            )
        )
    except eccodes.KeyValueNotFoundError:  # spectral and other grids without corners
        nj = ni = scanning = 0
        corners = [0, 0, 0, 0]
    # corners in millidegrees whatever the edition (GRIB2 stores microdegrees)
    lat1_m, lon1_m, lat2_m, lon2_m = (round(c / (1 if edition == 1 else 1000)) for c in corners)
    summary = (nj, ni, lat1_m, lon1_m, lat2_m, lon2_m)
    geometry = (grid_type, summary, scanning)
    if grid_type not in ("regular_ll", "regular_gg"):
        return _Grid(
            summary,
            geometry,
            problem=f"its grid is {grid_type!r}, not a regular latitude/longitude grid; "
            "interpolate it to one first (e.g. with `cdo remapbil`)",
        )
    lat1 = get_double(handle, "latitudeOfFirstGridPointInDegrees")
    lat2 = get_double(handle, "latitudeOfLastGridPointInDegrees")
    lon1 = get_double(handle, "longitudeOfFirstGridPointInDegrees")
    lon2 = get_double(handle, "longitudeOfLastGridPointInDegrees")
    west_to_east = not get_long(handle, "iScansNegatively")
    if grid_type == "regular_ll":
        latitudes = np.linspace(lat1, lat2, nj)
    else:  # Gaussian latitudes are not evenly spaced: take ecCodes' own
        gaussian = np.asarray(eccodes.codes_get_double_array(handle, "distinctLatitudes"))
        low, high = min(lat1, lat2) - 1e-6, max(lat1, lat2) + 1e-6
        latitudes = gaussian[(gaussian >= low) & (gaussian <= high)]
        latitudes = np.sort(latitudes)[:: 1 if lat1 < lat2 else -1]
        if latitudes.size != nj:
            return _Grid(
                summary, geometry, problem=f"its Gaussian grid has {nj} rows, not {latitudes.size}"
            )
    span = ((lon2 - lon1) if west_to_east else (lon1 - lon2)) % 360.0
    if ni > 1 and np.isclose(span, 0.0):
        span = 360.0  # first and last column both at the same meridian: a closed global grid
    step = span / (ni - 1) if ni > 1 else 0.0
    longitudes = lon1 + (step if west_to_east else -step) * np.arange(ni)
    return _Grid(
        summary,
        geometry,
        shape=(nj, ni),
        columns_first=bool(get_long(handle, "jPointsAreConsecutive")),
        latitude=_latitude_order(latitudes),
        longitude=_longitude_order(longitudes),
    )


#: Kinds and grids by signature, shared by every file a process decodes: a signature
#: determines its kind (or grid) completely, and a worker decodes thousands of files of the
#: same few kinds, so each is read from ecCodes once per process. Bounded: an odd process
#: cannot grow them without limit.
_KIND_CACHE: dict[tuple[Any, ...], _Kind] = {}
_GRID_CACHE: dict[tuple[int, str], _Grid] = {}
#: the key holding the checksum of the grid section: GRIB1 section 2, GRIB2 section 3
_GRID_MD5 = {1: "md5Section2", 2: "md5Section3"}
_CACHE_LIMIT = 4096


def clear_caches() -> None:
    """Forget the kinds and grids read so far (benchmarks measure a cold start with it)."""
    _KIND_CACHE.clear()
    _GRID_CACHE.clear()


def _scaled(value: int, factor: int) -> float:
    if value == _MISSING_LONG or factor == _MISSING_LONG:
        return float("nan")
    return float(value) * 10.0 ** (-factor)


@dataclass
class _Scan:
    """What one pass over a GRIB file found: per-message metadata (parallel lists), values.

    Times are int64 seconds since 1970; ``start``/``end`` are the step range in seconds
    (``start == end`` for instantaneous fields); ``level`` is in hPa for pressure kinds and
    the file's level value otherwise.
    """

    path: Path
    size: int
    kinds: list[_Kind] = field(default_factory=list)
    grids: list[_Grid] = field(default_factory=list)
    editions: set[int] = field(default_factory=set)
    kind: list[int] = field(default_factory=list)
    grid: list[int] = field(default_factory=list)
    level: list[float] = field(default_factory=list)
    member: list[int] = field(default_factory=list)
    base: list[int] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)
    expver: list[str] = field(default_factory=list)
    stream: list[str] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    def summary(self) -> GribSummary:
        valid = np.asarray(self.base, dtype=np.int64) + np.asarray(self.end, dtype=np.int64)
        valid_ns = valid.astype("datetime64[s]").astype("datetime64[ns]")
        kinds = [self.kinds[k] for k in self.kind]
        levels = [
            round(lvl) if k.pressure and np.isfinite(lvl) else None
            for k, lvl in zip(kinds, self.level, strict=True)
        ]
        return GribSummary(
            path=self.path,
            size=self.size,
            n_messages=len(self.kind),
            editions=tuple(sorted(self.editions)),
            short_names=tuple(sorted({k.short_name for k in self.kinds})),
            param_ids=tuple(sorted({k.param_id for k in self.kinds})),
            type_of_levels=tuple(sorted({k.type_of_level for k in self.kinds})),
            pressure_levels=tuple(sorted({lvl for lvl in levels if lvl is not None})),
            valid_times=np.unique(valid_ns),
            fields=tuple(
                (k.param_id, lvl, t) for k, lvl, t in zip(kinds, levels, valid_ns, strict=True)
            ),
            grids=frozenset(self.grids[g].summary for g in set(self.grid)),
        )


def _epoch_seconds(date: int, hhmm: int) -> int:
    """Seconds since 1970 of GRIB ``dataDate`` (YYYYMMDD) and ``dataTime`` (HHMM)."""
    day = np.datetime64(f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d}", "s")
    return int(day.astype(np.int64)) + hhmm // 100 * 3600 + hhmm % 100 * 60


def _steps(handle: int, path: Path, number: int, accumulated: bool) -> tuple[int, int]:
    """(start, end) of the message's step range in seconds."""
    get = eccodes.codes_get_long
    factor = _STEP_SECONDS.get(int(get(handle, "stepUnits")))
    if factor is None:  # 15-minute, month, … units: ask ecCodes for seconds where it can
        try:
            eccodes.codes_set_long(handle, "stepUnits", _STEP_UNIT_SECOND)
        except eccodes.GribInternalError as err:
            raise DecodeError(
                path, f"message {number} has a step in units that are not a fixed duration"
            ) from err
        factor = 1
    end = int(get(handle, "endStep")) * factor
    return (int(get(handle, "startStep")) * factor if accumulated else end), end


def _scan_grib(path: str | Path, *, keep_values: bool) -> _Scan:
    """Walk every message of ``path``: check it, read what it is, decode its values.

    Raises
    ------
    CorruptFileError
        As :func:`verify_grib` describes.
    """
    path = Path(path)
    scan = _Scan(path=path, size=path.stat().st_size)
    kinds: dict[tuple[Any, ...], int] = {}
    grids: dict[tuple[int, str], int] = {}
    bases: dict[tuple[int, int], int] = {}
    streams: dict[int, str] = {}
    get = eccodes.codes_get_long
    end_of_last = 0  # end of the last good message: everything up to it has been accounted for
    count = 0
    with path.open("rb") as stream, path.open("rb") as raw:
        for number, handle in _messages(stream, path):
            try:
                offset = int(get(handle, "offset"))
                length = int(get(handle, "totalLength"))
                _check_gap(raw, path, end_of_last, offset, f"before message {number}", number)
                edition = int(get(handle, "edition"))
                scan.editions.add(edition)

                # ---- what the field is: concepts resolved once per signature
                centre = get(handle, "centre")
                local = (
                    get(handle, "localDefinitionNumber") if get(handle, "localUsePresent") else -1
                )
                signature: tuple[Any, ...] | None
                if edition == 1:
                    level_type = get(handle, "indicatorOfTypeOfLevel")
                    level = float(get(handle, "level"))
                    signature = (
                        1,
                        centre,
                        get(handle, "subCentre"),
                        get(handle, "table2Version"),
                        get(handle, "indicatorOfParameter"),
                        level_type,
                        -1.0 if level_type in _G1_LEVEL_FREE else level,
                        get(handle, "timeRangeIndicator"),
                        local,
                    )
                else:
                    surface = get(handle, "typeOfFirstFixedSurface")
                    if surface == 100:  # isobaric, stored in Pa: ecCodes' `level` may be Pa or hPa
                        level = _scaled(
                            get(handle, "scaledValueOfFirstFixedSurface"),
                            get(handle, "scaleFactorOfFirstFixedSurface"),
                        )
                    else:
                        level = float(get(handle, "level"))
                    template = int(get(handle, "productDefinitionTemplateNumber"))
                    extra = _G2_TEMPLATE_KEYS.get(template)
                    second = get(handle, "typeOfSecondFixedSurface")
                    signature = (
                        None
                        if extra is None
                        else (
                            2,
                            centre,
                            get(handle, "discipline"),
                            get(handle, "parameterCategory"),
                            get(handle, "parameterNumber"),
                            template,
                            surface,
                            -1.0 if surface in _G2_LEVEL_FREE else level,
                            second,
                            -1 if second == 255 else get(handle, "scaledValueOfSecondFixedSurface"),
                            get(handle, "tablesVersion"),
                            get(handle, "localTablesVersion"),
                            local,
                            *(get(handle, key) for key in extra),
                        )
                    )
                index = kinds.get(signature) if signature is not None else None
                if index is None:
                    known = _KIND_CACHE.get(signature) if signature is not None else None
                    kind = known or _read_kind(handle)
                    scan.kinds.append(kind)
                    index = len(scan.kinds) - 1
                    if signature is not None:
                        kinds[signature] = index
                        if known is None and len(_KIND_CACHE) < _CACHE_LIMIT:
                            _KIND_CACHE[signature] = kind
                kind = scan.kinds[index]
                if kind.pressure and (edition == 2 or kind.type_of_level == "isobaricInPa"):
                    level /= 100.0  # GRIB2 isobaric levels and GRIB1 isobaricInPa are in Pa

                # ---- where and when
                # the grid section's checksum: one key instead of eight per message
                grid_key = (edition, eccodes.codes_get_string(handle, _GRID_MD5[edition]))
                grid = grids.get(grid_key)
                if grid is None:
                    grid_info = _GRID_CACHE.get(grid_key)
                    if grid_info is None:
                        grid_info = _read_grid(handle, edition)
                        if len(_GRID_CACHE) < _CACHE_LIMIT:
                            _GRID_CACHE[grid_key] = grid_info
                    scan.grids.append(grid_info)
                    grid = grids[grid_key] = len(scan.grids) - 1
                base_key = (int(get(handle, "dataDate")), int(get(handle, "dataTime")))
                base = bases.get(base_key)
                if base is None:
                    base = bases[base_key] = _epoch_seconds(*base_key)
                start, end = _steps(handle, path, number, kind.step_type == "accum")
                member = int(get(handle, "number")) if kind.has_number else 0
                expver, stream_name = "", ""
                if kind.has_mars:
                    expver = eccodes.codes_get_string(handle, "expver")
                    code = int(get(handle, "stream"))
                    stream_name = streams.get(code) or streams.setdefault(
                        code, eccodes.codes_get_string(handle, "stream")
                    )

                # ---- the values: decoding them is the integrity check
                values = eccodes.codes_get_array(handle, "values", np.float32)
                nj, ni = scan.grids[grid].shape
                expected = nj * ni or int(get(handle, "numberOfDataPoints"))
                if values.size != expected:
                    raise CorruptFileError(
                        path,
                        f"{values.size} values decoded where the grid has {expected}",
                        message_number=number,
                    )
                if keep_values and get(handle, "bitmapPresent"):
                    values[
                        values == np.float32(eccodes.codes_get_double(handle, "missingValue"))
                    ] = np.nan
            except eccodes.GribInternalError as err:
                raise CorruptFileError(
                    path, f"ecCodes cannot decode it ({err})", message_number=number
                ) from err
            finally:
                eccodes.codes_release(handle)
            scan.kind.append(index)
            scan.grid.append(grid)
            scan.level.append(level)
            scan.member.append(member)
            scan.base.append(base)
            scan.start.append(start)
            scan.end.append(end)
            scan.expver.append(expver)
            scan.stream.append(stream_name)
            if keep_values:
                scan.values.append(values)
            end_of_last = offset + length
            count = number
        if count == 0:
            raise CorruptFileError(
                path,
                f"it holds {scan.size} bytes but no GRIB message (an empty download or an "
                "error page saved as data?)",
            )
        _check_gap(
            raw, path, end_of_last, scan.size, f"after the last complete message ({count})", None
        )
    return scan


def verify_grib(path: str | Path) -> GribSummary:
    """Walk every GRIB message of ``path``, decoding its values, and summarise the file.

    Parameters
    ----------
    path
        A GRIB file.

    Returns
    -------
    GribSummary
        Counts, parameters, levels and valid times of the file.

    Raises
    ------
    CorruptFileError
        When a message cannot be read or decoded ("Wrong message length", a file that ends
        mid-message), when bytes that are not GRIB sit before, between or after the messages
        (trailing garbage, an HTML error page), or when the file holds no message at all. The
        error names the file and the message number; the fix is to delete the file and fetch
        it again.
    """
    return _scan_grib(path, keep_values=False).summary()


def open_grib(path: str | Path, *, verify: bool = True) -> list[xr.Dataset]:
    """Open a GRIB file with cfgrib as a list of datasets, one per compatible hypercube.

    cfgrib's own view of a file, for inspection and for cross-checking :func:`decode_grib`;
    the pipeline reads products with :func:`decode_product`. A file may mix hypercubes that
    one dataset cannot hold (surface and pressure levels, instantaneous fields and ERA5's
    accumulations with their ``time``/``step`` axes); cfgrib's ``open_datasets`` groups them,
    as the data stores' own converter does.

    Parameters
    ----------
    path
        A GRIB file.
    verify
        Run :func:`verify_grib` first (the default), so that a damaged file raises instead of
        loading partly. Pass False only when the file was verified just before.

    Returns
    -------
    list of xarray.Dataset
        Lazily loaded datasets with cfgrib's names (``t2m``, ``pm2p5``) and coordinates
        (``time``, ``step``, ``valid_time``, ``latitude`` north → south as stored, ...).

    Raises
    ------
    CorruptFileError
        When the file is damaged.
    """
    path = Path(path)
    if verify:
        verify_grib(path)
    with warnings.catch_warnings():
        # cfgrib merges its hypercubes with xarray's current defaults; the notice that those
        # defaults will change says nothing about this file
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"cfgrib\..*")
        try:
            datasets: list[xr.Dataset] = cfgrib.open_datasets(
                str(path),
                backend_kwargs=dict(GRIB_BACKEND_KWARGS),
                decode_timedelta=GRIB_OPEN_KWARGS["decode_timedelta"],
            )
        except eccodes.GribInternalError as err:
            raise CorruptFileError(path, f"cfgrib cannot read it ({err})") from err
    return datasets


def _walk(
    group: netCDF4.Dataset | netCDF4.Group, prefix: str = ""
) -> Iterator[tuple[str, netCDF4.Variable[Any]]]:
    for name, var in group.variables.items():
        yield prefix + name, var
    for name, sub in group.groups.items():
        yield from _walk(sub, f"{prefix}{name}/")


#: values read per slab when checking a NetCDF variable (32 MiB of float32)
_NETCDF_SLAB_VALUES = 1 << 23


def _read_all(var: netCDF4.Variable[Any]) -> None:
    """Read every value of ``var``, in slabs along its first dimension."""
    var.set_auto_maskandscale(False)  # raw values: a check needs no masking
    shape = var.shape
    if not shape:
        var.getValue()
        return
    per_row = max(1, int(np.prod(shape[1:], dtype=np.int64)))
    rows = max(1, _NETCDF_SLAB_VALUES // per_row)
    for start in range(0, shape[0], rows):
        var[start : start + rows]


def verify_netcdf(path: str | Path) -> NetcdfSummary:
    """Open ``path`` with netCDF4 and read every variable in full.

    Parameters
    ----------
    path
        A NetCDF (classic or netCDF4/HDF5) file.

    Returns
    -------
    NetcdfSummary
        Dimensions and variable names.

    Raises
    ------
    CorruptFileError
        When the file cannot be opened (truncated, not NetCDF, a zip that was not unpacked) or
        a variable cannot be read (damaged HDF5 chunks).
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        magic = f.read(4)
    if magic == _HINT_ZIP:
        raise CorruptFileError(path, "it is a zip archive, not NetCDF (unpack it first)")
    with NETCDF4_PYTHON_LOCK:  # netCDF-C is not thread-safe: xarray's lock serialises it
        try:
            nc = netCDF4.Dataset(path, "r")
        except OSError as err:
            raise CorruptFileError(path, f"netCDF4 cannot open it ({err})") from err
        try:
            names = []
            for name, var in _walk(nc):
                try:
                    _read_all(var)
                except (OSError, RuntimeError, ValueError, IndexError) as err:
                    raise CorruptFileError(
                        path, f"variable {name!r} cannot be read ({err})"
                    ) from err
                names.append(name)
            dimensions = {name: len(dim) for name, dim in nc.dimensions.items()}
        finally:
            nc.close()
    return NetcdfSummary(
        path=path, size=size, dimensions=MappingProxyType(dimensions), variables=tuple(names)
    )


# ---------------------------------------------------------------------------------------------
# Canonicalisation shared by GRIB and NetCDF

_BY_PARAM: Mapping[tuple[int, LevelType], Variable] = MappingProxyType(
    {(v.param_id, v.level_type): v for v in VARIABLES.values()}
)


def _vocab_variable(param_id: int, pressure: bool) -> Variable | None:
    """The vocabulary's variable for a GRIB parameter on pressure levels or not (129: z/z_sfc)."""
    return _BY_PARAM.get((param_id, LevelType.PRESSURE if pressure else LevelType.SINGLE))


def _vocab_attrs(spec: Variable) -> dict[str, Any]:
    attrs: dict[str, Any] = {"units": spec.units, "long_name": spec.long_name}
    if spec.standard_name:
        attrs["standard_name"] = spec.standard_name
    attrs["GRIB_paramId"] = spec.param_id
    attrs["GRIB_shortName"] = spec.grib_short_name
    return attrs


def _hours(seconds: int) -> int | float:
    hours = seconds / 3600
    return int(hours) if hours.is_integer() else hours


def _interval_amounts(
    series: Sequence[tuple[int, int, np.ndarray | None]], *, positive: bool
) -> list[tuple[np.ndarray | None, int, bool]]:
    """Accumulated fields of one run → amounts over the interval ending at each step.

    Parameters
    ----------
    series
        ``(start s, end s, values)`` of one forecast run (one member, one level), sorted by
        end; ``values`` of any shape, the same for all.
    positive
        Clip differences at 0: packing noise can make a difference of two nearly equal
        accumulations of a non-negative quantity slightly negative.

    Returns
    -------
    list
        Per field ``(amount or None, interval length s, differenced)``: a field that shares
        its start with the one before is that difference, over the interval between their
        ends; any other field is its own amount over ``start..end``; a zero-length interval
        (lead 0 of an accumulation from the start) has no amount.
    """
    out: list[tuple[np.ndarray | None, int, bool]] = []
    previous: tuple[int, int, np.ndarray | None] | None = None
    for start, end, values in series:
        if previous is not None and start == previous[0] and end > previous[1]:
            if values is None or previous[2] is None:
                out.append((None, end - previous[1], True))
            else:
                amount = values - previous[2]
                if positive:
                    np.maximum(amount, 0, out=amount)
                out.append((amount, end - previous[1], True))
        elif end > start:
            out.append((values, end - start, False))
        else:
            out.append((None, 0, False))
        previous = (start, end, values)
    return out


def _common_interval(
    results: Sequence[tuple[np.ndarray | None, int, bool]], path: Path | str, name: str
) -> tuple[int, list[np.ndarray | None]]:
    """The one interval length of a variable's amounts, and the amounts that have it.

    The first field of a run accumulated from its start covers ``0..first step``; where that
    is longer than the steps between the others (leads 6, 9, 12) it gets no amount (NaN)
    rather than one over another interval. Differences over intervals of different lengths
    raise.
    """
    differenced = {w for _, w, diff in results if diff}
    widths = differenced or {w for amount, w, _ in results if amount is not None}
    if len(widths) > 1:
        hours = ", ".join(f"{_hours(w)} h" for w in sorted(widths))
        raise DecodeError(
            path,
            f"{name}: the accumulations cover intervals of different lengths ({hours}), so "
            "their amounts are not comparable; request evenly spaced steps",
        )
    width = widths.pop() if widths else 0
    return width, [amount if w == width else None for amount, w, _ in results]


def _expver_rank(expver: str) -> tuple[int, str]:
    """ERA5 final (0001) before anything else, then the versions in order (ERA5T 0005)."""
    return (0 if expver in ("0001", "") else 1, expver)


def _expver_label(value: Any) -> str:
    """An expver as the archive writes it: 1 → '0001', b'0005' → '0005'."""
    if isinstance(value, bytes):
        value = value.decode()
    text = str(value).strip()
    return f"{int(text):04d}" if text.isdigit() else text


def _expver_note(versions: Sequence[str], filled: Mapping[str, int], total: int) -> str:
    preferred, *others = versions
    fills = "; ".join(f"{v} filled {filled.get(v, 0)} of {total} times" for v in others)
    return f"{'+'.join(versions)}: {preferred} preferred where present; {fills}"


# ---------------------------------------------------------------------------------------------
# GRIB → canonical


@dataclass(frozen=True)
class _GribVariable:
    name: str
    kind: _Kind
    spec: Variable | None


def _grib_variables(kinds: Sequence[_Kind]) -> tuple[list[int], list[_GribVariable]]:
    """One variable per (paramId, pressure or level type, step type); kind index → variable."""
    keys: dict[tuple[int, str, str], int] = {}
    variables: list[_GribVariable] = []
    taken: set[str] = set()
    of_kind: list[int] = []
    for kind in kinds:
        key = (kind.param_id, "pressure" if kind.pressure else kind.type_of_level, kind.step_type)
        if key not in keys:
            spec = _vocab_variable(kind.param_id, kind.pressure)
            name = spec.name if spec is not None else kind.cf_name
            for candidate in (
                name,
                f"{name}_{kind.type_of_level}",
                f"{name}_{kind.type_of_level}_{kind.step_type}",
            ):
                if candidate not in taken:
                    name = candidate
                    break
            taken.add(name)
            keys[key] = len(variables)
            variables.append(_GribVariable(name, kind, spec))
        of_kind.append(keys[key])
    return of_kind, variables


def _grib_attrs(var: _GribVariable, levels: np.ndarray) -> dict[str, Any]:
    if var.spec is not None:
        return _vocab_attrs(var.spec)
    kind = var.kind
    attrs: dict[str, Any] = {
        "units": kind.units,
        "long_name": kind.long_name,
        "GRIB_paramId": kind.param_id,
        "GRIB_shortName": kind.short_name,
        "GRIB_typeOfLevel": kind.type_of_level,
        "GRIB_stepType": kind.step_type,
    }
    if not kind.pressure and levels.size == 1 and kind.type_of_level != "surface":
        attrs["GRIB_level"] = levels[0].item()
    return attrs


def _month_start(seconds: np.ndarray) -> np.ndarray:
    """Seconds since 1970 → the first of their month, at the same time of day."""
    t = seconds.astype("datetime64[s]")
    month = t.astype("datetime64[M]").astype("datetime64[s]")
    day = t.astype("datetime64[D]").astype("datetime64[s]")
    out: np.ndarray = (month + (t - day)).astype(np.int64)
    return out


def _level_coord(levels: np.ndarray) -> np.ndarray:
    whole = np.round(levels)
    return whole.astype(np.int64) if np.allclose(levels, whole, atol=1e-6) else levels


def _grib_amounts(
    path: Path,
    variable: _GribVariable,
    fields: np.ndarray,
    member: np.ndarray,
    level: np.ndarray,
    base: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    values: list[np.ndarray | None],
) -> int:
    """Turn one accumulated variable's fields into amounts, in place in ``values``.

    Parameters
    ----------
    fields
        Message indices of the variable, shape (n,).
    member, level, base, start, end
        Per-message metadata, shape (n_messages,): a run is one (member, level, base time).
    values
        Per-message decoded values; the variable's entries are replaced by their amounts
        (None where no amount over the common interval exists).

    Returns
    -------
    int
        The length of the interval every amount covers, in seconds.
    """
    runs: dict[tuple[int, float, int], list[int]] = defaultdict(list)
    for i in fields.tolist():
        runs[(int(member[i]), float(level[i]), int(base[i]))].append(i)
    in_runs: list[int] = []
    results: list[tuple[np.ndarray | None, int, bool]] = []
    positive = variable.spec is not None and variable.spec.positive
    for run in runs.values():
        run.sort(key=lambda i: (end[i], start[i]))
        in_runs += run
        results += _interval_amounts(
            [(int(start[i]), int(end[i]), values[i]) for i in run], positive=positive
        )
    seconds, amounts = _common_interval(results, path, variable.name)
    for i, amount in zip(in_runs, amounts, strict=True):
        values[i] = amount
    return seconds


def _grib_coords(
    grid: _Grid, time_coords: Sequence[np.ndarray], forecast: bool, others: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """The canonical dataset's coordinates (times in seconds since 1970, leads in seconds)."""
    assert grid.latitude is not None and grid.longitude is not None
    coords: dict[str, Any] = {
        "latitude": (
            "latitude",
            grid.latitude.coords,
            {"units": "degrees_north", "standard_name": "latitude"},
        ),
        "longitude": (
            "longitude",
            grid.longitude.coords,
            {"units": "degrees_east", "standard_name": "longitude"},
        ),
    }
    first = time_coords[0].astype("datetime64[s]").astype("datetime64[ns]")
    if forecast:
        lead = (time_coords[1] * 10**9).astype("timedelta64[ns]")
        coords["init_time"] = ("init_time", first, {"long_name": "initial time of forecast"})
        coords["lead_time"] = ("lead_time", lead, {"long_name": "time since init_time"})
        coords["valid_time"] = (
            ("init_time", "lead_time"),
            first[:, None] + lead[None, :],
            {"standard_name": "time", "long_name": "valid time"},
        )
    else:
        coords["time"] = ("time", first, {"standard_name": "time", "long_name": "valid time"})
    for name, values in others.items():
        if name == "number":
            coords[name] = (name, values.astype(np.int64), {"long_name": "ensemble member"})
        elif name == "level":
            level_attrs = {"units": "hPa", "long_name": "pressure level", "positive": "down"}
            coords[name] = (name, _level_coord(values), level_attrs)
        else:
            coords[name] = (name, _level_coord(values), {"long_name": name})
    return coords


def _assemble(scan: _Scan, *, forecast: bool | None) -> xr.Dataset:
    """Lay the scanned fields out in the canonical form (see the banner above)."""
    path = scan.path
    # grid sections may differ in what is no geometry (GRIB1 hybrid levels carry their
    # vertical coefficients there): the fields must share one geometry
    geometries = {scan.grids[g].geometry for g in set(scan.grid)}
    if len(geometries) > 1:
        shown = ", ".join(sorted(f"{g[1][0]}×{g[1][1]} {g[0]}" for g in geometries))
        raise DecodeError(
            path, f"its fields lie on {len(geometries)} grids ({shown}); request them separately"
        )
    grid = scan.grids[scan.grid[0]]
    if grid.problem:
        raise DecodeError(path, grid.problem)
    assert grid.latitude is not None and grid.longitude is not None

    of_kind, variables = _grib_variables(scan.kinds)
    var = np.asarray([of_kind[k] for k in scan.kind], dtype=np.int64)
    member = np.asarray(scan.member, dtype=np.int64)
    level = np.asarray(scan.level, dtype=np.float64)
    base = np.asarray(scan.base, dtype=np.int64)
    start = np.asarray(scan.start, dtype=np.int64)
    end = np.asarray(scan.end, dtype=np.int64)
    valid = base + end
    monthly = np.fromiter((s in _MONTHLY_STREAMS for s in scan.stream), bool, len(scan.stream))
    if monthly.any():
        valid[monthly] = _month_start(valid[monthly])
    values: list[np.ndarray | None] = list(scan.values)

    # ---- accumulations → amounts over a stated interval, message by message
    interval = {
        vi: _grib_amounts(
            path, v, np.flatnonzero(var == vi), member, level, base, start, end, values
        )
        for vi, v in enumerate(variables)
        if v.kind.step_type == "accum"
    }

    # ---- time layout: valid time, unless several runs give the same valid time
    expvers = sorted(set(scan.expver) - {""}, key=_expver_rank)
    preference = {e: i for i, e in enumerate(["", *expvers])}
    rank = np.asarray([preference[e] for e in scan.expver], dtype=np.int64)
    if forecast is None:
        keys = np.stack([var, member, np.round(level * 1000).astype(np.int64), valid, rank])
        forecast = np.unique(keys, axis=1).shape[1] < keys.shape[1]
    if forecast:
        time_dims: tuple[str, ...] = ("init_time", "lead_time")
        time_keys = [base, end]
    else:
        time_dims, time_keys = ("time",), [valid]
    time_coords = [np.unique(k) for k in time_keys]

    # ---- the other dimensions, per variable, with coordinates shared across variables
    var_dims: list[tuple[str, ...]] = []
    extra_coords: dict[str, set[float]] = defaultdict(set)
    for vi, v in enumerate(variables):
        mine = var == vi
        dims: list[str] = []
        if np.unique(member[mine]).size > 1:
            dims.append("number")
            extra_coords["number"].update(member[mine].tolist())
        own_levels = np.unique(level[mine])
        if v.kind.pressure:
            dims.append("level")
            extra_coords["level"].update(own_levels.tolist())
        elif own_levels.size > 1:
            dims.append(v.kind.type_of_level)
            extra_coords[v.kind.type_of_level].update(own_levels.tolist())
        var_dims.append(tuple(dims))
    coords_of = {name: np.array(sorted(vals)) for name, vals in extra_coords.items()}

    n_lat, n_lon = grid.latitude.coords.size, grid.longitude.coords.size
    data_vars: dict[str, xr.Variable] = {}
    used_expver: dict[int, set[int]] = defaultdict(set)  # expver rank -> first-axis positions
    for vi, v in enumerate(variables):
        idx = np.flatnonzero(var == vi)
        positions: list[np.ndarray] = [
            np.searchsorted(c, k[idx]) for c, k in zip(time_coords, time_keys, strict=True)
        ]
        shape: list[int] = [c.size for c in time_coords]
        for dim in var_dims[vi]:
            coord = coords_of[dim]
            source = member if dim == "number" else level
            positions.append(np.searchsorted(coord, source[idx]))
            shape.append(coord.size)
        slots = np.ravel_multi_index(positions, shape)
        # one field per slot: where ERA5 and ERA5T overlap, the preferred expver
        order = np.lexsort((idx, rank[idx], slots))  # by slot, then preference, then file
        sorted_slots, sorted_rank = slots[order], rank[idx][order]
        first = np.r_[True, sorted_slots[1:] != sorted_slots[:-1]]
        twice = ~first[1:] & (sorted_rank[1:] == sorted_rank[:-1])
        if twice.any():
            dup = int(idx[order][1:][twice][0])
            raise DecodeError(
                path,
                f"it holds {v.name} twice for member {member[dup]}, level {level[dup]:g}, "
                f"at {np.datetime64(int(valid[dup]), 's')}; a product holds each field once",
            )
        keep, unique_slots = idx[order][first], sorted_slots[first]
        if expvers:  # which version supplied each time (the first axis)
            first_axis = unique_slots // int(np.prod(shape[1:], dtype=np.int64))
            for code, position in np.unique(np.stack([rank[keep], first_axis]), axis=1).T:
                used_expver[code].add(int(position))
        cube = np.empty((int(np.prod(shape)), n_lat, n_lon), dtype=np.float32)
        filled = np.zeros(cube.shape[0], dtype=bool)
        for i, slot in zip(keep.tolist(), unique_slots.tolist(), strict=True):
            field_values = values[i]
            if field_values is not None:
                grid.put(cube[slot], field_values)
                filled[slot] = True
        if not filled.all():
            cube[~filled] = np.nan
        own_levels = np.unique(level[idx])
        attrs = _grib_attrs(v, own_levels)
        if vi in interval:
            attrs["accumulation_hours"] = _hours(interval[vi])
        if monthly[idx].any():
            attrs["time_convention"] = "monthly mean: time is the first day of the month"
        var_dims_all = (*time_dims, *var_dims[vi], "latitude", "longitude")
        data_vars[v.name] = xr.Variable(var_dims_all, cube.reshape(*shape, n_lat, n_lon), attrs)

    coords = _grib_coords(grid, time_coords, forecast, coords_of)
    ds = xr.Dataset(data_vars, coords=coords)
    if expvers:
        ds.attrs["expver"] = ",".join(expvers)
    if len(expvers) > 1:
        # times the preferred version lacks, filled by the next: first-axis positions
        # (valid times, or runs) where a version supplied a field and no preferred one did
        preferred = used_expver[preference[expvers[0]]]
        supplied = {e: len(used_expver[preference[e]] - preferred) for e in expvers[1:]}
        ds.attrs["expver_collapsed"] = _expver_note(expvers, supplied, time_coords[0].size)
    ds.encoding["source"] = str(path)
    return ds


def decode_grib(path: str | Path, *, forecast: bool | None = None) -> xr.Dataset:
    """Decode any GRIB file on a regular grid into the canonical form, without a request.

    One pass over the file with ecCodes checks every message (as :func:`verify_grib`) and
    decodes it straight into place; a damaged file raises and nothing is returned.

    Parameters
    ----------
    path
        A GRIB (edition 1 or 2) file.
    forecast
        Lay the fields out by forecast run and lead (dims ``init_time, lead_time``) rather than
        by valid time (``time``). None (default): by valid time, unless several runs give the
        same variable at the same valid time.

    Returns
    -------
    xarray.Dataset
        In memory, in the canonical form documented in this module's banner: e.g. the real
        ERA5 ensemble file gives ``z`` and ``t`` with dims (time, number, level, latitude,
        longitude), shapes (4, 10, 2, 61, 120), float32.

    Raises
    ------
    CorruptFileError
        The file is damaged (rejected whole).
    DecodeError
        The file is well-formed but cannot be laid out (not a regular grid, several grids,
        a field twice, accumulations over uneven intervals).
    """
    return _assemble(_scan_grib(path, keep_values=True), forecast=forecast)


# ---------------------------------------------------------------------------------------------
# Content against request


def sniff(path: Path) -> str:
    """``grib``, ``netcdf`` or ``zip``, from the file's first bytes (not its name)."""
    with Path(path).open("rb") as f:
        head = f.read(8)
    if head.startswith(b"GRIB"):
        return "grib"
    if head.startswith(_HINT_ZIP):
        return "zip"
    if head.startswith((b"\x89HDF", b"CDF\x01", b"CDF\x02")):
        return "netcdf"
    raise CorruptFileError(path, f"it is neither GRIB, NetCDF nor zip (starts with {head!r})")


def _expected_valid_times(parsed: ParsedRequest) -> np.ndarray:
    """Valid times a product holds: the analysis times, or every run + lead."""
    if not parsed.lead_hours:
        return parsed.times
    leads = np.array(parsed.lead_hours, dtype="timedelta64[h]").astype("timedelta64[ns]")
    return np.unique((parsed.times[:, None] + leads[None, :]).ravel())


def expected_grib_fields(parsed: ParsedRequest) -> Counter[tuple[int, int | None, np.datetime64]]:
    """One ``(paramId, level, valid time)`` per field the request asks for."""
    fields: Counter[tuple[int, int | None, np.datetime64]] = Counter()
    valid = _expected_valid_times(parsed) if not parsed.lead_hours else None
    for name in parsed.variables:
        spec = VARIABLES[name]
        levels: tuple[int | None, ...] = (
            parsed.levels if spec.level_type is LevelType.PRESSURE else (None,)
        )
        if valid is not None:
            times = list(valid)
        else:
            leads = [np.timedelta64(h, "h") for h in parsed.lead_hours]
            times = [t + lead for t in parsed.times for lead in leads]
        for level in levels:
            for t in times:
                fields[(spec.param_id, level, np.datetime64(t, "ns"))] += 1
    return fields


def _describe_fields(fields: Counter[tuple[int, int | None, np.datetime64]], limit: int = 4) -> str:
    by_param: dict[str, list[str]] = {}
    for (param, level, t), _ in fields.items():
        spec = _vocab_variable(param, level is not None)
        name = spec.name if spec is not None else f"paramId {param}"
        label = f"{name}@{level}hPa" if level is not None else name
        by_param.setdefault(label, []).append(str(t)[:16])
    parts = [
        f"{label} at {', '.join(sorted(ts)[:limit])}{' …' if len(ts) > limit else ''}"
        for label, ts in sorted(by_param.items())
    ]
    return "; ".join(parts)


def _describe_grid(grid: tuple[int, int, int, int, int, int]) -> str:
    nj, ni, lat1, lon1, lat2, lon2 = grid
    return (
        f"{nj}×{ni} points from ({lat1 / 1000:g}°N, {lon1 / 1000:g}°E) "
        f"to ({lat2 / 1000:g}°N, {lon2 / 1000:g}°E)"
    )


def check_grib_content(summary: GribSummary, parsed: ParsedRequest) -> None:
    """The fields and grid of a verified GRIB file are exactly those of its request.

    Raises
    ------
    ContentMismatchError
        Naming the fields that are missing or unexpected, or the grid that differs.
    """
    expected = expected_grib_fields(parsed)
    found: Counter[tuple[int, int | None, np.datetime64]] = Counter(
        (p, lvl, t.astype("datetime64[ns]")) for p, lvl, t in summary.fields
    )
    missing, extra = expected - found, found - expected
    if missing or extra:
        problems = []
        if missing:
            problems.append(
                f"missing {sum(missing.values())} field(s): {_describe_fields(missing)}"
            )
        if extra:
            problems.append(f"unexpected {sum(extra.values())} field(s): {_describe_fields(extra)}")
        raise ContentMismatchError(
            summary.path, "it does not match its request: " + "; ".join(problems)
        )
    grid = product_grid(parsed.dataset, parsed.area)
    want = (
        grid.shape[0],
        grid.shape[1],
        round(grid.latitudes[0] * 1000),
        round(grid.longitudes[0] * 1000),
        round(grid.latitudes[-1] * 1000),
        round(grid.longitudes[-1] * 1000),
    )
    if summary.grids != {want}:
        found_grids = " and ".join(_describe_grid(g) for g in sorted(summary.grids))
        raise ContentMismatchError(
            summary.path,
            f"it covers another area: its grid is {found_grids}, the request's area "
            f"{list(parsed.area) if parsed.area else 'global'} is {_describe_grid(want)}",
        )


def verify_product(path: Path, parsed: ParsedRequest) -> None:
    """Check a downloaded product whole before it enters the cache.

    GRIB: every message decodes, and the fields and grid are exactly the request's. NetCDF
    (or a zip of NetCDF): every variable reads, and the decoded content matches the request.

    Raises
    ------
    CorruptFileError
        Damaged file (``ContentMismatchError`` when well-formed but not what was asked).
    """
    kind = sniff(path)
    if kind == "grib":
        check_grib_content(verify_grib(path), parsed)
    else:
        decode_product(path, parsed)


# ---------------------------------------------------------------------------------------------
# NetCDF → canonical

_NETCDF_LEVELS = ("pressure_level", "isobaricInhPa", "isobaricInPa", "plev", "level")


def _netcdf_levels(ds: xr.Dataset) -> xr.Dataset:
    """The pressure coordinate → ``level`` in whole hPa, ascending (files in Pa converted)."""
    for name in _NETCDF_LEVELS:
        if name not in ds.coords:
            continue
        coord = ds[name]
        values = np.asarray(coord.values, dtype=np.float64)
        units = str(coord.attrs.get("units", "")).strip()
        in_pa = name == "isobaricInPa" or units == "Pa" or (units == "" and values.max() > 1100)
        hpa = values / 100.0 if in_pa else values
        ds = ds.drop_vars(name).assign_coords({name: (coord.dims, _level_coord(hpa))})
        if name in ds.dims:
            ds = ds.rename({name: "level"}) if name != "level" else ds
        else:  # one level written as a scalar coordinate
            ds = ds.drop_vars(name).expand_dims(level=_level_coord(np.atleast_1d(hpa)))
        ds["level"].attrs = {"units": "hPa", "long_name": "pressure level", "positive": "down"}
        if ds.sizes["level"] > 1 and not bool((np.diff(ds["level"].values) > 0).all()):
            ds = ds.sortby("level")
        break
    return ds


def _collapse_expver(ds: xr.Dataset) -> xr.Dataset:
    """ERA5 (expver 0001) and ERA5T (0005) in one file → one field per time.

    Older converters give an ``expver`` dimension with NaN where a version has no data; the
    current one an ``expver`` coordinate along time. The final version wins and ERA5T fills
    the times that are not final yet; what was merged is recorded in the attributes.
    """
    if "expver" not in ds.variables:
        return ds
    if "expver" not in ds.dims:
        versions = sorted({_expver_label(v) for v in np.atleast_1d(ds["expver"].values)})
        ds = ds.drop_vars("expver")
        ds.attrs["expver"] = ",".join(sorted(versions, key=_expver_rank))
        return ds
    labels = [_expver_label(v) for v in ds["expver"].values]
    order = sorted(range(len(labels)), key=lambda i: _expver_rank(labels[i]))
    versions = [labels[i] for i in order]
    merged = ds.isel(expver=order[0], drop=True)
    time_dim = next((d for d in ("valid_time", "time", "init_time") if d in ds.dims), "")
    filled: dict[str, int] = {}
    for i, version in zip(order[1:], versions[1:], strict=True):
        other = ds.isel(expver=i, drop=True)
        spatial = [str(d) for d in merged.dims if d != time_dim]
        lacking = merged.to_dataarray().isnull().all(dim=["variable", *spatial])
        having = other.to_dataarray().notnull().any(dim=["variable", *spatial])
        filled[version] = int((lacking & having).sum())
        merged = merged.combine_first(other)
    merged.attrs = dict(ds.attrs)
    merged.attrs["expver"] = ",".join(versions)
    total = merged.sizes.get(time_dim, 1)
    merged.attrs["expver_collapsed"] = _expver_note(versions, filled, total)
    return merged


def _netcdf_names(ds: xr.Dataset, dataset_id: str, path: Path) -> xr.Dataset:
    """The stores' variable names → vocabulary names (by GRIB_paramId where the file has it)."""
    renames: dict[str, str] = {}
    unknown: list[str] = []
    for name, da in ds.data_vars.items():
        pressure = "level" in da.dims
        param = da.attrs.get("GRIB_paramId")
        spec = _vocab_variable(int(param), pressure) if param is not None else None
        if spec is None:
            matches = [
                v
                for v in VARIABLES.values()
                if dataset_id in v.request_names
                and v.netcdf_key == name
                and (v.level_type is LevelType.PRESSURE) == pressure
            ]
            spec = matches[0] if len(matches) == 1 else None
        if spec is None or dataset_id not in spec.request_names:
            unknown.append(str(name))
            continue
        renames[str(name)] = spec.name
    if unknown:
        raise ContentMismatchError(
            path, f"variables {unknown} are not in the vocabulary of {dataset_id}"
        )
    return ds.rename(renames)


def _orient(ds: xr.Dataset) -> xr.Dataset:
    """Latitude north → south, longitude increasing within [-180, 180) (copies only if needed)."""
    lat = _latitude_order(ds["latitude"].values)
    lon = _longitude_order(ds["longitude"].values)
    if not lat.identity or not lon.identity:
        ds = ds.isel(latitude=lat.index, longitude=lon.index)
    return ds.assign_coords(
        latitude=("latitude", lat.coords, {"units": "degrees_north", "standard_name": "latitude"}),
        longitude=(
            "longitude",
            lon.coords,
            {"units": "degrees_east", "standard_name": "longitude"},
        ),
    )


def _canonical_netcdf(raw: xr.Dataset, parsed: ParsedRequest, path: Path) -> xr.Dataset:
    """One NetCDF part of a product → the canonical form."""
    forecast = bool(parsed.lead_hours)
    ds = raw
    if forecast:
        ds = ds.rename({"forecast_reference_time": "init_time", "forecast_period": "lead_time"})
        if not np.issubdtype(ds["lead_time"].dtype, np.timedelta64):
            hours = np.asarray(ds["lead_time"].values, dtype=np.int64)
            ds = ds.assign_coords(lead_time=hours.astype("timedelta64[h]").astype("<m8[ns]"))
        ds = ds.assign_coords(init_time=ds["init_time"].values.astype("datetime64[ns]"))
    else:
        ds = _collapse_expver(ds)
        if "valid_time" in ds.dims:
            ds = ds.rename({"valid_time": "time"})
        ds = ds.assign_coords(time=ds["time"].values.astype("datetime64[ns]"))
    ds = _netcdf_levels(ds)
    keep = set(ds.dims)
    ds = ds.drop_vars([c for c in ds.coords if c not in keep])
    if forecast:
        ds = ds.assign_coords(valid_time=ds["init_time"] + ds["lead_time"])
        ds["valid_time"].attrs = {"standard_name": "time", "long_name": "valid time"}
    ds = _netcdf_names(ds, parsed.dataset, path)
    ds = _orient(ds)
    for name in list(ds.data_vars):
        spec = VARIABLES[str(name)]
        attrs = _vocab_attrs(spec)
        if spec.time_kind is TimeKind.ACCUMULATED:
            if forecast:  # accumulated from the start of each run: difference the leads
                da = ds[name].transpose("init_time", "lead_time", ...)
                leads = (ds["lead_time"].values // np.timedelta64(1, "s")).astype(int)
                data = np.asarray(da.values, dtype=np.float32)
                out = np.empty_like(data)
                widths: list[tuple[np.ndarray | None, int, bool]] = []
                for run in range(data.shape[0]):
                    widths += _interval_amounts(
                        [(0, int(lead), data[run, j]) for j, lead in enumerate(leads)],
                        positive=spec.positive,
                    )
                seconds, amounts = _common_interval(widths, path, str(name))
                for k, amount in enumerate(amounts):
                    out[divmod(k, leads.size)] = np.nan if amount is None else amount
                ds[name] = (da.dims, out)
                attrs["accumulation_hours"] = _hours(seconds)
            else:  # ERA5: the stores' converter gives the amount over the hour ending at time
                attrs["accumulation_hours"] = 1
        ds[name].attrs = attrs
    return ds


def _open_netcdf_parts(path: Path, kind: str, stack: ExitStack) -> list[tuple[Path, xr.Dataset]]:
    """The verified NetCDF file(s) of a product, loaded: one, or the members of a zip."""
    if kind == "netcdf":
        members = [path]
    else:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aircast-unzip-")))
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
                if bad is not None:
                    raise CorruptFileError(path, f"zip member {bad!r} fails its CRC check")
                names = [m for m in archive.namelist() if m.endswith(".nc")]
                archive.extractall(tmp, members=names)
        except zipfile.BadZipFile as err:
            raise CorruptFileError(path, f"not a readable zip archive ({err})") from err
        members = [tmp / name for name in names]
    parts = []
    for member in members:
        verify_netcdf(member)
        # xarray's netCDF4 backend takes NETCDF4_PYTHON_LOCK itself
        ds = xr.open_dataset(member, engine="netcdf4", decode_timedelta=False)
        parts.append((member, stack.enter_context(ds).load()))
    return parts


# ---------------------------------------------------------------------------------------------
# Products


def decode_product(path: str | Path, parsed: ParsedRequest) -> xr.Dataset:
    """Decode a product into the canonical form and check it against its request.

    GRIB goes through :func:`decode_grib`'s single pass (integrity included), laid out by
    forecast run and lead for the CAMS forecast and by valid time otherwise, after its fields
    and grid are checked against the request; NetCDF (or a zip of NetCDF) is read with
    netCDF4 after every variable has been read once.

    Parameters
    ----------
    path
        A GRIB, NetCDF or zip-of-NetCDF file as the store delivered it.
    parsed
        The request it answers (:func:`aircast.catalogue.validate_request`).

    Returns
    -------
    xarray.Dataset
        In memory, in the canonical form (module banner): reanalysis variables with dims
        (time[, level], latitude, longitude), forecast variables with (init_time, lead_time
        [, level], latitude, longitude); vocabulary names and units, ``source`` = dataset.

    Raises
    ------
    CorruptFileError
        Damaged file. ``ContentMismatchError`` names what is missing or unexpected.
    DecodeError
        Accumulations over uneven intervals (request evenly spaced leads).
    """
    path = Path(path)
    kind = sniff(path)
    forecast = bool(parsed.lead_hours)
    if kind == "grib":
        scan = _scan_grib(path, keep_values=True)
        check_grib_content(scan.summary(), parsed)
        merged = _assemble(scan, forecast=forecast)
    else:
        with ExitStack() as stack:
            parts = [
                _canonical_netcdf(raw, parsed, member)
                for member, raw in _open_netcdf_parts(path, kind, stack)
            ]
            # the parts hold different variables: "drop_conflicts" keeps each variable's
            # attributes and the expver record the parts agree on
            merged = xr.merge(
                parts, compat="no_conflicts", join="outer", combine_attrs="drop_conflicts"
            )
        merged.encoding["source"] = str(path)
    order = ("init_time", "lead_time") if forecast else ("time",)
    canonical = (*order, "level", "latitude", "longitude")
    if any(
        tuple(d for d in canonical if d in da.dims) != da.dims for da in merged.data_vars.values()
    ):
        merged = merged.transpose(*canonical, missing_dims="ignore")
    for name in list(merged.data_vars):
        spec = VARIABLES.get(str(name))
        if spec is None or parsed.dataset not in spec.request_names:
            raise ContentMismatchError(
                path, f"variable {name!r} is not in the vocabulary of {parsed.dataset}"
            )
        variable = merged.variables[name]
        if variable.dtype != np.float32:  # NetCDF parts may come as float64
            variable.values = variable.values.astype(np.float32)
        variable.attrs["source"] = parsed.dataset  # in place: no re-merge of the dataset
    check_decoded(merged, parsed, path)
    return merged


def check_decoded(ds: xr.Dataset, parsed: ParsedRequest, path: Path | str = "<product>") -> None:
    """A decoded product holds its request's variables, times, levels and grid, canonically.

    Also the boundary check of the canonical form: every variable's dims in canonical order
    (``time`` or ``init_time, lead_time``, then ``level``, ``latitude``, ``longitude``) and
    the grid's coordinates exactly the product grid's, north to south and west to east.

    Raises
    ------
    ContentMismatchError
        Naming what is missing or out of place.
    """
    problems = []
    missing = [v for v in parsed.variables if v not in ds.data_vars]
    if missing:
        problems.append(f"variables {missing} are missing")
    first = ("init_time", "lead_time") if parsed.lead_hours else ("time",)
    for name, da in ds.data_vars.items():
        want_dims = (*first, *(("level",) if "level" in da.dims else ()), "latitude", "longitude")
        if da.dims != want_dims:
            problems.append(f"{name} has dims {da.dims}, not {want_dims}")
    if parsed.lead_hours:
        want_init = set(parsed.times.astype("datetime64[ns]").tolist())
        got_init = set(ds["init_time"].values.astype("datetime64[ns]").tolist())
        if want_init - got_init:
            shown = sorted(str(np.datetime64(t, "ns"))[:16] for t in want_init - got_init)
            problems.append(f"runs {shown} are missing")
        want_leads = set(parsed.lead_hours)
        got_leads = {int(h) for h in ds["lead_time"].values / np.timedelta64(1, "h")}
        if want_leads - got_leads:
            problems.append(f"leads {sorted(want_leads - got_leads)} h are missing")
    else:
        want = set(parsed.times.astype("datetime64[ns]").tolist())
        got = set(ds["time"].values.astype("datetime64[ns]").tolist()) if "time" in ds else set()
        if want - got:
            shown = sorted(str(np.datetime64(t, "ns"))[:16] for t in want - got)
            problems.append(f"times {shown[:6]}{' …' if len(shown) > 6 else ''} are missing")
    got_levels = set(ds["level"].values.tolist()) if "level" in ds.coords else set()
    if parsed.levels and set(parsed.levels) - got_levels:
        problems.append(f"levels {sorted(set(parsed.levels) - got_levels)} hPa are missing")
    grid = product_grid(parsed.dataset, parsed.area)
    want_lon = np.sort(((grid.longitudes + 180.0) % 360.0) - 180.0)
    if (ds.sizes.get("latitude"), ds.sizes.get("longitude")) != grid.shape or not (
        np.allclose(ds["latitude"].values, grid.latitudes, atol=1e-6)
        and np.allclose(ds["longitude"].values, want_lon, atol=1e-6)
    ):
        lat, lon = ds["latitude"].values, ds["longitude"].values
        covers = (
            f"{lat.size}×{lon.size} points, {lat.max():g}..{lat.min():g}°N, "
            f"{lon.min():g}..{lon.max():g}°E"
            if lat.size and lon.size
            else "no grid"
        )
        problems.append(
            f"it covers another area: {covers}, not the requested area's "
            f"{grid.shape[0]}×{grid.shape[1]} points, {grid.latitudes[0]:g}..{grid.latitudes[-1]:g}"
            f"°N, {want_lon[0]:g}..{want_lon[-1]:g}°E"
        )
    if problems:
        raise ContentMismatchError(path, "it does not match its request: " + "; ".join(problems))


__all__ = [
    "GRIB_BACKEND_KWARGS",
    "GRIB_OPEN_KWARGS",
    "GRIB_PADDING",
    "DecodeError",
    "GribSummary",
    "NetcdfSummary",
    "check_decoded",
    "check_grib_content",
    "clear_caches",
    "decode_grib",
    "decode_product",
    "expected_grib_fields",
    "open_grib",
    "sniff",
    "verify_grib",
    "verify_netcdf",
    "verify_product",
]
