"""Prefect flows that build and extend a recipe's training store from its raw cache.

``build_training_store`` runs the stages of :mod:`aircast.store.build` as tasks: check the
inputs, init, one ``load-part`` task per part, finalise, verify. ``extend_training_store``
appends days after the store's end. Both take a config path (and ISO dates) and hand their
tasks only paths, part indices and dates; every array stays inside :mod:`aircast.store`.

Fail early
    The recipe is validated and the raw cache checked for every day of the recipe before the
    store is created or touched: a day that was never ingested fails the run naming the days
    and the ``aircast ingest`` command that fetches them.
Idempotent
    A part that is complete and whose raw inputs are unchanged since it was loaded (the digest
    :func:`aircast.store.build.part_statuses` compares) is not loaded again: a second run
    loads nothing and says "N parts already current". A run killed half-way is finished by the
    next one.
Parallel
    Parts touch disjoint chunks, so they load at the same time: ``store.dask_workers`` of them
    as threads of the flow run's process (decoding and regridding release the GIL for most of
    their time; a local Dask cluster per run would add worker start-up for no gain), or, when
    ``store.dask_scheduler`` names a cluster, on that cluster, as many as it has threads, each
    ``load-part`` task waiting for its part there.
Operator's view
    A markdown artifact ``training-store-<recipe>`` with the store's summary (what
    ``aircast store inspect`` prints) and a table of the parts: loaded, already current,
    failed, and their missing times. A run whose parts failed writes it, then fails naming
    them; the loaded parts stay, so running it again loads only the rest.

From a shell (without ``PREFECT_API_URL`` Prefect starts a temporary local server)::

    python -m flows.build build --config configs/demo.yaml
    python -m flows.build extend 2019-07-01 2019-07-03 --config configs/demo.yaml
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from aircast.config import AirCastConfig, load_config
from aircast.dates import parse_range
from aircast.sources.ingest import raw_cache
from aircast.store.build import (
    extend_store,
    finalise_store,
    init_store,
    load_part,
    part_statuses,
    verify_store,
)
from aircast.store.inputs import check_inputs
from aircast.store.reader import TrainingStore, open_store
from aircast.store.schema import StoreError, iso_hour
from flows.bounded import run_bounded
from flows.report import artifact_key, exit_code

DEFAULT_CONFIG = "configs/demo.yaml"

#: Threads of a build run's task runner: an upper bound only; the parts in flight are bounded
#: by the recipe (``store.dask_workers``, or the cluster's threads) through run_bounded.
MAX_THREADS = 32


# ---------------------------------------------------------------------------------------------
# tasks: each loads the recipe from its path, calls one stage, returns a small summary


@task(name="check-inputs", cache_policy=NO_CACHE)
def check_inputs_task(config: str) -> str:
    """Fail unless the raw cache holds (or the stores failed) every input of the recipe."""
    recipe = load_config(config)
    check_inputs(recipe)
    return str(raw_cache(recipe).root.resolve())


@task(name="init-store", cache_policy=NO_CACHE)
def init_store_task(config: str) -> list[dict[str, Any]]:
    """Create the store (or find the one a previous run created); return its parts' status."""
    recipe = load_config(config)
    init_store(recipe)
    return [
        {
            "index": s.index,
            "first_day": s.first_day.isoformat(),
            "last_day": s.last_day.isoformat(),
            "current": s.current,
            "n_missing": s.n_missing,
        }
        for s in part_statuses(recipe)
    ]


@dataclass(frozen=True)
class _Cluster:
    """A Dask client to run parts on, handed to the tasks in memory (``quote``)."""

    client: Any
    tag: str


@task(name="load-part", task_run_name="{label}", cache_policy=NO_CACHE)
def load_part_task(
    config: str, index: int, label: str, cluster: _Cluster | None = None
) -> dict[str, Any]:
    """Load part ``index`` of the recipe into its store; ``label`` only names the task run."""
    logger = get_run_logger()
    recipe = load_config(config)
    if cluster is None:
        part = load_part(recipe, index)
    else:
        # the worker gets the validated recipe and the index, as build_store sends them
        future = cluster.client.submit(
            load_part, recipe, index, key=f"aircast-load-part-{index:04d}-{cluster.tag}"
        )
        part = future.result()
    missing = f", {part.n_missing} missing times" if part.n_missing else ""
    logger.info("loaded %s..%s in %.1f s%s", part.first_day, part.last_day, part.seconds, missing)
    for note in part.notes:
        logger.warning("not delivered: %s", note)
    return {
        "index": part.index,
        "first_day": part.first_day.isoformat(),
        "last_day": part.last_day.isoformat(),
        "n_times": part.n_times,
        "n_missing": part.n_missing,
        "seconds": round(part.seconds, 2),
        "notes": list(part.notes),
    }


@task(name="finalise-store", cache_policy=NO_CACHE)
def finalise_store_task(config: str) -> dict[str, int]:
    """Merge the parts' statistics, write them and the missing times, mark the store complete."""
    result = finalise_store(load_config(config))
    return {"n_missing": result.n_missing, "training_values": result.training_values}


@task(name="verify-store", cache_policy=NO_CACHE)
def verify_store_task(config: str) -> dict[str, int]:
    """Check the finalised store against its recipe and the contract."""
    result = verify_store(load_config(config))
    return {"n_times": result.n_times, "n_missing": result.n_missing}


@task(name="extend-store", cache_policy=NO_CACHE)
def extend_store_task(config: str, start: str, end: str) -> dict[str, Any]:
    """Append days ``start``..``end`` (ISO dates, already validated) after the store's end."""
    first, last = parse_range(start, end)
    result = extend_store(load_config(config), first, last)
    return {
        "first_day": result.first_day.isoformat() if result.first_day else None,
        "last_day": result.last_day.isoformat() if result.last_day else None,
        "n_times": result.n_times,
        "n_missing": result.n_missing,
    }


# ---------------------------------------------------------------------------------------------
# what the flows report


def store_facts(store: TrainingStore) -> dict[str, Any]:
    """A store's headline figures as plain values (for flow results and the demo's report)."""
    times, missing = store.times, store.missing_times
    days = sorted({str(t)[:10] for t in missing.astype("datetime64[D]")})
    size = store.size_on_disk()
    return {
        "url": store.url,
        "state": str(store.attrs["state"]),
        "first_time": iso_hour(times[0]),
        "last_time": iso_hour(times[-1]),
        "n_times": int(times.size),
        "step_hours": int(store.attrs["time_axis"]["step_hours"]),
        "channels": list(store.channel_names),
        "n_missing_times": int(missing.size),
        "missing_days": days,
        "size_bytes": size,
        "size": _size_text(size),
    }


def _size_text(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _open(recipe: AirCastConfig) -> TrainingStore:
    return open_store(recipe.store_url, recipe.store.storage_options, require_complete=False)


def headline(parts: Sequence[dict[str, Any]]) -> str:
    """One line for the log and the top of the artifact."""
    total = len(parts)
    counts = {
        outcome: sum(p["outcome"] == outcome for p in parts)
        for outcome in ("loaded", "current", "failed")
    }
    if total and counts["current"] == total:
        return f"nothing loaded: {total} parts already current"
    text = f"{total} parts: {counts['loaded']} loaded, {counts['current']} already current"
    if counts["failed"]:
        text += (
            f", {counts['failed']} failed; run the flow again to load them (the others are "
            "kept and not loaded again)"
        )
    return text


def _parts_table(parts: Sequence[dict[str, Any]]) -> str:
    rows = [
        "| part | days | outcome | missing times | seconds | notes |",
        "|---:|---|---|---:|---:|---|",
    ]
    shown = {"loaded": "loaded", "current": "already current", "failed": "failed"}
    for p in parts:
        missing = "" if p.get("n_missing") is None else str(p["n_missing"])
        seconds = f"{p['seconds']:.1f}" if p.get("seconds") is not None else ""
        notes = "; ".join(p.get("notes", [])).replace("|", "\\|")
        rows.append(
            f"| {p['index']} | {p['first_day']}..{p['last_day']} | {shown[p['outcome']]} | "
            f"{missing} | {seconds} | {notes} |"
        )
    return "\n".join(rows)


def _publish(
    recipe: AirCastConfig,
    config: str,
    title: str,
    lead: str,
    summary: str,
    parts: Sequence[dict[str, Any]] = (),
) -> None:
    lines = [
        f"# {title}",
        "",
        f"**{lead}**",
        "",
        f"Recipe `{recipe.name}` (`{config}`), store `{recipe.store_url}`, raw cache "
        f"`{raw_cache(recipe).root.resolve()}`.",
        "",
        "```text",
        summary,
        "```",
    ]
    if parts:
        lines += ["", "## Parts", "", _parts_table(parts)]
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=artifact_key("training-store", recipe.name),
        description=f"{title}: {lead}",
    )


# ---------------------------------------------------------------------------------------------
# the flows


@contextmanager
def _cluster(recipe: AirCastConfig) -> Iterator[tuple[_Cluster | None, int]]:
    """Where parts load and how many at once: the recipe's Dask cluster, else local threads."""
    address = recipe.store.dask_scheduler
    if not address:
        yield None, recipe.store.dask_workers
        return
    from dask.distributed import Client

    client = Client(address)  # type: ignore[no-untyped-call]
    try:
        threads = sum(client.nthreads().values()) or 1  # type: ignore[no-untyped-call]
        get_run_logger().info("parts load on the Dask cluster at %s (%d threads)", address, threads)
        yield _Cluster(client, uuid.uuid4().hex[:8]), threads
    finally:
        client.close()  # type: ignore[no-untyped-call]


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
        The store's URL, the parts loaded and already current, and :func:`store_facts`.
    """
    logger = get_run_logger()
    recipe = load_config(config)  # a bad recipe fails here, before any task
    raw = check_inputs_task(config)  # a day never ingested fails here, before the store exists
    statuses = init_store_task(config)
    todo = [s for s in statuses if not s["current"]]
    current = {s["index"]: {**s, "outcome": "current"} for s in statuses if s["current"]}
    logger.info(
        "store %s from %s: %d parts of %d days; %d to load, %d already current",
        recipe.store_url,
        raw,
        len(statuses),
        recipe.store.part_days,
        len(todo),
        len(current),
    )
    done: dict[int, dict[str, Any]] = dict(current)
    failures: list[str] = []
    with _cluster(recipe) as (cluster, width):
        handed: Any = quote(cluster)  # a client: handed over as is, never traversed

        def submit(status: dict[str, Any]) -> Any:
            label = f"part {status['index']} {status['first_day']}..{status['last_day']}"
            return load_part_task.submit(config, status["index"], label, handed)

        for finished, (status, future) in enumerate(run_bounded(todo, submit, width), 1):
            index = status["index"]
            outcome = future.result(raise_on_failure=False)
            if isinstance(outcome, BaseException):
                error = f"{type(outcome).__name__}: {outcome}"
                failures.append(
                    f"part {index} ({status['first_day']}..{status['last_day']}): {error}"
                )
                done[index] = {**status, "outcome": "failed", "n_missing": None, "notes": [error]}
                logger.error("part %d failed: %s", index, error)
            else:
                done[index] = {**outcome, "outcome": "loaded"}
            logger.info("progress: %d of %d parts loaded", finished, len(todo))
    parts = [done[s["index"]] for s in statuses]
    lead = headline(parts)
    title = f"Training store {recipe.name}"
    if failures:
        _publish(recipe, config, title, lead, _open(recipe).summary(), parts)
        raise StoreError(
            f"{len(failures)} of {len(todo)} parts failed: {'; '.join(failures[:5])}"
            + (f" (and {len(failures) - 5} more)" if len(failures) > 5 else "")
            + "; the other parts are in the store, so running the flow again loads only these "
            f"(see the artifact {artifact_key('training-store', recipe.name)!r})"
        )
    finalise_store_task(config)
    verify_store_task(config)
    store = _open(recipe)
    _publish(recipe, config, title, lead, store.summary(), parts)
    logger.info("%s; store complete and verified: %s", lead, recipe.store_url)
    return {
        "recipe": recipe.name,
        "config": config,
        "store": recipe.store_url,
        "raw_cache": raw,
        "parts": len(parts),
        "loaded": [p["index"] for p in parts if p["outcome"] == "loaded"],
        "current": [p["index"] for p in parts if p["outcome"] == "current"],
        "headline": lead,
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
        The days appended (None when there was nothing to do) and :func:`store_facts`.
    """
    logger = get_run_logger()
    first, last = parse_range(start, end)  # a bad date fails here, before any task
    recipe = load_config(config)
    extended = extend_store_task(config, first.isoformat(), last.isoformat())
    verify_store_task(config)
    if extended["first_day"] is None:
        lead = f"nothing to do: the store already holds every day up to {last}"
    else:
        lead = (
            f"appended {extended['first_day']}..{extended['last_day']}: {extended['n_times']} "
            f"times, {extended['n_missing']} missing"
        )
    store = _open(recipe)
    _publish(recipe, config, f"Training store {recipe.name}", lead, store.summary())
    logger.info("%s (%s)", lead, recipe.store_url)
    return {
        "recipe": recipe.name,
        "config": config,
        "store": recipe.store_url,
        "appended": extended,
        "headline": lead,
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
