"""Training-store build throughput, side by side with ECMWF's anemoi-datasets, and read speed.

Run: ``bash bench/anemoi/setup.sh`` once (anemoi-datasets in its own venv, it pins zarr 2),
then ``.venv/bin/python bench/bench_store.py`` (``--help`` for the options: days, rounds, a
folder to keep the raw cache in, a label for the record, ``--profile``, ``--toy``). Without
the anemoi venv the bench says so and measures AirCast alone.

What runs
---------
1. **Ingestion (not timed in the figures).** ``--days`` days (default 16, two parts of the
   default ``store.part_days`` = 8) of the default recipe (``configs/default.yaml``: 0-45N,
   20.25W-75.75E at 0.75°, ERA5 weather + CAMS EAC4 pollutants) are ingested from the
   embedded sandbox into ``DATA/root`` (``paths.root`` overridden; periods set to those days:
   train all but the last two, then one validation and one test day). ``--data DIR`` keeps
   the raw cache between runs; ingestion is idempotent, so a second run fetches nothing.
   ``--toy`` cuts the region to a 6° box (8 × 8 cells): a smoke run of every step in seconds,
   its figures meaningless.
2. **Contenders**, each a fresh process (so interpreter start and imports count for both
   tools alike), timed by wall clock, in interleaved rounds (``--repeats``), best kept:

   ``aircast serial``
       ``aircast store build CONFIG --serial``: parts one after another in the process.
   ``aircast dask``
       ``aircast store build CONFIG``: the default, parts on a ``LocalCluster`` of
       ``store.dask_workers`` (2) single-threaded worker processes (cluster start included).
   ``anemoi serial``
       ``anemoi-datasets create era5.yaml`` then ``... eac4.yaml`` (bench/anemoi/), times
       summed.

   anemoi-datasets' own parallel mode is not run: ``create --processes N`` fails at once in
   0.5.47 (``TypeError`` from its ``init`` task) and, patched, hangs after ``finalise``; the
   figure is serial against serial.

   AirCast's build decodes the files, regrids ERA5 (0.25°) conservatively onto the 0.75°
   target grid, sums hourly precipitation into three-hour amounts (so it also reads the
   accumulated file of the day before the first), stacks both sources into one array,
   computes statistics and histograms, and verifies the store. anemoi-datasets converts the
   same files as they are: one dataset per grid (it cannot join two grids and cannot regrid
   here, see bench/anemoi/era5.yaml), tp at its three-hourly valid times, with its own
   statistics.
3. **Training reads.** Random time steps (``fields[t]``, all channels of one time, the read
   behind every training sample) from the AirCast store just built, through
   :class:`aircast.store.reader.TrainingStore`, by 1 and 2 reader processes for
   ``--read-seconds`` each. The store is small and was just written, so this is the
   page-cache-warm figure: decompression and Zarr overhead, not the disk.
4. ``--profile``: a serial build of part 0 under cProfile, in-process, with the time split
   into decode, regrid, time alignment, statistics, Zarr writes and the rest.

Figures
-------
GB are 10^9 bytes of GRIB file: the files each tool reads (listed in the record; anemoi
does not read the accumulated file of the day before the first). GB/min is GB in over wall
minutes; s/stored day is wall seconds over ``--days``; the ratio is a contender's wall time
over anemoi's in the same mode (serial with serial, parallel with parallel), and the
headline is AirCast's best mode over anemoi's best mode: the target is ≤ 1. CPU seconds (the
process and its children) are recorded beside wall time: on a machine that other work
shares they are the steadier figure. Each tool's own stage timings are kept too (AirCast's
init/parts/finalise/verify, anemoi's tasks). The table is printed and appended, with the
machine, its load at start and end and the versions of both environments, to
``bench/results/store.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import multiprocessing as mp
import os
import pstats
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from recording import append_result, machine_info  # bench/ is on sys.path when a bench runs

from aircast.config import DEFAULT_CONFIG, AirCastConfig, parse_config
from aircast.jobs.ingest import run_ingest
from aircast.sandbox.runtime import datastore_endpoints
from aircast.sources.base import Source
from aircast.sources.ingest import raw_cache
from aircast.sources.registry import get_source

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "store.json"
RECIPES = HERE / "anemoi"
ANEMOI_VENV = HERE / ".anemoi-venv"
#: ``--toy``: a 6° box of the default region, edges on its 0.75° grid
TOY_REGION = {"north": 30.0, "south": 24.0, "west": 30.0, "east": 36.0}
FIRST_DAY = dt.date(2019, 6, 1)
SOURCES: tuple[Source, ...] = ("era5", "eac4")
SHORT = {
    "reanalysis-era5-single-levels": "era5",
    "reanalysis-era5-pressure-levels": "era5",
    "cams-global-reanalysis-eac4": "eac4",
}
STEPS_PER_DAY = 8


# ---------------------------------------------------------------------------------------------
# the recipe and its raw inputs


def bench_config(root: Path, days: int, toy: bool = False) -> dict[str, Any]:
    """The default recipe with ``paths.root`` at ``root`` and periods over ``days`` days
    (``toy``: over :data:`TOY_REGION`)."""
    if days < 3:
        raise SystemExit("--days must be at least 3 (train, validation and test need a day each)")
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    if toy:
        data["region"] = TOY_REGION
    day = [FIRST_DAY + dt.timedelta(days=i) for i in range(days)]
    data["periods"] = {
        "train": {"start": day[0].isoformat(), "end": day[-3].isoformat()},
        "validation": {"start": day[-2].isoformat(), "end": day[-2].isoformat()},
        "test": {"start": day[-1].isoformat(), "end": day[-1].isoformat()},
    }
    data["paths"] = {"root": str(root)}
    return data


def ingest_days(config: AirCastConfig, days: int) -> float:
    """Ingest the days from the embedded sandbox (idempotent); seconds taken."""
    last = FIRST_DAY + dt.timedelta(days=days - 1)
    began = time.perf_counter()
    print(f"ingesting {FIRST_DAY}..{last} (era5, eac4) into {config.paths.raw} ...", flush=True)
    with datastore_endpoints(config) as endpoints:
        reports = run_ingest(
            config, SOURCES, FIRST_DAY, last, endpoints=endpoints, raise_on_failure=False
        ).reports
    for source, report in reports.items():
        print(f"  {source}: {report.summary()}", flush=True)
        if report.failed:
            errors = "; ".join(f"{r.request.label}: {r.error}" for r in report.failed[:3])
            raise SystemExit(f"ingestion of {source} failed: {errors}")
    return time.perf_counter() - began


def raw_inputs(config: AirCastConfig, days: int) -> list[tuple[str, str, dt.date, Path]]:
    """(short source, group, day, file) of every raw file the build reads."""
    cache = raw_cache(config)
    last = FIRST_DAY + dt.timedelta(days=days - 1)
    out = []
    for source in SOURCES:
        for request in get_source(source).requests(config, FIRST_DAY, last):
            path = cache.existing_file(request)
            if path is None:
                raise SystemExit(f"{request.label} is not in the raw cache {cache.root}")
            out.append((SHORT[request.dataset], request.group, request.day, Path(path)))
    return out


def link_for_anemoi(inputs: list[tuple[str, str, dt.date, Path]], folder: Path) -> None:
    """Symlink the raw files under names the recipes' date patterns find (same bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for short, group, day, path in inputs:
        name = f"{short}-{group}" + ("" if group == "static" else f"-{day:%Y%m%d}") + ".grib"
        link = folder / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path)


def anemoi_files(inputs: list[tuple[str, str, dt.date, Path]], days: int) -> dict[str, list[Path]]:
    """The raw files each anemoi recipe reads: those of the recipe's days (and static)."""
    last = FIRST_DAY + dt.timedelta(days=days - 1)
    out: dict[str, list[Path]] = {"era5": [], "eac4": []}
    for short, group, day, path in inputs:
        if group == "static" or FIRST_DAY <= day <= last:
            out[short].append(path)
    return out


def write_recipes(folder: Path, linked: Path, days: int, part_days: int) -> dict[str, Path]:
    """The templates of bench/anemoi filled in for these days; {name: recipe path}."""
    last = FIRST_DAY + dt.timedelta(days=days - 1)
    out = {}
    for name in ("era5", "eac4"):
        text = (RECIPES / f"{name}.yaml").read_text().replace("@INPUT@", str(linked))
        recipe = yaml.safe_load(text)
        recipe["name"] = f"aircast-bench-{name}-{days}d"
        recipe["dates"] = {
            "start": f"{FIRST_DAY.isoformat()}T00:00:00",
            "end": f"{last.isoformat()}T21:00:00",
            "frequency": "3h",
        }
        recipe["build"] = {"group_by": part_days * STEPS_PER_DAY}
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        out[name] = path
    return out


# ---------------------------------------------------------------------------------------------
# contenders: each a list of commands run one after another in fresh processes


def aircast_command(config_path: Path, serial: bool) -> list[str]:
    """``aircast store build``, run as ``python -m aircast`` by this interpreter: the AirCast
    this bench imports (an ``aircast`` script beside it may belong to another checkout)."""
    base = [sys.executable, "-m", "aircast"]
    return [*base, "store", "build", str(config_path), *(["--serial"] if serial else [])]


def anemoi_command(venv: Path, recipe: Path, out: Path, processes: int) -> list[str]:
    """``anemoi-datasets create`` (serial: its ``--processes`` is broken in 0.5.47)."""
    if processes > 1:
        raise ValueError("anemoi-datasets create --processes fails in 0.5.47; run it serially")
    command = [str(venv / "bin" / "anemoi-datasets"), "create", "--overwrite"]
    return [*command, str(recipe), str(out)]


def run_logged(command: list[str], log: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``command``, output to ``log``: (wall seconds, CPU seconds of it and its children).

    Exits on failure, showing the end of the log.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    with log.open("w") as stream:
        code = subprocess.call(command, stdout=stream, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if code:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise SystemExit(f"{' '.join(command)} failed (exit {code}); {log}:\n{tail}")
    return seconds, cpu


_AIRCAST_STAGES = re.compile(r"\((init [^)]*)\)\s*$", re.M)
_ANEMOI_TASK = re.compile(r"Task (\w[\w-]*)\(.*\) completed \((\d+):(\d+):([\d.]+)\)")


def stage_seconds(tool: str, log: Path) -> dict[str, float]:
    """The stage timings the tool itself printed (AirCast's stages, anemoi's tasks)."""
    text = log.read_text()
    out: dict[str, float] = {}
    if tool == "aircast":
        match = _AIRCAST_STAGES.search(text)
        if match:
            for item in match.group(1).split(", "):
                name, value, _ = item.split()
                out[name] = float(value)
    else:
        for name, h, m, s in _ANEMOI_TASK.findall(text):
            out[name] = out.get(name, 0.0) + int(h) * 3600 + int(m) * 60 + float(s)
    return out


def anemoi_shapes(venv: Path, paths: dict[str, Path]) -> dict[str, Any]:
    """Shape and variables of each anemoi dataset (read with the anemoi venv's zarr 2)."""
    code = (
        "import json, sys, zarr; out = {}\n"
        "for name, path in json.loads(sys.argv[1]).items():\n"
        "    z = zarr.open(path, mode='r')\n"
        "    out[name] = {'shape': list(z['data'].shape), 'variables': z.attrs['variables']}\n"
        "print(json.dumps(out))"
    )
    arg = json.dumps({n: str(p) for n, p in paths.items()})
    python = str(venv / "bin" / "python")
    done = subprocess.run([python, "-c", code, arg], capture_output=True, text=True, check=True)
    shapes: dict[str, Any] = json.loads(done.stdout)
    return shapes


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# ---------------------------------------------------------------------------------------------
# training reads


def _reader(url: str, seconds: float, seed: int, barrier: Any, queue: Any) -> None:
    from aircast.store.reader import TrainingStore

    fields = TrainingStore(url).group["fields"]
    n = fields.shape[0]
    rng = np.random.default_rng(seed)
    np.asarray(fields[int(rng.integers(n))])  # warm-up: open, first decompression
    barrier.wait()
    began, count, nbytes = time.perf_counter(), 0, 0
    while time.perf_counter() - began < seconds:
        nbytes += np.asarray(fields[int(rng.integers(n))]).nbytes
        count += 1
    queue.put((count, nbytes, time.perf_counter() - began))


def read_throughput(url: str, processes: int, seconds: float) -> dict[str, float]:
    """Random whole time steps per second from ``processes`` reader processes together."""
    context = mp.get_context("spawn")
    barrier, queue = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_reader, args=(url, seconds, seed, barrier, queue))
        for seed in range(processes)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    count = sum(r[0] for r in results)
    nbytes = sum(r[1] for r in results)
    elapsed = max(r[2] for r in results)
    return {
        "processes": processes,
        "steps": count,
        "seconds": round(elapsed, 3),
        "steps_per_s": round(count / elapsed, 1),
        "mb_per_s_uncompressed": round(nbytes / elapsed / 1e6, 1),
        "ms_per_step_per_process": round(1e3 * elapsed * processes / count, 3),
    }


# ---------------------------------------------------------------------------------------------
# profile


#: category -> (module path fragment, function name, calling function or None for any):
#: the cumulative time of that function's outermost calls (from that caller)
PROFILE_PARTS: dict[str, tuple[str, str, str | None]] = {
    "manifest and inputs": ("aircast/store/inputs.py", "raw_inputs", None),
    "decode (decode_product)": ("aircast/sources/decode.py", "decode_product", None),
    "regrid (regrid_conservative)": ("aircast/align/grid.py", "regrid_conservative", None),
    "concat per channel (xr.concat)": ("xarray/structure/concat.py", "concat", "read_on_grid"),
    "align time (align_time)": ("aircast/align/time.py", "align_time", None),
    "finite check": ("aircast/store/days.py", "_require_finite", None),
    "statistics (PartStatistics.from_fields)": ("aircast/store/stats.py", "from_fields", None),
    "zarr write of fields": ("zarr/core/array.py", "__setitem__", "load_part"),
}


def profile_part(config_data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """cProfile of load_part(0), serial and in-process, split by category.

    cProfile slows Python-heavy code (xarray's bookkeeping) more than compiled code
    (ecCodes, numpy, Blosc), so the best unprofiled time of the same call is kept beside it.
    """
    from aircast.store.build import init_store, load_part

    data = json.loads(json.dumps(config_data))
    data["store"] = {"url": str(folder / "profile.zarr")}
    shutil.rmtree(folder / "profile.zarr", ignore_errors=True)
    config = parse_config(data)
    init_store(config)
    load_part(config, 0)  # warm-up: ecCodes definitions, imports, caches of this process
    unprofiled = float("inf")
    for _ in range(2):
        began = time.perf_counter()
        load_part(config, 0)
        unprofiled = min(unprofiled, time.perf_counter() - began)
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    part = load_part(config, 0)
    profiler.disable()
    total = time.perf_counter() - began
    profiler.dump_stats(folder / "load_part.prof")
    stats = pstats.Stats(profiler)
    found: dict[str, float] = {}
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for category, (fragment, name, caller_name) in PROFILE_PARTS.items():
        cumulative = 0.0
        for (filename, _, function), (_, _, _, cum, callers) in raw.items():
            if function != name or fragment not in filename.replace(os.sep, "/"):
                continue
            if caller_name is not None:
                cumulative += sum(v[3] for k, v in callers.items() if k[2] == caller_name)
            elif not any(k[2] == name and fragment in k[0] for k in callers):
                cumulative += cum  # outermost calls only (not recursion)
        found[category] = round(cumulative, 3)
    found["rest of load_part"] = round(total - sum(found.values()), 3)
    lines = []
    stream_stats = pstats.Stats(profiler, stream=_Lines(lines))
    stream_stats.sort_stats("cumulative").print_stats(30)
    return {
        "part_days": (part.last_day - part.first_day).days + 1,
        "wall_s_profiled": round(total, 3),
        "wall_s_unprofiled": round(unprofiled, 3),
        "categories_s": found,
        "top_cumulative": lines[:80],
        "prof_file": str(folder / "load_part.prof"),
    }


class _Lines:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line.strip())


# ---------------------------------------------------------------------------------------------
# machine


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine(anemoi_venv: Path) -> dict[str, Any]:
    info = machine_info(("numpy", "zarr", "xarray", "dask", "distributed", "eccodes", "numcodecs"))
    info["aircast_versions"] = info.pop("versions")
    info["anemoi_versions"] = anemoi_versions(anemoi_venv)
    return info


def anemoi_versions(venv: Path) -> dict[str, str] | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    names = ["anemoi-datasets", "anemoi-transform", "earthkit-data", "eccodes", "zarr", "numpy"]
    code = (
        "import json, sys; from importlib.metadata import version; "
        f"print(json.dumps({{n: version(n) for n in {names!r}}} | "
        "{'python': sys.version.split()[0]}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    versions: dict[str, str] = json.loads(out.stdout)
    return versions


# ---------------------------------------------------------------------------------------------
# figures


def figures(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Ratios of AirCast's times over anemoi's, added to ``rows`` and returned as the headline.

    ``ratio_to_anemoi`` (per row): wall time over anemoi's in the same mode (serial with
    serial, parallel with parallel); ``cpu_ratio_to_anemoi``: the same for CPU time (the
    steadier figure when other work shares the machine). The headline ``best_vs_best`` is
    AirCast's fastest mode over anemoi's fastest: what a user of each tool would run.
    """
    anemoi = {r["mode"]: r for r in rows if r["tool"] == "anemoi"}
    for row in rows:
        base = anemoi.get(row["mode"])
        row["ratio_to_anemoi"] = round(row["wall_s"] / base["wall_s"], 3) if base else None
        row["cpu_ratio_to_anemoi"] = round(row["cpu_s"] / base["cpu_s"], 3) if base else None
    if not anemoi:
        return {"best_vs_best": None, "serial": None, "parallel": None}
    best_aircast = min(r["wall_s"] for r in rows if r["tool"] == "aircast")
    best_anemoi = min(r["wall_s"] for r in anemoi.values())
    by_mode = {r["mode"]: r["ratio_to_anemoi"] for r in rows if r["tool"] == "aircast"}
    return {
        "best_vs_best": round(best_aircast / best_anemoi, 3),
        "serial": by_mode.get("serial"),
        "parallel": by_mode.get("parallel"),
    }


def ratio_line(ratios: dict[str, float | None]) -> str | None:
    """The headline ratios as printed; None without anemoi. A mode anemoi was not run in
    (its parallel mode, see above) has no ratio and is left out."""
    if ratios["best_vs_best"] is None:
        return None
    by_mode = "".join(
        f"; {mode} {ratios[mode]:.2f}"
        for mode in ("serial", "parallel")
        if ratios[mode] is not None
    )
    return (
        f"ratio (AirCast over anemoi, wall): best mode vs best mode "
        f"{ratios['best_vs_best']:.2f}{by_mode} (target: <= 1)"
    )


# ---------------------------------------------------------------------------------------------
# main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=16, help="days of the recipe to build")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds, best kept")
    parser.add_argument("--read-seconds", type=float, default=5.0, help="per reader count")
    parser.add_argument("--data", type=Path, help="folder to keep the raw cache in (reused)")
    parser.add_argument("--label", default="current", help="what this run measures")
    parser.add_argument("--profile", action="store_true", help="cProfile a serial part 0")
    parser.add_argument("--no-anemoi", action="store_true", help="AirCast only")
    parser.add_argument(
        "--anemoi-venv", type=Path, default=ANEMOI_VENV, help="anemoi-datasets' venv (setup.sh)"
    )
    parser.add_argument("--toy", action="store_true", help="a 6° box: a smoke run in seconds")
    parser.add_argument("--no-record", action="store_true", help="do not append the results")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON list appended to")
    args = parser.parse_args()

    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="aircast-bench-store-") as tmp:
        folder = args.data or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        work = folder / f"work-{args.days}d"
        shutil.rmtree(work, ignore_errors=True)
        (work / "logs").mkdir(parents=True)

        config_data = bench_config(folder / "root", args.days, args.toy)
        config = parse_config(config_data)
        ingest_s = ingest_days(config, args.days)
        print(f"ingestion took {ingest_s:.1f} s (not part of the figures)", flush=True)
        store = work / "aircast.zarr"
        config_data["store"] = {"url": str(store)}
        config = parse_config(config_data)
        config_path = work / "aircast.yaml"
        config_path.write_text(yaml.safe_dump(config_data, sort_keys=False))

        inputs = raw_inputs(config, args.days)
        aircast_files = [path for *_, path in inputs]
        venv = args.anemoi_venv
        use_anemoi = not args.no_anemoi and (venv / "bin" / "anemoi-datasets").exists()
        if not args.no_anemoi and not use_anemoi:
            print(
                f"anemoi-datasets is not installed ({venv} is missing: run bash "
                "bench/anemoi/setup.sh): AirCast only, no comparison",
                flush=True,
            )
        recipes: dict[str, Path] = {}
        by_recipe: dict[str, list[Path]] = {"era5": [], "eac4": []}
        if use_anemoi:
            linked = work / "anemoi-input"
            link_for_anemoi(inputs, linked)
            recipes = write_recipes(work, linked, args.days, config.store.part_days)
            by_recipe = anemoi_files(inputs, args.days)

        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")  # neither tool uses threads; keep BLAS quiet
        env["TQDM_DISABLE"] = "1"

        Outcome = tuple[float, float, dict[str, float]]  # wall s, CPU s, stages

        def aircast_run(serial: bool) -> Callable[[int], Outcome]:
            def go(round_: int) -> Outcome:
                shutil.rmtree(store, ignore_errors=True)
                mode = "serial" if serial else "dask"
                log = work / "logs" / f"aircast-{mode}-{round_}.log"
                seconds, cpu = run_logged(aircast_command(config_path, serial), log, env)
                return seconds, cpu, stage_seconds("aircast", log)

            return go

        def anemoi_run(processes: int) -> Callable[[int], Outcome]:
            def go(round_: int) -> Outcome:
                total, total_cpu, stages = 0.0, 0.0, {}
                for name, recipe in recipes.items():
                    out = work / f"anemoi-{name}.zarr"
                    shutil.rmtree(out, ignore_errors=True)
                    log = work / "logs" / f"anemoi-{name}-p{processes}-{round_}.log"
                    command = anemoi_command(venv, recipe, out, processes)
                    seconds, cpu = run_logged(command, log, env)
                    total, total_cpu = total + seconds, total_cpu + cpu
                    stages[f"{name}:wall"] = round(seconds, 3)
                    for stage, value in stage_seconds("anemoi", log).items():
                        stages[f"{name}:{stage}"] = round(value, 3)
                return total, total_cpu, stages

            return go

        contenders: dict[str, tuple[str, Callable[[int], Outcome]]] = {
            "aircast serial": ("serial", aircast_run(True)),
            "aircast dask (2 workers)": ("parallel", aircast_run(False)),
        }
        if use_anemoi:
            contenders["anemoi serial"] = ("serial", anemoi_run(1))
        walls: dict[str, list[float]] = {name: [] for name in contenders}
        cpus: dict[str, list[float]] = {name: [] for name in contenders}
        stages: dict[str, dict[str, float]] = {}
        names = list(contenders)
        for round_ in range(args.repeats):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                seconds, cpu, detail = contenders[name][1](round_)
                print(
                    f"  round {round_ + 1}: {name}: {seconds:.1f} s wall, {cpu:.1f} s CPU "
                    f"(load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
                if not walls[name] or seconds < min(walls[name]):
                    stages[name] = detail
                walls[name].append(seconds)
                cpus[name].append(cpu)

        files_of = {
            "aircast": aircast_files,
            "anemoi": by_recipe["era5"] + by_recipe["eac4"],
        }
        rows = []
        for name, (mode, _) in contenders.items():
            tool = name.split()[0]
            files = files_of[tool]
            gb = sum(p.stat().st_size for p in files) / 1e9
            wall = min(walls[name])
            rows.append(
                {
                    "contender": name,
                    "tool": tool,
                    "mode": mode,
                    "files": len(files),
                    "gb_in": round(gb, 4),
                    "wall_s": round(wall, 2),
                    "wall_s_all": [round(w, 2) for w in walls[name]],
                    "cpu_s": round(min(cpus[name]), 2),
                    "cpu_s_all": [round(c, 2) for c in cpus[name]],
                    "gb_per_min": round(gb / (wall / 60), 3),
                    "s_per_stored_day": round(wall / args.days, 3),
                    "stages_s": stages[name],
                }
            )
        ratios = figures(rows)

        from aircast.store.reader import TrainingStore

        outputs: dict[str, Any] = {
            "aircast": {
                "bytes": du(store),
                "shape": list(TrainingStore(str(store)).group["fields"].shape),
            }
        }
        if use_anemoi:
            zarrs = {n: work / f"anemoi-{n}.zarr" for n in recipes}
            for name, info in anemoi_shapes(venv, zarrs).items():
                outputs[f"anemoi-{name}"] = {"bytes": du(zarrs[name]), **info}

        print("\ntraining reads: random time steps from the AirCast store", flush=True)
        reads = [read_throughput(str(store), p, args.read_seconds) for p in (1, 2)]
        profile = profile_part(config_data, work) if args.profile else None
        load_end = load_average()
        recipe_texts = {n: p.read_text() for n, p in recipes.items()}

    what = "configs/default.yaml" + (" (--toy: a 6° box)" if args.toy else "")
    print(f"\n{args.label}: {args.days} days of {what}, best of {args.repeats}\n")
    print("| tool | files | GB in | wall s | GB/min | s/stored day | ratio | CPU s | CPU ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = "" if r["ratio_to_anemoi"] is None else f"{r['ratio_to_anemoi']:.2f}"
        cpu_ratio = "" if r["cpu_ratio_to_anemoi"] is None else f"{r['cpu_ratio_to_anemoi']:.2f}"
        print(
            f"| {r['contender']} | {r['files']} | {r['gb_in']:.3f} | {r['wall_s']:.1f} | "
            f"{r['gb_per_min']:.2f} | {r['s_per_stored_day']:.2f} | {ratio} | "
            f"{r['cpu_s']:.1f} | {cpu_ratio} |"
        )
    headline = ratio_line(ratios)
    if headline is not None:
        print(f"\n{headline}")
    print("\n| readers | steps/s | MB/s (uncompressed) | ms per step per process |")
    print("|---|---|---|---|")
    for r in reads:
        print(
            f"| {r['processes']} | {r['steps_per_s']:.0f} | {r['mb_per_s_uncompressed']:.0f} | "
            f"{r['ms_per_step_per_process']:.2f} |"
        )
    if profile:
        print(
            f"\nprofile of load_part(0), {profile['part_days']} days, serial, in-process: "
            f"{profile['wall_s_profiled']:.1f} s under cProfile "
            f"({profile['wall_s_unprofiled']:.1f} s without)"
        )
        for category, seconds in profile["categories_s"].items():
            print(f"  {category:<42} {seconds:7.2f} s")
    print(f"\nload average {load_start} at start, {load_end} at end")

    record = {
        "label": args.label,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/bench_store.py", *sys.argv[1:]]),
        "days": args.days,
        "first_day": FIRST_DAY.isoformat(),
        "repeats": args.repeats,
        "ingest_s": round(ingest_s, 1),
        "machine": machine(venv),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "results": rows,
        "ratios": ratios,
        "outputs": outputs,
        "anemoi_recipes": recipe_texts if use_anemoi else None,
        "aircast_files": [f"{s}-{g}-{d}" for s, g, d, _ in inputs],
        "training_reads": reads,
        "profile": profile,
        **({"toy": True} if args.toy else {}),  # a smoke run's figures are not measurements
    }
    if not args.no_record:
        append_result(args.results, record)


if __name__ == "__main__":
    main()
