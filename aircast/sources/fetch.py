"""Fetching requests into the raw cache: skip what is cached, resume what was submitted,
retry only what is transient, quarantine what is damaged.

This is the part of the ingestion that runs with or without Prefect: the flows in
``flows/ingest.py`` call :func:`fetch_request` once per request (as tasks with a
per-store concurrency limit), and ``aircast ingest`` calls :func:`fetch_all` (threads, the same
limit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aircast.errors import CorruptFileError, DataStoreError, TransientDataStoreError
from aircast.sources.cache import RawCache, sha256_of
from aircast.sources.datastore import DataStoreClient, JobNotFoundError
from aircast.sources.requests import SourceRequest

LOG = logging.getLogger(__name__)

Verifier = Callable[[Path, SourceRequest], None]
Outcome = Literal["reused", "fetched", "recovered", "failed"]


@dataclass
class FetchResult:
    """What happened to one request."""

    request: SourceRequest
    outcome: Outcome
    path: Path | None = None
    retries: int = 0
    quarantined: int = 0
    error: str | None = None


@dataclass
class FetchReport:
    """What happened to a batch of requests, for the log, the CLI and the flow artifact."""

    results: list[FetchResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def retries(self) -> int:
        return sum(r.retries for r in self.results)

    @property
    def quarantined(self) -> int:
        return sum(r.quarantined for r in self.results)

    @property
    def failed(self) -> list[FetchResult]:
        return [r for r in self.results if r.outcome == "failed"]

    def summary(self) -> str:
        return (
            f"{len(self.results)} requests: {self.count('fetched')} fetched, "
            f"{self.count('reused')} already in the cache, {self.count('recovered')} "
            f"recovered after an interrupted run, {self.retries} retries, "
            f"{self.quarantined} damaged downloads quarantined, {len(self.failed)} failed"
        )

    def markdown(self, title: str) -> str:
        """A table an operator reads in the Prefect UI."""
        lines = [
            f"# {title}",
            "",
            self.summary(),
            "",
            "| request | day | outcome | retries | quarantined | detail |",
            "|---|---|---|---|---|---|",
        ]
        for r in sorted(
            self.results, key=lambda r: (r.request.dataset, r.request.day, r.request.group)
        ):
            detail = (r.error or "").replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(
                f"| {r.request.dataset} {r.request.group} | {r.request.day} | "
                f"{r.outcome} | {r.retries} | {r.quarantined} | {detail} |"
            )
        return "\n".join(lines) + "\n"


def _backoff(attempt: int, sleep_max: float) -> float:
    return float(min(sleep_max, 0.5 * 2**attempt))


def fetch_request(
    req: SourceRequest,
    cache: RawCache,
    client: DataStoreClient,
    *,
    verify: Verifier,
    download_tries: int = 4,
    sleep_max: float = 30.0,
) -> FetchResult:
    """Bring one request's result into the cache, or say why it cannot be had.

    Never raises for a store's failure: it is recorded in the manifest and returned, so one
    failed day does not stop a backfill of a hundred. A request already complete in the cache
    is never sent again; one submitted by an earlier (killed) run is resumed by its request id.
    """
    entry = cache.lookup(req.key)
    existing = cache.existing_file(req)
    if existing is not None:
        if (
            entry is not None
            and entry.status == "complete"
            and entry.size == existing.stat().st_size
        ):
            return FetchResult(req, "reused", existing)
        # a file at its final name was verified before the rename: adopt it (a kill came
        # between the rename and the manifest row), after checking it once more
        try:
            verify(existing, req)
        except CorruptFileError as exc:
            cache.quarantine(req, existing, str(exc))
        else:
            cache.record_complete(
                req,
                existing,
                sha256_of(existing),
                existing.stat().st_size,
                entry.request_id if entry else None,
            )
            return FetchResult(req, "recovered", existing)

    request_id = entry.request_id if entry is not None and entry.status == "submitted" else None
    resumed = request_id is not None
    retries = quarantined = 0
    last_error = ""
    for attempt in range(download_tries):
        try:
            if request_id is None:
                request_id = client.submit(req.dataset, req.request)
                cache.record_submitted(req, request_id)
            elif resumed and attempt == 0:
                cache.record_event(req.key, "resumed", request_id)
            tmp = cache.tmp_path(req)
            tmp.unlink(missing_ok=True)
            cache.record_download(req.key)
            client.download(request_id, tmp)
            verify(tmp, req)
        except JobNotFoundError as exc:
            # the store forgot the job (expired while we were away): ask again
            cache.record_event(req.key, "job-lost", str(exc))
            request_id, last_error = None, str(exc)
            retries += 1
            continue
        except CorruptFileError as exc:
            # a damaged result belongs to its job: downloading the same job again returns the
            # same bytes, so set the file aside and ask the store for a new job
            cache.quarantine(req, tmp, str(exc))
            quarantined += 1
            retries += 1
            request_id, last_error = None, str(exc)
            time.sleep(_backoff(attempt, sleep_max))
            continue
        except TransientDataStoreError as exc:
            cache.record_event(req.key, "retry", str(exc))
            retries += 1
            last_error = str(exc)
            time.sleep(_backoff(attempt, sleep_max))
            continue
        except DataStoreError as exc:
            cache.record_failed(req, str(exc))
            return FetchResult(
                req, "failed", retries=retries, quarantined=quarantined, error=str(exc)
            )
        final = cache.path_for(req, suffix=_suffix_of(tmp, req))
        size = tmp.stat().st_size
        digest = sha256_of(tmp)
        cache.install(tmp, final)
        cache.record_complete(req, final, digest, size, request_id)
        return FetchResult(req, "fetched", final, retries=retries, quarantined=quarantined)
    message = (
        f"gave up after {download_tries} tries: {last_error}; run the ingestion again "
        "later (finished requests are kept), or raise ingest.download_tries"
    )
    cache.record_failed(req, message)
    return FetchResult(req, "failed", retries=retries, quarantined=quarantined, error=message)


def _suffix_of(path: Path, req: SourceRequest) -> str:
    """A NetCDF request that mixes level types arrives as a zip (as the ADS documents)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    return ".zip" if magic == b"PK\x03\x04" else req.suffix


def fetch_all(
    requests: Sequence[SourceRequest],
    cache: RawCache,
    clients: Mapping[str, DataStoreClient],
    *,
    verify: Verifier,
    max_concurrent: int = 4,
    download_tries: int = 4,
    sleep_max: float = 30.0,
    progress: Callable[[FetchResult, int, int], None] | None = None,
) -> FetchReport:
    """Fetch many requests, at most ``max_concurrent`` in flight per store.

    Parameters
    ----------
    progress
        Called after each request with (result, done, total).
    """
    removed = cache.clean_tmp()
    if removed:
        LOG.info("removed %d partial downloads left by an interrupted run", removed)
    report = FetchReport()
    by_store: dict[str, list[SourceRequest]] = {}
    for req in requests:
        by_store.setdefault(req.store, []).append(req)
    total = len(requests)
    pools = {
        store: ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix=f"fetch-{store}")
        for store in by_store
    }
    try:
        futures = [
            pools[store].submit(
                fetch_request,
                req,
                cache,
                clients[store],
                verify=verify,
                download_tries=download_tries,
                sleep_max=sleep_max,
            )
            for store, reqs in by_store.items()
            for req in reqs
        ]
        for future in as_completed(futures):
            result = future.result()
            report.results.append(result)
            if progress is not None:
                progress(result, len(report.results), total)
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
    return report
