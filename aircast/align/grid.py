"""The target grid, and conservative regridding onto it.

Every source reaches the target grid through :func:`regrid_conservative` (xarray-regrid's
conservative method): each target cell is the area-weighted mean of the source cells it
overlaps, so coarsening keeps area means. A source on the very same points as the target
(EAC4 at 0.75° onto a 0.75° grid) is selected, not interpolated, so its values stay exact.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

from aircast.config import AirCastConfig
from aircast.errors import AirCastError

_DECIMALS = 6


class GridError(AirCastError, ValueError):
    """Source data that do not fit the target grid (wrong area, dimensions or orientation)."""


@dataclass(frozen=True)
class TargetGrid:
    """A regular latitude/longitude grid.

    Attributes
    ----------
    latitudes
        Cell centres, degrees north, north → south, shape (n_lat,).
    longitudes
        Cell centres, degrees east in [-180, 180), increasing, shape (n_lon,).
    resolution
        Spacing in degrees.
    """

    latitudes: np.ndarray
    longitudes: np.ndarray
    resolution: float

    @classmethod
    def from_config(cls, config: AirCastConfig) -> TargetGrid:
        r, res = config.region, config.grid.resolution
        n_lat, n_lon = config.lat_lon_shape
        lat = np.round(r.north - res * np.arange(n_lat), _DECIMALS)
        lon = np.round(r.west + res * np.arange(n_lon), _DECIMALS)
        return cls(lat, lon, res)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.latitudes.size, self.longitudes.size)

    def coords(self) -> xr.Dataset:
        """An empty dataset carrying the grid's coordinates (the regridder's target)."""
        return xr.Dataset(
            coords={
                "latitude": (
                    "latitude",
                    self.latitudes,
                    {"units": "degrees_north", "standard_name": "latitude"},
                ),
                "longitude": (
                    "longitude",
                    self.longitudes,
                    {"units": "degrees_east", "standard_name": "longitude"},
                ),
            }
        )

    def cell_bounds(self) -> tuple[float, float, float, float]:
        """(north, west, south, east) edges of the outermost cells."""
        half = self.resolution / 2
        return (
            float(self.latitudes[0] + half),
            float(self.longitudes[0] - half),
            float(self.latitudes[-1] - half),
            float(self.longitudes[-1] + half),
        )

    def area_weights(self) -> np.ndarray:
        """Cell areas relative to their mean, from the cells' latitude bounds, shape (n_lat,)."""
        return cell_area_weights(self.latitudes, self.resolution)

    def regrid(self, ds: xr.Dataset) -> xr.Dataset:
        """``ds`` regridded onto this grid (:func:`regrid_conservative`): what a source
        (:class:`aircast.sources.base.Grid`) calls without importing this package."""
        return regrid_conservative(ds, self)


def cell_area_weights(latitudes: np.ndarray, resolution: float) -> np.ndarray:
    """Areas of cells centred on ``latitudes`` (degrees) and ``resolution`` degrees tall,
    from their latitude bounds (clipped at the poles), relative to their mean; shape (n_lat,)."""
    half = np.deg2rad(resolution / 2)
    lat = np.deg2rad(np.asarray(latitudes, dtype="float64"))
    north = np.clip(lat + half, -np.pi / 2, np.pi / 2)
    south = np.clip(lat - half, -np.pi / 2, np.pi / 2)
    weights = np.sin(north) - np.sin(south)
    relative: np.ndarray = weights / weights.mean()
    return relative


def check_horizontal(ds: xr.Dataset, where: str) -> None:
    """The boundary check every dataset passes on its way into alignment.

    Raises
    ------
    GridError
        Unless it has 1-D ``latitude`` strictly decreasing and ``longitude`` strictly
        increasing within [-180, 180), as the last two dimensions of every variable.
    """
    for name in ("latitude", "longitude"):
        if name not in ds.coords or ds[name].ndim != 1:
            raise GridError(
                f"{where}: no 1-D {name!r} coordinate; decode it with aircast.sources.decode first"
            )
    lat, lon = ds["latitude"].values, ds["longitude"].values
    if lat.size > 1 and not np.all(np.diff(lat) < 0):
        raise GridError(f"{where}: latitude must run north to south (strictly decreasing)")
    if lon.size > 1 and not np.all(np.diff(lon) > 0):
        raise GridError(f"{where}: longitude must be strictly increasing")
    if lon.min() < -180 or lon.max() >= 180:
        raise GridError(
            f"{where}: longitude must lie in [-180, 180), found {lon.min():g}..{lon.max():g}"
        )
    for var_name, da in ds.data_vars.items():
        if da.dims[-2:] != ("latitude", "longitude"):
            raise GridError(
                f"{where}: variable {var_name!r} has dims {da.dims}; the last two "
                "must be (latitude, longitude)"
            )


def _covers(ds: xr.Dataset, grid: TargetGrid) -> None:
    lat, lon = ds["latitude"].values, ds["longitude"].values
    dlat = abs(float(lat[0] - lat[1])) if lat.size > 1 else 0.0
    dlon = abs(float(lon[1] - lon[0])) if lon.size > 1 else 0.0
    north, west, south, east = grid.cell_bounds()
    have = (
        float(lat[0] + dlat / 2),
        float(lon[0] - dlon / 2),
        float(lat[-1] - dlat / 2),
        float(lon[-1] + dlon / 2),
    )
    eps = 1e-6
    if (
        have[0] < north - eps
        or have[2] > south + eps
        or have[1] > west + eps
        or have[3] < east - eps
    ):
        raise GridError(
            f"the source covers {have[2]:g}..{have[0]:g}°N, {have[1]:g}..{have[3]:g}°E but the "
            f"target grid's cells span {south:g}..{north:g}°N, {west:g}..{east:g}°E; the data "
            "were ingested for another region or grid: ingest again with this config"
        )


_BLAS_PINNED = threading.Lock()
_blas_pinned = False


def _one_blas_thread() -> None:
    """Run BLAS on one thread in this process from now on (idempotent, thread-safe).

    A matrix product split over threads rounds differently, and the store contract is the
    same bytes whether a part loads here, on threads beside other parts, or in a Dask worker
    (whose BLAS is single-threaded): the build's parallelism is across parts. The limit is set
    for the process, not around each call, because ``threadpool_limits`` as a context is
    global state that two threads regridding at once would restore under each other's feet.
    """
    global _blas_pinned
    with _BLAS_PINNED:
        if not _blas_pinned:
            threadpool_limits(limits=1, user_api="blas")
            _blas_pinned = True


def regrid_conservative(ds: xr.Dataset, grid: TargetGrid) -> xr.Dataset:
    """Regrid every variable of ``ds`` onto ``grid``, conserving area means.

    Parameters
    ----------
    ds
        Canonical dataset (latitude north → south, longitude increasing in [-180, 180)),
        variables with dims (..., latitude, longitude), covering the grid's cells.
    grid
        The target grid.

    Returns
    -------
    xarray.Dataset
        float32 variables with dims (..., latitude, longitude) on the grid's points.

    Raises
    ------
    GridError
        When ``ds`` is not canonical or does not cover the target cells.
    """
    check_horizontal(ds, "regrid input")
    _covers(ds, grid)
    lat, lon = (
        np.round(ds["latitude"].values, _DECIMALS),
        np.round(ds["longitude"].values, _DECIMALS),
    )
    step = abs(float(lat[0] - lat[1])) if lat.size > 1 else None
    same_points = (
        step is not None
        and np.isclose(step, grid.resolution)
        and np.isin(grid.latitudes, lat).all()
        and np.isin(grid.longitudes, lon).all()
    )
    if same_points:
        out = ds.assign_coords(latitude=lat, longitude=lon).sel(
            latitude=grid.latitudes, longitude=grid.longitudes
        )
    else:
        # registers the .regrid accessor; imported here, not with the module, because the
        # batch, the model and the store reader use TargetGrid and never regrid (it costs
        # them a second and more of import time)
        import xarray_regrid  # noqa: F401

        _one_blas_thread()
        out = ds.regrid.conservative(
            grid.coords(), latitude_coord="latitude", skipna=False
        ).compute()
        out = out.assign_coords(latitude=grid.latitudes, longitude=grid.longitudes)
    out = out.transpose(..., "latitude", "longitude")
    for name in out.data_vars:
        out[name] = out[name].astype("float32")
        out[name].attrs = ds[name].attrs
    return out
