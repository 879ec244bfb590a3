"""The three-hourly axis: matched by timestamp, precipitation summed, leap days kept."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xarray as xr

from aircast.align.time import (
    TimeAlignmentError,
    align_time,
    axis_times,
    covered_times,
    hour_and_day_of_year,
    plus_hours,
)


def _hourly(name: str, start: str, hours: int, **attrs: object) -> xr.Dataset:
    times = np.datetime64(start, "ns") + np.arange(hours) * np.timedelta64(1, "h")
    values = np.arange(hours, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    return xr.Dataset(
        {name: (("time", "latitude", "longitude"), values, dict(attrs))},
        coords={"time": times, "latitude": [1.0, 0.0], "longitude": [0.0, 1.0, 2.0]},
    )


@pytest.mark.parametrize(
    ("time", "hour", "day"),
    [
        ("2018-12-31T21", 21, 365),
        ("2019-01-01T00", 0, 1),
        ("2020-12-31T03", 3, 366),
        ("2019-02-28T12", 12, 59),
        ("2019-03-01T12", 12, 60),
        ("2020-02-29T12", 12, 60),
        ("2020-03-01T12", 12, 61),
        ("1969-12-31T23", 23, 365),  # before the epoch: floored, not truncated
    ],
)
def test_hour_and_day_of_year_from_the_calendar(time: str, hour: int, day: int) -> None:
    hours, days = hour_and_day_of_year(np.array([time], "datetime64[ns]"))
    assert (hours.tolist(), days.tolist()) == ([hour], [day])
    assert hours.dtype == days.dtype == np.dtype(np.int64)


def test_plus_hours_crosses_the_year() -> None:
    times = np.array(["2018-12-31T18", "2020-02-28T18"], "datetime64[ns]")
    later = plus_hours(times, np.array([6.0, 30.0]))
    assert later.dtype == np.dtype("datetime64[ns]")
    assert later.tolist() == np.array(["2019-01-01T00", "2020-03-01T00"], "datetime64[ns]").tolist()


def test_the_axis_keeps_leap_days() -> None:
    times = axis_times(dt.date(2020, 2, 28), dt.date(2020, 3, 1))
    assert times.dtype == np.dtype("datetime64[ns]")
    assert times.size == 24
    assert np.datetime64("2020-02-29T21:00", "ns") in times
    assert np.all(np.diff(times) == np.timedelta64(3, "h"))
    assert str(times[-1]).startswith("2020-03-01T21:00")


def test_instant_fields_are_taken_at_the_axis_times_by_timestamp() -> None:
    ds = _hourly("t2m", "2020-02-29T00", 24)
    times = axis_times(dt.date(2020, 2, 29), dt.date(2020, 2, 29))
    out = align_time(ds, times)
    np.testing.assert_array_equal(out["time"].values, times)
    np.testing.assert_array_equal(out["t2m"].values[:, 0, 0], np.arange(0, 24, 3))


def test_precipitation_is_summed_over_the_three_hours_ending_at_t() -> None:
    # hourly amounts, each the hour ending at its stamp; from 21 UTC the day before
    ds = _hourly("tp", "2020-02-28T21", 27, accumulation_hours=1)
    times = axis_times(dt.date(2020, 2, 29), dt.date(2020, 2, 29))
    out = align_time(ds, times)
    # value v is stamped 21 UTC + v hours, so T = 00 UTC holds 1 + 2 + 3 (22, 23, 00 UTC)
    hours_since = np.arange(0, 24, 3) + 3
    expected = 3 * hours_since - 3
    np.testing.assert_array_equal(out["tp"].values[:, 1, 2], expected)
    assert out["tp"].attrs["accumulation_hours"] == 3
    with pytest.raises(TimeAlignmentError, match="accumulation_hours = 2"):
        align_time(ds.assign(tp=ds["tp"].assign_attrs(accumulation_hours=2)), times)


def test_times_out_of_order_are_refused_not_paired_by_position() -> None:
    ds = _hourly("t2m", "2020-02-29T00", 24)
    shuffled = ds.isel(time=np.random.default_rng(0).permutation(24))
    times = axis_times(dt.date(2020, 2, 29), dt.date(2020, 2, 29))
    with pytest.raises(TimeAlignmentError, match="not strictly increasing"):
        align_time(shuffled, times)
    # sorted by timestamp it gives exactly the ordered result
    xr.testing.assert_identical(align_time(shuffled.sortby("time"), times), align_time(ds, times))


def test_missing_times_are_named_and_reported_by_covered_times() -> None:
    ds = _hourly("tp", "2020-02-28T21", 27, accumulation_hours=1)
    gap = ds.drop_sel(time=[np.datetime64("2020-02-29T10:00", "ns")])
    times = axis_times(dt.date(2020, 2, 29), dt.date(2020, 2, 29))
    with pytest.raises(TimeAlignmentError, match="2020-02-29T10:00"):
        align_time(gap, times)
    covered = covered_times(gap, times)
    # 10 UTC feeds only the amount ending at 12 UTC
    assert covered.tolist() == [True, True, True, True, False, True, True, True]
    instant = _hourly("t2m", "2020-02-29T00", 24).isel(time=slice(0, 12))
    assert covered_times(instant, times).tolist() == [True] * 4 + [False] * 4


def test_constant_fields_cover_every_time() -> None:
    ds = _hourly("lsm", "2019-06-01T00", 1)
    times = axis_times(dt.date(2019, 6, 3), dt.date(2019, 6, 3))
    out = align_time(ds, times)
    assert out["lsm"].shape == (8, 2, 3)
    assert covered_times(ds, times).all()
