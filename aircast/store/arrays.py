"""The zarr side of the training store: codecs, array creation and the root attributes.

Every array of the store is made by :func:`create_array`, with deterministic codecs, so that
equal values give equal bytes and two builds of the same recipe are byte-identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle, ZstdCodec

from aircast.align.time import STEP_HOURS
from aircast.store.layout import Layout
from aircast.store.schema import SCHEMA_VERSION, STORE_KIND, iso_hour
from aircast.store.stats import HIST_BINS

#: ``fields`` chunks: Blosc-zstd with byte shuffle (float32 fields compress ~2× better
#: shuffled); deterministic, so equal values give equal bytes.
FIELDS_CODEC = BloscCodec(cname="zstd", clevel=5, shuffle=BloscShuffle.shuffle, typesize=4)
#: Every other array: coordinates, metadata, statistics.
SMALL_CODEC = ZstdCodec(level=3)


def time_axis_attrs(times: np.ndarray) -> dict[str, Any]:
    """The ``time_axis`` attribute of a store whose axis is ``times`` (datetime64, (n,))."""
    return {
        "start": iso_hour(times[0]),
        "end": iso_hour(times[-1]),
        "step_hours": STEP_HOURS,
        "n_times": int(times.size),
    }


def root_attrs(layout: Layout, times: np.ndarray, state: str) -> dict[str, Any]:
    """The store group's attributes: identity, recipe, grid, time axis, parts, statistics."""
    grid = layout.grid
    north, west, south, east = grid.cell_bounds()
    train = layout.config.periods.train
    attrs: dict[str, Any] = {
        "aircast_store": STORE_KIND,
        "schema_version": SCHEMA_VERSION,
        "title": "AirCast training store",
        "conventions": "CF-1.10 (coordinates and time encoding)",
        "recipe": dict(layout.recipe),
        "recipe_fingerprint": layout.fingerprint,
        "grid": {
            "resolution": grid.resolution,
            "n_lat": grid.shape[0],
            "n_lon": grid.shape[1],
            "first_latitude": float(grid.latitudes[0]),
            "last_latitude": float(grid.latitudes[-1]),
            "first_longitude": float(grid.longitudes[0]),
            "last_longitude": float(grid.longitudes[-1]),
            "cell_bounds": {"north": north, "west": west, "south": south, "east": east},
            "regridding": "conservative (xarray-regrid), area-weighted",
        },
        "time_axis": time_axis_attrs(times),
        "recipe_days": {"first": layout.first_day.isoformat(), "last": layout.last_day.isoformat()},
        "part_days": layout.part_days,
        "n_parts": layout.n_parts,
        "statistics": {
            "period": {"start": train.start.isoformat(), "end": train.end.isoformat()},
            "over": "every grid cell of every non-missing time of the training period, unweighted",
            "std": "population standard deviation (ddof 0)",
            "log_transform": "log(max(x, 0) + channel_log_offset) for positive channels",
            "merge": "per part float64 count/mean/M2, merged in part order (Chan et al.)",
            "histogram": f"{HIST_BINS} uniform log-space bins between fixed edges, plus "
            "underflow (bin 0) and overflow (last bin)",
        },
        "state": state,
    }
    return attrs


def create_array(
    group: zarr.Group,
    name: str,
    data: np.ndarray | None,
    dims: tuple[str, ...],
    *,
    shape: tuple[int, ...] | None = None,
    dtype: Any = None,
    chunks: tuple[int, ...] | None = None,
    fill_value: Any = None,
    attrs: Mapping[str, Any] | None = None,
    codec: Any = SMALL_CODEC,
) -> zarr.Array:
    """Create (or replace) array ``name`` of ``group``, and write ``data`` into it if given.

    Parameters
    ----------
    data
        The values, or None for an array left at ``fill_value`` (written later).
    dims
        Dimension names, one per axis.
    shape, dtype
        Default: those of ``data``; ``dtype=str`` makes a string array (stored uncompressed).
    chunks
        Default: one chunk.
    codec
        Compressor of the chunks (default :data:`SMALL_CODEC`).
    """
    shape = shape if shape is not None else (data.shape if data is not None else ())
    dtype = dtype if dtype is not None else (data.dtype if data is not None else None)
    is_str = dtype is str
    array = group.create_array(
        name,
        shape=shape,
        dtype=dtype,
        chunks=chunks if chunks is not None else tuple(max(1, s) for s in shape),
        fill_value=fill_value,
        dimension_names=dims,
        attributes=dict(attrs or {}),
        compressors=None if is_str else codec,
        overwrite=True,
    )
    if data is not None and data.size:
        array[...] = data
    return array
