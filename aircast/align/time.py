"""The common time axis: three-hourly, 00, 03, … 21 UTC (the EAC4 analysis times).

Everything is matched by timestamp, never by array position. Instantaneous fields are sampled
at the axis times; accumulated fields (precipitation, delivered as amounts over the hour or
the three hours ending at their time stamp) are summed over the three hours ending at each
axis time. Leap days are ordinary days.

The step of the axis (:data:`STEP_HOURS`) and the calendar features of a time
(:func:`hour_and_day_of_year`, what the model and the climatologies are keyed on) are defined
here once; every other package imports them.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import xarray as xr

from aircast.errors import AirCastError
from aircast.vocab import VARIABLES, TimeKind

#: The spacing of the common time axis, hours: of the store, of the leads, of the rollout.
STEP_HOURS = 3


class TimeAlignmentError(AirCastError, ValueError):
    """Source times that cannot give the requested axis times."""


def axis_times(start: dt.date, end: dt.date) -> np.ndarray:
    """The axis from ``start`` 00 UTC to ``end`` 21 UTC, datetime64[ns], shape (8 × days,)."""
    first = np.datetime64(start.isoformat(), "ns")
    n = ((end - start).days + 1) * (24 // STEP_HOURS)
    step = np.timedelta64(STEP_HOURS, "h").astype("timedelta64[ns]")
    times: np.ndarray = first + np.arange(n) * step
    return times


def hour_and_day_of_year(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The UTC hour of day and the day of year of each time, from the calendar.

    Parameters
    ----------
    times
        datetime64 of any unit, any shape.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Hour of day (0-23) and day of year (1-365, or 366 on 31 December of a leap year),
        int64, both of the shape of ``times``. The day after 31 December is day 1.
    """
    hours = np.asarray(times).astype("datetime64[h]")
    days = hours.astype("datetime64[D]")
    hour: np.ndarray = (hours - days).astype(np.int64)
    day: np.ndarray = (days - days.astype("datetime64[Y]")).astype(np.int64) + 1
    return hour, day


def plus_hours(times: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """``times`` later by ``hours`` (rounded to the second), datetime64[ns], broadcast shape."""
    seconds = np.rint(np.asarray(hours, dtype=np.float64) * 3600).astype(np.int64)
    later: np.ndarray = np.asarray(times).astype("datetime64[ns]") + seconds.astype(
        "timedelta64[s]"
    )
    return later.astype("datetime64[ns]")


def align_time(ds: xr.Dataset, times: np.ndarray) -> xr.Dataset:
    """Bring every variable of a canonical reanalysis dataset onto ``times``.

    Parameters
    ----------
    ds
        Dims (time, …); accumulated variables carry ``accumulation_hours`` (the interval
        ending at each time stamp that their amount covers).
    times
        Axis times, datetime64[ns], shape (n,).

    Returns
    -------
    xarray.Dataset
        Dims (time = ``times``, …). Accumulated variables are amounts over the three hours
        ending at each time (``accumulation_hours`` = 3).

    Raises
    ------
    TimeAlignmentError
        Naming the axis times (or the hours behind them) that the source lacks.
    """
    if "time" not in ds.dims:
        raise TimeAlignmentError("the dataset has no 'time' dimension to align")
    source = ds["time"].values.astype("datetime64[ns]")
    if source.size > 1 and not np.all(np.diff(source) > np.timedelta64(0, "ns")):
        raise TimeAlignmentError("source times are not strictly increasing; decode them first")
    out: dict[str, xr.DataArray] = {}
    for name, da in ds.data_vars.items():
        kind = VARIABLES[str(name)].time_kind if str(name) in VARIABLES else TimeKind.INSTANT
        if kind is TimeKind.CONSTANT:
            out[str(name)] = da.isel(time=[0] * len(times)).assign_coords(time=times)
        elif kind is TimeKind.ACCUMULATED:
            out[str(name)] = _accumulate(da, source, times, str(name))
        else:
            _require(source, times, str(name))
            out[str(name)] = da.sel(time=times)
    return xr.Dataset(out, attrs=ds.attrs)


def _require(source: np.ndarray, needed: np.ndarray, name: str) -> None:
    missing = np.setdiff1d(needed, source)
    if missing.size:
        shown = ", ".join(str(t)[:16] for t in missing[:6])
        raise TimeAlignmentError(
            f"{name}: the source lacks {missing.size} of the needed times ({shown}"
            f"{' …' if missing.size > 6 else ''}); ingest the days they fall on"
        )


def _accumulation_offsets(da: xr.DataArray, name: str) -> np.ndarray:
    """Offsets before each axis time of the amounts that tile (T - 3 h, T], shape (k,)."""
    hours = int(da.attrs.get("accumulation_hours", 0))
    if hours <= 0 or STEP_HOURS % hours:
        raise TimeAlignmentError(
            f"{name}: accumulation_hours = {hours} does not divide {STEP_HOURS} h; the amounts "
            "cannot be summed into three-hourly amounts"
        )
    per_step = STEP_HOURS // hours
    offsets: np.ndarray = np.arange(per_step) * np.timedelta64(hours, "h").astype("timedelta64[ns]")
    return offsets


def _needed(da: xr.DataArray, name: str, times: np.ndarray) -> np.ndarray:
    """The source times each axis time needs, datetime64[ns], shape (n, k) (k = 1 if instant)."""
    kind = VARIABLES[name].time_kind if name in VARIABLES else TimeKind.INSTANT
    if kind is TimeKind.ACCUMULATED:
        offsets = _accumulation_offsets(da, name)
        needed: np.ndarray = times[:, None] - offsets[None, :]
        return needed
    return times[:, None]


def covered_times(ds: xr.Dataset, times: np.ndarray) -> np.ndarray:
    """Which axis times every variable of ``ds`` can give, by timestamp.

    The build uses it to find the times a source did not deliver (a failed request leaves a
    gap) and to align only the others, instead of failing on the first gap.

    Parameters
    ----------
    ds
        Canonical dataset with dims (time, …), as for :func:`align_time`.
    times
        Axis times, datetime64[ns], shape (n,).

    Returns
    -------
    numpy.ndarray
        bool, shape (n,): True where :func:`align_time` can give every variable at that time.
        Constant variables cover every time as long as they have one time step.
    """
    times = np.asarray(times).astype("datetime64[ns]")
    source = ds["time"].values.astype("datetime64[ns]")
    ok = np.ones(times.shape, dtype=bool)
    for name, da in ds.data_vars.items():
        kind = VARIABLES[str(name)].time_kind if str(name) in VARIABLES else TimeKind.INSTANT
        if kind is TimeKind.CONSTANT:
            ok &= source.size > 0
            continue
        needed = _needed(da, str(name), times)
        ok &= np.isin(needed, source).all(axis=1)
    return ok


def _accumulate(da: xr.DataArray, source: np.ndarray, times: np.ndarray, name: str) -> xr.DataArray:
    per_step = _accumulation_offsets(da, name).size
    # the amounts whose intervals tile (T - 3 h, T]: stamped T, T - 1 h, T - 2 h (hourly)
    needed = _needed(da, name, times).ravel()
    _require(source, needed, name)
    parts = da.sel(time=needed).values.reshape((times.size, per_step, *da.shape[1:]))
    summed = parts.sum(axis=1, dtype="float64").astype("float32")
    result = xr.DataArray(
        summed,
        dims=da.dims,
        coords={**{k: v for k, v in da.coords.items() if "time" not in v.dims}, "time": times},
        attrs={**da.attrs, "accumulation_hours": STEP_HOURS},
    )
    return result
