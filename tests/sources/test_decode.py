"""Decoding settings and integrity checks, on sandbox products and real ECMWF files."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import cfgrib
import numpy as np
import pytest
import xarray as xr

from aircast.catalogue import validate_request
from aircast.errors import AirCastError, CorruptFileError
from aircast.sandbox.products import AtmosphereLike, write_product
from aircast.sources.grib import (
    GRIB_BACKEND_KWARGS,
    GRIB_OPEN_KWARGS,
    GRIB_PADDING,
    open_grib,
    verify_grib,
)
from aircast.sources.netcdf import verify_netcdf
from aircast.vocab import CAMS_EAC4, ERA5_SINGLE

TODAY = dt.date(2024, 6, 1)


@pytest.fixture(scope="module")
def era5_grib(tmp_path_factory: pytest.TempPathFactory, fake_atmosphere: AtmosphereLike) -> Path:
    """ERA5 t2m, u10 and tp at three hours: 9 messages, two hypercubes."""
    request = validate_request(
        ERA5_SINGLE,
        {
            "product_type": "reanalysis",
            "variable": ["2m_temperature", "10m_u_component_of_wind", "total_precipitation"],
            "year": "2020",
            "month": "january",
            "day": "01",
            "time": ["00:00", "06:00", "07:00"],
            "area": [45, -20, 0, 76],
            "data_format": "grib",
        },
        today=TODAY,
    )
    path = tmp_path_factory.mktemp("grib") / "era5.grib"
    write_product(request, path, fake_atmosphere)
    return path


@pytest.fixture(scope="module")
def eac4_netcdf(tmp_path_factory: pytest.TempPathFactory, fake_atmosphere: AtmosphereLike) -> Path:
    request = validate_request(
        CAMS_EAC4,
        {
            "variable": ["particulate_matter_2.5um", "2m_temperature"],
            "date": "2020-01-01",
            "time": ["00:00", "03:00", "06:00"],
            "area": [45, -20, 0, 76],
            "data_format": "netcdf",
        },
        today=TODAY,
    )
    path = tmp_path_factory.mktemp("nc") / "eac4.nc"
    write_product(request, path, fake_atmosphere)
    return path


def damaged(tmp_path: Path, data: bytes, name: str = "damaged.grib") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def message_spans(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of each GRIB message, from the 'GRIB' markers and section 0."""
    data = path.read_bytes()
    spans, start = [], data.find(b"GRIB")
    while start >= 0:
        length = int.from_bytes(data[start + 4 : start + 7], "big")
        spans.append((start, length))
        start = data.find(b"GRIB", start + length)
    return spans


# ---------------------------------------------------------------------------------------------
# settings


def test_open_kwargs_open_one_hypercube(tmp_path: Path, fake_atmosphere: AtmosphereLike) -> None:
    request = validate_request(
        ERA5_SINGLE,
        {
            "product_type": "reanalysis",
            "variable": "2m_temperature",
            "year": "2020",
            "month": "january",
            "day": "01",
            "time": "12:00",
            "area": [10, 0, 0, 10],
        },
        today=TODAY,
    )
    path = tmp_path / "t2m.grib"
    write_product(request, path, fake_atmosphere)
    ds = xr.open_dataset(path, **GRIB_OPEN_KWARGS)
    assert list(ds.data_vars) == ["t2m"]
    assert ds.step.dtype.kind == "m"  # decode_timedelta
    assert not list(tmp_path.glob("*.idx"))  # indexpath='': nothing written beside inputs


def test_open_grib_gives_one_dataset_per_hypercube(era5_grib: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # cfgrib's merge notice is silenced
        datasets = open_grib(era5_grib)
    assert len(datasets) == 2
    instant, accum = sorted(datasets, key=lambda d: "tp" in d)
    assert set(instant.data_vars) == {"t2m", "u10"}
    assert set(accum.data_vars) == {"tp"}
    assert accum.tp.dims == ("time", "step", "latitude", "longitude")
    assert accum.valid_time.dims == ("time", "step")


def test_verify_grib_summarises_every_message(era5_grib: Path) -> None:
    summary = verify_grib(era5_grib)
    assert summary.n_messages == 9
    assert summary.editions == (1,)
    assert summary.short_names == ("10u", "2t", "tp")
    assert summary.param_ids == (165, 167, 228)
    assert summary.type_of_levels == ("surface",)
    assert summary.pressure_levels == ()
    np.testing.assert_array_equal(
        summary.valid_times,
        np.array(["2020-01-01T00", "2020-01-01T06", "2020-01-01T07"], dtype="datetime64[ns]"),
    )
    assert summary.size == era5_grib.stat().st_size


# ---------------------------------------------------------------------------------------------
# real ECMWF files


def test_real_era5_pressure_levels_with_members(real_grib: Path) -> None:
    path = real_grib / "era5-levels-members.grib"
    summary = verify_grib(path)
    assert summary.n_messages == 160
    assert summary.param_ids == (129, 130) and summary.short_names == ("t", "z")
    assert summary.pressure_levels == (500, 850)
    assert summary.valid_times.size == 4
    (ds,) = open_grib(path)
    assert set(ds.data_vars) == {"z", "t"}
    assert ds.z.attrs["GRIB_paramId"] == 129 and ds.t.attrs["GRIB_paramId"] == 130
    assert ds.sizes["number"] == 10
    assert sorted(ds.isobaricInhPa.values.tolist()) == [500.0, 850.0]
    assert ds.latitude.values[0] == 90.0 and ds.latitude.values[-1] == -90.0
    assert np.all(np.diff(ds.latitude.values) < 0)
    assert ds.sizes["latitude"] == 61 and ds.sizes["longitude"] == 120


def test_real_era5_single_level_regional_crop(real_grib: Path) -> None:
    path = real_grib / "era5-single-level-scalar-time.grib"
    assert verify_grib(path).param_ids == (167,)
    (ds,) = open_grib(path)
    assert list(ds.data_vars) == ["t2m"] and ds.t2m.attrs["GRIB_paramId"] == 167
    assert ds.t2m.shape == (121, 201)
    assert (ds.latitude.values[0], ds.latitude.values[-1]) == (60.0, 30.0)
    assert (ds.longitude.values[0], ds.longitude.values[-1]) == (-10.0, 40.0)


def test_real_cams_egg4_monthly(real_grib: Path) -> None:
    path = real_grib / "cams-egg4-monthly.grib"
    summary = verify_grib(path)  # messages padded to 120 bytes by MARS: accepted
    assert summary.n_messages == 4 and summary.param_ids == (167, 228082)
    fields = {name: ds[name] for ds in open_grib(path) for name in ds.data_vars}
    assert set(fields) == {"t2m", "aco2rec"}
    assert fields["aco2rec"].attrs["GRIB_paramId"] == 228082
    for da in fields.values():
        assert da.latitude.values[0] == 9.5 and np.all(np.diff(da.latitude.values) < 0)
        assert da.sizes["latitude"] == 27 and da.sizes["longitude"] == 27


def test_real_regular_global_field(real_grib: Path) -> None:
    path = real_grib / "regular_ll_sfc.grib"
    summary = verify_grib(path)
    assert (summary.n_messages, summary.short_names, summary.param_ids) == (1, ("skt",), (235,))
    (ds,) = open_grib(path)
    assert ds.skt.shape == (37, 72)
    assert (ds.latitude.values[0], ds.latitude.values[-1]) == (90.0, -90.0)


def test_real_corrupted_download_is_rejected_whole(real_grib: Path) -> None:
    path = real_grib / "era5-levels-corrupted.grib"
    with pytest.raises(CorruptFileError) as caught:
        verify_grib(path)
    error = caught.value
    assert isinstance(error, AirCastError)
    assert error.message_number == 1 and error.path == str(path)
    message = str(error)
    assert path.name in message and "message 1" in message
    assert "Wrong message length" in message and "delete it and fetch again" in message
    with pytest.raises(CorruptFileError):
        open_grib(path)  # verifies first: never half-loaded


def test_cfgrib_alone_would_half_load_the_corrupted_file(real_grib: Path) -> None:
    """Why verify_grib exists: cfgrib's default skips the damaged message and loads the rest."""
    path = str(real_grib / "era5-levels-corrupted.grib")
    loaded = cfgrib.open_datasets(path, backend_kwargs={"indexpath": "", "errors": "ignore"})
    assert loaded and all("z" not in ds for ds in loaded)  # z lost, t kept: a half load
    with pytest.raises(Exception, match="Wrong message length"):
        cfgrib.open_datasets(path, backend_kwargs=dict(GRIB_BACKEND_KWARGS))


# ---------------------------------------------------------------------------------------------
# damaged sandbox products


def test_truncated_last_message(tmp_path: Path, era5_grib: Path) -> None:
    data = era5_grib.read_bytes()
    offset, _ = message_spans(era5_grib)[-1]
    for cut in (offset + 100, len(data) - 1):
        with pytest.raises(CorruptFileError, match="message 9") as caught:
            verify_grib(damaged(tmp_path, data[:cut]))
        assert caught.value.message_number == 9


def test_truncated_inside_first_message(tmp_path: Path, era5_grib: Path) -> None:
    with pytest.raises(CorruptFileError, match="message 1"):
        verify_grib(damaged(tmp_path, era5_grib.read_bytes()[:5000]))


def test_message_cut_out_of_the_middle(tmp_path: Path, era5_grib: Path) -> None:
    data = era5_grib.read_bytes()
    (_, _), (second, length), _ = message_spans(era5_grib)[:3]
    with pytest.raises(CorruptFileError, match="message 2"):
        verify_grib(damaged(tmp_path, data[: second + length // 2] + data[second + length :]))


def test_trailing_garbage(tmp_path: Path, era5_grib: Path) -> None:
    data = era5_grib.read_bytes()
    with pytest.raises(CorruptFileError, match="after the last complete message"):
        verify_grib(damaged(tmp_path, data + b"<html>502 Bad Gateway</html>"))


def test_junk_between_messages(tmp_path: Path, era5_grib: Path) -> None:
    data = era5_grib.read_bytes()
    second, _ = message_spans(era5_grib)[1]
    with pytest.raises(CorruptFileError, match="before message 2"):
        verify_grib(damaged(tmp_path, data[:second] + b"junk" + data[second:]))


@pytest.mark.parametrize("data", [b"", b"<html><body>Service unavailable</body></html>"])
def test_file_without_messages(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(CorruptFileError, match="no GRIB message"):
        verify_grib(damaged(tmp_path, data))


def test_zero_padding_like_mars_is_accepted(tmp_path: Path, era5_grib: Path) -> None:
    data = era5_grib.read_bytes()
    padded = b"".join(
        chunk + bytes(-len(chunk) % GRIB_PADDING)
        for chunk in (data[o : o + n] for o, n in message_spans(era5_grib))
    )
    assert verify_grib(damaged(tmp_path, padded)).n_messages == 9


# ---------------------------------------------------------------------------------------------
# NetCDF


def test_verify_netcdf_reads_every_variable(eac4_netcdf: Path) -> None:
    summary = verify_netcdf(eac4_netcdf)
    assert summary.variables == (
        "number",
        "valid_time",
        "latitude",
        "longitude",
        "expver",
        "pm2p5",
        "t2m",
    )
    assert dict(summary.dimensions) == {"valid_time": 3, "latitude": 61, "longitude": 128}


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.5, 0.95])
def test_truncated_netcdf(tmp_path: Path, eac4_netcdf: Path, fraction: float) -> None:
    data = eac4_netcdf.read_bytes()
    path = damaged(tmp_path, data[: int(len(data) * fraction)], "cut.nc")
    with pytest.raises(CorruptFileError, match="delete it and fetch again") as caught:
        verify_netcdf(path)
    assert "cut.nc" in str(caught.value)


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_damaged_netcdf_chunk(tmp_path: Path, eac4_netcdf: Path, fraction: float) -> None:
    data = bytearray(eac4_netcdf.read_bytes())
    start = int(len(data) * fraction)
    data[start : start + 64] = bytes(64)
    with pytest.raises(CorruptFileError, match="delete it and fetch again"):
        verify_netcdf(damaged(tmp_path, bytes(data), "zeroed.nc"))


def test_netcdf_that_is_html_or_zip(tmp_path: Path) -> None:
    with pytest.raises(CorruptFileError, match="cannot open"):
        verify_netcdf(damaged(tmp_path, b"<html>error</html>", "page.nc"))
    with pytest.raises(CorruptFileError, match="zip archive"):
        verify_netcdf(damaged(tmp_path, b"PK\x03\x04rest", "archive.nc"))
