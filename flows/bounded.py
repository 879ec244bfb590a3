"""Submitting many Prefect tasks with only a few of them in flight.

A flow that submits every task at once leaves the bound to the task runner's threads or to a
global concurrency limit. Both work, but both cost: tasks waiting for a slot of a global limit
poll the server, and the server answers each denied poll with a ``Retry-After`` that grows with
the number of waiting tasks (up to 30 s), so slots stay idle while the waiting tasks sleep; and
tasks waiting for a thread show as submitted long before they run. Submitting the next task only
when one finishes keeps the number waiting at zero, the UI honest, and the work in the order it
was planned (which the sandbox's day cache, for one, rewards).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from prefect.futures import PrefectFuture, as_completed

T = TypeVar("T")
R = TypeVar("R")


def run_bounded(
    items: Iterable[T], submit: Callable[[T], PrefectFuture[R]], width: int
) -> Iterator[tuple[T, PrefectFuture[R]]]:
    """Submit one task per item, at most ``width`` unfinished at a time, in the items' order.

    Yields
    ------
    tuple
        ``(item, future)`` of each task as it finishes (the future is done: ask its state or
        result without waiting).
    """
    if width < 1:
        raise ValueError(f"width = {width}; at least one task must be allowed in flight")
    waiting = iter(items)
    running: dict[PrefectFuture[R], T] = {}

    def fill() -> None:
        while len(running) < width:
            for item in waiting:
                running[submit(item)] = item
                break
            else:
                return

    fill()
    while running:
        done = next(as_completed(list(running)))
        item = running.pop(done)
        fill()  # before handing this one back, so the next task starts meanwhile
        yield item, done
