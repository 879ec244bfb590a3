"""The published forecast store: the cost of publishing an init and of the reads users make.

Run: ``.venv/bin/python bench/bench_forecast_read.py`` (``--help`` for the options).

What runs
---------
A forecast store on the local disk (a temporary folder) on the default recipe's grid
(``configs/default.yaml``: 0-45N, 20.25W-75.75E at 0.75°, 61 × 129 cells) with the recipe's
forecast channels (every channel of ``load_config(DEFAULT_CONFIG).variables.channels()`` but
the static ones: 21), 25 leads (0-72 h every 3 h) and ``--inits`` inits (default 10). Values
are synthetic but smooth (a travelling wave per channel, plus 1 % noise), in training-store
units, so compression is neither the best nor the worst case. Timed, by wall clock:

- **publish**: the first publish (creates the store) and each following one, and a re-publish
  of a complete init (the "already published" no-op);
- **open**: :func:`aircast.open_forecast` (one read of the consolidated metadata, then the
  ``init_time`` chunks);
- **point, one init**: :meth:`ForecastStore.point` at a random cell of a random init, all 21
  variables and one variable;
- **point, every init**: the time series at a random cell across every init and lead, all
  variables (``store.dataset.isel(latitude=i, longitude=j).load()``);
- **map**: :meth:`ForecastStore.map` of one variable at one lead of a random init;
- **plain xarray**: ``xarray.open_zarr(url)`` (dask) and one variable's series at a point
  across every init, as a downstream user without AirCast would read it.

Reads are repeated ``--repeats`` times on an open store (``open`` on its own), with the page
cache warm (the store was just written): the figures are decompression and Zarr/xarray
overhead, not the disk. The table is printed and appended, with the machine, to
``bench/results/forecast_read.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from recording import append_result, machine_info  # bench/ is on sys.path when a bench runs

from aircast.align.grid import TargetGrid
from aircast.config import DEFAULT_CONFIG, load_config
from aircast.forecast.publish import ForecastRun, publish_forecast
from aircast.forecast.reader import open_forecast
from aircast.vocab import Role, parse_channel

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "forecast_read.json"
FIRST_INIT = np.datetime64("2019-06-01T00", "ns")
LEADS = tuple(range(0, 73, 3))
#: typical magnitude of a channel's values in training-store units, by units
SCALE = {"K": 280.0, "Pa": 9e4, "m s-1": 5.0, "kg m-3": 2e-8, "kg kg-1": 1e-8, "m": 1e-3}


def synthetic_run(init: np.datetime64, channels: list[str], grid: TargetGrid) -> ForecastRun:
    """A forecast run whose values are smooth, positive and distinct per init."""
    day = int((init - FIRST_INIT) / np.timedelta64(1, "D"))
    rng = np.random.default_rng(day)
    lat = np.deg2rad(grid.latitudes)[None, :, None]
    lon = np.deg2rad(grid.longitudes)[None, None, :]
    lead = np.asarray(LEADS, np.float64)[:, None, None]
    values = np.empty((len(LEADS), len(channels), *grid.shape), np.float32)
    for c, name in enumerate(channels):
        spec = parse_channel(name).spec
        scale = SCALE.get(spec.units, 1.0)
        wave = np.sin(3 * lat + 0.1 * c) * np.cos(4 * lon - 0.02 * lead - 0.3 * day)
        noise = 0.01 * rng.standard_normal((len(LEADS), *grid.shape))
        values[:, c] = scale * (1.5 + 0.5 * wave + noise)
    return ForecastRun(
        init_time=init,
        lead_hours=LEADS,
        channels=tuple(channels),
        values=values,
        latitudes=grid.latitudes,
        longitudes=grid.longitudes,
        provenance={
            "checkpoint_sha256": "0" * 64,
            "input_request_ids": [f"bench-{day}"],
            "input_source": f"synthetic (bench) day {day}",
            "created": "2019-06-01T06:00:00",
        },
    )


def timed(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Wall seconds of ``repeats`` calls: median and best (ms)."""
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - began)
    return {
        "median_ms": round(1e3 * statistics.median(seconds), 3),
        "best_ms": round(1e3 * min(seconds), 3),
        "repeats": repeats,
    }


def du(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inits", type=int, default=10, help="inits in the store")
    parser.add_argument("--repeats", type=int, default=30, help="repeats of each read")
    parser.add_argument("--label", default="current", help="what this run measures")
    parser.add_argument("--no-record", action="store_true", help="do not append the results")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON list appended to")
    args = parser.parse_args()

    config = load_config(DEFAULT_CONFIG)
    grid = TargetGrid.from_config(config)
    channels = [c.name for c in config.variables.channels() if c.spec.role is not Role.STATIC]
    inits = [FIRST_INIT + np.timedelta64(d, "D") for d in range(args.inits)]
    runs = [synthetic_run(init, channels, grid) for init in inits]
    rng = np.random.default_rng(0)
    load_start = [round(x, 2) for x in os.getloadavg()]

    with tempfile.TemporaryDirectory(prefix="aircast-bench-forecast-") as tmp:
        url = str(Path(tmp) / "forecast.zarr")
        publish_s = []
        for run in runs:
            began = time.perf_counter()
            publish_forecast(url, run)
            publish_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        assert publish_forecast(url, runs[0]).outcome == "already published"
        republish_s = time.perf_counter() - began
        size, objects = du(Path(url))

        store = open_forecast(url)
        store.dataset  # noqa: B018  (built once per open store; timed within "open")

        def cell() -> tuple[float, float]:
            i, j = rng.integers(grid.shape[0]), rng.integers(grid.shape[1])
            return float(grid.latitudes[i]), float(grid.longitudes[j])

        def any_init() -> np.datetime64:
            return np.datetime64(inits[int(rng.integers(len(inits)))], "ns")

        def open_store() -> None:
            open_forecast(url).dataset  # noqa: B018

        def point_all() -> None:
            store.point(*cell(), init_time=any_init())

        def point_one() -> None:
            store.point(*cell(), init_time=any_init(), variables=["pm2p5"])

        def point_every_init() -> None:
            i, j = rng.integers(grid.shape[0]), rng.integers(grid.shape[1])
            store.dataset.isel(latitude=i, longitude=j).load()

        def one_map() -> None:
            store.map("pm2p5", lead_hours=24, init_time=any_init())

        def plain_xarray() -> None:
            i, j = rng.integers(grid.shape[0]), rng.integers(grid.shape[1])
            xr.open_zarr(url)["pm2p5"].isel(latitude=i, longitude=j).load()

        reads = {
            "open_forecast (+ lazy dataset)": timed(open_store, args.repeats),
            "point series, one init, 21 variables": timed(point_all, args.repeats),
            "point series, one init, 1 variable": timed(point_one, args.repeats),
            f"point series, all {args.inits} inits, 21 variables": timed(
                point_every_init, args.repeats
            ),
            "map at one lead, 1 variable": timed(one_map, args.repeats),
            f"plain xarray.open_zarr + 1 variable at a point, all {args.inits} inits": timed(
                plain_xarray, args.repeats
            ),
        }
    load_end = [round(x, 2) for x in os.getloadavg()]

    later = publish_s[1:]
    publishing = {
        "first_publish_s": round(publish_s[0], 3),
        "publish_s_median": round(statistics.median(later), 3) if later else None,
        "publish_s_best": round(min(later), 3) if later else None,
        "publish_s_all": [round(s, 3) for s in publish_s],
        "republish_s": round(republish_s, 3),
    }
    raw_mb = len(LEADS) * len(channels) * grid.shape[0] * grid.shape[1] * 4 / 1e6
    print(
        f"\n{args.label}: forecast store of {len(channels)} channels × {len(LEADS)} leads × "
        f"{grid.shape[0]} × {grid.shape[1]} cells, {args.inits} inits; "
        f"{size / 1e6:.1f} MB in {objects} objects ({raw_mb:.1f} MB raw float32 per init)\n"
    )
    print("| publish | s |")
    print("|---|---|")
    print(f"| first init (creates the store) | {publishing['first_publish_s']:.3f} |")
    if later:
        print(
            f"| one more init (median / best of {len(later)}) | "
            f"{publishing['publish_s_median']:.3f} / {publishing['publish_s_best']:.3f} |"
        )
    print(f"| the same init again (already published) | {republish_s:.3f} |")
    print(f"\n| read (median / best of {args.repeats}) | ms |")
    print("|---|---|")
    for name, figures in reads.items():
        print(f"| {name} | {figures['median_ms']:.1f} / {figures['best_ms']:.1f} |")
    print(f"\nload average {load_start} at start, {load_end} at end")

    record = {
        "label": args.label,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/bench_forecast_read.py", *sys.argv[1:]]),
        "machine": machine_info(("numpy", "zarr", "xarray", "numcodecs", "dask")),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "store": {
            "grid": list(grid.shape),
            "channels": channels,
            "leads": len(LEADS),
            "inits": args.inits,
            "bytes": size,
            "objects": objects,
            "raw_mb_per_init": round(raw_mb, 2),
        },
        "publishing": publishing,
        "reads": reads,
    }
    if not args.no_record:
        append_result(args.results, record)


if __name__ == "__main__":
    main()
