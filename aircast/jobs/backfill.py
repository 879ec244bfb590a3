"""The backfill job: a range of dates becomes one daily forecast per date not yet published.

``aircast backfill`` and the ``backfill-forecasts`` flow both call :func:`run_backfill`; how one
date is forecast is passed in (the daily forecast job in this process, or a run of the
``daily-forecast`` deployment created and waited for by the flow). The job:

- **refuses** a reversed range or one of more than :data:`MAX_DAYS` days, before anything runs;
- **skips** dates already published (read from the forecast store itself, the truth), and says
  which dates are new and which were already there;
- **bounds** the forecasts in flight (``max_concurrent``) on top of any limit of their own;
- **reports** a table of every date and its outcome, and fails after it when a forecast did
  not complete: running the backfill again retries exactly those (published dates are skipped).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aircast.config import AirCastConfig
from aircast.dates import DateError, parse_range
from aircast.errors import AirCastError
from aircast.forecast.publish import published_init_times
from aircast.jobs.executor import Executor, ThreadExecutor, report_key

LOG = logging.getLogger(__name__)

#: The most days one backfill may span: a typo in a year should not queue a decade.
MAX_DAYS = 400

#: How one date is forecast: ISO date → ``{"date", "state", "message", ...}``; ``state`` is
#: ``"Completed"`` when the forecast was published (or already was).
ForecastOne = Callable[[str], dict[str, Any]]


class BackfillFailed(AirCastError, RuntimeError):
    """Some dates were not forecast; :attr:`outcome` says which (the others are published)."""

    def __init__(self, message: str, outcome: BackfillOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass
class BackfillOutcome:
    """Dates skipped (already published), and each forecast's outcome."""

    skipped: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def forecast(self) -> list[str]:
        return [str(r["date"]) for r in self.runs]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["state"] != "Completed"]

    def table(self) -> list[dict[str, str]]:
        rows = [{"date": d, "state": "already published", "run": ""} for d in self.skipped]
        rows += [
            {"date": str(r["date"]), "state": str(r["state"]), "run": str(r.get("flow_run", ""))}
            for r in self.runs
        ]
        return sorted(rows, key=lambda r: r["date"])


def backfill_dates(start: str | dt.date, end: str | dt.date) -> list[str]:
    """The ISO dates of an inclusive range typed by a person (at most :data:`MAX_DAYS`)."""
    first, last = parse_range(start, end)
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise DateError(
            f"{first}..{last} spans {days} days, more than the {MAX_DAYS} one backfill takes; "
            "split it into several backfills"
        )
    return [str(d) for d in np.arange(np.datetime64(first), np.datetime64(last) + 1)]


def run_backfill(
    config: AirCastConfig,
    start: str | dt.date,
    end: str | dt.date,
    forecast: ForecastOne,
    *,
    executor: Executor | None = None,
    max_concurrent: int = 1,
    where: str = "in this process",
) -> BackfillOutcome:
    """Forecast every date of ``start``..``end`` (inclusive) that is not yet published.

    Parameters
    ----------
    forecast
        How one date is forecast (see :data:`ForecastOne`); it must not raise for a failed
        forecast, only say so in ``state`` (an exception counts as ``Failed``).
    max_concurrent
        Forecasts in flight at a time.
    where
        Where the forecasts run, for the log.

    Raises
    ------
    DateError
        For a bad range, before anything runs.
    BackfillFailed
        After the report, when a forecast did not complete.
    """
    executor = executor or ThreadExecutor()
    dates = backfill_dates(start, end)
    if max_concurrent < 1:
        raise ValueError(f"max_concurrent = {max_concurrent}; at least 1 run must be allowed")
    published = {
        str(np.datetime64(t, "D"))
        for t in published_init_times(
            config.forecast_url, storage_options=config.forecast.storage_options
        )
    }
    outcome = BackfillOutcome(skipped=[d for d in dates if d in published])
    todo = [d for d in dates if d not in published]
    LOG.info(
        "%s..%s: %d dates, %d already published, %d to forecast (%s, at most %d at a time)",
        dates[0],
        dates[-1],
        len(dates),
        len(outcome.skipped),
        len(todo),
        where,
        max_concurrent,
    )
    if outcome.skipped:
        LOG.info("already published: %s", ", ".join(outcome.skipped))
    if todo:
        LOG.info("new: %s", ", ".join(todo))
    for date, result in executor.map(
        "forecast-run", forecast, todo, width=max_concurrent, label=str
    ):
        if isinstance(result, BaseException):
            result = {
                "date": date,
                "state": "Failed",
                "message": f"{type(result).__name__}: {result}",
            }
        LOG.info("%s: %s", date, result["state"])
        outcome.runs.append(result)
    outcome.runs.sort(key=lambda r: str(r["date"]))
    executor.table(
        report_key("backfill", config.name),
        outcome.table(),
        f"{config.name}: backfill {dates[0]}..{dates[-1]}",
    )
    failed = outcome.failed
    if failed:
        raise BackfillFailed(
            f"{len(failed)} of {len(todo)} forecasts did not complete: "
            + "; ".join(f"{r['date']} {r['state']} {r.get('message', '')}" for r in failed[:5])
            + "; run the backfill again to retry them (published dates are skipped)",
            outcome,
        )
    return outcome
