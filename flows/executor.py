"""The job runners' executor made of Prefect: each step a task run, limits global, reports
artifacts, the library's log in the run's log.

:class:`PrefectExecutor` implements :class:`aircast.jobs.executor.Executor`; a flow creates one
inside its run and hands it to a runner of :mod:`aircast.jobs`, which decides the steps and
their order. What is Prefect's alone lives here:

- a step is a task (``cache_policy=NO_CACHE``: a job's steps write stores, they are never
  skipped on a cache hit), its arguments handed over in memory (``quote``: Prefect neither
  traverses nor records them; a recipe or an endpoint with a key is never a parameter);
- ``map`` submits no more tasks than ``width`` at a time (:func:`aircast.jobs.executor.bounded`);
  with a ``compute`` executor (a Dask cluster) each task waits for its call there;
- limits are the server's global concurrency limits, shared by every run and worker, created
  when missing and kept when an operator has changed them;
- reports and progress are markdown and progress artifacts;
- the ``aircast`` logger's records reach the run's log (Prefect captures its own loggers
  only), with the data-store keys masked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.concurrency.sync import concurrency
from prefect.exceptions import MissingContextError, ObjectAlreadyExists, ObjectNotFound
from prefect.futures import as_completed
from prefect.logging.handlers import APILogHandler
from prefect.utilities.annotations import quote

from aircast.jobs.executor import bounded
from aircast.sources.datastore import mask_secrets_in

T = TypeVar("T")
R = TypeVar("R")

#: Prefect's own loggers that send records to its API: the keys are masked there too.
_PREFECT_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class _InRun(logging.Filter):
    """Pass only records made inside a flow or task run (the API handler needs one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.context import get_run_context

        try:
            get_run_context()
        except MissingContextError:
            return False
        return True


def capture_library_logs() -> None:
    """Send the ``aircast`` logger's INFO records to the current run's log (idempotent)."""
    logger = logging.getLogger("aircast")
    if not any(isinstance(h, APILogHandler) for h in logger.handlers):
        handler = APILogHandler()
        handler.addFilter(_InRun())
        logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    mask_secrets_in("aircast", *_PREFECT_LOGGERS)


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


def _first_finished(futures: list[Any]) -> Any:
    """The first of Prefect futures to finish."""
    return next(as_completed(futures))


def _step(name: str) -> Any:
    """A task named ``name`` that calls the function it is given (a job's step).

    One function per step name, so that each step has its own task key (the UI groups task
    runs by it) while the code that runs is the runner's own.
    """

    def call(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        return fn(*args, **kwargs)

    call.__name__ = call.__qualname__ = name.replace("-", "_")
    return task(call, name=name, cache_policy=NO_CACHE)


class PrefectExecutor:
    """Steps as Prefect tasks of the current flow run; see the module docstring.

    Parameters
    ----------
    compute
        Where ``map``'s calls run, when not in the task's own thread: an executor with a
        ``call(name, fn, item)`` and a ``width`` (a :class:`aircast.jobs.executor.DaskExecutor`
        entered by the flow). Its width bounds the tasks in flight.
    """

    def __init__(self, compute: Any = None) -> None:
        self.compute = compute
        self._progress: dict[str, UUID] = {}
        capture_library_logs()

    def run(self, name: str, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        handed = {k: quote(v) for k, v in kwargs.items()}
        return _step(name)(quote(fn), *(quote(a) for a in args), **handed)  # type: ignore[no-any-return]

    def map(
        self,
        name: str,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        width: int,
        label: Callable[[T], str] | None = None,
    ) -> Iterator[tuple[T, R | BaseException]]:
        compute = self.compute
        target: Callable[[T], R] = (
            fn if compute is None else (lambda item: compute.call(name, fn, item))
        )
        if compute is not None:
            width = compute.width
        step = _step(name)

        def submit(item: T) -> Any:
            named = step if label is None else step.with_options(task_run_name=label(item))
            return named.submit(quote(target), quote(item))

        for item, future in bounded(items, submit, max(1, width), _first_finished):
            yield item, future.result(raise_on_failure=False)

    def ensure_limit(self, name: str, size: int, *, what: str, setting: str) -> int:
        return ensure_limit(name, size, what=what, setting=setting)

    @contextmanager
    def slot(self, name: str) -> Iterator[None]:
        # strict: a missing limit is an error, not a silently unbounded run
        with concurrency(name, occupy=1, strict=True):
            yield

    def report(self, key: str, markdown: str, description: str) -> None:
        create_markdown_artifact(markdown=markdown, key=key, description=description)

    def table(self, key: str, rows: list[dict[str, str]], description: str) -> None:
        create_table_artifact(table=rows, key=key, description=description)

    def progress(self, key: str, done: int, total: int, description: str) -> None:
        percent = 100.0 * done / total if total else 100.0
        if key not in self._progress:
            self._progress[key] = create_progress_artifact(  # type: ignore[assignment]
                progress=percent, key=key, description=description
            )
        else:
            update_progress_artifact(self._progress[key], progress=percent, description=description)
