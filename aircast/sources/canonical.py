"""The canonical form every decoded product takes, and what the GRIB and NetCDF decoders share.

Every later stage (alignment, the training store, the daily initial conditions, verification)
relies on this form and on nothing else about the file a product came in. The banner below
states it; :func:`check_decoded` checks it (with the product's request) at the boundary where
a decoded product leaves :mod:`aircast.sources`. The helpers here are the canonicalisation
both decoders apply: axis orientation, vocabulary names and attributes, accumulations over a
stated interval, ERA5/ERA5T ``expver`` and pressure levels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import xarray as xr

from aircast.catalogue import ParsedRequest, product_grid
from aircast.errors import AirCastError, ContentMismatchError
from aircast.vocab import VARIABLES, LevelType, Variable


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


# ---------------------------------------------------------------------------------------------
# Orientation: latitude north → south, longitude increasing within [-180, 180)


@dataclass(frozen=True)
class AxisOrder:
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


def _axis_order(values: np.ndarray, *, descending: bool) -> AxisOrder:
    """Canonical order of one axis: sorted, duplicates dropped (the first occurrence kept)."""
    coords, first = np.unique(np.asarray(values, dtype=np.float64), return_index=True)
    if descending:
        coords, first = coords[::-1], first[::-1]
    index = first.astype(np.int64)
    return AxisOrder(coords=coords + 0.0, index=index, runs=_runs(index))


def latitude_order(latitudes: np.ndarray) -> AxisOrder:
    """Latitudes as stored → north to south."""
    return _axis_order(np.round(np.asarray(latitudes, dtype=np.float64), 6), descending=True)


def longitude_order(longitudes: np.ndarray) -> AxisOrder:
    """Longitudes as stored → increasing within [-180, 180)."""
    wrapped = (np.asarray(longitudes, dtype=np.float64) + 180.0) % 360.0 - 180.0
    # rounding can carry 179.9999999 up to 180: put it back at -180, where it belongs
    wrapped = np.round(wrapped, 6)
    wrapped[wrapped >= 180.0] -= 360.0
    return _axis_order(wrapped, descending=False)


def orient(ds: xr.Dataset) -> xr.Dataset:
    """Latitude north → south, longitude increasing within [-180, 180) (copies only if needed)."""
    lat = latitude_order(ds["latitude"].values)
    lon = longitude_order(ds["longitude"].values)
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


# ---------------------------------------------------------------------------------------------
# Vocabulary names and attributes, accumulations, expver, levels


_BY_PARAM: Mapping[tuple[int, LevelType], Variable] = MappingProxyType(
    {(v.param_id, v.level_type): v for v in VARIABLES.values()}
)


def vocab_variable(param_id: int, pressure: bool) -> Variable | None:
    """The vocabulary's variable for a GRIB parameter on pressure levels or not (129: z/z_sfc)."""
    return _BY_PARAM.get((param_id, LevelType.PRESSURE if pressure else LevelType.SINGLE))


def vocab_attrs(spec: Variable) -> dict[str, Any]:
    attrs: dict[str, Any] = {"units": spec.units, "long_name": spec.long_name}
    if spec.standard_name:
        attrs["standard_name"] = spec.standard_name
    attrs["GRIB_paramId"] = spec.param_id
    attrs["GRIB_shortName"] = spec.grib_short_name
    return attrs


def as_hours(seconds: int) -> int | float:
    hours = seconds / 3600
    return int(hours) if hours.is_integer() else hours


def interval_amounts(
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


def common_interval(
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
        hours = ", ".join(f"{as_hours(w)} h" for w in sorted(widths))
        raise DecodeError(
            path,
            f"{name}: the accumulations cover intervals of different lengths ({hours}), so "
            "their amounts are not comparable; request evenly spaced steps",
        )
    width = widths.pop() if widths else 0
    return width, [amount if w == width else None for amount, w, _ in results]


def expver_rank(expver: str) -> tuple[int, str]:
    """ERA5 final (0001) before anything else, then the versions in order (ERA5T 0005)."""
    return (0 if expver in ("0001", "") else 1, expver)


def expver_label(value: Any) -> str:
    """An expver as the archive writes it: 1 → '0001', b'0005' → '0005'."""
    if isinstance(value, bytes):
        value = value.decode()
    text = str(value).strip()
    return f"{int(text):04d}" if text.isdigit() else text


def expver_note(versions: Sequence[str], filled: Mapping[str, int], total: int) -> str:
    preferred, *others = versions
    fills = "; ".join(f"{v} filled {filled.get(v, 0)} of {total} times" for v in others)
    return f"{'+'.join(versions)}: {preferred} preferred where present; {fills}"


def level_coord(levels: np.ndarray) -> np.ndarray:
    whole = np.round(levels)
    return whole.astype(np.int64) if np.allclose(levels, whole, atol=1e-6) else levels


# ---------------------------------------------------------------------------------------------
# The boundary check


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
