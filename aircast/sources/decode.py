"""How AirCast opens, checks and decodes the files the data stores deliver, whatever their type.

:func:`sniff` tells GRIB, NetCDF and zip apart by their first bytes; :func:`verify_product` (at
download time) and :func:`decode_product` (what the pipeline reads) send a product to the
decoder of its type and hold every product to the same checks. Three layers, each built on the
one before, each with its module per file type:

Integrity
    :func:`aircast.sources.grib.verify_grib` and :func:`aircast.sources.netcdf.verify_netcdf`
    decode every GRIB message / read every NetCDF variable. A download that is truncated or
    damaged is rejected whole with :class:`~aircast.errors.CorruptFileError`, never
    half-loaded: cfgrib on its own skips a damaged message with a warning and returns the
    rest, which would silently leave holes in the training store.
Canonical form
    :func:`aircast.sources.grib_canonical.decode_grib` brings any GRIB file on a regular grid
    into the canonical form described in :mod:`aircast.sources.canonical`, without a request.
    It reads the file in one pass with ecCodes; the pass that decodes the values is the
    integrity check, so a damaged file raises before anything is returned. NetCDF products
    are read with netCDF4 (through xarray, :mod:`aircast.sources.netcdf`) and pass through
    the same canonicalisation helpers (orientation, levels, vocabulary names and attributes,
    ERA5/ERA5T ``expver``, accumulations).
Content against request
    :func:`verify_product` and :func:`decode_product` check that a product holds exactly the
    times, variables, levels and grid of its request
    (:func:`aircast.sources.grib.check_grib_content`,
    :func:`aircast.sources.canonical.check_decoded`), and raise
    :class:`~aircast.errors.ContentMismatchError` naming what is missing.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np
import xarray as xr

from aircast.catalogue import ParsedRequest
from aircast.errors import ContentMismatchError, CorruptFileError
from aircast.sources.canonical import check_decoded
from aircast.sources.grib import check_grib_content, scan_grib, verify_grib
from aircast.sources.grib_canonical import assemble_grib
from aircast.sources.netcdf import ZIP_MAGIC, canonical_netcdf, open_netcdf_parts
from aircast.vocab import VARIABLES


def sniff(path: Path) -> str:
    """``grib``, ``netcdf`` or ``zip``, from the file's first bytes (not its name)."""
    with Path(path).open("rb") as f:
        head = f.read(8)
    if head.startswith(b"GRIB"):
        return "grib"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith((b"\x89HDF", b"CDF\x01", b"CDF\x02")):
        return "netcdf"
    raise CorruptFileError(path, f"it is neither GRIB, NetCDF nor zip (starts with {head!r})")


def decode_product(path: str | Path, parsed: ParsedRequest) -> xr.Dataset:
    """Decode a product into the canonical form and check it against its request.

    GRIB goes through :func:`~aircast.sources.grib_canonical.decode_grib`'s single pass
    (integrity included), laid out by forecast run and lead for the CAMS forecast and by valid
    time otherwise, after its fields and grid are checked against the request; NetCDF (or a
    zip of NetCDF) is read with netCDF4 after every variable has been read once.

    Parameters
    ----------
    path
        A GRIB, NetCDF or zip-of-NetCDF file as the store delivered it.
    parsed
        The request it answers (:func:`aircast.catalogue.validate_request`).

    Returns
    -------
    xarray.Dataset
        In memory, in the canonical form (:mod:`aircast.sources.canonical`): reanalysis
        variables with dims (time[, level], latitude, longitude), forecast variables with
        (init_time, lead_time[, level], latitude, longitude); vocabulary names and units,
        ``source`` = dataset.

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
        scan = scan_grib(path, keep_values=True)
        check_grib_content(scan.summary(), parsed)
        merged = assemble_grib(scan, forecast=forecast)
    else:
        with ExitStack() as stack:
            parts = [
                canonical_netcdf(raw, parsed, member)
                for member, raw in open_netcdf_parts(path, kind, stack)
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
