"""How a job's steps are run: the one thing that differs between the command line and Prefect.

A job runner (:mod:`aircast.jobs`) decides *what* is done in which order; an executor decides
*how* each step runs: in this thread, on a pool of threads, on a Dask cluster, or as a Prefect
task with its own run in the UI. The runner hands the executor plain functions and small
arguments (a validated recipe, a request, a part index) and gets back their results, so one
rule written in a runner holds for every face that calls it.

The protocol has four kinds of call:

``run(name, fn, *args)``
    One step, in order; its exception propagates.
``map(name, fn, items, width=..., label=...)``
    ``fn(item)`` for every item, at most ``width`` unfinished at a time, submitted in the
    items' order; yields ``(item, outcome)`` as each finishes, ``outcome`` being the result or
    the exception it raised (a runner decides whether one failure stops the rest).
``ensure_limit(name, size, ...)`` / ``slot(name)``
    A named concurrency limit shared by everything that talks to one resource (a data store,
    a forecast store): created with ``size`` slots when missing, an existing one kept (an
    operator may have tuned it); ``slot`` holds one slot while its block runs.
``report(key, markdown, description)``, ``table(key, rows, description)``,
``progress(key, done, total, description)``
    What an operator reads: a Prefect artifact, or nothing more than the log on a terminal.

Everything a runner says goes through :mod:`logging` (logger ``aircast.…``); a terminal prints
it, and Prefect's executor forwards it to the run's log.

This module never imports Prefect: :mod:`flows.executor` implements the protocol with it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, TypeVar

LOG = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
F = TypeVar("F")

#: What :meth:`Executor.map` yields for one item: its result, or the exception it raised.
Outcome = Any


class Executor(Protocol):
    """How a job runner's steps are run; see the module docstring."""

    def run(self, name: str, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run one step named ``name`` and return its result (its exception propagates)."""
        ...

    def map(
        self,
        name: str,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        width: int,
        label: Callable[[T], str] | None = None,
    ) -> Iterator[tuple[T, R | BaseException]]:
        """``fn(item)`` for each item, ``width`` at most in flight; yields as they finish."""
        ...

    def ensure_limit(self, name: str, size: int, *, what: str, setting: str) -> int:
        """Create the concurrency limit ``name`` with ``size`` slots unless it exists; return
        the slots in force (``what`` it bounds and the ``setting`` it came from, for the log)."""
        ...

    def slot(self, name: str) -> AbstractContextManager[None]:
        """Hold one slot of the limit ``name`` (made by :meth:`ensure_limit`) while in use."""
        ...

    def report(self, key: str, markdown: str, description: str) -> None:
        """Publish a markdown report for an operator under ``key``."""
        ...

    def table(self, key: str, rows: list[dict[str, str]], description: str) -> None:
        """Publish a table (one mapping per row, the same keys in each) under ``key``."""
        ...

    def progress(self, key: str, done: int, total: int, description: str) -> None:
        """Say how far a long step has come."""
        ...


def report_key(kind: str, recipe_name: str) -> str:
    """``<kind>-<recipe>`` in the characters Prefect allows in a key (lowercase, digits, dashes).

    One key per kind of report and recipe, so that the UI shows each report's history.
    """
    slug = re.sub(r"[^a-z0-9-]+", "-", recipe_name.lower()).strip("-") or "recipe"
    return f"{kind}-{slug}"


def markdown_table(rows: list[dict[str, str]]) -> str:
    """Rows (mappings with the same keys) as a markdown table."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _first_done(futures: list[Any]) -> Any:
    done, _ = wait(futures, return_when=FIRST_COMPLETED)
    return next(iter(done))


def bounded(
    items: Iterable[T],
    submit: Callable[[T], F],
    width: int,
    first_done: Callable[[list[F]], F] = _first_done,
) -> Iterator[tuple[T, F]]:
    """Submit one future per item, at most ``width`` unfinished, in the items' order.

    The next item is submitted only when one finishes, so nothing waits for a slot (or a
    thread) long before it runs and the work stays in the order it was planned. (Prefect tasks
    waiting for a slot of a global limit poll the server, which answers with a growing
    ``Retry-After``, so slots stay idle while they sleep; bounded submission keeps none
    waiting.) ``first_done`` waits for one of the futures to finish: concurrent.futures' by
    default; Prefect's executor passes its own.

    Yields
    ------
    tuple
        ``(item, future)`` of each as it finishes (done: ask its result without waiting).
    """
    if width < 1:
        raise ValueError(f"width = {width}; at least one step must be allowed in flight")
    waiting = iter(items)
    running: dict[F, T] = {}

    def fill() -> None:
        for item in waiting:
            running[submit(item)] = item
            if len(running) >= width:
                return

    fill()
    while running:
        future = first_done(list(running))
        item = running.pop(future)
        fill()  # before handing this one back, so the next starts meanwhile
        yield item, future


def outcome_of(future: Future[Any]) -> Any:
    """A finished future's result, or the exception it raised."""
    exc = future.exception()
    return exc if exc is not None else future.result()


class ThreadExecutor:
    """Steps in this process: ``run`` inline, ``map`` on a pool of threads (one: in order).

    Limits are semaphores of the executor, so jobs run with one executor (the dates of a
    backfill, the ingest inside a daily forecast) share them, as Prefect's global limits are
    shared across runs. Reports go to ``on_report`` (a terminal prints the ones it shows),
    progress to the log.
    """

    def __init__(
        self,
        max_workers: int = 32,
        *,
        on_report: Callable[[str, str], None] | None = None,
    ) -> None:
        self.max_workers = max_workers
        self.on_report = on_report
        self._limits: dict[str, threading.BoundedSemaphore] = {}
        self._sizes: dict[str, int] = {}
        self._guard = threading.Lock()

    def run(self, name: str, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        return fn(*args, **kwargs)

    def map(
        self,
        name: str,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        width: int,
        label: Callable[[T], str] | None = None,
    ) -> Iterator[tuple[T, R | BaseException]]:
        width = max(1, min(width, self.max_workers))
        if width == 1:
            for item in items:
                try:
                    yield item, fn(item)
                except Exception as exc:  # handed to the runner, which decides
                    yield item, exc
            return
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix=name) as pool:
            for item, future in bounded(items, lambda item: pool.submit(fn, item), width):
                yield item, outcome_of(future)

    def ensure_limit(self, name: str, size: int, *, what: str, setting: str) -> int:
        with self._guard:
            if name not in self._limits:
                self._limits[name] = threading.BoundedSemaphore(size)
                self._sizes[name] = size
            return self._sizes[name]

    @contextmanager
    def slot(self, name: str) -> Iterator[None]:
        with self._guard:
            semaphore = self._limits.get(name)
        if semaphore is None:
            raise KeyError(f"no concurrency limit {name!r}: ensure_limit() makes it first")
        with semaphore:
            yield

    def report(self, key: str, markdown: str, description: str) -> None:
        LOG.debug("report %s: %s", key, description)
        if self.on_report is not None:
            self.on_report(key, markdown)

    def table(self, key: str, rows: list[dict[str, str]], description: str) -> None:
        self.report(key, markdown_table(rows), description)

    def progress(self, key: str, done: int, total: int, description: str) -> None:
        LOG.debug("progress %s: %d of %d", key, done, total)


class DaskExecutor(ThreadExecutor):
    """``map`` on a Dask distributed cluster; everything else as :class:`ThreadExecutor`.

    ``fn`` and the items travel to the workers, so they must pickle (a module-level function
    and a validated recipe, a part index: never an open client or a key). The cluster is the
    scheduler at ``address`` (a real cluster), else a local cluster of ``workers`` processes
    started for the job and closed with it.
    """

    def __init__(self, address: str | None = None, *, workers: int = 2) -> None:
        super().__init__()
        self.address = address
        self.workers = workers
        self._client: Any = None
        self._owned: list[Any] = []

    def __enter__(self) -> DaskExecutor:
        from dask.distributed import Client, LocalCluster

        if self.address:
            self._client = Client(self.address)  # type: ignore[no-untyped-call]
        else:
            cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=self.workers,
                threads_per_worker=1,  # decoding and regridding hold the GIL part of the time
                processes=True,
                dashboard_address=":0",  # any free port: 8787 may be taken
            )
            self._owned.append(cluster)
            self._client = Client(cluster)  # type: ignore[no-untyped-call]
        self._owned.insert(0, self._client)
        return self

    def __exit__(self, *exc: object) -> None:
        for item in self._owned:
            item.close()
        self._owned.clear()
        self._client = None

    @property
    def width(self) -> int:
        """Threads of the cluster: how many steps it runs at once."""
        return int(sum(self._client.nthreads().values()) or 1)

    def call(self, name: str, fn: Callable[[T], R], item: T) -> R:
        """``fn(item)`` on the cluster as a task keyed ``aircast-<name>-…``, waited for (what
        one Prefect task does there)."""
        import uuid

        if self._client is None:
            raise RuntimeError("use DaskExecutor as a context manager (`with DaskExecutor():`)")
        key = f"aircast-{name}-{uuid.uuid4().hex[:12]}"
        return self._client.submit(fn, item, key=key).result()  # type: ignore[no-any-return]

    @property
    def description(self) -> str:
        return f"dask: {len(self._client.nthreads())} workers at {self._client.scheduler.address}"

    def map(
        self,
        name: str,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        width: int,
        label: Callable[[T], str] | None = None,
    ) -> Iterator[tuple[T, R | BaseException]]:
        from dask.distributed import as_completed

        if self._client is None:
            raise RuntimeError("use DaskExecutor as a context manager (`with DaskExecutor():`)")
        import uuid

        tag = uuid.uuid4().hex[:8]
        listed = list(items)
        futures = {
            self._client.submit(fn, item, key=f"aircast-{name}-{i:04d}-{tag}"): item
            for i, item in enumerate(listed)
        }
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            item = futures[future]
            try:
                yield item, future.result()
            except Exception as exc:  # handed to the runner, which decides
                yield item, exc
