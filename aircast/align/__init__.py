"""Alignment: pure ``xr.Dataset -> xr.Dataset`` functions that put every source on the target
grid (``grid``), the three-hourly time axis (``time``) and the project's units (``units``)."""
