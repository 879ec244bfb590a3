"""AirCast: air-pollution forecasting from ERA5 weather and CAMS atmospheric composition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aircast.forecast.reader import open_forecast

__version__ = "0.1.0"
__all__ = ["__version__", "open_forecast"]


def __getattr__(name: str) -> Any:
    # imported on first use: `import aircast` stays light (no zarr, xarray or numpy)
    if name == "open_forecast":
        from aircast.forecast.reader import open_forecast

        return open_forecast
    raise AttributeError(f"module 'aircast' has no attribute {name!r}")
