"""The build flows end to end: a tiny recipe ingested once from the sandbox, a real Prefect
server (``prefect_server``), stores in each test's tmp_path, and what an operator would check
through the Prefect API (task runs, artifacts)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
import yaml
from distributed import LocalCluster, get_task_stream
from flowtools import run_id
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from aircast.config import DEMO_CONFIG, parse_config
from aircast.jobs.build import run_build
from aircast.jobs.executor import report_key
from aircast.sources.cache import RawCache
from aircast.store.reader import open_store
from aircast.testing import ingest_from_sandbox, merge_sections, snapshot
from flows.build import build_training_store, extend_training_store

pytestmark = pytest.mark.usefixtures("prefect_server")

#: the recipe's span (one part per day) and the days an extension appends
FIRST, LAST = dt.date(2019, 6, 1), dt.date(2019, 6, 4)
EXTRA_FIRST = EXTRA_LAST = dt.date(2019, 6, 5)
N_PARTS = 4
STEPS_PER_DAY = 8


def recipe_data(root: Path, store_url: Path, **changes: Any) -> dict[str, Any]:
    """configs/demo.yaml cut down: a 6°x6° region (the sandbox renders ERA5 at 0.25°), an
    instant and an accumulated weather field, a pollutant, a static field, four days of
    periods in parts of one day; raw cache under ``root``, the store at ``store``."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["name"] = "tiny_Build"  # not a valid artifact key as it is
    data["region"] = {"north": 33.0, "south": 27.0, "west": 30.0, "east": 36.0}
    data["variables"] = {"weather": ["t2m", "tp"], "pollutants": ["pm2p5"], "static": ["lsm"]}
    data["periods"] = {
        "train": {"start": "2019-06-01", "end": "2019-06-02"},
        "validation": {"start": "2019-06-03", "end": "2019-06-03"},
        "test": {"start": "2019-06-04", "end": "2019-06-04"},
    }
    data["paths"] = {"root": str(root)}
    data["ingest"] = {"sleep_max": 0.2}
    data["store"] = {"url": str(store_url), "part_days": 1}
    # the training section, if any, is not what these tests are about
    data.pop("training", None)
    merge_sections(data, changes)
    return data


def write_recipe(tmp_path: Path, root: Path, name: str = "recipe.yaml", **changes: Any) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe_data(root, tmp_path / "store.zarr", **changes)))
    return path


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw cache with ERA5 and EAC4 for the recipe's days and the extension's (ingested once,
    without Prefect: the ingest flows have their own tests)."""
    root = tmp_path_factory.mktemp("build-raw")
    config = parse_config(recipe_data(root, root / "unused.zarr"), "tiny build recipe")
    ingest_from_sandbox(config, FIRST, EXTRA_LAST)
    return root


def task_runs(client: SyncPrefectClient, state: State) -> list[TaskRun]:
    return client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id(state)]))
    )


def artifact(client: SyncPrefectClient, state: State, key: str) -> str:
    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id(state)]))
    )
    data = {a.key: a.data for a in found}
    assert key in data, sorted(k for k in data if k)
    text = data[key]
    assert isinstance(text, str)
    return text


def test_build_loads_each_part_as_a_task_and_a_rerun_loads_nothing(
    tmp_path: Path, raw_root: Path, client: SyncPrefectClient
) -> None:
    recipe = write_recipe(tmp_path, raw_root)
    store = tmp_path / "store.zarr"

    state = build_training_store(str(recipe), return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert result["loaded"] == list(range(N_PARTS)) and result["current"] == []
    assert result["summary"]["n_times"] == 4 * STEPS_PER_DAY
    assert result["summary"]["channels"] == ["t2m", "tp", "pm2p5", "lsm"]
    with xr.open_zarr(store) as ds:
        assert ds["fields"].dims == ("time", "channel", "latitude", "longitude")
        assert ds.sizes["time"] == 4 * STEPS_PER_DAY
        assert str(ds["time"].values[-1])[:13] == "2019-06-04T21"
        assert bool(ds["fields"].notnull().all())
    # every stage is a task; each part its own task run, named after its days
    runs = task_runs(client, state)
    parts = sorted(r.name for r in runs if r.task_key.startswith("load_part"))
    assert parts == [f"part {i} 2019-06-0{i + 1}..2019-06-0{i + 1}" for i in range(N_PARTS)]
    assert len({r.id for r in runs if r.name in parts}) == N_PARTS
    assert all(r.state is not None and r.state.is_completed() for r in runs)
    stages = {r.name.rsplit("-", 1)[0] for r in runs if r.name not in parts}
    assert stages == {
        "check-inputs",
        "init-store",
        "part-statuses",
        "finalise-store",
        "verify-store",
    }
    # the artifact: the inspect summary and a row per part
    key = report_key("training-store", "tiny_Build")
    assert key == "training-store-tiny-build"
    text = artifact(client, state, key)
    assert "4 parts: 4 loaded, 0 already current" in text
    assert open_store(str(store)).summary() in text
    for i in range(N_PARTS):
        assert f"| {i} | 2019-06-0{i + 1}..2019-06-0{i + 1} | loaded | 0 |" in text
    before = snapshot(store)

    again = build_training_store(str(recipe), return_state=True)

    assert again.is_completed(), again.message
    assert again.result()["loaded"] == []
    assert again.result()["current"] == list(range(N_PARTS))
    assert not [r for r in task_runs(client, again) if r.task_key.startswith("load_part")]
    text = artifact(client, again, key)
    assert f"nothing loaded: {N_PARTS} parts already current" in text
    assert text.count("| already current |") == N_PARTS
    assert snapshot(store) == before  # the same bytes: nothing was rewritten differently


def test_a_part_that_fails_fails_the_run_and_the_next_run_loads_only_it(
    tmp_path: Path, raw_root: Path, client: SyncPrefectClient
) -> None:
    # a private raw cache whose EAC4 file of 2019-06-03 is damaged after it was ingested
    root = tmp_path / "data"
    shutil.copytree(raw_root / "raw", root / "raw")
    cache = RawCache(root / "raw")
    [entry] = [
        e for e in cache.entries("complete") if e.day == dt.date(2019, 6, 3) and "eac4" in e.dataset
    ]
    assert entry.path is not None
    damaged = cache.root / entry.path
    good = damaged.read_bytes()
    damaged.write_bytes(b"GRIB" + b"\0" * 100)
    recipe = write_recipe(tmp_path, root)

    state = build_training_store(str(recipe), return_state=True)

    assert state.is_failed()
    message = state.message or ""
    assert "1 of 4 parts failed: part 2 (2019-06-03..2019-06-03)" in message
    assert "running the build again loads only these" in message
    text = artifact(client, state, "training-store-tiny-build")
    assert "| 2 | 2019-06-03..2019-06-03 | failed |" in text
    assert text.count("| loaded |") == 3
    assert "state: building" in text  # the summary says it is not finished

    damaged.write_bytes(good)
    again = build_training_store(str(recipe), return_state=True)

    assert again.is_completed(), again.message
    assert again.result()["loaded"] == [2]
    assert "4 parts: 1 loaded, 3 already current" in again.result()["headline"]
    assert open_store(str(tmp_path / "store.zarr")).complete


def test_a_recipe_with_days_never_ingested_fails_before_the_store_exists(
    tmp_path: Path, raw_root: Path, client: SyncPrefectClient
) -> None:
    recipe = write_recipe(
        tmp_path, raw_root, periods={"test": {"start": "2019-06-04", "end": "2019-06-08"}}
    )

    state = build_training_store(str(recipe), return_state=True)

    assert state.is_failed()
    message = state.message or ""
    assert "were never ingested" in message
    assert "aircast ingest CONFIG --start 2019-06-06 --end 2019-06-08" in message
    assert not (tmp_path / "store.zarr").exists()
    assert [r.name.rsplit("-", 1)[0] for r in task_runs(client, state)] == ["check-inputs"]


def test_extend_appends_days_and_a_bad_date_changes_nothing(
    tmp_path: Path, raw_root: Path, client: SyncPrefectClient
) -> None:
    recipe = write_recipe(tmp_path, raw_root)
    store = tmp_path / "store.zarr"
    # the store to extend, built without Prefect (the build flow has its own tests)
    run_build(parse_config(yaml.safe_load(recipe.read_text())))
    before = snapshot(store)

    for start, end, said in (
        ("2019-06-31", "2019-06-05", "start = '2019-06-31' is not a date; write it as YYYY-MM-DD"),
        ("2019-06-05", "2019-06-04", "end 2019-06-04 is before start 2019-06-05; swap them"),
    ):
        bad = extend_training_store(str(recipe), start, end, return_state=True)
        assert bad.is_failed()
        assert said in (bad.message or "")
        assert task_runs(client, bad) == []
        assert snapshot(store) == before

    state = extend_training_store(
        str(recipe), EXTRA_FIRST.isoformat(), EXTRA_LAST.isoformat(), return_state=True
    )

    assert state.is_completed(), state.message
    result = state.result()
    assert result["appended"]["first_day"] == "2019-06-05"
    assert result["appended"]["n_times"] == STEPS_PER_DAY
    with xr.open_zarr(store) as ds:
        assert ds.sizes["time"] == 5 * STEPS_PER_DAY
        assert str(ds["time"].values[-1])[:13] == "2019-06-05T21"
        assert bool(ds["fields"].notnull().all())
    text = artifact(client, state, "training-store-tiny-build")
    assert "appended 2019-06-05..2019-06-05: 8 times, 0 missing" in text
    assert open_store(str(store)).summary() in text
    # the chunks already there were not rewritten
    after = snapshot(store)
    chunks = [k for k in before if k.startswith("fields/c/")]
    assert chunks and all(after[k] == before[k] for k in chunks)

    again = extend_training_store(
        str(recipe), EXTRA_FIRST.isoformat(), EXTRA_LAST.isoformat(), return_state=True
    )
    assert again.is_completed(), again.message
    assert again.result()["appended"]["first_day"] is None
    assert "nothing to do" in again.result()["headline"]


def test_parts_run_on_the_dask_cluster_the_recipe_names(
    tmp_path: Path, raw_root: Path, client: SyncPrefectClient
) -> None:
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    ) as cluster:
        recipe = write_recipe(
            tmp_path, raw_root, store={"dask_scheduler": cluster.scheduler_address}
        )
        with cluster.get_client() as dask_client, get_task_stream(dask_client) as stream:
            state = build_training_store(str(recipe), return_state=True)

    assert state.is_completed(), state.message
    assert state.result()["loaded"] == list(range(N_PARTS))
    ran = sorted(str(t["key"]) for t in stream.data)
    assert len(ran) == N_PARTS and all(k.startswith("aircast-load-part-") for k in ran)
    # still one Prefect task run per part, each waiting for its part on the cluster
    runs = [r for r in task_runs(client, state) if r.task_key.startswith("load_part")]
    assert len(runs) == N_PARTS
    # the same bytes as a serial build of the same recipe
    serial = tmp_path / "serial.zarr"
    run_build(parse_config(recipe_data(raw_root, serial), "tiny build recipe"))
    assert snapshot(serial) == snapshot(tmp_path / "store.zarr")
