"""The ``daily-forecast`` flow: the daily forecast job with Prefect as its executor.

``daily_forecast(date, config)`` calls :func:`aircast.jobs.forecast.run_daily_forecast`, whose
docstring lists the steps (check → ingest the CAMS runs → forecast and publish → verify); here
they are tasks of the run, the publish slot is the global concurrency limit
``aircast-publish``, and the input-health and verification reports are artifacts
(``input-health-<recipe>``, ``verification-<recipe>``). A date already published is not
forecast again, so a re-run, a backfill overlapping the schedule, or a retry is harmless.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from aircast.config import load_config
from aircast.dates import parse_day
from aircast.errors import AirCastError
from aircast.jobs.forecast import PUBLISH_LIMIT, run_daily_forecast
from flows.executor import PrefectExecutor
from flows.ingest import DEFAULT_CONFIG, MAX_THREADS, secret_block_key
from flows.report import exit_code

__all__ = ["PUBLISH_LIMIT", "daily_forecast", "forecast_date"]


def forecast_date(date: str | None) -> dt.date:
    """The forecast's date: ``date`` (ISO) or, when None or empty, today in UTC."""
    if date is None or not str(date).strip():
        return dt.datetime.now(dt.UTC).date()
    return parse_day(date, "date")


@flow(
    persist_result=True,
    name="daily-forecast",
    flow_run_name="forecast {date}",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS),
)
def daily_forecast(date: str | None = None, config: str = DEFAULT_CONFIG) -> dict[str, Any]:
    """Forecast the 00 UTC cycle of ``date`` to 72 h, publish it, and verify older forecasts.

    Parameters
    ----------
    date
        ISO date ``YYYY-MM-DD`` of the cycle; empty or None: today (UTC), for the schedule.
    config
        Path of the recipe (YAML), relative to the worker's working directory.

    Returns
    -------
    dict
        What was published (or that it already was), where, and the verification summary.
    """
    day = forecast_date(date)
    recipe = load_config(config)
    outcome = run_daily_forecast(
        recipe, day, executor=PrefectExecutor(), key_resolver=secret_block_key
    )
    outcome["config"] = config
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.forecast``: one daily forecast as a Prefect flow run from a shell."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.forecast",
        description="Forecast one date's 00 UTC cycle, publish it and verify older forecasts "
        "(set PREFECT_API_URL to use a server; otherwise a temporary one starts).",
    )
    parser.add_argument("date", nargs="?", default=None, help="YYYY-MM-DD (default: today UTC)")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="recipe (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        forecast_date(args.date)
    except AirCastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = daily_forecast(args.date, args.config, return_state=True)
    return exit_code(state)


if __name__ == "__main__":
    sys.exit(main())
