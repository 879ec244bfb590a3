"""The canonical form: real ECMWF files, hand-built edge cases, and content against request.

Edge cases are small GRIB files written here with ecCodes from its samples, and NetCDF files
written with netCDF4/xarray, each with exactly one peculiarity (a field scanned south to north,
longitudes 0..360, levels in Pa, an ``expver`` dimension, a bitmap, ...).
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import eccodes
import netCDF4
import numpy as np
import pytest
import xarray as xr

from aircast.catalogue import ParsedRequest, product_grid, validate_request
from aircast.errors import ContentMismatchError, CorruptFileError
from aircast.sandbox.products import AtmosphereLike, write_product
from aircast.sources.canonical import DecodeError
from aircast.sources.decode import decode_product
from aircast.sources.grib import check_grib_content, clear_caches, open_grib, verify_grib
from aircast.sources.grib_canonical import decode_grib
from aircast.vocab import CAMS_EAC4, CAMS_FORECAST, ERA5_PRESSURE, ERA5_SINGLE, VARIABLES

TODAY = dt.date(2024, 6, 1)
AREA = [10, -5, 5, 5]  # small: 21 × 41 points on the 0.25° grid


def assert_canonical_axes(ds: xr.Dataset) -> None:
    """Latitude north → south, longitude increasing in [-180, 180), times datetime64[ns]."""
    lat, lon = ds["latitude"].values, ds["longitude"].values
    assert lat.dtype == np.float64 and lon.dtype == np.float64
    assert np.all(np.diff(lat) < 0), "latitude must decrease strictly"
    assert np.all(np.diff(lon) > 0), "longitude must increase strictly"
    assert lon.min() >= -180.0 and lon.max() < 180.0
    for name in ("time", "init_time"):
        if name in ds.coords:
            assert ds[name].dtype == np.dtype("datetime64[ns]")
    for name in ds.data_vars:
        assert ds[name].dtype == np.float32
        assert ds[name].dims[-2:] == ("latitude", "longitude")


def assert_packed_close(decoded: Any, expected: Any) -> None:
    """Values agree within 16-bit simple packing: a packing step of the field's range."""
    decoded = np.asarray(decoded, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert decoded.shape == expected.shape
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(decoded), finite)
    span = float(np.ptp(expected[finite])) if finite.any() else 0.0
    tolerance = span / (2**16 - 1) + 2e-7 * float(np.abs(expected[finite]).max(initial=0))
    assert float(np.abs(decoded[finite] - expected[finite]).max(initial=0)) <= tolerance


# ---------------------------------------------------------------------------------------------
# hand-built GRIB


def grid_keys(lat1: float, lat2: float, lon1: float, lon2: float, step: float) -> dict[str, Any]:
    """ecCodes keys of a regular grid from (lat1, lon1) to (lat2, lon2), scanning as given."""
    return {
        "Ni": round(abs(lon2 - lon1) / step) + 1,
        "Nj": round(abs(lat2 - lat1) / step) + 1,
        "latitudeOfFirstGridPointInDegrees": lat1,
        "latitudeOfLastGridPointInDegrees": lat2,
        "longitudeOfFirstGridPointInDegrees": lon1,
        "longitudeOfLastGridPointInDegrees": lon2,
        "iDirectionIncrementInDegrees": step,
        "jDirectionIncrementInDegrees": step,
        "jScansPositively": int(lat2 > lat1),
        "iScansNegatively": int(lon2 < lon1),
    }


def grib_message(sample: str, values: np.ndarray, keys: dict[str, Any]) -> bytes:
    """One message from an ecCodes sample, ``keys`` set in order, then ``values`` (scan order)."""
    handle = eccodes.codes_grib_new_from_samples(sample)
    try:
        for key, value in keys.items():
            eccodes.codes_set(handle, key, value)
        eccodes.codes_set_values(handle, np.asarray(values, dtype=np.float64).ravel())
        message: bytes = eccodes.codes_get_message(handle)
    finally:
        eccodes.codes_release(handle)
    return message


def write_grib(path: Path, *messages: bytes) -> Path:
    path.write_bytes(b"".join(messages))
    return path


SMALL = grid_keys(10, 0, 0, 20, 5)  # 3 × 5 points, north to south


# ---------------------------------------------------------------------------------------------
# (a) real ECMWF files


def test_real_era5_levels_members(real_grib: Path) -> None:
    ds = decode_grib(real_grib / "era5-levels-members.grib")
    assert set(ds.data_vars) == {"z", "t"}
    for name in ("z", "t"):
        assert ds[name].dims == ("time", "number", "level", "latitude", "longitude")
    assert dict(ds.sizes) == {"time": 4, "number": 10, "level": 2, "latitude": 61, "longitude": 120}
    assert ds["level"].values.tolist() == [500, 850]
    assert ds["level"].dtype == np.int64 and ds["level"].attrs["units"] == "hPa"
    assert ds["number"].values.tolist() == list(range(10))
    assert ds["z"].attrs["units"] == VARIABLES["z"].units == "m2 s-2"
    assert ds["t"].attrs["units"] == VARIABLES["t"].units == "K"
    assert ds["z"].attrs["GRIB_paramId"] == 129 and ds["t"].attrs["GRIB_paramId"] == 130
    assert_canonical_axes(ds)
    assert (ds["latitude"].values[0], ds["latitude"].values[-1]) == (90.0, -90.0)
    assert (ds["longitude"].values[0], ds["longitude"].values[-1]) == (-180.0, 177.0)
    np.testing.assert_array_equal(
        ds["time"].values,
        np.array(["2017-01-01T00", "2017-01-01T12", "2017-01-02T00", "2017-01-02T12"], "M8[ns]"),
    )
    assert not ds["z"].isnull().any()


def test_real_era5_levels_members_match_cfgrib(real_grib: Path) -> None:
    """The canonical decode holds cfgrib's values, only reordered (a cross-check of both)."""
    path = real_grib / "era5-levels-members.grib"
    ours = decode_grib(path)
    (theirs,) = open_grib(path)
    theirs = theirs.assign_coords(longitude=((theirs.longitude + 180) % 360) - 180)
    theirs = theirs.sortby("longitude").rename(isobaricInhPa="level").sortby("level")
    for name in ("z", "t"):
        expected = theirs[name].transpose("time", "number", "level", "latitude", "longitude")
        np.testing.assert_array_equal(ours[name].values, expected.values)


def test_real_era5_single_level_scalar_time(real_grib: Path) -> None:
    ds = decode_grib(real_grib / "era5-single-level-scalar-time.grib")
    assert list(ds.data_vars) == ["t2m"]
    assert ds["t2m"].dims == ("time", "latitude", "longitude")
    assert ds["t2m"].shape == (1, 121, 201)
    assert ds["time"].values[0] == np.datetime64("2017-01-01T12", "ns")
    assert ds["t2m"].attrs["units"] == "K"
    assert_canonical_axes(ds)
    assert (ds["latitude"].values[0], ds["latitude"].values[-1]) == (60.0, 30.0)
    assert (ds["longitude"].values[0], ds["longitude"].values[-1]) == (-10.0, 40.0)
    (theirs,) = open_grib(real_grib / "era5-single-level-scalar-time.grib")
    np.testing.assert_array_equal(ds["t2m"].values[0], theirs["t2m"].values)


def test_real_cams_egg4_monthly(real_grib: Path) -> None:
    """Monthly means: both fields land on the first of their month, whatever their steps."""
    ds = decode_grib(real_grib / "cams-egg4-monthly.grib")
    assert set(ds.data_vars) == {"t2m", "aco2rec"}
    np.testing.assert_array_equal(
        ds["time"].values, np.array(["2005-01-01", "2005-02-01"], dtype="M8[ns]")
    )
    assert not ds["t2m"].isnull().any() and not ds["aco2rec"].isnull().any()
    assert ds["t2m"].attrs["units"] == "K"
    assert ds["aco2rec"].attrs["units"] == "kg m**-2"  # not in the vocabulary: GRIB units
    assert ds["aco2rec"].attrs["GRIB_paramId"] == 228082
    assert "monthly" in ds["t2m"].attrs["time_convention"]
    assert_canonical_axes(ds)
    assert ds.sizes["latitude"] == 27 and ds.sizes["longitude"] == 27


def test_real_regular_global_field(real_grib: Path) -> None:
    ds = decode_grib(real_grib / "regular_ll_sfc.grib")
    assert list(ds.data_vars) == ["skt"]  # cfgrib's name: skt is not in the vocabulary
    assert ds["skt"].shape == (1, 37, 72)
    assert ds["skt"].attrs["units"] == "K" and ds["skt"].attrs["long_name"] == "Skin temperature"
    assert_canonical_axes(ds)
    assert (ds["longitude"].values[0], ds["longitude"].values[-1]) == (-180.0, 175.0)
    (theirs,) = open_grib(real_grib / "regular_ll_sfc.grib")
    # 0..355 → -180..175: the western half of the canonical field is cfgrib's eastern half
    np.testing.assert_array_equal(ds["skt"].values[0, :, :36], theirs["skt"].values[:, 36:])
    np.testing.assert_array_equal(ds["skt"].values[0, :, 36:], theirs["skt"].values[:, :36])


def test_real_corrupted_file_is_rejected_whole(real_grib: Path) -> None:
    path = real_grib / "era5-levels-corrupted.grib"
    result = None
    with pytest.raises(CorruptFileError, match="Wrong message length") as caught:
        result = decode_grib(path)
    assert result is None  # nothing half-loaded came back
    assert caught.value.message_number == 1 and "delete it and fetch again" in str(caught.value)


def test_a_cold_process_decodes_the_same(real_grib: Path) -> None:
    """Kinds and grids cached from earlier files change nothing."""
    path = real_grib / "era5-levels-members.grib"
    warm = decode_grib(path)
    clear_caches()
    xr.testing.assert_identical(decode_grib(path), warm)


# ---------------------------------------------------------------------------------------------
# (b) edge cases: GRIB


def test_field_scanned_south_to_north_comes_out_north_to_south(tmp_path: Path) -> None:
    # rows stored from 0°N up to 10°N: row j holds 100 * latitude + column
    lat_stored = np.array([0.0, 5.0, 10.0])
    values = 100 * lat_stored[:, None] + np.arange(5)[None, :]
    path = write_grib(
        tmp_path / "s2n.grib",
        grib_message("regular_ll_sfc_grib1", values, grid_keys(0, 10, 0, 20, 5)),
    )
    ds = decode_grib(path)
    assert ds["latitude"].values.tolist() == [10.0, 5.0, 0.0]
    np.testing.assert_array_equal(ds["t2m"].values[0], values[::-1])
    assert_canonical_axes(ds)


def test_field_scanned_east_to_west_and_column_by_column(tmp_path: Path) -> None:
    keys = grid_keys(10, 0, 20, 0, 5)  # iScansNegatively: columns from 20°E down to 0°E
    keys["jPointsAreConsecutive"] = 1  # and stored column by column
    lon_stored = np.array([20.0, 15.0, 10.0, 5.0, 0.0])
    lat = np.array([10.0, 5.0, 0.0])
    values = lon_stored[:, None] * 1000 + lat[None, :]  # (column, row) as stored
    ds = decode_grib(
        write_grib(tmp_path / "e2w.grib", grib_message("regular_ll_sfc_grib1", values, keys))
    )
    assert ds["longitude"].values.tolist() == [0.0, 5.0, 10.0, 15.0, 20.0]
    expected = np.array([0.0, 5.0, 10.0, 15.0, 20.0])[None, :] * 1000 + lat[:, None]
    np.testing.assert_array_equal(ds["t2m"].values[0], expected)


def test_longitudes_0_360_wrap_into_minus_180_180(tmp_path: Path) -> None:
    lon_stored = np.arange(0.0, 360.0, 30.0)  # 0, 30, ..., 330
    values = np.tile(lon_stored, (3, 1))  # every value is its own longitude
    keys = grid_keys(10, 0, 0, 330, 30) | {"jDirectionIncrementInDegrees": 5}
    keys["Nj"] = 3
    ds = decode_grib(
        write_grib(tmp_path / "0360.grib", grib_message("regular_ll_sfc_grib1", values, keys))
    )
    lon = ds["longitude"].values
    assert lon.tolist() == [
        -180.0,
        -150.0,
        -120.0,
        -90.0,
        -60.0,
        -30.0,
        0.0,
        30.0,
        60.0,
        90.0,
        120.0,
        150.0,
    ]
    np.testing.assert_array_equal(ds["t2m"].values[0], np.tile(lon % 360, (3, 1)))
    assert_canonical_axes(ds)


def test_closed_global_grid_drops_the_repeated_meridian(tmp_path: Path) -> None:
    lon_stored = np.arange(0.0, 361.0, 60.0)  # 0, 60, ..., 360: 360 repeats 0
    values = np.tile(lon_stored % 360, (3, 1))
    keys = grid_keys(10, 0, 0, 360, 60) | {"jDirectionIncrementInDegrees": 5}
    keys["Nj"] = 3
    ds = decode_grib(
        write_grib(tmp_path / "closed.grib", grib_message("regular_ll_sfc_grib1", values, keys))
    )
    assert ds["longitude"].values.tolist() == [-180.0, -120.0, -60.0, 0.0, 60.0, 120.0]
    np.testing.assert_array_equal(
        ds["t2m"].values[0], np.tile([180.0, 240.0, 300.0, 0.0, 60.0, 120.0], (3, 1))
    )


def test_grib_bitmap_missing_values_become_nan(tmp_path: Path) -> None:
    values = np.arange(15, dtype=np.float64).reshape(3, 5) + 270
    values[1, 2] = values[0, 4] = 9999.0  # ecCodes' missingValue: masked by the bitmap
    keys = {**SMALL, "bitmapPresent": 1, "missingValue": 9999}
    ds = decode_grib(
        write_grib(tmp_path / "bitmap.grib", grib_message("regular_ll_sfc_grib1", values, keys))
    )
    field = ds["t2m"].values[0]
    assert np.isnan(field[1, 2]) and np.isnan(field[0, 4])
    assert int(np.isnan(field).sum()) == 2
    assert field[0, 0] == 270.0


def test_grib_levels_in_pa_come_out_in_hpa(tmp_path: Path) -> None:
    values = np.full((3, 5), 250.0)
    pa = grib_message(
        "regular_ll_pl_grib1",
        values,
        {**SMALL, "paramId": 130, "indicatorOfTypeOfLevel": 210, "level": 5000},  # 5000 Pa
    )
    hpa = grib_message("regular_ll_pl_grib1", values + 1, {**SMALL, "paramId": 130, "level": 850})
    ds = decode_grib(write_grib(tmp_path / "pa.grib", pa, hpa))
    assert ds["t"].dims == ("time", "level", "latitude", "longitude")
    assert ds["level"].values.tolist() == [50, 850]
    np.testing.assert_array_equal(ds["t"].values[0, :, 0, 0], [250.0, 251.0])


def test_grib2_levels_below_one_hpa(tmp_path: Path) -> None:
    keys = {
        **SMALL,
        "paramId": 130,
        "typeOfFirstFixedSurface": 100,
        "scaleFactorOfFirstFixedSurface": 0,
        "scaledValueOfFirstFixedSurface": 50,  # 50 Pa = 0.5 hPa
    }
    ds = decode_grib(
        write_grib(
            tmp_path / "g2.grib", grib_message("regular_ll_pl_grib2", np.full((3, 5), 200.0), keys)
        )
    )
    assert ds["level"].values.tolist() == [0.5] and ds["level"].dtype == np.float64
    assert ds["t"].attrs["units"] == "K"


def test_two_fields_for_the_same_slot_are_refused(tmp_path: Path) -> None:
    message = grib_message("regular_ll_sfc_grib1", np.full((3, 5), 280.0), SMALL)
    with pytest.raises(DecodeError, match="t2m twice"):
        decode_grib(write_grib(tmp_path / "twice.grib", message, message))


def test_era5t_fields_fill_where_era5_has_none(tmp_path: Path) -> None:
    def field(hour: int, expver: str, value: float) -> bytes:
        keys = {**SMALL, "expver": expver, "dataDate": 20240101, "dataTime": hour * 100}
        return grib_message("regular_ll_sfc_grib1", np.full((3, 5), value), keys)

    path = write_grib(
        tmp_path / "mixed.grib",
        field(0, "0001", 270.0),
        field(6, "0001", 271.0),
        field(6, "0005", 999.0),  # the same field from ERA5T: the final one wins
        field(12, "0005", 272.0),  # not final yet: ERA5T fills it
    )
    ds = decode_grib(path)
    assert ds["t2m"].values[:, 0, 0].tolist() == [270.0, 271.0, 272.0]
    assert ds.attrs["expver"] == "0001,0005"
    assert "0001 preferred" in ds.attrs["expver_collapsed"]
    assert "0005 filled 1 of 3 times" in ds.attrs["expver_collapsed"]


def test_overlapping_runs_are_laid_out_by_run_and_lead(tmp_path: Path) -> None:
    def field(run_hour: int, step: int) -> bytes:
        keys = {**SMALL, "dataDate": 20240101, "dataTime": run_hour * 100, "marsType": "fc"}
        keys["stepRange"] = str(step)
        return grib_message("regular_ll_sfc_grib1", np.full((3, 5), 100.0 * run_hour + step), keys)

    # runs at 00 and 12 UTC, steps 0 and 12: the 00 UTC run at step 12 and the 12 UTC run at
    # step 0 are both valid at 12 UTC
    path = write_grib(
        tmp_path / "runs.grib", field(0, 0), field(0, 12), field(12, 0), field(12, 12)
    )
    ds = decode_grib(path)
    assert ds["t2m"].dims == ("init_time", "lead_time", "latitude", "longitude")
    assert ds["lead_time"].values.tolist() == [0, 12 * 3600 * 10**9]
    assert ds["valid_time"].shape == (2, 2)
    np.testing.assert_array_equal(ds["t2m"].values[:, :, 0, 0], [[0.0, 12.0], [1200.0, 1212.0]])
    by_valid = decode_grib(write_grib(tmp_path / "one.grib", field(0, 0), field(0, 12)))
    assert by_valid["t2m"].dims[0] == "time"  # one run: by valid time


def test_fields_on_two_grids_are_refused(tmp_path: Path) -> None:
    coarse = grib_message("regular_ll_sfc_grib1", np.full((3, 5), 280.0), SMALL)
    fine = grib_message(
        "regular_ll_sfc_grib1", np.full((5, 9), 280.0), grid_keys(10, 0, 0, 20, 2.5)
    )
    path = write_grib(tmp_path / "two.grib", coarse, fine)
    assert len(verify_grib(path).grids) == 2  # well-formed: it verifies
    with pytest.raises(DecodeError, match="2 grids"):
        decode_grib(path)


def test_grib2_summary_uses_millidegrees_and_hpa(tmp_path: Path) -> None:
    keys = {**SMALL, "paramId": 130, "typeOfFirstFixedSurface": 100}
    keys |= {"scaleFactorOfFirstFixedSurface": 0, "scaledValueOfFirstFixedSurface": 85000}
    path = write_grib(
        tmp_path / "g2.grib", grib_message("regular_ll_pl_grib2", np.zeros((3, 5)), keys)
    )
    summary = verify_grib(path)
    assert summary.editions == (2,) and summary.pressure_levels == (850,)
    assert summary.grids == {(3, 5, 10_000, 0, 0, 20_000)}
    assert summary.fields[0][:2] == (130, 850)


def test_a_reduced_grid_verifies_but_has_no_canonical_form(tmp_path: Path) -> None:
    handle = eccodes.codes_grib_new_from_samples("reduced_gg_sfc_grib1")
    try:
        size = eccodes.codes_get_size(handle, "values")
        eccodes.codes_set_values(handle, np.linspace(250, 300, size))
        path = write_grib(tmp_path / "reduced.grib", eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)
    assert verify_grib(path).n_messages == 1
    with pytest.raises(DecodeError, match="reduced_gg"):
        decode_grib(path)


# ---------------------------------------------------------------------------------------------
# (b) edge cases: accumulations


def era5_tp_request(fmt: str) -> ParsedRequest:
    return validate_request(
        ERA5_SINGLE,
        {
            "product_type": "reanalysis",
            "variable": ["total_precipitation", "2m_temperature"],
            "year": "2019",
            "month": "june",
            "day": "01",
            # across both of ERA5's accumulation bases (06 and 18 UTC)
            "time": ["00:00", "05:00", "06:00", "07:00", "18:00", "19:00"],
            "area": AREA,
            "data_format": fmt,
        },
        today=TODAY,
    )


def test_era5_tp_from_grib_is_hourly_amounts_at_valid_times(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    grib, netcdf = era5_tp_request("grib"), era5_tp_request("netcdf")
    write_product(grib, tmp_path / "tp.grib", fake_atmosphere)
    write_product(netcdf, tmp_path / "tp.nc", fake_atmosphere)
    from_grib = decode_product(tmp_path / "tp.grib", grib)
    from_netcdf = decode_product(tmp_path / "tp.nc", netcdf)
    for ds in (from_grib, from_netcdf):
        np.testing.assert_array_equal(ds["time"].values, grib.times)
        assert ds["tp"].attrs["accumulation_hours"] == 1
        assert ds["tp"].dims == ("time", "latitude", "longitude")
        assert_canonical_axes(ds)
    assert_packed_close(from_grib["tp"].values, from_netcdf["tp"].values)
    grid = product_grid(ERA5_SINGLE, grib.area)
    truth = fake_atmosphere.sample(["tp"], grib.times, grid.latitudes, grid.longitudes)["tp"]
    assert_packed_close(from_grib["tp"].values, truth)
    # the request-free decode lays ERA5's base/step pairs out by valid time too
    request_free = decode_grib(tmp_path / "tp.grib")
    np.testing.assert_array_equal(request_free["time"].values, grib.times)
    np.testing.assert_array_equal(request_free["tp"].values, from_grib["tp"].values)


def cams_tp_request(fmt: str, leads: list[int]) -> ParsedRequest:
    return validate_request(
        CAMS_FORECAST,
        {
            "variable": ["total_precipitation", "2m_temperature"],
            "date": "2024-01-01",
            "time": "00:00",
            "leadtime_hour": [str(h) for h in leads],
            "type": "forecast",
            "area": AREA,
            "data_format": fmt,
        },
        today=TODAY,
    )


@pytest.mark.parametrize("fmt", ["grib", "netcdf"])
def test_cams_forecast_tp_becomes_amounts_per_interval(
    tmp_path: Path, fake_atmosphere: AtmosphereLike, fmt: str
) -> None:
    leads = [0, 3, 6, 9]
    parsed = cams_tp_request(fmt, leads)
    path = tmp_path / f"fc.{fmt}"
    write_product(parsed, path, fake_atmosphere)
    ds = decode_product(path, parsed)
    assert ds["tp"].dims == ("init_time", "lead_time", "latitude", "longitude")
    assert ds["tp"].attrs["accumulation_hours"] == 3
    assert ds["tp"].isnull().all(dim=("latitude", "longitude")).values.tolist() == [
        [True, False, False, False]  # lead 0 ends no 3-hour interval
    ]
    grid = product_grid(CAMS_FORECAST, parsed.area)
    accumulated = fake_atmosphere.sample_forecast(
        ["tp"], parsed.times[0], leads, grid.latitudes, grid.longitudes
    )["tp"]
    assert_packed_close(ds["tp"].values[0, 1:], np.diff(accumulated, axis=0))
    np.testing.assert_array_equal(
        ds["valid_time"].values[0], parsed.times[0] + np.array(leads, "m8[h]").astype("m8[ns]")
    )


def test_cams_forecast_first_lead_is_kept_when_it_spans_one_interval(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    parsed = cams_tp_request("grib", [3, 6])
    write_product(parsed, tmp_path / "fc.grib", fake_atmosphere)
    ds = decode_product(tmp_path / "fc.grib", parsed)
    assert ds["tp"].attrs["accumulation_hours"] == 3
    assert not ds["tp"].isnull().any()  # 0..3 is an interval of 3 hours too


def test_cams_forecast_tp_over_uneven_leads_is_refused(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    parsed = cams_tp_request("grib", [0, 1, 3])
    write_product(parsed, tmp_path / "fc.grib", fake_atmosphere)
    with pytest.raises(DecodeError, match=r"tp: .*intervals of different lengths \(1 h, 2 h\)"):
        decode_product(tmp_path / "fc.grib", parsed)


def test_request_free_decode_of_a_forecast_gives_the_same_amounts(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    parsed = cams_tp_request("grib", [0, 3, 6])
    write_product(parsed, tmp_path / "fc.grib", fake_atmosphere)
    product = decode_product(tmp_path / "fc.grib", parsed)
    by_valid = decode_grib(tmp_path / "fc.grib")  # one run: laid out by valid time
    assert by_valid["tp"].dims == ("time", "latitude", "longitude")
    assert by_valid["tp"].attrs["accumulation_hours"] == 3
    np.testing.assert_array_equal(by_valid["tp"].values, product["tp"].values[0])


# ---------------------------------------------------------------------------------------------
# (b) edge cases: NetCDF


def test_netcdf_pressure_levels_in_pa_come_out_in_hpa(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    request = {
        "product_type": "reanalysis",
        "variable": ["temperature"],
        "pressure_level": ["500_hpa", "850_hpa"],
        "year": "2019",
        "month": "june",
        "day": "01",
        "time": ["00:00"],
        "area": AREA,
    }
    in_hpa = validate_request(ERA5_PRESSURE, {**request, "data_format": "netcdf"}, today=TODAY)
    path = tmp_path / "pl.nc"
    write_product(in_hpa, path, fake_atmosphere)
    expected = decode_product(path, in_hpa)
    with netCDF4.Dataset(path, "a") as nc:  # the same file with its levels in Pa
        plev = nc["pressure_level"]
        plev[:] = plev[:] * 100.0
        plev.units = "Pa"
    ds = decode_product(path, in_hpa)
    assert ds["level"].values.tolist() == [500, 850] and ds["level"].attrs["units"] == "hPa"
    xr.testing.assert_identical(ds, expected)


def era5_t2m_request(times: list[str]) -> ParsedRequest:
    return validate_request(
        ERA5_SINGLE,
        {
            "product_type": "reanalysis",
            "variable": ["2m_temperature"],
            "year": "2023",
            "month": "december",
            "day": "01",
            "time": times,
            "area": AREA,
            "data_format": "netcdf",
        },
        today=TODAY,
    )


def old_cds_netcdf(path: Path, parsed: ParsedRequest, data: np.ndarray, expver: list[str]) -> Path:
    """A NetCDF as the old CDS wrote ERA5/ERA5T: an ``expver`` dimension, int16 packing,
    ``_FillValue`` where a version has no data, latitude ascending, longitudes 0..360."""
    grid = product_grid(parsed.dataset, parsed.area)
    ds = xr.Dataset(
        {
            "t2m": (
                ("time", "expver", "latitude", "longitude"),
                data[:, :, ::-1, :],  # stored south to north
                {"units": "K", "long_name": "2 metre temperature"},
            )
        },
        coords={
            "time": parsed.times,
            "expver": np.array([int(e) for e in expver], dtype=np.int32),
            "latitude": grid.latitudes[::-1],
            "longitude": grid.longitudes % 360.0,
        },
    )
    encoding = {
        "t2m": {
            "dtype": "int16",
            "scale_factor": 0.002,
            "add_offset": 280.0,
            "_FillValue": np.int16(-32767),
        }
    }
    ds.to_netcdf(path, format="NETCDF3_64BIT", encoding=encoding)
    return path


def test_netcdf_expver_dimension_collapses_preferring_era5(tmp_path: Path) -> None:
    parsed = era5_t2m_request(["00:00", "06:00", "12:00", "18:00"])
    shape = (4, 2, *product_grid(ERA5_SINGLE, parsed.area).shape)
    data = np.full(shape, np.nan)
    data[:3, 0] = 270.0 + np.arange(3)[:, None, None]  # ERA5 (0001): the first three times
    data[3, 1] = 290.0  # ERA5T (0005): the latest time only
    data[2, 1] = 250.0  # both at 12 UTC: ERA5's value wins
    data[1, 0, 0, 0] = np.nan  # and a missing value that stays missing
    path = old_cds_netcdf(tmp_path / "era5t.nc", parsed, data, ["0001", "0005"])
    ds = decode_product(path, parsed)
    assert ds["t2m"].dims == ("time", "latitude", "longitude")
    values = ds["t2m"].values
    np.testing.assert_allclose(values[:, 5, 5], [270.0, 271.0, 272.0, 290.0], atol=0.002)
    assert np.isnan(values[1, 0, 0]) and int(np.isnan(values).sum()) == 1
    assert ds.attrs["expver"] == "0001,0005"
    assert ds.attrs["expver_collapsed"] == (
        "0001+0005: 0001 preferred where present; 0005 filled 1 of 4 times"
    )
    assert_canonical_axes(ds)
    assert ds["longitude"].values[0] == -5.0  # 355..5 wrapped back to -5..5


def test_netcdf_fill_values_become_nan(tmp_path: Path) -> None:
    parsed = era5_t2m_request(["00:00"])
    shape = (1, 1, *product_grid(ERA5_SINGLE, parsed.area).shape)
    data = np.full(shape, 280.0)
    data[0, 0, 3, 4] = np.nan
    ds = decode_product(old_cds_netcdf(tmp_path / "fill.nc", parsed, data, ["0001"]), parsed)
    assert np.isnan(ds["t2m"].values[0, 3, 4]) and int(ds["t2m"].isnull().sum()) == 1
    assert ds["t2m"].dtype == np.float32


@pytest.mark.parametrize(
    "dataset", [ERA5_SINGLE, ERA5_PRESSURE, CAMS_EAC4, CAMS_FORECAST], ids=lambda d: d.split("-")[0]
)
def test_grib_and_netcdf_products_decode_alike(
    tmp_path: Path, fake_atmosphere: AtmosphereLike, dataset: str
) -> None:
    """The same request in both formats gives the same canonical dataset (up to packing)."""
    base: dict[str, Any] = {
        ERA5_SINGLE: {
            "product_type": "reanalysis",
            "variable": ["2m_temperature", "total_precipitation", "geopotential"],
            "year": "2019",
            "month": "june",
            "day": "01",
            "time": ["00:00", "07:00"],
        },
        ERA5_PRESSURE: {
            "product_type": "reanalysis",
            "variable": ["temperature", "geopotential"],
            "pressure_level": ["850_hpa", "500_hpa"],
            "year": "2019",
            "month": "june",
            "day": "01",
            "time": ["00:00", "03:00"],
        },
        CAMS_EAC4: {
            "variable": ["particulate_matter_2.5um", "ozone"],
            "pressure_level": "925",
            "date": "2019-06-01",
            "time": ["00:00", "03:00"],
        },
        CAMS_FORECAST: {
            "variable": ["particulate_matter_2.5um", "total_precipitation", "ozone"],
            "pressure_level": "925",
            "date": "2024-01-01",
            "time": "00:00",
            "leadtime_hour": ["0", "3", "6"],
            "type": "forecast",
        },
    }[dataset]
    decoded = {}
    for fmt in ("grib", "netcdf"):
        key = "format" if dataset == CAMS_EAC4 else "data_format"
        parsed = validate_request(dataset, {**base, "area": AREA, key: fmt}, today=TODAY)
        path = tmp_path / f"product.{fmt}"
        write_product(parsed, path, fake_atmosphere)
        decoded[fmt] = decode_product(path, parsed)
        assert_canonical_axes(decoded[fmt])
    grib, netcdf = decoded["grib"], decoded["netcdf"]
    assert set(grib.data_vars) == set(netcdf.data_vars)
    for name in grib.data_vars:
        assert grib[name].dims == netcdf[name].dims
        assert grib[name].attrs == netcdf[name].attrs
        assert_packed_close(grib[name].values, netcdf[name].values)
    xr.testing.assert_equal(grib.coords.to_dataset(), netcdf.coords.to_dataset())


# ---------------------------------------------------------------------------------------------
# (c) content against request


def era5_request(fmt: str, **changes: Any) -> ParsedRequest:
    request = {
        "product_type": "reanalysis",
        "variable": ["2m_temperature", "10m_u_component_of_wind"],
        "year": "2019",
        "month": "june",
        "day": "01",
        "time": ["00:00", "03:00"],
        "area": AREA,
        "data_format": fmt,
        **changes,
    }
    return validate_request(ERA5_SINGLE, request, today=TODAY)


def pressure_request(fmt: str, **changes: Any) -> ParsedRequest:
    request = {
        "product_type": "reanalysis",
        "variable": ["temperature"],
        "pressure_level": ["850_hpa", "925_hpa"],
        "year": "2019",
        "month": "june",
        "day": "01",
        "time": ["00:00"],
        "area": AREA,
        "data_format": fmt,
        **changes,
    }
    return validate_request(ERA5_PRESSURE, request, today=TODAY)


MISMATCHES = {
    # what the file holds, what was asked, what the error must name
    "time": (
        {"time": ["00:00"]},
        {},
        [r"t2m at 2019-06-01T03:00", r"times \['2019-06-01T03:00'\] are missing"],
    ),
    "variable": (
        {"variable": ["2m_temperature"]},
        {},
        [r"u10 at 2019-06-01T00:00", r"variables \['u10'\] are missing"],
    ),
    "area": (
        {"area": [20, -5, 5, 5]},
        {},
        [r"covers another area.*61×41 points", r"covers another area: 61×41 points"],
    ),
}


@pytest.mark.parametrize("fmt", ["grib", "netcdf"])
@pytest.mark.parametrize("what", list(MISMATCHES))
def test_a_product_that_misses_something_is_refused(
    tmp_path: Path, fake_atmosphere: AtmosphereLike, fmt: str, what: str
) -> None:
    holds, asked, messages = MISMATCHES[what]
    path = tmp_path / f"product.{fmt}"
    write_product(era5_request(fmt, **holds), path, fake_atmosphere)
    parsed = era5_request(fmt, **asked)
    message = messages[0] if fmt == "grib" else messages[1]
    with pytest.raises(ContentMismatchError, match=message):
        if fmt == "grib":
            check_grib_content(verify_grib(path), parsed)
        else:
            decode_product(path, parsed)
    if fmt == "grib":  # the pipeline's decode refuses it too, before laying anything out
        with pytest.raises(ContentMismatchError, match=message):
            decode_product(path, parsed)


@pytest.mark.parametrize("fmt", ["grib", "netcdf"])
def test_a_product_that_misses_a_level_is_refused(
    tmp_path: Path, fake_atmosphere: AtmosphereLike, fmt: str
) -> None:
    path = tmp_path / f"product.{fmt}"
    write_product(pressure_request(fmt, pressure_level=["850_hpa"]), path, fake_atmosphere)
    parsed = pressure_request(fmt)
    if fmt == "grib":
        with pytest.raises(ContentMismatchError, match=r"missing 1 field\(s\): t@925hPa at"):
            check_grib_content(verify_grib(path), parsed)
    with pytest.raises(ContentMismatchError, match=r"levels \[925\] hPa are missing|t@925hPa"):
        decode_product(path, parsed)


def test_content_error_names_the_file_and_the_fix(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    path = tmp_path / "short.grib"
    write_product(era5_request("grib", time=["00:00"]), path, fake_atmosphere)
    with pytest.raises(ContentMismatchError) as caught:
        decode_product(path, era5_request("grib"))
    message = str(caught.value)
    assert str(path) in message and "missing 2 field(s)" in message
    assert "delete it and fetch again" in message


def test_no_future_warnings_from_the_decoders(real_grib: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decode_grib(real_grib / "era5-levels-members.grib")
