"""Bad inputs get a clear error that names what is wrong and the fix, and change nothing."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import zarr
from storetools import ConfigFactory

from aircast.align.grid import GridError
from aircast.errors import AirCastError, ConfigError
from aircast.jobs.build import run_build
from aircast.store.build import (
    extend_store,
    finalise_store,
    init_store,
    load_part,
    verify_store,
)
from aircast.store.inputs import NotIngestedError
from aircast.store.reader import open_store
from aircast.store.schema import RecipeMismatchError, SchemaError, StoreError, check_store
from aircast.testing import snapshot


def _mtimes(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_a_region_that_was_not_ingested_is_a_grid_error(make_config: ConfigFactory) -> None:
    config = make_config(region={"north": 40.5, "south": 16.5, "west": -6.0, "east": 48.0})
    with pytest.raises(GridError, match="ingested for another region or grid") as info:
        run_build(config)
    message = str(info.value)
    assert "needs area [41.5, -7.0, 15.5, 49.0]" in message
    assert "for area [40.0, -7.0, 14.0, 49.0]" in message
    assert not Path(config.store_url).exists(), "nothing is created before the inputs check"


def test_a_grid_that_was_not_ingested_is_a_grid_error_and_keeps_an_existing_store(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    config = make_config(grid={"resolution": 3.0})
    shutil.copytree(reference_store, config.store_url)
    before = snapshot(Path(config.store_url))
    with pytest.raises(GridError, match=r"at 3\.0° needs area"):
        run_build(config)
    with pytest.raises(RecipeMismatchError, match=r"grid\.resolution: the store has 1\.5"):
        load_part(config, 0)
    assert snapshot(Path(config.store_url)) == before


def test_days_never_ingested_are_named_with_the_command(make_config: ConfigFactory) -> None:
    periods = {
        "train": {"start": "2019-06-01", "end": "2019-06-05"},
        "validation": {"start": "2019-06-06", "end": "2019-06-06"},
        "test": {"start": "2019-06-07", "end": "2019-06-07"},
    }
    config = make_config(periods=periods)
    with pytest.raises(NotIngestedError, match="were never ingested") as info:
        run_build(config)
    assert "aircast ingest CONFIG --start 2019-06-06 --end 2019-06-07" in str(info.value)
    assert not Path(config.store_url).exists()


def test_a_store_of_another_recipe_is_refused_and_left_alone(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    periods = {
        "train": {"start": "2019-06-01", "end": "2019-06-02"},
        "validation": {"start": "2019-06-03", "end": "2019-06-04"},
        "test": {"start": "2019-06-05", "end": "2019-06-05"},
    }
    config = make_config(periods=periods)
    shutil.copytree(reference_store, config.store_url)
    root = Path(config.store_url)
    before, mtimes = snapshot(root), _mtimes(root)
    with pytest.raises(RecipeMismatchError) as info:
        init_store(config)
    message = str(info.value)
    assert "built from another recipe" in message
    assert "periods.train.end: the store has 2019-06-03, the config has 2019-06-02" in message
    assert "set store.url to a new location" in message
    for stage in (
        lambda: run_build(config),
        lambda: load_part(config, 0),
        lambda: finalise_store(config),
        lambda: verify_store(config),
        lambda: extend_store(config, dt.date(2019, 6, 6), dt.date(2019, 6, 6)),
    ):
        with pytest.raises(RecipeMismatchError):
            stage()
    assert snapshot(root) == before and _mtimes(root) == mtimes


def test_another_schema_version_is_refused_and_left_alone(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    config = make_config()
    shutil.copytree(reference_store, config.store_url)
    root = Path(config.store_url)
    meta = json.loads((root / "zarr.json").read_text())
    meta["attributes"]["schema_version"] = 2
    (root / "zarr.json").write_text(json.dumps(meta, indent=2))
    before, mtimes = snapshot(root), _mtimes(root)
    for stage in (
        lambda: init_store(config),
        lambda: run_build(config),
        lambda: load_part(config, 1),
        lambda: finalise_store(config),
        lambda: open_store(config.store_url),
    ):
        with pytest.raises(SchemaError, match="has schema version 2, this AirCast reads"):
            stage()
    assert snapshot(root) == before and _mtimes(root) == mtimes


def test_a_folder_that_is_not_a_store_is_refused(make_config: ConfigFactory) -> None:
    config = make_config()
    Path(config.store_url).mkdir()
    notes = Path(config.store_url) / "notes.txt"
    notes.write_text("precious")
    with pytest.raises(SchemaError, match="not an AirCast training store"):
        init_store(config)
    assert notes.read_text() == "precious"
    with pytest.raises(StoreError, match="no training store at"):
        open_store(str(Path(config.store_url).parent / "nowhere.zarr"))


def test_changing_part_days_midway_is_refused(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    config = make_config(store={"part_days": 3})
    shutil.copytree(reference_store, config.store_url)
    with pytest.raises(StoreError, match=r"started with store\.part_days = 2"):
        load_part(config, 0)


def test_check_store_names_a_damaged_store(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    config = make_config()
    shutil.copytree(reference_store, config.store_url)
    root = Path(config.store_url)
    shutil.rmtree(root / "stat_mean")
    group = zarr.open_group(str(root), mode="r", use_consolidated=False)
    with pytest.raises(SchemaError, match="array 'stat_mean' is missing"):
        check_store(group)
    meta = json.loads((root / "zarr.json").read_text())
    meta["attributes"]["time_axis"]["n_times"] = 48
    (root / "zarr.json").write_text(json.dumps(meta))
    shutil.copytree(reference_store / "stat_mean", root / "stat_mean")
    with pytest.raises(SchemaError, match="declares 48; the store is damaged"):
        check_store(zarr.open_group(str(root), mode="r", use_consolidated=False))


def test_verify_names_times_without_data(reference_store: Path, make_config: ConfigFactory) -> None:
    config = make_config()
    shutil.copytree(reference_store, config.store_url)
    (Path(config.store_url) / "fields" / "c" / "5" / "0" / "0" / "0").unlink()
    with pytest.raises(AirCastError, match=r"1 times have no data and are not in missing_times"):
        verify_store(config)


@pytest.mark.parametrize(
    ("store", "fragment"),
    [
        ({"url": "ftp://host/store.zarr"}, "protocol 'ftp'"),
        ({"storage_options": {"secret": "x"}}, "credentials never go in a config"),
        ({"dask_scheduler": "localhost:8786"}, "tcp://host:8786"),
        ({"part_days": 0}, "store.part_days"),
    ],
)
def test_store_settings_are_validated(
    make_config: ConfigFactory, store: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        make_config(store=store)
