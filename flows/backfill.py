"""Backfills: a range of dates becomes one daily-forecast run per day.

``backfill_forecasts(start, end, config)`` asks the ``daily-forecast`` deployment for one flow
run per date that the forecast store does not hold yet, at most ``max_concurrent`` in flight,
and waits for them:

- **idempotent**: each run is created with the deterministic idempotency key
  ``aircast-forecast/<recipe>/<store>/<date>`` (``<store>``: a hash of the forecast store's
  URL), so a duplicate or overlapping backfill (or one started
  twice from the UI) gets the existing run back instead of a second one, and waits on it;
- **skips** dates already published (read from the forecast store itself, the truth);
- **retries** a date whose earlier run failed, crashed or was cancelled by scheduling that same
  run again, as the UI's Retry does, so a backfill started after a fault repairs it;
- **bounded**: runs are created no faster than they finish (``run_bounded``), on top of the
  deployment's own concurrency limit.

Without a deployment (``deployment=""``) the runs happen in this process as subflows, one
after another: how the demo and the tests use it without workers.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.states import Scheduled

from aircast.config import load_config
from aircast.dates import DateError, parse_range
from aircast.errors import AirCastError
from aircast.forecast.publish import published_init_times
from flows.bounded import run_bounded
from flows.forecast import daily_forecast
from flows.ingest import DEFAULT_CONFIG
from flows.report import artifact_key, exit_code

#: ``<flow name>/<deployment name>`` of the daily forecast (flows/deploy.py registers it).
FORECAST_DEPLOYMENT = "daily-forecast/daily-forecast"
#: The most days one backfill may span: a typo in a year should not queue a decade.
MAX_DAYS = 400
#: Seconds between polls of a run's state.
POLL_SECONDS = 2.0


def idempotency_key(recipe: str, forecast_url: str, date: str) -> str:
    """The key of the forecast run of ``date`` into ``forecast_url``: the same every time.

    The store's URL is in it (hashed: keys are short) because two recipes may share a name but
    publish to different stores, and neither may get the other's run back.
    """
    store = hashlib.sha256(forecast_url.encode()).hexdigest()[:12]
    return f"aircast-forecast/{recipe}/{store}/{date}"


def _dates(start: str, end: str) -> list[str]:
    first, last = parse_range(start, end)
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise DateError(
            f"{start}..{end} spans {days} days, more than the {MAX_DAYS} one backfill takes; "
            "split it into several backfills"
        )
    return [str(d) for d in np.arange(np.datetime64(first), np.datetime64(last) + 1)]


@task(name="forecast-run", task_run_name="{date}", cache_policy=NO_CACHE)
def forecast_run(deployment: str, date: str, config: str, key: str) -> dict[str, Any]:
    """Create (or find, by its idempotency key) the date's run and wait for its end."""
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


@flow(persist_result=True, name="backfill-forecasts", flow_run_name="backfill {start}..{end}")
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
    logger = get_run_logger()
    dates = _dates(start, end)
    if max_concurrent < 1:
        raise ValueError(f"max_concurrent = {max_concurrent}; at least 1 run must be allowed")
    recipe = load_config(config)
    published = {
        str(np.datetime64(t, "D"))
        for t in published_init_times(
            recipe.forecast_url, storage_options=recipe.forecast.storage_options
        )
    }
    skipped = [d for d in dates if d in published]
    todo = [d for d in dates if d not in published]
    logger.info(
        "%s..%s: %d dates, %d already published, %d to forecast (%s)",
        start,
        end,
        len(dates),
        len(skipped),
        len(todo),
        f"deployment {deployment}, at most {max_concurrent} at a time"
        if deployment
        else "in this process",
    )
    results: list[dict[str, Any]] = []
    if deployment:
        for date, future in run_bounded(
            todo,
            lambda d: forecast_run.submit(
                deployment, d, config, idempotency_key(recipe.name, recipe.forecast_url, d)
            ),
            max_concurrent,
        ):
            outcome = future.result()
            logger.info("%s: %s", date, outcome["state"])
            results.append(outcome)
    else:
        for date in todo:
            state = daily_forecast(date, config, return_state=True)
            results.append({"date": date, "state": state.name, "message": state.message or ""})
    results.sort(key=lambda r: str(r["date"]))
    table = [{"date": d, "state": "already published", "run": ""} for d in skipped] + [
        {"date": r["date"], "state": r["state"], "run": r.get("flow_run", "")} for r in results
    ]
    create_table_artifact(
        table=sorted(table, key=lambda r: r["date"]),
        key=artifact_key("backfill", recipe.name),
        description=f"{recipe.name}: backfill {start}..{end}",
    )
    failed = [r for r in results if r["state"] != "Completed"]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(todo)} forecasts did not complete: "
            + "; ".join(f"{r['date']} {r['state']} {r['message']}" for r in failed[:5])
            + "; run the backfill again to retry them (published dates are skipped)"
        )
    return {"skipped": skipped, "forecast": [r["date"] for r in results], "runs": results}


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
        _dates(args.start, args.end)
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
