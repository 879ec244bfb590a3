"""Benchmark of the sandbox's toy atmosphere: the cost of one day of each product view.

Cases (default region 0-45N, 20W-76E):

* ERA5-like single levels: 8 variables at 0.25° (181 x 385), 24 hourly times;
* EAC4-like pollutants: pm1, pm2p5, pm10 and go3, no2, so2, co at 925 hPa at 0.75° (61 x 129),
  8 three-hourly times (the first call of a day runs the tracer model with its spin-up);
* CAMS-forecast-like: pm2p5, pm10 and t2m at 0.4° (113 x 241), leads 0..120 h every 3 h.

Each case is timed cold (fresh process-level caches and a fresh ToyAtmosphere) and warm (the
same call again). The table is printed and the run is appended, with the machine it ran on, to
``bench/results/atmosphere.json``. ``--toy`` samples a 5° box instead of the default region:
a smoke run in seconds, its figures meaningless.

Usage::

    python bench/bench_atmosphere.py [--no-record] [--toy] [--results PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aircast.sandbox import atmosphere as atmos
from aircast.sandbox import geography, tracers

RESULTS = Path(__file__).resolve().parent / "results" / "atmosphere.json"
DAY = np.datetime64("2019-07-15T00:00:00")
#: (north, south, west, east) in degrees: the default region, and ``--toy``'s 5° box
DEFAULT_REGION = (45.0, 0.0, -20.0, 76.0)
TOY_REGION = (45.0, 40.0, -20.0, -15.0)
Region = tuple[float, float, float, float]


def _region(step: float, region: Region) -> tuple[np.ndarray, np.ndarray]:
    north, south, west, east = region
    return np.arange(north, south - 1e-9, -step), np.arange(west, east + 1e-9, step)


def _reset_process_caches() -> None:
    """Forget the static fields and the tracer grid, as in a new process."""
    geography.clear_static_cache()
    tracers.sim_grid.cache_clear()


def _era5(atm: atmos.ToyAtmosphere, region: Region) -> int:
    lat, lon = _region(0.25, region)
    times = DAY + np.arange(24) * np.timedelta64(1, "h")
    names = ["t2m", "d2m", "u10", "v10", "msl", "sp", "tp", "blh"]
    out = atm.sample(names, times, lat, lon)
    return sum(v.size for v in out.values())


def _eac4(atm: atmos.ToyAtmosphere, region: Region) -> int:
    lat, lon = _region(0.75, region)
    times = DAY + np.arange(0, 24, 3) * np.timedelta64(1, "h")
    out = atm.sample(["pm1", "pm2p5", "pm10"], times, lat, lon)
    out.update(atm.sample(["go3", "no2", "so2", "co"], times, lat, lon, level_hpa=925.0))
    return sum(v.size for v in out.values())


def _forecast(atm: atmos.ToyAtmosphere, region: Region) -> int:
    lat, lon = _region(0.4, region)
    out = atm.sample_forecast(["pm2p5", "pm10", "t2m"], DAY, list(range(0, 121, 3)), lat, lon)
    return sum(v.size for v in out.values())


CASES: dict[str, tuple[str, Callable[[atmos.ToyAtmosphere, Region], int]]] = {
    "era5_single_levels_day": ("8 vars, 0.25°, 24 h", _era5),
    "eac4_pollutants_day": ("3 PM + 4 gases@925, 0.75°, 8 times", _eac4),
    "cams_forecast_120h": ("3 vars, 0.4°, 41 leads", _forecast),
}


def _machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        # other work on the machine inflates the timings: record how busy it was
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def run(region: Region = DEFAULT_REGION) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for case, (what, fn) in CASES.items():
        _reset_process_caches()
        atm = atmos.ToyAtmosphere(seed=0)
        t0 = time.perf_counter()
        values = fn(atm, region)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn(atm, region)
        warm = time.perf_counter() - t0
        rows.append(
            {
                "case": case,
                "what": what,
                "values": values,
                "cold_s": round(cold, 3),
                "warm_s": round(warm, 3),
                "warm_ns_per_value": round(warm / values * 1e9, 1),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument("--toy", action="store_true", help="a 5° box: a smoke run in seconds")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON list appended to")
    args = parser.parse_args()
    rows = run(TOY_REGION if args.toy else DEFAULT_REGION)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    header = f"{'case':<26} {'what':<36} {'values':>10} {'cold s':>8} {'warm s':>8} {'ns/val':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['case']:<26} {r['what']:<36} {r['values']:>10} {r['cold_s']:>8.2f} "
            f"{r['warm_s']:>8.2f} {r['warm_ns_per_value']:>7.1f}"
        )
    print(f"peak resident memory: {peak_mb:.0f} MB")
    if args.no_record:
        return
    record = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "peak_rss_mb": round(peak_mb, 1),
        "results": rows,
        **({"toy": True} if args.toy else {}),  # a smoke run's figures are not measurements
    }
    results: Path = args.results
    results.parent.mkdir(parents=True, exist_ok=True)
    history = json.loads(results.read_text()) if results.exists() else []
    history.append(record)
    results.write_text(json.dumps(history, indent=2) + "\n")
    print(f"recorded in {results}")


if __name__ == "__main__":
    main()
