"""The tiny training recipe of the training and train-flow tests, and its store.

Built from ``configs/demo.yaml``: a 12°×18° box of the demo region at 1.5° (9×13 cells), three
weather channels (an instant, a wind and an accumulated field), two pollutants (a surface and a
pressure-level one) and a static field; six days: train 06-01..06-04, validation 06-05, test
06-06. The model is small enough that a training step takes milliseconds on one CPU thread.

The store is ingested from the embedded sandbox and built once into a folder that every test
of the session shares (:func:`ensure_tiny_store` is idempotent), so that the training tests
and the flow tests pay for one ingestion.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import yaml

from aircast.config import DEMO_CONFIG, AirCastConfig, parse_config

FIRST, LAST = dt.date(2019, 6, 1), dt.date(2019, 6, 6)
REGION = {"north": 33.0, "south": 21.0, "west": 24.0, "east": 42.0}
CHANNELS = {"weather": ["t2m", "u10", "tp"], "pollutants": ["pm2p5", "go3_925"], "static": ["lsm"]}
PERIODS = {
    "train": {"start": "2019-06-01", "end": "2019-06-04"},
    "validation": {"start": "2019-06-05", "end": "2019-06-05"},
    "test": {"start": "2019-06-06", "end": "2019-06-06"},
}
MODEL = {"patch_size": 2, "width": 32, "depth": 2, "heads": 2}
#: 4 days × 8 times with leads 3, 6, 12, 24 h: 31 + 30 + 28 + 24 = 113 training samples,
#: 15 steps per epoch at batch size 8
TRAINING: dict[str, Any] = {
    "lead_hours": [3, 6, 12, 24],
    "batch_size": 8,
    "epochs": 2,
    "learning_rate": 2e-3,
    "warmup_steps": 4,
    "in_memory": True,
    "num_workers": 0,
    "checkpoint_every_steps": 3,
    "device": "cpu",
    "seed": 0,
}
N_TRAIN_SAMPLES = 113
STEPS_PER_EPOCH = 15

#: single-threaded torch in subprocesses: the figures are the same from run to run (a
#: reduction's order depends on the thread count), and a loaded 2-core machine is not
#: oversubscribed
SUBPROCESS_ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONWARNINGS": "ignore",
}


def recipe(root: Path, store_url: Path | None = None, **changes: Any) -> dict[str, Any]:
    """The tiny recipe as plain data, raw cache (and default store) under ``root``.

    ``changes`` replace top-level sections; ``training`` and ``model`` are merged into the
    tiny ones.
    """
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data.update(
        region=REGION,
        variables=CHANNELS,
        periods=PERIODS,
        paths={"root": str(root)},
        ingest={"sleep_max": 0.2},
        model=MODEL | changes.pop("model", {}),
        training=TRAINING | changes.pop("training", {}),
    )
    if store_url is not None:
        data["store"] = {"url": str(store_url)}
    data.update(changes)
    return data


def config_of(data: dict[str, Any]) -> AirCastConfig:
    return parse_config(data, "tiny training recipe")


def write_recipe(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def ensure_tiny_store(root: Path) -> Path:
    """Ingest and build the tiny store under ``root`` unless done already; the recipe's path.

    Returns ``root/recipe.yaml`` (store at ``root/store.zarr``, raw cache at ``root/raw``).
    """
    path = root / "recipe.yaml"
    done = root / ".built"
    if done.is_file():
        return path
    from aircast.jobs.build import run_build
    from aircast.jobs.ingest import run_ingest
    from aircast.sandbox.runtime import datastore_endpoints

    data = recipe(root)
    config = config_of(data)
    with datastore_endpoints(config) as endpoints:
        reports = run_ingest(
            config, ("era5", "eac4"), FIRST, LAST, endpoints=endpoints, raise_on_failure=False
        ).reports
    failed = [r for report in reports.values() for r in report.failed]
    assert not failed, failed
    run_build(config)
    write_recipe(path, data)
    done.touch()
    return path
