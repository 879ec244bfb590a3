"""Production's Prefect stack, for real, on this machine: PostgreSQL, server, pools, a worker.

One test walks the README's production steps (``infra/README.md``) with the operator's own
tools, so that it validates them rather than a copy:

1. ``infra/postgres/start-local.sh`` brings up a PostgreSQL cluster in a temporary directory
   (as root it runs the server as the ``postgres`` user: initdb refuses root) and prints the
   connection URL; run again, it finds the cluster running and prints the same URL;
2. ``prefect server start`` runs on that database (``PREFECT_API_DATABASE_CONNECTION_URL``);
3. ``infra/prefect/bootstrap.py`` creates the work pools and global concurrency limits of
   ``infra/pools.yaml``, keeps them when run again, and saves a data-store key from the
   environment in the Secret block the ingest flows read;
4. ``prefect worker start --pool aircast-cpu`` polls the CPU pool;
5. ``infra/prefect/smoke.py`` deploys a tiny flow to the pool and runs it through the worker;

then reads PostgreSQL itself: the flow run is there, COMPLETED, queued through aircast-cpu.

Everything Prefect runs in subprocesses with its own environment (``PREFECT_HOME`` in a
temporary directory, analytics off), so neither the user's Prefect profile nor the flow tests'
temporary server is touched, and no setting read at import leaks either way. Skipped only where
the PostgreSQL server binaries are not installed (never in CI: there that is a failure).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aircast.testing import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
#: a fresh server migrates an empty database first: ~6 s here, allow for a loaded CI machine
SERVER_STARTUP_S = 120.0


def _pg_bin() -> Path | None:
    """Where initdb and pg_ctl are (as infra/postgres/common.sh finds them), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


def _prefect_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without any PREFECT_ setting, plus an isolated home and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


def _stop(proc: subprocess.Popen[bytes], first: signal.Signals, wait_s: float = 20.0) -> None:
    """Send ``first`` to a process we started; kill its session if it outlives ``wait_s``."""
    if proc.poll() is not None:
        return
    proc.send_signal(first)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session (start_new_session): only its tree
        proc.wait(10)


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Postgres:
    base: Path
    port: int
    url: str
    psql: list[str]

    def query(self, sql: str) -> str:
        out = subprocess.run(
            [*self.psql, "--command", sql], check=True, capture_output=True, text=True, timeout=30
        )
        return out.stdout.strip()


def _start_local(base: Path, port: int) -> str:
    """Run infra/postgres/start-local.sh; return the URL it exports."""
    env = {**os.environ, "PGPORT": str(port), "POSTGRES_USER": "prefect", "POSTGRES_DB": "prefect"}
    env.pop("POSTGRES_PASSWORD", None)  # let the script generate and keep one
    done = subprocess.run(
        ["bash", str(INFRA / "postgres" / "start-local.sh"), str(base)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"start-local.sh failed:\n{done.stderr}"
    match = re.fullmatch(r"export PREFECT_API_DATABASE_CONNECTION_URL='(\S+)'", done.stdout.strip())
    assert match, f"start-local.sh printed no URL on stdout: {done.stdout!r}"
    return match.group(1)


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster from infra/postgres/start-local.sh, stopped and removed after."""
    pg_bin = _pg_bin()
    if pg_bin is None:
        message = (
            "the PostgreSQL server binaries (initdb, pg_ctl) are not installed: "
            "apt-get install postgresql-15, or put their directory on PATH"
        )
        if os.environ.get("CI"):
            pytest.fail(message)  # CI's image has them: their absence is a broken setup
        pytest.skip(message)
    # directly under the temporary directory, not pytest's tmp_path: the unix socket's path
    # must stay short, and as root the `postgres` user must be able to enter the directory's
    # parents (pytest's /tmp/pytest-of-root is closed to it)
    base = Path(tempfile.mkdtemp(prefix="aircast-pg-"))
    port = free_port()
    try:
        url = _start_local(base, port)
        assert url.startswith("postgresql+asyncpg://prefect:")
        assert url.endswith(f"@127.0.0.1:{port}/prefect")
        # idempotent: a second run finds the cluster running and the database there
        assert _start_local(base, port) == url
        psql = [
            str(pg_bin / "psql"),
            f"--host={base / 'run'}",
            f"--port={port}",
            "--username=prefect",
            "--dbname=prefect",
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
        ]
        yield Postgres(base, port, url, psql)
    finally:
        subprocess.run(
            ["bash", str(INFRA / "postgres" / "stop-local.sh"), str(base)],
            capture_output=True,
            timeout=90,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def prefect_server(postgres: Postgres, tmp_path: Path) -> Iterator[str]:
    """``prefect server start`` on the PostgreSQL database; yields its API URL."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    log = tmp_path / "server.log"
    env = _prefect_env(
        tmp_path / "server-home",
        PREFECT_API_DATABASE_CONNECTION_URL=postgres.url,
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_UI_ENABLED="false",  # nobody looks at it here; it saves building the UI
    )
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_STARTUP_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"the Prefect server exited with {server.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no answer from the server in {SERVER_STARTUP_S} s:\n{_tail(log)}")
            time.sleep(0.5)
        yield api
    finally:
        _stop(server, signal.SIGTERM)


def _run(args: list[str], env: dict[str, str], timeout: float) -> str:
    """Run a Python script to completion; its stdout."""
    done = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_flow_runs_through_a_work_pool_on_postgres(
    postgres: Postgres, prefect_server: str, tmp_path: Path
) -> None:
    client_env = _prefect_env(tmp_path / "client-home", PREFECT_API_URL=prefect_server)

    # the server migrated PostgreSQL: Prefect's tables are there, and empty
    assert postgres.query("select count(*) from flow_run") == "0"

    out = _run([str(INFRA / "prefect" / "bootstrap.py")], client_env, timeout=120)
    assert "work pool 'aircast-cpu' (process) created" in out
    assert postgres.query("select name, type from work_pool order by name").splitlines() == [
        "aircast-cpu|process",
        "aircast-gpu|process",
    ]
    assert postgres.query(
        'select name, "limit" from concurrency_limit_v2 order by name'
    ).splitlines() == ["aircast-ads|4", "aircast-cds|4", "aircast-publish|1"]
    # idempotent: a second run keeps everything; with a key in the environment, it saves it in
    # the Secret block the ingest flows read, and never prints it
    key_env = {**client_env, "AIRCAST_CDS_KEY": "cds-key-for-the-test"}
    key_env.pop("AIRCAST_ADS_KEY", None)
    out = _run([str(INFRA / "prefect" / "bootstrap.py"), "--secrets-from-env"], key_env, 120)
    assert "created" not in out
    assert "Secret block 'aircast-cds-key' saved from AIRCAST_CDS_KEY" in out
    assert "'aircast-ads-key': AIRCAST_ADS_KEY is not set" in out
    assert "cds-key-for-the-test" not in out
    assert postgres.query(
        "select name from block_document where name like 'aircast-%' order by name"
    ).splitlines() == ["aircast-cds-key"]

    worker_log = tmp_path / "worker.log"
    worker_env = _prefect_env(
        tmp_path / "worker-home",
        PREFECT_API_URL=prefect_server,
        PREFECT_WORKER_QUERY_SECONDS="1",  # poll often: the test waits for it
    )
    with worker_log.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", "aircast-cpu"],
            env=worker_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=tmp_path,
        )
    try:
        done = subprocess.run(
            [
                sys.executable,
                str(INFRA / "prefect" / "smoke.py"),
                "--pool=aircast-cpu",
                "--timeout=90",
            ],
            env=client_env,
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
        )
    finally:
        # SIGINT, a worker's graceful stop (Ctrl-C); a SIGTERM was seen to leave it running
        _stop(worker, signal.SIGINT)
    assert done.returncode == 0, (
        f"smoke.py exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
        f"worker log:\n{_tail(worker_log)}"
    )
    match = re.search(r"flow run ([0-9a-f-]{36}) .* on pool aircast-cpu: Completed", done.stdout)
    assert match, done.stdout
    # the worker's environment has the project installed (the run reported its version)
    assert re.search(r'worker environment: .*"aircast": "\d[^"]*"', done.stdout), done.stdout

    # the run is in PostgreSQL, completed, and went through the aircast-cpu pool's queue
    row = postgres.query(
        "select fr.state_type, wp.name from flow_run fr "
        "join work_queue wq on wq.id = fr.work_queue_id "
        "join work_pool wp on wp.id = wq.work_pool_id "
        f"where fr.id = '{match.group(1)}'"
    )
    assert row == "COMPLETED|aircast-cpu"
