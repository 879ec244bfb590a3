"""Tests of the sandbox's toy atmosphere (aircast.sandbox.atmosphere).

The tracer windows of two days (2019-03-10 and 2019-03-11) are shared by most tests through a
module-scoped atmosphere, so the file runs in well under a minute on two cores.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aircast.sandbox.atmosphere import ToyAtmosphere
from aircast.sandbox.tracers import WindPerturbation
from aircast.vocab import VARIABLES, LevelType

DAY = np.datetime64("2019-03-11T00:00:00")
HOUR = np.timedelta64(1, "h")
SINGLE = [
    "t2m",
    "d2m",
    "u10",
    "v10",
    "msl",
    "sp",
    "tp",
    "blh",
    "tcwv",
    "lsm",
    "z_sfc",
    "pm1",
    "pm2p5",
    "pm10",
    "tcco",
    "tcno2",
    "tc_no",
    "tcso2",
    "gtco3",
]
LEVEL = ["z", "t", "u", "v", "q", "r", "go3", "no2", "no", "so2", "co"]
# the default region of the pipeline: 0-45N, 20W-76E
REGION_LAT = np.arange(45.0, -0.01, -0.75)
REGION_LON = np.arange(-20.0, 76.01, 0.75)


@pytest.fixture(scope="module")
def atm() -> ToyAtmosphere:
    return ToyAtmosphere(seed=0)


def _times(offsets_min: list[int]) -> np.ndarray:
    """Times within 2019-03-10 .. 2019-03-11 (the two cached days)."""
    return DAY - np.timedelta64(1, "D") + np.asarray(offsets_min) * np.timedelta64(1, "m")


# ------------------------------------------------------------------------------ properties
_offsets = st.lists(st.integers(0, 2 * 24 * 60 - 1), min_size=1, max_size=3)
_lats = st.lists(st.floats(-90.0, 90.0, allow_nan=False), min_size=1, max_size=4, unique=True)
_lons = st.lists(st.floats(-400.0, 400.0, allow_nan=False), min_size=1, max_size=4, unique=True)
_names = st.lists(st.sampled_from(SINGLE), min_size=1, max_size=5, unique=True)
_settings = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_settings
@given(offsets=_offsets, lat=_lats, lon=_lons, names=_names)
def test_finite_non_negative_and_shapes(
    atm: ToyAtmosphere, offsets: list[int], lat: list[float], lon: list[float], names: list[str]
) -> None:
    out = atm.sample(names, _times(offsets), np.array(lat), np.array(lon))
    assert set(out) == set(names)
    for name, val in out.items():
        assert val.dtype == np.float32
        assert val.shape == (len(offsets), len(lat), len(lon))
        assert np.isfinite(val).all(), name
        if VARIABLES[name].positive or VARIABLES[name].role.value == "pollutant":
            assert (val >= 0).all(), name


@_settings
@given(
    offsets=_offsets,
    lat=_lats,
    lon=_lons,
    level=st.sampled_from([1000.0, 925.0, 850.0, 500.0, 200.0, 50.0, 1.0]),
)
def test_pressure_levels_finite_and_bounded(
    atm: ToyAtmosphere, offsets: list[int], lat: list[float], lon: list[float], level: float
) -> None:
    out = atm.sample(LEVEL, _times(offsets), np.array(lat), np.array(lon), level_hpa=level)
    for name, val in out.items():
        assert np.isfinite(val).all(), name
    for name in ("q", "r", "go3", "no2", "no", "so2", "co"):
        assert (out[name] >= 0).all(), name
    assert (out["r"] <= 100).all()


@_settings
@given(offsets=_offsets, lat=_lats, lon=_lons)
def test_particulate_matter_is_ordered(
    atm: ToyAtmosphere, offsets: list[int], lat: list[float], lon: list[float]
) -> None:
    out = atm.sample(["pm10", "pm1", "pm2p5"], _times(offsets), np.array(lat), np.array(lon))
    assert (out["pm1"] <= out["pm2p5"]).all()
    assert (out["pm2p5"] <= out["pm10"]).all()


@_settings
@given(offsets=_offsets, lat=_lats, lon=_lons, names=_names)
def test_deterministic_across_instances(
    atm: ToyAtmosphere, offsets: list[int], lat: list[float], lon: list[float], names: list[str]
) -> None:
    times = _times(offsets)
    first = atm.sample(names, times, np.array(lat), np.array(lon))
    again = atm.sample(names, times, np.array(lat), np.array(lon))
    for name in names:
        np.testing.assert_array_equal(first[name], again[name])


def test_deterministic_in_a_fresh_instance(atm: ToyAtmosphere) -> None:
    times = _times([24 * 60 + 60, 24 * 60 + 1000])  # one day: one tracer simulation
    lat, lon = np.array([30.0, 17.25]), np.array([31.25, 18.0])
    names = ["pm10", "t2m", "tp", "tcno2"]
    a = atm.sample(names, times, lat, lon)
    b = ToyAtmosphere(seed=0).sample(names, times, lat, lon)
    c = ToyAtmosphere(seed=1).sample(["t2m"], times, lat, lon)
    for name in names:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["t2m"], c["t2m"])


@_settings
@given(offsets=_offsets, lat=_lats, lon=_lons, names=_names, data=st.data())
def test_value_at_a_point_does_not_depend_on_the_request(
    atm: ToyAtmosphere,
    offsets: list[int],
    lat: list[float],
    lon: list[float],
    names: list[str],
    data: st.DataObject,
) -> None:
    times = _times(offsets)
    grid = atm.sample(names, times, np.array(lat), np.array(lon))
    i = data.draw(st.integers(0, len(lat) - 1))
    j = data.draw(st.integers(0, len(lon) - 1))
    k = data.draw(st.integers(0, len(offsets) - 1))
    turns = data.draw(st.integers(-2, 2))
    # one point, one time, the other variables left out, the longitude shifted by whole turns
    alone = atm.sample(
        names[::-1], times[k : k + 1], np.array([lat[i]]), np.array([lon[j] + 360.0 * turns])
    )
    for name in names:
        np.testing.assert_allclose(
            alone[name][0, 0, 0], grid[name][k, i, j], rtol=1e-6, atol=1e-30, err_msg=name
        )


def test_longitude_conventions_agree(atm: ToyAtmosphere) -> None:
    times = _times([600])
    lat = np.array([30.0])
    a = atm.sample(["pm2p5", "u10", "z_sfc"], times, lat, np.array([-20.0, 31.25]))
    b = atm.sample(["pm2p5", "u10", "z_sfc"], times, lat, np.array([340.0, 391.25]))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


# --------------------------------------------------------------------------------- physics
def test_weather_ranges_and_cycles(atm: ToyAtmosphere) -> None:
    times = DAY + np.arange(24) * HOUR
    out = atm.sample(
        ["t2m", "d2m", "u10", "v10", "msl", "tp", "blh", "lsm"], times, REGION_LAT, REGION_LON
    )
    assert out["t2m"].min() >= 230 and out["t2m"].max() <= 325
    assert out["msl"].min() >= 96000 and out["msl"].max() <= 104500
    assert (out["d2m"] <= out["t2m"]).all()
    speed = np.hypot(out["u10"], out["v10"])
    assert np.percentile(speed, 99) < 25
    assert (out["tp"] >= 0).all() and out["tp"].max() > 0
    # boundary layer over the Sahara: shallow at night, deep in the afternoon (local time)
    i, j = np.argmin(np.abs(REGION_LAT - 24.0)), np.argmin(np.abs(REGION_LON - 10.0))
    assert out["lsm"][0, i, j] == 1.0
    assert out["blh"][2, i, j] < 400 and out["blh"][13, i, j] > 1500
    assert out["t2m"][13, i, j] > out["t2m"][4, i, j] + 8


def test_surface_pm_follows_the_boundary_layer(atm: ToyAtmosphere) -> None:
    """Near a city, surface PM2.5 is higher in the shallow night-time layer than at noon."""
    times = DAY + np.arange(24) * HOUR
    out = atm.sample(["pm2p5", "blh"], times, np.array([30.0]), np.array([31.25]))  # Cairo
    pm, blh = out["pm2p5"][:, 0, 0], out["blh"][:, 0, 0]
    assert blh[1] < blh[11] / 3
    assert pm[1] > 1.5 * pm[11]
    assert 1e-8 < pm.mean() < 3e-7  # 10-300 ug m-3


def test_ozone_is_titrated_at_night_and_produced_by_day(atm: ToyAtmosphere) -> None:
    times = DAY + np.arange(24) * HOUR
    out = atm.sample(
        ["go3", "no", "no2"], times, np.array([28.5]), np.array([77.25]), level_hpa=1000
    )  # Delhi, local noon ~ 07 UTC
    o3 = out["go3"][:, 0, 0]
    assert o3[8] > 2 * o3[20] + 5e-9
    assert out["no2"].max() > 1e-8
    assert 2e-9 < o3.max() < 2e-7


def test_pollutants_decrease_above_the_boundary_layer(atm: ToyAtmosphere) -> None:
    times = DAY + np.array([12]) * HOUR
    lat, lon = np.array([30.0, 28.5]), np.array([31.25, 77.25])
    low = atm.sample(["co", "so2", "no2"], times, lat, lon, level_hpa=1000)
    high = atm.sample(["co", "so2", "no2"], times, lat, lon, level_hpa=500)
    for name in low:
        assert (high[name] < low[name]).all(), name


def test_transport_carries_pollution_downwind(atm: ToyAtmosphere) -> None:
    """Stop the wind that carries the tracers over Egypt and the Levant on the previous day.

    The weather is unchanged everywhere (only the transport differs), so a model that painted
    pollution as a function of local weather, time and position would not change at all.
    Downwind (east, the mean flow was westerly) the next day's PM2.5 changes; upwind it does not.
    """
    box_lat, box_lon = (26.0, 34.0), (26.0, 36.0)
    start = DAY - np.timedelta64(1, "D")
    stopped = ToyAtmosphere(
        seed=0, wind_perturbation=WindPerturbation(box_lat, box_lon, start, DAY, 0.0)
    )
    times = DAY + np.array([0, 6]) * HOUR
    lat = np.arange(20.0, 42.0, 1.0)
    lon = np.arange(0.0, 65.0, 1.0)
    names = ["pm2p5", "t2m", "u10"]
    base = atm.sample(names, times, lat, lon)
    pert = stopped.sample(names, times, lat, lon)
    np.testing.assert_array_equal(base["t2m"], pert["t2m"])
    np.testing.assert_array_equal(base["u10"], pert["u10"])
    # precondition: the flow across the box blew from the west during the perturbed day
    wind = atm.sample(
        ["u10"], start + np.arange(0, 24, 3) * HOUR, np.arange(26.0, 35.0), np.arange(26.0, 37.0)
    )
    assert wind["u10"].mean() > 1.0
    rel = np.abs(pert["pm2p5"] - base["pm2p5"]) / base["pm2p5"]
    downwind = lon > box_lon[1] + 2.0
    upwind = lon < box_lon[0] - 8.0
    assert rel[:, :, downwind].max() > 0.05
    assert rel[:, :, upwind].max() < 1e-4


def test_consecutive_days_join(atm: ToyAtmosphere) -> None:
    """00 UTC of day D from day D's spin-up agrees with the end of day D-1's window."""
    at_start = atm.sample(["pm2p5", "pm10"], np.array([DAY]), REGION_LAT, REGION_LON)
    at_end = atm.sample(
        ["pm2p5", "pm10"], np.array([DAY - np.timedelta64(1, "s")]), REGION_LAT, REGION_LON
    )
    for name in at_start:
        rel = np.abs(at_start[name] - at_end[name]) / at_end[name]
        assert rel.mean() < 0.01, name
        assert np.percentile(rel, 99) < 0.05, name


def test_dust_storms_are_rare_and_extreme(atm: ToyAtmosphere) -> None:
    """PM10 at desert dust sources over 30 spring days: a heavy tail above a modest median."""
    lat = np.array([17.5, 33.5, 20.5, 27.0])  # Bodele, Mesopotamia, Rub' al Khali, Thar
    lon = np.array([18.5, 43.5, 50.5, 71.0])
    pm10 = atm._continuous_series("pm10", np.datetime64("2019-03-01T00"), 30 * 24, lat, lon)
    median = np.median(pm10)
    assert 1e-8 < median < 1.5e-7  # 10-150 ug m-3
    assert np.percentile(pm10, 99.9) >= 5 * median
    assert pm10.max() > 5e-7
    assert np.mean(pm10 > 10 * median) < 0.05


# ------------------------------------------------------------------------------- forecasts
def test_forecast_starts_near_the_truth_and_drifts(atm: ToyAtmosphere) -> None:
    init = DAY - np.timedelta64(1, "D")
    leads = [0, 6, 12, 24, 36]
    names = ["pm10", "msl", "tp"]
    fc = atm.sample_forecast(names, init, leads, REGION_LAT, REGION_LON)
    truth = atm.sample(["pm10", "msl"], init + np.asarray(leads) * HOUR, REGION_LAT, REGION_LON)
    err = np.abs(np.log(fc["pm10"]) - np.log(truth["pm10"])).mean(axis=(1, 2))
    assert err[0] < 0.06
    assert err[-1] > 2 * err[0]
    msl_err = np.abs(fc["msl"] - truth["msl"]).mean(axis=(1, 2))
    assert msl_err[0] < 10 and msl_err[-1] > msl_err[0]
    assert (fc["tp"][0] == 0).all()
    assert (np.diff(fc["tp"], axis=0) >= 0).all()
    again = atm.sample_forecast(["pm10"], init, [36], REGION_LAT, REGION_LON)
    np.testing.assert_array_equal(again["pm10"][0], fc["pm10"][-1])


@pytest.mark.parametrize("day", ["1940-01-01", "2026-11-28", "2099-12-31"])
def test_every_served_date_renders_the_same_in_a_fresh_instance(
    atm: ToyAtmosphere, day: str
) -> None:
    """ERA5's first day (its tracer spin-up starts in 1939), a day of 2026 and the last day:
    finite, non-negative pollution, and equal in a fresh atmosphere (nothing depends on what
    was rendered before)."""
    times = np.array([np.datetime64(f"{day}T06"), np.datetime64(f"{day}T18")], "datetime64[ns]")
    lat, lon = np.array([45.0, 30.0, -10.0]), np.array([-5.0, 10.0, 120.0])
    names = ["t2m", "msl", "tp", "pm10"]
    first = atm.sample(names, times, lat, lon)
    again = ToyAtmosphere(seed=0).sample(names, times, lat, lon)
    for name in names:
        assert np.isfinite(first[name]).all(), name
        np.testing.assert_array_equal(first[name], again[name])
    assert (first["pm10"] >= 0).all() and (first["tp"] >= 0).all()
    assert first["t2m"].min() > 200 and first["t2m"].max() < 330


# ---------------------------------------------------------------------------------- errors
def test_errors_name_the_problem(atm: ToyAtmosphere) -> None:
    times, lat, lon = _times([0]), np.array([10.0]), np.array([10.0])
    with pytest.raises(ValueError, match="pm25"):
        atm.sample(["pm25"], times, lat, lon)
    for name in LEVEL:
        assert VARIABLES[name].level_type is LevelType.PRESSURE
        with pytest.raises(ValueError, match=name):
            atm.sample([name], times, lat, lon)
    with pytest.raises(ValueError, match=r"1900-01-01\.\.2099-12-31"):
        atm.sample(["t2m"], np.array([np.datetime64("1899-12-31T23")]), lat, lon)
    with pytest.raises(ValueError, match=r"1900-01-01\.\.2099-12-31"):
        atm.sample(["t2m"], np.array([np.datetime64("2100-01-01")]), lat, lon)
    with pytest.raises(ValueError, match="latitudes"):
        atm.sample(["t2m"], times, np.array([91.0]), lon)
