"""AirCast: air-pollution forecasting from ERA5 weather and CAMS atmospheric composition."""

__version__ = "0.1.0"
