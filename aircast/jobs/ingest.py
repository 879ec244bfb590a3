"""The ingest job: the requests that sources need for a span of days, fetched into the raw cache.

``aircast ingest`` and the ``ingest-*`` flows both call :func:`run_ingest`, with threads or
Prefect tasks as the executor, so every rule below holds for both:

1. **Plan first.** Every source's requests are planned and checked against the stores' forms
   before anything is sent or written: a span one dataset lacks fails the whole run.
2. **One concurrency limit per store**, ``aircast-cds`` and ``aircast-ads``, created with
   ``ingest.max_concurrent_requests`` slots when missing (an existing one is kept: an operator
   may have tuned it). A request holds a slot only while it talks to the store: one already
   complete in the cache takes none.
3. **Stores side by side.** ERA5 (CDS) and CAMS (ADS) are different stores, each with its own
   limit, so their requests are interleaved and fetched at the same time.
4. **What cannot succeed is not asked again.** A request that finds its store unreachable (no
   answer within ``ingest.unreachable_after``), its key refused (401) or its daily quota of
   requests spent stops that store; one whose dataset's licence is not accepted stops that
   dataset only (the store's other datasets go on). The requests so stopped that have not
   started come back ``failed`` with a short "not sent" error and leave no manifest row (the
   next run sends them as if for the first time): with the default patience each would
   otherwise spend minutes failing the same way. A daily quota's error says how many requests
   this run had sent to that store. A request over the store's cost limit fails alone.
5. **Never raise for a store's answer.** Each request's outcome is recorded in the manifest and
   reported; :class:`IngestFailed` is raised at the end, after the reports, when any failed.
   What did arrive stays in the cache, so running the job again fetches only the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from aircast.config import AirCastConfig
from aircast.errors import DataStoreError
from aircast.jobs.executor import Executor, ThreadExecutor
from aircast.sandbox.runtime import datastore_endpoints
from aircast.sources.base import Source
from aircast.sources.cache import RawCache
from aircast.sources.datastore import Endpoint, KeyResolver, Store
from aircast.sources.fetch import FetchReport, FetchResult, is_cached
from aircast.sources.ingest import fetch_one, raw_cache
from aircast.sources.registry import get_source
from aircast.sources.requests import SourceRequest

LOG = logging.getLogger(__name__)

#: The report key and title of each source (the Prefect artifacts keep these keys).
REPORT_NAMES: Mapping[Source, tuple[str, str]] = {
    "era5": ("ingest-era5", "ERA5"),
    "eac4": ("ingest-cams-reanalysis", "CAMS reanalysis"),
    "forecast": ("ingest-cams-forecast", "CAMS forecast"),
}


def limit_name(store: str) -> str:
    """Name of the concurrency limit shared by every run that talks to ``store``."""
    return f"aircast-{store}"


class IngestFailed(DataStoreError):
    """Some requests failed; :attr:`result` holds every report (what arrived is cached)."""

    def __init__(self, message: str, result: IngestResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class IngestResult:
    """What happened to every request of a run, by source."""

    start: dt.date
    end: dt.date
    cache: RawCache
    reports: dict[Source, FetchReport] = field(default_factory=dict)

    @property
    def failed(self) -> list[FetchResult]:
        return [r for report in self.reports.values() for r in report.failed]

    def summary(self, source: Source) -> dict[str, object]:
        """One source's counts as plain values (a flow's result)."""
        report = self.reports[source]
        return {
            "source": source,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "requests": len(report.results),
            "fetched": report.count("fetched"),
            "reused": report.count("reused"),
            "recovered": report.count("recovered"),
            "failed": len(report.failed),
            "retries": report.retries,
            "quarantined": report.quarantined,
            "raw_cache": str(self.cache.root.resolve()),
        }


def headline(report: FetchReport) -> str:
    """One line for the log and the top of the report."""
    total = len(report.results)
    if total and report.count("reused") == total:
        return f"nothing fetched: {total} requests already in the cache"
    failed = len(report.failed)
    if failed:
        return (
            f"{failed} of {total} requests failed; run the ingestion again to retry them (what "
            "arrived is kept and not fetched again)"
        )
    return f"fetched {report.count('fetched')} of {total} requests"


def report_markdown(report: FetchReport, title: str, config: AirCastConfig, span: str) -> str:
    """The operator's table of one source's requests, with its headline and context."""
    first, rest = report.markdown(title).split("\n", 1)
    context = f"Recipe `{config.name}`, days {span}, raw cache `{config.paths.raw.resolve()}`."
    return "\n".join([first, "", f"**{headline(report)}**", "", context, rest])


def _interleaved(requests: Sequence[SourceRequest]) -> list[SourceRequest]:
    """The requests in planned order within each store, the stores taking turns."""
    by_store: dict[str, list[SourceRequest]] = {}
    for req in requests:
        by_store.setdefault(req.store, []).append(req)
    queues = [iter(reqs) for reqs in by_store.values()]
    out: list[SourceRequest] = []
    while queues:
        for queue in list(queues):
            item = next(queue, None)
            if item is None:
                queues.remove(queue)
            else:
                out.append(item)
    return out


def _result_line(result: FetchResult, done: int, total: int) -> str:
    req = result.request
    extra = []
    if result.retries:
        extra.append(f"{result.retries} retries")
    if result.quarantined:
        extra.append(f"{result.quarantined} damaged downloads quarantined")
    if result.error:
        extra.append(result.error)
    note = f" ({'; '.join(extra)})" if extra else ""
    return f"  [{done}/{total}] fetch {req.day} {req.group}: {result.outcome}{note}"


@contextmanager
def _endpoints(
    config: AirCastConfig,
    stores: Sequence[Store],
    endpoints: Mapping[str, Endpoint] | None,
    key_resolver: KeyResolver | None,
) -> Iterator[Mapping[str, Endpoint]]:
    if endpoints is not None:
        yield endpoints
        return
    with ExitStack() as stack:
        found = stack.enter_context(
            datastore_endpoints(config, key_resolver=key_resolver, stores=tuple(stores))
        )
        for store in stores:
            LOG.info("%s: %s", store.upper(), found[store].url)
        yield found


def run_ingest(
    config: AirCastConfig,
    sources: Sequence[Source],
    start: dt.date,
    end: dt.date,
    *,
    executor: Executor | None = None,
    endpoints: Mapping[str, Endpoint] | None = None,
    key_resolver: KeyResolver | None = None,
    raise_on_failure: bool = True,
) -> IngestResult:
    """Fetch what ``sources`` need for ``start``..``end`` into the recipe's raw cache.

    Parameters
    ----------
    executor
        How the requests run (default: threads of this process).
    endpoints
        The stores to talk to; default: the recipe's (a sandbox started for the run where
        the recipe asks for one), keys looked up through ``key_resolver`` first.
    raise_on_failure
        Raise :class:`IngestFailed` (after the reports) when a request failed.

    Raises
    ------
    RequestError
        Before anything is sent or written, when a store's form would reject a request.
    IngestFailed
        When requests failed (and ``raise_on_failure``).
    """
    executor = executor or ThreadExecutor()
    chosen = tuple(dict.fromkeys(sources))
    # plan every source first: a range that one dataset lacks must fail the run before another
    # source's requests are sent and cached (and before the clients contact the stores)
    plans = {source: get_source(source).requests(config, start, end) for source in chosen}
    span = f"{start}..{end}"
    requests = _interleaved([r for reqs in plans.values() for r in reqs])
    source_of = {r.key: source for source, reqs in plans.items() for r in reqs}
    # CDS first: its key is looked up (and its problems reported) before the ADS's
    needed = {r.store for r in requests}
    order: tuple[Store, ...] = ("cds", "ads")
    stores: list[Store] = [s for s in order if s in needed]
    slots = {
        store: executor.ensure_limit(
            limit_name(store),
            config.ingest.max_concurrent_requests,
            what=f"{store.upper()} requests in flight",
            setting="ingest.max_concurrent_requests",
        )
        for store in stores
    }
    cache = raw_cache(config)
    result = IngestResult(start, end, cache, {source: FetchReport() for source in chosen})
    removed = cache.clean_tmp()
    if removed:
        LOG.info("removed %d partial downloads left by an interrupted run", removed)
    for source, reqs in plans.items():
        LOG.info("%s: %d requests for %s", source, len(reqs), span)
    total = len(requests)
    with _endpoints(config, stores, endpoints, key_resolver) as found:
        # what a failure stopped: ("store", "ads") or ("dataset", "reanalysis-era5-…")
        stopped: dict[tuple[str, str], FetchResult] = {}
        sent: dict[str, int] = dict.fromkeys(stores, 0)  # jobs each store accepted in this run
        guard = threading.Lock()

        def not_sent(req: SourceRequest) -> FetchResult | None:
            with guard:
                first = stopped.get(("store", req.store)) or stopped.get(("dataset", req.dataset))
            if first is None:
                return None
            what = (
                f"{req.store.upper()} could not be used"
                if first.stops == "store"
                else f"{req.dataset} is refused by {req.store.upper()}"
            )
            return FetchResult(
                req,
                "failed",
                error=f"not sent: {what} for {first.request.label} (see its error); nothing was "
                "recorded for this request",
            )

        def fetch(req: SourceRequest) -> FetchResult:
            skipped = not_sent(req)
            if skipped is not None:
                return skipped
            if is_cached(cache, req):  # intact in the cache (hash checked): no slot, no store
                outcome = FetchResult(req, "reused", cache.existing_file(req))
            else:
                with executor.slot(limit_name(req.store)):
                    # a request that waited for its slot while another found its store or its
                    # dataset stopped is not sent either
                    skipped = not_sent(req)
                    if skipped is not None:
                        return skipped
                    outcome = fetch_one(config, req, found[req.store], cache)
            with guard:
                sent[req.store] += outcome.submitted
                if outcome.stops is not None:
                    scope = req.store if outcome.stops == "store" else req.dataset
                    if (outcome.stops, scope) not in stopped:
                        stopped[(outcome.stops, scope)] = outcome
                        if outcome.stop_reason == "DailyLimitError":
                            outcome.error = (
                                f"{outcome.error} ({sent[req.store]} request(s) had been sent "
                                f"to the {req.store.upper()} in this run)"
                            )
            return outcome

        LOG.info(
            "%s: %d requests into %s (at most %s in flight)",
            span,
            total,
            cache.root,
            ", ".join(f"{slots[s]} at the {s.upper()}" for s in stores),
        )
        shown = -1
        progress_key = f"{REPORT_NAMES[chosen[0]][0]}-progress" if chosen else "ingest-progress"
        for done, (req, outcome) in enumerate(
            executor.map(
                "fetch-request",
                fetch,
                requests,
                width=max(1, sum(slots.values())),
                label=lambda r: r.label,
            ),
            1,
        ):
            if isinstance(outcome, BaseException):  # a bug or an orchestration failure
                outcome = FetchResult(req, "failed", error=f"{type(outcome).__name__}: {outcome}")
            result.reports[source_of[req.key]].results.append(outcome)
            LOG.info("%s", _result_line(outcome, done, total))
            percent = 100.0 * done / total
            # in steps of 5 %: every write to a Prefect server counts on its SQLite default
            if int(percent // 5) > shown or done == total:
                shown = int(percent // 5)
                executor.progress(
                    progress_key, done, total, f"ingest {span}: {done} of {total} requests done"
                )
            if done == total or done % max(1, total // 10) == 0:
                LOG.info("progress: %d of %d requests done (%.0f%%)", done, total, percent)
    for source, report in result.reports.items():
        key, title = REPORT_NAMES[source]
        executor.report(
            key,
            report_markdown(report, f"{title} {span}", config, span),
            f"{title} {span}: {report.summary()}",
        )
        LOG.info("%s: %s", source, headline(report))
        LOG.info("%s: %s", source, report.summary())
    failed = result.failed
    if failed and raise_on_failure:
        listed = "; ".join(f"{r.request.label}: {r.error}" for r in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        names = ", ".join(s for s in chosen if result.reports[s].failed)
        raise IngestFailed(
            f"{len(failed)} of {total} {names} requests for {span} failed: {listed}{more}; the "
            "others are in the cache, so running the ingestion again fetches only these",
            result,
        )
    return result
