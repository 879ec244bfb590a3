"""Days the data stores did not deliver, and statistics that come from the training period
only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from storetools import ConfigFactory, copy_raw

import aircast.sources.base as sources_base
from aircast.align.time import axis_times
from aircast.jobs.build import run_build
from aircast.sources.cache import RawCache
from aircast.sources.registry import get_source
from aircast.store.build import verify_store
from aircast.store.inputs import HolesError
from aircast.store.reader import open_store
from aircast.store.schema import MissingDataError

DAY = dt.date(2019, 6, 2)  # a training day


def _requests(config: Any, source: str, day: dt.date, group: str) -> list[Any]:
    requests = get_source(source).requests(config, day, day)
    return [r for r in requests if r.group == group and r.day == day]


def _stats_without(reference: Path, drop: np.ndarray) -> dict[str, np.ndarray]:
    """Training statistics of the reference store's fields without the times ``drop``."""
    ds = xr.open_zarr(reference)
    train = ds["fields"].isel(time=slice(0, 24))
    keep = ~np.isin(train["time"].values, drop)
    values = train.values[keep].astype(np.float64)
    offsets = ds["channel_log_offset"].values
    logs = np.log(np.maximum(values, 0) + offsets[None, :, None, None])
    return {
        "mean": values.mean(axis=(0, 2, 3)),
        "std": values.std(axis=(0, 2, 3)),
        "log_mean": logs.mean(axis=(0, 2, 3)),
        "log_std": logs.std(axis=(0, 2, 3)),
        "count": np.full(values.shape[1], values[:, 0].size),
    }


def test_a_day_the_stores_did_not_deliver_is_missing_and_left_out_of_the_statistics(
    reference_store: Path, raw_root: Path, make_config: ConfigFactory, tmp_path: Path
) -> None:
    root = copy_raw(raw_root, tmp_path / "damaged")
    config = make_config(root=root)
    cache = RawCache(config.paths.raw)
    # the store has no EAC4 data that day (the sandbox's 'missing' fault, MARS's words) …
    (eac4,) = _requests(config, "eac4", DAY, "single")
    cache.existing_file(eac4).unlink()  # type: ignore[union-attr]
    cache.record_failed(
        eac4, f"MARS returned no data, please check your selection.\nno data available for {DAY}"
    )
    # … and the ERA5 file of the same day is gone although the manifest says complete: a
    # hole (the store has the data), which stops the build before the store is created …
    (era5,) = _requests(config, "era5", DAY, "single")
    cache.existing_file(era5).unlink()  # type: ignore[union-attr]
    with pytest.raises(HolesError, match="aircast ingest CONFIG --start 2019-06-02") as stop:
        run_build(config)
    assert era5.label in str(stop.value) and eac4.label not in str(stop.value)
    assert not Path(config.store_url).exists()

    # … unless the holes are accepted: then the day is missing, each time saying why
    result = run_build(config, accept_holes=True)
    lost = axis_times(DAY, DAY)
    assert result.n_missing == 8
    store = open_store(config.store_url)
    np.testing.assert_array_equal(store.missing_times, lost)
    reasons = xr.open_zarr(config.store_url)["missing_times"].attrs["reasons"]
    assert len(reasons) == 8
    for reason in reasons:
        assert f"no data at the store: {eac4.label}" in reason
        assert f"file gone from the raw cache: {era5.label}" in reason
    assert "missing: 8 times on 1 days: 2019-06-02 (8)" in store.summary()
    chunks = {
        int(p.parts[-4]) for p in Path(config.store_url, "fields", "c").rglob("0") if p.is_file()
    }
    assert chunks == set(range(40)) - set(range(8, 16)), "a missing time has no chunk"
    with pytest.raises(MissingDataError, match="no data for 8 of the 24 requested times") as info:
        store.read(slice("2019-06-01", "2019-06-03T21:00"))
    np.testing.assert_array_equal(info.value.times, lost)
    assert "2019-06-02T00:00" in str(info.value)
    assert store.available(slice("2019-06-01", "2019-06-03T21:00")).sum() == 16
    assert np.isnan(store.ds["fields"].isel(time=slice(8, 16)).values).all()
    # every other time holds exactly what the complete build holds
    reference = xr.open_zarr(reference_store)["fields"].values
    keep = np.r_[0:8, 16:40]
    np.testing.assert_array_equal(store.read(store.times[keep]).values, reference[keep])

    expected = _stats_without(reference_store, lost)
    stats = store.statistics
    np.testing.assert_array_equal(stats.count, expected["count"])
    assert stats.count[0] == 16 * 17 * 37
    np.testing.assert_allclose(stats.mean, expected["mean"], rtol=1e-12)
    np.testing.assert_allclose(stats.std, expected["std"], rtol=1e-10)
    positive = [1, 2, 3]
    np.testing.assert_allclose(stats.log_mean[positive], expected["log_mean"][positive], rtol=1e-12)
    np.testing.assert_allclose(stats.log_std[positive], expected["log_std"][positive], rtol=1e-10)
    for name, hist in store.histograms.items():
        assert hist.counts.sum() == 16 * 17 * 37, name
    verify_store(config, deep=True)


def test_failed_precipitation_also_takes_the_next_midnight(
    raw_root: Path, make_config: ConfigFactory, tmp_path: Path
) -> None:
    root = copy_raw(raw_root, tmp_path / "damaged")
    config = make_config(root=root)
    cache = RawCache(config.paths.raw)
    (hourly,) = _requests(config, "era5", DAY, "accumulated")
    cache.existing_file(hourly).unlink()  # type: ignore[union-attr]
    cache.record_failed(hourly, f"no data available for {DAY}")
    run_build(config)
    store = open_store(config.store_url)
    # 00 UTC of the next day needs the amounts of 22 and 23 UTC of DAY
    expected = np.append(axis_times(DAY, DAY), np.datetime64("2019-06-03T00:00", "ns"))
    np.testing.assert_array_equal(store.missing_times, expected)
    reasons = xr.open_zarr(config.store_url)["missing_times"].attrs["reasons"]
    assert reasons == [f"no data at the store: {hourly.label}"] * 9


def test_statistics_come_from_the_training_period_only(
    reference_store: Path, make_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_end = dt.date(2019, 6, 3)
    original = sources_base.decode_product

    def perturbed(path: Any, parsed: Any) -> xr.Dataset:
        ds = original(path, parsed)
        day = parsed.times[0].astype("datetime64[D]").astype(dt.date)
        if day <= train_end:
            return ds
        return ds.map(lambda v: v * 10 + 1, keep_attrs=True)  # other validation and test data

    monkeypatch.setattr(sources_base, "decode_product", perturbed)
    config = make_config()
    run_build(config)
    store, reference = open_store(config.store_url), open_store(str(reference_store))
    fields, ref_fields = store.ds["fields"].values, reference.ds["fields"].values
    np.testing.assert_array_equal(fields[:24], ref_fields[:24])  # training days unchanged
    assert not np.allclose(fields[25:], ref_fields[25:])  # validation and test changed
    for name in ("count", "mean", "std", "log_count", "log_mean", "log_std"):
        a, b = getattr(store.statistics, name), getattr(reference.statistics, name)
        assert a.tobytes() == b.tobytes(), name
    for name, hist in store.histograms.items():
        assert hist.counts.tobytes() == reference.histograms[name].counts.tobytes()
        assert (
            hist.edges_normalised.tobytes() == reference.histograms[name].edges_normalised.tobytes()
        )
