"""The daily forecast job: this morning's CAMS analysis → a 72-hour forecast grid, published,
and the earlier forecasts verified.

``aircast forecast DATE`` and the ``daily-forecast`` flow both call :func:`run_daily_forecast`
(threads or Prefect tasks as the executor). For the 00 UTC cycle of a date it:

1. **checks** the date, the training store and the checkpoint: a bad date or a missing or
   mismatched checkpoint fails here, before anything is fetched or written;
2. **ingests** the CAMS global forecast runs of the day and the day before (the ingest job,
   with its store limit and its rules); runs that cannot be fetched fail the job and nothing is
   published, unless ``forecast.fallback_to_previous_cycle`` is set;
3. **forecasts and publishes** in one step: the initial conditions on the model grid and their
   health against the training statistics (report ``input-health-<recipe>``; unhealthy or
   missing inputs publish nothing, unless the fallback is set, in which case the previous day's
   run at lead 24 h is used and the provenance says so), the rollout to ``forecast.lead_hours``,
   and the atomic publish, holding one slot of the limit ``aircast-publish`` that serialises the
   writers of a forecast store;
4. **verifies** every earlier published lead whose analysis has arrived (report
   ``verification-<recipe>``).

A date already published is not forecast again (the job says so and still verifies), so a
re-run, a backfill overlapping a schedule, or a retry is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from aircast.config import AirCastConfig
from aircast.evaluation.verification import verify_published
from aircast.forecast.daily import (
    LoadedModel,
    check_forecast_date,
    prepare_forecast,
    resolve_checkpoint,
)
from aircast.forecast.initial import HealthReport, InputError
from aircast.forecast.publish import publish_forecast, published_init_times
from aircast.jobs.executor import Executor, ThreadExecutor, report_key
from aircast.jobs.ingest import run_ingest
from aircast.sources.datastore import Endpoint, KeyResolver
from aircast.store.reader import open_store

LOG = logging.getLogger(__name__)

#: The concurrency limit every writer of a forecast store takes a slot of.
PUBLISH_LIMIT = "aircast-publish"


def forecast_and_publish(
    config: AirCastConfig, day: dt.date, checkpoint: Path, executor: Executor
) -> dict[str, Any]:
    """Initial conditions → health → rollout → publish (one step); what was published."""
    store = open_store(config.store_url, config.store.storage_options)
    loaded = LoadedModel.load(checkpoint, store)

    def health_report(report: HealthReport) -> None:
        executor.report(
            report_key("input-health", config.name),
            report.markdown(),
            f"{config.name}: initial conditions for {day} 00 UTC",
        )

    prepared = prepare_forecast(config, store, loaded, day, on_health=health_report)
    with executor.slot(PUBLISH_LIMIT):
        result = publish_forecast(
            config.forecast_url, prepared.run, storage_options=config.forecast.storage_options
        )
    LOG.info(
        "%s: %s 00 UTC in %s (init %d of the store; %d complete inits)",
        result.outcome,
        day,
        result.url,
        result.index,
        result.inits,
    )
    return {
        "outcome": result.outcome,
        "init_time": str(prepared.run.init_time.astype("datetime64[h]")),
        "forecast_store": result.url,
        "checkpoint_sha256": loaded.sha256,
        "fallback": prepared.fallback,
        "input_source": prepared.initial.source,
    }


def verify_forecasts(config: AirCastConfig, day: dt.date, executor: Executor) -> dict[str, Any]:
    """Score the earlier forecasts whose analyses have arrived by ``day``; report them."""
    store = open_store(config.store_url, config.store.storage_options)
    result = verify_published(config, store, now=np.datetime64(day.isoformat(), "ns"))
    executor.report(
        report_key("verification", config.name),
        result.markdown(),
        f"{config.name}: forecasts verified on {day}",
    )
    LOG.info("%s", result.markdown())
    LOG.info("scores: %s", result.path)
    return {
        "scores": str(result.path),
        "new_scores": len(result.scored),
        "pending_leads": result.pending,
    }


def run_daily_forecast(
    config: AirCastConfig,
    day: dt.date,
    *,
    executor: Executor | None = None,
    verify: bool = True,
    endpoints: Mapping[str, Endpoint] | None = None,
    key_resolver: KeyResolver | None = None,
) -> dict[str, Any]:
    """Forecast the 00 UTC cycle of ``day``, publish it, verify older forecasts.

    Returns
    -------
    dict
        What was published (or that it already was), where, and the verification summary.

    Raises
    ------
    DateError, CheckpointError, StoreError
        Before anything is fetched or written.
    InputError
        When the inputs cannot be fetched or are unhealthy (and no fallback is allowed):
        the forecast store is unchanged.
    """
    executor = executor or ThreadExecutor()
    store = open_store(config.store_url, config.store.storage_options)
    check_forecast_date(day, store)
    checkpoint = resolve_checkpoint(config)
    LoadedModel.load(checkpoint, store)  # a mismatched checkpoint fails before any fetch
    init = np.datetime64(day.isoformat(), "ns")
    published = published_init_times(
        config.forecast_url, storage_options=config.forecast.storage_options
    )
    if init in published:
        LOG.info(
            "%s 00 UTC is already published in %s: not forecast again", day, config.forecast_url
        )
        outcome: dict[str, Any] = {
            "outcome": "already published",
            "init_time": str(init.astype("datetime64[h]")),
            "forecast_store": config.forecast_url,
        }
    else:
        fetched = run_ingest(
            config,
            ("forecast",),
            day - dt.timedelta(days=1),
            day,
            executor=executor,
            endpoints=endpoints,
            key_resolver=key_resolver,
            raise_on_failure=False,
        )
        if fetched.failed:
            problems = "; ".join(f"{r.request.label}: {r.error}" for r in fetched.failed[:3])
            if not config.forecast.fallback_to_previous_cycle:
                raise InputError(
                    f"the CAMS forecast runs for {day} could not be fetched ({problems}); "
                    "nothing was published: retry when the data store is back"
                )
            LOG.warning("fetching the CAMS forecast failed: %s", problems)
        executor.ensure_limit(
            PUBLISH_LIMIT, 1, what="writers of a forecast store", setting="one writer at a time"
        )
        outcome = executor.run(
            "forecast-and-publish", forecast_and_publish, config, day, checkpoint, executor
        )
    if verify:
        outcome["verification"] = executor.run(
            "verify-forecasts", verify_forecasts, config, day, executor
        )
    outcome["date"] = day.isoformat()
    return outcome
