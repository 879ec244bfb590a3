"""Render a validated data-store request into the file the real store would deliver.

The sandbox server hands every accepted request (a :class:`~aircast.catalogue.ParsedRequest`)
to :func:`write_product`, which samples the toy atmosphere on the product's native grid and
writes GRIB or NetCDF with each product's true conventions, so that the pipeline's decoders
meet in the sandbox exactly what they meet in production.

GRIB (edition 1 by default, as the ERA5 and EAC4 archives deliver; edition 2 per dataset)
    Written with ecCodes from the GRIB1 (or GRIB2) samples: centre ``ecmf``, the vocabulary's
    ``paramId``, 16-bit simple packing, latitudes north to south. ``grib_editions`` of
    :func:`write_product` (the sandbox's ``sandbox.grib_edition`` setting) chooses GRIB2 for a
    dataset, as the real stores deliver some products: GRIB2 then carries the MARS labelling in
    local definition 1, accumulations in product template 8 (ecCodes picks the template of each
    ``paramId``) and, as GRIB2 must, longitudes in [0, 360): an area from -6.75° to 48.75° is
    stored from 353.25° to 48.75°. One message per (time, [level],
    variable), in MARS order (date, time, step, level, param) within each archive request;
    a product that mixes level types or archive types (ERA5 analysis fields and the
    short-forecast accumulation ``tp``) is, as in the stores, the concatenation of one MARS
    request per kind: surface analyses, then surface forecasts, then pressure levels.

    - Reanalysis fields: ``dataDate``/``dataTime`` = valid time, step 0.
    - ERA5 ``tp``: as ERA5 archives it, an hourly accumulation of the short forecasts started
      at 06 and 18 UTC. For valid time V the base is the latest 06/18 UTC strictly before V;
      ``stepType`` accum, ``startStep`` = ``endStep`` - 1, ``endStep`` = hours(V - base) in
      1..12. cfgrib shows it with ``time`` (the base) and ``step`` dimensions.
    - CAMS forecast: ``dataDate``/``dataTime`` = the run, ``step`` = lead hour; ``tp``
      accumulated from the run start (``startStep`` 0, ``endStep`` = lead).

NetCDF (the current stores' converter: netCDF4/HDF5, compressed float32)
    Reanalyses: dims ``valid_time`` (int64 seconds since 1970), optional ``pressure_level``
    (float64 hPa, stored 1000 → top as the stores do), ``latitude`` (N → S), ``longitude``;
    scalar ``number`` and per-time ``expver`` coordinates; variables named by the vocabulary's
    ``netcdf_key``. ERA5 ``tp`` is the amount over the hour ending at ``valid_time``.
    CAMS forecast: dims ``forecast_reference_time``, ``forecast_period`` (hours), optional
    ``pressure_level``, ``latitude``, ``longitude``; 2-D ``valid_time`` coordinate.
    Where the stores' converter splits a request into several files the result is a zip of
    them: surface and pressure-level variables of EAC4 and the CAMS forecast go to
    ``data_sfc.nc`` and ``data_plev.nc``; ERA5 single-level instantaneous and accumulated
    variables (different time conventions in the archive) go to
    ``data_stream-oper_stepType-instant.nc`` and ``data_stream-oper_stepType-accum.nc``.

Every product is byte-for-byte deterministic: GRIB carries no wall-clock time, the netCDF-C
library does not record HDF5 object times, the files carry no history or uuid, and zip
entries have a fixed date. ``tests/sandbox/test_products.py`` checks all three.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

import eccodes
import netCDF4
import numpy as np

# netCDF-C and HDF5 are not thread-safe: share xarray's lock so that a server thread writing a
# product never runs netCDF-C alongside xarray (or another product) in the same process
from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

from aircast.catalogue import ParsedRequest, ProductGrid, product_grid
from aircast.vocab import (
    CAMS_EAC4,
    CAMS_FORECAST,
    ERA5_PRESSURE,
    ERA5_SINGLE,
    VARIABLES,
    LevelType,
    TimeKind,
    Variable,
)

MIME_GRIB = "application/x-grib"
MIME_NETCDF = "application/netcdf"
MIME_ZIP = "application/zip"

#: Largest number of grid values requested from the atmosphere in one call (128 MiB float32):
#: products are written in time slabs so that a month of global fields never sits in memory.
MAX_VALUES_PER_SAMPLE = 1 << 25

#: Simple packing precision of the ERA5 and CAMS archives.
GRIB_BITS_PER_VALUE = 16

#: GRIB editions a product can be written in.
GRIB_EDITIONS = (1, 2)

#: Fixed modification time of zip entries (the earliest a zip can hold), for identical bytes.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)

_INSTITUTION = "European Centre for Medium-Range Weather Forecasts"
_EPOCH_UNITS = "seconds since 1970-01-01"
_CALENDAR = "proleptic_gregorian"
#: ERA5's short forecasts that carry accumulations start at these UTC hours.
_ERA5_ACCUMULATION_BASE_HOURS = (6, 18)


class AtmosphereLike(Protocol):
    """What a product needs from the toy atmosphere (``aircast.sandbox.atmosphere``).

    Longitudes are passed as they appear in the product (negative west of 0° when the request's
    area starts there), so the atmosphere must be periodic in longitude.
    """

    def sample(
        self,
        names: Sequence[str],
        times: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        level_hpa: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Analysis fields at valid ``times``.

        Parameters
        ----------
        names
            Vocabulary short names, all of one level type.
        times
            Valid times, datetime64[ns], shape (time,).
        lat, lon
            Grid coordinates in degrees, shapes (lat,) and (lon,).
        level_hpa
            Pressure level for pressure-level names, None for single-level names.

        Returns
        -------
        dict
            name -> float32 array (time, lat, lon) in vocabulary units; ``tp`` is the amount
            over the hour ending at each time (m).
        """
        ...

    def sample_forecast(
        self,
        names: Sequence[str],
        init_time: np.datetime64,
        lead_hours: Sequence[int],
        lat: np.ndarray,
        lon: np.ndarray,
        level_hpa: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Forecast fields of the run started at ``init_time``.

        Returns
        -------
        dict
            name -> float32 array (lead, lat, lon) in vocabulary units; ``tp`` is accumulated
            since ``init_time`` (m).
        """
        ...


# ---------------------------------------------------------------------------------------------
# What a request is made of


@dataclass(frozen=True)
class _Archive:
    """MARS labelling of a dataset's fields (GRIB1 local definition 1)."""

    mars_class: str
    expver: str


# EAC4's expver is ``eac4`` in the archive (its catalogue mapping forces it); ERA5 and the
# CAMS forecast are operational experiment 0001.
_ARCHIVE = {
    ERA5_SINGLE: _Archive("ea", "0001"),
    ERA5_PRESSURE: _Archive("ea", "0001"),
    CAMS_EAC4: _Archive("mc", "eac4"),
    CAMS_FORECAST: _Archive("mc", "0001"),
}


@dataclass(frozen=True)
class _Block:
    """Variables fetched by one archive request: one level type, one archive type.

    ``levels`` is ``(None,)`` for single-level blocks.
    """

    variables: tuple[Variable, ...]
    levels: tuple[int | None, ...]
    mars_type: str  # an / fc

    @property
    def pressure(self) -> bool:
        return self.levels != (None,)


def _is_era5_accumulation(dataset_id: str, var: Variable) -> bool:
    return dataset_id == ERA5_SINGLE and var.time_kind is TimeKind.ACCUMULATED


def _grib_blocks(request: ParsedRequest) -> list[_Block]:
    """The archive requests a GRIB product concatenates, in delivery order."""
    forecast = request.dataset == CAMS_FORECAST
    variables = [VARIABLES[name] for name in request.variables]
    single = [v for v in variables if v.level_type is LevelType.SINGLE]
    pressure = [v for v in variables if v.level_type is LevelType.PRESSURE]
    analysed = [v for v in single if not _is_era5_accumulation(request.dataset, v)]
    accumulated = [v for v in single if _is_era5_accumulation(request.dataset, v)]
    mars_type = "fc" if forecast else "an"
    blocks = [
        _Block(tuple(analysed), (None,), mars_type),
        _Block(tuple(accumulated), (None,), "fc"),
        _Block(tuple(pressure), tuple(request.levels), mars_type),
    ]
    return [b for b in blocks if b.variables]


@dataclass(frozen=True)
class _NetcdfPart:
    """One NetCDF file of a product."""

    member: str  # name inside the zip when the product has several parts
    variables: tuple[Variable, ...]
    levels: tuple[int, ...]  # () for single level; descending pressure as the stores write


def _netcdf_parts(request: ParsedRequest) -> list[_NetcdfPart]:
    """The NetCDF files the stores' converter writes for ``request``, in zip order."""
    variables = [VARIABLES[name] for name in request.variables]
    single = tuple(v for v in variables if v.level_type is LevelType.SINGLE)
    pressure = tuple(v for v in variables if v.level_type is LevelType.PRESSURE)
    levels = tuple(sorted(request.levels, reverse=True))
    if request.dataset == ERA5_SINGLE:
        # The CDS converter splits ERA5 by stream and stepType: analyses (instant, and the
        # constant fields) and short-forecast accumulations have different time axes.
        instant = tuple(v for v in single if not _is_era5_accumulation(request.dataset, v))
        accum = tuple(v for v in single if _is_era5_accumulation(request.dataset, v))
        parts = [
            _NetcdfPart("data_stream-oper_stepType-instant.nc", instant, ()),
            _NetcdfPart("data_stream-oper_stepType-accum.nc", accum, ()),
        ]
    elif request.dataset == ERA5_PRESSURE:
        parts = [_NetcdfPart("data_stream-oper_stepType-instant.nc", pressure, levels)]
    else:
        # EAC4 and the CAMS forecast: one file per level type, as the ADS forms say.
        parts = [
            _NetcdfPart("data_sfc.nc", single, ()),
            _NetcdfPart("data_plev.nc", pressure, levels),
        ]
    return [p for p in parts if p.variables]


def _slab_length(n_total: int, n_fields: int, grid: ProductGrid) -> int:
    """How many time steps to sample at once so that one slab stays within the budget."""
    per_step = max(1, n_fields * grid.latitudes.size * grid.longitudes.size)
    return max(1, min(n_total, MAX_VALUES_PER_SAMPLE // per_step))


def _checked(
    fields: dict[str, np.ndarray], names: Sequence[str], shape: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name not in fields:
            raise ValueError(f"the atmosphere returned no field {name!r}")
        array = np.asarray(fields[name], dtype=np.float32)
        if array.shape != shape:
            raise ValueError(
                f"the atmosphere returned {name!r} with shape {array.shape}, expected {shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"the atmosphere returned non-finite values for {name!r}")
        out[name] = array
    return out


def _sample_reanalysis(
    atmosphere: AtmosphereLike,
    block_vars: Sequence[Variable],
    level: int | None,
    times: np.ndarray,
    grid: ProductGrid,
) -> dict[str, np.ndarray]:
    """Fields of ``block_vars`` at valid ``times``: name -> float32 (time, lat, lon)."""
    names = [v.name for v in block_vars]
    level_hpa = None if level is None else float(level)
    fields = atmosphere.sample(names, times, grid.latitudes, grid.longitudes, level_hpa)
    return _checked(fields, names, (times.size, *grid.shape))


def _sample_forecast(
    atmosphere: AtmosphereLike,
    block_vars: Sequence[Variable],
    level: int | None,
    init: np.datetime64,
    leads: Sequence[int],
    grid: ProductGrid,
) -> dict[str, np.ndarray]:
    """Fields of the run at ``init``: name -> float32 (lead, lat, lon).

    Constant fields (land-sea mask, orography) come from ``sample`` at the valid times: they
    are the same in every run and do not drift with lead time.
    """
    level_hpa = None if level is None else float(level)
    static = [v.name for v in block_vars if v.time_kind is TimeKind.CONSTANT]
    dynamic = [v.name for v in block_vars if v.time_kind is not TimeKind.CONSTANT]
    fields: dict[str, np.ndarray] = {}
    if dynamic:
        fields.update(
            atmosphere.sample_forecast(
                dynamic, init, list(leads), grid.latitudes, grid.longitudes, level_hpa
            )
        )
    if static:
        valid = (init + np.asarray(leads, dtype="timedelta64[h]")).astype("datetime64[ns]")
        fields.update(atmosphere.sample(static, valid, grid.latitudes, grid.longitudes, level_hpa))
    return _checked(fields, [v.name for v in block_vars], (len(leads), *grid.shape))


# ---------------------------------------------------------------------------------------------
# GRIB


def _date_time(t: np.datetime64) -> tuple[int, int]:
    """GRIB ``dataDate`` (YYYYMMDD) and ``dataTime`` (HHMM) of a time stamp."""
    minutes = t.astype("datetime64[m]").item()
    return (
        minutes.year * 10000 + minutes.month * 100 + minutes.day,
        minutes.hour * 100 + minutes.minute,
    )


def era5_accumulation_base(valid: np.datetime64) -> tuple[np.datetime64, int]:
    """The ERA5 short forecast that holds the accumulation ending at ``valid``.

    Returns
    -------
    tuple
        (base time: the latest 06 or 18 UTC strictly before ``valid``, end step in hours
        1..12); the field covers steps ``end - 1`` to ``end``.
    """
    valid_hour = valid.astype("datetime64[h]")
    hour = int((valid_hour - valid.astype("datetime64[D]")) // np.timedelta64(1, "h"))
    since = (hour - _ERA5_ACCUMULATION_BASE_HOURS[0]) % 12 or 12
    base = valid_hour - np.timedelta64(since, "h")
    return base.astype("datetime64[ns]"), since


class _GribWriter:
    """Encodes fields of one block by cloning a prepared template per message.

    Cloning a template keeps each message independent: ecCodes sets ``bitsPerValue`` to 0 on
    a handle that has packed a constant field (an all-sea land-sea mask), and the next field
    on that handle would be packed with ecCodes' default of 24 bits instead of ERA5's 16.
    """

    def __init__(self, dataset_id: str, block: _Block, grid: ProductGrid, edition: int = 1) -> None:
        archive = _ARCHIVE[dataset_id]
        level_kind = "pl" if block.pressure else "sfc"
        sample = f"regular_ll_{level_kind}_grib{edition}"
        self.templates: dict[str, int] = {}
        for var in block.variables:
            handle = eccodes.codes_grib_new_from_samples(sample)
            eccodes.codes_set(handle, "centre", "ecmf")
            if edition == 2:  # the MARS keys live in a local section that the sample lacks
                eccodes.codes_set_long(handle, "setLocalDefinition", 1)
                eccodes.codes_set_long(handle, "localDefinitionNumber", 1)
            eccodes.codes_set(handle, "marsClass", archive.mars_class)
            eccodes.codes_set(handle, "marsType", block.mars_type)
            eccodes.codes_set(handle, "stream", "oper")
            eccodes.codes_set(handle, "expver", archive.expver)
            eccodes.codes_set_long(handle, "Ni", grid.longitudes.size)
            eccodes.codes_set_long(handle, "Nj", grid.latitudes.size)
            eccodes.codes_set(handle, "latitudeOfFirstGridPointInDegrees", float(grid.latitudes[0]))
            eccodes.codes_set(handle, "latitudeOfLastGridPointInDegrees", float(grid.latitudes[-1]))
            eccodes.codes_set(
                handle, "longitudeOfFirstGridPointInDegrees", float(grid.longitudes[0])
            )
            eccodes.codes_set(
                handle, "longitudeOfLastGridPointInDegrees", float(grid.longitudes[-1])
            )
            eccodes.codes_set(handle, "iDirectionIncrementInDegrees", grid.step)
            eccodes.codes_set(handle, "jDirectionIncrementInDegrees", grid.step)
            eccodes.codes_set_long(handle, "iScansNegatively", 0)
            eccodes.codes_set_long(handle, "jScansPositively", 0)
            if edition == 2 and var.time_kind is TimeKind.ACCUMULATED:
                # GRIB2 knows an accumulation only in a statistical template (4.8), which
                # setting stepType chooses; paramId then finds its parameter there
                eccodes.codes_set(handle, "stepType", "accum")
            # paramId also sets the GRIB1 table2Version / indicatorOfParameter pair, and the
            # GRIB2 discipline, category, number (and template, for chemical constituents)
            eccodes.codes_set_long(handle, "paramId", var.param_id)
            eccodes.codes_set_long(handle, "bitsPerValue", GRIB_BITS_PER_VALUE)
            self.templates[var.name] = handle

    def close(self) -> None:
        for handle in self.templates.values():
            eccodes.codes_release(handle)
        self.templates.clear()

    def encode(
        self,
        var: Variable,
        level: int | None,
        date_time: tuple[int, int],
        step_type: str,
        step_range: str,
        values: np.ndarray,
    ) -> bytes:
        """One GRIB message; ``values`` is float32 (lat, lon), north to south."""
        handle = eccodes.codes_clone(self.templates[var.name])
        try:
            eccodes.codes_set_long(handle, "dataDate", date_time[0])
            eccodes.codes_set_long(handle, "dataTime", date_time[1])
            if level is not None:
                eccodes.codes_set_long(handle, "level", level)
            eccodes.codes_set(handle, "stepType", step_type)
            eccodes.codes_set(handle, "stepRange", step_range)
            eccodes.codes_set_values(handle, values.astype(np.float64).ravel())
            message: bytes = eccodes.codes_get_message(handle)
        finally:
            eccodes.codes_release(handle)
        return message


def check_grib_editions(grib_editions: Mapping[str, int] | None) -> dict[str, int]:
    """``{dataset id: GRIB edition}`` as given, checked.

    Raises
    ------
    ValueError
        Naming a dataset the sandbox does not serve or an edition that is neither 1 nor 2.
    """
    checked = dict(grib_editions or {})
    for dataset_id, edition in checked.items():
        if dataset_id not in _ARCHIVE:
            raise ValueError(
                f"GRIB edition given for {dataset_id!r}, which the sandbox does not serve; "
                f"use one of {', '.join(sorted(_ARCHIVE))}"
            )
        if isinstance(edition, bool) or edition not in GRIB_EDITIONS:
            raise ValueError(
                f"GRIB edition {edition!r} for {dataset_id}: GRIB products are edition 1 or 2"
            )
    return checked


def _write_grib(
    request: ParsedRequest,
    grid: ProductGrid,
    atmosphere: AtmosphereLike,
    out: BinaryIO,
    edition: int,
) -> None:
    forecast = request.dataset == CAMS_FORECAST
    for block in _grib_blocks(request):
        writer = _GribWriter(request.dataset, block, grid, edition)
        try:
            fields_per_step = len(block.variables) * len(block.levels)
            if forecast:
                for init in request.times:
                    _write_grib_forecast(
                        writer,
                        block,
                        init,
                        request.lead_hours,
                        grid,
                        atmosphere,
                        out,
                        fields_per_step,
                    )
            else:
                _write_grib_reanalysis(
                    writer,
                    request.dataset,
                    block,
                    request.times,
                    grid,
                    atmosphere,
                    out,
                    fields_per_step,
                )
        finally:
            writer.close()


def _write_grib_reanalysis(
    writer: _GribWriter,
    dataset_id: str,
    block: _Block,
    times: np.ndarray,
    grid: ProductGrid,
    atmosphere: AtmosphereLike,
    out: BinaryIO,
    fields_per_step: int,
) -> None:
    slab = _slab_length(times.size, fields_per_step, grid)
    for start in range(0, times.size, slab):
        chunk = times[start : start + slab]
        data = {
            level: _sample_reanalysis(atmosphere, block.variables, level, chunk, grid)
            for level in block.levels
        }
        for i, valid in enumerate(chunk):
            for level in block.levels:
                for var in block.variables:
                    if _is_era5_accumulation(dataset_id, var):
                        base, end = era5_accumulation_base(valid)
                        when, step_type, step_range = base, "accum", f"{end - 1}-{end}"
                    else:
                        when, step_type, step_range = valid, "instant", "0"
                    out.write(
                        writer.encode(
                            var,
                            level,
                            _date_time(when),
                            step_type,
                            step_range,
                            data[level][var.name][i],
                        )
                    )


def _write_grib_forecast(
    writer: _GribWriter,
    block: _Block,
    init: np.datetime64,
    lead_hours: Sequence[int],
    grid: ProductGrid,
    atmosphere: AtmosphereLike,
    out: BinaryIO,
    fields_per_step: int,
) -> None:
    slab = _slab_length(len(lead_hours), fields_per_step, grid)
    for start in range(0, len(lead_hours), slab):
        leads = lead_hours[start : start + slab]
        data = {
            level: _sample_forecast(atmosphere, block.variables, level, init, leads, grid)
            for level in block.levels
        }
        for i, lead in enumerate(leads):
            for level in block.levels:
                for var in block.variables:
                    if var.time_kind is TimeKind.ACCUMULATED:
                        step_type, step_range = "accum", f"0-{lead}"
                    else:
                        step_type, step_range = "instant", str(lead)
                    out.write(
                        writer.encode(
                            var,
                            level,
                            _date_time(init),
                            step_type,
                            step_range,
                            data[level][var.name][i],
                        )
                    )


# ---------------------------------------------------------------------------------------------
# NetCDF

#: deflate level of the data variables: level 1 is nearly as small as 9 on these smooth
#: fields and several times faster, which keeps the sandbox server quick.
_NC_DEFLATE_LEVEL: Literal[1] = 1


def _epoch_seconds(times: np.ndarray) -> np.ndarray:
    """int64 seconds since 1970 of datetime64 ``times``, same shape."""
    return np.asarray(times).astype("datetime64[s]").astype(np.int64)


def _nc_global_attrs(nc: netCDF4.Dataset) -> None:
    nc.setncatts(
        {
            "GRIB_centre": "ecmf",
            "GRIB_centreDescription": _INSTITUTION,
            "GRIB_subCentre": np.int64(0),
            "Conventions": "CF-1.7",
            "institution": _INSTITUTION,
        }
    )


def _nc_space(nc: netCDF4.Dataset, grid: ProductGrid, levels: Sequence[int]) -> None:
    """Create ``pressure_level`` (when ``levels``), ``latitude`` and ``longitude``."""
    if levels:
        nc.createDimension("pressure_level", len(levels))
        plev = nc.createVariable("pressure_level", "f8", ("pressure_level",))
        plev.setncatts(
            {
                "units": "hPa",
                "positive": "down",
                "stored_direction": "decreasing",
                "standard_name": "air_pressure",
                "long_name": "pressure",
            }
        )
        plev[:] = np.asarray(levels, dtype=np.float64)
    nc.createDimension("latitude", grid.latitudes.size)
    nc.createDimension("longitude", grid.longitudes.size)
    lat = nc.createVariable("latitude", "f8", ("latitude",))
    lat.setncatts(
        {
            "units": "degrees_north",
            "standard_name": "latitude",
            "long_name": "latitude",
            "stored_direction": "decreasing",
        }
    )
    lat[:] = grid.latitudes
    lon = nc.createVariable("longitude", "f8", ("longitude",))
    lon.setncatts({"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"})
    lon[:] = grid.longitudes


def _nc_data_variable(
    nc: netCDF4.Dataset, var: Variable, dims: tuple[str, ...], coordinates: str, step_type: str
) -> netCDF4.Variable:
    sizes = [len(nc.dimensions[d]) for d in dims]
    # one chunk per horizontal field: what a reader of one time step or level touches
    chunks = [1] * (len(dims) - 2) + sizes[-2:]
    data = nc.createVariable(
        var.netcdf_key,
        "f4",
        dims,
        fill_value=np.float32(np.nan),
        chunksizes=chunks,
        zlib=True,
        complevel=_NC_DEFLATE_LEVEL,
        shuffle=True,
    )
    attrs: dict[str, object] = {
        "GRIB_paramId": np.int64(var.param_id),
        "GRIB_shortName": var.grib_short_name,
        "GRIB_typeOfLevel": (
            "isobaricInhPa" if var.level_type is LevelType.PRESSURE else "surface"
        ),
        "GRIB_stepType": step_type,
        "long_name": var.long_name,
        "units": var.units,
    }
    if var.standard_name:
        attrs["standard_name"] = var.standard_name
    attrs["coordinates"] = coordinates
    data.setncatts(attrs)
    return data


def _write_netcdf_reanalysis(
    path: Path,
    request: ParsedRequest,
    part: _NetcdfPart,
    grid: ProductGrid,
    atmosphere: AtmosphereLike,
) -> None:
    times = request.times
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        _nc_global_attrs(nc)
        number = nc.createVariable("number", "i8", ())
        number.setncatts(
            {
                "long_name": "ensemble member numerical id",
                "units": "1",
                "standard_name": "realization",
            }
        )
        number.assignValue(0)
        nc.createDimension("valid_time", times.size)
        valid = nc.createVariable("valid_time", "i8", ("valid_time",))
        valid.setncatts(
            {
                "long_name": "time",
                "standard_name": "time",
                "units": _EPOCH_UNITS,
                "calendar": _CALENDAR,
            }
        )
        valid[:] = _epoch_seconds(times)
        _nc_space(nc, grid, part.levels)
        expver = nc.createVariable("expver", str, ("valid_time",))
        expver.setncatts({"long_name": "Experiment version"})
        expver[:] = np.array([_ARCHIVE[request.dataset].expver] * times.size, dtype=object)

        level_dims = ("pressure_level",) if part.levels else ()
        dims = ("valid_time", *level_dims, "latitude", "longitude")
        coordinates = " ".join(
            ["number", "valid_time", *level_dims, "latitude", "longitude", "expver"]
        )
        out = {
            var.name: _nc_data_variable(
                nc,
                var,
                dims,
                coordinates,
                "accum" if _is_era5_accumulation(request.dataset, var) else "instant",
            )
            for var in part.variables
        }
        levels: list[int | None] = list(part.levels) if part.levels else [None]
        slab = _slab_length(times.size, len(part.variables) * len(levels), grid)
        for start in range(0, times.size, slab):
            chunk = times[start : start + slab]
            for li, level in enumerate(levels):
                fields = _sample_reanalysis(atmosphere, part.variables, level, chunk, grid)
                for name, values in fields.items():
                    if level is None:
                        out[name][start : start + chunk.size] = values
                    else:
                        out[name][start : start + chunk.size, li] = values


def _write_netcdf_forecast(
    path: Path,
    request: ParsedRequest,
    part: _NetcdfPart,
    grid: ProductGrid,
    atmosphere: AtmosphereLike,
) -> None:
    inits = request.times
    leads = list(request.lead_hours)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        _nc_global_attrs(nc)
        nc.createDimension("forecast_reference_time", inits.size)
        nc.createDimension("forecast_period", len(leads))
        frt = nc.createVariable("forecast_reference_time", "i8", ("forecast_reference_time",))
        frt.setncatts(
            {
                "long_name": "initial time of forecast",
                "standard_name": "forecast_reference_time",
                "units": _EPOCH_UNITS,
                "calendar": _CALENDAR,
            }
        )
        frt[:] = _epoch_seconds(inits)
        period = nc.createVariable("forecast_period", "i8", ("forecast_period",))
        period.setncatts(
            {
                "long_name": "time since forecast_reference_time",
                "standard_name": "forecast_period",
                "units": "hours",
            }
        )
        period[:] = np.asarray(leads, dtype=np.int64)
        valid = nc.createVariable(
            "valid_time", "i8", ("forecast_reference_time", "forecast_period")
        )
        valid.setncatts(
            {
                "long_name": "time",
                "standard_name": "time",
                "units": _EPOCH_UNITS,
                "calendar": _CALENDAR,
            }
        )
        valid[:] = _epoch_seconds(inits)[:, None] + 3600 * np.asarray(leads, dtype=np.int64)
        _nc_space(nc, grid, part.levels)

        level_dims = ("pressure_level",) if part.levels else ()
        dims = ("forecast_reference_time", "forecast_period", *level_dims, "latitude", "longitude")
        coordinates = " ".join(
            [
                "forecast_reference_time",
                "forecast_period",
                *level_dims,
                "latitude",
                "longitude",
                "valid_time",
            ]
        )
        out = {
            var.name: _nc_data_variable(
                nc,
                var,
                dims,
                coordinates,
                "accum" if var.time_kind is TimeKind.ACCUMULATED else "instant",
            )
            for var in part.variables
        }
        levels: list[int | None] = list(part.levels) if part.levels else [None]
        slab = _slab_length(len(leads), len(part.variables) * len(levels), grid)
        for ii, init in enumerate(inits):
            for start in range(0, len(leads), slab):
                chunk = leads[start : start + slab]
                stop = start + len(chunk)
                for li, level in enumerate(levels):
                    fields = _sample_forecast(atmosphere, part.variables, level, init, chunk, grid)
                    for name, values in fields.items():
                        if level is None:
                            out[name][ii, start:stop] = values
                        else:
                            out[name][ii, start:stop, li] = values


def _write_zip(target: Path, members: Sequence[tuple[str, Path]]) -> None:
    """Zip ``members`` (name, file) with fixed metadata so that equal inputs give equal bytes."""
    with zipfile.ZipFile(target, "w") as archive:
        for name, path in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_STORED  # NetCDF is compressed already
            info.create_system = 3  # unix, whatever the platform writing it
            info.external_attr = 0o644 << 16
            size = path.stat().st_size
            info.file_size = size
            with (
                path.open("rb") as src,
                archive.open(info, "w", force_zip64=size >= 1 << 31) as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)


def _write_netcdf(
    request: ParsedRequest, grid: ProductGrid, atmosphere: AtmosphereLike, target: Path
) -> str:
    writer = (
        _write_netcdf_forecast if request.dataset == CAMS_FORECAST else _write_netcdf_reanalysis
    )
    parts = _netcdf_parts(request)
    if len(parts) == 1:
        with NETCDF4_PYTHON_LOCK:
            writer(target, request, parts[0], grid, atmosphere)
        return MIME_NETCDF
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".parts-") as tmp:
        members = []
        for part in parts:
            path = Path(tmp) / part.member
            with NETCDF4_PYTHON_LOCK:
                writer(path, request, part, grid, atmosphere)
            members.append((part.member, path))
        _write_zip(target, members)
    return MIME_ZIP


# ---------------------------------------------------------------------------------------------


def write_product(
    request: ParsedRequest,
    target: Path,
    atmosphere: AtmosphereLike,
    grib_editions: Mapping[str, int] | None = None,
) -> str:
    """Write the product for ``request`` to ``target``, as the real data store would.

    The file appears at ``target`` only once complete (written beside it, then renamed), so
    a server streaming ``target`` never serves half a product.

    Parameters
    ----------
    request
        A request accepted by :func:`aircast.catalogue.validate_request`.
    target
        Where to write the product; its folder must exist.
    atmosphere
        Source of the fields (the sandbox's toy atmosphere).
    grib_editions
        ``{dataset id: 1 or 2}``: the GRIB edition of a dataset's GRIB products; 1 for a
        dataset not named (and by default).

    Returns
    -------
    str
        The MIME type: ``application/x-grib``, ``application/netcdf`` or ``application/zip``
        (a NetCDF request that the store splits into several files).

    Raises
    ------
    RequestError
        When the request's area contains no grid point.
    ValueError
        When ``grib_editions`` names an unknown dataset or an edition other than 1 or 2.
    """
    edition = check_grib_editions(grib_editions).get(request.dataset, 1)
    target = Path(target)
    grid = product_grid(request.dataset, request.area)
    partial = target.with_name(f".{target.name}.partial")
    try:
        if request.data_format == "grib":
            with partial.open("wb") as out:
                _write_grib(request, grid, atmosphere, out, edition)
            mime = MIME_GRIB
        else:
            mime = _write_netcdf(request, grid, atmosphere, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return mime


__all__ = [
    "GRIB_EDITIONS",
    "MIME_GRIB",
    "MIME_NETCDF",
    "MIME_ZIP",
    "AtmosphereLike",
    "check_grib_editions",
    "era5_accumulation_base",
    "write_product",
]
