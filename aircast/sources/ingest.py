"""Ingestion: which requests a source needs for a date range, and running them.

The ingest job (:mod:`aircast.jobs.ingest`, behind ``aircast ingest`` and the ingest flows)
plans with :func:`plan` and fetches each request with :func:`fetch_one`, so every face shares
the same cache, clients and verification: a run started one way is finished the other way
without fetching anything twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from aircast.config import AirCastConfig
from aircast.errors import AirCastError
from aircast.sources.cache import RawCache
from aircast.sources.cams import eac4_requests, forecast_requests
from aircast.sources.datastore import DataStoreClient, Endpoint, RetryPolicy
from aircast.sources.decode import verify_product
from aircast.sources.era5 import era5_requests
from aircast.sources.fetch import FetchResult, fetch_request
from aircast.sources.requests import SourceRequest

Source = Literal["era5", "eac4", "forecast"]
SOURCES: tuple[Source, ...] = ("era5", "eac4", "forecast")

LOG = logging.getLogger(__name__)


class DateError(AirCastError, ValueError):
    """A date typed by a person (CLI option, flow parameter) that is not usable."""


def parse_day(value: str | dt.date, name: str) -> dt.date:
    """An ISO ``YYYY-MM-DD`` string (or a date) as a date, with a clear error otherwise."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise DateError(
            f"{name} = {value!r} is not a date; write it as YYYY-MM-DD, e.g. 2019-06-01"
        ) from None


def parse_range(start: str | dt.date, end: str | dt.date) -> tuple[dt.date, dt.date]:
    """Validate an inclusive date range typed by a person."""
    first, last = parse_day(start, "start"), parse_day(end, "end")
    if last < first:
        raise DateError(f"end {last} is before start {first}; swap them")
    return first, last


def plan(
    config: AirCastConfig, source: Source, start: dt.date, end: dt.date
) -> list[SourceRequest]:
    """The canonical requests ``source`` needs for ``start``..``end`` (validated, not sent).

    Raises
    ------
    RequestError
        When the store's form would reject one of them (e.g. dates the dataset lacks).
    """
    if source == "era5":
        return era5_requests(config, start, end)
    if source == "eac4":
        return eac4_requests(config, start, end)
    if source == "forecast":
        return forecast_requests(config, start, end)
    raise DateError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")


def raw_cache(config: AirCastConfig) -> RawCache:
    """The raw cache of a recipe (``paths.root``/raw)."""
    return RawCache(config.paths.raw)


def retry_policy(config: AirCastConfig) -> RetryPolicy:
    s = config.ingest
    return RetryPolicy(
        http_tries=s.http_tries,
        sleep_max=s.sleep_max,
        download_tries=s.download_tries,
        timeout=s.timeout,
    )


def make_clients(
    config: AirCastConfig, endpoints: Mapping[str, Endpoint]
) -> dict[str, DataStoreClient]:
    """One client per store, each with its own URL and key."""
    policy = retry_policy(config)
    return {store: DataStoreClient(endpoint, policy) for store, endpoint in endpoints.items()}


def verifier(path: Path, req: SourceRequest) -> None:
    """Check a download whole and against its request before it enters the cache."""
    verify_product(path, req.parsed())


def fetch_one(
    config: AirCastConfig, req: SourceRequest, endpoint: Endpoint, cache: RawCache
) -> FetchResult:
    """Fetch one request with the recipe's retry settings and a client of its own.

    A client per call because ``requests.Session`` is not promised to be thread-safe, and the
    Prefect flows run one call per thread; the cache is safe to share (SQLite per call).
    """
    client = DataStoreClient(endpoint, retry_policy(config))
    return fetch_request(
        req,
        cache,
        client,
        verify=verifier,
        download_tries=config.ingest.download_tries,
        sleep_max=config.ingest.sleep_max,
    )
