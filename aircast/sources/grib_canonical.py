"""A scanned GRIB file laid out in the canonical form (:mod:`aircast.sources.canonical`).

:func:`decode_grib` brings any GRIB file on a regular grid into the canonical form, without a
request: one pass with ecCodes (:func:`aircast.sources.grib.scan_grib`, the integrity check
included), then :func:`assemble_grib` names the variables (by the vocabulary, else as cfgrib
does), turns accumulations into amounts over a stated interval, chooses the time layout (by
valid time, or by run and lead), collapses ERA5/ERA5T and writes each field straight into its
place in one array per variable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from aircast.sources.canonical import (
    DecodeError,
    as_hours,
    common_interval,
    expver_note,
    expver_rank,
    interval_amounts,
    level_coord,
    vocab_attrs,
    vocab_variable,
)
from aircast.sources.grib import MONTHLY_STREAMS, FieldKind, GribGrid, GribScan, scan_grib
from aircast.vocab import Variable


@dataclass(frozen=True)
class _GribVariable:
    name: str
    kind: FieldKind
    spec: Variable | None


def _grib_variables(kinds: Sequence[FieldKind]) -> tuple[list[int], list[_GribVariable]]:
    """One variable per (paramId, pressure or level type, step type); kind index → variable."""
    keys: dict[tuple[int, str, str], int] = {}
    variables: list[_GribVariable] = []
    taken: set[str] = set()
    of_kind: list[int] = []
    for kind in kinds:
        key = (kind.param_id, "pressure" if kind.pressure else kind.type_of_level, kind.step_type)
        if key not in keys:
            spec = vocab_variable(kind.param_id, kind.pressure)
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
        return vocab_attrs(var.spec)
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
        results += interval_amounts(
            [(int(start[i]), int(end[i]), values[i]) for i in run], positive=positive
        )
    seconds, amounts = common_interval(results, path, variable.name)
    for i, amount in zip(in_runs, amounts, strict=True):
        values[i] = amount
    return seconds


def _grib_coords(
    grid: GribGrid,
    time_coords: Sequence[np.ndarray],
    forecast: bool,
    others: Mapping[str, np.ndarray],
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
            coords[name] = (name, level_coord(values), level_attrs)
        else:
            coords[name] = (name, level_coord(values), {"long_name": name})
    return coords


def assemble_grib(scan: GribScan, *, forecast: bool | None) -> xr.Dataset:
    """Lay the scanned fields out in the canonical form (:mod:`aircast.sources.canonical`)."""
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
    monthly = np.fromiter((s in MONTHLY_STREAMS for s in scan.stream), bool, len(scan.stream))
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
    expvers = sorted(set(scan.expver) - {""}, key=expver_rank)
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
            attrs["accumulation_hours"] = as_hours(interval[vi])
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
        ds.attrs["expver_collapsed"] = expver_note(expvers, supplied, time_coords[0].size)
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
        In memory, in the canonical form (:mod:`aircast.sources.canonical`): e.g. the real
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
    return assemble_grib(scan_grib(path, keep_values=True), forecast=forecast)
