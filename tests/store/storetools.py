"""Helpers of the store tests (imported from this folder only): the tiny recipe."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from aircast.config import DEMO_CONFIG, AirCastConfig, parse_config

FIRST, LAST = dt.date(2019, 6, 1), dt.date(2019, 6, 5)
CHANNELS = {"weather": ["t2m", "tp"], "pollutants": ["pm2p5", "go3_925"], "static": ["lsm"]}
PERIODS = {
    "train": {"start": "2019-06-01", "end": "2019-06-03"},
    "validation": {"start": "2019-06-04", "end": "2019-06-04"},
    "test": {"start": "2019-06-05", "end": "2019-06-05"},
}


def tiny_config(root: Path, store_url: str | Path | None = None, **changes: Any) -> AirCastConfig:
    """The tiny recipe with its raw cache under ``root``; ``changes`` replace top-level keys
    (``store`` is merged into the recipe's store section)."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["variables"] = CHANNELS
    data["periods"] = PERIODS
    data["paths"] = {"root": str(root)}
    data["ingest"] = {"sleep_max": 0.2}
    data["store"] = {"part_days": 2}
    if store_url is not None:
        data["store"]["url"] = str(store_url)
    data["store"].update(changes.pop("store", {}))  # merged, so the test's url stays
    data.update(changes)
    return parse_config(data, "tiny recipe")


def copy_raw(raw_root: Path, target: Path) -> Path:
    """A private copy of the raw cache (manifest and files) to damage."""
    shutil.copytree(raw_root / "raw", target / "raw")
    return target


ConfigFactory = Callable[..., AirCastConfig]
