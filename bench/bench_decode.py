"""How fast GRIB products decode into AirCast's canonical form, against the raw ecCodes floor.

Run: ``.venv/bin/python bench/bench_decode.py`` (``--help`` for the options: rounds, seconds per
file, a label for the record, a folder to keep the products in, ``--toy`` for products over a
5° box: a smoke run in seconds, its figures meaningless).

Products are written once by the sandbox (:func:`aircast.sandbox.products.write_product` with
the toy atmosphere) into a temporary folder (or ``--data DIR``, reused when it already holds
them), then every contender decodes each file in interleaved rounds (at least ``--repeats``,
more until ``--min-seconds`` have passed) and its best time is kept:

raw floor
    ``codes_grib_new_from_file`` + ``codes_get_values`` for every message into one float64
    array of shape (n_messages, n_points): the least any ecCodes-based reader must do.
raw floor (float32)
    The same with ``codes_get_array(h, "values", np.float32)``, the decoding the canonical
    reader uses (the canonical form is float32); shown so that the comparison stays honest.
decode_grib
    :func:`aircast.sources.grib_canonical.decode_grib`: the request-free canonical decode (integrity
    checks included: they run in the same pass), in a process that has decoded files of
    these kinds before (as a pipeline worker has); ``(cold)`` forgets the kinds and grids
    read so far before every run, as in a fresh process.
decode_product
    :func:`aircast.sources.decode.decode_product`: what the pipeline runs, the canonical
    decode plus the checks of the content against the request.
verify_product
    :func:`aircast.sources.decode.verify_product`: the check at download time (every message
    decoded, fields and grid against the request), for reference.

MB are 10^6 bytes of GRIB file; the ratio is a contender's time over the raw floor's (float64)
on the same file, the figure the target (at most 1.5) is about; "all files" divides the
summed times. Tables are printed for wall time and for process CPU time (the steadier one on
a shared machine) and appended, with the machine and its load, to
``bench/results/decode.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import eccodes
import numpy as np
from recording import append_result, machine_info  # bench/ is on sys.path when a bench runs

from aircast.catalogue import ParsedRequest, validate_request
from aircast.sandbox.atmosphere import ToyAtmosphere
from aircast.sandbox.products import write_product
from aircast.sources import decode, grib, grib_canonical
from aircast.vocab import CAMS_EAC4, CAMS_FORECAST, ERA5_PRESSURE, ERA5_SINGLE

RESULTS = Path(__file__).resolve().parent / "results" / "decode.json"
TODAY = dt.date(2024, 6, 1)
AREA = [45, -20, 0, 76]  # the default recipe's region plus its margin, on the 0.25° grid
STORE_HOURS = [f"{h:02d}:00" for h in range(0, 24, 3)]
#: ``--toy``: the areas of a 5° box (EAC4's on its 0.75° grid)
TOY_AREA = [45, -20, 40, -15]
TOY_EAC4_AREA = [45, -20.25, 39.75, -15.0]

#: name -> (dataset, request): one day of each product the pipeline ingests
PRODUCTS: dict[str, tuple[str, dict[str, Any]]] = {
    "era5-single-1day": (
        ERA5_SINGLE,
        {
            "product_type": "reanalysis",
            "variable": [
                "2m_temperature",
                "2m_dewpoint_temperature",
                "10m_u_component_of_wind",
                "10m_v_component_of_wind",
                "mean_sea_level_pressure",
                "surface_pressure",
                "total_precipitation",
                "boundary_layer_height",
            ],
            "year": "2019",
            "month": "june",
            "day": "01",
            "time": [f"{h:02d}:00" for h in range(24)],
            "area": AREA,
            "data_format": "grib",
        },
    ),
    "era5-pressure-1day": (
        ERA5_PRESSURE,
        {
            "product_type": "reanalysis",
            "variable": [
                "temperature",
                "u_component_of_wind",
                "v_component_of_wind",
                "specific_humidity",
                "geopotential",
            ],
            "pressure_level": ["500_hpa", "850_hpa", "925_hpa"],
            "year": "2019",
            "month": "june",
            "day": "01",
            "time": STORE_HOURS,
            "area": AREA,
            "data_format": "grib",
        },
    ),
    "eac4-1day": (
        CAMS_EAC4,
        {
            "variable": [
                "particulate_matter_1um",
                "particulate_matter_2.5um",
                "particulate_matter_10um",
                "ozone",
                "nitrogen_dioxide",
                "sulphur_dioxide",
                "carbon_monoxide",
            ],
            "pressure_level": ["925"],
            "date": "2019-06-01",
            "time": STORE_HOURS,
            "area": [45, -20.25, 0, 75.75],
            "format": "grib",
        },
    ),
    "cams-forecast-24h": (
        CAMS_FORECAST,
        {
            "variable": [
                "2m_temperature",
                "total_precipitation",
                "particulate_matter_2.5um",
                "ozone",
            ],
            "pressure_level": ["925"],
            "date": "2024-01-01",
            "time": "00:00",
            "leadtime_hour": [str(h) for h in range(0, 25, 3)],
            "type": "forecast",
            "area": AREA,
            "data_format": "grib",
        },
    ),
}


def raw_floor(path: Path, dtype: type = np.float64) -> np.ndarray:
    """Every message's values, decoded by ecCodes, as one array (n_messages, n_points)."""
    fields = []
    with path.open("rb") as stream:
        while (handle := eccodes.codes_grib_new_from_file(stream)) is not None:
            try:
                if dtype is np.float64:
                    fields.append(eccodes.codes_get_values(handle))
                else:
                    fields.append(eccodes.codes_get_array(handle, "values", dtype))
            finally:
                eccodes.codes_release(handle)
    return np.stack(fields)


def race(
    fns: dict[str, Callable[[], object]], rounds: int, min_seconds: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Best wall time and best process CPU time of each contender, seconds.

    Contenders run interleaved, one call each per round with the order rotating, so that a
    slow spell of a shared machine hits them all alike; at least ``rounds`` rounds, more
    (up to 20 × ``rounds``) until ``min_seconds`` have passed, which small files need to
    get past timer and scheduler noise. CPU time is kept too: on a machine that other work
    shares, it is the steadier figure (every contender runs on one thread).
    """
    for fn in fns.values():
        fn()  # warm-up: page cache, ecCodes definitions, imports, kinds seen once
    wall = dict.fromkeys(fns, float("inf"))
    cpu = dict.fromkeys(fns, float("inf"))
    names = list(fns)
    began, done = time.perf_counter(), 0
    while done < rounds or (time.perf_counter() - began < min_seconds and done < 20 * rounds):
        shift = done % len(names)
        for name in names[shift:] + names[:shift]:
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[name]()
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
            wall[name] = min(wall[name], time.perf_counter() - start)
        done += 1
    return wall, cpu


def contenders(path: Path, parsed: ParsedRequest) -> dict[str, Callable[[], object]]:
    """The decoders to time on ``path``."""

    def cold() -> object:
        grib.clear_caches()  # a fresh process: every kind's concepts read from ecCodes
        return grib_canonical.decode_grib(path)

    out: dict[str, Callable[[], object]] = {
        "raw": lambda: raw_floor(path),
        "raw32": lambda: raw_floor(path, np.float32),
        "decode_grib": lambda: grib_canonical.decode_grib(path),
        "decode_grib (cold)": cold,
    }
    out["decode_product"] = lambda: decode.decode_product(path, parsed)
    out["verify_product"] = lambda: decode.verify_product(path, parsed)
    return out


def machine() -> dict[str, Any]:
    info = machine_info(("numpy", "eccodes", "cfgrib", "xarray", "netCDF4"))
    info["versions"]["ecCodes library"] = eccodes.codes_get_api_version()
    return info


def write_products(folder: Path, toy: bool = False) -> dict[str, tuple[Path, ParsedRequest]]:
    """Each product of :data:`PRODUCTS` written once into ``folder`` (``toy``: over a 5° box)."""
    atmosphere = ToyAtmosphere()
    out = {}
    for name, (dataset, request) in PRODUCTS.items():
        if toy:
            request = {**request, "area": TOY_EAC4_AREA if dataset == CAMS_EAC4 else TOY_AREA}
            name = f"{name}-toy"
        parsed = validate_request(dataset, request, today=TODAY)
        path = folder / f"{name}.grib"
        if not path.exists():
            print(f"writing {path.name} ...", flush=True)
            write_product(parsed, path, atmosphere)
        out[name] = (path, parsed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds at least")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="per file at least")
    parser.add_argument("--label", default="current", help="what this run measures")
    parser.add_argument("--data", type=Path, help="folder to keep the products in")
    parser.add_argument("--toy", action="store_true", help="a 5° box: a smoke run in seconds")
    parser.add_argument("--no-record", action="store_true", help="do not append the results")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON list appended to")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="aircast-bench-decode-") as tmp:
        folder = args.data or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        products = write_products(folder, args.toy)
        rows = []
        for name, (path, parsed) in products.items():
            size_mb = path.stat().st_size / 1e6
            wall, cpu = race(contenders(path, parsed), args.repeats, args.min_seconds)
            rows.append({"file": name, "mb": round(size_mb, 3), "seconds": wall, "cpu": cpu})

    labels = [k for k in rows[0]["seconds"] if k != "raw"]
    for clock in ("seconds", "cpu"):
        what = "wall time" if clock == "seconds" else "process CPU time"
        print(f"\n{args.label}\n{what}, best of ≥{args.repeats} interleaved rounds: MB/s (ratio)\n")
        print("| file | MB | raw MB/s | " + " | ".join(labels) + " |")
        print("|---|---|---|" + "---|" * len(labels))
        for row in rows:
            mb, secs = row["mb"], row[clock]
            cells = [f"{mb / secs[k]:.1f} ({secs[k] / secs['raw']:.2f}×)" for k in labels]
            print(
                f"| {row['file']} | {mb:.1f} | {mb / secs['raw']:.1f} | " + " | ".join(cells) + " |"
            )
        total_mb = sum(row["mb"] for row in rows)
        total = {k: sum(row[clock][k] for row in rows) for k in ["raw", *labels]}
        cells = [f"{total_mb / total[k]:.1f} ({total[k] / total['raw']:.2f}×)" for k in labels]
        print(
            f"| all files | {total_mb:.1f} | {total_mb / total['raw']:.1f} | "
            + " | ".join(cells)
            + " |"
        )
    for row in rows:
        for clock, key in (("seconds", "ratio"), ("cpu", "cpu_ratio")):
            row[key] = {k: round(row[clock][k] / row[clock]["raw"], 3) for k in labels}
        row["seconds"] = {k: round(v, 5) for k, v in row["seconds"].items()}
        row["cpu"] = {k: round(v, 5) for k, v in row["cpu"].items()}

    record = {
        "label": args.label,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rounds_at_least": args.repeats,
        "min_seconds_per_file": args.min_seconds,
        "machine": machine(),
        "load_average": os.getloadavg(),
        "results": rows,
        **({"toy": True} if args.toy else {}),  # a smoke run's figures are not measurements
    }
    if not args.no_record:
        append_result(args.results, record)


if __name__ == "__main__":
    main()
