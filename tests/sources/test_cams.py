"""The CAMS global forecast as channels on the store's grid, on small synthetic products."""

from __future__ import annotations

import numpy as np
import xarray as xr

from aircast.align.grid import TargetGrid
from aircast.sources.base import on_grid
from aircast.sources.cams import cams_channels, forecast_channels


def test_cams_channels_are_the_pollutants_cams_forecasts() -> None:
    assert cams_channels(["t2m", "pm2p5", "go3_925", "lsm", "pm10"]) == (
        "pm2p5",
        "go3_925",
        "pm10",
    )


def test_cams_fields_are_regridded_and_take_the_channel_level() -> None:
    # a 0.5° product over two 1.5° target cells wide: conservative means of 3x3 blocks
    grid = TargetGrid(np.array([30.0, 28.5]), np.array([10.0, 11.5]), 1.5)
    lat = np.round(np.arange(30.5, 27.5, -0.5), 6)  # cells cover 30.75..27.75
    lon = np.round(np.arange(9.5, 12.5, 0.5), 6)
    init = np.array(["2019-06-04"], dtype="datetime64[ns]")
    leads = np.array([0, 3, 6], dtype="timedelta64[h]").astype("timedelta64[ns]")
    shape = (1, 3, lat.size, lon.size)
    pm = np.broadcast_to(np.arange(3.0)[None, :, None, None], shape) * 1e-9
    go3 = np.stack([np.full(shape, 1.0), np.full(shape, 2.0)], axis=2)  # levels 850, 925
    decoded = xr.Dataset(
        {
            "pm2p5": (("init_time", "lead_time", "latitude", "longitude"), pm),
            "go3": (("init_time", "lead_time", "level", "latitude", "longitude"), go3),
        },
        coords={
            "init_time": init,
            "lead_time": leads,
            "level": [850, 925],
            "latitude": lat,
            "longitude": lon,
        },
    )
    regridded = on_grid(decoded, grid, {"pm2p5", "go3", "no2"})
    variables = {str(name): regridded[name] for name in regridded.data_vars}
    out = forecast_channels(variables, init[0], grid, ["pm2p5", "go3_925", "no2_925"], [3, 6, 9])
    assert out.shape == (3, 3, 2, 2)  # (lead, channel, latitude, longitude)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:2, 0], [[[1e-9] * 2] * 2, [[2e-9] * 2] * 2])
    np.testing.assert_allclose(out[:2, 1], 2.0)
    # a lead the product lacks, and a channel it does not hold, come out NaN
    assert np.isnan(out[2]).all()
    assert np.isnan(out[:, 2]).all()
