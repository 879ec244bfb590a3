"""NetCDF products (and zips of NetCDF): the integrity check and the canonical form.

Integrity
    :func:`verify_netcdf` opens a file with netCDF4 and reads every variable in full, so a
    truncated or damaged download is rejected whole with
    :class:`~aircast.errors.CorruptFileError`.
Canonical form
    :func:`canonical_netcdf` brings one NetCDF part of a product, as the data stores' converter
    writes it, into the canonical form (:mod:`aircast.sources.canonical`) through the helpers
    the GRIB decoder uses too (orientation, levels, vocabulary names and attributes,
    ERA5/ERA5T ``expver``, accumulations); :func:`open_netcdf_parts` gives the verified,
    loaded parts of a product (one file, or the members of a zip).
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import netCDF4
import numpy as np
import xarray as xr
from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

from aircast.catalogue import ParsedRequest
from aircast.errors import ContentMismatchError, CorruptFileError
from aircast.sources.canonical import (
    as_hours,
    common_interval,
    expver_label,
    expver_note,
    expver_rank,
    interval_amounts,
    level_coord,
    orient,
    vocab_attrs,
    vocab_variable,
)
from aircast.vocab import VARIABLES, LevelType, TimeKind

#: The first bytes of a zip archive (the stores zip a product of several NetCDF files).
ZIP_MAGIC = b"PK\x03\x04"


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
    if magic == ZIP_MAGIC:
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
        ds = ds.drop_vars(name).assign_coords({name: (coord.dims, level_coord(hpa))})
        if name in ds.dims:
            ds = ds.rename({name: "level"}) if name != "level" else ds
        else:  # one level written as a scalar coordinate
            ds = ds.drop_vars(name).expand_dims(level=level_coord(np.atleast_1d(hpa)))
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
        versions = sorted({expver_label(v) for v in np.atleast_1d(ds["expver"].values)})
        ds = ds.drop_vars("expver")
        ds.attrs["expver"] = ",".join(sorted(versions, key=expver_rank))
        return ds
    labels = [expver_label(v) for v in ds["expver"].values]
    order = sorted(range(len(labels)), key=lambda i: expver_rank(labels[i]))
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
    merged.attrs["expver_collapsed"] = expver_note(versions, filled, total)
    return merged


def _netcdf_names(ds: xr.Dataset, dataset_id: str, path: Path) -> xr.Dataset:
    """The stores' variable names → vocabulary names (by GRIB_paramId where the file has it)."""
    renames: dict[str, str] = {}
    unknown: list[str] = []
    for name, da in ds.data_vars.items():
        pressure = "level" in da.dims
        param = da.attrs.get("GRIB_paramId")
        spec = vocab_variable(int(param), pressure) if param is not None else None
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


def canonical_netcdf(raw: xr.Dataset, parsed: ParsedRequest, path: Path) -> xr.Dataset:
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
    ds = orient(ds)
    for name in list(ds.data_vars):
        spec = VARIABLES[str(name)]
        attrs = vocab_attrs(spec)
        if spec.time_kind is TimeKind.ACCUMULATED:
            if forecast:  # accumulated from the start of each run: difference the leads
                da = ds[name].transpose("init_time", "lead_time", ...)
                leads = (ds["lead_time"].values // np.timedelta64(1, "s")).astype(int)
                data = np.asarray(da.values, dtype=np.float32)
                out = np.empty_like(data)
                widths: list[tuple[np.ndarray | None, int, bool]] = []
                for run in range(data.shape[0]):
                    widths += interval_amounts(
                        [(0, int(lead), data[run, j]) for j, lead in enumerate(leads)],
                        positive=spec.positive,
                    )
                seconds, amounts = common_interval(widths, path, str(name))
                for k, amount in enumerate(amounts):
                    out[divmod(k, leads.size)] = np.nan if amount is None else amount
                ds[name] = (da.dims, out)
                attrs["accumulation_hours"] = as_hours(seconds)
            else:  # ERA5: the stores' converter gives the amount over the hour ending at time
                attrs["accumulation_hours"] = 1
        ds[name].attrs = attrs
    return ds


def open_netcdf_parts(path: Path, kind: str, stack: ExitStack) -> list[tuple[Path, xr.Dataset]]:
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
