"""A backfill started from the Prefect UI, in a real browser, end to end.

A real ``prefect server start`` (its own home, its own port, the UI on), the deployments served
by ``python -m flows.deploy --serve`` with the tiny trained recipe of
:func:`aircast.testing.ensure_tiny_forecaster`, and headless Chromium driven by Playwright:
Deployments → backfill-forecasts → Run → Custom run, three dates in the form, Submit. The runs
are then followed through the API until the backfill and its three daily-forecast runs
complete, and the forecast store must hold the three inits.

Screenshots are kept in ``test-artifacts/ui-backfill/`` under the repository root (the form
filled in, the run page, the runs list at the end; ``failure.png`` when a step fails), for a
person to look at after a CI run. On a failure the page's text and the logs of the server and
of the served deployments are printed.

Needs Chromium (Debian: ``apt-get install chromium``) and the Playwright package (the ``dev``
extra); the browser Playwright would download is never used. Without them the test is skipped,
except under CI, where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pytest

from aircast.config import load_config
from aircast.testing import ensure_tiny_forecaster, free_port
from flows.backfill import FORECAST_DEPLOYMENT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui-backfill"
CHROMIUM = Path(os.environ.get("AIRCAST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BACKFILL_DEPLOYMENT = "backfill-forecasts/backfill-forecasts"
#: Inside the tiny store (2019-06-01..06-06), each with the day before for its inputs.
DATES = ("2019-06-02", "2019-06-03", "2019-06-04")
SERVER_START_S = 120
RUNS_TIMEOUT_S = 480
#: Playwright's wait for any one element (the UI's first load compiles nothing, but a busy
#: 2-core machine is running a server and a runner beside the browser).
UI_TIMEOUT_MS = 60_000


def _require_browser() -> None:
    problem = None
    if importlib.util.find_spec("playwright") is None:
        problem = "the Playwright package is missing: pip install -e '.[dev]'"
    elif not CHROMIUM.is_file():
        problem = (
            f"no Chromium at {CHROMIUM}: apt-get install chromium (or set AIRCAST_CHROMIUM to "
            "a Chromium binary); Playwright's own browser download is not used"
        )
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def _tail(path: Path, lines: int = 60) -> str:
    if not path.is_file():
        return f"({path} was not written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    """The server and the served deployments, as the browser and the test see them."""

    url: str  # the UI, http://127.0.0.1:PORT
    api: str  # http://127.0.0.1:PORT/api
    recipe: Path
    logs: dict[str, Path]

    def diagnostics(self) -> str:
        return "\n".join(
            f"----- {name} log ({path}) -----\n{_tail(path)}" for name, path in self.logs.items()
        )


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess in its own process group, output to ``log``; stopped (group) at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def _wait_for(
    what: str, ready: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} was not ready after {timeout:.0f} s:\n{_tail(log)}")


def _healthy(api: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def _client(api: str) -> Iterator[Any]:
    """A sync Prefect client of the test's own server (not the session's test harness)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        yield client


def _served(api: str) -> bool:
    """Both deployments the test uses are registered (the runner registers, then polls)."""
    from prefect.exceptions import ObjectNotFound

    with _client(api) as client:
        try:
            client.read_deployment_by_name(BACKFILL_DEPLOYMENT)
            client.read_deployment_by_name(FORECAST_DEPLOYMENT)
        except ObjectNotFound:
            return False
    return True


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A Prefect server with its UI, and the deployments served with the tiny recipe."""
    _require_browser()
    root = tmp_path_factory.mktemp("ui-backfill")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = f"{url}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(root / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="true",
        # the UI a person lands on at http://127.0.0.1:PORT/ (Prefect 3.8's default): pinned,
        # since the selectors below are this UI's
        PREFECT_SERVER_UI_V2_ENABLED="true",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        PREFECT_UI_API_URL=api,
        PREFECT_UI_URL=url,
        PREFECT_API_URL=api,
        PYTHONUNBUFFERED="1",
    )
    logs = {"prefect server": root / "server.log", "flows.deploy --serve": root / "serve.log"}
    server_args = [
        str(Path(sys.executable).with_name("prefect")),
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with _process(server_args, env, logs["prefect server"]) as server:
        # the tiny store and a few-step model while the server migrates its database
        recipe = ensure_tiny_forecaster(root / "tiny")
        _wait_for(
            "prefect server", lambda: _healthy(api), server, logs["prefect server"], SERVER_START_S
        )
        serve_args = [sys.executable, "-m", "flows.deploy", "--serve", "--config", str(recipe)]
        with _process(serve_args, env, logs["flows.deploy --serve"]) as served:
            _wait_for(
                "flows.deploy --serve",
                lambda: _served(api),
                served,
                logs["flows.deploy --serve"],
                120,
            )
            yield Stack(url=url, api=api, recipe=recipe, logs=logs)


def _runs(api: str, deployment: str) -> list[Any]:
    """The runs of ``deployment`` that were asked for (not the schedule's future ones)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with _client(api) as client:
        found = client.read_deployment_by_name(deployment)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id]))
        )
    return [r for r in runs if r.auto_scheduled is not True]


def _follow(api: str, run_id: UUID, timeout: float) -> Any:
    """The run once it is final (it and the forecasts it waits for), or a failure."""
    with _client(api) as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                return run
            time.sleep(2)
    states = {r.name: r.state_name for r in _runs(api, FORECAST_DEPLOYMENT)}
    pytest.fail(f"the backfill did not finish within {timeout:.0f} s; forecast runs: {states}")


def _shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_backfill_of_three_dates_from_the_ui(stack: Stack) -> None:
    from playwright.sync_api import expect, sync_playwright

    from aircast.forecast.reader import open_forecast

    if ARTIFACTS.is_dir():
        shutil.rmtree(ARTIFACTS)
    shots: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(UI_TIMEOUT_MS)
        expect.set_options(timeout=UI_TIMEOUT_MS)
        step = "open the UI"
        try:
            page.goto(stack.url)
            step = "open the backfill-forecasts deployment"
            page.get_by_role("link", name="Deployments", exact=True).click()
            page.get_by_role("link", name="backfill-forecasts", exact=True).first.click()
            step = "open Run → Custom run"
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Custom run").click()
            step = "fill the run form"
            page.get_by_label("start", exact=True).fill(DATES[0])
            page.get_by_label("end", exact=True).fill(DATES[-1])
            # the recipe --config gave every deployment, shown as the form's default
            expect(page.get_by_label("config (Optional)", exact=True)).to_have_value(
                str(stack.recipe)
            )
            shots.append(_shot(page, "01-custom-run-form"))
            step = "submit the run"
            page.get_by_role("button", name="Submit", exact=True).click()
            # a toast says "<run name> scheduled to start now", with a link to the run
            expect(page.get_by_text(re.compile("scheduled to start"))).to_be_visible()
            step = "open the backfill's run page"
            page.get_by_role("button", name="View run").click()
            page.wait_for_url(re.compile(r".*/runs/flow-run/[0-9a-f-]{36}.*"))

            (backfill,) = _runs(stack.api, BACKFILL_DEPLOYMENT)
            assert str(backfill.id) in page.url
            assert backfill.parameters["start"] == DATES[0]
            assert backfill.parameters["end"] == DATES[-1]
            assert backfill.parameters["config"] == str(stack.recipe)

            step = "wait for the backfill and its forecasts"
            backfill = _follow(stack.api, backfill.id, RUNS_TIMEOUT_S)
            assert backfill.state is not None
            assert backfill.state.is_completed(), backfill.state.message
            page.reload()
            expect(page.get_by_text("Completed").first).to_be_visible()
            shots.append(_shot(page, "02-backfill-run"))
            step = "look at the backfill's artifacts"
            page.get_by_role("tab", name="Artifacts").click()
            # the table of dates and run states an operator reads (backfill-<recipe>)
            artifact = f"backfill-{load_config(stack.recipe).name}"
            expect(page.get_by_text(artifact, exact=True).first).to_be_visible()
            shots.append(_shot(page, "03-backfill-artifacts"))

            step = "look at the runs list"
            # the sidebar's link (a run page's breadcrumb also has one, to the same page)
            page.get_by_role("link", name="Runs", exact=True).first.click()
            for day in DATES:
                expect(page.get_by_text(f"forecast {day}", exact=True).first).to_be_visible()
            shots.append(_shot(page, "04-flow-runs"))
        except Exception:
            print(f"failed at: {step}; page {page.url}")
            try:
                _shot(page, "failure")
                print("----- page text -----")
                print(page.inner_text("body"))
            except Exception as exc:  # the page itself is gone
                print(f"(no page to show: {exc})")
            print(stack.diagnostics())
            raise
        finally:
            browser.close()

    forecasts = _runs(stack.api, FORECAST_DEPLOYMENT)
    by_date = {r.parameters["date"]: r for r in forecasts}
    assert sorted(by_date) == list(DATES), [r.name for r in forecasts]
    for day, run in by_date.items():
        assert run.state is not None and run.state.is_completed(), (day, run.state)
        assert run.parameters["config"] == str(stack.recipe)

    recipe = load_config(stack.recipe)
    store = open_forecast(recipe.forecast_url, storage_options=recipe.forecast.storage_options)
    published = {str(np.datetime64(t, "D")) for t in store.init_times}
    assert set(DATES) <= published, store

    for shot in shots:
        assert shot.is_file() and shot.stat().st_size > 20_000, shot
