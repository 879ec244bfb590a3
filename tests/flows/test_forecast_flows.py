"""The daily-forecast and backfill flows end to end on the tiny trained recipe, with a real
Prefect server (``prefect_server``): artifacts, idempotency, bad dates.

The backfill through a deployment (idempotency keys, the run form) is the browser test's
(``test_ui_backfill.py``); here it runs in-process (``deployment=""``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pytest
import yaml
from flowtools import run_id
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler

from aircast.forecast.reader import open_forecast
from aircast.testing import tiny_forecast_recipe
from flows.backfill import backfill_forecasts
from flows.forecast import daily_forecast

pytestmark = pytest.mark.usefixtures("prefect_server")


#: the key the sandbox expects in the tests; it must appear in no log or artifact
SANDBOX_KEY = "sandbox-key-never-logged"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory, tiny_forecaster: Path) -> Path:
    """A recipe on the shared tiny store and checkpoint, with its own raw cache and stores."""
    shared = tiny_forecaster.parent
    root = tmp_path_factory.mktemp("forecast-flows")
    data: dict[str, Any] = tiny_forecast_recipe(shared, url=str(root / "forecast.zarr"))
    data["name"] = "tiny_forecast.flow"
    data["paths"] = {"root": str(root)}
    data["store"] = {"url": str(shared / "store.zarr")}
    data["sandbox"] = {"key": SANDBOX_KEY}
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_record(flow_run: UUID) -> dict[str, Any]:
    """Artifacts (by key), log messages and task runs of a flow run."""
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run]))
        )
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run]))
        )
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run]))
        )
        run = client.read_flow_run(flow_run)
    return {
        "artifacts": {a.key: a for a in found if a.key},
        "logs": [r.message for r in logs],
        "tasks": [t.name for t in tasks],
        "parameters": run.parameters,
    }


def test_daily_forecast_publishes_reports_and_is_idempotent(recipe: Path) -> None:
    state = daily_forecast("2019-06-03", str(recipe), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["outcome"] == "published"
    assert result["init_time"] == "2019-06-03T00"
    store = open_forecast(result["forecast_store"])
    assert [str(t)[:10] for t in store.init_times] == ["2019-06-03"]
    assert np.isfinite(store.map("pm2p5", lead_hours=72).values).all()

    record = run_record(run_id(state))
    health = record["artifacts"]["input-health-tiny-forecast-flow"]
    assert "## Input health: 2019-06-03 00:00 UTC (healthy)" in str(health.data)
    assert "| pm2p5 |" in str(health.data)
    assert "verification-tiny-forecast-flow" in record["artifacts"]
    assert set(record["parameters"]) == {"date", "config"}
    everything = " ".join(record["logs"]) + " ".join(
        str(a.data) for a in record["artifacts"].values()
    )
    assert SANDBOX_KEY not in everything

    # the same date again: nothing fetched, nothing written, said so
    before = sorted(p.stat().st_mtime_ns for p in Path(result["forecast_store"]).rglob("*"))
    again = daily_forecast("2019-06-03", str(recipe), return_state=True)
    assert again.is_completed(), again.message
    assert again.result()["outcome"] == "already published"
    after = sorted(p.stat().st_mtime_ns for p in Path(result["forecast_store"]).rglob("*"))
    assert after == before
    assert "forecast-and-publish" not in " ".join(run_record(run_id(again))["tasks"])


@pytest.mark.parametrize(
    ("date", "said"),
    [
        ("2019-13-01", "date = '2019-13-01' is not a date; write it as YYYY-MM-DD"),
        ("2019-05-01", "is before the training store, which starts on 2019-06-01"),
        ("2999-01-01", "is in the future"),
    ],
)
def test_a_bad_date_fails_before_anything_is_fetched_or_written(
    recipe: Path, date: str, said: str
) -> None:
    store = Path(yaml.safe_load(recipe.read_text())["forecast"]["url"])
    before = sorted(str(p) for p in store.rglob("*")) if store.exists() else []
    state = daily_forecast(date, str(recipe), return_state=True)
    assert state.is_failed()
    assert said in (state.message or "")
    assert run_record(run_id(state))["tasks"] == []
    assert (sorted(str(p) for p in store.rglob("*")) if store.exists() else []) == before


def test_backfill_forecasts_the_missing_dates_and_skips_the_published(recipe: Path) -> None:
    daily_forecast("2019-06-03", str(recipe))  # published already (or now)
    state = backfill_forecasts(
        "2019-06-02", "2019-06-04", str(recipe), deployment="", return_state=True
    )
    assert state.is_completed(), state.message
    result = state.result()
    assert result["skipped"] == ["2019-06-03"]
    assert result["forecast"] == ["2019-06-02", "2019-06-04"]
    store_url = yaml.safe_load(recipe.read_text())["forecast"]["url"]
    published = [str(t)[:10] for t in open_forecast(store_url).init_times]
    assert published == ["2019-06-02", "2019-06-03", "2019-06-04"]
    table = run_record(run_id(state))["artifacts"]["backfill-tiny-forecast-flow"]
    assert table.type == "table"

    # the same backfill again: every date skipped, nothing run
    again = backfill_forecasts(
        "2019-06-02", "2019-06-04", str(recipe), deployment="", return_state=True
    )
    assert again.is_completed(), again.message
    assert again.result()["skipped"] == ["2019-06-02", "2019-06-03", "2019-06-04"]
    assert again.result()["forecast"] == []


def test_backfill_refuses_a_reversed_or_huge_range(recipe: Path) -> None:
    state = backfill_forecasts(
        "2019-06-04", "2019-06-02", str(recipe), deployment="", return_state=True
    )
    assert state.is_failed() and "end 2019-06-02 is before start 2019-06-04; swap them" in str(
        state.message
    )
    state = backfill_forecasts(
        "2019-01-01", "2021-01-01", str(recipe), deployment="", return_state=True
    )
    assert state.is_failed() and "split it into several backfills" in str(state.message)
