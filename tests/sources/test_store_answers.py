"""The store's answers at the network seam, through the real client against the sandbox.

Each ``403`` the real service gives (a licence not accepted, a request over the cost limit, the
daily quota of requests) becomes its own error; a ``401`` stays a refused key. ``Retry-After``
is honoured up to ``sleep_max``; a store that never answers is given up on within
``unreachable_after`` while one that answers busy keeps its patience. What the client waited is
read from the seam's own log lines (tests never time the wall clock).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aircast.catalogue import DATASETS
from aircast.sandbox.faults import FaultPlan, FaultSpecError, request_hash
from aircast.sandbox.server import Renderer, SandboxServer
from aircast.sources.datastore import (
    DailyLimitError,
    DataStoreClient,
    Endpoint,
    KeyRefusedError,
    LicenceError,
    RequestTooLargeError,
    RetryPolicy,
    Secret,
    StoreUnreachableError,
    next_utc_midnight,
    retry_after_seconds,
)
from aircast.sources.era5 import ERA5_SOURCE
from aircast.sources.requests import SourceRequest
from aircast.testing import tiny_fetch_config
from aircast.vocab import ERA5_SINGLE

KEY = "AircastAnswersKey-2b7e4f1a-DO-NOT-PRINT"

pytestmark = [
    pytest.mark.timeout(120),
    # the client checks the store's messages when it is built, and warns if it cannot
    pytest.mark.filterwarnings("ignore:no answer from.*:UserWarning"),
]

DAY = dt.date(2019, 6, 5)


@pytest.fixture
def sandbox_options(fake_renderer: Renderer) -> dict[str, Any]:
    return {"key": KEY, "renderer": fake_renderer}


@pytest.fixture
def era5(tmp_path: Path) -> SourceRequest:
    (req,) = ERA5_SOURCE.requests(tiny_fetch_config(tmp_path / "unused"), DAY, DAY)
    return req


def client(url: str, key: str = KEY, **policy: Any) -> DataStoreClient:
    settings: dict[str, Any] = {"http_tries": 3, "sleep_max": 0.05, "timeout": 10.0}
    settings.update(policy)
    return DataStoreClient(
        Endpoint("ads", url, Secret(key), key_source="the variable K"), RetryPolicy(**settings)
    )


# ---------------------------------------------------------------------------------------------
# the 403s and the 401


def test_a_licence_not_accepted_names_the_dataset_and_its_page(
    sandbox: Callable[..., SandboxServer], era5: SourceRequest
) -> None:
    server = sandbox(f"licence={ERA5_SINGLE}")
    with pytest.raises(LicenceError) as caught:
        client(server.url).submit(era5.dataset, era5.request)
    message = str(caught.value)
    page = f"{server.url.removesuffix('/api')}/datasets/{ERA5_SINGLE}?tab=download#manage-licences"
    assert caught.value.dataset == ERA5_SINGLE and caught.value.page == page
    assert "required licences not accepted" in message and page in message
    assert "the variable K" in message and "other datasets go on" in message
    assert KEY not in message


def test_a_licence_refuses_only_its_dataset(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    from aircast.sources.cams import EAC4_SOURCE

    (eac4,) = EAC4_SOURCE.requests(tiny_fetch_config(tmp_path / "unused"), DAY, DAY)
    server = sandbox(f"licence={ERA5_SINGLE}")
    assert client(server.url).submit(eac4.dataset, eac4.request)  # served


def test_a_request_over_the_cost_limit_is_too_large(
    sandbox: Callable[..., SandboxServer], era5: SourceRequest
) -> None:
    fields = era5.parsed().n_fields
    server = sandbox(f"too_large={fields - 1}")
    with pytest.raises(RequestTooLargeError) as caught:
        client(server.url).submit(era5.dataset, era5.request)
    message = str(caught.value)
    assert "cost limits exceeded" in message and "Your request is too large" in message
    assert "fewer variables" in message
    # exactly at the limit is served
    assert client(sandbox(f"too_large={fields}").url).submit(era5.dataset, era5.request)


def test_the_daily_quota_says_when_to_resume(
    sandbox: Callable[..., SandboxServer], era5: SourceRequest
) -> None:
    server = sandbox("daily_cap=1")
    seam = client(server.url)
    seam.submit(era5.dataset, era5.request)
    with pytest.raises(DailyLimitError) as caught:
        seam.submit(era5.dataset, era5.request)
    message = str(caught.value)
    resume = next_utc_midnight()
    assert caught.value.resume_at == resume
    assert "Maximum number of daily requests reached" in message
    assert f"after {resume:%Y-%m-%d} 00:00 UTC" in message
    assert sum(s.jobs for s in server.stats.values()) == 1


def test_the_next_utc_midnight() -> None:
    late = dt.datetime(2024, 12, 31, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert next_utc_midnight(late) == dt.datetime(2025, 1, 2, tzinfo=dt.UTC)  # 04:59 UTC Jan 1
    assert next_utc_midnight(dt.datetime(2024, 3, 1, tzinfo=dt.UTC)) == dt.datetime(
        2024, 3, 2, tzinfo=dt.UTC
    )


def test_a_wrong_key_is_still_a_refused_key(
    sandbox: Callable[..., SandboxServer], era5: SourceRequest
) -> None:
    server = sandbox(f"licence={ERA5_SINGLE}")
    with pytest.raises(KeyRefusedError, match=r"refused the key from the variable K .*401"):
        client(server.url, key="AircastWrongKey-1").submit(era5.dataset, era5.request)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("licence=reanalysis-era6", "not a dataset of the sandbox"),
        ("too_large=many", "not a whole number"),
        ("daily_cap=-1", "at least 0"),
    ],
)
def test_a_bad_refusal_spec_is_named(spec: str, problem: str) -> None:
    with pytest.raises(FaultSpecError, match=problem):
        SandboxServer(faults=spec)


def test_refusals_round_trip_through_the_spec() -> None:
    plan = FaultPlan.parse(f"licence={ERA5_SINGLE}+{list(DATASETS)[2]},too_large=9,daily_cap=3")
    assert FaultPlan.parse(plan.to_spec()) == plan and plan.active


# ---------------------------------------------------------------------------------------------
# Retry-After


def waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        m
        for r in caplog.records
        if r.name == "aircast.sources.datastore" and "trying again in" in (m := r.getMessage())
    ]


@pytest.mark.parametrize(
    ("retry_after", "sleep_max", "expect"),
    [
        (0.05, 30.0, "trying again in 0.05 s (it asked for 0.05 s"),  # not sleep_max
        (3600.0, 0.05, "trying again in 0.05 s (it asked for 3600 s"),  # bounded
    ],
)
@pytest.mark.parametrize("fault", ["throttle", "server_error"])
def test_retry_after_is_honoured_up_to_sleep_max(
    sandbox: Callable[..., SandboxServer],
    era5: SourceRequest,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    retry_after: float,
    sleep_max: float,
    expect: str,
) -> None:
    # server_error=1 answers the submission or the first poll with one 5xx, drawn per request
    # and seed: the first seed that gives this request a 503 on its submission (which carries
    # a Retry-After, as a gateway's does)
    spec = f"retry_after={retry_after:g}"
    if fault == "server_error":
        rhash = request_hash(era5.dataset, dict(era5.request))
        seed = next(
            s
            for s in range(1000)
            if (plan := FaultPlan(rates={"server_error": 1.0}, seed=s)).server_error_site(rhash)
            == "submit"
            and plan.server_error_status(rhash) == 503
        )
        spec += f",server_error=1,seed={seed}"
    server = sandbox(spec)
    if fault == "throttle":
        server.queue_fault("throttle")
    caplog.set_level(logging.INFO, logger="aircast.sources.datastore")
    assert client(server.url, sleep_max=sleep_max).submit(era5.dataset, era5.request)
    code = "429" if fault == "throttle" else "503"
    (line,) = waits(caplog)
    assert f"answered {code}; {expect}" in line, line


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = dt.datetime(2015, 10, 21, 7, 28, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now) == 30.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:27:00 GMT", now) == 0.0


# ---------------------------------------------------------------------------------------------
# an unreachable store


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/api"


def _refused_port() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"  # closed again: nothing listens there


@pytest.mark.parametrize("kind", ["connection refused", "port never answers", "no such host"])
def test_an_unreachable_store_is_given_up_within_its_budget(
    kind: str, silent_port: str, era5: SourceRequest
) -> None:
    url = {
        "connection refused": _refused_port(),
        "port never answers": silent_port,
        "no such host": "http://aircast-no-such-store.invalid/api",
    }[kind]
    # many tries and a long sleep_max: only the budget can end this early
    seam = client(
        url, http_tries=1000, sleep_max=60.0, timeout=0.2, connect_timeout=0.2,
        unreachable_after=0.6,
    )  # fmt: skip
    with pytest.raises(StoreUnreachableError) as caught:
        seam.submit(era5.dataset, era5.request)
    message = str(caught.value)
    assert url.removesuffix("/api") in message and "unreachable" in message
    assert "ingest.unreachable_after" in message and "datastores.ads.url" in message
    tries = re.search(r"over (\d+) tries", message)
    assert tries is not None and int(tries.group(1)) < 20, message


def test_a_busy_store_keeps_the_long_patience(
    sandbox: Callable[..., SandboxServer], era5: SourceRequest
) -> None:
    """Throttled again and again, a store still answers: a tiny unreachable budget does not
    cut the http_tries it is owed."""
    server = sandbox("retry_after=0.01")
    server.queue_fault("throttle", count=5)
    seam = client(server.url, http_tries=8, unreachable_after=0.001)
    assert seam.submit(era5.dataset, era5.request)
    assert sum(s.faults.get("throttle", 0) for s in server.stats.values()) == 5
