"""Prefect flows that build and extend a recipe's training store from its raw cache.

``build_training_store`` and ``extend_training_store`` call the store jobs
(:func:`aircast.jobs.build.run_build`, :func:`aircast.jobs.build.run_extend`) with Prefect as
their executor: each stage a task (check the inputs, init, one ``load-part`` task per part,
finalise, verify), the job's report the markdown artifact ``training-store-<recipe>``. The job
decides the stages and what a failure means (its docstring); here is only where parts load:
``store.dask_workers`` at a time as threads of the flow run's process (decoding and
regridding release the GIL most of the time; a local Dask cluster per run would add worker
start-up for no gain), or, when ``store.dask_scheduler`` names a cluster, on that cluster, as
many as it has threads, each ``load-part`` task waiting for its part there.

From a shell (without ``PREFECT_API_URL`` Prefect starts a temporary local server)::

    python -m flows.build build --config configs/demo.yaml
    python -m flows.build extend 2019-07-01 2019-07-03 --config configs/demo.yaml
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from aircast.config import AirCastConfig, load_config
from aircast.dates import parse_range
from aircast.jobs.build import run_build, run_extend, store_facts
from aircast.jobs.executor import DaskExecutor
from aircast.sources.ingest import raw_cache
from aircast.store.reader import open_store
from flows.executor import PrefectExecutor
from flows.report import exit_code

DEFAULT_CONFIG = "configs/demo.yaml"

#: Threads of a build run's task runner: an upper bound only; the parts in flight are bounded
#: by the recipe (``store.dask_workers``, or the cluster's threads).
MAX_THREADS = 32


@contextmanager
def _executor(recipe: AirCastConfig) -> Iterator[PrefectExecutor]:
    """Tasks in this run; their parts on the recipe's Dask cluster when it names one."""
    if not recipe.store.dask_scheduler:
        yield PrefectExecutor()
        return
    with DaskExecutor(recipe.store.dask_scheduler) as cluster:
        yield PrefectExecutor(compute=cluster)


@flow(
    persist_result=True,
    name="build-training-store",
    flow_run_name="build {config}",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS),
)
def build_training_store(config: str = DEFAULT_CONFIG) -> dict[str, Any]:
    """Build (or finish building) the recipe's training store from its raw cache.

    Parameters
    ----------
    config
        Path of the recipe (YAML), relative to the worker's working directory.

    Returns
    -------
    dict
        The store's URL, the parts loaded and already current, and the store's figures.
    """
    recipe = load_config(config)  # a bad recipe fails here, before any task
    with _executor(recipe) as executor:
        result = run_build(recipe, executor=executor)
    store = open_store(recipe.store_url, recipe.store.storage_options)
    return {
        "recipe": recipe.name,
        "config": config,
        "store": recipe.store_url,
        "raw_cache": str(raw_cache(recipe).root.resolve()),
        "parts": result.n_parts,
        "loaded": result.loaded,
        "current": result.skipped,
        "headline": result.headline,
        "summary": store_facts(store),
    }


@flow(persist_result=True, name="extend-training-store", flow_run_name="extend {start}..{end}")
def extend_training_store(config: str, start: str, end: str) -> dict[str, Any]:
    """Append ingested days ``start``..``end`` after the end of the recipe's training store.

    Days the store already holds are skipped; statistics stay those of the training period.

    Parameters
    ----------
    config
        Path of the recipe (YAML), relative to the worker's working directory.
    start, end
        First and last day, inclusive, as YYYY-MM-DD.

    Returns
    -------
    dict
        The days appended (None when there was nothing to do) and the store's figures.
    """
    first, last = parse_range(start, end)  # a bad date fails here, before any task
    recipe = load_config(config)
    outcome = run_extend(recipe, first, last, executor=PrefectExecutor())
    extended = outcome.extended
    store = open_store(recipe.store_url, recipe.store.storage_options)
    return {
        "recipe": recipe.name,
        "config": config,
        "store": recipe.store_url,
        "appended": {
            "first_day": extended.first_day.isoformat() if extended.first_day else None,
            "last_day": extended.last_day.isoformat() if extended.last_day else None,
            "n_times": extended.n_times,
            "n_missing": extended.n_missing,
        },
        "headline": outcome.headline,
        "summary": store_facts(store),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.build``: build or extend a store from a shell; exit 1 if it fails."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.build",
        description="Build or extend a recipe's training store as a Prefect flow run (set "
        "PREFECT_API_URL to use a server; otherwise a temporary one starts).",
    )
    commands = parser.add_subparsers(dest="flow", required=True)
    build = commands.add_parser("build", help="build (or finish) the store from the raw cache")
    build.add_argument("--config", default=DEFAULT_CONFIG, help="recipe (default: %(default)s)")
    extend = commands.add_parser("extend", help="append ingested days after the store's end")
    extend.add_argument("start", help="first day, YYYY-MM-DD")
    extend.add_argument("end", help="last day, YYYY-MM-DD (inclusive)")
    extend.add_argument("--config", default=DEFAULT_CONFIG, help="recipe (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.flow == "build":
        state = build_training_store(args.config, return_state=True)
    else:
        state = extend_training_store(args.config, args.start, args.end, return_state=True)
    return exit_code(state)


if __name__ == "__main__":
    sys.exit(main())
