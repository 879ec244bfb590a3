"""The evaluate job: a checkpoint scored over a period against persistence, climatology and
the CAMS forecast, with the CAMS runs fetched first.

``aircast evaluate`` calls :func:`run_evaluate`: the scorecard is evaluation's
(:func:`aircast.evaluation.scorecard.evaluate`), which never talks to a data store; this job
gives it the CAMS forecast runs of the period through the ingest job (the raw cache, the
store's limit and its rules). A baseline that cannot be fetched is left out of the scorecard
with the reason in its note, so the scorecard is still written.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from aircast.align.grid import TargetGrid
from aircast.config import AirCastConfig
from aircast.errors import AirCastError
from aircast.evaluation.baselines import (
    CamsForecast,
    cams_forecast_from,
    cams_forecast_unavailable,
)
from aircast.evaluation.scorecard import Evaluation, Period, evaluate
from aircast.jobs.executor import Executor, ThreadExecutor
from aircast.jobs.ingest import run_ingest
from aircast.sources.datastore import Endpoint

LOG = logging.getLogger(__name__)


def run_evaluate(
    checkpoint: str | Path,
    config: AirCastConfig,
    *,
    period: Period = "test",
    max_lead_hours: int | None = None,
    out_dir: Path | None = None,
    cams: bool = True,
    endpoints: Mapping[str, Endpoint] | None = None,
    executor: Executor | None = None,
    batch_size: int | None = None,
) -> Evaluation:
    """Score ``checkpoint`` over ``period``; see :func:`aircast.evaluation.scorecard.evaluate`.

    Parameters
    ----------
    cams
        Fetch and score the CAMS global forecast of the period.
    endpoints
        Data-store endpoints for the CAMS forecast (default: the recipe's, starting the
        embedded sandbox where it asks for one).
    """
    chosen_executor = executor or ThreadExecutor()

    def cams_forecast(
        first: dt.date, last: dt.date, channels: Sequence[str], grid: TargetGrid
    ) -> CamsForecast:
        LOG.info("fetching the CAMS forecast runs of %s..%s", first, last)
        try:
            fetched = run_ingest(
                config,
                ("forecast",),
                first,
                last,
                executor=chosen_executor,
                endpoints=endpoints,
                raise_on_failure=False,
            )
        except AirCastError as exc:  # the store, its key or the sandbox: reported, not fatal
            LOG.warning("CAMS forecast unavailable: %s", exc)
            return cams_forecast_unavailable(config, channels, grid, f"unavailable: {exc}")
        return cams_forecast_from(config, fetched.reports["forecast"], first, last, channels, grid)

    return evaluate(
        checkpoint,
        config,
        period=period,
        max_lead_hours=max_lead_hours,
        out_dir=out_dir,
        cams_forecast=cams_forecast if cams else None,
        batch_size=batch_size,
    )
