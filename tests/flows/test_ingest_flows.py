"""The ingest flows end to end: a temporary recipe, the sandbox data store, a real Prefect
server (``prefect_server``), and what an operator would check through the Prefect API."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from flowtools import run_id
from prefect import flow, get_run_logger
from prefect.blocks.system import Secret as SecretBlock
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.exceptions import ObjectNotFound
from prefect.logging.handlers import APILogHandler

from aircast.config import load_config
from aircast.sandbox.server import SandboxServer
from aircast.sources.base import Source
from aircast.sources.cache import RawCache
from aircast.sources.registry import get_source
from aircast.testing import merge_sections
from flows.ingest import (
    SECRET_BLOCKS,
    ingest_all,
    ingest_cams,
    ingest_era5,
    limit_name,
    store_endpoint,
)

pytestmark = pytest.mark.usefixtures("prefect_server")

REPO = Path(__file__).resolve().parents[2]


def write_recipe(tmp_path: Path, name: str = "recipe.yaml", **changes: Any) -> Path:
    """configs/demo.yaml with its data under ``tmp_path`` and a 6°x6° region (the sandbox
    renders ERA5 at 0.25°: the demo's whole region would take minutes), quick polls, short
    CAMS forecasts. ``changes`` update top-level sections (merged one level deep)."""
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data["region"] = {"north": 33.0, "south": 27.0, "west": 30.0, "east": 36.0}
    data["paths"] = {"root": str(tmp_path / "data")}
    data["ingest"] = {"sleep_max": 0.5, "forecast_lead_hours": 6, "max_concurrent_requests": 2}
    merge_sections(data, changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def artifacts(client: SyncPrefectClient, flow_run: UUID) -> dict[str, Any]:
    """The artifacts of one flow run, by key."""
    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run]))
    )
    return {a.key: a for a in found if a.key}


def log_text(client: SyncPrefectClient, flow_run: UUID) -> str:
    """Every log line of a flow run and its tasks, as the UI shows them."""
    APILogHandler().flush()  # logs travel in batches; send what is queued
    logs = client.read_logs(
        log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run])), limit=200
    )
    return "\n".join(log.message for log in logs)


def planned_keys(recipe: Path, source: Source, start: str, end: str) -> set[str]:
    config = load_config(recipe)
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return {r.key for r in get_source(source).requests(config, first, last)}


def complete_keys(tmp_path: Path) -> set[str]:
    cache = RawCache(tmp_path / "data" / "raw")
    entries = cache.entries("complete")
    for e in entries:
        assert e.path is not None and (cache.root / e.path).stat().st_size == e.size
    return {e.key for e in entries}


def delete_limit(client: SyncPrefectClient, store: str) -> None:
    with contextlib.suppress(ObjectNotFound):
        client.delete_global_concurrency_limit_by_name(limit_name(store))


def test_era5_fetches_once_within_the_store_limit(
    tmp_path: Path, client: SyncPrefectClient
) -> None:
    delete_limit(client, "cds")  # so that this run creates it from the recipe
    recipe = write_recipe(tmp_path, ingest={"max_concurrent_requests": 1})
    expected = planned_keys(recipe, "era5", "2019-06-01", "2019-06-03")

    state = ingest_era5("2019-06-01", "2019-06-03", str(recipe), return_state=True)

    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["requests"] == summary["fetched"] == len(expected)
    assert summary["failed"] == summary["reused"] == 0
    assert summary["raw_cache"] == str((tmp_path / "data" / "raw").resolve())
    assert complete_keys(tmp_path) == expected
    # the limit was created with the recipe's size, and every slot was given back
    limit = client.read_global_concurrency_limit_by_name("aircast-cds")
    assert (limit.limit, limit.active, limit.active_slots) == (1, True, 0)
    # one slot: no two jobs were ever in flight at once (submission .. completion)
    spans = _job_spans(tmp_path)
    assert len(spans) == len(expected)
    for (_, end_a), (start_b, _) in itertools.pairwise(spans):
        assert end_a <= start_b
    # what an operator reads in the UI
    found = artifacts(client, run_id(state))
    table = found["ingest-era5"].data
    assert f"{len(expected)} requests: {len(expected)} fetched, 0 already in the cache" in table
    assert table.count("| fetched |") == len(expected)
    assert found["ingest-era5-progress"].data == 100.0
    first_logs = log_text(client, run_id(state))
    assert "fetched" in first_logs and "progress:" in first_logs

    # the second run, with a recipe asking for more slots: nothing is fetched, the limit an
    # operator may have tuned is kept
    recipe = write_recipe(tmp_path, ingest={"max_concurrent_requests": 3})
    again = ingest_era5("2019-06-01", "2019-06-03", str(recipe), return_state=True)

    assert again.is_completed(), again.message
    summary = again.result()
    assert (summary["fetched"], summary["reused"]) == (0, len(expected))
    said = f"nothing fetched: {len(expected)} requests already in the cache"
    assert said in artifacts(client, run_id(again))["ingest-era5"].data
    assert said in log_text(client, run_id(again))
    assert client.read_global_concurrency_limit_by_name("aircast-cds").limit == 1
    with sqlite3.connect(tmp_path / "data" / "raw" / "manifest.sqlite") as db:
        assert db.execute("SELECT MAX(submissions) FROM requests").fetchone() == (1,)


def _job_spans(tmp_path: Path) -> list[tuple[str, str]]:
    """(submitted, complete) times of each request, in order of submission."""
    events = RawCache(tmp_path / "data" / "raw").events()
    submitted = {key: time for key, time, event, _ in events if event == "submitted"}
    complete = {key: time for key, time, event, _ in events if event == "complete"}
    return sorted((submitted[k], complete[k]) for k in submitted)


def test_ingest_all_fetches_era5_and_both_cams_products(
    tmp_path: Path, client: SyncPrefectClient
) -> None:
    recipe = write_recipe(tmp_path)
    days = ("2019-06-01", "2019-06-02")
    # the session's server is shared: another test's recipe may have created the limit first
    delete_limit(client, "ads")

    state = ingest_all(*days, str(recipe), cams_forecast=True, return_state=True)

    assert state.is_completed(), state.message
    summaries = state.result()
    assert set(summaries) == {"era5", "cams-reanalysis", "cams-forecast"}
    expected: set[str] = set()
    for name, source in (
        ("era5", "era5"),
        ("cams-reanalysis", "eac4"),
        ("cams-forecast", "forecast"),
    ):
        keys = planned_keys(recipe, source, *days)
        assert summaries[name]["fetched"] == len(keys), name
        expected |= keys
    assert complete_keys(tmp_path) == expected
    assert client.read_global_concurrency_limit_by_name("aircast-ads").limit == 2
    # one batch, as `aircast ingest` runs it: one artifact per source in this run
    keys = set(artifacts(client, run_id(state)))
    assert {"ingest-era5", "ingest-cams-reanalysis", "ingest-cams-forecast"} <= keys


def test_cams_forecast_rerun_reuses_and_reports_product(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path)
    first = ingest_cams("2019-06-01", "2019-06-01", str(recipe), "forecast", return_state=True)
    again = ingest_cams("2019-06-01", "2019-06-01", str(recipe), "forecast", return_state=True)

    assert first.is_completed() and again.is_completed(), (first.message, again.message)
    assert first.result()["source"] == "forecast"
    assert again.result()["fetched"] == 0
    assert again.result()["reused"] == first.result()["fetched"] > 0


@pytest.mark.parametrize(
    ("start", "end", "said"),
    [
        ("2019-06-31", "2019-07-02", "start = '2019-06-31' is not a date; write it as YYYY-MM-DD"),
        ("2019-06-03", "2019-06-01", "end 2019-06-01 is before start 2019-06-03; swap them"),
        ("1st June", "2019-06-01", "start = '1st June' is not a date"),
    ],
)
def test_a_bad_date_fails_the_flow_before_anything_is_fetched(
    tmp_path: Path, client: SyncPrefectClient, start: str, end: str, said: str
) -> None:
    recipe = write_recipe(tmp_path)

    state = ingest_era5(start, end, str(recipe), return_state=True)

    assert state.is_failed()
    assert said in (state.message or "")
    assert not (tmp_path / "data").exists()  # not even an empty cache
    tasks = client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id(state)]))
    )
    assert tasks == []


def test_failed_requests_fail_the_flow_after_reporting_them(
    tmp_path: Path, client: SyncPrefectClient
) -> None:
    # every job arrives damaged once (quarantined, asked again) and 2019-06-02 has no data
    recipe = write_recipe(tmp_path, sandbox={"faults": "corrupt=1,missing=2019-06-02"})
    good = planned_keys(recipe, "era5", "2019-06-01", "2019-06-01")

    state = ingest_era5("2019-06-01", "2019-06-02", str(recipe), return_state=True)

    assert state.is_failed()
    message = state.message or ""
    assert "requests for 2019-06-01..2019-06-02 failed" in message
    assert "2019-06-02" in message and "running the ingestion again fetches only these" in message
    table = artifacts(client, run_id(state))["ingest-era5"].data
    assert "requests failed; run the ingestion again to retry them" in table
    assert "| 2019-06-02 | failed |" in table and "MARS returned no data" in table
    assert good <= complete_keys(tmp_path)  # what arrived is kept
    rows = [line for line in table.splitlines() if "| 2019-06-01 | fetched |" in line]
    assert rows and all("| fetched | 1 | 1 |" in row for row in rows)  # retried, quarantined

    # the store recovers: the next run fetches only what failed
    recipe = write_recipe(tmp_path, sandbox={"faults": None})
    again = ingest_era5("2019-06-01", "2019-06-02", str(recipe), return_state=True)
    assert again.is_completed(), again.message
    summary = again.result()
    assert summary["reused"] >= len(good) and summary["fetched"] > 0


@pytest.mark.parametrize("problem", ["store down", "wrong key"])
def test_an_unusable_store_is_not_sent_the_other_requests(
    tmp_path: Path, client: SyncPrefectClient, problem: str
) -> None:
    """The ingest job's rule, through the flow: the first request that finds the store down or
    refusing the key fails; the others are not sent (nor recorded), instead of each waiting out
    its retries (tests/sources/test_ingest_reliability.py holds the same through the CLI)."""
    delete_limit(client, "cds")
    with SandboxServer(key="the-right-key") as server:
        url = "http://127.0.0.1:9/api" if problem == "store down" else server.url
        store = {"url": url, "key_env": "AIRCAST_TEST_FLOW_KEY"}
        recipe = write_recipe(
            tmp_path,
            datastores={"cds": store},
            ingest={"max_concurrent_requests": 1, "http_tries": 2, "download_tries": 2},
        )
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AIRCAST_TEST_FLOW_KEY", "a-wrong-key")
            state = ingest_era5("2019-06-01", "2019-06-04", str(recipe), return_state=True)
        assert state.is_failed()
        if problem == "wrong key":
            assert sum(s.submissions for s in server.stats.values()) == 0
    planned = planned_keys(recipe, "era5", "2019-06-01", "2019-06-04")
    table = artifacts(client, run_id(state))["ingest-era5"].data
    assert table.count("not sent:") == len(planned) - 1, table
    with sqlite3.connect(tmp_path / "data" / "raw" / "manifest.sqlite") as db:
        rows = db.execute("SELECT status FROM requests").fetchall()
    assert rows == [("failed",)]


def test_a_licence_not_accepted_stops_only_its_dataset(
    tmp_path: Path, client: SyncPrefectClient
) -> None:
    """The ingest job's licence rule, through the flow: ERA5 single levels is refused for its
    licence, so its other requests are not sent, while ERA5 pressure levels on the same store
    are fetched (tests/sources/test_ingest_reliability.py holds the same through the CLI)."""
    delete_limit(client, "cds")
    refused = "reanalysis-era5-single-levels"
    with SandboxServer(key="the-right-key", faults=f"licence={refused}") as server:
        recipe = write_recipe(
            tmp_path,
            datastores={"cds": {"url": server.url, "key_env": "AIRCAST_TEST_FLOW_KEY"}},
            variables={"weather": ["t2m", "t_850"], "static": ["lsm"]},
            ingest={"max_concurrent_requests": 1, "http_tries": 2, "download_tries": 2},
        )
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AIRCAST_TEST_FLOW_KEY", "the-right-key")
            state = ingest_era5("2019-06-01", "2019-06-02", str(recipe), return_state=True)
        assert state.is_failed()
        sends = Counter()
        for stats in server.stats.values():
            sends[stats.dataset] += stats.submissions
    assert sends[refused] == 1 and sends["reanalysis-era5-pressure-levels"] == 2
    table = artifacts(client, run_id(state))["ingest-era5"].data
    assert "its licence is not accepted; accept it on" in table and "manage-licences" in table
    # five requests: the static field and two days of single levels (one refused, two not
    # sent), two days of pressure levels (fetched)
    assert len(planned_keys(recipe, "era5", "2019-06-01", "2019-06-02")) == 5
    assert table.count(f"not sent: {refused} is refused by CDS") == 2, table
    assert table.count("| fetched |") == 2, table


@pytest.fixture
def keyed_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SandboxServer, str]]:
    """A sandbox data store that opens only with a distinctive key, and no key in the env."""
    key = f"k3y-{uuid.uuid4().hex}"
    monkeypatch.delenv("AIRCAST_TEST_CDS_KEY", raising=False)
    with SandboxServer(key=key) as server:
        yield server, key
    for name in SECRET_BLOCKS.values():
        with contextlib.suppress(ObjectNotFound, ValueError):
            SecretBlock.delete(name)


def test_a_secret_block_key_is_used_and_never_leaks(
    tmp_path: Path, client: SyncPrefectClient, keyed_store: tuple[SandboxServer, str]
) -> None:
    server, key = keyed_store
    recipe = write_recipe(
        tmp_path, datastores={"cds": {"url": server.url, "key_env": "AIRCAST_TEST_CDS_KEY"}}
    )

    # no block and no variable: a clear error that says where the key was looked for
    no_key = ingest_era5("2019-06-01", "2019-06-01", str(recipe), return_state=True)
    assert no_key.is_failed()
    assert "no API key for the CDS" in (no_key.message or "")
    assert "AIRCAST_TEST_CDS_KEY" in (no_key.message or "")

    SecretBlock(value=key).save(SECRET_BLOCKS["cds"], overwrite=True)
    state = ingest_era5("2019-06-01", "2019-06-01", str(recipe), return_state=True)

    assert state.is_completed(), state.message
    assert state.result()["fetched"] > 0
    assert server.stats  # the keyed server did serve the requests

    for run in (no_key, state):
        flow_run = client.read_flow_run(run_id(run))
        seen = {
            "parameters": json.dumps(flow_run.parameters),
            "state": f"{flow_run.state.message if flow_run.state else ''}",
            "logs": log_text(client, flow_run.id),
            "artifacts": json.dumps(
                [a.model_dump(mode="json") for a in artifacts(client, flow_run.id).values()]
            ),
            "tasks": json.dumps(
                [
                    t.model_dump(mode="json")
                    for t in client.read_task_runs(
                        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
                    )
                ]
            ),
            "result": json.dumps(run.result(raise_on_failure=False), default=str),
        }
        assert seen["logs"]  # the search below is over something
        for where, text in seen.items():
            assert key not in text, f"the key leaked into the {where}"
    manifest = (tmp_path / "data" / "raw" / "manifest.sqlite").read_bytes()
    assert key.encode() not in manifest


def test_a_key_logged_by_mistake_is_masked_in_prefect(
    tmp_path: Path, client: SyncPrefectClient, keyed_store: tuple[SandboxServer, str]
) -> None:
    """Defence in depth: even a log line that carries the key reaches the API masked."""
    server, key = keyed_store
    recipe = write_recipe(
        tmp_path, datastores={"cds": {"url": server.url, "key_env": "AIRCAST_TEST_CDS_KEY"}}
    )
    SecretBlock(value=key).save(SECRET_BLOCKS["cds"], overwrite=True)

    @flow
    def careless() -> None:
        from aircast.sources.datastore import mask_secrets_in

        mask_secrets_in("prefect.flow_runs", "prefect.task_runs")
        with store_endpoint(load_config(recipe), "cds") as endpoint:
            get_run_logger().info("the key is %s", endpoint.key.reveal())

    state = careless(return_state=True)

    assert state.is_completed(), state.message
    logs = log_text(client, run_id(state))
    assert "the key is ***" in logs
    assert key not in logs
