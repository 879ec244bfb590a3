"""Ingestion: fetching what sources need for a date range into the raw cache.

Which requests a source needs is the source's own answer
(:func:`aircast.sources.registry.get_source`); the ingest job (:mod:`aircast.jobs.ingest`,
behind ``aircast ingest`` and the ingest flows) decides which run and fetches each with
:func:`fetch_one`, so every face shares the same cache, clients and verification: a run started
one way is finished the other way without fetching anything twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from aircast.config import AirCastConfig
from aircast.sources.cache import RawCache
from aircast.sources.datastore import DataStoreClient, Endpoint, RetryPolicy
from aircast.sources.decode import verify_product
from aircast.sources.fetch import FetchResult, fetch_request
from aircast.sources.requests import SourceRequest

LOG = logging.getLogger(__name__)


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
        connect_timeout=s.connect_timeout,
        unreachable_after=s.unreachable_after,
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
