"""Prefect flows that fetch ERA5 and CAMS for a date range into a recipe's raw cache.

``ingest_era5``, ``ingest_cams`` (product ``reanalysis`` or ``forecast``) and ``ingest_all``
(all of them in one batch, as ``aircast ingest`` runs them) take ISO dates and a config path
and call the ingest job, :func:`aircast.jobs.ingest.run_ingest`, with Prefect as its executor:
the job decides what is fetched in which order and when a store is given up on (its docstring
lists the rules), so a flow and ``aircast ingest`` behave alike and share the cache: what one
finished the other never fetches again.

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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

from prefect import flow
from prefect.blocks.system import Secret as SecretBlock
from prefect.task_runners import ThreadPoolTaskRunner

from aircast.config import AirCastConfig, load_config
from aircast.dates import parse_range
from aircast.errors import DataStoreError
from aircast.jobs.ingest import IngestFailed, limit_name, run_ingest
from aircast.sandbox.runtime import datastore_endpoints
from aircast.sources.base import Source
from aircast.sources.datastore import Endpoint, Secret, Store
from flows.executor import PrefectExecutor
from flows.report import exit_code

__all__ = ["SECRET_BLOCKS", "ingest_all", "ingest_cams", "ingest_era5", "limit_name"]

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
#: The result key of each source in ``ingest_all``'s summary.
_SUMMARY_NAMES: Mapping[Source, str] = {
    "era5": "era5",
    "eac4": "cams-reanalysis",
    "forecast": "cams-forecast",
}


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


@contextmanager
def store_endpoint(config: AirCastConfig, store: Store) -> Iterator[Endpoint]:
    """The endpoint of ``store`` only, its key looked up as the flows do (Secret block first)."""
    with datastore_endpoints(config, key_resolver=secret_block_key, stores=(store,)) as found:
        yield found[store]


def ingest_with_prefect(
    sources: Sequence[Source], start: str, end: str, config_path: str
) -> dict[Source, dict[str, Any]]:
    """The body of every ingest flow: :func:`aircast.jobs.ingest.run_ingest` with Prefect
    tasks, the server's global limits and artifacts; the keys from Secret blocks first."""
    # everything a person can get wrong is checked before the first request is sent
    first, last = parse_range(start, end)
    config = load_config(config_path)
    try:
        result = run_ingest(
            config,
            sources,
            first,
            last,
            executor=PrefectExecutor(),
            key_resolver=secret_block_key,
        )
    except IngestFailed as exc:
        raise DataStoreError(f"{exc} (see the artifacts of this run)") from None
    return {source: result.summary(source) for source in result.reports}


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
    return ingest_with_prefect(("era5",), start, end, config)["era5"]


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
    source = _CAMS_SOURCES[product]
    return ingest_with_prefect((source,), start, end, config)[source]


@flow(
    persist_result=True,
    name="ingest-all",
    flow_run_name="all {start}..{end}",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS),
)
def ingest_all(
    start: str, end: str, config: str = DEFAULT_CONFIG, cams_forecast: bool = False
) -> dict[str, dict[str, Any]]:
    """Fetch ERA5 and the CAMS reanalysis (and the CAMS forecasts) for ``start``..``end``.

    One batch, as ``aircast ingest`` runs it: ERA5 and CAMS come from different stores, each
    with its own limit, so they are fetched at the same time; each source gets its own
    artifact, and the flow fails after all of them, naming the requests that failed.

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
        The summary of each source, by name (``era5``, ``cams-reanalysis``,
        ``cams-forecast``).
    """
    sources: list[Source] = ["era5", "eac4"] + (["forecast"] if cams_forecast else [])
    summaries = ingest_with_prefect(sources, start, end, config)
    return {_SUMMARY_NAMES[source]: summary for source, summary in summaries.items()}


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
