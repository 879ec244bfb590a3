"""Helpers of the evaluation tests: the tiny recipe and what the session builds from it.

The recipe is the demo's cut down: a 7×11 grid at 1.5°, two weather, three pollutant and one
static channel, five days (train 06-01..06-02, validation 06-03, test 06-04..06-05) ingested
from the embedded sandbox, a one-block transformer trained for four steps and a 48-hour
rollout horizon. The CAMS forecast of the test days is left to ``aircast evaluate`` itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aircast.config import DEMO_CONFIG, AirCastConfig

FIRST, LAST = dt.date(2019, 6, 1), dt.date(2019, 6, 5)


def tiny_recipe(root: Path, **changes: Any) -> dict[str, Any]:
    """The tiny recipe as a YAML-able mapping, its files under ``root``."""
    data: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text())
    data["name"] = "tiny-eval"
    data["region"] = {"north": 33.0, "south": 24.0, "west": 24.0, "east": 39.0}
    data["variables"] = {
        "weather": ["t2m", "u10"],
        "pollutants": ["pm2p5", "pm10", "go3_925"],
        "static": ["lsm"],
    }
    data["periods"] = {
        "train": {"start": "2019-06-01", "end": "2019-06-02"},
        "validation": {"start": "2019-06-03", "end": "2019-06-03"},
        "test": {"start": "2019-06-04", "end": "2019-06-05"},
    }
    data["paths"] = {"root": str(root)}
    data["ingest"] = {"sleep_max": 0.2, "forecast_lead_hours": 48}
    data["model"] = {"patch_size": 2, "width": 32, "depth": 1, "heads": 2}
    data["training"] = {
        "lead_hours": list(range(3, 25, 3)),
        "max_lead_hours": 48,
        "batch_size": 8,
        "epochs": 1,
        "warmup_steps": 2,
        "num_workers": 0,
        "in_memory": True,
        "device": "cpu",
    }
    data.update(changes)
    return data


@dataclass(frozen=True)
class Tiny:
    """The session's tiny recipe, store and checkpoint."""

    config: AirCastConfig
    config_path: Path
    checkpoint: Path
    root: Path
