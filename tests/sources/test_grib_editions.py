"""Every GRIB dataset in both editions over a region that crosses 0°: verified, decoded, equal.

GRIB2 cannot store a negative longitude: a field from -2.25° to 2.25° is stored from 357.75°
to 2.25°. The content check must take it for the requested area (it used to call such a file
damaged), and the decode must give the same canonical dataset as the GRIB1 product.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import eccodes
import numpy as np
import pytest

from aircast.catalogue import ParsedRequest, product_grid, validate_request
from aircast.errors import ContentMismatchError
from aircast.sandbox.products import AtmosphereLike, check_grib_editions, write_product
from aircast.sources.decode import decode_product, verify_product
from aircast.sources.grib import check_grib_content, same_grid, verify_grib
from aircast.vocab import CAMS_EAC4, CAMS_FORECAST, ERA5_PRESSURE, ERA5_SINGLE

TODAY = dt.date(2024, 6, 1)
#: crosses 0°: GRIB2 stores its west edge at 357.75° (or the nearest native point east of it)
AREA = [1.5, -2.25, 0, 2.25]

REQUESTS: dict[str, dict[str, Any]] = {
    ERA5_SINGLE: {
        "product_type": ["reanalysis"],
        "variable": ["2m_temperature", "total_precipitation", "land_sea_mask"],
        "year": ["2020"],
        "month": ["january"],
        "day": ["01"],
        "time": ["00:00", "06:00", "07:00"],
    },
    ERA5_PRESSURE: {
        "product_type": ["reanalysis"],
        "variable": ["temperature", "geopotential"],
        "year": ["2020"],
        "month": ["january"],
        "day": ["01"],
        "time": ["00:00", "03:00"],
        "pressure_level": ["500_hpa", "850_hpa"],
    },
    CAMS_EAC4: {
        "variable": ["particulate_matter_2.5um", "ozone", "total_column_nitrogen_dioxide"],
        "date": ["2020-01-01"],
        "time": ["00:00", "03:00"],
        "pressure_level": ["925"],
    },
    CAMS_FORECAST: {
        "variable": ["particulate_matter_10um", "total_precipitation", "ozone"],
        "date": ["2020-01-01"],
        "time": ["00:00"],
        "leadtime_hour": ["0", "3", "6"],
        "type": ["forecast"],
        "pressure_level": ["925"],
    },
}


def request_of(dataset_id: str) -> ParsedRequest:
    body = REQUESTS[dataset_id] | {"area": AREA, "data_format": "grib"}
    return validate_request(dataset_id, body, today=TODAY)


def first_message_keys(path: Path, *keys: str) -> dict[str, Any]:
    with path.open("rb") as f:
        handle = eccodes.codes_grib_new_from_file(f)
        try:
            return {key: eccodes.codes_get(handle, key) for key in keys}
        finally:
            eccodes.codes_release(handle)


@pytest.mark.parametrize("dataset_id", sorted(REQUESTS))
def test_both_editions_verify_and_decode_alike(
    tmp_path: Path, fake_atmosphere: AtmosphereLike, dataset_id: str
) -> None:
    request = request_of(dataset_id)
    grid = product_grid(dataset_id, request.area)
    assert grid.longitudes[0] < 0 < grid.longitudes[-1]  # the region does cross 0°
    decoded = {}
    for edition in (1, 2):
        path = tmp_path / f"grib{edition}.grib"
        write_product(request, path, fake_atmosphere, {dataset_id: edition})
        summary = verify_grib(path)
        assert summary.editions == (edition,)
        west = first_message_keys(path, "longitudeOfFirstGridPointInDegrees")
        stored = float(west["longitudeOfFirstGridPointInDegrees"])
        # GRIB1 keeps the signed longitude; GRIB2 stores it in [0, 360)
        expected_west = grid.longitudes[0] + (360.0 if edition == 2 else 0.0)
        assert stored == pytest.approx(expected_west, abs=1e-3)
        verify_product(path, request)  # GRIB2 was called damaged here before
        decoded[edition] = decode_product(path, request)
    one, two = decoded[1], decoded[2]
    assert list(one.data_vars) == list(two.data_vars)
    np.testing.assert_allclose(two["longitude"].values, grid.longitudes, atol=1e-9)
    for name in one.data_vars:
        assert one[name].dims == two[name].dims
        a, b = one[name].values.astype(np.float64), two[name].values.astype(np.float64)
        # both 16-bit simple packing of the same field: equal within one packing step
        span = float(np.nanmax(a) - np.nanmin(a))
        np.testing.assert_allclose(b, a, rtol=0, atol=span / (2**16 - 1) * 1.01 + 1e-12)
        assert one[name].attrs == two[name].attrs


def test_grid_comparison_is_modulo_360() -> None:
    signed = (3, 19, 1500, -2250, 0, 2250)
    assert same_grid((3, 19, 1500, 357750, 0, 2250), signed)
    assert same_grid((3, 19, 1500, -2250, 0, 362250), signed)
    assert not same_grid((3, 19, 1500, 358000, 0, 2250), signed)  # a quarter degree off
    assert not same_grid((3, 19, 1500, 357750, 0, 2500), signed)
    assert not same_grid((3, 18, 1500, 357750, 0, 2250), signed)
    assert not same_grid((3, 19, 1750, 357750, 0, 2250), signed)


def test_grib2_of_another_area_is_still_refused(
    tmp_path: Path, fake_atmosphere: AtmosphereLike
) -> None:
    request = request_of(CAMS_EAC4)
    other = validate_request(
        CAMS_EAC4,
        REQUESTS[CAMS_EAC4] | {"area": [1.5, -1.5, 0, 2.25], "data_format": "grib"},
        today=TODAY,
    )
    path = tmp_path / "other.grib"
    write_product(other, path, fake_atmosphere, {CAMS_EAC4: 2})
    with pytest.raises(ContentMismatchError, match="covers another area"):
        check_grib_content(verify_grib(path), request)


def test_grib_editions_are_checked() -> None:
    assert check_grib_editions({CAMS_EAC4: 2}) == {CAMS_EAC4: 2}
    assert check_grib_editions(None) == {}
    with pytest.raises(ValueError, match=r"does not serve.*use one of"):
        check_grib_editions({"reanalysis-era5-land": 2})
    with pytest.raises(ValueError, match="edition 1 or 2"):
        check_grib_editions({CAMS_EAC4: 3})
