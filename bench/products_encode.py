"""How fast the sandbox writes products, without the atmosphere's own cost.

Run: ``.venv/bin/python bench/products_encode.py``. The request is one day of ERA5 single
levels over the default area [45, -20, 0, 76]: 8 variables x 24 hours = 192 GRIB messages of
181 x 385 points. The atmosphere hands back precomputed arrays, so the figures are the
writer's alone. A second table compares ways of encoding one message with ecCodes.
``--toy``: a 5° box, one repeat: a smoke run in seconds, its figures meaningless.

Recorded results are in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import eccodes
import numpy as np

from aircast.catalogue import validate_request
from aircast.sandbox.products import product_grid, write_product
from aircast.vocab import ERA5_SINGLE

VARIABLES = [
    "2m_temperature",
    "2m_dewpoint_temperature",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
    "surface_pressure",
    "total_precipitation",
    "boundary_layer_height",
]
REPEATS = 5
AREA = [45, -20, 0, 76]
TOY_AREA = [45, -20, 40, -15]


class Precomputed:
    """An atmosphere whose fields cost nothing: one random slab reused for every call."""

    def __init__(self, shape: tuple[int, int]) -> None:
        rng = np.random.default_rng(0)
        self.field = (280 + 10 * rng.standard_normal((24, *shape))).astype(np.float32)

    def sample(
        self,
        names: Sequence[str],
        times: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        level_hpa: float | None = None,
    ) -> dict[str, np.ndarray]:
        return {n: self.field[: times.size] for n in names}

    def sample_forecast(
        self,
        names: Sequence[str],
        init_time: np.datetime64,
        lead_hours: Sequence[int],
        lat: np.ndarray,
        lon: np.ndarray,
        level_hpa: float | None = None,
    ) -> dict[str, np.ndarray]:
        return {n: self.field[: len(lead_hours)] for n in names}


def best(fn: Callable[[], object], repeats: int = REPEATS) -> tuple[float, float]:
    """(best, median) wall time of ``repeats`` runs, seconds."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs), statistics.median(runs)


def message_strategies(
    values: np.ndarray, area: list[int] = AREA
) -> dict[str, Callable[[], object]]:
    """192 messages of ``values`` (lat, lon) over ``area`` (N, W, S, E) encoded three ways."""
    nlat, nlon = values.shape
    north, west, south, east = (float(edge) for edge in area)

    def template() -> int:
        h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
        eccodes.codes_set_long(h, "Ni", nlon)
        eccodes.codes_set_long(h, "Nj", nlat)
        eccodes.codes_set(h, "latitudeOfFirstGridPointInDegrees", north)
        eccodes.codes_set(h, "latitudeOfLastGridPointInDegrees", south)
        eccodes.codes_set(h, "longitudeOfFirstGridPointInDegrees", west)
        eccodes.codes_set(h, "longitudeOfLastGridPointInDegrees", east)
        eccodes.codes_set(h, "iDirectionIncrementInDegrees", 0.25)
        eccodes.codes_set(h, "jDirectionIncrementInDegrees", 0.25)
        eccodes.codes_set_long(h, "jScansPositively", 0)
        eccodes.codes_set_long(h, "paramId", 167)
        eccodes.codes_set_long(h, "bitsPerValue", 16)
        return h

    flat = values.astype(np.float64).ravel()

    def clone() -> None:
        base = template()
        for i in range(192):
            h = eccodes.codes_clone(base)
            eccodes.codes_set_long(h, "dataTime", (i % 24) * 100)
            eccodes.codes_set_values(h, flat)
            eccodes.codes_get_message(h)
            eccodes.codes_release(h)
        eccodes.codes_release(base)

    def new_sample() -> None:
        for i in range(192):
            h = template()
            eccodes.codes_set_long(h, "dataTime", (i % 24) * 100)
            eccodes.codes_set_values(h, flat)
            eccodes.codes_get_message(h)
            eccodes.codes_release(h)

    def reuse() -> None:
        h = template()
        for i in range(192):
            eccodes.codes_set_long(h, "dataTime", (i % 24) * 100)
            eccodes.codes_set_values(h, flat)
            eccodes.codes_get_message(h)
        eccodes.codes_release(h)

    return {
        "clone a prepared template (used)": clone,
        "new handle from the sample each time": new_sample,
        "reuse one handle (unsafe: constant fields)": reuse,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toy", action="store_true", help="a 5° box, one repeat: a smoke run")
    args = parser.parse_args()
    area = TOY_AREA if args.toy else AREA
    repeats = 1 if args.toy else REPEATS
    request = {
        "product_type": "reanalysis",
        "variable": VARIABLES,
        "year": "2020",
        "month": "january",
        "day": "01",
        "time": [f"{h:02d}:00" for h in range(24)],
        "area": area,
    }
    grib = validate_request(
        ERA5_SINGLE, {**request, "data_format": "grib"}, today=dt.date(2024, 1, 1)
    )
    netcdf = validate_request(
        ERA5_SINGLE, {**request, "data_format": "netcdf"}, today=dt.date(2024, 1, 1)
    )
    grid = product_grid(ERA5_SINGLE, grib.area)
    atmosphere = Precomputed(grid.shape)

    print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}")
    print(f"eccodes {eccodes.codes_get_api_version()}, numpy {np.__version__}")
    print(f"request: {grib.n_fields} fields of {grid.shape[0]} x {grid.shape[1]}\n")
    print("| product | best s | median s | size MB |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, parsed, name in (("GRIB", grib, "p.grib"), ("NetCDF (zip)", netcdf, "p.zip")):
            target = Path(tmp) / name
            fastest, median = best(
                lambda p=parsed, t=target: write_product(p, t, atmosphere), repeats
            )
            size = target.stat().st_size / 1e6
            print(f"| {label} | {fastest:.3f} | {median:.3f} | {size:.1f} |")

    print("\n| 192 GRIB messages encoded by | best s | median s |\n|---|---|---|")
    for label, fn in message_strategies(atmosphere.field[0], area).items():
        fastest, median = best(fn, repeats)
        print(f"| {label} | {fastest:.3f} | {median:.3f} |")


if __name__ == "__main__":
    main()
