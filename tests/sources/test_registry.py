"""The sources by name, and what every source answers without the network."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from aircast.align.grid import TargetGrid
from aircast.config import DEMO_CONFIG, load_config
from aircast.errors import AirCastError
from aircast.sources.cache import RawCache
from aircast.sources.cams import CAMS_FORECAST_SOURCE
from aircast.sources.registry import SOURCES, UnknownSourceError, get_source

DAY = dt.date(2019, 6, 5)


def test_every_source_is_found_by_its_name() -> None:
    assert SOURCES == ("era5", "eac4", "forecast")
    for name in SOURCES:
        assert get_source(name).name == name


def test_an_unknown_source_names_the_sources_there_are() -> None:
    with pytest.raises(UnknownSourceError, match="'era6'; choose one of era5, eac4, forecast"):
        get_source("era6")
    assert issubclass(UnknownSourceError, AirCastError)


def test_a_source_asks_only_its_own_datasets_and_one_request_per_day_and_group() -> None:
    config = load_config(DEMO_CONFIG)
    for name in SOURCES:
        source = get_source(name)
        requests = source.requests(config, DAY, DAY + dt.timedelta(days=1))
        assert requests, name
        assert {r.dataset for r in requests} <= set(source.datasets), name
        slots = [(r.dataset, r.day, r.group) for r in requests]
        assert len(slots) == len(set(slots)), name


def test_fields_of_a_span_not_in_the_cache_are_absent(tmp_path: Path) -> None:
    config = load_config(DEMO_CONFIG)
    cache = RawCache(tmp_path / "raw")
    grid = TargetGrid.from_config(config)
    fields = get_source("eac4").fields(config, cache, DAY, DAY, grid)
    assert not fields.variables and not fields.read and not fields.complete
    assert fields.absent == tuple(get_source("eac4").requests(config, DAY, DAY))
    run = CAMS_FORECAST_SOURCE.run(config, cache, DAY, grid, ["pm2p5", "go3_925"], [0, 3])
    assert run.values.shape == (2, 2, *grid.shape) and np.isnan(run.values).all()
    assert not run.complete
    assert CAMS_FORECAST_SOURCE.absent(config, cache, DAY, DAY) == list(run.fields.absent)
