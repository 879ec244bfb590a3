"""``fetch_request`` and ``RawCache`` against a real sandbox server, through the real client.

Every test talks HTTP to a :class:`SandboxServer` on 127.0.0.1 and reads what was sent from
the server's own statistics, so "nothing was sent" and "resumed, not resubmitted" are facts
observed at the store, not claims of the code under test. The server renders real products
(``products.write_product``) over the analytic test atmosphere: fast, and what the decoders
check is the same as with the toy atmosphere.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from aircast.errors import DataStoreError
from aircast.jobs.ingest import run_ingest
from aircast.sandbox.faults import request_hash
from aircast.sandbox.server import Renderer, RequestStats, SandboxServer
from aircast.sources.cache import RawCache, sha256_of
from aircast.sources.cams import EAC4_SOURCE
from aircast.sources.datastore import DataStoreClient, Endpoint, RetryPolicy, Secret
from aircast.sources.era5 import ERA5_SOURCE
from aircast.sources.fetch import FetchResult, fetch_request
from aircast.sources.ingest import verifier
from aircast.sources.requests import SourceRequest
from aircast.testing import tiny_fetch_config

pytestmark = [
    pytest.mark.timeout(120),
    # the client checks the store's messages when it is built, and warns if it cannot
    pytest.mark.filterwarnings("ignore:HTTPConnectionPool.*:UserWarning"),
]

#: A key no other string in the system could contain by accident: if it shows up anywhere it
#: was written, it leaked.
KEY = "AircastTestKey-7f3a9c1e5b2d-DO-NOT-PRINT"
DAY = dt.date(2019, 6, 5)
FAST = RetryPolicy(http_tries=3, sleep_max=0.02, download_tries=3, timeout=10.0)


@pytest.fixture
def sandbox_options(fake_renderer: Renderer) -> dict[str, Any]:
    """The ``sandbox`` servers of these tests demand the test key and render fast."""
    return {"key": KEY, "renderer": fake_renderer}


@pytest.fixture
def cache(tmp_path: Path) -> RawCache:
    """An empty raw cache in the test's folder."""
    return RawCache(tmp_path / "raw")


@pytest.fixture
def req(tmp_path: Path) -> SourceRequest:
    """The ERA5 request of :data:`DAY`."""
    return era5_request(tmp_path)


def client_for(server: SandboxServer, key: str = KEY, retry: RetryPolicy = FAST) -> DataStoreClient:
    return DataStoreClient(Endpoint("cds", server.url, Secret(key)), retry)


def era5_request(tmp_path: Path, day: dt.date = DAY) -> SourceRequest:
    (req,) = ERA5_SOURCE.requests(tiny_fetch_config(tmp_path / "unused"), day, day)
    return req


def eac4_request(tmp_path: Path, day: dt.date = DAY) -> SourceRequest:
    (req,) = EAC4_SOURCE.requests(tiny_fetch_config(tmp_path / "unused"), day, day)
    return req


def stats_of(server: SandboxServer, req: SourceRequest) -> RequestStats | None:
    return server.stats.get(request_hash(req.dataset, dict(req.request)))


def sent(server: SandboxServer) -> tuple[int, int, int, int]:
    """Everything the server was asked, summed over requests."""
    stats = server.stats.values()
    return (
        sum(s.submissions for s in stats),
        sum(s.jobs for s in stats),
        sum(s.polls for s in stats),
        sum(s.downloads for s in stats),
    )


def fetch(
    req: SourceRequest, cache: RawCache, client: DataStoreClient, **kwargs: Any
) -> FetchResult:
    kwargs.setdefault("download_tries", FAST.download_tries)
    kwargs.setdefault("sleep_max", FAST.sleep_max)
    return fetch_request(req, cache, client, verify=verifier, **kwargs)


def expected_sha(renderer: Renderer, req: SourceRequest, tmp_path: Path) -> str:
    target = tmp_path / f"expected-{req.key[:8]}.bin"
    renderer(req.parsed(), target)
    return sha256_of(target)


def events(cache: RawCache, req: SourceRequest) -> list[str]:
    return [e[2] for e in cache.events(req.key)]


def final_files(cache: RawCache) -> list[Path]:
    return sorted(p for p in (cache.root / "files").rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# the happy path and reuse


def test_a_fetch_installs_the_verified_file_and_records_it(
    sandbox: Callable[..., SandboxServer],
    fake_renderer: Renderer,
    tmp_path: Path,
    cache: RawCache,
    req: SourceRequest,
) -> None:
    server = sandbox()
    result = fetch(req, cache, client_for(server))
    assert result.outcome == "fetched" and result.path == cache.path_for(req)
    assert result.path.is_file() and sha256_of(result.path) == expected_sha(
        fake_renderer, req, tmp_path
    )
    entry = cache.lookup(req.key)
    assert entry is not None and entry.status == "complete"
    assert entry.sha256 == sha256_of(result.path) and entry.size == result.path.stat().st_size
    assert entry.request_id in server.job_ids()
    assert entry.path == str(result.path.relative_to(cache.root))
    assert (entry.submissions, entry.downloads) == (1, 1)
    assert events(cache, req) == ["submitted", "complete"]
    assert list((cache.root / "tmp").iterdir()) == []


def test_a_complete_entry_is_reused_without_sending_anything(
    sandbox: Callable[..., SandboxServer], cache: RawCache, req: SourceRequest
) -> None:
    server = sandbox()
    first = fetch(req, cache, client_for(server))
    before, row = sent(server), cache.lookup(req.key)
    again = fetch(req, cache, client_for(server))
    assert again.outcome == "reused" and again.path == first.path
    assert sent(server) == before  # not a submission, a poll or a download
    assert cache.lookup(req.key) == row  # not even the manifest row was touched
    # the same through the ingest job, and with a server that would fail everything
    down = sandbox("fail=1,transient_attempts=99")
    endpoints = {"cds": Endpoint("cds", down.url, Secret(KEY))}
    config = tiny_fetch_config(cache.root.parent)  # paths.raw is this cache
    result = run_ingest(config, ["era5"], DAY, DAY, endpoints=endpoints)
    assert result.reports["era5"].count("reused") == 1 and sent(down) == (0, 0, 0, 0)


def flip_bytes(path: Path, at: float = 0.5, n: int = 8) -> None:
    """Invert ``n`` bytes in the middle of a file: same size, other bytes (bit rot)."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(int(size * at))
        chunk = f.read(n)
        f.seek(int(size * at))
        f.write(bytes(b ^ 0xFF for b in chunk))
    assert path.stat().st_size == size


def test_a_cached_file_with_flipped_bytes_is_quarantined_and_fetched_again(
    sandbox: Callable[..., SandboxServer], cache: RawCache, req: SourceRequest
) -> None:
    server = sandbox()
    first = fetch(req, cache, client_for(server))
    assert first.path is not None
    good = sha256_of(first.path)
    flip_bytes(first.path)
    config = tiny_fetch_config(cache.root.parent)  # paths.raw is this cache
    endpoints = {"cds": Endpoint("cds", server.url, Secret(KEY))}
    result = run_ingest(config, ["era5"], DAY, DAY, endpoints=endpoints)
    report = result.reports["era5"]
    assert report.count("reused") == 0 and report.count("fetched") == 1, report.summary()
    assert report.quarantined == 1
    stats = stats_of(server, req)
    assert stats is not None and stats.jobs == 2, "the store was asked again"
    assert sha256_of(first.path) == good and cache.lookup(req.key).sha256 == good  # type: ignore[union-attr]
    (kept,) = (cache.root / "quarantine").iterdir()
    assert sha256_of(kept) != good and kept.stat().st_size == first.path.stat().st_size
    assert "quarantined" in events(cache, req)
    detail = next(e[3] for e in cache.events(req.key) if e[2] == "quarantined")
    assert "not its sha256" in detail
    # whole again: reused without asking the store
    assert fetch(req, cache, client_for(server)).outcome == "reused"
    assert stats_of(server, req).jobs == 2  # type: ignore[union-attr]


def test_a_damaged_cams_forecast_run_is_fetched_again_not_read(
    sandbox: Callable[..., SandboxServer], cache: RawCache
) -> None:
    # the daily forecast's initial conditions and the verification ingest the CAMS forecast
    # (run_ingest) and then read it through its source: the run must be whole when read
    from aircast.sources.registry import get_source

    server = sandbox()
    config = tiny_fetch_config(cache.root.parent)
    endpoints = {"ads": Endpoint("ads", server.url, Secret(KEY))}
    first = run_ingest(config, ["forecast"], DAY, DAY, endpoints=endpoints)
    assert first.reports["forecast"].count("fetched") >= 1
    runs = [e for e in cache.entries("complete") if e.dataset.startswith("cams-global-atmos")]
    assert runs
    damaged = cache.root / str(runs[0].path)
    flip_bytes(damaged)
    again = run_ingest(config, ["forecast"], DAY, DAY, endpoints=endpoints).reports["forecast"]
    assert again.count("fetched") == 1 and again.quarantined == 1, again.summary()
    assert sha256_of(damaged) == runs[0].sha256
    source = get_source("forecast")
    requests = source.requests(config, DAY, DAY)
    assert all(cache.lookup(r.key).damage(cache.existing_file(r)) is None for r in requests)  # type: ignore[union-attr,arg-type]
    assert len(list((cache.root / "quarantine").iterdir())) == 1


def test_a_complete_row_whose_file_is_gone_is_fetched_again(
    sandbox: Callable[..., SandboxServer], cache: RawCache, req: SourceRequest
) -> None:
    server = sandbox()
    first = fetch(req, cache, client_for(server))
    assert first.path is not None
    digest = sha256_of(first.path)
    first.path.unlink()
    again = fetch(req, cache, client_for(server))
    assert again.outcome == "fetched" and again.path is not None
    assert sha256_of(again.path) == digest
    stats = stats_of(server, req)
    assert stats is not None and stats.jobs == 2


# ---------------------------------------------------------------------------------------------
# interrupted runs


def test_a_file_at_its_final_name_without_a_row_is_recovered(
    sandbox: Callable[..., SandboxServer], tmp_path: Path, cache: RawCache, req: SourceRequest
) -> None:
    """A kill between the rename and the manifest row: the file is re-verified and adopted."""
    server = sandbox()
    done = RawCache(tmp_path / "done")
    fetched = fetch(req, done, client_for(server))
    assert fetched.path is not None
    final = cache.path_for(req)
    final.parent.mkdir(parents=True)
    shutil.copyfile(fetched.path, final)
    before = sent(server)
    result = fetch(req, cache, client_for(server))
    assert result.outcome == "recovered" and result.path == final
    assert sent(server) == before  # adopted, not fetched
    entry = cache.lookup(req.key)
    assert entry is not None and entry.status == "complete"
    assert entry.sha256 == sha256_of(final) == sha256_of(fetched.path)
    assert events(cache, req) == ["complete"]
    # and next time it is simply reused
    assert fetch(req, cache, client_for(server)).outcome == "reused"


def test_a_damaged_file_at_its_final_name_is_quarantined_and_fetched(
    sandbox: Callable[..., SandboxServer], tmp_path: Path, cache: RawCache, req: SourceRequest
) -> None:
    server = sandbox()
    good = fetch(req, RawCache(tmp_path / "done"), client_for(server))
    assert good.path is not None
    final = cache.path_for(req)
    final.parent.mkdir(parents=True)
    final.write_bytes(good.path.read_bytes()[:-100])  # cut short
    result = fetch(req, cache, client_for(server))
    assert result.outcome == "fetched" and sha256_of(final) == sha256_of(good.path)
    assert [p.name for p in (cache.root / "quarantine").iterdir()] == [f"{req.key}.0.grib"]
    assert events(cache, req)[0] == "quarantined"


def test_a_submitted_job_is_resumed_by_its_request_id(
    sandbox: Callable[..., SandboxServer],
    fake_renderer: Renderer,
    tmp_path: Path,
    cache: RawCache,
    req: SourceRequest,
) -> None:
    """A run killed after the store accepted the job: the next run downloads that job."""
    server = sandbox("queue=1,queue_seconds=0.3")
    request_id = client_for(server).submit(req.dataset, req.request)
    cache.record_submitted(req, request_id)  # what the killed run had written
    result = fetch(req, cache, client_for(server))
    assert result.outcome == "fetched" and result.path is not None
    assert sha256_of(result.path) == expected_sha(fake_renderer, req, tmp_path)
    stats = stats_of(server, req)
    assert stats is not None and (stats.submissions, stats.jobs) == (1, 1)
    entry = cache.lookup(req.key)
    assert entry is not None and entry.request_id == request_id and entry.submissions == 1
    assert cache.events(req.key)[1][2:] == ("resumed", request_id)


def _forgotten(server: SandboxServer, req: SourceRequest) -> str:
    """A request id from before a store restart (jobs expire)."""
    return "00000000-0000-4000-8000-000000000000"


def _deleted(server: SandboxServer, req: SourceRequest) -> str:
    """A job a user deleted on the store's website while the run was down."""
    request_id = client_for(server).submit(req.dataset, req.request)
    gone = requests.delete(
        f"{server.url}/retrieve/v1/jobs/{request_id}", headers={"PRIVATE-TOKEN": KEY}, timeout=5
    )
    assert gone.json()["status"] == "dismissed"
    return request_id


@pytest.mark.parametrize(
    ("lost_job", "faults", "sent_to_store"),
    [
        pytest.param(_forgotten, None, (1, 1), id="forgotten"),
        # the deleted job was submitted once before the run: that one and the new one
        pytest.param(_deleted, "queue=1,queue_seconds=0.3", (2, 2), id="deleted"),
    ],
)
def test_a_job_the_store_no_longer_has_is_submitted_again(
    sandbox: Callable[..., SandboxServer],
    cache: RawCache,
    req: SourceRequest,
    lost_job: Callable[[SandboxServer, SourceRequest], str],
    faults: str | None,
    sent_to_store: tuple[int, int],
) -> None:
    """A request id on record whose job the store no longer has: ask again, once."""
    server = sandbox(faults)
    cache.record_submitted(req, lost_job(server, req))
    result = fetch(req, cache, client_for(server))
    assert result.outcome == "fetched"
    assert events(cache, req) == ["submitted", "resumed", "job-lost", "submitted", "complete"]
    stats = stats_of(server, req)
    assert stats is not None and (stats.submissions, stats.jobs) == sent_to_store


def test_partial_downloads_of_dead_runs_are_cleaned(tmp_path: Path, cache: RawCache) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    stale = cache.root / "tmp" / f"{'a' * 64}.{int(dead.stdout)}.part"
    stale.write_bytes(b"half")
    # a part with this process's pid that nobody here writes: left by an earlier run that had
    # the same pid (containers often give every run the same one)
    mine = cache.root / "tmp" / f"{'c' * 64}.{os.getpid()}.part"
    mine.write_bytes(b"half")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        busy = cache.root / "tmp" / f"{'b' * 64}.{live.pid}.part"
        busy.write_bytes(b"in progress")
        with cache.writing(era5_request(tmp_path)) as writing:
            writing.write_bytes(b"being written by another thread of this process")
            assert cache.clean_tmp() == 2
            assert not stale.exists() and not mine.exists()
            assert busy.exists() and writing.exists()
        assert not writing.exists()  # removed when its writer is done with it
    finally:
        live.kill()
        live.wait()


# ---------------------------------------------------------------------------------------------
# damage and failure


@pytest.mark.parametrize("variant", ["overwrite", "cut"])
def test_a_corrupt_download_is_quarantined_then_fetched_on_a_fresh_job(
    sandbox: Callable[..., SandboxServer],
    fake_renderer: Renderer,
    tmp_path: Path,
    cache: RawCache,
    req: SourceRequest,
    variant: str,
) -> None:
    server = sandbox()
    server.queue_fault(f"corrupt:{variant}")
    result = fetch(req, cache, client_for(server))
    assert result.outcome == "fetched" and result.quarantined == 1 and result.retries == 1
    assert result.path is not None
    assert sha256_of(result.path) == expected_sha(fake_renderer, req, tmp_path)
    (damaged,) = (cache.root / "quarantine").iterdir()
    assert damaged.name.startswith(req.key) and sha256_of(damaged) != sha256_of(result.path)
    stats = stats_of(server, req)
    assert stats is not None and stats.jobs == 2 and stats.faults == {"corrupt": 1}
    assert events(cache, req) == ["submitted", "quarantined", "submitted", "complete"]
    assert final_files(cache) == [result.path]


def test_a_truncated_download_is_retried_on_the_same_job(
    sandbox: Callable[..., SandboxServer],
    fake_renderer: Renderer,
    tmp_path: Path,
    cache: RawCache,
    req: SourceRequest,
) -> None:
    """With one HTTP try the client cannot resume the transfer itself: the fetch retries."""
    server = sandbox("truncate=1,transient_attempts=1")
    one_try = RetryPolicy(http_tries=1, sleep_max=0.02, download_tries=3, timeout=10.0)
    result = fetch(req, cache, client_for(server, retry=one_try))
    assert result.outcome == "fetched" and result.retries == 1 and result.quarantined == 0
    assert result.path is not None
    assert sha256_of(result.path) == expected_sha(fake_renderer, req, tmp_path)
    stats = stats_of(server, req)
    assert stats is not None and (stats.jobs, stats.downloads) == (1, 2)
    assert events(cache, req) == ["submitted", "retry", "complete"]


def test_a_failed_job_is_recorded_as_failed_with_the_stores_message(
    sandbox: Callable[..., SandboxServer], tmp_path: Path, cache: RawCache
) -> None:
    server = sandbox()
    server.queue_fault("fail")
    req = eac4_request(tmp_path)
    result = fetch(req, cache, client_for(server))
    assert result.outcome == "failed" and result.path is None
    assert result.error is not None and "MarsRequestError" in result.error
    assert "Connection to the MARS data server lost" in result.error
    entry = cache.lookup(req.key)
    assert entry is not None and entry.status == "failed" and entry.error == result.error
    assert events(cache, req) == ["submitted", "failed"]
    assert final_files(cache) == []
    stats = stats_of(server, req)
    assert stats is not None and stats.jobs == 1  # a failed job is not asked again in a loop
    # the next run asks again and, the fault having passed, succeeds
    assert fetch(req, cache, client_for(server)).outcome == "fetched"


def test_a_missing_date_fails_with_the_date(
    sandbox: Callable[..., SandboxServer], tmp_path: Path, cache: RawCache
) -> None:
    server = sandbox(f"missing={DAY.isoformat()}")
    result = fetch(era5_request(tmp_path), cache, client_for(server))
    assert result.outcome == "failed" and result.error is not None
    assert f"no data available for {DAY.isoformat()}" in result.error
    assert final_files(cache) == []


def test_a_store_that_keeps_sending_damage_gives_up_naming_the_damage(
    sandbox: Callable[..., SandboxServer], cache: RawCache, req: SourceRequest
) -> None:
    server = sandbox("corrupt=1,transient_attempts=99")
    result = fetch(req, cache, client_for(server))
    assert result.outcome == "failed" and result.quarantined == FAST.download_tries
    assert result.error is not None and "damaged" in result.error
    assert "quarantine" in result.error
    stats = stats_of(server, req)
    assert stats is not None and stats.jobs == FAST.download_tries
    assert final_files(cache) == []
    assert len(list((cache.root / "quarantine").iterdir())) == FAST.download_tries


def test_concurrent_fetches_of_one_request_send_it_once(
    sandbox: Callable[..., SandboxServer], cache: RawCache, req: SourceRequest
) -> None:
    """Two tasks of one process (e.g. two Prefect flows) asking for the same request."""
    server = sandbox("queue=1,queue_seconds=0.3")
    results: list[FetchResult] = []
    threads = [
        threading.Thread(target=lambda: results.append(fetch(req, cache, client_for(server))))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome for r in results) == ["fetched", "reused"]
    stats = stats_of(server, req)
    assert stats is not None and stats.jobs == 1
    assert len(final_files(cache)) == 1 and list((cache.root / "tmp").iterdir()) == []


# ---------------------------------------------------------------------------------------------
# the key


def _everything_written(cache: RawCache) -> str:
    """Every value of every row of the manifest, and the raw bytes of the database files."""
    db = sqlite3.connect(cache.manifest_path)
    try:
        rows = [repr(r) for t in ("requests", "events") for r in db.execute(f"SELECT * FROM {t}")]
    finally:
        db.close()
    raw = b"".join(p.read_bytes() for p in cache.root.glob("manifest.sqlite*"))
    return "\n".join(rows) + raw.decode("latin-1")


def test_the_key_never_leaks(
    sandbox: Callable[..., SandboxServer],
    tmp_path: Path,
    cache: RawCache,
    req: SourceRequest,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = sandbox("throttle=1,server_error=1,truncate=1,queue=1,queue_seconds=0.2")
    client = client_for(server)
    # handlers added after the client was made (logging configured later, an orchestrator's
    # own) get no mask of their own: what they see must be clean at the source. They sit on
    # the libraries' package loggers, so they see each record before any root handler does
    late = io.StringIO()
    handler = logging.StreamHandler(late)
    handler.setLevel(logging.DEBUG)
    for name in ("cdsapi", "ecmwf", "multiurl", "urllib3", "requests", "aircast"):
        logging.getLogger(name).addHandler(handler)
        request.addfinalizer(lambda name=name: logging.getLogger(name).removeHandler(handler))
    # the line the client library logs when a client is built (its quiet=True hides it only
    # while no other thread is restoring that logger's level): masked where it is made
    logging.getLogger("ecmwf.datastores.legacy_client").debug("CDSAPI %s", {"key": KEY})
    texts: list[str] = [repr(client), repr(client.endpoint), str(client.endpoint.key)]
    texts.append(repr(fetch(req, cache, client)))
    server.queue_fault("corrupt")
    server.queue_fault("fail", dataset_id=req.dataset)
    other = era5_request(tmp_path, DAY + dt.timedelta(days=1))
    texts.append(repr(fetch(other, cache, client)))
    # a key the store refuses, and a store that is down: the exceptions name neither key
    wrong = "AircastWrongKey-0c9d8e7f6a5b-DO-NOT-PRINT"
    with pytest.raises(DataStoreError) as refused:
        client_for(server, key=wrong).submit(req.dataset, req.request)
    texts += [str(refused.value), repr(refused.value)]
    down = DataStoreClient(
        Endpoint("cds", "http://127.0.0.1:9/api", Secret(KEY)),
        RetryPolicy(http_tries=1, sleep_max=0.01, download_tries=1, timeout=2.0),
    )
    with pytest.raises(DataStoreError) as unreachable:
        down.submit(req.dataset, req.request)
    texts += [str(unreachable.value), repr(unreachable.value)]
    failed = fetch(era5_request(tmp_path, DAY + dt.timedelta(days=2)), cache, down)
    texts.append(repr(failed))
    out, err = capfd.readouterr()
    written = _everything_written(cache)
    logs = caplog.text + "\n".join(r.getMessage() for r in caplog.records) + late.getvalue()
    assert "refused the key" in str(refused.value)
    assert logs, "nothing was logged: the test would prove nothing"
    for where, text in {
        "manifest": written,
        "logs": logs,
        "exceptions and reprs": "\n".join(texts),
        "stdout/stderr": out + err,
    }.items():
        assert KEY not in text, f"the key leaked into the {where}"
        assert wrong not in text, f"the wrong key leaked into the {where}"
