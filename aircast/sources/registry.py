"""The sources by name: where ``era5``, ``eac4`` and ``forecast`` become source objects.

The CLI, the flows and the store build name sources by the strings of
:data:`aircast.sources.base.Source`; :func:`get_source` is the one place such a name is looked
up, so a new source is added here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from aircast.errors import AirCastError
from aircast.sources.base import DataSource, Source
from aircast.sources.cams import CAMS_FORECAST_SOURCE, EAC4_SOURCE
from aircast.sources.era5 import ERA5_SOURCE

_REGISTRY: Mapping[str, DataSource] = MappingProxyType(
    {source.name: source for source in (ERA5_SOURCE, EAC4_SOURCE, CAMS_FORECAST_SOURCE)}
)

#: Every source's name, in the order the CLI lists them.
SOURCES: tuple[Source, ...] = tuple(source.name for source in _REGISTRY.values())


class UnknownSourceError(AirCastError, ValueError):
    """A source name that no source answers to."""


def get_source(name: str) -> DataSource:
    """The source called ``name`` (one of :data:`SOURCES`).

    Raises
    ------
    UnknownSourceError
        Naming the sources there are.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownSourceError(
            f"unknown source {name!r}; choose one of {', '.join(SOURCES)}"
        ) from None
