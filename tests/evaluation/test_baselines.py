"""The baselines on small synthetic store-like data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xarray as xr

from aircast.evaluation.baselines import persistence, training_climate

LAT = np.array([30.0, 28.5])
LON = np.array([10.0, 11.5, 13.0])
TRAIN = (dt.date(2019, 6, 1), dt.date(2019, 6, 3))


def store_like(
    values: np.ndarray, start: str, channels: list[str], lat: np.ndarray = LAT
) -> xr.DataArray:
    """A (time, channel, latitude, longitude) array on the store's 3-hourly axis."""
    times = np.datetime64(start, "ns") + np.arange(values.shape[0]) * np.timedelta64(3, "h")
    return xr.DataArray(
        values,
        dims=("time", "channel", "latitude", "longitude"),
        coords={"time": times, "channel": channels, "latitude": lat, "longitude": LON},
    )


def hourly_pattern(times: np.ndarray) -> np.ndarray:
    """A value per time that depends on the hour of day only: 280 + hour."""
    hours = (times - times.astype("datetime64[D]")) / np.timedelta64(1, "h")
    return 280.0 + hours


def test_persistence_is_the_initial_state() -> None:
    rng = np.random.default_rng(0)
    fields = store_like(rng.normal(size=(16, 2, 2, 3)), "2019-06-01", ["t2m", "pm2p5"])
    inits = fields["time"].values[[0, 8]]
    initial = fields.sel(time=inits).values
    held = persistence(initial, n_leads=4)
    assert held.shape == (2, 4, 2, 2, 3)
    for lead in range(4):
        np.testing.assert_array_equal(held[:, lead], initial)


def test_hour_of_day_climatology_uses_the_training_period_only() -> None:
    n = 8 * 6  # six days; training is the first three
    times = np.datetime64("2019-06-01", "ns") + np.arange(n) * np.timedelta64(3, "h")
    t2m = np.broadcast_to(hourly_pattern(times)[:, None, None], (n, 2, 3)).copy()
    t2m[: 8 * 3] += np.where(np.arange(8 * 3) < 8, 1.0, -0.5)[:, None, None]  # day 1 +1, 2-3 -0.5
    t2m[8 * 3 :] += 1000.0  # the test days: must never reach the climatology
    fields = store_like(t2m[:, None], "2019-06-01", ["t2m"])
    climate = training_climate(fields, ["t2m"], TRAIN)
    clim = climate.climatology
    assert clim.method == "hour_of_day"
    assert "fewer than" in clim.describe()
    assert sorted(clim.hour.tolist()) == list(range(0, 24, 3))
    valid = np.array(["2019-06-05T06", "2019-06-06T21"], dtype="datetime64[ns]")
    # (1 + -0.5 + -0.5) / 3 = 0 on top of the hourly pattern
    expected = np.broadcast_to(np.array([286.0, 301.0])[:, None, None, None], (2, 1, 2, 3))
    np.testing.assert_allclose(clim.at(valid), expected)
    assert clim.count.tolist() == [3] * 8


def test_day_of_year_climatology_with_a_long_training_period() -> None:
    start = "2017-01-01"
    n = 8 * 730  # two years, 3-hourly
    times = np.datetime64(start, "ns") + np.arange(n) * np.timedelta64(3, "h")
    day = (times.astype("datetime64[D]") - np.datetime64(start, "D")).astype(float)
    values = (day + hourly_pattern(times))[:, None, None, None] * np.ones((1, 1, 2, 3))
    fields = store_like(values, start, ["t2m"])
    train = (dt.date(2017, 1, 1), dt.date(2018, 12, 31))
    valid = np.array(["2019-03-01T12"], dtype="datetime64[ns]")
    climate = training_climate(fields, ["t2m"], train, valid_times=valid, window_days=2)
    clim = climate.climatology
    assert clim.method == "day_of_year_hour" and clim.window_days == 2
    # day of year 60 (1 March 2019) ± 2 days at 12 UTC, in 2017 and 2018
    doy = ((times.astype("datetime64[D]") - times.astype("datetime64[Y]")).astype(int)) + 1
    hour = hourly_pattern(times) - 280
    chosen = (np.abs(doy - 60) <= 2) & (hour == 12)
    assert chosen.sum() == 10
    np.testing.assert_allclose(clim.at(valid)[0, 0], values[chosen, 0].mean(axis=0))
    # a key that the evaluation did not ask for is not kept (memory follows the evaluation)
    assert np.isnan(clim.at(np.array(["2019-07-01T12"], dtype="datetime64[ns]"))).all()


def test_training_percentile_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    n = 8 * 3  # 144 values a channel
    t2m = rng.normal(290.0, 5.0, size=(n, 2, 3))
    pm = rng.lognormal(np.log(20e-9), 0.8, size=(n, 2, 3))  # heavy-tailed, kg m-3
    later = np.full((16, 2, 3), 1e3)  # beyond the training period: ignored
    values = np.concatenate([np.stack([t2m, pm], axis=1), np.stack([later, later], axis=1)])
    fields = store_like(values, "2019-06-01", ["t2m", "pm2p5"])
    climate = training_climate(fields, ["t2m", "pm2p5"], TRAIN)
    assert climate.quantile == 0.99
    # the inverse of the empirical CDF, to within the histogram's 0.005-sigma bins
    method = "inverted_cdf"
    assert climate.thresholds[0] == pytest.approx(np.percentile(t2m, 99, method=method), abs=0.05)
    assert climate.thresholds[1] == pytest.approx(np.percentile(pm, 99, method=method), rel=0.01)
