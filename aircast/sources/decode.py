"""How AirCast opens and checks the files the data stores deliver.

This module holds the project's decoding settings: the one set of cfgrib options every GRIB
read uses, and the integrity checks that run before anything is decoded. A download that is
truncated or damaged is rejected whole with :class:`~aircast.errors.CorruptFileError`, never
half-loaded: cfgrib on its own skips a damaged message with a warning and returns the rest,
which would silently leave holes in the training store. :func:`open_grib` therefore verifies
the file first.

The full decoding pipeline (canonical names, units, orientation) builds on these functions.
"""

from __future__ import annotations

import tempfile
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
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
from aircast.errors import ContentMismatchError, CorruptFileError
from aircast.vocab import VARIABLES, LevelType, TimeKind

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
        Pressure levels in hPa of ``isobaricInhPa`` fields, sorted unique.
    valid_times
        Valid times, datetime64[ns], sorted unique, shape (n_times,).
    fields
        One ``(paramId, pressure level or None, valid time)`` per message, for comparing a
        file with its request.
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


_GRID_KEYS = (
    "Nj",
    "Ni",
    "latitudeOfFirstGridPointInDegrees",
    "longitudeOfFirstGridPointInDegrees",
    "latitudeOfLastGridPointInDegrees",
    "longitudeOfLastGridPointInDegrees",
)


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


def _valid_time(date: int, time: int) -> np.datetime64:
    """datetime64[ns] of GRIB ``validityDate`` (YYYYMMDD) and ``validityTime`` (HHMM)."""
    day = np.datetime64(f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d}", "ns")
    return day + np.timedelta64(time // 100, "h") + np.timedelta64(time % 100, "m")


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
    path = Path(path)
    size = path.stat().st_size
    editions: set[int] = set()
    short_names: set[str] = set()
    param_ids: set[int] = set()
    type_of_levels: set[str] = set()
    pressure_levels: set[int] = set()
    valid_times: set[np.datetime64] = set()
    fields: list[tuple[int, int | None, np.datetime64]] = []
    grids: set[tuple[int, int, int, int, int, int]] = set()
    end = 0  # end of the last good message: everything up to it has been accounted for
    count = 0
    with path.open("rb") as stream, path.open("rb") as raw:
        for number, handle in _messages(stream, path):
            try:
                offset = int(eccodes.codes_get(handle, "offset"))
                length = int(eccodes.codes_get(handle, "totalLength"))
                _check_gap(raw, path, end, offset, f"before message {number}", number)
                values = eccodes.codes_get_values(handle)
                expected = int(eccodes.codes_get(handle, "numberOfDataPoints"))
                if values.size != expected:
                    raise CorruptFileError(
                        path,
                        f"{values.size} values decoded where the grid has {expected}",
                        message_number=number,
                    )
                editions.add(int(eccodes.codes_get(handle, "edition")))
                short_names.add(str(eccodes.codes_get(handle, "shortName")))
                param_ids.add(int(eccodes.codes_get(handle, "paramId")))
                type_of_level = str(eccodes.codes_get(handle, "typeOfLevel"))
                type_of_levels.add(type_of_level)
                level = None
                if type_of_level == "isobaricInhPa":
                    level = int(eccodes.codes_get(handle, "level"))
                    pressure_levels.add(level)
                valid = _valid_time(
                    int(eccodes.codes_get(handle, "validityDate")),
                    int(eccodes.codes_get(handle, "validityTime")),
                )
                valid_times.add(valid)
                fields.append((int(eccodes.codes_get(handle, "paramId")), level, valid))
                nj, ni, *corners = (eccodes.codes_get(handle, k) for k in _GRID_KEYS)
                lat1, lon1, lat2, lon2 = (round(float(c) * 1000) for c in corners)
                grids.add((int(nj), int(ni), lat1, lon1, lat2, lon2))
            except eccodes.GribInternalError as err:
                raise CorruptFileError(
                    path, f"ecCodes cannot decode it ({err})", message_number=number
                ) from err
            finally:
                eccodes.codes_release(handle)
            end = offset + length
            count = number
        if count == 0:
            raise CorruptFileError(
                path,
                f"it holds {size} bytes but no GRIB message (an empty download or an "
                "error page saved as data?)",
            )
        _check_gap(raw, path, end, size, f"after the last complete message ({count})", None)
    return GribSummary(
        path=path,
        size=size,
        n_messages=count,
        editions=tuple(sorted(editions)),
        short_names=tuple(sorted(short_names)),
        param_ids=tuple(sorted(param_ids)),
        type_of_levels=tuple(sorted(type_of_levels)),
        pressure_levels=tuple(sorted(pressure_levels)),
        valid_times=np.array(sorted(valid_times), dtype="datetime64[ns]"),
        fields=tuple(fields),
        grids=frozenset(grids),
    )


def open_grib(path: str | Path, *, verify: bool = True) -> list[xr.Dataset]:
    """Open a GRIB file as a list of datasets, one per compatible hypercube.

    A file may mix hypercubes that one dataset cannot hold (surface and pressure levels,
    instantaneous fields and ERA5's accumulations with their ``time``/``step`` axes); cfgrib's
    ``open_datasets`` groups them, as the data stores' own converter does.

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


__all__ = [
    "GRIB_BACKEND_KWARGS",
    "GRIB_OPEN_KWARGS",
    "GribSummary",
    "NetcdfSummary",
    "open_grib",
    "verify_grib",
    "verify_netcdf",
]


# ---------------------------------------------------------------------------------------------
# Content against request, and the canonical form every later stage relies on
#
# Canonical form (what ``decode_product`` returns, checked at the boundary):
#   reanalysis: dims (time[, level], latitude, longitude)
#   forecast:   dims (init_time, lead_time[, level], latitude, longitude), valid_time coord
#   variables named by the vocabulary (t2m, z_sfc, go3, ...) in vocabulary units, float32,
#   missing values NaN; time UTC datetime64[ns]; level int hPa ascending; latitude north →
#   south; longitude increasing within [-180, 180). Accumulated fields (tp) are amounts over
#   the interval that ends at the valid time, stated in the ``accumulation_hours`` attribute.


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
        name = next((v.name for v in VARIABLES.values() if v.param_id == param), str(param))
        label = f"{name}@{level}hPa" if level is not None else name
        by_param.setdefault(label, []).append(str(t)[:16])
    parts = [
        f"{label} at {', '.join(sorted(ts)[:limit])}{' …' if len(ts) > limit else ''}"
        for label, ts in sorted(by_param.items())
    ]
    return "; ".join(parts)


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
        raise ContentMismatchError(
            summary.path,
            f"its grid {sorted(summary.grids)} (Nj, Ni, corners in millidegrees) "
            f"is not the requested area's {want}",
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


def _rename_to_vocab(ds: xr.Dataset, dataset_id: str, *, netcdf: bool) -> xr.Dataset:
    """cfgrib's / the stores' names → vocabulary names (surface ``z`` → ``z_sfc``)."""
    renames: dict[str, str] = {}
    drops: list[str] = []
    for name, da in ds.data_vars.items():
        on_levels = any(d in da.dims or d in da.coords for d in _LEVEL_NAMES)
        matches = [
            v
            for v in VARIABLES.values()
            if dataset_id in v.request_names
            and (v.netcdf_key if netcdf else v.name if v.name != "z_sfc" else "z") == name
            and (v.level_type is LevelType.PRESSURE) == on_levels
        ]
        if len(matches) != 1:
            drops.append(str(name))
            continue
        renames[str(name)] = matches[0].name
    if drops:
        raise ContentMismatchError(
            ds.encoding.get("source", "<product>"),
            f"variables {drops} are not in the vocabulary of {dataset_id}",
        )
    return ds.rename(renames)


_LEVEL_NAMES = ("isobaricInhPa", "isobaricInPa", "pressure_level", "level")
_DROP_COORDS = (
    "number",
    "surface",
    "heightAboveGround",
    "meanSea",
    "expver",
    "step",
    "valid_time",
    "time",
    "entireAtmosphere",
    "atmosphere",
)


def _collapse_expver(ds: xr.Dataset) -> xr.Dataset:
    """ERA5 (expver 0001) and ERA5T (0005) mixed in recent data: final values win, ERA5T fills
    the times not yet final. Recorded in the attributes."""
    if "expver" not in ds.dims:
        return ds.drop_vars("expver", errors="ignore")
    versions = sorted(str(v) for v in ds["expver"].values)
    merged = ds.sel(expver=versions[0], drop=True)
    for version in versions[1:]:
        merged = merged.combine_first(ds.sel(expver=version, drop=True))
    merged.attrs["expver_collapsed"] = "+".join(versions) + " (earlier version preferred)"
    return merged


def _levels_to_hpa(ds: xr.Dataset) -> xr.Dataset:
    for name in _LEVEL_NAMES:
        if name not in ds.coords:
            continue
        coord = ds[name]
        values = np.asarray(coord.values, dtype="float64")
        units = str(coord.attrs.get("units", "hPa"))
        if name == "isobaricInPa" or units == "Pa" or (values.size and values.max() > 1100):
            values = values / 100.0  # levels written in Pa
        ds = ds.assign_coords({name: (coord.dims, np.round(values).astype("int64"))})
        if name in ds.dims:
            ds = ds.rename({name: "level"})
        elif coord.ndim == 0:
            ds = ds.expand_dims(level=[int(values)]).drop_vars(name)
        ds["level"].attrs = {"units": "hPa", "long_name": "pressure level"}
        break
    return ds


def _orient(ds: xr.Dataset) -> xr.Dataset:
    """Latitude north → south, longitude increasing within [-180, 180)."""
    lon = ((ds["longitude"].values + 180.0) % 360.0) - 180.0
    ds = ds.assign_coords(longitude=np.round(lon, 6), latitude=np.round(ds["latitude"].values, 6))
    ds = ds.sortby("longitude").sortby("latitude", ascending=False)
    if "level" in ds.dims:
        ds = ds.sortby("level")
    return ds


def _era5_accumulations(ds: xr.Dataset) -> xr.Dataset:
    """ERA5 keeps hourly precipitation as 1-hour steps of forecasts started at 06 and 18 UTC
    (cfgrib: dims time × step): lay them out by valid time, each the hour ending there."""
    if "step" not in ds.dims:
        return ds
    stacked = ds.stack(field=("time", "step"))
    valid = stacked["valid_time"].values
    present = ~stacked.isnull().all(dim=("latitude", "longitude")).to_array().all("variable")
    stacked = stacked.isel(field=np.flatnonzero(present.values))
    valid = valid[present.values]
    out = stacked.drop_vars(["field", "time", "step", "valid_time"], errors="ignore")
    out = out.assign_coords(time=("field", valid)).swap_dims(field="time")
    return out.sortby("time")


def _canonical_reanalysis(ds: xr.Dataset, parsed: ParsedRequest, *, netcdf: bool) -> xr.Dataset:
    ds = _collapse_expver(ds)
    if netcdf:
        ds = ds.rename({"valid_time": "time"}) if "valid_time" in ds.dims else ds
    else:
        ds = _era5_accumulations(ds)
        if "time" not in ds.dims:
            ds = ds.expand_dims("time")
    ds = _levels_to_hpa(ds)
    ds = ds.drop_vars([c for c in _DROP_COORDS if c in ds.coords and c not in ds.dims])
    ds = ds.drop_vars([c for c in ("number",) if c in ds.coords], errors="ignore")
    return ds


def _canonical_forecast(ds: xr.Dataset, parsed: ParsedRequest, *, netcdf: bool) -> xr.Dataset:
    if netcdf:
        ds = ds.rename({"forecast_reference_time": "init_time", "forecast_period": "lead_time"})
        if not np.issubdtype(ds["lead_time"].dtype, np.timedelta64):
            hours = ds["lead_time"].values.astype("int64")
            ds = ds.assign_coords(
                lead_time=hours.astype("timedelta64[h]").astype("timedelta64[ns]")
            )
    else:
        ds = ds.rename({"time": "init_time", "step": "lead_time"})
        for dim in ("init_time", "lead_time"):
            if dim not in ds.dims:
                ds = ds.expand_dims(dim)
    ds = _levels_to_hpa(ds)
    ds = ds.drop_vars([c for c in _DROP_COORDS if c in ds.coords and c not in ds.dims])
    ds = ds.assign_coords(valid_time=ds["init_time"] + ds["lead_time"])
    return ds


def _forecast_amounts(ds: xr.Dataset) -> xr.Dataset:
    """The forecast accumulates precipitation from the start of the run: difference it into
    amounts over the interval since the previous lead (NaN at the first lead)."""
    for name, da in ds.data_vars.items():
        if VARIABLES[str(name)].time_kind is not TimeKind.ACCUMULATED:
            continue
        leads = (ds["lead_time"].values / np.timedelta64(1, "h")).astype(int)
        steps = np.diff(leads)
        if steps.size and not (steps == steps[0]).all():
            raise ContentMismatchError(
                ds.encoding.get("source", "<product>"),
                f"{name}: leads {leads.tolist()} are not evenly spaced, so the amounts "
                "between them would cover different intervals; request evenly spaced leads",
            )
        amounts = da.diff("lead_time", label="upper").reindex(lead_time=ds["lead_time"])
        ds[name] = amounts.clip(min=0).astype("float32")  # packing noise can dip below 0
        ds[name].attrs = {**da.attrs, "accumulation_hours": int(steps[0]) if steps.size else 0}
    return ds


def _open_parts(path: Path, kind: str, stack: ExitStack) -> list[tuple[xr.Dataset, bool]]:
    if kind == "grib":
        return [(d, False) for d in open_grib(path)]
    if kind == "netcdf":
        verify_netcdf(path)
        return [(xr.open_dataset(path, engine="netcdf4", decode_timedelta=False), True)]
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aircast-unzip-")))
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise CorruptFileError(path, f"zip member {bad!r} fails its CRC check")
            members = [m for m in archive.namelist() if m.endswith(".nc")]
            archive.extractall(tmp, members=members)
    except zipfile.BadZipFile as err:
        raise CorruptFileError(path, f"not a readable zip archive ({err})") from err
    parts = []
    for member in members:
        verify_netcdf(tmp / member)
        parts.append(
            (xr.open_dataset(tmp / member, engine="netcdf4", decode_timedelta=False).load(), True)
        )
    return parts


def decode_product(path: str | Path, parsed: ParsedRequest) -> xr.Dataset:
    """Decode a product into the canonical form and check it against its request.

    Parameters
    ----------
    path
        A GRIB, NetCDF or zip-of-NetCDF file as the store delivered it.
    parsed
        The request it answers (:func:`aircast.catalogue.validate_request`).

    Returns
    -------
    xarray.Dataset
        Loaded into memory; see the canonical form above.

    Raises
    ------
    CorruptFileError
        Damaged file. ``ContentMismatchError`` names what is missing or unexpected.
    """
    path = Path(path)
    kind = sniff(path)
    forecast = bool(parsed.lead_hours)
    with ExitStack() as stack:
        parts = []
        for raw, netcdf in _open_parts(path, kind, stack):
            raw.encoding["source"] = str(path)
            ds = _rename_to_vocab(raw, parsed.dataset, netcdf=netcdf)
            ds = (_canonical_forecast if forecast else _canonical_reanalysis)(
                ds, parsed, netcdf=netcdf
            )
            parts.append(ds.load())
        merged = xr.merge(parts, compat="no_conflicts", join="outer", combine_attrs="drop")
    merged = _orient(merged)
    order = ("init_time", "lead_time") if forecast else ("time",)
    merged = merged.transpose(*order, "level", "latitude", "longitude", missing_dims="ignore")
    if forecast:
        merged = _forecast_amounts(merged)
    for name in list(merged.data_vars):
        spec = VARIABLES[str(name)]
        merged[name] = merged[name].astype("float32")
        merged[name].attrs = {
            **{k: v for k, v in merged[name].attrs.items() if k == "accumulation_hours"},
            "units": spec.units,
            "long_name": spec.long_name,
            "source": parsed.dataset,
        }
        if spec.time_kind is TimeKind.ACCUMULATED and not forecast:
            merged[name].attrs["accumulation_hours"] = 1  # ERA5: the hour ending at time
    check_decoded(merged, parsed, path)
    return merged


def check_decoded(ds: xr.Dataset, parsed: ParsedRequest, path: Path | str = "<product>") -> None:
    """A decoded product holds exactly its request's variables, times, levels and grid.

    Raises
    ------
    ContentMismatchError
        Naming what is missing.
    """
    problems = []
    missing = [v for v in parsed.variables if v not in ds.data_vars]
    if missing:
        problems.append(f"variables {missing} are missing")
    if parsed.lead_hours:
        want_init = set(parsed.times.astype("datetime64[ns]").tolist())
        got_init = set(ds["init_time"].values.astype("datetime64[ns]").tolist())
        if want_init - got_init:
            problems.append(f"runs {sorted(str(t) for t in want_init - got_init)} are missing")
        want_leads = set(parsed.lead_hours)
        got_leads = {int(h) for h in ds["lead_time"].values / np.timedelta64(1, "h")}
        if want_leads - got_leads:
            problems.append(f"leads {sorted(want_leads - got_leads)} h are missing")
    else:
        want = set(parsed.times.astype("datetime64[ns]").tolist())
        got = set(ds["time"].values.astype("datetime64[ns]").tolist())
        if want - got:
            shown = sorted(str(np.datetime64(t, "ns"))[:16] for t in want - got)
            problems.append(f"times {shown[:6]}{' …' if len(shown) > 6 else ''} are missing")
    if parsed.levels and set(parsed.levels) - set(ds["level"].values.tolist()):
        problems.append(
            f"levels {sorted(set(parsed.levels) - set(ds['level'].values.tolist()))}"
            " hPa are missing"
        )
    grid = product_grid(parsed.dataset, parsed.area)
    want_lon = np.sort(((grid.longitudes + 180.0) % 360.0) - 180.0)
    if (ds.sizes.get("latitude"), ds.sizes.get("longitude")) != grid.shape or not (
        np.allclose(ds["latitude"].values, grid.latitudes, atol=1e-6)
        and np.allclose(ds["longitude"].values, want_lon, atol=1e-6)
    ):
        problems.append(
            f"grid {ds.sizes.get('latitude')}×{ds.sizes.get('longitude')} "
            f"is not the requested area's {grid.shape[0]}×{grid.shape[1]} points"
        )
    if problems:
        raise ContentMismatchError(path, "it does not match its request: " + "; ".join(problems))
