"""Fetching requests into the raw cache: skip what is cached, resume what was submitted,
retry only what is transient, quarantine what is damaged.

One request at a time: the ingest job (:func:`aircast.jobs.ingest.run_ingest`) decides which
requests run, how many at once and when a store is given up on, and calls :func:`fetch_request`
(through :func:`aircast.sources.ingest.fetch_one`) for each.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aircast.errors import CorruptFileError, DataStoreError, TransientDataStoreError
from aircast.sources.cache import ManifestEntry, RawCache, sha256_of
from aircast.sources.datastore import (
    DailyLimitError,
    DataStoreClient,
    JobNotFoundError,
    KeyRefusedError,
    LicenceError,
    RequestTooLargeError,
    StoreUnreachableError,
)
from aircast.sources.requests import SourceRequest

LOG = logging.getLogger(__name__)

Verifier = Callable[[Path, SourceRequest], None]
Outcome = Literal["reused", "fetched", "recovered", "failed"]
#: What a failure stops: every request to its store (unreachable, key refused, daily quota
#: spent), or every request of its dataset (licence not accepted).
StopScope = Literal["store", "dataset"]


@dataclass
class FetchResult:
    """What happened to one request."""

    request: SourceRequest
    outcome: Outcome
    path: Path | None = None
    retries: int = 0
    quarantined: int = 0
    error: str | None = None
    #: What else would fail the same way, so that the ingest job (:mod:`aircast.jobs.ingest`)
    #: stops sending it: the whole store (unreachable, key refused, daily quota spent) or
    #: this request's dataset (its licence is not accepted); None: only this request.
    stops: StopScope | None = None
    #: Jobs the store accepted for this request in this call (what counts against a quota).
    submitted: int = 0
    #: Why it stopped, when it did: the error's type name (``DailyLimitError`` …).
    stop_reason: str | None = None

    @property
    def store_unusable(self) -> bool:
        """Whether no other request to this request's store can succeed in this run."""
        return self.stops == "store"


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


#: One lock per (cache, request) in this process: two tasks asking for the same request at once
#: (two Prefect flows in one worker, a plan that lists a request twice) would otherwise both
#: submit it and both write the same ``tmp/<key>.<pid>.part``; the second now waits and reuses.
_IN_FLIGHT: dict[tuple[str, str], threading.Lock] = {}
_IN_FLIGHT_GUARD = threading.Lock()


@contextmanager
def _exclusive(cache: RawCache, key: str) -> Iterator[None]:
    ident = (str(cache.root.resolve()), key)
    with _IN_FLIGHT_GUARD:
        lock = _IN_FLIGHT.setdefault(ident, threading.Lock())
    with lock:
        yield


def is_cached(cache: RawCache, req: SourceRequest) -> bool:
    """Whether ``req`` is complete in the cache and its file intact, so fetching it will not
    talk to its store.

    Lets an orchestrator skip taking a store's concurrency slot for work that is already done;
    :func:`fetch_request` still decides. Intact means the manifest's size *and* sha256: a file
    whose bytes changed on disk at the same size (bit rot, a stray write) is not cached.
    """
    entry = cache.lookup(req.key)
    if entry is None or entry.status != "complete":
        return False
    existing = cache.existing_file(req)
    return existing is not None and entry.damage(existing) is None


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
    with _exclusive(cache, req.key):
        return _fetch_request(
            req, cache, client, verify=verify, download_tries=download_tries, sleep_max=sleep_max
        )


def _fetch_request(
    req: SourceRequest,
    cache: RawCache,
    client: DataStoreClient,
    *,
    verify: Verifier,
    download_tries: int,
    sleep_max: float,
) -> FetchResult:
    entry = cache.lookup(req.key)
    existing = cache.existing_file(req)
    damaged = 0
    if entry is not None and entry.status == "complete" and existing is not None:
        damage = entry.damage(existing)
        if damage is None:
            return FetchResult(req, "reused", existing)
        # the file was whole when it was fetched (its hash is the manifest's): set it aside
        # and fetch the request again, never read what it now holds
        target = cache.quarantine(req, existing, damage)
        LOG.warning(
            "%s: cached file damaged (%s), moved to %s; fetching again", req.label, damage, target
        )
        existing, damaged = None, 1
    if existing is not None:
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

    # a download that failed or broke off leaves its partial file: it is removed when the call
    # ends (the cache holds no half-written file once a run is over), and no other thread's
    # clean_tmp removes it while it is being written
    with cache.writing(req) as tmp:
        result = _fetch_fresh(
            req,
            cache,
            client,
            entry,
            tmp,
            verify=verify,
            download_tries=download_tries,
            sleep_max=sleep_max,
        )
    result.quarantined += damaged
    return result


def _fetch_fresh(
    req: SourceRequest,
    cache: RawCache,
    client: DataStoreClient,
    entry: ManifestEntry | None,
    tmp: Path,
    *,
    verify: Verifier,
    download_tries: int,
    sleep_max: float,
) -> FetchResult:
    request_id = entry.request_id if entry is not None and entry.status == "submitted" else None
    resumed = request_id is not None
    retries = quarantined = submitted = 0
    last_error = ""
    for attempt in range(download_tries):
        try:
            if request_id is None:
                request_id = client.submit(req.dataset, req.request)
                submitted += 1
                cache.record_submitted(req, request_id)
            elif resumed and attempt == 0:
                cache.record_event(req.key, "resumed", request_id)
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
            target = cache.quarantine(req, tmp, str(exc))
            quarantined += 1
            retries += 1
            request_id, last_error = None, _damage(exc, target)
            time.sleep(_backoff(attempt, sleep_max))
            continue
        except StoreUnreachableError as exc:
            # the seam already waited out ingest.unreachable_after: asking again here would
            # only multiply that wait by download_tries
            cache.record_failed(req, str(exc))
            return FetchResult(
                req,
                "failed",
                retries=retries,
                quarantined=quarantined,
                error=str(exc),
                stops="store",
                submitted=submitted,
                stop_reason=type(exc).__name__,
            )
        except TransientDataStoreError as exc:
            cache.record_event(req.key, "retry", str(exc))
            retries += 1
            last_error = str(exc)
            time.sleep(_backoff(attempt, sleep_max))
            continue
        except DataStoreError as exc:
            message = str(exc)
            if isinstance(exc, RequestTooLargeError):
                message = f"{message} ({_size_of(req)})"
            cache.record_failed(req, message)
            stops = _stop_scope(exc)
            return FetchResult(
                req,
                "failed",
                retries=retries,
                quarantined=quarantined,
                error=message,
                stops=stops,
                submitted=submitted,
                stop_reason=type(exc).__name__ if stops else None,
            )
        final = cache.path_for(req, suffix=_suffix_of(tmp, req))
        size = tmp.stat().st_size
        digest = sha256_of(tmp)
        cache.install(tmp, final)
        cache.record_complete(req, final, digest, size, request_id)
        return FetchResult(
            req, "fetched", final, retries=retries, quarantined=quarantined, submitted=submitted
        )
    if quarantined:
        # the usual advice (try again later) holds, but the operator should know that the
        # store sent bad files, and where they are kept for a look
        message = (
            f"gave up after {download_tries} tries: {quarantined} download(s) were damaged or "
            f"did not match the request and were moved to {cache.root / 'quarantine'} (last: "
            f"{last_error}); run the ingestion again later (finished requests are kept), and "
            "report the request to the store if it keeps failing"
        )
    else:
        message = (
            f"gave up after {download_tries} tries: {last_error}; run the ingestion again "
            "later (finished requests are kept), or raise ingest.download_tries"
        )
    cache.record_failed(req, message)
    return FetchResult(
        req,
        "failed",
        retries=retries,
        quarantined=quarantined,
        error=message,
        submitted=submitted,
    )


def _stop_scope(exc: DataStoreError) -> StopScope | None:
    """What else a store's refusal stops (see :attr:`FetchResult.stops`)."""
    if isinstance(exc, (KeyRefusedError, DailyLimitError)):
        return "store"
    if isinstance(exc, LicenceError):
        return "dataset"
    return None


def _size_of(req: SourceRequest) -> str:
    """What a request asks for, so that a user sees how much to take away."""
    parsed = req.parsed()
    parts = [f"{len(parsed.variables)} variable(s)"]
    if parsed.levels:
        parts.append(f"{len(parsed.levels)} level(s)")
    parts.append(f"{len(parsed.times)} time(s)")
    if parsed.lead_hours:
        parts.append(f"{len(parsed.lead_hours)} lead time(s)")
    return (
        f"this request, {req.label}, asks for {parsed.n_fields} fields: "
        f"{' x '.join(parts)}; AirCast already asks for one day per request, so take "
        "variables (or levels) out of the recipe, or ask the store's support about its limit"
    )


def _damage(exc: CorruptFileError, quarantined: Path) -> str:
    """The problem of a damaged download, naming where it now lies (not its temporary name,
    and without the error's generic "delete it and fetch again": that was done already)."""
    text = str(exc).replace(exc.path, quarantined.name)
    return text.split("; the whole file is rejected")[0]


def _suffix_of(path: Path, req: SourceRequest) -> str:
    """A NetCDF request that mixes level types arrives as a zip (as the ADS documents)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    return ".zip" if magic == b"PK\x03\x04" else req.suffix
