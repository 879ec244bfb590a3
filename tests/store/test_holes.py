"""Failed fetches are holes, not missing days; damaged raw files never reach the store.

Through the CLI, against the sandbox: a day the store has no data for (its ``missing=`` fault,
MARS's "no data" answer) is a missing time; a day whose fetch failed (a failed job) stops
``aircast store build`` naming the requests and the ``aircast ingest`` command, builds with
``--accept-holes`` (each missing time saying why), and builds whole once ingested again. A raw
file whose bytes changed at the same size is refused by the build and quarantined.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import xarray as xr
import yaml
from storetools import ConfigFactory, copy_raw
from typer.testing import CliRunner

from aircast.align.time import axis_times
from aircast.cli import app
from aircast.config import AirCastConfig
from aircast.sources.cache import RawCache, sha256_of

NO_DATA_DAY = dt.date(2019, 6, 2)  # the sandbox has no data for it
FAILED_DAY = dt.date(2019, 6, 4)  # its ERA5 job fails at the store


def _write(config: AirCastConfig, path: Path, faults: str | None = None) -> Path:
    data = config.model_dump(mode="json")
    if faults is not None:
        data["sandbox"] = {**data.get("sandbox", {}), "faults": faults}
    path.write_text(yaml.safe_dump(data))
    return path


def _forget(cache: RawCache, day: dt.date, dataset_prefix: str = "") -> None:
    """Take a day's requests out of the raw cache, as if never ingested."""
    for entry in cache.entries():
        if (
            entry.day == day
            and entry.dataset.startswith(dataset_prefix)
            and entry.group != "static"
        ):
            if entry.path:
                (cache.root / entry.path).unlink()
            with sqlite3.connect(cache.manifest_path) as db:
                db.execute("DELETE FROM requests WHERE key = ?", (entry.key,))


def _flip(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        chunk = f.read(8)
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))


def test_a_failed_fetch_stops_the_build_until_fetched_or_accepted(
    raw_root: Path, make_config: ConfigFactory, tmp_path: Path
) -> None:
    config = make_config(root=copy_raw(raw_root, tmp_path / "copy"))
    cache = RawCache(config.paths.raw)
    _forget(cache, NO_DATA_DAY)
    _forget(cache, FAILED_DAY, "reanalysis-era5")
    runner = CliRunner()
    day = NO_DATA_DAY.isoformat()
    no_data = _write(config, tmp_path / "no-data.yaml", f"missing={day}")
    ingested = runner.invoke(app, ["ingest", str(no_data), "--start", day, "--end", day])
    assert ingested.exit_code == 2, ingested.output  # the store said: no data
    day = FAILED_DAY.isoformat()
    failing = _write(config, tmp_path / "failing.yaml", "fail=1,transient_attempts=99")
    args = ["ingest", str(failing), "--start", day, "--end", day, "--source", "era5"]
    assert runner.invoke(app, args).exit_code == 2
    # (an ingest of one day also asks for that day's static fields, which the build does not read)
    failed = [e for e in cache.entries("failed") if e.day == FAILED_DAY and e.group != "static"]
    assert failed and all(not e.no_data_at_store for e in failed)
    assert all(e.no_data_at_store for e in cache.entries("failed") if e.day == NO_DATA_DAY)

    recipe = _write(config, tmp_path / "recipe.yaml")
    stopped = runner.invoke(app, ["store", "build", str(recipe), "--serial"])
    assert stopped.exit_code == 2, stopped.output
    for entry in failed:
        assert f"{entry.dataset} {FAILED_DAY} {entry.group}" in stopped.output
    assert f"aircast ingest CONFIG --start {day} --end {day} --source era5" in stopped.output
    assert "--accept-holes" in stopped.output and str(NO_DATA_DAY) not in stopped.output
    assert not Path(config.store_url).exists(), "nothing is built before the inputs are there"

    accepted = runner.invoke(app, ["store", "build", str(recipe), "--serial", "--accept-holes"])
    assert accepted.exit_code == 0, accepted.output
    ds = xr.open_zarr(config.store_url)
    missing = ds["missing_times"].values
    reasons = dict(
        zip(
            missing.astype("datetime64[h]").tolist(), ds.missing_times.attrs["reasons"], strict=True
        )
    )
    for time in axis_times(NO_DATA_DAY, NO_DATA_DAY).astype("datetime64[h]").tolist():
        assert reasons[time].startswith("no data at the store: "), reasons[time]
        assert "fetch failed" not in reasons[time]
    for time in axis_times(FAILED_DAY, FAILED_DAY).astype("datetime64[h]").tolist():
        assert reasons[time].startswith("fetch failed: reanalysis-era5"), reasons[time]
        assert "MarsRequestError" in reasons[time]

    # the command the build named fetches the holes; then the build needs no option
    fixed = runner.invoke(app, ["ingest", str(recipe), "--start", day, "--end", day])
    assert fixed.exit_code == 0, fixed.output
    whole = runner.invoke(app, ["store", "build", str(recipe), "--serial"])
    assert whole.exit_code == 0, whole.output
    ds = xr.open_zarr(config.store_url)
    lost = axis_times(NO_DATA_DAY, NO_DATA_DAY)
    # a missing precipitation day also takes the next midnight (its amounts need the day)
    expected = np.append(lost, lost[-1] + np.timedelta64(3, "h"))
    np.testing.assert_array_equal(ds["missing_times"].values, expected)
    assert all(r.startswith("no data at the store") for r in ds.missing_times.attrs["reasons"])


def test_a_raw_file_with_flipped_bytes_stops_the_build_and_is_quarantined(
    raw_root: Path, reference_store: Path, make_config: ConfigFactory, tmp_path: Path
) -> None:
    config = make_config(root=copy_raw(raw_root, tmp_path / "copy"))
    cache = RawCache(config.paths.raw)
    recipe = _write(config, tmp_path / "recipe.yaml")
    runner = CliRunner()
    assert runner.invoke(app, ["store", "build", str(recipe), "--serial"]).exit_code == 0
    before = xr.open_zarr(config.store_url)["fields"].values
    (entry,) = [
        e
        for e in cache.entries("complete")
        if e.day == NO_DATA_DAY and "eac4" in e.dataset and e.group == "single"
    ]
    damaged = cache.root / str(entry.path)
    _flip(damaged)
    size = damaged.stat().st_size

    result = runner.invoke(app, ["store", "build", str(recipe), "--serial", "--rebuild"])
    assert result.exit_code == 2, result.output
    assert "not its sha256" in result.output and damaged.name in result.output
    assert f"aircast ingest CONFIG --start {NO_DATA_DAY}" in result.output
    assert not damaged.exists()
    (kept,) = (cache.root / "quarantine").iterdir()
    assert kept.stat().st_size == size and sha256_of(kept) != entry.sha256
    np.testing.assert_array_equal(xr.open_zarr(config.store_url)["fields"].values, before)

    # the next ingest fetches it again, and the build is the reference store again
    day = NO_DATA_DAY.isoformat()
    assert runner.invoke(app, ["ingest", str(recipe), "--start", day, "--end", day]).exit_code == 0
    assert sha256_of(damaged) == entry.sha256
    rebuilt = runner.invoke(app, ["store", "build", str(recipe), "--serial"])
    assert rebuilt.exit_code == 0, rebuilt.output
    reference = xr.open_zarr(reference_store)["fields"].values
    np.testing.assert_array_equal(xr.open_zarr(config.store_url)["fields"].values, reference)
