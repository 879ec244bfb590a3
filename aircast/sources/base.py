"""What a source is: one small protocol, and the one way from the raw cache onto a grid.

ERA5 (:mod:`aircast.sources.era5`), EAC4 and the CAMS global forecast
(:mod:`aircast.sources.cams`) are each a :class:`DataSource`, found by name through
:mod:`aircast.sources.registry`. A source says two things:

- :meth:`DataSource.requests`: the canonical requests it needs for a span of days (validated
  against the store's form, not sent);
- :meth:`DataSource.fields`: the decoded fields of a span on a target grid, read through the
  raw cache: each cached file decoded (:func:`aircast.sources.decode.decode_product`: canonical
  names, units and orientation) and regridded on its own by the target grid (conservatively,
  for :class:`aircast.align.grid.TargetGrid`), then each variable lined up over the span's
  files.

The store build, the daily initial conditions, the verification and the baselines all ask a
source; :func:`read_on_grid` is the only place where "cache lookup → decode → regrid" is
written out. Nothing here touches the network: what is not in the cache is reported as
:attr:`GriddedFields.absent`.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import xarray as xr

from aircast.config import AirCastConfig
from aircast.sources.cache import RawCache
from aircast.sources.decode import decode_product
from aircast.sources.requests import SourceRequest

#: The name of a source, as the CLI and the flows spell it.
Source = Literal["era5", "eac4", "forecast"]


class Grid(Protocol):
    """A target grid as a source sees it: its shape, and how a product is regridded onto it.

    :class:`aircast.align.grid.TargetGrid` is one (conservative regridding); the protocol keeps
    the sources below the alignment package, which they must not import.
    """

    @property
    def shape(self) -> tuple[int, int]:
        """(n_lat, n_lon)."""
        ...

    def regrid(self, ds: xr.Dataset) -> xr.Dataset:
        """``ds`` (canonical: latitude north → south, longitude increasing) on this grid."""
        ...


@dataclass(frozen=True)
class GriddedFields:
    """Decoded fields of some requests, on a target grid.

    Attributes
    ----------
    variables
        Vocabulary name → float32 DataArray on the grid, in canonical units, with dims
        (time[, level], latitude, longitude) for an analysis, (init_time, lead_time[, level],
        latitude, longitude) for a forecast: each variable's files concatenated along the
        first dimension and sorted by it.
    read
        The requests whose files were read, in request order.
    absent
        The requests whose files are not in the raw cache (never ingested, or failed).
    """

    variables: Mapping[str, xr.DataArray]
    read: tuple[SourceRequest, ...]
    absent: tuple[SourceRequest, ...]

    @property
    def complete(self) -> bool:
        """Every request's file was there (and there was at least one request)."""
        return bool(self.read) and not self.absent


def on_grid(
    decoded: xr.Dataset, grid: Grid, variables: Collection[str] | None = None
) -> xr.Dataset:
    """One decoded product regridded onto ``grid``: all of it, or only ``variables``.

    Returns
    -------
    xarray.Dataset
        float32 variables with dims (..., latitude, longitude) on the grid's points; empty
        when the product holds none of ``variables``.
    """
    if variables is not None:
        present = [name for name in decoded.data_vars if name in variables]
        if not present:
            return xr.Dataset()
        decoded = decoded[present]
    return grid.regrid(decoded)


def read_on_grid(
    cache: RawCache,
    requests: Sequence[SourceRequest],
    grid: Grid,
    *,
    along: str,
    variables: Collection[str] | None = None,
) -> GriddedFields:
    """The fields of ``requests`` on ``grid``, from the files the raw cache holds.

    Parameters
    ----------
    along
        The dimension along which one variable's files line up (``time`` for an analysis,
        ``init_time`` for a forecast).
    variables
        Only these vocabulary names (default: every variable of every file).
    """
    pieces: dict[str, list[xr.DataArray]] = {}
    read: list[SourceRequest] = []
    absent: list[SourceRequest] = []
    for request in requests:
        path = cache.existing_file(request)
        if path is None:
            absent.append(request)
            continue
        read.append(request)
        # each file is regridded on its own, so a day's values never depend on which other
        # days are read with it (store parts of any length give the same bytes)
        regridded = on_grid(decode_product(path, request.parsed()), grid, variables)
        for name in regridded.data_vars:
            pieces.setdefault(str(name), []).append(regridded[name])
    merged: dict[str, xr.DataArray] = {}
    for name, found in pieces.items():
        merged[name] = (xr.concat(found, dim=along) if len(found) > 1 else found[0]).sortby(along)
    return GriddedFields(merged, tuple(read), tuple(absent))


def request_ids(cache: RawCache, requests: Sequence[SourceRequest]) -> list[str]:
    """The data store's request ids of ``requests`` (the cache key where it gave none): what a
    forecast's provenance names its inputs by."""
    ids = []
    for request in requests:
        entry = cache.lookup(request.key)
        ids.append(entry.request_id if entry is not None and entry.request_id else request.key)
    return ids


class DataSource(ABC):
    """A source of fields: the requests a span of days needs, and its fields on a grid.

    Attributes
    ----------
    name
        The registry's name of the source.
    datasets
        The catalogue ids its requests go to.
    along
        The first dimension of its decoded variables, along which a span's files line up.
    """

    name: ClassVar[Source]
    datasets: ClassVar[tuple[str, ...]]
    along: ClassVar[str] = "time"

    @abstractmethod
    def requests(self, config: AirCastConfig, start: dt.date, end: dt.date) -> list[SourceRequest]:
        """The canonical requests for days ``start``..``end`` (validated, not sent).

        Raises
        ------
        RequestError
            When the store's form would reject one of them (e.g. dates the dataset lacks).
        """

    def read(
        self,
        cache: RawCache,
        requests: Sequence[SourceRequest],
        grid: Grid,
        *,
        variables: Collection[str] | None = None,
    ) -> GriddedFields:
        """The fields of some of this source's ``requests`` on ``grid``, through ``cache``."""
        return read_on_grid(cache, requests, grid, along=self.along, variables=variables)

    def fields(
        self,
        config: AirCastConfig,
        cache: RawCache,
        start: dt.date,
        end: dt.date,
        grid: Grid,
        *,
        variables: Collection[str] | None = None,
    ) -> GriddedFields:
        """The fields of days ``start``..``end`` on ``grid``, from the raw cache."""
        return self.read(cache, self.requests(config, start, end), grid, variables=variables)

    def absent(
        self, config: AirCastConfig, cache: RawCache, start: dt.date, end: dt.date
    ) -> list[SourceRequest]:
        """The requests of days ``start``..``end`` whose files the raw cache does not hold."""
        return [r for r in self.requests(config, start, end) if cache.existing_file(r) is None]
