"""The sandbox's products look like the real stores' files, down to grids, keys and bytes."""

from __future__ import annotations

import datetime as dt
import time
import zipfile
from pathlib import Path
from typing import Any

import eccodes
import netCDF4
import numpy as np
import pytest
import xarray as xr

from aircast.catalogue import ParsedRequest, product_grid, validate_request
from aircast.errors import RequestError
from aircast.sandbox.products import (
    MIME_GRIB,
    MIME_NETCDF,
    MIME_ZIP,
    ZIP_DATE_TIME,
    AtmosphereLike,
    era5_accumulation_base,
    write_product,
)
from aircast.sources.grib import GRIB_OPEN_KWARGS, open_grib, verify_grib
from aircast.sources.netcdf import verify_netcdf
from aircast.vocab import CAMS_EAC4, CAMS_FORECAST, ERA5_PRESSURE, ERA5_SINGLE

TODAY = dt.date(2024, 6, 1)
AREA = [45, -20, 0, 76]


def era5_single(
    variables: list[str], times: list[str], fmt: str = "grib", **extra: Any
) -> ParsedRequest:
    return validate_request(
        ERA5_SINGLE,
        {
            "product_type": ["reanalysis"],
            "variable": variables,
            "year": ["2020"],
            "month": ["january"],
            "day": ["01"],
            "time": times,
            "area": AREA,
            "data_format": fmt,
            **extra,
        },
        today=TODAY,
    )


def era5_pressure(
    variables: list[str], levels: list[str], times: list[str], fmt: str = "grib"
) -> ParsedRequest:
    return validate_request(
        ERA5_PRESSURE,
        {
            "product_type": ["reanalysis"],
            "variable": variables,
            "year": ["2020"],
            "month": ["january"],
            "day": ["01"],
            "time": times,
            "pressure_level": levels,
            "area": AREA,
            "data_format": fmt,
        },
        today=TODAY,
    )


def eac4(
    variables: list[str],
    levels: list[str] | None,
    fmt: str = "grib",
    area: list[float] | None = AREA,
) -> ParsedRequest:
    request: dict[str, Any] = {
        "variable": variables,
        "date": ["2020-01-01"],
        "time": ["00:00", "03:00"],
        "data_format": fmt,
    }
    if levels:
        request["pressure_level"] = levels
    if area is not None:
        request["area"] = area
    return validate_request(CAMS_EAC4, request, today=TODAY)


def cams_forecast(
    variables: list[str], levels: list[str] | None, fmt: str = "grib"
) -> ParsedRequest:
    request: dict[str, Any] = {
        "variable": variables,
        "date": ["2020-01-01"],
        "time": ["00:00", "12:00"],
        "leadtime_hour": ["0", "3", "6"],
        "type": ["forecast"],
        "area": AREA,
        "data_format": fmt,
    }
    if levels:
        request["pressure_level"] = levels
    return validate_request(CAMS_FORECAST, request, today=TODAY)


def grib_keys(path: Path, *keys: str) -> list[dict[str, Any]]:
    """The given ecCodes keys of every message, in file order."""
    out = []
    with path.open("rb") as f:
        while (handle := eccodes.codes_grib_new_from_file(f)) is not None:
            try:
                out.append({k: eccodes.codes_get(handle, k) for k in keys})
            finally:
                eccodes.codes_release(handle)
    return out


def assert_packed_close(decoded: np.ndarray, expected: np.ndarray) -> None:
    """Values agree within 16-bit simple packing: half a packing step of the field's range."""
    decoded = np.asarray(decoded, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert decoded.shape == expected.shape
    span = float(expected.max() - expected.min())
    tolerance = span / (2**16 - 1) + 2e-7 * float(np.abs(expected).max())
    assert float(np.abs(decoded - expected).max()) <= tolerance


def by_name(datasets: list[xr.Dataset]) -> dict[str, xr.DataArray]:
    return {str(name): ds[name] for ds in datasets for name in ds.data_vars}


# ---------------------------------------------------------------------------------------------
# grids


@pytest.mark.parametrize(
    ("dataset_id", "shape", "lat0", "lon0", "lon1"),
    [
        (ERA5_SINGLE, (181, 385), 45.0, -20.0, 76.0),
        (CAMS_EAC4, (61, 128), 45.0, -19.5, 75.75),
        (CAMS_FORECAST, (113, 241), 44.8, -20.0, 76.0),
    ],
)
def test_default_area_selects_native_points(
    dataset_id: str, shape: tuple[int, int], lat0: float, lon0: float, lon1: float
) -> None:
    grid = product_grid(dataset_id, (45, -20, 0, 76))
    assert grid.shape == shape
    assert grid.latitudes[0] == lat0 and grid.latitudes[-1] == 0.0
    assert grid.longitudes[0] == lon0 and grid.longitudes[-1] == lon1
    assert np.allclose(np.diff(grid.latitudes), -grid.step)
    assert np.allclose(np.diff(grid.longitudes), grid.step)


def test_no_area_is_the_whole_native_globe() -> None:
    grid = product_grid(CAMS_EAC4, None)
    assert grid.shape == (241, 480)
    assert (grid.latitudes[0], grid.latitudes[-1]) == (90.0, -90.0)
    assert (grid.longitudes[0], grid.longitudes[-1]) == (0.0, 359.25)


def test_area_edges_and_full_circle() -> None:
    east = product_grid(ERA5_SINGLE, (10, 350, 0, 360))
    assert east.longitudes[0] == 350.0 and east.longitudes[-1] == 360.0
    circle = product_grid(ERA5_SINGLE, (0, -180, 0, 180))
    assert circle.longitudes.size == 1440  # 180° is 0° + 360°: not repeated
    assert circle.longitudes[0] == -180.0 and circle.latitudes.tolist() == [0.0]


def test_area_without_grid_point_is_a_request_error() -> None:
    with pytest.raises(RequestError, match="area"):
        product_grid(CAMS_EAC4, (10.1, 0, 10.2, 1))
    with pytest.raises(RequestError, match="area"):
        product_grid(CAMS_EAC4, (10, 0.1, 0, 0.2))


def test_era5_accumulation_base() -> None:
    cases = {
        "2020-01-01T00": ("2019-12-31T18", 6),
        "2020-01-01T06": ("2019-12-31T18", 12),
        "2020-01-01T07": ("2020-01-01T06", 1),
        "2020-01-01T18": ("2020-01-01T06", 12),
        "2020-01-01T19": ("2020-01-01T18", 1),
    }
    for valid, (base, end) in cases.items():
        got_base, got_end = era5_accumulation_base(np.datetime64(valid, "ns"))
        assert (got_base, got_end) == (np.datetime64(base, "ns"), end)


# ---------------------------------------------------------------------------------------------
# GRIB

GRIB_KEYS = (
    "edition",
    "centre",
    "paramId",
    "shortName",
    "typeOfLevel",
    "level",
    "dataDate",
    "dataTime",
    "stepType",
    "startStep",
    "endStep",
    "bitsPerValue",
    "packingType",
    "jScansPositively",
    "Ni",
    "Nj",
    "marsClass",
    "marsType",
    "expver",
    "latitudeOfFirstGridPointInDegrees",
    "longitudeOfFirstGridPointInDegrees",
)


def test_era5_single_level_grib(tmp_path: Path, fake_atmosphere: AtmosphereLike) -> None:
    hours = ["00:00", "05:00", "06:00", "07:00", "18:00", "19:00"]
    request = era5_single(
        ["2m_temperature", "10m_u_component_of_wind", "total_precipitation", "land_sea_mask"], hours
    )
    path = tmp_path / "era5.grib"
    assert write_product(request, path, fake_atmosphere) == MIME_GRIB

    messages = grib_keys(path, *GRIB_KEYS)
    assert len(messages) == 6 * 4
    for m in messages:
        assert (m["edition"], m["centre"], m["bitsPerValue"], m["packingType"]) == (
            1,
            "ecmf",
            16,
            "grid_simple",
        )
        assert (m["jScansPositively"], m["Ni"], m["Nj"]) == (0, 385, 181)
        assert (
            m["latitudeOfFirstGridPointInDegrees"],
            m["longitudeOfFirstGridPointInDegrees"],
        ) == (45.0, -20.0)
        assert (m["marsClass"], m["expver"]) == ("ea", "0001")
    # MARS order: the analyses (time, param as requested), then tp's short forecasts
    analyses, accumulations = messages[:18], messages[18:]
    assert [m["shortName"] for m in analyses[:3]] == ["2t", "10u", "lsm"]
    assert [(m["dataTime"], m["stepType"], m["endStep"]) for m in analyses[::3]] == [
        (0, "instant", 0),
        (500, "instant", 0),
        (600, "instant", 0),
        (700, "instant", 0),
        (1800, "instant", 0),
        (1900, "instant", 0),
    ]
    assert {m["paramId"] for m in accumulations} == {228}
    assert [
        (m["dataDate"], m["dataTime"], m["startStep"], m["endStep"], m["stepType"], m["marsType"])
        for m in accumulations
    ] == [
        (20191231, 1800, 5, 6, "accum", "fc"),
        (20191231, 1800, 10, 11, "accum", "fc"),
        (20191231, 1800, 11, 12, "accum", "fc"),
        (20200101, 600, 0, 1, "accum", "fc"),
        (20200101, 600, 11, 12, "accum", "fc"),
        (20200101, 1800, 0, 1, "accum", "fc"),
    ]

    fields = by_name(open_grib(path))
    assert set(fields) == {"t2m", "u10", "tp", "lsm"}
    t2m = fields["t2m"]
    assert t2m.attrs["units"] == "K" and t2m.attrs["GRIB_paramId"] == 167
    assert t2m.sizes["latitude"] == 181 and t2m.sizes["longitude"] == 385
    lat, lon = t2m.latitude.values, t2m.longitude.values
    assert np.all(np.diff(lat) < 0) and np.all(np.diff(lon) > 0)
    assert (lat[0], lat[-1], lon[0], lon[-1]) == (45.0, 0.0, -20.0, 76.0)
    assert np.allclose(np.diff(lat), -0.25) and np.allclose(np.diff(lon), 0.25)
    np.testing.assert_array_equal(t2m.time.values, request.times)

    grid = product_grid(ERA5_SINGLE, request.area)
    truth = fake_atmosphere.sample(
        ["t2m", "u10", "tp", "lsm"], request.times, grid.latitudes, grid.longitudes
    )
    for name in ("t2m", "u10", "lsm"):
        assert_packed_close(fields[name].values, truth[name])

    tp = fields["tp"]  # ERA5's accumulation: base time x step, located by valid_time
    assert tp.dims[:2] == ("time", "step") and tp.attrs["GRIB_stepType"] == "accum"
    stacked = tp.stack(field=("time", "step"))
    present = stacked.isel(field=np.flatnonzero(~np.isnan(stacked.values[0, 0])))
    order = np.argsort(present.valid_time.values)
    np.testing.assert_array_equal(present.valid_time.values[order], request.times)
    assert_packed_close(np.moveaxis(present.values[..., order], -1, 0), truth["tp"])


def test_era5_pressure_level_grib(tmp_path: Path, fake_atmosphere: AtmosphereLike) -> None:
    request = era5_pressure(
        ["temperature", "geopotential", "relative_humidity"],
        ["850_hpa", "500_hpa"],
        ["00:00", "12:00"],
    )
    path = tmp_path / "pl.grib"
    write_product(request, path, fake_atmosphere)
    messages = grib_keys(path, "shortName", "level", "typeOfLevel", "dataTime")
    assert [(m["dataTime"], m["level"], m["shortName"]) for m in messages[:6]] == [
        (0, 500, "t"),
        (0, 500, "z"),
        (0, 500, "r"),
        (0, 850, "t"),
        (0, 850, "z"),
        (0, 850, "r"),
    ]
    assert {m["typeOfLevel"] for m in messages} == {"isobaricInhPa"}

    (ds,) = open_grib(path)
    assert set(ds.data_vars) == {"t", "z", "r"}
    assert ds.isobaricInhPa.attrs["units"] == "hPa"
    grid = product_grid(ERA5_PRESSURE, request.area)
    for level in (500, 850):
        truth = fake_atmosphere.sample(
            ["t", "z", "r"], request.times, grid.latitudes, grid.longitudes, float(level)
        )
        for name in ("t", "z", "r"):
            assert_packed_close(ds[name].sel(isobaricInhPa=level).values, truth[name])


def test_eac4_grib_mixes_surface_and_pressure_levels(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    request = eac4(
        ["particulate_matter_2.5um", "total_column_carbon_monoxide", "ozone", "nitrogen_monoxide"],
        ["850", "925"],
    )
    path = tmp_path / "eac4.grib"
    write_product(request, path, fake_atmosphere)
    messages = grib_keys(path, "marsClass", "expver", "stream", "marsType", "Ni", "Nj")
    assert len(messages) == 2 * (2 + 2 * 2)
    assert {
        (m["marsClass"], m["expver"], m["stream"], m["marsType"], m["Ni"], m["Nj"])
        for m in messages
    } == {("mc", "eac4", "oper", "an", 128, 61)}

    datasets = open_grib(path)
    assert len(datasets) == 2  # cfgrib splits surface and pressure levels
    fields = by_name(datasets)
    assert set(fields) == {"pm2p5", "tcco", "go3", "no"}
    assert fields["pm2p5"].attrs["GRIB_paramId"] == 210073
    assert fields["go3"].isobaricInhPa.values.tolist() in ([925.0, 850.0], [850.0, 925.0])
    assert np.allclose(np.diff(fields["go3"].longitude.values), 0.75)
    assert fields["go3"].longitude.values[0] == -19.5

    grid = product_grid(CAMS_EAC4, request.area)
    surface = fake_atmosphere.sample(
        ["pm2p5", "tcco"], request.times, grid.latitudes, grid.longitudes
    )
    for name in ("pm2p5", "tcco"):
        assert_packed_close(fields[name].values, surface[name])
    for level in (850, 925):
        upper = fake_atmosphere.sample(
            ["go3", "no"], request.times, grid.latitudes, grid.longitudes, float(level)
        )
        for name in ("go3", "no"):
            assert_packed_close(fields[name].sel(isobaricInhPa=level).values, upper[name])


def test_cams_forecast_grib(tmp_path: Path, fake_atmosphere: AtmosphereLike) -> None:
    request = cams_forecast(
        ["particulate_matter_2.5um", "total_precipitation", "land_sea_mask", "ozone"], ["850"]
    )
    path = tmp_path / "fc.grib"
    write_product(request, path, fake_atmosphere)
    messages = grib_keys(
        path,
        "shortName",
        "dataDate",
        "dataTime",
        "stepType",
        "startStep",
        "endStep",
        "marsType",
        "Ni",
        "Nj",
    )
    assert len(messages) == 2 * 3 * 4
    assert {(m["marsType"], m["Ni"], m["Nj"]) for m in messages} == {("fc", 241, 113)}
    tp = [m for m in messages if m["shortName"] == "tp"]
    assert [(m["dataTime"], m["stepType"], m["startStep"], m["endStep"]) for m in tp] == [
        (0, "accum", 0, 0),
        (0, "accum", 0, 3),
        (0, "accum", 0, 6),
        (1200, "accum", 0, 0),
        (1200, "accum", 0, 3),
        (1200, "accum", 0, 6),
    ]
    pm = [m for m in messages if m["shortName"] == "pm2p5"]
    assert [(m["dataTime"], m["stepType"], m["endStep"]) for m in pm] == [
        (0, "instant", 0),
        (0, "instant", 3),
        (0, "instant", 6),
        (1200, "instant", 0),
        (1200, "instant", 3),
        (1200, "instant", 6),
    ]

    fields = by_name(open_grib(path))
    assert set(fields) == {"pm2p5", "tp", "lsm", "go3"}
    grid = product_grid(CAMS_FORECAST, request.area)
    for da in fields.values():
        np.testing.assert_array_equal(da.time.values, request.times)
        assert da.step.values.astype("timedelta64[h]").astype(int).tolist() == [0, 3, 6]
        assert (da.valid_time.values == da.time.values[:, None] + da.step.values[None]).all()
        assert da.latitude.values[0] == 44.8 and da.longitude.values[0] == -20.0
    for i, init in enumerate(request.times):
        surface = fake_atmosphere.sample_forecast(
            ["pm2p5", "tp"], init, [0, 3, 6], grid.latitudes, grid.longitudes
        )
        upper = fake_atmosphere.sample_forecast(
            ["go3"], init, [0, 3, 6], grid.latitudes, grid.longitudes, 850.0
        )
        static = fake_atmosphere.sample(
            ["lsm"], fields["lsm"].valid_time.values[i], grid.latitudes, grid.longitudes
        )
        assert_packed_close(fields["pm2p5"].values[i], surface["pm2p5"])
        assert_packed_close(fields["tp"].values[i], surface["tp"])
        assert_packed_close(fields["go3"].values[i], upper["go3"])
        assert_packed_close(fields["lsm"].values[i], static["lsm"])


def test_global_grib_without_area(tmp_path: Path, fake_atmosphere: AtmosphereLike) -> None:
    request = eac4(["2m_temperature"], None, area=None)
    path = tmp_path / "global.grib"
    write_product(request, path, fake_atmosphere)
    ds = xr.open_dataset(path, **GRIB_OPEN_KWARGS)
    assert ds.t2m.shape == (2, 241, 480)
    assert (ds.latitude.values[0], ds.latitude.values[-1]) == (90.0, -90.0)
    assert (ds.longitude.values[0], ds.longitude.values[-1]) == (0.0, 359.25)


def test_tiny_pollutant_values_keep_their_precision(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    """kg m-3 values near 1e-8 survive GRIB1 packing with ~5 significant digits."""
    request = eac4(["particulate_matter_2.5um"], None)
    path = tmp_path / "pm.grib"
    write_product(request, path, fake_atmosphere)
    (ds,) = open_grib(path)
    grid = product_grid(CAMS_EAC4, request.area)
    truth = fake_atmosphere.sample(["pm2p5"], request.times, grid.latitudes, grid.longitudes)[
        "pm2p5"
    ]
    relative = np.abs(ds.pm2p5.values - truth) / truth
    assert float(relative.max()) < 1e-4


# ---------------------------------------------------------------------------------------------
# NetCDF


def check_reanalysis_netcdf(path: Path, expver: str = "0001") -> netCDF4.Dataset:
    nc = netCDF4.Dataset(path)
    assert nc.data_model == "NETCDF4" and nc.disk_format == "HDF5"
    assert (nc.GRIB_centre, nc.Conventions, nc.institution) == (
        "ecmf",
        "CF-1.7",
        "European Centre for Medium-Range Weather Forecasts",
    )
    assert "history" not in nc.ncattrs()
    valid = nc["valid_time"]
    assert valid.dtype == np.int64 and valid.units == "seconds since 1970-01-01"
    assert valid.calendar == "proleptic_gregorian"
    assert nc["number"].dtype == np.int64 and nc["number"].shape == ()
    assert int(nc["number"].getValue()) == 0
    assert list(nc["expver"][:]) == [expver] * valid.size
    assert np.all(np.diff(nc["latitude"][:]) < 0) and np.all(np.diff(nc["longitude"][:]) > 0)
    return nc


def test_era5_single_level_netcdf(tmp_path: Path, fake_atmosphere: AtmosphereLike) -> None:
    request = era5_single(
        ["2m_temperature", "10m_u_component_of_wind"], ["00:00", "06:00"], "netcdf"
    )
    path = tmp_path / "era5.nc"
    assert write_product(request, path, fake_atmosphere) == MIME_NETCDF
    grid = product_grid(ERA5_SINGLE, request.area)
    truth = fake_atmosphere.sample(["t2m", "u10"], request.times, grid.latitudes, grid.longitudes)
    with check_reanalysis_netcdf(path) as nc:
        assert list(nc.dimensions) == ["valid_time", "latitude", "longitude"]
        t2m = nc["t2m"]
        assert t2m.dimensions == ("valid_time", "latitude", "longitude")
        assert t2m.dtype == np.float32 and t2m.filters()["zlib"]
        assert (t2m.units, t2m.long_name, t2m.standard_name) == (
            "K",
            "2 metre temperature",
            "air_temperature",
        )
        assert (t2m.GRIB_paramId, t2m.GRIB_shortName) == (167, "2t")
        np.testing.assert_array_equal(t2m[:], truth["t2m"])  # NetCDF is float32: exact
        assert nc["u10"].units == "m s-1"
    ds = xr.open_dataset(path)
    np.testing.assert_array_equal(ds.valid_time.values, request.times)
    assert ds.latitude.size == 181 and ds.longitude.size == 385
    assert float(ds.longitude[0]) == -20.0 and float(ds.latitude[0]) == 45.0
    assert "number" in ds.coords and "expver" in ds.coords


def test_era5_netcdf_splits_instant_and_accumulated(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    request = era5_single(
        ["2m_temperature", "total_precipitation", "land_sea_mask"], ["00:00", "07:00"], "netcdf"
    )
    path = tmp_path / "era5.zip"
    assert write_product(request, path, fake_atmosphere) == MIME_ZIP
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [
            "data_stream-oper_stepType-instant.nc",
            "data_stream-oper_stepType-accum.nc",
        ]
        assert {i.date_time for i in archive.infolist()} == {ZIP_DATE_TIME}
        archive.extractall(tmp_path / "parts")
    grid = product_grid(ERA5_SINGLE, request.area)
    truth = fake_atmosphere.sample(["tp"], request.times, grid.latitudes, grid.longitudes)
    with check_reanalysis_netcdf(tmp_path / "parts" / "data_stream-oper_stepType-accum.nc") as nc:
        assert list(nc.variables) == [
            "number",
            "valid_time",
            "latitude",
            "longitude",
            "expver",
            "tp",
        ]
        assert nc["tp"].units == "m" and nc["tp"].GRIB_stepType == "accum"
        np.testing.assert_array_equal(nc["tp"][:], truth["tp"])  # the hour ending at valid
    with check_reanalysis_netcdf(tmp_path / "parts" / "data_stream-oper_stepType-instant.nc") as nc:
        assert {"t2m", "lsm"} <= set(nc.variables) and "tp" not in nc.variables


def test_era5_pressure_level_netcdf(tmp_path: Path, fake_atmosphere: AtmosphereLike) -> None:
    request = era5_pressure(
        ["geopotential", "specific_humidity"], ["500_hpa", "850_hpa"], ["00:00"], "netcdf"
    )
    path = tmp_path / "pl.nc"
    assert write_product(request, path, fake_atmosphere) == MIME_NETCDF
    with check_reanalysis_netcdf(path) as nc:
        plev = nc["pressure_level"]
        assert plev.dtype == np.float64 and plev.units == "hPa"
        assert plev[:].tolist() == [850.0, 500.0]  # stored 1000 → top, as the stores do
        assert nc["z"].dimensions == ("valid_time", "pressure_level", "latitude", "longitude")
        grid = product_grid(ERA5_PRESSURE, request.area)
        for index, level in enumerate(plev[:]):
            truth = fake_atmosphere.sample(
                ["z", "q"], request.times, grid.latitudes, grid.longitudes, float(level)
            )
            np.testing.assert_array_equal(nc["z"][:, index], truth["z"])
            np.testing.assert_array_equal(nc["q"][:, index], truth["q"])


def test_eac4_netcdf_mixed_levels_is_a_zip(tmp_path: Path, fake_atmosphere: AtmosphereLike) -> None:
    request = eac4(["particulate_matter_10um", "nitrogen_dioxide"], ["1000"], "netcdf")
    path = tmp_path / "eac4.zip"
    assert write_product(request, path, fake_atmosphere) == MIME_ZIP
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["data_sfc.nc", "data_plev.nc"]
        archive.extractall(tmp_path)
    with check_reanalysis_netcdf(tmp_path / "data_sfc.nc", expver="eac4") as nc:
        assert "pm10" in nc.variables and "pressure_level" not in nc.variables
        assert nc["pm10"].units == "kg m-3"
    with check_reanalysis_netcdf(tmp_path / "data_plev.nc", expver="eac4") as nc:
        assert nc["no2"].dimensions == ("valid_time", "pressure_level", "latitude", "longitude")
        assert nc["pressure_level"][:].tolist() == [1000.0]
    single = eac4(["particulate_matter_10um"], None, "netcdf")
    assert write_product(single, tmp_path / "sfc.nc", fake_atmosphere) == MIME_NETCDF
    verify_netcdf(tmp_path / "sfc.nc")


def test_cams_forecast_netcdf(tmp_path: Path, fake_atmosphere: AtmosphereLike) -> None:
    request = cams_forecast(["particulate_matter_2.5um", "total_precipitation"], None, "netcdf")
    path = tmp_path / "fc.nc"
    assert write_product(request, path, fake_atmosphere) == MIME_NETCDF
    grid = product_grid(CAMS_FORECAST, request.area)
    with netCDF4.Dataset(path) as nc:
        assert list(nc.dimensions) == [
            "forecast_reference_time",
            "forecast_period",
            "latitude",
            "longitude",
        ]
        assert nc["forecast_period"].units == "hours"
        assert nc["forecast_period"][:].tolist() == [0, 3, 6]
        assert nc["forecast_reference_time"].units == "seconds since 1970-01-01"
        assert nc["valid_time"].dimensions == ("forecast_reference_time", "forecast_period")
        pm = nc["pm2p5"]
        assert pm.dimensions == (
            "forecast_reference_time",
            "forecast_period",
            "latitude",
            "longitude",
        )
        for i, init in enumerate(request.times):
            truth = fake_atmosphere.sample_forecast(
                ["pm2p5", "tp"], init, [0, 3, 6], grid.latitudes, grid.longitudes
            )
            np.testing.assert_array_equal(pm[i], truth["pm2p5"])
            np.testing.assert_array_equal(nc["tp"][i], truth["tp"])  # since the run started
    ds = xr.open_dataset(path, decode_timedelta=True)
    np.testing.assert_array_equal(ds.forecast_reference_time.values, request.times)
    expected = request.times[:, None] + np.array([0, 3, 6], dtype="timedelta64[h]")[None]
    np.testing.assert_array_equal(ds.valid_time.values, expected)


def test_cams_forecast_netcdf_mixed_levels_is_a_zip(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    request = cams_forecast(["particulate_matter_2.5um", "ozone"], ["850", "500"], "netcdf")
    path = tmp_path / "fc.zip"
    assert write_product(request, path, fake_atmosphere) == MIME_ZIP
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["data_sfc.nc", "data_plev.nc"]
        archive.extractall(tmp_path)
    ds = xr.open_dataset(tmp_path / "data_plev.nc", decode_timedelta=True)
    assert ds.go3.dims == (
        "forecast_reference_time",
        "forecast_period",
        "pressure_level",
        "latitude",
        "longitude",
    )
    assert ds.pressure_level.values.tolist() == [850.0, 500.0]
    grid = product_grid(CAMS_FORECAST, request.area)
    truth = fake_atmosphere.sample_forecast(
        ["go3"], request.times[1], [0, 3, 6], grid.latitudes, grid.longitudes, 500.0
    )
    np.testing.assert_array_equal(ds.go3.values[1, :, 1], truth["go3"])


# ---------------------------------------------------------------------------------------------
# determinism and atomicity


@pytest.mark.parametrize("kind", ["grib", "netcdf", "zip"])
def test_same_request_gives_identical_bytes(
    tmp_path: Path, fake_atmosphere: AtmosphereLike, kind: str
) -> None:
    if kind == "grib":
        request = cams_forecast(
            ["particulate_matter_2.5um", "ozone", "total_precipitation"], ["850"]
        )
    elif kind == "netcdf":
        request = eac4(["particulate_matter_2.5um", "2m_temperature"], None, "netcdf")
    else:
        request = eac4(["particulate_matter_2.5um", "ozone"], ["850"], "netcdf")
    first, second = tmp_path / "a", tmp_path / "b"
    write_product(request, first, fake_atmosphere)
    if kind != "grib":
        # HDF5 can stamp objects with their creation time (1 s resolution): cross a second
        time.sleep(1.1)
    write_product(request, second, fake_atmosphere)
    assert first.read_bytes() == second.read_bytes()


class FailingAtmosphere:
    """Fails half-way through a product."""

    def __init__(self, inner: AtmosphereLike) -> None:
        self.inner, self.calls = inner, 0

    def sample(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("atmosphere failed")
        return self.inner.sample(*args, **kwargs)

    def sample_forecast(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        raise RuntimeError("atmosphere failed")


@pytest.mark.parametrize("fmt", ["grib", "netcdf"])
def test_failed_product_leaves_nothing(
    tmp_path: Path, fake_atmosphere: AtmosphereLike, fmt: str
) -> None:
    request = era5_single(["2m_temperature", "total_precipitation"], ["00:00"], fmt)
    with pytest.raises(RuntimeError, match="atmosphere failed"):
        write_product(request, tmp_path / "product", FailingAtmosphere(fake_atmosphere))
    assert list(tmp_path.iterdir()) == []


def test_atmosphere_with_wrong_shape_is_reported(tmp_path: Path) -> None:
    class Flat:
        def sample(
            self, names: Any, times: Any, lat: Any, lon: Any, level_hpa: Any = None
        ) -> dict[str, np.ndarray]:
            return {n: np.zeros((1, 2, 2), np.float32) for n in names}

        def sample_forecast(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
            raise NotImplementedError

    request = era5_single(["2m_temperature"], ["00:00"])
    with pytest.raises(ValueError, match="shape"):
        write_product(request, tmp_path / "x.grib", Flat())


# ---------------------------------------------------------------------------------------------
# the real toy atmosphere


@pytest.fixture(scope="module")
def toy_atmosphere() -> AtmosphereLike:
    atmosphere = pytest.importorskip(
        "aircast.sandbox.atmosphere", reason="aircast/sandbox/atmosphere.py not written yet"
    )
    toy: AtmosphereLike = atmosphere.ToyAtmosphere(seed=0)
    return toy


def test_products_from_the_toy_atmosphere(tmp_path: Path, toy_atmosphere: AtmosphereLike) -> None:
    request = era5_single(
        ["2m_temperature", "total_precipitation", "land_sea_mask"], ["00:00", "06:00", "07:00"]
    )
    path = tmp_path / "era5.grib"
    write_product(request, path, toy_atmosphere)
    summary = verify_grib(path)
    assert summary.n_messages == 9
    grid = product_grid(ERA5_SINGLE, request.area)
    truth = toy_atmosphere.sample(["t2m", "lsm"], request.times, grid.latitudes, grid.longitudes)
    fields = by_name(open_grib(path))
    assert_packed_close(fields["t2m"].values, truth["t2m"])
    assert_packed_close(fields["lsm"].values, truth["lsm"])

    forecast = cams_forecast(
        ["particulate_matter_2.5um", "total_precipitation", "ozone"], ["850"], "netcdf"
    )
    zipped = tmp_path / "fc.zip"
    assert write_product(forecast, zipped, toy_atmosphere) == MIME_ZIP
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(tmp_path)
    for member in ("data_sfc.nc", "data_plev.nc"):
        verify_netcdf(tmp_path / member)
    fc_grid = product_grid(CAMS_FORECAST, forecast.area)
    expected = toy_atmosphere.sample_forecast(
        ["pm2p5"], forecast.times[0], [0, 3, 6], fc_grid.latitudes, fc_grid.longitudes
    )
    with netCDF4.Dataset(tmp_path / "data_sfc.nc") as nc:
        np.testing.assert_array_equal(nc["pm2p5"][0], expected["pm2p5"])


def test_constant_field_does_not_change_the_packing_of_the_next(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    class AllSea:
        def sample(self, names: Any, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
            fields = fake_atmosphere.sample(names, *args, **kwargs)
            return {n: np.zeros_like(v) if n == "lsm" else v for n, v in fields.items()}

        def sample_forecast(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
            raise NotImplementedError

    request = era5_single(["land_sea_mask", "2m_temperature"], ["00:00", "01:00"])
    path = tmp_path / "sea.grib"
    write_product(request, path, AllSea())
    packing = [(m["shortName"], m["bitsPerValue"]) for m in grib_keys(path, *GRIB_KEYS)]
    assert packing == [("lsm", 0), ("2t", 16), ("lsm", 0), ("2t", 16)]
    fields = by_name(open_grib(path))
    assert float(np.abs(fields["lsm"].values).max()) == 0.0
