"""The coordinate arrays of AirCast's Zarr stores, with their CF attributes, written in one place.

Both stores write their coordinates through :func:`write_coordinates`: the training store
(``time``, ``channel``, ``latitude``, ``longitude``; :mod:`aircast.store.build`) and the
published forecast store (``init_time``, ``lead_time``, ``valid_time``, ``provenance``,
``latitude``, ``longitude``; :mod:`aircast.forecast.schema`). What CF says about an axis is
said here once: latitude in ``degrees_north`` and longitude in ``degrees_east`` with their
standard names, times as int64 ``hours since 1970-01-01 00:00:00`` in the proleptic Gregorian
calendar. What a store adds (``axis``, a ``long_name``, its fill values, codecs and chunks) is
part of that store's bytes, which never change between versions of AirCast, so each store
passes its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.core.array_spec import ArrayConfigParams

LATITUDE = "latitude"
LONGITUDE = "longitude"
TIME_UNITS = "hours since 1970-01-01 00:00:00"
CALENDAR = "proleptic_gregorian"


@dataclass(frozen=True)
class Coordinate:
    """One coordinate array of a store.

    Attributes
    ----------
    name
        Array name (also the dimension name of a 1-D index coordinate).
    dims
        Dimension names, e.g. ``("init_time", "lead_time")`` for a 2-D valid time.
    attrs
        The array's attributes, in the order they are written.
    values
        What the array holds, shape ``shape``; None for an axis created empty and grown
        later (the forecast store's ``init_time``).
    shape, dtype
        Default to those of ``values``.
    chunks
        Default: one chunk holding the whole array (at least 1 along an empty axis).
    fill_value
        Zarr fill value; None for Zarr's default of the dtype.
    """

    name: str
    dims: tuple[str, ...]
    attrs: Mapping[str, Any]
    values: np.ndarray | None = None
    shape: tuple[int, ...] | None = None
    dtype: Any = None
    chunks: tuple[int, ...] | None = None
    fill_value: Any = None


def time_attrs(standard_name: str, long_name: str) -> dict[str, str]:
    """CF attributes of a time coordinate stored as int64 hours since 1970-01-01 (UTC)."""
    return {
        "units": TIME_UNITS,
        "calendar": CALENDAR,
        "standard_name": standard_name,
        "long_name": long_name,
    }


def latitude(values: np.ndarray, *, fill_value: Any = None, **attrs: Any) -> Coordinate:
    """The latitude coordinate: float64 degrees north, shape (n_lat,); ``attrs`` follow the
    CF ``units`` and ``standard_name``."""
    return Coordinate(
        LATITUDE,
        (LATITUDE,),
        {"units": "degrees_north", "standard_name": "latitude", **attrs},
        np.asarray(values, np.float64),
        fill_value=fill_value,
    )


def longitude(values: np.ndarray, *, fill_value: Any = None, **attrs: Any) -> Coordinate:
    """The longitude coordinate: float64 degrees east, shape (n_lon,); ``attrs`` follow the
    CF ``units`` and ``standard_name``."""
    return Coordinate(
        LONGITUDE,
        (LONGITUDE,),
        {"units": "degrees_east", "standard_name": "longitude", **attrs},
        np.asarray(values, np.float64),
        fill_value=fill_value,
    )


def write_coordinates(
    group: zarr.Group,
    coordinates: Sequence[Coordinate],
    *,
    compressors: Any = "auto",
    config: ArrayConfigParams | None = None,
) -> None:
    """Create (or replace) each coordinate array in ``group`` and write its values.

    Parameters
    ----------
    group
        The store's root group, open for writing.
    coordinates
        The arrays, created in this order.
    compressors
        Codecs of numeric arrays (Zarr's ``"auto"`` by default); strings are stored
        uncompressed.
    config
        Zarr array runtime configuration (not stored), e.g. ``write_empty_chunks``.
    """
    for coord in coordinates:
        values = coord.values
        shape = coord.shape if coord.shape is not None else (() if values is None else values.shape)
        dtype = (
            coord.dtype if coord.dtype is not None else (None if values is None else values.dtype)
        )
        array = group.create_array(
            coord.name,
            shape=shape,
            dtype=dtype,
            chunks=coord.chunks if coord.chunks is not None else tuple(max(1, s) for s in shape),
            fill_value=coord.fill_value,
            dimension_names=coord.dims,
            attributes=dict(coord.attrs),
            compressors=None if dtype is str else compressors,
            overwrite=True,
            config=config,
        )
        if values is not None and values.size:
            array[...] = values
