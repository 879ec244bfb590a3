"""Reliability of ``aircast ingest`` against the sandbox data store, through the real client.

Three promises, each checked from the outside (the server's own statistics, the bytes in the
cache, the manifest) rather than from what the ingestion says about itself:

* with transient faults on at least a third of the requests, 30 days are ingested, every file is
  byte-identical to a fault-free run, and no request is sent more often than its retries allow;
* a run killed with SIGKILL at a random moment and run again finishes with nothing lost,
  nothing duplicated, no half-written file, and submitted jobs resumed by their request id;
* bad inputs (configs, dates, keys, stores that are down or send bad files) each end with a
  clear message that names the problem and the fix, a non-zero exit, and an untouched cache.

Network only on 127.0.0.1. The sandbox renders real products (``products.write_product``) over
the analytic test atmosphere, so a 30-day run takes seconds; the toy atmosphere would spend
most of a minute simulating pollutants, which is not what these tests are about.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from aircast.catalogue import ParsedRequest
from aircast.cli import app
from aircast.config import AirCastConfig, load_config
from aircast.sandbox.faults import FaultPlan, request_hash
from aircast.sandbox.server import Renderer, RequestStats, SandboxServer
from aircast.sources.base import Source
from aircast.sources.cache import RawCache, sha256_of
from aircast.sources.ingest import retry_policy
from aircast.sources.registry import get_source
from aircast.sources.requests import SourceRequest
from aircast.testing import merge_sections

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo.yaml"
KEY_ENV = "AIRCAST_TEST_STORE_KEY"
KEY = "AircastReliabilityKey-4e1d2c3b-DO-NOT-PRINT"
START, END = dt.date(2019, 6, 1), dt.date(2019, 6, 30)
SOURCES: tuple[Source, ...] = ("era5", "eac4")
TRANSIENT = ("throttle", "server_error", "queue", "truncate", "corrupt")

pytestmark = [
    pytest.mark.timeout(180),
    # the client checks the store's messages when it is built, and warns if it cannot
    pytest.mark.filterwarnings("ignore:HTTPConnectionPool.*:UserWarning"),
]


# ---------------------------------------------------------------------------------------------
# helpers


def recipe(root: Path, url: str = "http://127.0.0.1:9/api", **changes: Any) -> dict[str, Any]:
    """configs/demo.yaml made small: a 6° box at 3°, two weather, two pollutant and one static
    channel (single levels, a pressure level and a once-only request), patient but quick
    retries, and both stores at ``url`` with the key in :data:`KEY_ENV`."""
    raw: dict[str, Any] = yaml.safe_load(DEMO.read_text())
    raw.update(
        name="reliability",
        region={"north": 30.0, "south": 24.0, "west": 30.0, "east": 36.0},
        grid={"resolution": 3.0},
        variables={
            "weather": ["t2m", "u10"],
            "pollutants": ["pm2p5", "go3_925"],
            "static": ["lsm"],
        },
        datastores={
            "cds": {"url": url, "key_env": KEY_ENV},
            "ads": {"url": url, "key_env": KEY_ENV},
        },
        ingest={"http_tries": 4, "download_tries": 4, "sleep_max": 0.05, "timeout": 20},
        paths={"root": str(root)},
    )
    merge_sections(raw, changes)
    return raw


def write_recipe(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def planned(
    config: AirCastConfig, start: dt.date = START, end: dt.date = END
) -> list[SourceRequest]:
    return [r for s in SOURCES for r in get_source(s).requests(config, start, end)]


def ingest_cli(config: Path, start: dt.date, end: dt.date, key: str | None = KEY) -> Any:
    """``aircast ingest`` in this process (the server runs on a thread beside it)."""
    env = {KEY_ENV: key}
    args = ["ingest", str(config), "--start", start.isoformat(), "--end", end.isoformat()]
    return CliRunner().invoke(app, args, env=env)


def stats_for(server: SandboxServer, req: SourceRequest) -> RequestStats:
    return server.stats[request_hash(req.dataset, dict(req.request))]


def files_under(root: Path) -> dict[str, str]:
    """sha256 of every file at a final name, by path relative to the cache root."""
    return {
        str(p.relative_to(root)): sha256_of(p)
        for p in sorted((root / "files").rglob("*"))
        if p.is_file()
    }


def manifest_rows(root: Path) -> dict[str, tuple[Any, ...]]:
    db = sqlite3.connect(root / "manifest.sqlite")
    try:
        return {r[0]: tuple(r) for r in db.execute("SELECT * FROM requests")}
    finally:
        db.close()


@dataclass
class Reference:
    """The fault-free run: what every other run must end up with, byte for byte."""

    root: Path  # the recipe's paths.root (its cache is root/raw)
    files: dict[str, str]  # sha256 by path relative to the cache root
    by_key: dict[str, str] = field(default_factory=dict)  # sha256 by request key


@pytest.fixture
def sandbox_options(fake_renderer: Renderer) -> dict[str, Any]:
    """The ``sandbox`` servers of these tests demand the test key and render fast."""
    return {"key": KEY, "renderer": fake_renderer}


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory, fake_renderer: Renderer) -> Reference:
    """A fault-free 30-day ingestion, run once per session."""
    base = tmp_path_factory.mktemp("reference")
    with SandboxServer(key=KEY, renderer=fake_renderer) as server:
        path = write_recipe(base / "recipe.yaml", recipe(base / "data", server.url))
        result = ingest_cli(path, START, END)
        assert result.exit_code == 0, result.output
    config = load_config(path)
    raw = config.paths.raw
    ref = Reference(root=config.paths.root, files=files_under(raw))
    cache = RawCache(raw)
    for req in planned(config):
        entry = cache.lookup(req.key)
        assert entry is not None and entry.status == "complete" and entry.path is not None
        ref.by_key[req.key] = ref.files[entry.path]
    assert len(ref.files) == len(ref.by_key) == 1 + 3 * 30  # static + three groups a day
    return ref


# ---------------------------------------------------------------------------------------------
# 1. faults on a third of the requests


def test_ingest_through_transient_faults_equals_a_fault_free_run(
    sandbox: Callable[..., SandboxServer], reference: Reference, tmp_path: Path
) -> None:
    faults = FaultPlan(
        rates=dict.fromkeys(TRANSIENT, 0.15),
        seed=20190601,
        queue_seconds=0.3,
        retry_after=0.05,
        transient_attempts=1,
    )
    server = sandbox(faults)
    path = write_recipe(tmp_path / "recipe.yaml", recipe(tmp_path / "data", server.url))
    result = ingest_cli(path, START, END)
    assert result.exit_code == 0, result.output
    config = load_config(path)
    requests = planned(config)

    # faults struck at least a third of the requests, and every kind struck
    stats = {r.key: stats_for(server, r) for r in requests}
    hit = [k for k, s in stats.items() if s.faults]
    assert len(hit) >= len(requests) / 3, f"only {len(hit)} of {len(requests)} requests faulted"
    struck = Counter(kind for s in stats.values() for kind in s.faults)
    assert set(struck) == set(TRANSIENT), struck

    # the cache equals the fault-free one, byte for byte
    raw = config.paths.raw
    assert files_under(raw) == reference.files
    assert list((raw / "tmp").iterdir()) == []
    cache = RawCache(raw)

    # every request was sent exactly as often as its faults required, and within its retries
    policy = retry_policy(config)
    for req in requests:
        s, entry = stats[req.key], cache.lookup(req.key)
        assert entry is not None and entry.status == "complete"
        f = s.faults
        submit_errors = f.get("server_error", 0) * (
            faults.server_error_site(request_hash(req.dataset, dict(req.request))) == "submit"
        )
        label = f"{req.label}: {s}"
        assert s.jobs == 1 + f.get("corrupt", 0), label  # a damaged job is replaced once
        assert s.submissions == s.jobs + f.get("throttle", 0) + submit_errors, label
        assert s.downloads == s.jobs + f.get("truncate", 0), label  # a cut transfer resumes
        assert s.jobs <= policy.download_tries, label
        assert s.submissions <= policy.download_tries * policy.http_tries, label
        assert s.downloads <= policy.download_tries * policy.http_tries, label
        assert (entry.submissions, entry.downloads) == (s.jobs, s.jobs), label
        assert entry.request_id in server.job_ids()
    quarantined = list((raw / "quarantine").iterdir())
    assert len(quarantined) == struck["corrupt"]


# ---------------------------------------------------------------------------------------------
# 2. SIGKILL at a random moment, then run again


KILL_DAYS = (START, START + dt.timedelta(days=9))


def _kill_moment(seed: int) -> tuple[int, float]:
    """(progress lines to wait for, extra seconds): seeded, so a failure can be replayed.

    Counted in progress lines rather than seconds from the start, so that the moment falls
    inside the run however slowly the machine starts Python; of the 31 requests, the seeds
    below kill after 27, 4, 19 and 10 of them (ERA5 and EAC4 are fetched side by side).
    """
    rng = random.Random(seed)
    return rng.randint(0, 28), rng.uniform(0.0, 0.4)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 5, 7])
def test_a_killed_ingest_finishes_on_the_next_run(
    sandbox: Callable[..., SandboxServer], reference: Reference, tmp_path: Path, seed: int
) -> None:
    # every job queues a little, so that a kill finds jobs the store accepted but not served
    server = sandbox("queue=1,queue_seconds=0.3")
    path = write_recipe(tmp_path / "recipe.yaml", recipe(tmp_path / "data", server.url))
    config = load_config(path)
    raw = config.paths.raw
    requests = planned(config, *KILL_DAYS)
    lines, extra = _kill_moment(seed)
    command = [
        sys.executable, "-m", "aircast", "ingest", str(path),
        "--start", KILL_DAYS[0].isoformat(), "--end", KILL_DAYS[1].isoformat(),
    ]  # fmt: skip
    env = {**os.environ, KEY_ENV: KEY, "PYTHONUNBUFFERED": "1"}

    # run 1: killed after `lines` progress lines plus `extra` seconds
    child = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert child.stdout is not None
    seen, output = 0, []
    for line in child.stdout:
        output.append(line)
        seen += "] fetch " in line
        if seen >= lines and (seen or line.startswith("ADS:")):
            break
    time.sleep(extra)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "".join(output)
    at_kill = manifest_rows(raw) if (raw / "manifest.sqlite").exists() else {}
    submitted_at_kill = {
        k for k, row in at_kill.items() if row[6] == "submitted" and row[7] is not None
    }
    assert submitted_at_kill, "the kill found no job in flight: it tested nothing"
    # files installed whose manifest row the kill prevented: re-verified and adopted
    installed_at_kill = {Path(p).stem for p in files_under(raw)} if raw.exists() else set()

    # run 2: to completion
    again = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stdout + again.stderr

    cache = RawCache(raw)
    rows = manifest_rows(raw)
    assert sorted(rows) == sorted(r.key for r in requests)
    events = cache.events()
    by_key: dict[str, Counter[str]] = {r.key: Counter() for r in requests}
    for key, _, event, _ in events:
        by_key[key][event] += 1
    for req in requests:
        entry = cache.lookup(req.key)
        assert entry is not None and entry.status == "complete", req.label
        assert by_key[req.key]["complete"] == 1, (req.label, by_key[req.key])
        # nothing lost or changed: the bytes of the fault-free run
        assert entry.path is not None and sha256_of(raw / entry.path) == reference.by_key[req.key]
        stats = stats_for(server, req)
        if req.key in submitted_at_kill:
            # its job id was on record: resumed by that id (or, when the kill came between the
            # rename and the row, its file adopted), never submitted again
            resumed = 0 if req.key in installed_at_kill else 1
            assert by_key[req.key]["resumed"] == resumed, (req.label, by_key[req.key])
            assert stats.jobs == 1 and by_key[req.key]["submitted"] == 1, (req.label, stats)
        else:
            # at most one job lost to the kill (accepted by the store, not yet on record)
            assert by_key[req.key]["submitted"] == 1, (req.label, by_key[req.key])
            lost = 1 if req.key not in at_kill or at_kill[req.key][7] is None else 0
            assert stats.jobs <= by_key[req.key]["submitted"] + lost, (req.label, stats)
    # no half-written file, nothing at a final name that the manifest does not list
    assert [p.name for p in (raw / "tmp").iterdir()] == []
    listed = {entry.path for entry in cache.entries()}
    assert set(files_under(raw)) == listed
    assert list((raw / "quarantine").iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 3. bad inputs


def _wrong_day(renderer: Renderer) -> Renderer:
    """A store bug: every file holds the day after the one asked for."""

    def render(parsed: ParsedRequest, target: Path) -> str:
        import dataclasses

        import numpy as np

        later = np.asarray(parsed.times) + np.timedelta64(1, "D")
        return renderer(dataclasses.replace(parsed, times=later), target)

    return render


#: What a buggy store sends instead: a variable of the same dataset and level type.
SWAPPED = {"t2m": "d2m", "u10": "v10", "lsm": "z_sfc", "pm2p5": "pm10", "go3": "no2"}


def _wrong_variable(renderer: Renderer) -> Renderer:
    """A store bug: every file holds another variable than the one asked for."""

    def render(parsed: ParsedRequest, target: Path) -> str:
        import dataclasses

        swapped = tuple(SWAPPED[v] for v in parsed.variables)
        return renderer(dataclasses.replace(parsed, variables=swapped), target)

    return render


@dataclass(frozen=True)
class Bad:
    """One bad input: how to make it, and what the error must say."""

    name: str
    expect: tuple[str, ...]  # substrings of the output: the problem and the fix
    recipe: dict[str, Any] = field(default_factory=dict)  # changes to the recipe
    args: tuple[str, ...] = ()  # replaces --start/--end (and adds options)
    key: str | None = KEY  # None: the key variable is not set
    faults: str | None = None  # the store's faults
    renderer: Callable[[Renderer], Renderer] | None = None
    store: str = "sandbox"  # "sandbox": our server; "dead": a port nothing listens on
    text: str | None = None  # the config file's text, instead of a recipe
    quarantines: bool = False  # damaged downloads must have been set aside


# days that the good cache holds (06-30) and does not (07-01): both reuse and fetching happen
SOME_NEW = ("--start", "2019-06-30", "--end", "2019-07-01")
QUICK = {"ingest": {"http_tries": 2, "download_tries": 2, "sleep_max": 0.02, "timeout": 5}}
FOREVER = "transient_attempts=1000,retry_after=0.01"

BAD_INPUTS = [
    Bad("unknown variable", ("t2mm", "t2m"), {"variables": {"weather": ["t2mm"]}}),
    Bad("unknown level", ("go3_333", "925"), {"variables": {"pollutants": ["go3_333"]}}),
    Bad("unknown source (dataset)", ("era6", "choose"), args=(*SOME_NEW, "--source", "era6")),
    Bad("unknown config key", ("sleeep_max", "sleep_max"), {"ingest": {"sleeep_max": 1}}),
    Bad(
        "key written in the config",
        ("key_env", "never goes in a config"),
        {"datastores": {"cds": {"url": "https://cds.example/api", "key": "abc"}}},
    ),
    Bad(
        "bad store url",
        ("ftp://cds.example", "https://cds.climate.copernicus.eu/api"),
        {"datastores": {"cds": {"url": "ftp://cds.example"}}},
    ),
    Bad("config file missing", ("not-there.yaml", "configs/demo.yaml"), text="<missing>"),
    Bad("config not YAML", ("not valid YAML", "line 2"), text="name: x\n  region: [\n"),
    Bad(
        "bad sandbox fault spec",
        ("explode", "valid fault kinds"),
        {
            "datastores": {"cds": {"url": "sandbox"}, "ads": {"url": "sandbox"}},
            "sandbox": {"faults": "explode=1"},
        },
    ),
    Bad(
        "impossible date",
        ("2019-06-31", "YYYY-MM-DD"),
        args=("--start", "2019-06-31", "--end", "2019-07-01"),
    ),
    Bad("end before start", ("swap",), args=("--start", "2019-07-02", "--end", "2019-07-01")),
    Bad(
        "dates a dataset lacks",
        ("2002-12-31", "2003-01-01"),
        args=("--start", "2002-12-31", "--end", "2003-01-01"),
    ),
    Bad("key variable not set", (KEY_ENV, "export"), key=None),
    Bad(
        "key file missing",
        ("/nonexistent/cdsapirc", "key_env"),
        {
            "datastores": {
                "cds": {"url": "https://cds.example/api", "key_file": "/nonexistent/cdsapirc"}
            }
        },
        key=None,
    ),
    Bad("wrong key", ("refused the key", KEY_ENV), key="AircastWrongKey-9f8e7d6c-DO-NOT-PRINT"),
    Bad("store down", ("unreachable", "127.0.0.1:9", "datastores"), QUICK, store="dead"),
    Bad(
        "store keeps throttling",
        ("429", "run the ingestion again later"),
        QUICK,
        faults=f"throttle=1,{FOREVER}",
    ),
    Bad(
        "store keeps failing jobs",
        ("MarsRequestError", "run the ingestion again later"),
        QUICK,
        faults=f"fail=1,{FOREVER}",
    ),
    Bad(
        "store rejects jobs",
        ("rejected", "Wait for some of your requests"),
        QUICK,
        faults=f"reject=1,{FOREVER}",
    ),
    Bad(
        "date missing in the store",
        ("no data available for 2019-07-01", "leave"),
        faults="missing=2019-07-01",
        args=("--start", "2019-07-01", "--end", "2019-07-01"),
    ),
    Bad(
        "store sends corrupt files",
        ("damaged", "quarantine", "report"),
        QUICK,
        faults=f"corrupt=1,{FOREVER}",
        quarantines=True,
    ),
    Bad(
        "store sends truncated files",
        ("broke off", "run the ingestion again later"),
        QUICK,
        faults=f"truncate=1,{FOREVER}",
    ),
    Bad(
        "request over the cost limit",
        ("cost limits exceeded", "fields: 2 variable(s) x 8 time(s)", "take variables"),
        faults="too_large=0",
    ),
    Bad(
        "daily quota spent",
        ("Maximum number of daily requests reached", "UTC midnight", "0 request(s) had been sent"),
        faults="daily_cap=0",
    ),
    Bad(
        "file of another day",
        ("does not match its request", "quarantine"),
        QUICK,
        renderer=_wrong_day,
        quarantines=True,
    ),
    Bad(
        "file of another variable",
        ("does not match its request", "quarantine"),
        QUICK,
        renderer=_wrong_variable,
        quarantines=True,
    ),
]


def test_the_table_has_enough_bad_inputs() -> None:
    assert len(BAD_INPUTS) >= 15
    assert len({b.name for b in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.fixture(scope="session")
def good_cache(reference: Reference) -> Path:
    """The fault-free run's recipe root: every bad-input case starts from a copy of it."""
    return reference.root


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=[b.name for b in BAD_INPUTS])
def test_a_bad_input_fails_clearly_and_damages_nothing(
    bad: Bad,
    sandbox: Callable[..., SandboxServer],
    fake_renderer: Renderer,
    good_cache: Path,
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    shutil.copytree(good_cache, root)
    raw = root / "raw"
    before_rows, before_files = manifest_rows(raw), files_under(raw)

    url = "http://127.0.0.1:9/api"  # the discard port: nothing listens there
    if bad.store == "sandbox":
        wrapped = bad.renderer(fake_renderer) if bad.renderer else fake_renderer
        url = sandbox(bad.faults, renderer=wrapped).url
    path = tmp_path / "recipe.yaml"
    if bad.text == "<missing>":
        path = tmp_path / "not-there.yaml"
    elif bad.text is not None:
        path.write_text(bad.text)
    else:
        write_recipe(path, recipe(root, url, **bad.recipe))
    args = ["ingest", str(path), *(bad.args or SOME_NEW)]
    env = {KEY_ENV: bad.key}
    result = CliRunner().invoke(app, args, env=env)
    output = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), output

    assert result.exit_code != 0, output
    if os.environ.get("AIRCAST_SHOW_BAD_INPUTS"):  # to read the messages as a user would
        print(f"\n===== {bad.name} (exit {result.exit_code})\n{output}")
    for needle in bad.expect:
        assert needle in output, f"{needle!r} is not in:\n{output}"
    assert KEY not in output and "AircastWrongKey" not in output

    # the cache is untouched: rows, files, nothing half-written, nothing new at a final name
    after_rows = manifest_rows(raw)
    for key, row in before_rows.items():
        assert after_rows[key] == row
    for key in after_rows.keys() - before_rows.keys():
        assert after_rows[key][6] != "complete" and after_rows[key][8] is None, after_rows[key]
    assert files_under(raw) == before_files
    assert [p.name for p in (raw / "tmp").iterdir()] == []
    quarantined = list((raw / "quarantine").iterdir())
    assert bool(quarantined) == bad.quarantines, quarantined


@pytest.mark.parametrize("problem", ["store down", "wrong key"])
def test_an_unusable_store_is_reported_once_not_once_per_request(
    sandbox: Callable[..., SandboxServer], tmp_path: Path, problem: str
) -> None:
    """A store that is down, or refuses the key, is one problem: the first request that meets
    it says so, and the rest of that store's requests are not sent (nor recorded)."""
    server = sandbox()
    url = "http://127.0.0.1:9/api" if problem == "store down" else server.url
    key = KEY if problem == "store down" else "AircastWrongKey-9f8e7d6c-DO-NOT-PRINT"
    changes = {"ingest": {**QUICK["ingest"], "max_concurrent_requests": 1}}
    path = write_recipe(tmp_path / "recipe.yaml", recipe(tmp_path / "data", url, **changes))
    result = ingest_cli(path, dt.date(2019, 7, 1), dt.date(2019, 7, 10), key=key)
    assert result.exit_code == 2, result.output
    needle = "is unreachable" if problem == "store down" else "refused the key"
    # one request per store met the problem; each is printed as it happens and in the summary
    assert result.output.count(needle) == 2 * 2, result.output
    assert result.output.count("not sent") == 2 * (11 + 20 - 2), result.output
    rows = manifest_rows(tmp_path / "data" / "raw")
    assert len(rows) == 2 and all(row[6] == "failed" for row in rows.values())
    if problem == "wrong key":
        assert sum(s.submissions for s in server.stats.values()) == 0  # refused at the door


# ---------------------------------------------------------------------------------------------
# 4. the store's refusals: each stops only what it concerns


def _sends(server: SandboxServer, dataset: str) -> int:
    return sum(s.submissions for s in server.stats.values() if s.dataset == dataset)


def test_a_licence_stops_only_its_dataset(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """ERA5 single levels refused for its licence: its requests stop after the first, while
    ERA5 pressure levels (the same store) and EAC4 (the other store) are all fetched."""
    server = sandbox("licence=reanalysis-era5-single-levels")
    changes = {
        "variables": {"weather": ["t2m", "t_850"]},
        "ingest": {**QUICK["ingest"], "max_concurrent_requests": 1},
    }
    path = write_recipe(tmp_path / "recipe.yaml", recipe(tmp_path / "data", server.url, **changes))
    start, end = dt.date(2019, 7, 1), dt.date(2019, 7, 3)
    result = ingest_cli(path, start, end)
    output = result.output
    assert result.exit_code == 2, output
    page = f"{server.url.removesuffix('/api')}/datasets/reanalysis-era5-single-levels"
    assert "required licences not accepted" in output and page in output, output
    assert "not sent: reanalysis-era5-single-levels is refused by CDS" in output, output
    assert _sends(server, "reanalysis-era5-single-levels") == 1
    config = load_config(path)
    cache = RawCache(config.paths.raw)
    for req in planned(config, start, end):
        entry = cache.lookup(req.key)
        if req.dataset == "reanalysis-era5-single-levels":
            assert entry is None or entry.status == "failed", req.label
        else:
            assert entry is not None and entry.status == "complete", req.label


def test_a_spent_daily_quota_stops_its_store_and_says_how_many_were_sent(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """The ADS allows three requests a day: the fourth is refused, the rest of the ADS's are
    not sent, and the CDS (another store, another quota) is fetched whole."""
    cds, ads = sandbox(), sandbox("daily_cap=3")
    changes = {
        "datastores": {"ads": {"url": ads.url, "key_env": KEY_ENV}},
        "ingest": {**QUICK["ingest"], "max_concurrent_requests": 1},
    }
    path = write_recipe(tmp_path / "recipe.yaml", recipe(tmp_path / "data", cds.url, **changes))
    start, end = dt.date(2019, 7, 1), dt.date(2019, 7, 6)
    result = ingest_cli(path, start, end)
    output = result.output
    assert result.exit_code == 2, output
    assert "Maximum number of daily requests reached" in output, output
    assert "3 request(s) had been sent to the ADS in this run" in output, output
    assert "after " in output and "00:00 UTC" in output
    progress = [line for line in output.splitlines() if "] fetch " in line]
    # EAC4 asks two requests a day: 3 served, 1 refused, the other 8 not sent
    assert sum("not sent: ADS could not be used" in line for line in progress) == 8, output
    assert sum(s.jobs for s in ads.stats.values()) == 3
    config = load_config(path)
    cache = RawCache(config.paths.raw)
    for req in planned(config, start, end):
        entry = cache.lookup(req.key)
        if req.store == "cds":
            assert entry is not None and entry.status == "complete", req.label
