"""End to end: the tiny recipe's store holds the regridded, time-aligned source values, opens
with plain xarray, and every stage can be rerun without changing a byte."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from storetools import FIRST, ConfigFactory, tiny_config

from aircast.align.grid import TargetGrid, regrid_conservative
from aircast.align.time import align_time, axis_times
from aircast.config import AirCastConfig
from aircast.jobs.build import run_build
from aircast.sources.decode import decode_product
from aircast.sources.ingest import raw_cache
from aircast.sources.registry import get_source
from aircast.store.build import (
    extend_store,
    finalise_store,
    init_store,
    load_part,
    verify_store,
)
from aircast.store.reader import open_store
from aircast.store.schema import (
    SCHEMA_VERSION,
    StoreError,
    StoreIncompleteError,
    recipe_fingerprint,
    recipe_of,
)
from aircast.testing import assert_same_files, snapshot
from aircast.vocab import CAMS_EAC4, ERA5_SINGLE, parse_channel


def _decoded(config: AirCastConfig, dataset: str, day: dt.date, group: str) -> xr.Dataset:
    """Decode and regrid one raw request, found among its source's requests."""
    source = "era5" if dataset == ERA5_SINGLE else "eac4"
    cache = raw_cache(config)
    (request,) = [
        r
        for r in get_source(source).requests(config, day, day)
        if r.group == group and r.dataset == dataset and r.day == day
    ]
    path = cache.existing_file(request)
    assert path is not None
    return regrid_conservative(
        decode_product(path, request.parsed()), TargetGrid.from_config(config)
    )


def expected_field(config: AirCastConfig, name: str, time: np.datetime64) -> np.ndarray:
    """The value a channel must have at ``time``, computed from the raw files directly.

    Returns float32 (n_lat, n_lon).
    """
    channel = parse_channel(name)
    day = time.astype("datetime64[D]").astype(dt.date)
    if name == "t2m":
        ds = _decoded(config, ERA5_SINGLE, day, "single")
    elif name == "tp":  # the 3-hour amount ending at T may reach into the day before
        days = [day - dt.timedelta(days=1), day]
        ds = xr.concat([_decoded(config, ERA5_SINGLE, d, "accumulated") for d in days], "time")
    elif name == "lsm":
        ds = _decoded(config, ERA5_SINGLE, FIRST, "static")
    elif channel.level is None:
        ds = _decoded(config, CAMS_EAC4, day, "single")
    else:
        ds = _decoded(config, CAMS_EAC4, day, f"pressure-{channel.level}")
        ds = ds.sel(level=channel.level, drop=True)
    aligned = align_time(ds[[channel.variable]], np.array([time], dtype="datetime64[ns]"))
    return np.asarray(aligned[channel.variable].values[0])


def test_plain_xarray_opens_the_store(reference_store: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "consolidated metadata" or other warnings
        ds = xr.open_zarr(reference_store)
    fields = ds["fields"]
    assert fields.dims == ("time", "channel", "latitude", "longitude")
    assert fields.dtype == np.float32
    assert fields.shape == (40, 5, 17, 37)
    assert fields.encoding["chunks"] == (1, 5, 17, 37)
    assert list(ds["channel"].values) == ["t2m", "tp", "pm2p5", "go3_925", "lsm"]
    assert list(ds["channel_units"].values) == ["K", "m", "kg m-3", "kg kg-1", "1"]
    assert list(ds["channel_level"].values) == [-1, -1, -1, 925, -1]
    assert list(ds["channel_role"].values) == [
        "weather",
        "weather",
        "pollutant",
        "pollutant",
        "static",
    ]
    assert list(ds["channel_positive"].values) == [False, True, True, True, False]
    np.testing.assert_array_equal(ds["time"].values, axis_times(FIRST, dt.date(2019, 6, 5)))
    assert np.all(np.diff(ds["latitude"].values) < 0)
    assert np.all(np.diff(ds["longitude"].values) > 0)
    assert ds["longitude"].values.min() < 0 < ds["longitude"].values.max()  # crosses 0°
    assert ds.attrs["schema_version"] == SCHEMA_VERSION
    assert ds.attrs["state"] == "complete"
    assert ds.attrs["recipe_fingerprint"] == recipe_fingerprint(ds.attrs["recipe"])
    assert ds["missing_times"].size == 0
    assert np.isfinite(fields.values).all()


def test_values_equal_the_regridded_source(reference_store: Path, raw_root: Path) -> None:
    config = tiny_config(raw_root, reference_store)
    ds = xr.open_zarr(reference_store)
    assert ds.attrs["recipe_fingerprint"] == recipe_fingerprint(recipe_of(config))
    rng = np.random.default_rng(7)
    # 00 UTC of a later day (precipitation from the day before), the first and last times, more
    picks = {0, 8, 39, *rng.choice(40, size=4, replace=False).tolist()}
    for index in sorted(picks):
        time = ds["time"].values[index]
        for c, name in enumerate(ds["channel"].values):
            expected = expected_field(config, str(name), time)
            stored = ds["fields"].values[index, c]
            np.testing.assert_array_equal(stored, expected, err_msg=f"{name} at {time}")


def test_reader_gives_fields_statistics_and_histograms(reference_store: Path) -> None:
    store = open_store(str(reference_store))
    assert store.complete
    assert [c.name for c in store.channels] == ["t2m", "tp", "pm2p5", "go3_925", "lsm"]
    go3 = store.channels[3]
    assert (go3.variable, go3.level, go3.units, go3.source) == ("go3", 925, "kg kg-1", CAMS_EAC4)
    assert go3.log_offset == pytest.approx(1e-9)
    day = store.read(slice("2019-06-02", "2019-06-02T21:00"))
    assert day.shape == (8, 5, 17, 37)
    xr.testing.assert_equal(
        day.drop_vars(["channel"]),
        store.ds["fields"]
        .isel(time=slice(8, 16))
        .load()
        .reset_coords(drop=True)
        .drop_vars(["channel"]),
    )
    one = store.read("2019-06-05T21:00")
    assert one.shape == (1, 5, 17, 37)
    with pytest.raises(StoreError, match="not on the store's three-hourly axis"):
        store.read(["2019-06-05T22:00"])
    stats = store.statistics
    assert stats.count.tolist() == [24 * 17 * 37] * 5  # three training days of 8 times
    assert np.isfinite(stats.mean).all() and np.all(stats.std > 0)
    assert np.isnan(stats.log_mean[[0, 4]]).all()
    assert np.isfinite(stats.log_mean[[1, 2, 3]]).all()
    hist = store.histograms
    assert list(hist) == ["pm2p5", "go3_925"]
    for name, h in hist.items():
        c = store.channel_names.index(name)
        assert h.counts.sum() == stats.log_count[c]
        np.testing.assert_allclose(
            h.edges_normalised, (h.edges_log - stats.log_mean[c]) / stats.log_std[c], rtol=1e-12
        )
        assert h.counts[0] == 0 and h.counts[-1] == 0  # the sandbox stays within the bounds
    assert "pm2p5" in store.summary() and "missing: none" in store.summary()


def test_statistics_equal_a_single_pass_over_the_training_fields(reference_store: Path) -> None:
    store = open_store(str(reference_store))
    train = store.ds["fields"].isel(time=slice(0, 24)).values.astype(np.float64)
    stats = store.statistics
    np.testing.assert_allclose(stats.mean, train.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(stats.std, train.std(axis=(0, 2, 3)), rtol=1e-10)
    for c in (1, 2, 3):
        logs = np.log(np.maximum(train[:, c], 0) + stats.log_offset[c])
        assert stats.log_mean[c] == pytest.approx(logs.mean(), rel=1e-12)
        assert stats.log_std[c] == pytest.approx(logs.std(), rel=1e-10)
    for name, h in store.histograms.items():
        c = store.channel_names.index(name)
        logs = np.log(np.maximum(train[:, c], 0) + stats.log_offset[c])
        inner, _ = np.histogram(logs, bins=h.edges_log)
        # numpy's last bin is closed, ours half-open with an overflow bin: equal away from it
        np.testing.assert_array_equal(h.counts[1:-2], inner[:-1])


def test_init_again_changes_nothing(reference_store: Path, make_config: ConfigFactory) -> None:
    config = make_config()
    shutil.copytree(reference_store, config.store_url)
    before = snapshot(Path(config.store_url))
    mtimes = {p: p.stat().st_mtime_ns for p in Path(config.store_url).rglob("*") if p.is_file()}
    init_store(config)
    assert snapshot(Path(config.store_url)) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_rerunning_a_part_and_finalise_leaves_the_same_bytes(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    config = make_config()
    shutil.copytree(reference_store, config.store_url)
    load_part(config, 1)
    assert open_store(config.store_url, require_complete=False).attrs["state"] == "building"
    with pytest.raises(StoreIncompleteError, match="not finalised"):
        open_store(config.store_url)
    finalise_store(config)
    verify_store(config, deep=True)
    assert_same_files(reference_store, Path(config.store_url))


def test_build_resumes_and_skips_current_parts(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    config = make_config()
    shutil.copytree(reference_store, config.store_url)
    result = run_build(config)
    assert result.loaded == [] and result.skipped == [0, 1, 2]
    assert_same_files(reference_store, Path(config.store_url))


def test_finalise_names_the_parts_not_loaded(make_config: ConfigFactory) -> None:
    config = make_config()
    init_store(config)
    load_part(config, 0)
    with pytest.raises(StoreIncompleteError, match=r"parts 1\.\.2 of 3 are not loaded"):
        finalise_store(config)
    with pytest.raises(StoreError, match="part 3 does not exist"):
        load_part(config, 3)


def test_serial_build_in_another_order_is_identical(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    config = make_config()
    init_store(config)
    for index in (2, 0, 1):
        load_part(config, index)
    finalise_store(config)
    assert_same_files(reference_store, Path(config.store_url))


def test_extend_appends_new_days_without_touching_existing_chunks(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    periods = {
        "train": {"start": "2019-06-01", "end": "2019-06-02"},
        "validation": {"start": "2019-06-03", "end": "2019-06-03"},
        "test": {"start": "2019-06-04", "end": "2019-06-04"},
    }
    config = make_config(periods=periods)
    run_build(config)
    root = Path(config.store_url)
    chunks = sorted((root / "fields" / "c").rglob("*"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in chunks if p.is_file()}
    stats_before = {p: p.read_bytes() for p in root.glob("stat_*/c/*") if p.is_file()} | {
        p: p.read_bytes() for p in root.glob("hist_*/c/*/*") if p.is_file()
    }
    assert len(before) == 32

    result = extend_store(config, dt.date(2019, 6, 5), dt.date(2019, 6, 5))
    assert (result.first_day, result.n_times, result.n_missing) == (dt.date(2019, 6, 5), 8, 0)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in before}
    assert after == before, "existing chunks were rewritten"
    assert {p: p.read_bytes() for p in stats_before} == stats_before
    verify_store(config, deep=True)

    ds = xr.open_zarr(config.store_url)
    assert ds.sizes["time"] == 40 and ds.attrs["time_axis"]["end"] == "2019-06-05T21:00"
    reference = xr.open_zarr(reference_store)
    np.testing.assert_array_equal(
        ds["fields"].values[32:], reference["fields"].values[32:]
    )  # the same day gives the same values, whichever store it went into
    assert extend_store(config, dt.date(2019, 6, 3), dt.date(2019, 6, 5)).n_times == 0
    with pytest.raises(StoreError, match="would leave a gap"):
        extend_store(config, dt.date(2019, 6, 7), dt.date(2019, 6, 8))
    # a rerun of the whole build after an extension keeps the extension
    run_build(config)
    assert xr.open_zarr(config.store_url).sizes["time"] == 40


def test_an_interrupted_init_is_finished_by_a_rerun(make_config: ConfigFactory) -> None:
    config = make_config()
    init_store(config)
    root = Path(config.store_url)
    fresh = snapshot(root)
    meta = json.loads((root / "zarr.json").read_text())
    meta["attributes"]["state"] = "initialising"  # as a kill after the first write leaves it
    (root / "zarr.json").write_text(json.dumps(meta))
    shutil.rmtree(root / "fields")
    shutil.rmtree(root / "stat_mean")
    with pytest.raises(StoreIncompleteError, match="initialisation was interrupted"):
        open_store(config.store_url, require_complete=False)
    init_store(config)
    assert snapshot(root) == fresh
