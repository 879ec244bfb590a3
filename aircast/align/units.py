"""Units: the store keeps the data stores' units; published products use people's units.

Particulate matter stays in kg m-3 in the training store (as CAMS delivers it) and becomes
µg m-3 only when a forecast is published, where air-quality users expect it.
"""

from __future__ import annotations

from collections.abc import Mapping

import xarray as xr

from aircast.vocab import VARIABLES

#: store units → (published units, factor): published = stored × factor
PUBLISH_UNITS: Mapping[str, tuple[str, float]] = {
    "kg m-3": ("ug m-3", 1e9),
}


def published_units(name: str) -> tuple[str, float]:
    """The units a variable is published in, and the factor from its stored units."""
    stored = VARIABLES[name].units
    return PUBLISH_UNITS.get(stored, (stored, 1.0))


def to_published(da: xr.DataArray, name: str) -> xr.DataArray:
    """Convert a stored variable to its published units (attributes follow)."""
    units, factor = published_units(name)
    out = da * factor if factor != 1.0 else da.copy()
    out.attrs = {**da.attrs, "units": units}
    return out.astype(da.dtype)
