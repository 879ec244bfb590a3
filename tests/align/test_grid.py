"""Conservative regridding onto the target grid."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from aircast.align.grid import GridError, TargetGrid, check_horizontal, regrid_conservative


def _grid(north: float, south: float, west: float, east: float, res: float) -> TargetGrid:
    n_lat = round((north - south) / res) + 1
    n_lon = round((east - west) / res) + 1
    return TargetGrid(
        np.round(north - res * np.arange(n_lat), 6), np.round(west + res * np.arange(n_lon), 6), res
    )


def _source(grid: TargetGrid, step: float, values: np.ndarray | None = None) -> xr.Dataset:
    """A source whose cells (``step`` wide) tile exactly the target grid's cells."""
    north, west, south, east = grid.cell_bounds()
    lat = np.round(np.arange(north - step / 2, south, -step), 6)
    lon = np.round(np.arange(west + step / 2, east, step), 6)
    if values is None:
        values = np.random.default_rng(0).gamma(2.0, 1e-8, size=(2, lat.size, lon.size))
    return xr.Dataset(
        {"pm2p5": (("time", "latitude", "longitude"), values.astype(np.float32), {"units": "x"})},
        coords={
            "time": np.array(["2019-06-01T00", "2019-06-01T03"], dtype="datetime64[ns]"),
            "latitude": lat,
            "longitude": lon,
        },
    )


def _cell_areas(lat: np.ndarray, step: float) -> np.ndarray:
    half = np.deg2rad(step / 2)
    return np.sin(np.deg2rad(lat) + half) - np.sin(np.deg2rad(lat) - half)


def test_coarsening_keeps_the_area_weighted_mean() -> None:
    grid = _grid(39.0, 15.0, -6.0, 48.0, 1.5)
    source = _source(grid, 0.25)
    out = regrid_conservative(source, grid)
    assert out["pm2p5"].dtype == np.float32
    assert out["pm2p5"].dims == ("time", "latitude", "longitude")
    np.testing.assert_array_equal(out["latitude"].values, grid.latitudes)
    src = source["pm2p5"].values.astype(np.float64)
    src_w = _cell_areas(source["latitude"].values, 0.25)[None, :, None]
    src_mean = (src * src_w).sum(axis=(1, 2)) / (src_w.sum() * src.shape[2])
    tgt_w = grid.area_weights()[None, :, None]
    tgt = out["pm2p5"].values.astype(np.float64)
    tgt_mean = (tgt * tgt_w).sum(axis=(1, 2)) / (tgt_w.sum() * tgt.shape[2])
    np.testing.assert_allclose(tgt_mean, src_mean, rtol=2e-7)  # float32 rounding
    # each target cell is the area-weighted mean of the 6 × 6 source cells inside it
    block = src[:, :6, :6]
    w = src_w[:, :6, :]
    np.testing.assert_allclose(
        tgt[:, 0, 0], (block * w).sum(axis=(1, 2)) / (w.sum() * 6), rtol=1e-6
    )
    assert out["pm2p5"].attrs == {"units": "x"}


def test_area_weights_follow_the_cells_latitude_bounds() -> None:
    grid = _grid(60.0, 0.0, 0.0, 3.0, 1.5)
    weights = grid.area_weights()
    assert weights.mean() == pytest.approx(1.0)
    expected = _cell_areas(grid.latitudes, 1.5)
    np.testing.assert_allclose(weights, expected / expected.mean(), rtol=1e-12)
    assert weights[0] < weights[-1]  # cells shrink towards the pole


def test_a_region_crossing_zero_longitude() -> None:
    grid = _grid(3.0, -3.0, -6.0, 6.0, 1.5)
    assert grid.longitudes.min() < 0 < grid.longitudes.max()
    north, west, south, east = grid.cell_bounds()
    lon = np.round(np.arange(west + 0.125, east, 0.25), 6)
    lat = np.round(np.arange(north - 0.125, south, -0.25), 6)
    field = np.broadcast_to(lon, (1, lat.size, lon.size)).copy()  # f = longitude
    source = xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), field.astype(np.float32))},
        coords={"time": [np.datetime64("2019-06-01", "ns")], "latitude": lat, "longitude": lon},
    )
    out = regrid_conservative(source, grid)
    # the mean of a linear function over a cell is its value at the centre, on both sides of 0°
    expected = np.broadcast_to(grid.longitudes, grid.shape)
    np.testing.assert_allclose(out["t2m"].values[0], expected, atol=2e-6)


def test_a_source_on_the_target_points_is_selected_exactly() -> None:
    grid = _grid(39.0, 15.0, -6.0, 48.0, 0.75)
    lat = np.round(np.arange(40.5, 13.4, -0.75), 6)
    lon = np.round(np.arange(-7.5, 49.6, 0.75), 6)
    values = np.random.default_rng(1).random((1, lat.size, lon.size)).astype(np.float32)
    source = xr.Dataset(
        {"go3": (("time", "latitude", "longitude"), values)},
        coords={"time": [np.datetime64("2019-06-01", "ns")], "latitude": lat, "longitude": lon},
    )
    out = regrid_conservative(source, grid)
    expected = source["go3"].sel(latitude=grid.latitudes, longitude=grid.longitudes).values
    np.testing.assert_array_equal(out["go3"].values, expected)


def test_sources_that_do_not_fit_are_refused() -> None:
    grid = _grid(39.0, 15.0, -6.0, 48.0, 1.5)
    source = _source(grid, 0.25)
    with pytest.raises(GridError, match="ingested for another region or grid"):
        regrid_conservative(source.isel(latitude=slice(3, None)), grid)
    with pytest.raises(GridError, match="north to south"):
        regrid_conservative(source.sortby("latitude"), grid)
    shifted = source.assign_coords(longitude=(source["longitude"] % 360)).sortby("longitude")
    with pytest.raises(GridError, match=r"must lie in \[-180, 180\)"):
        check_horizontal(shifted, "source")
    with pytest.raises(GridError, match="last two must be"):
        check_horizontal(source.transpose("latitude", "longitude", "time"), "source")
