"""The sandbox data store, driven by the real ``cdsapi`` / ``ecmwf-datastores-client`` code.

Network only on 127.0.0.1. Every client gets ``retry_max``/``sleep_max`` (or
``maximum_tries``/``sleep_max``): without them a dead port is retried for hours.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cdsapi
import numpy as np
import pytest
import requests
from ecmwf import datastores

from aircast.catalogue import ParsedRequest, validate_request
from aircast.errors import RequestError
from aircast.sandbox.faults import (
    FAULT_KINDS,
    FaultPlan,
    damage,
    grib_messages,
    request_hash,
)
from aircast.sandbox.server import Renderer, SandboxServer, default_renderer
from aircast.vocab import CAMS_EAC4, CAMS_FORECAST, ERA5_PRESSURE, ERA5_SINGLE

pytestmark = pytest.mark.timeout(60)

HAVE_PRODUCTS = importlib.util.find_spec("aircast.sandbox.products") is not None
HAVE_ATMOSPHERE = importlib.util.find_spec("aircast.sandbox.atmosphere") is not None


def stand_in(parsed: ParsedRequest, target: Path) -> str:
    """Deterministic GRIB-framed (or NetCDF-magic) bytes that depend on the parsed request."""
    fields = [
        (v, lev, str(t), lead)
        for v in parsed.variables
        for lev in (parsed.levels or (0,))
        for t in np.asarray(parsed.times, dtype="datetime64[s]")
        for lead in (parsed.lead_hours or (0,))
    ]
    if parsed.data_format == "netcdf":
        target.write_bytes(b"CDF\x01" + json.dumps([parsed.dataset, fields, parsed.area]).encode())
        return "application/netcdf"
    out = b""
    for i, f in enumerate(fields):
        body = json.dumps([parsed.dataset, i, f, parsed.area]).encode() * 8
        length = 16 + len(body) + 4
        out += b"GRIB\x00\x00\x00\x02" + length.to_bytes(8, "big") + body + b"7777"
    target.write_bytes(out)
    return "application/x-grib"


REQUESTS: dict[str, dict[str, Any]] = {
    ERA5_SINGLE: {
        "product_type": ["reanalysis"],
        "variable": ["2m_temperature", "10m_u_component_of_wind"],
        "year": ["2019"],
        "month": ["january"],
        "day": ["01"],
        "time": ["00:00", "12:00"],
        "area": [50, -10, 40, 10],
        "data_format": "grib",
        "download_format": "unarchived",
    },
    ERA5_PRESSURE: {
        "product_type": ["reanalysis"],
        "variable": ["temperature"],
        "year": ["2019"],
        "month": ["january"],
        "day": ["01"],
        "time": ["00:00"],
        "pressure_level": ["850_hpa", "500_hpa"],
        "area": [50, -10, 40, 10],
        "data_format": "grib",
        "download_format": "unarchived",
    },
    CAMS_EAC4: {
        "variable": ["particulate_matter_2.5um", "ozone"],
        "pressure_level": ["925"],
        "date": ["2019-01-01/2019-01-01"],
        "time": ["00:00", "03:00"],
        "area": [50, -10, 40, 10],
        "data_format": "netcdf",
    },
    CAMS_FORECAST: {
        "variable": ["particulate_matter_2.5um"],
        "date": ["2019-01-01/2019-01-01"],
        "time": ["00:00"],
        "leadtime_hour": ["0", "3"],
        "type": ["forecast"],
        "area": [50, -10, 40, 10],
        "data_format": "grib",
    },
}
ERA5 = REQUESTS[ERA5_SINGLE]


def _day(day: str) -> dict[str, Any]:
    return {**ERA5, "day": [day]}


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    """The ``sandbox`` servers of these tests render the stand-in unless told otherwise."""
    return {"renderer": stand_in}


def client(
    server: SandboxServer,
    *,
    key: str | None = None,
    retry_max: int = 4,
    session: requests.Session | None = None,
    **kwargs: Any,
) -> Any:
    return cdsapi.Client(
        url=server.url,
        key=key or server.key,
        retry_max=retry_max,
        sleep_max=0.05,
        quiet=True,
        progress=False,
        session=session,
        **kwargs,
    )


def ds_client(server: SandboxServer) -> datastores.Client:
    return datastores.Client(
        url=server.url,
        key=server.key,
        maximum_tries=4,
        sleep_max=0.05,
        retry_after=0.05,
        progress=False,
    )


def expected_bytes(
    renderer: Renderer, dataset: str, request: dict[str, Any], tmp_path: Path
) -> bytes:
    parsed = validate_request(dataset, request)
    target = tmp_path / f"expected-{request_hash(dataset, request)[:8]}.bin"
    renderer(parsed, target)
    return target.read_bytes()


def only_stats(server: SandboxServer) -> Any:
    (stats,) = server.stats.values()
    return stats


# ---------------------------------------------------------------------------------------------
# the happy path


def test_starts_fast_and_serves_the_public_catalogue(sandbox: Callable[..., SandboxServer]) -> None:
    t0 = time.perf_counter()
    server = sandbox()
    assert time.perf_counter() - t0 < 1.0
    assert server.url == f"http://127.0.0.1:{server.port}/api"
    r = requests.get(f"{server.url}/catalogue/v1/messages", timeout=5)
    assert r.status_code == 200 and r.json() == {"messages": []}
    r = requests.get(f"{server.url}/retrieve/v1/processes/{ERA5_SINGLE}", timeout=5)
    assert r.json()["id"] == ERA5_SINGLE


@pytest.fixture(scope="module")
def real_server(fake_renderer: Renderer) -> Iterator[tuple[SandboxServer, Renderer]]:
    """One server for the four datasets, rendering real products where they exist.

    With ``products.py`` and ``atmosphere.py``: the server's default renderer (toy atmosphere),
    and an independent second one for the expected bytes (rendering is deterministic). With
    ``products.py`` only: ``write_product`` over the analytic test atmosphere. Else the stand-in.
    """
    renderer: Renderer
    if HAVE_ATMOSPHERE and HAVE_PRODUCTS:
        server, renderer = SandboxServer(seed=0), default_renderer(0)
    elif HAVE_PRODUCTS:
        server, renderer = SandboxServer(renderer=fake_renderer), fake_renderer
    else:
        server, renderer = SandboxServer(renderer=stand_in), stand_in
    with server:
        yield server, renderer


@pytest.mark.parametrize("dataset", list(REQUESTS))
def test_the_real_client_retrieves_each_dataset(
    real_server: tuple[SandboxServer, Renderer], tmp_path: Path, dataset: str
) -> None:
    server, renderer = real_server
    request = REQUESTS[dataset]
    target = tmp_path / "out.bin"
    client(server).retrieve(dataset, request, str(target))
    assert target.read_bytes() == expected_bytes(renderer, dataset, request, tmp_path)
    stats = server.stats[request_hash(dataset, request)]
    assert (stats.submissions, stats.jobs, stats.downloads, stats.faults) == (1, 1, 1, {})
    (job_file,) = server.data_dir.glob(f"{server.job_ids()[-1]}.*")
    assert job_file.suffix in (".grib", ".nc", ".zip")
    assert job_file.read_bytes() == target.read_bytes()


def test_identical_requests_are_rendered_once(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    calls: list[str] = []

    def counting(parsed: ParsedRequest, target: Path) -> str:
        calls.append(parsed.dataset)
        return stand_in(parsed, target)

    server = sandbox(renderer=counting)
    c = client(server)
    c.retrieve(ERA5_SINGLE, ERA5, str(tmp_path / "a"))
    # the same request spelled differently: scalars instead of one-element lists
    c.retrieve(ERA5_SINGLE, {**ERA5, "year": "2019", "day": "01"}, str(tmp_path / "b"))
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    assert calls == [ERA5_SINGLE]
    assert len(server.stats) == 1 and only_stats(server).jobs == 2


def test_range_requests_and_head(sandbox: Callable[..., SandboxServer]) -> None:
    server = sandbox()
    results = ds_client(server).submit(ERA5_SINGLE, ERA5).get_results()
    full = requests.get(results.location, timeout=5).content
    assert len(full) == results.content_length
    head = requests.head(results.location, timeout=5)
    assert head.headers["Content-Length"] == str(len(full))
    assert head.headers["Accept-Ranges"] == "bytes"
    part = requests.get(results.location, headers={"Range": "bytes=10-19"}, timeout=5)
    assert part.status_code == 206 and part.content == full[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(full)}"
    tail = requests.get(results.location, headers={"Range": "bytes=-5"}, timeout=5)
    assert tail.content == full[-5:]
    bad = requests.get(results.location, headers={"Range": f"bytes={len(full)}-"}, timeout=5)
    assert bad.status_code == 416


# ---------------------------------------------------------------------------------------------
# errors as the real store shows them


def test_a_wrong_key_gets_the_stores_401(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox()
    with pytest.raises(requests.HTTPError) as err:
        client(server, key="not-the-key").retrieve(ERA5_SINGLE, ERA5, str(tmp_path / "x"))
    message = str(err.value)
    assert message.startswith("401 Client Error")
    assert "Authentication failed" in message and "operation not allowed" in message
    assert "key" in message
    assert server.stats == {}


@pytest.mark.parametrize(
    ("dataset", "change"),
    [
        (ERA5_SINGLE, {"variable": ["2m_temperatur"]}),
        (ERA5_PRESSURE, {"pressure_level": ["851_hpa"]}),
        (CAMS_EAC4, {"time": ["01:00"]}),
    ],
)
def test_an_invalid_request_raises_with_the_forms_message(
    sandbox: Callable[..., SandboxServer], tmp_path: Path, dataset: str, change: dict[str, Any]
) -> None:
    server = sandbox()
    request = {**REQUESTS[dataset], **change}
    with pytest.raises(RequestError) as expected:
        validate_request(dataset, request)
    with pytest.raises(requests.HTTPError) as err:
        client(server).retrieve(dataset, request, str(tmp_path / "x"))
    message = str(err.value)
    assert message.startswith("400 Client Error")
    assert "invalid request" in message and str(expected.value) in message
    assert not (tmp_path / "x").exists()


def test_an_unknown_dataset_is_a_clear_404(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox()
    with pytest.raises(requests.HTTPError) as err:
        client(server).retrieve("reanalysis-era5-single-level", ERA5, str(tmp_path / "x"))
    message = str(err.value)
    assert message.startswith("404 Client Error")
    assert "reanalysis-era5-single-level" in message
    assert f"did you mean {ERA5_SINGLE!r}" in message


def test_a_failing_renderer_fails_the_job(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    def broken(parsed: ParsedRequest, target: Path) -> str:
        raise RuntimeError("toy atmosphere exploded")

    server = sandbox(renderer=broken)
    with pytest.raises(requests.HTTPError, match="toy atmosphere exploded"):
        client(server).retrieve(ERA5_SINGLE, ERA5, str(tmp_path / "x"))


# ---------------------------------------------------------------------------------------------
# faults


def _seed_where(pred: Callable[[FaultPlan, str], bool], spec: str, request_id: str) -> int:
    for seed in range(200):
        plan = FaultPlan.parse(f"{spec},seed={seed}")
        if pred(plan, request_id):
            return seed
    raise AssertionError("no seed found")


def _server_error_at(site: str) -> str:
    """A ``server_error`` spec seeded so that the fault strikes at ``site`` (submit or poll)."""
    rhash = request_hash(ERA5_SINGLE, ERA5)
    seed = _seed_where(lambda p, h: p.server_error_site(h) == site, "server_error=1", rhash)
    return f"server_error=1,seed={seed}"


@pytest.mark.parametrize(
    ("faults", "sent"),
    [
        pytest.param("throttle=1,retry_after=3", (2, 1, 1), id="throttle"),
        pytest.param(_server_error_at("submit"), (2, 1, 1), id="server_error-submit"),
        pytest.param(_server_error_at("poll"), (1, 1, 1), id="server_error-poll"),
        # a cut transfer is resumed by the client: a second download of the same job
        pytest.param("truncate=1", (1, 1, 2), id="truncate"),
    ],
)
def test_transient_faults_are_retried_transparently(
    sandbox: Callable[..., SandboxServer], tmp_path: Path, faults: str, sent: tuple[int, int, int]
) -> None:
    """The real client gets the fault-free bytes, and the store saw (submissions, jobs,
    downloads) as the one fault implies."""
    server = sandbox(faults)
    target = tmp_path / "out"
    client(server).retrieve(ERA5_SINGLE, ERA5, str(target))
    assert target.read_bytes() == expected_bytes(stand_in, ERA5_SINGLE, ERA5, tmp_path)
    stats = only_stats(server)
    assert (stats.submissions, stats.jobs, stats.downloads) == sent
    assert stats.faults == {faults.split("=")[0]: 1}


def test_a_throttled_submission_gets_429_and_retry_after(
    sandbox: Callable[..., SandboxServer],
) -> None:
    """What the client sees on a throttled attempt."""
    server = sandbox("throttle=1,retry_after=3")
    server.queue_fault("throttle")
    r = requests.post(
        f"{server.url}/retrieve/v1/processes/{ERA5_SINGLE}/execution",
        json={"inputs": ERA5},
        headers={"PRIVATE-TOKEN": server.key},
        timeout=5,
    )
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.json()["title"] == "Too many requests"


def test_queue_shows_accepted_then_running_then_successful(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox("queue=1,queue_seconds=1.2")
    remote = ds_client(server).submit(ERA5_SINGLE, ERA5)
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = remote.status
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "successful":
            break
        time.sleep(0.05)
    assert seen == ["accepted", "running", "successful"]
    target = tmp_path / "out"
    remote.download(str(target))
    assert target.read_bytes() == expected_bytes(stand_in, ERA5_SINGLE, ERA5, tmp_path)
    assert remote.started_at is not None and remote.finished_at is not None
    assert remote.finished_at - remote.created_at >= dt.timedelta(seconds=1.2)
    assert only_stats(server).faults == {"queue": 1}


@pytest.mark.parametrize(
    ("kind", "title", "text"),
    [
        ("fail", "The job has failed.", "MARS"),
        ("reject", "The job has been rejected.", "queueing system"),
    ],
)
def test_failed_and_rejected_jobs_raise_the_stores_message_once(
    sandbox: Callable[..., SandboxServer], tmp_path: Path, kind: str, title: str, text: str
) -> None:
    server = sandbox(f"{kind}=1")
    target = tmp_path / "out"
    with pytest.raises(requests.HTTPError) as err:
        client(server).retrieve(ERA5_SINGLE, ERA5, str(target))
    message = str(err.value)
    assert message.startswith("400 Client Error") and title in message and text in message
    remote = ds_client(server).get_remote(server.job_ids()[0])
    assert remote.status == ("failed" if kind == "fail" else "rejected")
    # transient: the next submission of the same request succeeds with the fault-free bytes
    client(server).retrieve(ERA5_SINGLE, ERA5, str(target))
    assert target.read_bytes() == expected_bytes(stand_in, ERA5_SINGLE, ERA5, tmp_path)
    stats = only_stats(server)
    assert (stats.submissions, stats.jobs, stats.faults) == (2, 2, {kind: 1})


def test_a_truncated_download_without_retries_raises_and_leaves_a_short_file(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox("truncate=1")
    target = tmp_path / "out"
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        client(server, retry_max=1).retrieve(ERA5_SINGLE, ERA5, str(target))
    full = expected_bytes(stand_in, ERA5_SINGLE, ERA5, tmp_path)
    assert target.stat().st_size < len(full)
    assert full.startswith(target.read_bytes())


def test_corrupt_files_have_the_announced_size_but_damaged_content(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox("corrupt=1")
    clean = expected_bytes(stand_in, ERA5_SINGLE, ERA5, tmp_path)
    target = tmp_path / "out"
    client(server).retrieve(ERA5_SINGLE, ERA5, str(target))  # the client's size check passed
    damaged = target.read_bytes()
    assert damaged != clean
    assert grib_messages(clean) and not grib_messages(damaged)  # structure check fails
    assert only_stats(server).faults == {"corrupt": 1}
    # the same job keeps its damaged file; a new submission gets a good one
    ds_client(server).download_results(server.job_ids()[0], str(tmp_path / "again"))
    assert (tmp_path / "again").read_bytes() == damaged
    client(server).retrieve(ERA5_SINGLE, ERA5, str(target))
    assert target.read_bytes() == clean


@pytest.mark.parametrize("variant", ["overwrite", "cut"])
def test_corrupt_on_demand_through_a_session_header(
    sandbox: Callable[..., SandboxServer], tmp_path: Path, variant: str
) -> None:
    server = sandbox()
    session = requests.Session()
    session.headers["X-AirCast-Fault"] = f"corrupt:{variant}"
    target = tmp_path / "out"
    client(server, session=session).retrieve(ERA5_SINGLE, ERA5, str(target))
    clean = expected_bytes(stand_in, ERA5_SINGLE, ERA5, tmp_path)
    damaged = target.read_bytes()
    assert damaged != clean and not grib_messages(damaged)
    assert damaged == damage(clean, variant)  # type: ignore[arg-type]
    if variant == "overwrite":
        assert len(damaged) == len(clean)
    else:
        assert len(damaged) < len(clean) and clean.startswith(damaged)


def _readable(path: Path) -> bool:
    """Whether a product decodes cleanly (GRIB with ecCodes, zip members, NetCDF)."""
    import zipfile

    data = path.read_bytes()
    try:
        if data.startswith(b"GRIB"):
            import eccodes

            with path.open("rb") as f:
                while (h := eccodes.codes_grib_new_from_file(f)) is not None:
                    eccodes.codes_get_values(h)
                    eccodes.codes_release(h)
        elif data.startswith(b"PK"):
            with zipfile.ZipFile(path) as z:
                return z.testzip() is None
        else:
            import netCDF4

            with netCDF4.Dataset(path) as nc:
                for var in nc.variables.values():
                    var[:]
    except Exception:
        return False
    return True


@pytest.mark.skipif(not HAVE_PRODUCTS, reason="aircast.sandbox.products not written yet")
@pytest.mark.parametrize(
    ("dataset", "variant"),
    [
        (ERA5_SINGLE, "overwrite"),
        (ERA5_SINGLE, "cut"),
        (CAMS_EAC4, "overwrite"),
        (CAMS_EAC4, "cut"),
        (CAMS_FORECAST, "overwrite"),
    ],
)
def test_damaged_real_products_fail_to_decode(
    fake_atmosphere: Any, tmp_path: Path, dataset: str, variant: str
) -> None:
    from aircast.sandbox.products import write_product

    request = REQUESTS[dataset]
    if dataset == CAMS_FORECAST:  # a single NetCDF file, not a zip
        request = {**request, "data_format": "netcdf"}
    good = tmp_path / "good"
    write_product(validate_request(dataset, request), good, fake_atmosphere)
    assert _readable(good)
    bad = tmp_path / "bad"
    bad.write_bytes(damage(good.read_bytes(), variant))  # type: ignore[arg-type]
    assert not _readable(bad)


def test_missing_dates_fail_every_time(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox("missing=2019-01-02")
    request = {**ERA5, "day": ["01", "02", "03"]}
    for _ in range(3):
        with pytest.raises(requests.HTTPError, match="no data available for 2019-01-02"):
            client(server).retrieve(ERA5_SINGLE, request, str(tmp_path / "x"))
    assert only_stats(server).faults == {"missing": 3}
    client(server).retrieve(ERA5_SINGLE, _day("03"), str(tmp_path / "ok"))
    forecast = {**REQUESTS[CAMS_FORECAST], "date": ["2019-01-01/2019-01-03"]}
    with pytest.raises(requests.HTTPError, match="no data available for 2019-01-02"):
        client(server).retrieve(CAMS_FORECAST, forecast, str(tmp_path / "x"))


def test_the_same_seed_faults_the_same_requests(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    spec = "fail=0.5,seed=7"
    days = [f"{d:02d}" for d in range(1, 13)]
    runs = []
    for _ in range(2):
        server = sandbox(spec)
        failed = []
        for day in days:
            try:
                client(server).retrieve(ERA5_SINGLE, _day(day), str(tmp_path / "x"))
            except requests.HTTPError:
                failed.append(day)
        runs.append(failed)
        predicted = [
            d for d in days if "fail" in server.faults.selected_kinds(ERA5_SINGLE, _day(d))
        ]
        assert failed == predicted
    assert runs[0] == runs[1] and 0 < len(runs[0]) < len(days)
    other = FaultPlan.parse("fail=0.5,seed=8")
    assert [d for d in days if other.selected_kinds(ERA5_SINGLE, _day(d))] != runs[0]


def test_transient_attempts_counts_strikes_per_request(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox("fail=1,transient_attempts=2")
    for _ in range(2):
        with pytest.raises(requests.HTTPError, match="The job has failed"):
            client(server).retrieve(ERA5_SINGLE, ERA5, str(tmp_path / "x"))
    client(server).retrieve(ERA5_SINGLE, ERA5, str(tmp_path / "x"))
    assert only_stats(server).faults == {"fail": 2}


def test_the_control_endpoint_queues_faults(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox()
    url = f"{server.url}/sandbox/faults"
    auth = {"PRIVATE-TOKEN": server.key}
    assert requests.post(url, json={"fault": "fail"}, timeout=5).status_code == 401
    bad = requests.post(url, json={"fault": "explode"}, headers=auth, timeout=5)
    assert bad.status_code == 400 and "valid kinds" in bad.json()["detail"]
    r = requests.post(
        url, json={"fault": "fail", "count": 1, "dataset": CAMS_EAC4}, headers=auth, timeout=5
    )
    assert r.json()["pending"][0]["fault"] == "fail"
    client(server).retrieve(ERA5_SINGLE, ERA5, str(tmp_path / "x"))  # other dataset: untouched
    with pytest.raises(requests.HTTPError, match="The job has failed"):
        client(server).retrieve(CAMS_EAC4, REQUESTS[CAMS_EAC4], str(tmp_path / "x"))
    client(server).retrieve(CAMS_EAC4, REQUESTS[CAMS_EAC4], str(tmp_path / "x"))
    assert requests.get(url, headers=auth, timeout=5).json()["pending"] == []
    stats = requests.get(f"{server.url}/sandbox/stats", headers=auth, timeout=5).json()
    assert stats[request_hash(CAMS_EAC4, REQUESTS[CAMS_EAC4])]["faults"] == {"fail": 1}


def test_fault_specs_parse_and_bad_ones_name_the_token() -> None:
    spec = (
        "throttle=0.2,server_error=0.1,queue=0.3,fail=0.05,reject=0.05,truncate=0.1,"
        "corrupt=0.1,missing=2019-01-03+2019-01-05,seed=7,queue_seconds=2,"
        "transient_attempts=1"
    )
    plan = FaultPlan.parse(spec)
    assert plan.missing == (dt.date(2019, 1, 3), dt.date(2019, 1, 5))
    assert plan.seed == 7 and plan.rates["throttle"] == 0.2
    assert FaultPlan.parse(plan.to_spec()) == plan
    assert FaultPlan.parse("missing=2019-01-01/2019-01-03").missing[-1] == dt.date(2019, 1, 3)
    assert not FaultPlan.parse("").active
    for bad in ("explode=0.1", "throttle=2", "fail", "missing=yesterday", "seed=x"):
        with pytest.raises(ValueError) as err:
            FaultPlan.parse(f"queue=0.1,{bad}")
        assert repr(bad) in str(err.value) or bad.split("=")[0] in str(err.value)
    with pytest.raises(ValueError) as err:
        FaultPlan.parse("explode=0.1")
    assert all(kind in str(err.value) for kind in FAULT_KINDS)


# ---------------------------------------------------------------------------------------------
# resume by request id, jobs list, delete


def test_resume_by_request_id_after_the_client_is_gone(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox("queue=1,queue_seconds=0.3")
    remote = ds_client(server).submit(ERA5_SINGLE, ERA5)
    request_id = remote.request_id
    del remote  # the client "crashes"
    fresh = ds_client(server)
    assert request_id in fresh.get_jobs().request_ids
    again = fresh.get_remote(request_id)
    assert again.request == ERA5 and again.collection_id == ERA5_SINGLE
    target = tmp_path / "out"
    again.download(str(target))
    clean = expected_bytes(stand_in, ERA5_SINGLE, ERA5, tmp_path)
    assert target.read_bytes() == clean
    fresh.download_results(request_id, str(tmp_path / "second"))
    assert (tmp_path / "second").read_bytes() == clean
    # the legacy interface: wait_until_complete=False returns the Remote with its id
    legacy = client(server, wait_until_complete=False).retrieve(ERA5_SINGLE, _day("02"))
    assert legacy.request_id in server.job_ids()
    stats = server.stats[request_hash(ERA5_SINGLE, ERA5)]
    assert (stats.submissions, stats.jobs, stats.downloads) == (1, 1, 2)


def test_deleted_jobs_are_dismissed(sandbox: Callable[..., SandboxServer]) -> None:
    server = sandbox()
    c = ds_client(server)
    results = c.submit(ERA5_SINGLE, ERA5).get_results()
    (job_id,) = server.job_ids()
    assert c.get_remote(job_id).delete()["status"] == "dismissed"
    assert requests.get(results.location, timeout=5).status_code == 404
    assert c.get_jobs().request_ids == []
    with pytest.raises(Exception, match="dismissed"):
        c.get_remote(job_id).get_results()
    with pytest.raises(requests.HTTPError, match="job not found"):
        c.get_remote("00000000-0000-0000-0000-000000000000")


def test_concurrent_clients_get_their_own_bytes(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox("throttle=0.5,server_error=0.5,truncate=0.5,seed=3")
    days = [f"{d:02d}" for d in range(1, 9)]
    errors: list[BaseException] = []

    def fetch(day: str) -> None:
        try:
            client(server).retrieve(ERA5_SINGLE, _day(day), str(tmp_path / day))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(d,)) for d in days]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for day in days:
        assert (tmp_path / day).read_bytes() == expected_bytes(
            stand_in, ERA5_SINGLE, _day(day), tmp_path
        )
    for rhash, stats in server.stats.items():
        assert stats.jobs == 1
        assert all(n <= 1 for n in stats.faults.values())
        submit_errors = (
            stats.faults.get("server_error", 0)
            if server.faults.server_error_site(rhash) == "submit"
            else 0
        )
        assert stats.submissions == 1 + stats.faults.get("throttle", 0) + submit_errors


def test_the_key_must_not_look_like_a_legacy_key() -> None:
    with pytest.raises(ValueError, match="':'"):
        SandboxServer(key="123:abc")


def test_a_given_data_dir_keeps_the_files(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox(data_dir=tmp_path / "store")
    client(server).retrieve(ERA5_SINGLE, ERA5, str(tmp_path / "out"))
    server.stop()
    (job_file,) = (tmp_path / "store").glob("*.grib")
    assert job_file.read_bytes() == (tmp_path / "out").read_bytes()


# ---------------------------------------------------------------------------------------------
# the command line (only its error paths: `serve` blocks until Ctrl-C)


def test_cli_serve_names_a_bad_fault_token() -> None:
    from typer.testing import CliRunner

    from aircast.cli import app

    result = CliRunner().invoke(app, ["sandbox", "serve", "--faults", "fail=0.1,boom=1"])
    assert result.exit_code == 2
    assert "'boom=1'" in result.output and "valid fault kinds" in result.output


def test_cli_serve_reports_a_busy_port(sandbox: Callable[..., SandboxServer]) -> None:
    from typer.testing import CliRunner

    from aircast.cli import app

    busy = sandbox()
    result = CliRunner().invoke(app, ["sandbox", "serve", "--port", str(busy.port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{busy.port}" in result.output
