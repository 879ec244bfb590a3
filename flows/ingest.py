"""Prefect flows that fetch ERA5 and CAMS for a date range into a recipe's raw cache.

``ingest_era5``, ``ingest_cams`` (product ``reanalysis`` or ``forecast``) and ``ingest_all``
(a parent flow running them at the same time, as ``aircast ingest`` does: they talk to
different stores) take ISO dates and a config path, ask the source for its requests
(:func:`aircast.sources.registry.get_source`), and run one task per request through
:func:`aircast.sources.fetch.fetch_request`, so a flow and ``aircast ingest`` share the cache:
what one finished the other never fetches again.

Idempotent
    A request complete in the raw cache is reported ``reused`` and never sent; a second run
    over the same dates fetches nothing and says so in its log and artifact.
Bounded per store
    The real stores queue and throttle per user, so every flow run (and every worker) shares one
    Prefect global concurrency limit per store, ``aircast-cds`` and ``aircast-ads``, created on
    first use with ``ingest.max_concurrent_requests`` slots. An operator may change it in the
    UI; an existing limit is kept. A request holds a slot while its job is in flight, and a
    flow run submits no more requests at a time than its store's limit allows, so none sits
    polling the server for a slot.
Keys
    From a Prefect ``Secret`` block (``aircast-cds-key``, ``aircast-ads-key``) when it exists,
    else from the recipe's ``key_env`` or ``key_file``. A key is held in
    :class:`aircast.sources.datastore.Secret` (masked ``repr``), never passed as a flow
    parameter, never returned by a task, and masked in every log record that reaches Prefect.
    Tasks run in threads (never pickled to another process), which is what lets them receive
    the key in memory.
Operator's view
    A markdown artifact (``ingest-era5``, ``ingest-cams-reanalysis``, ``ingest-cams-forecast``)
    with a row per request (fetched, reused, recovered, retries, quarantined, failed); a
    progress artifact with the same key and ``-progress`` updated as requests finish; one log
    line per request. A flow whose requests failed fails after writing its artifact, listing
    them; what did arrive stays in the cache, so running it again fetches only the rest.

From a shell (without ``PREFECT_API_URL`` Prefect starts a temporary local server)::

    python -m flows.ingest era5 2019-06-01 2019-06-07 --config configs/demo.yaml
    python -m flows.ingest cams 2019-06-01 2019-06-07 --product forecast
    python -m flows.ingest all 2019-06-01 2019-06-07
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.blocks.system import Secret as SecretBlock
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from aircast.config import AirCastConfig, load_config
from aircast.dates import parse_range
from aircast.errors import DataStoreError
from aircast.sandbox.runtime import datastore_endpoints
from aircast.sources.base import Source
from aircast.sources.cache import RawCache
from aircast.sources.datastore import Endpoint, Secret, Store, mask_secrets_in
from aircast.sources.fetch import FetchReport, FetchResult, is_cached
from aircast.sources.ingest import fetch_one, raw_cache
from aircast.sources.registry import get_source
from aircast.sources.requests import SourceRequest
from flows.bounded import run_bounded
from flows.report import exit_code

CamsProduct = Literal["reanalysis", "forecast"]

DEFAULT_CONFIG = "configs/demo.yaml"

#: Prefect Secret blocks consulted for each store's key before key_env and key_file.
SECRET_BLOCKS: Mapping[Store, str] = {"cds": "aircast-cds-key", "ads": "aircast-ads-key"}

#: Threads per flow run: the upper bound of ``ingest.max_concurrent_requests``, so that any
#: configured limit can be filled; the global concurrency limit, not the pool, decides how
#: many requests are in flight (a bounded pool also keeps a year-long range from starting a
#: thread per request).
MAX_THREADS = 32

_CAMS_SOURCES: Mapping[CamsProduct, Source] = {"reanalysis": "eac4", "forecast": "forecast"}
_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def limit_name(store: str) -> str:
    """Name of the global concurrency limit shared by every flow run that talks to ``store``."""
    return f"aircast-{store}"


def secret_block_key(store: Store) -> Secret | None:
    """The key in the store's Prefect Secret block, or None when there is no such block."""
    name = SECRET_BLOCKS[store]
    try:
        block = cast(SecretBlock, SecretBlock.load(name))
    except ValueError:  # Prefect's "Unable to find block document": fall back to env / file
        return None
    # the raw value, not block.get(): that JSON-decodes, which would turn a numeric key into
    # an int
    value = block.value.get_secret_value()
    if not isinstance(value, str) or not value:
        raise DataStoreError(
            f"the Prefect Secret block {name!r} does not hold a key string; save the store's "
            "API key in it as plain text"
        )
    return Secret(value)


def ensure_store_limit(store: str, size: int) -> int:
    """Create the store's global concurrency limit with ``size`` slots if it is missing.

    An existing limit is kept as it is (an operator may have tuned it in the UI). Returns
    the limit in force.
    """
    return ensure_limit(
        limit_name(store),
        size,
        what=f"{store.upper()} requests in flight",
        setting="ingest.max_concurrent_requests",
    )


def create_limit_if_missing(
    client: SyncPrefectClient, name: str, slots: int
) -> GlobalConcurrencyLimitResponse | None:
    """Create the global concurrency limit ``name`` with ``slots`` unless it exists.

    Returns the limit that already existed (kept as it is: an operator may have tuned it), or
    None when this call created it. A limit created by someone else between the look-up and
    the creation counts as existing.
    """
    try:
        return client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        pass
    try:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
    except ObjectAlreadyExists:  # another run (or the bootstrap) created it in between
        return client.read_global_concurrency_limit_by_name(name)
    return None


def ensure_limit(name: str, size: int, *, what: str, setting: str) -> int:
    """Create the global concurrency limit ``name`` with ``size`` slots if it is missing.

    An existing limit is kept as it is (an operator may have tuned it in the UI); ``what``
    says what it bounds and ``setting`` where ``size`` came from, for the log. Returns the
    limit in force.
    """
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        existing = create_limit_if_missing(client, name, size)
    if existing is None:
        logger.info(
            "created the global concurrency limit %r: at most %d %s across all flow runs (%s)",
            name,
            size,
            what,
            setting,
        )
        return size
    if not existing.active:
        logger.warning(
            "the global concurrency limit %r is inactive, so %s are not bounded; activate it "
            "in the Prefect UI (Concurrency) or with `prefect gcl enable %s`",
            name,
            what,
            name,
        )
    elif existing.limit != size:
        logger.info(
            "the global concurrency limit %r keeps its %d slots (%s asks for %d): a limit set "
            "on the server wins; change it with `prefect gcl update %s --limit %d`",
            name,
            existing.limit,
            setting,
            size,
            name,
            size,
        )
    return int(existing.limit)


@contextmanager
def store_endpoint(config: AirCastConfig, store: Store) -> Iterator[Endpoint]:
    """The endpoint of ``store`` only (a sandbox running while the block lasts, if needed).

    Only this store's key is looked up: an ERA5 ingestion must not fail for want of an ADS key.
    """
    with datastore_endpoints(config, key_resolver=secret_block_key, stores=(store,)) as found:
        yield found[store]


@dataclass(frozen=True)
class _FetchContext:
    """What a fetch task needs besides its request; handed over in memory (``quote``), so
    Prefect neither traverses nor records it."""

    config: AirCastConfig
    endpoint: Endpoint = field(repr=False)
    cache: RawCache
    limit: str


@task(name="fetch-request", task_run_name="{label}", cache_policy=NO_CACHE)
def fetch_request_task(label: str, req: SourceRequest, context: _FetchContext) -> FetchResult:
    """Bring one request into the raw cache; never raises for a store's failure.

    ``label`` only names the task run. A request already complete in the cache does not take
    a slot of the store's concurrency limit: it does not talk to the store.
    """
    logger = get_run_logger()
    if is_cached(context.cache, req):
        result = fetch_one(context.config, req, context.endpoint, context.cache)
    else:
        # strict: a missing limit is an error, not a silently unbounded run
        with concurrency(context.limit, occupy=1, strict=True):
            result = fetch_one(context.config, req, context.endpoint, context.cache)
    _log_result(logger, result)
    return result


def _log_result(logger: Any, result: FetchResult) -> None:
    extra = []
    if result.retries:
        extra.append(f"{result.retries} retries")
    if result.quarantined:
        extra.append(f"{result.quarantined} damaged downloads quarantined")
    note = f" ({', '.join(extra)})" if extra else ""
    if result.outcome == "failed":
        logger.warning("failed%s: %s", note, result.error)
    else:
        logger.info("%s%s", result.outcome, note)


def _scrub(text: str, endpoints: Iterable[Endpoint]) -> str:
    """Mask the keys in a text from outside AirCast's own messages (an unexpected error)."""
    for endpoint in endpoints:
        key = endpoint.key.reveal()
        if key:
            text = text.replace(key, "***")
    return text


def headline(report: FetchReport) -> str:
    """One line for the log and the top of the artifact."""
    total = len(report.results)
    if total and report.count("reused") == total:
        return f"nothing fetched: {total} requests already in the cache"
    failed = len(report.failed)
    if failed:
        return (
            f"{failed} of {total} requests failed; run the flow again to retry them (what "
            "arrived is kept and not fetched again)"
        )
    return f"fetched {report.count('fetched')} of {total} requests"


def _markdown(
    report: FetchReport, title: str, config: AirCastConfig, config_path: str, span: str
) -> str:
    first, rest = report.markdown(title).split("\n", 1)
    context = (
        f"Recipe `{config.name}` (`{config_path}`), days {span}, raw cache "
        f"`{config.paths.raw.resolve()}`."
    )
    return "\n".join([first, "", f"**{headline(report)}**", "", context, rest])


def _ingest(
    source: Source, start: str, end: str, config_path: str, *, title: str, key: str
) -> dict[str, Any]:
    """The body of every ingest flow; see the module docstring."""
    logger = get_run_logger()
    mask_secrets_in(*_LOGGERS)
    # everything a person can get wrong is checked before the first request is sent
    first, last = parse_range(start, end)
    config = load_config(config_path)
    requests = get_source(source).requests(config, first, last)
    span = f"{first}..{last}"
    stores: list[Store] = sorted({_store(r) for r in requests})
    limits = {s: ensure_store_limit(s, config.ingest.max_concurrent_requests) for s in stores}
    cache = raw_cache(config)
    removed = cache.clean_tmp()
    if removed:
        logger.info("removed %d partial downloads left by an interrupted run", removed)
    logger.info(
        "%s %s: %d requests into %s (at most %s in flight)",
        source,
        span,
        len(requests),
        cache.root,
        ", ".join(f"{limits[s]} at the {s.upper()}" for s in stores),
    )
    total = len(requests)
    report = FetchReport()
    with ExitStack() as stack:
        # keys first: a missing key fails the run before it shows any progress
        endpoints = {s: stack.enter_context(store_endpoint(config, s)) for s in stores}
        progress_id = cast(
            UUID,
            create_progress_artifact(
                progress=0.0 if total else 100.0,
                key=f"{key}-progress",
                description=f"{title}: 0 of {total} requests done",
            ),
        )
        contexts = {s: _FetchContext(config, endpoints[s], cache, limit_name(s)) for s in stores}

        def submit(req: SourceRequest) -> PrefectFuture[FetchResult]:
            # quote: handed over as is, Prefect neither traverses nor copies it
            handed: Any = quote(contexts[_store(req)])
            return fetch_request_task.submit(req.label, req, handed)

        # no more tasks in flight than the stores' limits allow: a task waiting for a slot
        # polls the server and sleeps for its growing Retry-After, which left slots idle and
        # made the flow ~2x slower than `aircast ingest` (see flows/bounded.py)
        width = min(MAX_THREADS, max(1, sum(limits.values())))
        shown = 0
        for req, future in run_bounded(requests, submit, width):
            try:
                result = future.result()
            except Exception as exc:  # a bug or an orchestration failure, not a store's answer
                error = _scrub(f"{type(exc).__name__}: {exc}", endpoints.values())
                logger.error("%s: the task failed: %s", req.label, error)
                result = FetchResult(req, "failed", error=error)
            report.results.append(result)
            done = len(report.results)
            percent = 100.0 * done / total
            # in steps of 5 %: every write to the Prefect server counts on its SQLite default,
            # where concurrent writers wait for each other's locks
            if int(percent // 5) > shown or done == total:
                shown = int(percent // 5)
                update_progress_artifact(
                    progress_id,
                    progress=percent,
                    description=f"{title}: {done} of {total} requests done",
                )
            if done == total or done % max(1, total // 10) == 0:
                logger.info("progress: %d of %d requests done (%.0f%%)", done, total, percent)
    create_markdown_artifact(
        markdown=_markdown(report, title, config, config_path, span),
        key=key,
        description=f"{title}: {report.summary()}",
    )
    logger.info("%s", headline(report))
    logger.info("%s", report.summary())
    if report.failed:
        listed = "; ".join(f"{r.request.label}: {r.error}" for r in report.failed[:5])
        more = f" (and {len(report.failed) - 5} more)" if len(report.failed) > 5 else ""
        raise DataStoreError(
            f"{len(report.failed)} of {total} {source} requests for {span} failed: "
            f"{listed}{more}; the others are in the cache, so running the flow again fetches "
            f"only these (see the artifact {key!r})"
        )
    return {
        "source": source,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "requests": total,
        "fetched": report.count("fetched"),
        "reused": report.count("reused"),
        "recovered": report.count("recovered"),
        "failed": len(report.failed),
        "retries": report.retries,
        "quarantined": report.quarantined,
        "raw_cache": str(cache.root.resolve()),
    }


def _store(req: SourceRequest) -> Store:
    store = req.store
    assert store in ("cds", "ads"), store
    return store  # type: ignore[return-value]


@flow(
    persist_result=True,
    name="ingest-era5",
    flow_run_name="era5 {start}..{end}",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS),
)
def ingest_era5(start: str, end: str, config: str = DEFAULT_CONFIG) -> dict[str, Any]:
    """Fetch ERA5 (single and pressure levels, static fields) for ``start``..``end``.

    Parameters
    ----------
    start, end
        First and last day, inclusive, as YYYY-MM-DD.
    config
        Path of the recipe (YAML), relative to the worker's working directory.

    Returns
    -------
    dict
        Counts per outcome and the raw cache's path.
    """
    return _ingest("era5", start, end, config, title=f"ERA5 {start}..{end}", key="ingest-era5")


@flow(
    persist_result=True,
    name="ingest-cams",
    flow_run_name="cams-{product} {start}..{end}",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS),
)
def ingest_cams(
    start: str,
    end: str,
    config: str = DEFAULT_CONFIG,
    product: CamsProduct = "reanalysis",
) -> dict[str, Any]:
    """Fetch CAMS for ``start``..``end``: the EAC4 reanalysis, or the forecasts run on those days.

    Parameters
    ----------
    start, end
        First and last day, inclusive, as YYYY-MM-DD.
    config
        Path of the recipe (YAML), relative to the worker's working directory.
    product
        ``reanalysis`` (EAC4, the training data) or ``forecast`` (the CAMS global forecasts:
        initial conditions and the baseline).

    Returns
    -------
    dict
        Counts per outcome and the raw cache's path.
    """
    if product not in _CAMS_SOURCES:  # Prefect validates; a direct .fn call does not
        raise ValueError(f"product = {product!r}; choose 'reanalysis' or 'forecast'")
    return _ingest(
        _CAMS_SOURCES[product],
        start,
        end,
        config,
        title=f"CAMS {product} {start}..{end}",
        key=f"ingest-cams-{product}",
    )


@task(name="ingest-child", task_run_name="{name}", cache_policy=NO_CACHE)
def _ingest_child(
    name: str, start: str, end: str, config: str, product: CamsProduct | None
) -> dict[str, Any]:
    """Run one child flow of ``ingest_all``; a task only so that the children run at once
    (Prefect runs a flow called from a flow in the caller's thread). Fails as the child does."""
    if product is None:
        return ingest_era5(start, end, config)
    return ingest_cams(start, end, config, product)


@flow(
    persist_result=True,
    name="ingest-all",
    flow_run_name="all {start}..{end}",
    task_runner=ThreadPoolTaskRunner(max_workers=3),
)
def ingest_all(
    start: str, end: str, config: str = DEFAULT_CONFIG, cams_forecast: bool = False
) -> dict[str, dict[str, Any]]:
    """Fetch ERA5 and the CAMS reanalysis (and the CAMS forecasts) for ``start``..``end``.

    Each runs as its own child flow with its own artifact, all at the same time (ERA5 and CAMS
    come from different stores, each with its own limit); all of them run to their end even
    when one fails, and this flow fails after them, naming the ones that failed.

    Parameters
    ----------
    start, end
        First and last day, inclusive, as YYYY-MM-DD.
    config
        Path of the recipe (YAML), relative to the worker's working directory.
    cams_forecast
        Also fetch the CAMS forecasts run on those days.

    Returns
    -------
    dict
        The summary of each child flow, by name (``era5``, ``cams-reanalysis``,
        ``cams-forecast``).
    """
    parse_range(start, end)  # fail before any child flow starts
    load_config(config)
    children: dict[str, CamsProduct | None] = {"era5": None, "cams-reanalysis": "reanalysis"}
    if cams_forecast:
        children["cams-forecast"] = "forecast"
    futures = {
        name: _ingest_child.submit(name, start, end, config, product)
        for name, product in children.items()
    }
    summaries: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    for name, future in futures.items():
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            failures.append(f"{name}: {type(outcome).__name__}: {outcome}")
        else:
            summaries[name] = outcome
    if failures:
        raise DataStoreError(
            f"{len(failures)} of {len(futures)} ingestions failed: " + " | ".join(failures)
        )
    return summaries


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.ingest``: run one ingest flow from a shell; exit 1 if it fails."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.ingest",
        description="Fetch ERA5 / CAMS for a date range into a recipe's raw cache, as a Prefect "
        "flow run (set PREFECT_API_URL to use a server; otherwise a temporary one starts).",
    )
    parser.add_argument("flow", choices=("era5", "cams", "all"))
    parser.add_argument("start", help="first day, YYYY-MM-DD")
    parser.add_argument("end", help="last day, YYYY-MM-DD (inclusive)")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="recipe (default: %(default)s)")
    parser.add_argument(
        "--product",
        choices=tuple(_CAMS_SOURCES),
        default="reanalysis",
        help="with 'cams': which CAMS product (default: %(default)s)",
    )
    parser.add_argument(
        "--cams-forecast", action="store_true", help="with 'all': also the CAMS forecasts"
    )
    args = parser.parse_args(argv)
    if args.flow == "era5":
        state = ingest_era5(args.start, args.end, args.config, return_state=True)
    elif args.flow == "cams":
        state = ingest_cams(args.start, args.end, args.config, args.product, return_state=True)
    else:
        state = ingest_all(args.start, args.end, args.config, args.cams_forecast, return_state=True)
    return exit_code(state)


if __name__ == "__main__":
    sys.exit(main())
