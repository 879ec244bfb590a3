"""Ingestion: fetching what sources need for a date range into the raw cache.

Which requests a source needs is the source's own answer
(:func:`aircast.sources.registry.get_source`). The CLI (``aircast ingest``) calls
:func:`ingest`; the Prefect flows (``flows/ingest.py``) ask the source for its requests and map
:func:`fetch_one` over them as tasks. Both share the same cache, clients and verification, so a
run started one way is finished the other way without fetching anything twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from aircast.config import AirCastConfig
from aircast.sources.base import Source
from aircast.sources.cache import RawCache
from aircast.sources.datastore import DataStoreClient, Endpoint, RetryPolicy
from aircast.sources.decode import verify_product
from aircast.sources.fetch import FetchReport, FetchResult, fetch_all, fetch_request
from aircast.sources.registry import get_source
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


def ingest(
    config: AirCastConfig,
    sources: tuple[Source, ...],
    start: dt.date,
    end: dt.date,
    *,
    endpoints: Mapping[str, Endpoint],
    progress: Callable[[FetchResult, int, int], None] | None = None,
) -> dict[Source, FetchReport]:
    """Fetch what ``sources`` need for ``start``..``end`` into the recipe's raw cache.

    Idempotent: what is in the cache is not fetched again; what an interrupted run submitted
    is resumed by its request id.

    Raises
    ------
    RequestError
        Before anything is sent or written, when a store's form would reject a request of any
        of the sources (e.g. dates that one of the datasets lacks).
    """
    # plan every source first: a range that one dataset lacks must fail the run before another
    # source's requests are sent and cached (and before the clients contact the stores)
    plans = {
        source: get_source(source).requests(config, start, end) for source in dict.fromkeys(sources)
    }
    cache = raw_cache(config)
    clients = make_clients(config, endpoints)
    source_of: dict[str, Source] = {}
    for source, requests in plans.items():
        LOG.info("%s: %d requests for %s..%s", source, len(requests), start, end)
        source_of.update((r.key, source) for r in requests)
    # one batch for all sources: ERA5 (CDS) and CAMS (ADS) are different stores, each with its
    # own concurrency limit, so they are fetched at the same time rather than one after another
    everything = [r for requests in plans.values() for r in requests]
    report = fetch_all(
        everything,
        cache,
        clients,
        verify=verifier,
        max_concurrent=config.ingest.max_concurrent_requests,
        download_tries=config.ingest.download_tries,
        sleep_max=config.ingest.sleep_max,
        progress=progress,
    )
    reports: dict[Source, FetchReport] = {source: FetchReport() for source in plans}
    for result in report.results:
        reports[source_of[result.request.key]].results.append(result)
    return reports
