"""GRIB files: one pass over every message, what a file holds, and its fields against a request.

Integrity
    :func:`verify_grib` decodes every GRIB message. A download that is truncated or damaged is
    rejected whole with :class:`~aircast.errors.CorruptFileError`, never half-loaded: cfgrib on
    its own skips a damaged message with a warning and returns the rest, which would silently
    leave holes in the training store. :func:`scan_grib` is that pass; keeping the values, it
    is also what :func:`aircast.sources.grib_canonical.decode_grib` lays out, so a damaged
    file raises before anything is returned.
Content against request
    :func:`check_grib_content` checks that a verified file holds exactly the fields (variables,
    levels, times) and the grid of its request, and raises
    :class:`~aircast.errors.ContentMismatchError` naming what is missing.

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

import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

import cfgrib
import eccodes
import numpy as np
import xarray as xr

from aircast.catalogue import ParsedRequest, product_grid
from aircast.errors import ContentMismatchError, CorruptFileError
from aircast.sources.canonical import (
    AxisOrder,
    DecodeError,
    latitude_order,
    longitude_order,
    vocab_variable,
)
from aircast.vocab import VARIABLES, LevelType

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
        corners in millidegrees as GRIB1 stores them; longitudes as the file states them
        (GRIB1 signed, GRIB2 in [0, 360°)), compared modulo 360° (:func:`same_grid`).
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
MONTHLY_STREAMS = frozenset(
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
class FieldKind:
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


def _read_kind(handle: int) -> FieldKind:
    get = eccodes.codes_get_string
    param_id = int(eccodes.codes_get_long(handle, "paramId"))
    short_name = get(handle, "shortName")
    cf_name = get(handle, "cfVarName")
    if cf_name in ("", "unknown"):
        cf_name = short_name if short_name not in ("", "unknown") else f"p{param_id}"
    type_of_level = get(handle, "typeOfLevel")
    return FieldKind(
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
class GribGrid:
    """A regular grid's canonical coordinates and how a decoded field lands on them.

    ``problem`` is set instead when the grid cannot be laid out (spectral, reduced Gaussian,
    rotated …); the file still verifies, only the canonical decode refuses it.
    """

    summary: tuple[int, int, int, int, int, int]
    geometry: tuple[Any, ...]  # what makes two grid sections the same grid
    shape: tuple[int, int] = (0, 0)  # (Nj, Ni) as stored
    columns_first: bool = False  # jPointsAreConsecutive: stored column by column
    alternate_rows: bool = False  # alternativeRowScanning: every second row stored reversed
    latitude: AxisOrder | None = None
    longitude: AxisOrder | None = None
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
        if self.alternate_rows:  # rows 1, 3, … as stored run the other way: turn them back
            field = field.copy()
            field[1::2] = field[1::2, ::-1]
        rows, cols = self.latitude.runs, self.longitude.runs
        if rows and cols:  # a few slice copies: no index arrays, no temporaries
            for out_rows, in_rows in rows:
                for out_cols, in_cols in cols:
                    out[out_rows, out_cols] = field[in_rows, in_cols]
        else:
            out[...] = field[np.ix_(self.latitude.index, self.longitude.index)]


#: Scanning mode flags (GRIB1 code table 8, GRIB2 flag table 3.4; bit 1 is the high bit):
#: iScansNegatively and jScansPositively give the corners' order (read from the corners
#: themselves), jPointsAreConsecutive the storage by columns, alternativeRowScanning (GRIB2
#: only) every second row stored the other way. The decode honours these four; bits 5-8
#: (GRIB2: rows offset by half a step, rows of Ni and Ni - 1 points; GRIB1: reserved) are
#: refused, as is alternation of columns, which WMO and ecCodes read differently.
_I_NEGATIVE, _J_POSITIVE, _J_CONSECUTIVE, _ALTERNATE_ROWS = 0x80, 0x40, 0x20, 0x10

_HONOURED_SCANNING = {
    1: _I_NEGATIVE | _J_POSITIVE | _J_CONSECUTIVE,
    2: _I_NEGATIVE | _J_POSITIVE | _J_CONSECUTIVE | _ALTERNATE_ROWS,
}


def _scanning_problem(scanning: int, edition: int) -> str:
    """Why a grid's scanning mode cannot be laid out, or '' when the decode honours it."""
    others = scanning & 0xFF & ~_HONOURED_SCANNING[edition]
    if others:
        table = "flag table 3.4" if edition == 2 else "code table 8"
        return (
            f"its scanning mode {scanning:08b} sets bit(s) "
            f"{', '.join(str(8 - b) for b in range(8) if others >> b & 1)} of GRIB{edition} "
            f"{table} (rows offset or of unequal length{'' if edition == 2 else ', or reserved'}),"
            " which AirCast does not lay out; ask the data store for a regular grid, or "
            "regrid the file first (e.g. with `cdo remapbil`)"
        )
    if scanning & _J_CONSECUTIVE and scanning & _ALTERNATE_ROWS:
        return (
            f"its scanning mode {scanning:08b} stores points by columns (jPointsAreConsecutive) "
            "with alternate columns reversed (alternativeRowScanning), an order that WMO and "
            "ecCodes read differently, so AirCast refuses to guess; ask the data store for "
            "the points by rows, or rewrite the file (e.g. with `cdo copy`)"
        )
    return ""


def _read_grid(handle: int, edition: int) -> GribGrid:
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
        return GribGrid(
            summary,
            geometry,
            problem=f"its grid is {grid_type!r}, not a regular latitude/longitude grid; "
            "interpolate it to one first (e.g. with `cdo remapbil`)",
        )
    problem = _scanning_problem(scanning, edition)
    if problem:
        return GribGrid(summary, geometry, problem=problem)
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
            return GribGrid(
                summary, geometry, problem=f"its Gaussian grid has {nj} rows, not {latitudes.size}"
            )
    span = ((lon2 - lon1) if west_to_east else (lon1 - lon2)) % 360.0
    if ni > 1 and np.isclose(span, 0.0):
        span = 360.0  # first and last column both at the same meridian: a closed global grid
    step = span / (ni - 1) if ni > 1 else 0.0
    longitudes = lon1 + (step if west_to_east else -step) * np.arange(ni)
    return GribGrid(
        summary,
        geometry,
        shape=(nj, ni),
        columns_first=bool(scanning & _J_CONSECUTIVE),
        alternate_rows=bool(scanning & _ALTERNATE_ROWS),
        latitude=latitude_order(latitudes),
        longitude=longitude_order(longitudes),
    )


#: Kinds and grids by signature, shared by every file a process decodes: a signature
#: determines its kind (or grid) completely, and a worker decodes thousands of files of the
#: same few kinds, so each is read from ecCodes once per process. Bounded: an odd process
#: cannot grow them without limit.
_KIND_CACHE: dict[tuple[Any, ...], FieldKind] = {}

_GRID_CACHE: dict[tuple[int, str], GribGrid] = {}

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
class GribScan:
    """What one pass over a GRIB file found: per-message metadata (parallel lists), values.

    Times are int64 seconds since 1970; ``start``/``end`` are the step range in seconds
    (``start == end`` for instantaneous fields); ``level`` is in hPa for pressure kinds and
    the file's level value otherwise.
    """

    path: Path
    size: int
    kinds: list[FieldKind] = field(default_factory=list)
    grids: list[GribGrid] = field(default_factory=list)
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


def scan_grib(path: str | Path, *, keep_values: bool) -> GribScan:
    """Walk every message of ``path``: check it, read what it is, decode its values.

    Raises
    ------
    CorruptFileError
        As :func:`verify_grib` describes.
    """
    path = Path(path)
    scan = GribScan(path=path, size=path.stat().st_size)
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
    return scan_grib(path, keep_values=False).summary()


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


# ---------------------------------------------------------------------------------------------
# Content against request


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
        spec = vocab_variable(param, level is not None)
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


_FULL_CIRCLE_M = 360_000  # millidegrees


def same_grid(
    found: tuple[int, int, int, int, int, int], want: tuple[int, int, int, int, int, int]
) -> bool:
    """Whether two grid summaries (:attr:`GribSummary.grids`) are the same grid.

    Longitudes are compared modulo 360°: GRIB2 cannot store a negative longitude, so a field
    from -6.75° to 48.75° is stored from 353.25° to 48.75°, the same points as GRIB1's signed
    -6750 to 48750 millidegrees.
    """
    nj, ni, lat1, lon1, lat2, lon2 = found
    w_nj, w_ni, w_lat1, w_lon1, w_lat2, w_lon2 = want
    return (nj, ni, lat1, lat2) == (w_nj, w_ni, w_lat1, w_lat2) and all(
        (a - b) % _FULL_CIRCLE_M == 0 for a, b in ((lon1, w_lon1), (lon2, w_lon2))
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
    if len(summary.grids) != 1 or not same_grid(next(iter(summary.grids)), want):
        found_grids = " and ".join(_describe_grid(g) for g in sorted(summary.grids))
        raise ContentMismatchError(
            summary.path,
            f"it covers another area: its grid is {found_grids}, the request's area "
            f"{list(parsed.area) if parsed.area else 'global'} is {_describe_grid(want)}",
        )
