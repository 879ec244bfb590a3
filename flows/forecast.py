"""The daily forecast: this morning's CAMS analysis → a 72-hour forecast grid, published.

``daily_forecast(date, config)`` runs, for the 00 UTC cycle of ``date``:

1. **check** the date, the training store and the checkpoint (a bad date, a missing or
   mismatched checkpoint fails here, before anything is fetched or written);
2. **ingest** the CAMS global forecast runs of the day and the day before (subflow
   ``ingest-cams``: the raw cache, its manifest and the ADS concurrency limit);
3. **initial conditions** on the model grid and their **health** against the training
   statistics (markdown artifact ``input-health-<recipe>``); unhealthy or missing inputs fail
   the run and nothing is published, unless ``forecast.fallback_to_previous_cycle`` is set, in
   which case the previous day's run at lead 24 h is used and the provenance says so;
4. **forecast** to ``forecast.lead_hours`` every 3 h and **publish** it atomically (one slot of
   the global concurrency limit ``aircast-publish`` serialises writers of the store);
5. **verify** every earlier published lead whose analysis the training store now holds
   (scores appended to the recipe's verification table; table artifact
   ``verification-<recipe>``).

A date already published is not forecast again (the run says so and still verifies), so a
re-run, a backfill overlapping a schedule, or a retry is harmless.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from aircast.config import load_config
from aircast.dates import parse_day
from aircast.errors import AirCastError
from aircast.evaluation.verification import verify_published
from aircast.forecast.daily import (
    LoadedModel,
    check_forecast_date,
    prepare_forecast,
    resolve_checkpoint,
)
from aircast.forecast.initial import HealthReport, InputError
from aircast.forecast.publish import publish_forecast, published_init_times
from aircast.store.reader import open_store
from flows.ingest import DEFAULT_CONFIG, ensure_limit, ingest_cams
from flows.report import artifact_key, exit_code

#: The global concurrency limit every writer of a forecast store takes a slot of.
PUBLISH_LIMIT = "aircast-publish"


def forecast_date(date: str | None) -> dt.date:
    """The forecast's date: ``date`` (ISO) or, when None or empty, today in UTC."""
    if date is None or not str(date).strip():
        return dt.datetime.now(dt.UTC).date()
    return parse_day(date, "date")


@task(name="forecast-and-publish", cache_policy=NO_CACHE)
def forecast_and_publish(config: str, date: str, checkpoint: str) -> dict[str, Any]:
    """Initial conditions → health → rollout → publish; returns what was published."""
    logger = get_run_logger()
    recipe = load_config(config)
    day = parse_day(date, "date")
    store = open_store(recipe.store_url, recipe.store.storage_options)
    loaded = LoadedModel.load(Path(checkpoint), store)

    def health_artifact(report: HealthReport) -> None:
        create_markdown_artifact(
            markdown=report.markdown(),
            key=artifact_key("input-health", recipe.name),
            description=f"{recipe.name}: initial conditions for {day} 00 UTC",
        )

    prepared = prepare_forecast(
        recipe, store, loaded, day, on_health=health_artifact, log=logger.warning
    )
    with concurrency(PUBLISH_LIMIT, occupy=1, strict=True):
        result = publish_forecast(
            recipe.forecast_url, prepared.run, storage_options=recipe.forecast.storage_options
        )
    logger.info(
        "%s %s 00 UTC to %s (init %d of the store; %d complete inits)",
        result.outcome,
        day,
        result.url,
        result.index,
        result.inits,
    )
    return {
        "outcome": result.outcome,
        "init_time": str(np.datetime64(prepared.run.init_time, "h")),
        "forecast_store": result.url,
        "checkpoint_sha256": loaded.sha256,
        "fallback": prepared.fallback,
        "input_source": prepared.initial.source,
    }


@task(name="verify-forecasts", cache_policy=NO_CACHE)
def verify_task(config: str, date: str) -> dict[str, Any]:
    """Score earlier forecasts whose analyses have arrived; table artifact."""
    recipe = load_config(config)
    store = open_store(recipe.store_url, recipe.store.storage_options)
    day = parse_day(date, "date")
    result = verify_published(recipe, store, now=np.datetime64(day.isoformat(), "ns"))
    create_markdown_artifact(
        markdown=result.markdown(),
        key=artifact_key("verification", recipe.name),
        description=f"{recipe.name}: forecasts verified on {day}",
    )
    return {
        "scores": str(result.path),
        "new_scores": len(result.scored),
        "pending_leads": result.pending,
    }


@flow(
    persist_result=True,
    name="daily-forecast",
    flow_run_name="forecast {date}",
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
    logger = get_run_logger()
    day = forecast_date(date)
    recipe = load_config(config)
    store = open_store(recipe.store_url, recipe.store.storage_options)
    check_forecast_date(day, store)
    checkpoint = resolve_checkpoint(recipe)
    LoadedModel.load(checkpoint, store)  # a mismatched checkpoint fails before any fetch
    init = np.datetime64(day.isoformat(), "ns")
    published = published_init_times(
        recipe.forecast_url, storage_options=recipe.forecast.storage_options
    )
    if init in published:
        logger.info(
            "%s 00 UTC is already published in %s: not forecast again", day, recipe.forecast_url
        )
        outcome: dict[str, Any] = {
            "outcome": "already published",
            "init_time": str(np.datetime64(init, "h")),
            "forecast_store": recipe.forecast_url,
        }
    else:
        previous = (day - dt.timedelta(days=1)).isoformat()
        state = ingest_cams(previous, day.isoformat(), config, "forecast", return_state=True)
        if not state.is_completed():
            if not recipe.forecast.fallback_to_previous_cycle:
                raise InputError(
                    f"the CAMS forecast of {day} could not be ingested ({state.message}); "
                    "nothing was published: retry when the data store is back"
                )
            logger.warning("ingesting the CAMS forecast failed: %s", state.message)
        ensure_limit(
            PUBLISH_LIMIT, 1, what="writers of a forecast store", setting="one writer at a time"
        )
        outcome = forecast_and_publish(config, day.isoformat(), str(checkpoint))
    outcome["verification"] = verify_task(config, day.isoformat())
    outcome["date"] = day.isoformat()
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
