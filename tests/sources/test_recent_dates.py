"""Last week, end to end: what the real stores serve of it, ingested from the embedded sandbox.

The dates are computed from today (UTC), so the test keeps working. ERA5 reaches about five
days before today, so last week (``today - 12 .. today - 6``) is ERA5's; the CAMS forecast's
archive runs up to today, so its runs of last week are there too. EAC4 ends on its published
2022-06-30: last week cannot come from it, and asking for it is refused before anything is
sent or cached. That is also why no training store is extended over last week here: every
recipe has pollutant channels and they come from EAC4 (``TRAINING_SOURCE``), so a store
extension of last week would have nothing honest to fill its pollutants with. What is tested
instead is what the available data can fill: the ERA5 weather and statics and the CAMS
forecast runs (initial conditions and leads) of last week, decoded on the recipe's grid.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from aircast.align.grid import TargetGrid
from aircast.errors import RequestError
from aircast.jobs.ingest import run_ingest
from aircast.sources.cams import CAMS_FORECAST_SOURCE
from aircast.sources.ingest import raw_cache
from aircast.sources.registry import get_source
from aircast.testing import ingest_from_sandbox, tiny_training_config, tiny_training_recipe

TODAY = dt.datetime.now(dt.UTC).date()
FIRST, LAST = TODAY - dt.timedelta(days=12), TODAY - dt.timedelta(days=6)


def _recipe(root: Path) -> dict[str, object]:
    # the tiny recipe (region crossing no date line, 2019 periods) with short forecast leads
    return tiny_training_recipe(root, ingest={"sleep_max": 0.2, "forecast_lead_hours": 12})


def test_last_week_of_era5_and_the_cams_forecast_ingest_and_decode(tmp_path: Path) -> None:
    config = tiny_training_config(_recipe(tmp_path))
    ingest_from_sandbox(config, FIRST, LAST, ("era5", "forecast"))
    cache = raw_cache(config)
    grid = TargetGrid.from_config(config)

    era5 = get_source("era5").fields(config, cache, FIRST, LAST, grid)
    assert era5.complete and not era5.absent
    t2m = era5.variables["t2m"]
    days = {str(t)[:10] for t in t2m["time"].values}
    assert min(days) == FIRST.isoformat() and max(days) == LAST.isoformat()
    assert t2m.sizes["time"] == 7 * 8  # 3-hourly, every day of the week
    assert np.isfinite(t2m.values).all() and 200 < float(t2m.min()) < float(t2m.max()) < 330

    for day in (FIRST, LAST):
        run = CAMS_FORECAST_SOURCE.run(config, cache, day, grid, ["pm2p5", "go3_925"], [0, 12])
        assert run.complete, day
        assert np.isfinite(run.values).all() and (run.values >= 0).all(), day

    # a second run sends nothing: everything of last week is in the raw cache
    again = run_ingest(config, ("era5", "forecast"), FIRST, LAST)
    assert {again.summary(s)["fetched"] for s in ("era5", "forecast")} == {0}
    assert not again.failed


def test_last_week_of_eac4_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    config = tiny_training_config(_recipe(tmp_path))
    with pytest.raises(RequestError) as refused:
        run_ingest(config, ("era5", "eac4"), FIRST, LAST)
    message = str(refused.value)
    assert "cams-global-reanalysis-eac4" in message
    assert "2003-01-01 to 2022-06-30" in message and "EAC4 is published" in message
    # the run was planned whole first: not even ERA5's requests were sent and cached
    raw = config.paths.raw
    assert not raw.exists() or not [p for p in raw.rglob("*") if p.is_file()]


def test_a_planned_request_of_the_newest_era5_day_parses_again_on_any_later_day() -> None:
    """Decoding re-parses a cached request: it must not be refused because of the clock."""
    from aircast.config import DEMO_CONFIG, load_config

    newest = TODAY - dt.timedelta(days=5)
    requests = get_source("era5").requests(load_config(DEMO_CONFIG), newest, newest)
    for request in requests:
        assert request.parsed().times.size > 0, request.label
