"""The store jobs: build a recipe's training store from its raw cache, and extend it by days.

``aircast store build`` and the ``build-training-store`` flow both call :func:`run_build`; the
executor decides where the parts load (this process, a Dask cluster, Prefect tasks). The
stages are those of :mod:`aircast.store.build`, in this order:

1. **check the inputs**: the raw cache holds every input of the recipe (or the store said it
   has no data for it); a day never ingested, or one that could not be fetched (a refused
   key, an unreachable store, retries exhausted, a failed or rejected job), fails here, before
   the store is created or touched, naming the requests and the ``aircast ingest`` command
   that fetches them (``accept_holes`` builds such days as missing times, with the reason);
2. **init** the store (or find the one an earlier run created) and ask which parts are
   current: complete, and their raw inputs unchanged since they were loaded;
3. **load** the other parts, side by side (they touch disjoint chunks); a failed part does not
   stop the others, and the job fails after the report, naming the failed parts: the loaded
   ones stay, so running it again loads only the rest;
4. **finalise** (statistics over the training period, missing times, the complete mark) and
   **verify** the store against its recipe and the contract.

Every stage is idempotent: a second run loads nothing and says "N parts already current".
:func:`run_extend` appends days after the store's end and verifies it.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aircast.config import AirCastConfig
from aircast.jobs.executor import DaskExecutor, Executor, ThreadExecutor, report_key
from aircast.sources.ingest import raw_cache
from aircast.store.build import (
    ExtendResult,
    PartResult,
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

LOG = logging.getLogger(__name__)


@dataclass
class BuildResult:
    """What :func:`run_build` did (seconds per stage are for people, not for the store)."""

    url: str
    n_parts: int
    loaded: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    parts: list[dict[str, Any]] = field(default_factory=list)
    n_missing: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    workers: int = 0

    @property
    def headline(self) -> str:
        return headline(self.parts)


@contextmanager
def build_executor(config: AirCastConfig, *, serial: bool = False) -> Iterator[Executor]:
    """Where a recipe's parts load by default: one by one in this process (``serial``), else
    on the Dask scheduler at ``store.dask_scheduler``, else on a local cluster of
    ``store.dask_workers`` processes started for the build."""
    if serial:
        yield ThreadExecutor(max_workers=1)
        return
    with DaskExecutor(config.store.dask_scheduler, workers=config.store.dask_workers) as dask:
        yield dask


def store_facts(store: TrainingStore) -> dict[str, Any]:
    """A store's headline figures as plain values (for results and the demo's report)."""
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


def headline(parts: Sequence[dict[str, Any]]) -> str:
    """One line for the log and the top of the report."""
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
            f", {counts['failed']} failed; run the build again to load them (the others are "
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


def _report(
    executor: Executor,
    config: AirCastConfig,
    lead: str,
    parts: Sequence[dict[str, Any]] = (),
) -> None:
    title = f"Training store {config.name}"
    store = open_store(config.store_url, config.store.storage_options, require_complete=False)
    lines = [
        f"# {title}",
        "",
        f"**{lead}**",
        "",
        f"Recipe `{config.name}`, store `{config.store_url}`, raw cache "
        f"`{raw_cache(config).root.resolve()}`.",
        "",
        "```text",
        store.summary(),
        "```",
    ]
    if parts:
        lines += ["", "## Parts", "", _parts_table(parts)]
    executor.report(report_key("training-store", config.name), "\n".join(lines), f"{title}: {lead}")


def _part_record(part: PartResult) -> dict[str, Any]:
    return {
        "index": part.index,
        "first_day": part.first_day.isoformat(),
        "last_day": part.last_day.isoformat(),
        "n_times": part.n_times,
        "n_missing": part.n_missing,
        "seconds": round(part.seconds, 2),
        "notes": list(part.notes),
        "outcome": "loaded",
    }


def run_build(
    config: AirCastConfig,
    *,
    executor: Executor | None = None,
    resume: bool = True,
    accept_holes: bool = False,
) -> BuildResult:
    """Build (or finish building) the recipe's training store; see the module docstring.

    Parameters
    ----------
    executor
        Where the parts load (default: one by one in this process; see
        :func:`build_executor`). Steps get the recipe and a part index, never arrays.
    resume
        Skip parts that are complete and whose raw inputs are unchanged; False reloads all.
    accept_holes
        Build inputs that could not be fetched as missing times (each with its reason in
        ``missing_times``) instead of stopping.

    Raises
    ------
    NotIngestedError, GridError
        Before the store is created or changed (:class:`~aircast.store.inputs.HolesError`
        for inputs that could not be fetched).
    StoreError
        When parts failed (after the report; the loaded ones stay).
    """
    executor = executor or ThreadExecutor(max_workers=1)
    clock = time.perf_counter()
    executor.run("check-inputs", check_inputs, config, accept_holes=accept_holes)
    executor.run("init-store", init_store, config)
    statuses = executor.run("part-statuses", part_statuses, config)
    todo = [s for s in statuses if not (resume and s.current)]
    result = BuildResult(config.store_url, len(statuses))
    result.skipped = [s.index for s in statuses if s not in todo]
    done: dict[int, dict[str, Any]] = {
        s.index: {
            "index": s.index,
            "first_day": s.first_day.isoformat(),
            "last_day": s.last_day.isoformat(),
            "n_missing": s.n_missing,
            "outcome": "current",
        }
        for s in statuses
        if s.index in result.skipped
    }
    result.seconds["init"] = time.perf_counter() - clock
    LOG.info(
        "store %s from %s: %d parts of %d days; %d to load, %d already current",
        config.store_url,
        raw_cache(config).root.resolve(),
        len(statuses),
        config.store.part_days,
        len(todo),
        len(result.skipped),
    )
    clock = time.perf_counter()
    describe = getattr(executor, "description", None)
    if todo and describe:
        LOG.info("%s", describe)
    result.workers = int(getattr(executor, "width", 1)) if todo else 0
    failures: list[str] = []
    for finished, (status, outcome) in enumerate(
        executor.map(
            "load-part",
            functools.partial(load_part, config, accept_holes=accept_holes),
            [s.index for s in todo],
            width=config.store.dask_workers,
            label=lambda i: f"part {i} {statuses[i].first_day}..{statuses[i].last_day}",
        ),
        1,
    ):
        first, last = statuses[status].first_day, statuses[status].last_day
        if isinstance(outcome, BaseException):
            error = f"{type(outcome).__name__}: {outcome}"
            failures.append(f"part {status} ({first}..{last}): {error}")
            done[status] = {
                "index": status,
                "first_day": first.isoformat(),
                "last_day": last.isoformat(),
                "outcome": "failed",
                "n_missing": None,
                "notes": [error],
            }
            LOG.error("  [%d/%d] part %d failed: %s", finished, len(todo), status, error)
            continue
        done[status] = _part_record(outcome)
        result.loaded.append(status)
        missing = f", {outcome.n_missing} missing times" if outcome.n_missing else ""
        LOG.info(
            "  [%d/%d] part %d (%s..%s) in %.1f s%s",
            finished,
            len(todo),
            status,
            first,
            last,
            outcome.seconds,
            missing,
        )
        for note in outcome.notes:
            LOG.warning("not delivered: %s", note)
    result.loaded.sort()
    result.parts = [done[s.index] for s in statuses]
    result.seconds["parts"] = time.perf_counter() - clock
    if failures:
        _report(executor, config, result.headline, result.parts)
        raise StoreError(
            f"{len(failures)} of {len(todo)} parts failed: {'; '.join(failures[:5])}"
            + (f" (and {len(failures) - 5} more)" if len(failures) > 5 else "")
            + "; the other parts are in the store, so running the build again loads only these "
            f"(see the report {report_key('training-store', config.name)!r})"
        )
    clock = time.perf_counter()
    final = executor.run("finalise-store", finalise_store, config)
    result.n_missing = final.n_missing
    result.seconds["finalise"] = time.perf_counter() - clock
    clock = time.perf_counter()
    executor.run("verify-store", verify_store, config)
    result.seconds["verify"] = time.perf_counter() - clock
    _report(executor, config, result.headline, result.parts)
    LOG.info(
        "%s; store complete and verified: %d missing times (%s)",
        result.headline,
        final.n_missing,
        config.store_url,
    )
    return result


@dataclass(frozen=True)
class ExtendOutcome:
    """What :func:`run_extend` appended (``extended.first_day`` None: nothing to do)."""

    extended: ExtendResult
    headline: str


def run_extend(
    config: AirCastConfig,
    start: dt.date,
    end: dt.date,
    *,
    executor: Executor | None = None,
    accept_holes: bool = False,
) -> ExtendOutcome:
    """Append ingested days ``start``..``end`` after the store's end, then verify the store.

    Days the store already holds are skipped; statistics stay those of the training period.
    Inputs that could not be fetched stop it, unless ``accept_holes`` (see :func:`run_build`).
    """
    executor = executor or ThreadExecutor(max_workers=1)
    extended = executor.run(
        "extend-store", extend_store, config, start, end, accept_holes=accept_holes
    )
    executor.run("verify-store", verify_store, config)
    if extended.first_day is None:
        lead = f"nothing to do: the store already holds every day up to {end}"
    else:
        lead = (
            f"appended {extended.first_day}..{extended.last_day}: {extended.n_times} times, "
            f"{extended.n_missing} missing"
        )
    _report(executor, config, lead)
    LOG.info("%s (%s)", lead, config.store_url)
    return ExtendOutcome(extended, lead)
