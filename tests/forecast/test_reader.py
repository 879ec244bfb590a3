"""Reading the forecast store: open_forecast and the ForecastStore questions."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from synthetic_runs import CHANNELS, LATS, LEADS, LONS, make_run, published_value

import aircast
from aircast.errors import AirCastError
from aircast.forecast import publish, reader
from aircast.forecast.publish import publish_forecast
from aircast.forecast.reader import ForecastQueryError, ForecastStore, open_forecast
from aircast.forecast.schema import ForecastStoreError

DAYS = ("2019-06-03", "2019-06-01", "2019-06-02")  # published out of order (a backfill)


@pytest.fixture
def url(tmp_path: Path) -> str:
    path = str(tmp_path / "forecast.zarr")
    for day in DAYS:
        publish_forecast(path, make_run(day))
    return path


@pytest.fixture
def store(url: str) -> ForecastStore:
    return open_forecast(url)


def expected(day: str, channel: str) -> np.ndarray:
    """(lead, lat, lon) published values of ``channel`` in the run of ``day``."""
    return published_value(np.datetime64(day, "ns"))[:, CHANNELS.index(channel)]


def test_identity(store: ForecastStore, url: str) -> None:
    assert store.url == url
    np.testing.assert_array_equal(store.init_times, np.array(sorted(DAYS), "datetime64[ns]"))
    assert store.latest_init_time == np.datetime64("2019-06-03", "ns")
    assert store.variables == CHANNELS
    assert store.lead_hours == LEADS
    assert store.attrs["aircast_forecast_schema_version"] == 1
    assert "3 inits" in repr(store) and "pm2p5" in repr(store)


def test_dataset_is_sorted_lazy_and_whole(store: ForecastStore) -> None:
    ds = store.dataset
    np.testing.assert_array_equal(ds["init_time"].values, store.init_times)
    assert list(ds.data_vars) == list(CHANNELS)
    assert not ds["pm2p5"].variable._in_memory  # nothing read yet
    for day in DAYS:
        for name in CHANNELS:
            np.testing.assert_allclose(
                ds[name].sel(init_time=day).values, expected(day, name), rtol=1e-6
            )


@pytest.mark.parametrize(
    "init",
    ["2019-06-01", "2019-06-01T00:00", "2019-06-01T00:00:00Z", np.datetime64("2019-06-01")],
)
def test_forecast_of_one_init(store: ForecastStore, init: Any) -> None:
    ds = store.forecast(init)
    assert ds["pm2p5"].dims == ("lead_time", "latitude", "longitude")
    assert ds["init_time"].values == np.datetime64("2019-06-01", "ns")
    np.testing.assert_array_equal(
        ds["valid_time"].values,
        np.datetime64("2019-06-01", "ns") + np.array(LEADS, "timedelta64[h]"),
    )
    np.testing.assert_allclose(ds["pm2p5"].values, expected("2019-06-01", "pm2p5"), rtol=1e-6)
    assert ds["pm2p5"].attrs["units"] == "ug m-3"


def test_forecast_defaults_to_the_latest_init(store: ForecastStore) -> None:
    ds = store.forecast()
    assert ds["init_time"].values == np.datetime64("2019-06-03", "ns")
    aware = dt.datetime(2019, 6, 3, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert store.forecast(aware)["init_time"].values == ds["init_time"].values


def test_point_is_the_nearest_cell(store: ForecastStore) -> None:
    ds = store.point(11.3, -0.4, init_time="2019-06-02")  # nearest: (11.25, -0.75)
    assert float(ds["latitude"]) == 11.25 and float(ds["longitude"]) == -0.75
    assert ds.attrs["requested_latitude"] == 11.3
    assert ds["t2m"].dims == ("lead_time",)
    assert ds["valid_time"].dims == ("lead_time",)
    for name in CHANNELS:
        np.testing.assert_allclose(
            ds[name].values, expected("2019-06-02", name)[:, 1, 1], rtol=1e-6
        )
    # 0..360 longitudes, a subset of the variables, the latest init
    latest = store.point(9.8, 359.6, variables=["pm10"])
    assert list(latest.data_vars) == ["pm10"]
    assert float(latest["longitude"]) == -0.75  # 359.6 = -0.4
    assert latest["init_time"].values == np.datetime64("2019-06-03", "ns")
    np.testing.assert_allclose(latest["pm10"].values, expected("2019-06-03", "pm10")[:, 3, 1])


def test_point_outside_the_grid_is_refused(store: ForecastStore) -> None:
    with pytest.raises(ForecastQueryError, match="outside the forecast grid"):
        store.point(20.0, 0.0)
    with pytest.raises(ForecastQueryError, match="outside the forecast grid"):
        store.point(10.5, 2.0)  # 0.5° east of the last centre, more than half a cell
    store.point(10.5, 1.8)  # within the last cell


def test_map_at_one_lead(store: ForecastStore) -> None:
    field = store.map("go3_925", lead_hours=6, init_time="2019-06-01")
    assert isinstance(field, xr.DataArray)
    assert field.dims == ("latitude", "longitude")
    assert field["lead_time"].values == np.timedelta64(6, "h")
    assert field["valid_time"].values == np.datetime64("2019-06-01T06", "ns")
    np.testing.assert_allclose(
        field.values, expected("2019-06-01", "go3_925")[LEADS.index(6)], rtol=1e-6
    )
    np.testing.assert_array_equal(field["latitude"].values, LATS)
    np.testing.assert_array_equal(field["longitude"].values, LONS)
    latest = store.map("pm2p5", lead_hours=0)
    assert latest["init_time"].values == np.datetime64("2019-06-03", "ns")


def test_provenance_follows_the_init_not_the_publication_order(store: ForecastStore) -> None:
    for day in DAYS:
        record = store.provenance(day)
        assert record["init_time"] == f"{day}T00:00:00"
        assert record["input_request_ids"] == [f"req-{day}-a", f"req-{day}-b"]
        assert record["checkpoint_sha256"] == "c" * 64
        assert {"input_source", "code_version", "created", "content_sha256"} <= set(record)
    assert store.provenance()["init_time"] == "2019-06-03T00:00:00"


def test_unknown_questions_name_what_is_there(store: ForecastStore) -> None:
    with pytest.raises(ForecastQueryError) as info:
        store.forecast("2019-06-05")
    message = str(info.value)
    assert "2019-06-05T00:00:00 is not published" in message
    assert "2019-06-01T00, 2019-06-02T00, 2019-06-03T00" in message
    with pytest.raises(ForecastQueryError, match="not a time"):
        store.provenance("tomorrow")
    with pytest.raises(ForecastQueryError, match=r"pm25 not published.*variables: t2m, pm2p5"):
        store.map("pm25", lead_hours=3)
    with pytest.raises(ForecastQueryError, match=r"lead 4 h is not published.*0, 3, 6, 9, 12 h"):
        store.map("pm2p5", lead_hours=4)
    with pytest.raises(ForecastQueryError, match="no2_925"):
        store.point(10.5, 0.0, variables=["no2_925"])
    assert issubclass(ForecastQueryError, ForecastStoreError)


def test_a_store_is_a_snapshot(store: ForecastStore, url: str) -> None:
    publish_forecast(url, make_run("2019-06-04"))
    assert store.init_times.size == 3  # opened before the publish
    assert store.dataset.sizes["init_time"] == 3
    fresh = open_forecast(url)
    assert fresh.latest_init_time == np.datetime64("2019-06-04", "ns")
    assert fresh.dataset.sizes["init_time"] == 4


def test_nothing_to_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = str(tmp_path / "missing.zarr")
    with pytest.raises(ForecastStoreError, match="no forecast store at"):
        open_forecast(missing)
    # created, but the first init never committed
    empty = str(tmp_path / "empty.zarr")
    real = publish._commit

    def commit(store: Any, state: Any, n: int, times: np.ndarray) -> Any:
        if n == 1:
            raise RuntimeError("killed")
        return real(store, state, n, times)

    monkeypatch.setattr(publish, "_commit", commit)
    with pytest.raises(RuntimeError):
        publish_forecast(empty, make_run("2019-06-01"))
    with pytest.raises(ForecastStoreError, match=r"no forecast is published in .* yet"):
        open_forecast(empty)


def test_open_forecast_from_the_package_keeps_import_light(url: str) -> None:
    assert aircast.open_forecast is reader.open_forecast
    assert aircast.open_forecast(url).init_times.size == 3
    code = (
        "import sys, aircast; "
        "heavy = [m for m in ('zarr', 'xarray', 'numpy') if m in sys.modules]; "
        "assert not heavy, heavy; "
        "f = aircast.open_forecast; assert 'zarr' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        aircast.no_such_thing  # noqa: B018


def test_a_damaged_chunk_is_named_with_its_init_and_the_fix(url: str) -> None:
    """A codec's bare error names no file; the reader names the chunk, the init and the fix,
    and the other inits still read."""
    store = open_forecast(url)
    # 2019-06-01 was published second: index 1 of the arrays' first axis
    chunks = sorted((Path(url) / "pm2p5" / "c" / "1").rglob("*"))
    chunk = next(p for p in chunks if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    key = chunk.relative_to(url).as_posix()
    with pytest.raises(AirCastError) as caught:
        store.map("pm2p5", lead_hours=LEADS[0], init_time="2019-06-01")
    message = str(caught.value)
    assert f"{url} (forecast store)" in message and "1 damaged chunk" in message
    assert key in message and str(chunk) in message and "init 2019-06-01" in message
    assert "republish it into a new store" in message
    with pytest.raises(AirCastError, match=key):
        store.point(LATS[0], LONS[0], init_time="2019-06-01", variables=["pm2p5"])
    np.testing.assert_allclose(
        store.map("pm2p5", lead_hours=LEADS[0], init_time="2019-06-02").values,
        expected("2019-06-02", "pm2p5")[0],
        rtol=1e-6,
    )
