"""A trained tiny recipe for the daily-forecast tests, built once per folder.

The tiny training store of ``tests/training/tinystore.py`` (9×13 cells, six days of June 2019),
a model trained for a few steps on it (the forecasts need not be good, only real), and a
forecast store under the same folder. The CAMS forecast runs are fetched by the code under
test, from the embedded sandbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tinystore
import yaml

TRAIN_STEPS = 6


def ensure_trained(root: Path) -> Path:
    """The tiny store and a few-step checkpoint under ``root``; returns the recipe's path.

    The recipe (``root/forecast-recipe.yaml``) forecasts with ``root/checkpoints/last.ckpt``
    into ``root/forecast.zarr``.
    """
    tiny = tinystore
    path = root / "forecast-recipe.yaml"
    if path.is_file():
        return path
    tiny.ensure_tiny_store(root)
    from aircast.training.loop import train

    data = recipe(root)
    train(tiny.config_of(data), max_steps=TRAIN_STEPS)
    tiny.write_recipe(path, data)
    return path


def recipe(root: Path, **forecast: Any) -> dict[str, Any]:
    """The tiny recipe with a forecast section (``forecast`` entries override it)."""
    data: dict[str, Any] = tinystore.recipe(root)
    data["forecast"] = {
        "checkpoint": str(root / "checkpoints" / "last.ckpt"),
        "url": str(root / "forecast.zarr"),
        **forecast,
    }
    return data


def write_variant(root: Path, name: str, **forecast: Any) -> Path:
    """A copy of the trained recipe with other forecast settings, e.g. another store URL."""
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe(root, **forecast)))
    return path
