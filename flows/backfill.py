"""The ``backfill-forecasts`` flow: the backfill job with Prefect as its executor.

``backfill_forecasts(start, end, config)`` calls :func:`aircast.jobs.backfill.run_backfill`
(which skips published dates, bounds the runs in flight and reports a table artifact), and
gives it the one thing that is Prefect's: how one date is forecast. With a deployment, each
date is a run of ``daily-forecast`` created with the deterministic idempotency key
``aircast-forecast/<recipe>/<store>/<date>`` (``<store>``: a hash of the forecast store's URL),
so a duplicate or overlapping backfill (or one started twice from the UI) gets the existing
run back instead of a second one, and waits on it; a date whose earlier run failed, crashed or
was cancelled is scheduled again. Without a deployment (``deployment=""``) the dates run in
this process as subflows, one after another: how the demo and the tests use it without
workers.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.states import Scheduled
from prefect.task_runners import ThreadPoolTaskRunner

from aircast.config import load_config
from aircast.errors import AirCastError
from aircast.jobs.backfill import BackfillFailed, backfill_dates, run_backfill
from flows.executor import PrefectExecutor
from flows.forecast import daily_forecast
from flows.ingest import DEFAULT_CONFIG, MAX_THREADS
from flows.report import exit_code

#: ``<flow name>/<deployment name>`` of the daily forecast (flows/deploy.py registers it).
FORECAST_DEPLOYMENT = "daily-forecast/daily-forecast"
#: Seconds between polls of a run's state.
POLL_SECONDS = 2.0


def idempotency_key(recipe: str, forecast_url: str, date: str) -> str:
    """The key of the forecast run of ``date`` into ``forecast_url``: the same every time.

    The store's URL is in it (hashed: keys are short) because two recipes may share a name but
    publish to different stores, and neither may get the other's run back.
    """
    store = hashlib.sha256(forecast_url.encode()).hexdigest()[:12]
    return f"aircast-forecast/{recipe}/{store}/{date}"


def deployment_run(deployment: str, date: str, config: str, key: str) -> dict[str, Any]:
    """Create (or find, by its idempotency key) the date's run of ``deployment``; wait for its
    end. A run that failed, crashed or was cancelled earlier is scheduled again, as the UI's
    Retry does, so a backfill started after a fault repairs it."""
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        run: FlowRun = client.create_flow_run_from_deployment(
            found.id,
            parameters={"date": date, "config": config},
            idempotency_key=key,
            name=f"forecast {date}",
        )
        state = run.state
        if state is not None and (state.is_failed() or state.is_crashed() or state.is_cancelled()):
            logger.info(
                "%s: run %s ended %s earlier; scheduling it again", date, run.name, state.name
            )
            client.set_flow_run_state(run.id, Scheduled(), force=True)
        while True:
            run = client.read_flow_run(run.id)
            state = run.state
            if state is not None and state.is_final():
                break
            time.sleep(POLL_SECONDS)
    assert state is not None
    return {
        "date": date,
        "flow_run": run.name,
        "flow_run_id": str(run.id),
        "state": state.name,
        "message": state.message or "",
    }


def subflow_run(date: str, config: str) -> dict[str, Any]:
    """The date's daily forecast as a subflow of this run (no deployment, no worker)."""
    state = daily_forecast(date, config, return_state=True)
    return {"date": date, "state": state.name, "message": state.message or ""}


@flow(
    persist_result=True,
    name="backfill-forecasts",
    flow_run_name="backfill {start}..{end}",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS),
)
def backfill_forecasts(
    start: str,
    end: str,
    config: str = DEFAULT_CONFIG,
    max_concurrent: int = 2,
    deployment: str = FORECAST_DEPLOYMENT,
) -> dict[str, Any]:
    """Forecast every date of ``start``..``end`` (ISO, inclusive) that is not yet published.

    Parameters
    ----------
    start, end
        ISO dates ``YYYY-MM-DD``, inclusive.
    config
        Path of the recipe (YAML) on the workers.
    max_concurrent
        Forecast runs in flight at a time.
    deployment
        ``flow/deployment`` of the daily forecast; empty: run the forecasts in this process,
        one after another.

    Returns
    -------
    dict
        Dates skipped (already published), and each run's final state.
    """
    backfill_dates(start, end)  # a bad range fails before anything else
    recipe = load_config(config)
    if deployment:

        def forecast(date: str) -> dict[str, Any]:
            key = idempotency_key(recipe.name, recipe.forecast_url, date)
            return deployment_run(deployment, date, config, key)

        where, width = f"deployment {deployment}", max_concurrent
    else:

        def forecast(date: str) -> dict[str, Any]:
            return subflow_run(date, config)

        where, width = "in this process", 1
    try:
        outcome = run_backfill(
            recipe,
            start,
            end,
            forecast,
            executor=PrefectExecutor(),
            max_concurrent=width if max_concurrent >= 1 else max_concurrent,
            where=where,
        )
    except BackfillFailed as exc:
        raise RuntimeError(str(exc)) from None
    return {"skipped": outcome.skipped, "forecast": outcome.forecast, "runs": outcome.runs}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.backfill``: a backfill as a Prefect flow run from a shell."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.backfill",
        description="Forecast every date of a range that is not yet published.",
    )
    parser.add_argument("start", help="first date, YYYY-MM-DD")
    parser.add_argument("end", help="last date, YYYY-MM-DD (inclusive)")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="recipe (default: %(default)s)")
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument(
        "--deployment",
        default="",
        help=f"run through this deployment (e.g. {FORECAST_DEPLOYMENT}); default: in this process",
    )
    args = parser.parse_args(argv)
    try:
        backfill_dates(args.start, args.end)
    except AirCastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = backfill_forecasts(
        args.start,
        args.end,
        args.config,
        args.max_concurrent,
        args.deployment,
        return_state=True,
    )
    return exit_code(state)


if __name__ == "__main__":
    sys.exit(main())
