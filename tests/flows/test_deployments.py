"""flows/deploy.py: the deployments, applied to the session's Prefect server and read back.

Nothing is served and no flow runs: what an operator sees in the UI (names, the schedule, the
concurrency limits, the run form's parameters) and what a worker needs (an entrypoint it can
import, its pool and code location) are checked as the server stores them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pytest
from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyLimitStrategy
from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectNotFound
from prefect.flows import load_flow_from_entrypoint

from flows.backfill import FORECAST_DEPLOYMENT
from flows.deploy import (
    CPU_POOL,
    DAILY_CRON,
    GPU_POOL,
    ISO_DATE_PATTERN,
    POOLS_FILE,
    REPO_ROOT,
    deployments,
    main,
    pool_assignments,
)

pytestmark = pytest.mark.usefixtures("prefect_server")

#: A recipe that is not the default, to see that --config reaches every deployment.
CONFIG = "configs/other-recipe.yaml"

EXPECTED = {
    "ingest-all/ingest-all": (CPU_POOL, None),
    "build-training-store/build-training-store": (CPU_POOL, 1),
    "extend-training-store/extend-training-store": (CPU_POOL, 1),
    "train-forecaster/train-forecaster": (GPU_POOL, 1),
    "daily-forecast/daily-forecast": (GPU_POOL, 2),
    "backfill-forecasts/backfill-forecasts": (CPU_POOL, 1),
}


@pytest.fixture(scope="module")
def applied() -> dict[str, DeploymentResponse]:
    """Every deployment applied (not served) and read back from the server, by full name."""
    found = {}
    with get_client(sync_client=True) as client:
        for deployment in deployments(CONFIG):
            response = client.read_deployment(cast(UUID, deployment.apply()))
            found[deployment.full_name] = response
    return found


def _schema(deployment: DeploymentResponse) -> dict[str, Any]:
    """The parameter schema the UI's run form is built from."""
    assert deployment.parameter_openapi_schema is not None
    return deployment.parameter_openapi_schema


def test_names(applied: dict[str, DeploymentResponse]) -> None:
    assert set(applied) == set(EXPECTED)
    assert FORECAST_DEPLOYMENT in applied  # what backfills create their runs from


def test_only_the_daily_forecast_is_scheduled_daily_at_07_utc(
    applied: dict[str, DeploymentResponse],
) -> None:
    for name, deployment in applied.items():
        if name != FORECAST_DEPLOYMENT:
            assert deployment.schedules == [], name
    (schedule,) = applied[FORECAST_DEPLOYMENT].schedules
    assert schedule.active
    cron: Any = schedule.schedule
    assert cron.cron == DAILY_CRON == "0 7 * * *"
    assert cron.timezone == "UTC"


def test_concurrency_limits(applied: dict[str, DeploymentResponse]) -> None:
    for name, (_, limit) in EXPECTED.items():
        deployment = applied[name]
        if limit is None:
            assert deployment.global_concurrency_limit is None, name
            continue
        assert deployment.global_concurrency_limit is not None, name
        assert deployment.global_concurrency_limit.limit == limit, name
        # a run over the limit waits for a slot; none is cancelled
        assert deployment.concurrency_options is not None, name
        assert deployment.concurrency_options.collision_strategy == (
            ConcurrencyLimitStrategy.ENQUEUE
        )


def test_every_deployment_defaults_to_the_config_it_was_built_with(
    applied: dict[str, DeploymentResponse],
) -> None:
    for name, deployment in applied.items():
        assert deployment.parameters == {"config": CONFIG}, name
        config = _schema(deployment)["properties"]["config"]
        assert config["default"] == CONFIG, name
        assert config["type"] == "string"
        assert "recipe" in config["description"]


def test_date_parameters_are_iso_strings_the_form_checks(
    applied: dict[str, DeploymentResponse],
) -> None:
    backfill = _schema(applied["backfill-forecasts/backfill-forecasts"])
    assert backfill["required"] == ["start", "end"]
    for name in ("start", "end"):
        prop = backfill["properties"][name]
        assert prop["type"] == "string"
        assert prop["pattern"] == ISO_DATE_PATTERN
        assert "YYYY-MM-DD" in prop["description"]
        assert "``" not in prop["description"]
    assert backfill["properties"]["max_concurrent"]["default"] == 2
    assert backfill["properties"]["deployment"]["default"] == FORECAST_DEPLOYMENT

    daily = _schema(applied[FORECAST_DEPLOYMENT])
    date = daily["properties"]["date"]
    assert date["default"] is None  # the schedule's runs: today (UTC)
    assert "required" not in daily or "date" not in daily["required"]
    (string,) = [branch for branch in date["anyOf"] if branch.get("type") == "string"]
    pattern = re.compile(string["pattern"])
    assert pattern.match("2019-06-02") and pattern.match("")
    assert not pattern.match("2019/06/02") and not pattern.match("June 2")

    extend = _schema(applied["extend-training-store/extend-training-store"])
    assert extend["properties"]["start"]["pattern"] == ISO_DATE_PATTERN


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entrypoints_are_relative_to_the_repo_and_importable(
    applied: dict[str, DeploymentResponse], name: str
) -> None:
    deployment = applied[name]
    assert deployment.entrypoint is not None
    path, function = deployment.entrypoint.split(":")
    assert not Path(path).is_absolute()
    assert (REPO_ROOT / path).is_file()
    flow: Flow[..., Any] = load_flow_from_entrypoint(f"{REPO_ROOT / path}:{function}")
    assert flow.name == name.split("/")[0]


def test_pools_yaml_assigns_every_deployment_to_its_pool() -> None:
    """infra/pools.yaml (the one place naming the pools) agrees with the deployments."""
    if not POOLS_FILE.is_file():
        pytest.skip(f"{POOLS_FILE} is not there yet: the constants of flows/deploy.py apply")
    assigned = pool_assignments()
    for name, (pool, _) in EXPECTED.items():
        assert assigned.get(name.split("/")[0]) == pool, f"{name}: {POOLS_FILE}"


def test_pools_registers_to_the_work_pools_without_an_image(
    client: SyncPrefectClient, tmp_path: Path
) -> None:
    """``--pools``: each deployment on its pool, its code read from --code-dir on the worker."""
    for pool in (CPU_POOL, GPU_POOL):
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    code_dir = tmp_path / "aircast"
    assert main(["--pools", "--config", CONFIG, "--code-dir", str(code_dir)]) == 0
    for name, (pool, _) in EXPECTED.items():
        deployment = client.read_deployment_by_name(name)
        assert deployment.work_pool_name == pool, name
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(code_dir)}}
        ], name
        assert deployment.parameters == {"config": CONFIG}, name
        assert deployment.entrypoint is not None
        assert not Path(deployment.entrypoint.split(":")[0]).is_absolute()
    daily = client.read_deployment_by_name(FORECAST_DEPLOYMENT)
    assert [s.schedule.cron for s in daily.schedules] == [DAILY_CRON]  # type: ignore[union-attr]
