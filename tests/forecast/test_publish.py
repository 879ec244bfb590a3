"""Publishing the forecast store: contract, atomicity, idempotency, schema and crash recovery.

Every test writes real Zarr stores under tmp_path. The values of a run are a deterministic
function of its init (:func:`synthetic_runs.published_value`), so any reader can check that what
it sees is whole.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr
from synthetic_runs import CHANNELS, CREATED, LATS, LEADS, LONS, make_run, published_value

from aircast.forecast import publish
from aircast.forecast.publish import (
    LOCK_NAME,
    ForecastRun,
    PublishError,
    publish_forecast,
    published_init_times,
)
from aircast.forecast.reader import open_forecast
from aircast.forecast.schema import FORECAST_SCHEMA_VERSION, ForecastStoreError
from aircast.testing import snapshot


def open_plain(url: str | Path, **kwargs: Any) -> xr.Dataset:
    """``xarray.open_zarr`` as a downstream user calls it; a fall-back to non-consolidated
    metadata (RuntimeWarning) would be a failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return xr.open_zarr(str(url), **kwargs)


def assert_init_is_whole(ds: xr.Dataset, init: np.datetime64, channels: Sequence[str]) -> None:
    """Every channel of ``init`` in ``ds`` is finite and equal to the run's published values."""
    one = ds.sel(init_time=init)
    expected = published_value(init, channels=CHANNELS)
    for name in channels:
        got = one[name].values
        assert np.isfinite(got).all(), f"{name} of {init} has non-finite values"
        np.testing.assert_allclose(got, expected[:, CHANNELS.index(name)], rtol=1e-6)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return str(tmp_path / "forecast.zarr")


# ---------------------------------------------------------------------------------------------
# the contract


def test_round_trip_values_units_and_cf_attributes(url: str) -> None:
    first = publish_forecast(url, make_run("2019-06-01"))
    assert (first.outcome, first.index, first.inits) == ("published", 0, 1)
    assert first.init_time == np.datetime64("2019-06-01", "ns")
    second = publish_forecast(url, make_run("2019-06-02"))
    assert (second.outcome, second.index, second.inits) == ("published", 1, 2)

    ds = open_plain(url)
    assert dict(ds.sizes) == {
        "init_time": 2,
        "lead_time": len(LEADS),
        "latitude": 4,
        "longitude": 5,
    }
    for name in CHANNELS:
        assert ds[name].dims == ("init_time", "lead_time", "latitude", "longitude")
        assert ds[name].dtype == np.float32
    for init in ds["init_time"].values:
        assert_init_is_whole(ds, init, CHANNELS)

    # PM published in µg m-3: 1e-9 kg m-3 is 1 µg m-3
    assert ds["pm2p5"].attrs["units"] == "ug m-3"
    assert ds["pm10"].attrs["units"] == "ug m-3"
    assert ds["t2m"].attrs["units"] == "K"
    assert ds["go3_925"].attrs["units"] == "kg kg-1"
    assert ds["pm2p5"].attrs["standard_name"] == (
        "mass_concentration_of_pm2p5_ambient_aerosol_particles_in_air"
    )
    assert ds["t2m"].attrs["standard_name"] == "air_temperature"
    assert ds["t2m"].attrs["long_name"] == "2 metre temperature"
    assert ds["go3_925"].attrs["long_name"] == "Ozone mass mixing ratio at 925 hPa"
    assert ds["go3_925"].attrs["pressure_level_hpa"] == 925

    # coordinates: timedelta leads, 2-D valid_time, north→south latitudes
    assert ds["lead_time"].dtype == np.dtype("timedelta64[ns]")
    np.testing.assert_array_equal(
        ds["lead_time"].values, np.array(LEADS, "timedelta64[h]").astype("timedelta64[ns]")
    )
    assert ds["valid_time"].dims == ("init_time", "lead_time")
    np.testing.assert_array_equal(
        ds["valid_time"].values, ds["init_time"].values[:, None] + ds["lead_time"].values[None]
    )
    np.testing.assert_array_equal(ds["latitude"].values, LATS)
    np.testing.assert_array_equal(ds["longitude"].values, LONS)
    assert ds["latitude"].attrs["units"] == "degrees_north"
    assert ds["init_time"].attrs["standard_name"] == "forecast_reference_time"
    assert ds["lead_time"].attrs["standard_name"] == "forecast_period"

    # global attributes
    assert ds.attrs["aircast_forecast_schema_version"] == FORECAST_SCHEMA_VERSION == 1
    assert ds.attrs["Conventions"] == "CF-1.10"
    assert ds.attrs["title"]
    assert ds.attrs["grid"]["shape"] == [4, 5]
    assert ds.attrs["grid"]["resolution"] == 0.75
    assert ds.attrs["lead_hours"] == list(LEADS)
    assert ds.attrs["complete_inits"] == 2
    assert ds.attrs["latest_complete_init_time"] == "2019-06-02T00:00:00"
    assert list(ds.attrs)[-1] == "latest_complete_init_time"

    # provenance per init, readable from the plain dataset too
    record = json.loads(str(ds["provenance"].sel(init_time="2019-06-02").values))
    assert record["checkpoint_sha256"] == "c" * 64
    assert record["input_request_ids"] == ["req-2019-06-02-a", "req-2019-06-02-b"]
    assert record["input_source"].startswith("cams-global-atmospheric-composition-forecasts")
    assert record["created"] == CREATED
    assert record["init_time"] == "2019-06-02T00:00:00"
    assert len(record["content_sha256"]) == 64
    assert record["code_version"]


def test_one_microgram(url: str) -> None:
    run = make_run("2019-06-01")
    values = run.values.copy()
    values[:, CHANNELS.index("pm2p5")] = np.float32(1e-9)  # kg m-3
    publish_forecast(url, ForecastRun(**{**run.__dict__, "values": values}))
    got = open_plain(url)["pm2p5"].values
    np.testing.assert_allclose(got, 1.0, rtol=1e-6)


def test_data_chunks_serve_maps_and_series(tmp_path: Path) -> None:
    """(1, every lead, ≤64, ≤64): equal tiles; 61 × 129 cells → 1 × 3 tiles of 61 × 43."""
    lats = 45.0 - 0.75 * np.arange(61)
    lons = -20.25 + 0.75 * np.arange(129)
    url = str(tmp_path / "grid.zarr")
    publish_forecast(
        url, make_run("2019-06-01", leads=(0, 3), channels=("pm2p5",), lats=lats, lons=lons)
    )
    group = zarr.open_group(url, mode="r")
    assert group["pm2p5"].chunks == (1, 2, 61, 43)
    for name in ("init_time", "valid_time", "provenance"):
        assert group[name].chunks[0] == 1  # appending an init never rewrites an object
    assert publish._tile(64) == 64 and publish._tile(65) == 33 and publish._tile(5) == 5


def test_file_urls_are_local_paths(tmp_path: Path) -> None:
    path = tmp_path / "forecast.zarr"
    publish_forecast(f"file://{path}", make_run("2019-06-01"))
    assert publish_forecast(str(path), make_run("2019-06-01")).outcome == "already published"
    assert open_forecast(f"file://{path}").init_times.size == 1
    assert not (path / LOCK_NAME).exists()


def test_published_init_times(url: str, tmp_path: Path) -> None:
    assert published_init_times(url).size == 0
    assert published_init_times(str(tmp_path / "nothing" / "here.zarr")).dtype == "datetime64[ns]"
    for day in ("2019-06-03", "2019-06-01", "2019-06-02"):
        publish_forecast(url, make_run(day))
    np.testing.assert_array_equal(
        published_init_times(url),
        np.array(["2019-06-01", "2019-06-02", "2019-06-03"], "datetime64[ns]"),
    )


# ---------------------------------------------------------------------------------------------
# idempotency


def test_same_run_twice_leaves_the_same_bytes(url: str) -> None:
    publish_forecast(url, make_run("2019-06-01"))
    publish_forecast(url, make_run("2019-06-02"))
    before = snapshot(Path(url))
    again = publish_forecast(url, make_run("2019-06-01", created="2019-06-01T09:00:00"))
    assert (again.outcome, again.index, again.inits) == ("already published", 0, 2)
    assert snapshot(Path(url)) == before  # the first publish's provenance stays
    # channel order does not matter to the content hash
    reordered = make_run("2019-06-02")
    order = [3, 1, 0, 2]
    reordered = ForecastRun(
        **{
            **reordered.__dict__,
            "channels": tuple(CHANNELS[i] for i in order),
            "values": reordered.values[:, order],
        }
    )
    assert publish_forecast(url, reordered).outcome == "already published"
    assert snapshot(Path(url)) == before


def test_two_stores_from_the_same_runs_are_identical(tmp_path: Path) -> None:
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    for day in ("2019-06-02", "2019-06-01"):
        publish_forecast(str(a), make_run(day))
        publish_forecast(str(b), make_run(day))
    assert snapshot(a) == snapshot(b)


def test_other_values_for_a_published_init_are_refused(url: str) -> None:
    publish_forecast(url, make_run("2019-06-01"))
    before = snapshot(Path(url))
    with pytest.raises(PublishError, match=r"2019-06-01T00:00:00 is already published") as info:
        publish_forecast(url, make_run("2019-06-01", offset=0.25))
    assert "new store URL" in str(info.value)
    assert snapshot(Path(url)) == before


def test_created_defaults_to_the_time_of_publishing(url: str) -> None:
    publish_forecast(url, make_run("2019-06-01", created=None))
    created = open_forecast(url).provenance()["created"]
    age = np.datetime64("now", "s") - np.datetime64(created, "s")
    assert np.timedelta64(0, "s") <= age < np.timedelta64(600, "s")


# ---------------------------------------------------------------------------------------------
# publication order


def test_backfill_appends_and_readers_sort(url: str) -> None:
    publish_forecast(url, make_run("2019-06-03"))
    result = publish_forecast(url, make_run("2019-06-01"))
    assert (result.index, result.inits) == (1, 2)
    plain = open_plain(url)
    np.testing.assert_array_equal(
        plain["init_time"].values, np.array(["2019-06-03", "2019-06-01"], "datetime64[ns]")
    )
    assert plain.attrs["latest_complete_init_time"] == "2019-06-03T00:00:00"
    store = open_forecast(url)
    np.testing.assert_array_equal(
        store.init_times, np.array(["2019-06-01", "2019-06-03"], "datetime64[ns]")
    )
    np.testing.assert_array_equal(store.dataset["init_time"].values, store.init_times)
    assert_init_is_whole(store.dataset, store.init_times[0], CHANNELS)
    assert_init_is_whole(store.dataset, store.init_times[1], CHANNELS)
    assert store.provenance("2019-06-01")["init_time"] == "2019-06-01T00:00:00"


# ---------------------------------------------------------------------------------------------
# crashes


class Crash(RuntimeError):
    pass


def _crash_at_commit(monkeypatch: pytest.MonkeyPatch, n_inits: int) -> None:
    """Make the commit of the ``n_inits``-th init raise: chunks written, nothing committed."""
    real = publish._commit

    def commit(store: Any, state: Any, n: int, times: np.ndarray) -> Any:
        if n == n_inits:
            raise Crash("killed before the commit")
        return real(store, state, n, times)

    monkeypatch.setattr(publish, "_commit", commit)


def test_crash_before_commit_leaves_the_previous_inits(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_forecast(url, make_run("2019-06-01"))
    with monkeypatch.context() as patch:
        _crash_at_commit(patch, 2)
        with pytest.raises(Crash):
            publish_forecast(url, make_run("2019-06-02"))
    # the arrays' own metadata grew, and index 1 was written …
    assert zarr.open_group(url, mode="r", use_consolidated=False)["pm2p5"].shape[0] == 2
    assert (Path(url) / "pm2p5" / "c" / "1").exists()
    assert not (Path(url) / LOCK_NAME).exists()
    # … but readers see the committed init only
    assert open_plain(url).sizes["init_time"] == 1
    assert open_forecast(url).init_times.size == 1
    assert published_init_times(url).size == 1

    # the next publish overwrites the orphan: same bytes as a store that never crashed
    assert publish_forecast(url, make_run("2019-06-02")).index == 1
    clean = tmp_path / "clean.zarr"
    for day in ("2019-06-01", "2019-06-02"):
        publish_forecast(str(clean), make_run(day))
    assert snapshot(Path(url)) == snapshot(clean)


def test_orphan_of_another_init_is_overwritten(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_forecast(url, make_run("2019-06-01"))
    with monkeypatch.context() as patch:
        _crash_at_commit(patch, 2)
        with pytest.raises(Crash):
            publish_forecast(url, make_run("2019-06-02"))
    publish_forecast(url, make_run("2019-06-05"))
    clean = tmp_path / "clean.zarr"
    for day in ("2019-06-01", "2019-06-05"):
        publish_forecast(str(clean), make_run(day))
    assert snapshot(Path(url)) == snapshot(clean)
    np.testing.assert_array_equal(
        open_forecast(url).init_times, np.array(["2019-06-01", "2019-06-05"], "datetime64[ns]")
    )


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from synthetic_runs import make_run
    from aircast.forecast import publish

    url, where, condition, days = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    real = getattr(publish, where)
    calls = 0

    def killed(*args, **kwargs):
        global calls
        out = real(*args, **kwargs)
        calls += 1
        if eval(condition):
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: the lock stays
        return out

    setattr(publish, where, killed)
    for day in days:
        publish.publish_forecast(url, make_run(day))
    """
)


def _run_killed(url: str, where: str, condition: str, days: Sequence[str]) -> None:
    """Publish ``days`` in a child that SIGKILLs itself once ``where`` returned and
    ``condition`` (on its ``args`` and number of ``calls``) holds."""
    script = KILLER.format(tests=str(Path(__file__).parent))
    proc = subprocess.run(
        [sys.executable, "-c", script, url, where, condition, *days],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


DAYS = ["2019-06-01", "2019-06-02", "2019-06-03"]


@pytest.mark.parametrize(
    ("where", "condition", "visible"),
    [
        # chunks and grown metadata of the second init written, not committed
        ("_write_init", "args[3] == 1", 1),
        # the third init written and verified, not committed
        ("_verify_init", "args[3] == 2", 2),
        # the store created and committed empty; the first init not started
        ("_commit", "args[2] == 0", 0),
        # the second init committed; the lock not released
        ("_commit", "args[2] == 2", 2),
        # creation killed after the first variable array: no consolidated metadata yet
        ("variable_attrs", "calls == 2", 0),
    ],
)
def test_killed_publisher(
    url: str, tmp_path: Path, where: str, condition: str, visible: int
) -> None:
    _run_killed(url, where, condition, DAYS)
    assert (Path(url) / LOCK_NAME).exists()  # a killed publisher leaves its lock
    assert published_init_times(url).size == visible
    if visible:
        ds = open_plain(url)
        assert ds.sizes["init_time"] == visible
        for init in ds["init_time"].values:
            assert_init_is_whole(ds, init, CHANNELS)
    else:
        with pytest.raises(ForecastStoreError, match="no forecast is published"):
            open_forecast(url)
    # the next publisher breaks the dead process's lock and finishes the job
    for day in DAYS:
        publish_forecast(url, make_run(day))
    clean = tmp_path / "clean.zarr"
    for day in DAYS:
        publish_forecast(str(clean), make_run(day))
    assert snapshot(Path(url)) == snapshot(clean)


# ---------------------------------------------------------------------------------------------
# the writer lock


def _write_lock(url: str, pid: int, since: float | None = None) -> None:
    Path(url).mkdir(parents=True, exist_ok=True)
    record = {"host": socket.gethostname(), "pid": pid, "since": since or time.time()}
    (Path(url) / LOCK_NAME).write_text(json.dumps(record))


def test_a_live_lock_is_respected(url: str) -> None:
    publish_forecast(url, make_run("2019-06-01"))
    _write_lock(url, os.getpid())  # this process is alive
    before = snapshot(Path(url))
    with pytest.raises(PublishError, match="another publisher holds the lock") as info:
        publish_forecast(url, make_run("2019-06-02"))
    assert LOCK_NAME in str(info.value)
    assert snapshot(Path(url)) == before


def test_stale_locks_are_broken(url: str) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(url, dead.pid)
    assert publish_forecast(url, make_run("2019-06-01")).outcome == "published"
    _write_lock(url, os.getpid(), since=time.time() - publish.STALE_LOCK_SECONDS - 1)
    assert publish_forecast(url, make_run("2019-06-02")).outcome == "published"
    assert not (Path(url) / LOCK_NAME).exists()


# ---------------------------------------------------------------------------------------------
# schema and foreign stores


def _set_schema_version(url: str, version: int) -> None:
    path = Path(url) / "zarr.json"
    root = json.loads(path.read_text())
    root["attributes"]["aircast_forecast_schema_version"] = version
    path.write_text(json.dumps(root, indent=2))


def test_another_schema_version_is_refused(url: str) -> None:
    publish_forecast(url, make_run("2019-06-01"))
    _set_schema_version(url, 2)
    before = snapshot(Path(url))
    for call in (
        lambda: open_forecast(url),
        lambda: publish_forecast(url, make_run("2019-06-02")),
        lambda: published_init_times(url),
    ):
        with pytest.raises(ForecastStoreError) as info:
            call()
        message = str(info.value)
        assert "schema version 2" in message and "schema version 1" in message
        assert "new store URL" in message
    assert snapshot(Path(url)) == before


def test_foreign_content_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a store")
    with pytest.raises(ForecastStoreError, match="not empty"):
        publish_forecast(str(folder), make_run("2019-06-01"))
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]

    other = tmp_path / "training.zarr"
    zarr.create_group(str(other), attributes={"aircast_store": "training", "schema_version": 1})
    before = snapshot(other)
    with pytest.raises(ForecastStoreError, match="not an AirCast forecast store"):
        publish_forecast(str(other), make_run("2019-06-01"))
    with pytest.raises(ForecastStoreError, match="not an AirCast forecast store"):
        open_forecast(str(other))
    assert snapshot(other) == before


# ---------------------------------------------------------------------------------------------
# runs that cannot be published


def _with(run: ForecastRun, **changes: Any) -> ForecastRun:
    return ForecastRun(**{**run.__dict__, **changes})


def _nan(run: ForecastRun) -> ForecastRun:
    values = run.values.copy()
    values[2, 0, 1, 1] = np.nan
    return _with(run, values=values)


def _negative_pm(run: ForecastRun) -> ForecastRun:
    values = run.values.copy()
    values[1, CHANNELS.index("pm10"), 0, 0] = -1e-12
    return _with(run, values=values)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_nan, "t2m has 1 non-finite"),
        (_negative_pm, "pm10 is non-negative"),
        (lambda r: _with(r, values=r.values[:, :3]), "values have shape"),
        (lambda r: _with(r, latitudes=r.latitudes[::-1]), "north to south"),
        (lambda r: _with(r, longitudes=r.longitudes + 180), r"within \[-180, 180\)"),
        (lambda r: _with(r, lead_hours=(0, 6, 3, 9, 12)), "strictly ascending"),
        (lambda r: _with(r, channels=("t2m", "pm25", "pm10", "go3_925")), "pm25"),
        (lambda r: _with(r, channels=("t2m", "pm2p5", "pm10", "go3")), "needs a level"),
        (lambda r: _with(r, init_time=np.datetime64("2019-06-01T00:30", "ns")), "whole hour"),
        (lambda r: _with(r, provenance={"checkpoint_sha256": "c"}), "input_request_ids"),
        (
            lambda r: _with(r, provenance={**r.provenance, "input_request_ids": "req-1"}),
            "list of strings",
        ),
        (
            lambda r: _with(r, provenance={**r.provenance, "extra": object()}),
            "JSON-able",
        ),
        (lambda r: _with(r, provenance={**r.provenance, "created": "yesterday"}), "created"),
    ],
)
def test_malformed_runs_are_refused(url: str, change: Any, message: str) -> None:
    with pytest.raises(PublishError, match=message):
        publish_forecast(url, change(make_run("2019-06-01")))
    assert not Path(url).exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": ("t2m", "pm2p5", "pm10")}, "channels"),
        ({"leads": (0, 3, 6)}, "leads"),
        ({"lats": LATS + 0.75}, "latitudes are not the grid"),
        ({"lons": LONS[1:]}, "longitudes are not the grid"),
    ],
)
def test_runs_that_do_not_fit_the_store_are_refused(
    url: str, kwargs: dict[str, Any], message: str
) -> None:
    publish_forecast(url, make_run("2019-06-01"))
    before = snapshot(Path(url))
    run = make_run("2019-06-02", **kwargs)
    with pytest.raises(PublishError, match=message) as info:
        publish_forecast(url, run)
    assert "new store URL" in str(info.value)
    assert snapshot(Path(url)) == before


# ---------------------------------------------------------------------------------------------
# object storage

s3fs = pytest.importorskip("s3fs")


def test_s3_publish_and_read(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    url = f"s3://{s3_bucket}/daily/forecast.zarr"
    options = {"endpoint_url": s3_endpoint}
    assert published_init_times(url, storage_options=options).size == 0
    for day in ("2019-06-02", "2019-06-01"):
        assert publish_forecast(url, make_run(day), storage_options=options).outcome == "published"
    again = publish_forecast(url, make_run("2019-06-01"), storage_options=options)
    assert again.outcome == "already published"

    ds = open_plain(url, storage_options=options)
    assert ds.sizes["init_time"] == 2
    for init in ds["init_time"].values:
        assert_init_is_whole(ds, init, CHANNELS)
    store = open_forecast(url, storage_options=options)
    np.testing.assert_array_equal(
        store.init_times, np.array(["2019-06-01", "2019-06-02"], "datetime64[ns]")
    )
    assert store.provenance("2019-06-01")["input_request_ids"][0] == "req-2019-06-01-a"

    # the objects are a local store's files, byte for byte, and the lock is gone
    local = tmp_path / "local.zarr"
    for day in ("2019-06-02", "2019-06-01"):
        publish_forecast(str(local), make_run(day))
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True)
    prefix = f"{s3_bucket}/daily/forecast.zarr/"
    objects = {key.removeprefix(prefix): fs.cat_file(key) for key in fs.find(prefix)}
    assert objects == snapshot(local)

    # a live lock on S3 is respected too
    fs.pipe_file(
        prefix + LOCK_NAME,
        json.dumps({"host": "elsewhere", "pid": 1, "since": time.time()}).encode(),
    )
    with pytest.raises(PublishError, match="another publisher holds the lock"):
        publish_forecast(url, make_run("2019-06-03"), storage_options=options)
