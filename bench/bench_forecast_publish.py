"""Daily forecast latency on CPU: from "inputs ingested" to "forecast published".

Run: ``.venv/bin/python bench/bench_forecast_publish.py`` (``--help`` for the options: a
folder to keep the data in, repeats, a label for the record, ``--torch-threads``,
``--profile``, ``--toy`` for the recipe over a 6° box: a smoke run of every stage, its figures
meaningless).

Why
---
The daily forecast runs once a day after the CAMS 00 UTC run has been ingested; the target
is that the rest, forecast and publish, takes **under 30 s on this machine** (CPU, default
torch threads) for the default recipe, so that a small VM can serve it without a GPU. This
bench measures that path stage by stage with the same functions the command line
(``aircast forecast``) and the ``daily_forecast`` flow call, so a slow stage is named.

Setup (not timed)
-----------------
1. The default recipe (``configs/default.yaml``: 0-45N, 20.25W-75.75E at 0.75°, 61 × 129
   cells, 21 dynamic channels + 2 static) with its periods shrunk to June 2019 (train
   06-01..06-02, validation 06-03, test 06-04) and ``paths.root`` under ``--data`` (default a
   temporary folder; a kept folder makes reruns skip the ingestion, which is idempotent).
   ERA5 and EAC4 for 06-01..06-04 are ingested from the embedded sandbox and the training
   store is built (``run_build(config)``): the forecast takes its grid,
   static fields and statistics from it.
2. A checkpoint of the recipe's model shape (the ``model:`` defaults, as the default recipe
   sets none: patch 2, width 128, depth 4, heads 4) with its **initial, untrained weights**
   (``torch.manual_seed(training.seed)``, 0), written by ``save_checkpoint`` with a
   ``CheckpointMeta`` built as the training loop builds it (fMAE histogram tensors included),
   at the recipe's ``checkpoints/best.ckpt``. The weights' values do not change the time of
   anything measured: the same layers run on the same shapes whatever they hold.
3. The CAMS global forecast runs of 2019-06-03 and 06-04 (what the forecast of 06-04 00 UTC
   needs: lead 0 of its own run, the previous run's 21 h and 24 h for the precipitation
   accumulation) are ingested: "inputs ingested".

Timed
-----
Each repeat (``--repeats``, default 3) is a fresh Python process, so nothing is warm but
the page cache, and publishes to a fresh forecast store URL. The steps of
``prepare_forecast`` are called one by one, so a health verdict (against statistics of two
training days the initial state may look unhealthy) is recorded but does not stop the run.
Stages, wall clock:

``imports``
    ``torch`` and the AirCast forecast modules (the process start itself is not included).
``open training store``
    ``open_store`` + ``check_forecast_date``.
``load checkpoint + model``
    ``LoadedModel.load(resolve_checkpoint(config), store)``: ``torch.load``, the checks
    against the store, building the ``Forecaster``, the file's sha256.
``initial conditions``
    ``load_initial_conditions``: decode the CAMS GRIB files, regrid 0.4° → 0.75°.
``health check``
    ``check_health`` against the training statistics.
``rollout 0-72 h``
    ``make_forecast``: 24 forward passes (3..24 h direct, then twice from the 24 h forecast),
    values into a ``ForecastRun``.
``publish (new store)``
    ``publish_forecast`` to a new local store: creates it, writes, verifies, commits.
``publish (append)``
    The same run with its init moved a day later, published to the same store: the cost of
    every day after the first (not part of the total, shown beside it).

Wall and CPU seconds (of the process) are both kept: on a machine that other work shares,
CPU time is the steadier figure, and wall over CPU shows waiting. torch's thread count is
the recipe's ``forecast.torch_threads`` (recorded); ``--torch-threads N`` overrides it, to compare.

The **total** is load + initial conditions + health + rollout + first publish (the path
from a started forecast process to a published init), against the 30 s target; the
**end-to-end** figure adds the imports and opening the training store (what
``aircast forecast`` pays after ingestion). Median and best over the repeats are printed and
appended, with the machine, torch's thread count, the versions and the load average at start
and end, to ``bench/results/forecast_publish.json``. ``--profile`` runs one more repeat in
process under cProfile and prints where the time of each stage goes.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from recording import append_result, machine_info  # bench/ is on sys.path when a bench runs

if TYPE_CHECKING:  # aircast and torch are imported where used: the repeats time the imports
    from aircast.config import AirCastConfig
    from aircast.sources.base import Source
    from aircast.sources.datastore import Store

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "forecast_publish.json"
FIRST_DAY = dt.date(2019, 6, 1)
DAYS = 4  # train 06-01..06-02, validation 06-03, test 06-04
FORECAST_DAY = dt.date(2019, 6, 4)
TARGET_S = 30.0
#: ``--toy``: a 6° box of the default region, edges on its 0.75° grid
TOY_REGION = {"north": 30.0, "south": 24.0, "west": 30.0, "east": 36.0}

#: (key, label) of every timed stage, in order
STAGES = (
    ("imports", "imports (torch, aircast.forecast)"),
    ("open_store", "open training store"),
    ("load_model", "load checkpoint + model"),
    ("initial_conditions", "initial conditions (decode + regrid)"),
    ("health", "health check"),
    ("rollout", "rollout 0-72 h every 3 h"),
    ("publish_new", "publish (new store)"),
    ("publish_append", "publish (append a 2nd init)"),
)
#: the stages of the total (against the target)
TOTAL = ("load_model", "initial_conditions", "health", "rollout", "publish_new")
#: the stages of the end-to-end figure
END_TO_END = ("imports", "open_store", *TOTAL)


# ---------------------------------------------------------------------------------------------
# setup (not timed)


def bench_config(root: Path, toy: bool = False) -> dict[str, Any]:
    """The default recipe with ``paths.root`` at ``root`` and periods in June 2019 (``toy``:
    over :data:`TOY_REGION`)."""
    from aircast.config import DEFAULT_CONFIG

    data: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text())
    if toy:
        data["region"] = TOY_REGION
    day = [FIRST_DAY + dt.timedelta(days=i) for i in range(DAYS)]
    data["periods"] = {
        "train": {"start": day[0].isoformat(), "end": day[1].isoformat()},
        "validation": {"start": day[2].isoformat(), "end": day[2].isoformat()},
        "test": {"start": day[3].isoformat(), "end": day[3].isoformat()},
    }
    data["paths"] = {"root": str(root)}
    return data


def _ingest(
    config: AirCastConfig, sources: tuple[Source, ...], first: dt.date, last: dt.date
) -> float:
    """Ingest ``sources`` for ``first``..``last`` from the sandbox (idempotent); seconds."""
    from aircast.jobs.ingest import run_ingest
    from aircast.sandbox.runtime import datastore_endpoints

    began = time.perf_counter()
    stores: tuple[Store, ...] = ("ads",) if sources == ("forecast",) else ("cds", "ads")
    print(f"ingesting {first}..{last} ({', '.join(sources)}) ...", flush=True)
    with datastore_endpoints(config, stores=stores) as endpoints:
        reports = run_ingest(
            config, sources, first, last, endpoints=endpoints, raise_on_failure=False
        ).reports
    for source, report in reports.items():
        print(f"  {source}: {report.summary()}", flush=True)
        if report.failed:
            errors = "; ".join(f"{r.request.label}: {r.error}" for r in report.failed[:3])
            raise SystemExit(f"ingestion of {source} failed: {errors}")
    return time.perf_counter() - began


def write_checkpoint(config: AirCastConfig) -> tuple[Path, dict[str, Any]]:
    """An untrained checkpoint of the recipe's model shape, written as training writes one."""
    import torch

    from aircast.store.reader import open_store
    from aircast.training.checkpoint import save_checkpoint
    from aircast.training.loop import (
        build_loss,
        build_model,
        checkpoint_dir,
        checkpoint_meta,
        checkpoint_tensors,
    )

    store = open_store(config.store_url, config.store.storage_options or None)
    torch.manual_seed(config.training.seed)
    model, channels = build_model(config, store)
    loss_fn = build_loss(config, store, model)
    meta = checkpoint_meta(config, store, channels, step=0, epoch=0, best_score=None)
    extra = checkpoint_tensors(loss_fn)
    path = save_checkpoint(checkpoint_dir(config) / "best.ckpt", meta, model.state_dict(), extra)
    m = config.model
    info = {
        "path": str(path),
        "bytes": path.stat().st_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "model": {k: getattr(m, k) for k in ("patch_size", "width", "depth", "heads")}
        | {"mlp_ratio": m.mlp_ratio, "dropout": m.dropout},
        "input_channels": len(channels.inputs),
        "target_channels": len(channels.targets),
        "weights": "initial (untrained), torch.manual_seed(training.seed)",
    }
    return path, info


def setup(folder: Path, toy: bool = False) -> tuple[Path, dict[str, Any]]:
    """Ingest, build the store, write the checkpoint, ingest the CAMS runs; the config path."""
    from aircast.config import parse_config
    from aircast.jobs.build import run_build

    data = bench_config(folder / "root", toy)
    config = parse_config(data)
    config_path = folder / "bench-default.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    last = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    took: dict[str, Any] = {}
    took["ingest_training_s"] = round(_ingest(config, ("era5", "eac4"), FIRST_DAY, last), 1)
    began = time.perf_counter()
    print(f"building the training store {config.store_url} ...", flush=True)
    result = run_build(config)
    took["build_store_s"] = round(time.perf_counter() - began, 1)
    took["store_parts_loaded"] = len(result.loaded)
    began = time.perf_counter()
    _, took["checkpoint"] = write_checkpoint(config)
    took["write_checkpoint_s"] = round(time.perf_counter() - began, 1)
    previous = FORECAST_DAY - dt.timedelta(days=1)
    took["ingest_forecast_s"] = round(_ingest(config, ("forecast",), previous, FORECAST_DAY), 1)
    return config_path, took


# ---------------------------------------------------------------------------------------------
# one timed repeat (run in a fresh process by --worker)


def timed_forecast(
    config_path: Path, forecast_url: str, threads: int | None = None
) -> dict[str, Any]:
    """Every stage once, timed; the forecast published to ``forecast_url`` (must not exist).

    ``threads``: torch's intra-op threads (None: torch's default, left alone).
    """
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    clock, cpu_clock = time.perf_counter(), time.process_time()

    def lap(key: str) -> None:
        nonlocal clock, cpu_clock
        now, cpu_now = time.perf_counter(), time.process_time()
        seconds[key] = round(now - clock, 4)
        cpu_seconds[key] = round(cpu_now - cpu_clock, 4)
        clock, cpu_clock = now, cpu_now

    import dataclasses

    import numpy as np
    import torch

    from aircast.config import load_config
    from aircast.forecast.daily import (
        LoadedModel,
        check_forecast_date,
        make_forecast,
        resolve_checkpoint,
    )
    from aircast.forecast.initial import check_health, load_initial_conditions
    from aircast.forecast.publish import publish_forecast
    from aircast.store.reader import open_store

    config = load_config(config_path)
    # as prepare_forecast does: the recipe's forecast.torch_threads, unless overridden
    threads = threads if threads is not None else config.forecast.torch_threads
    if threads is not None:
        torch.set_num_threads(threads)
    lap("imports")
    store = open_store(config.store_url, config.store.storage_options or None)
    check_forecast_date(FORECAST_DAY, store)
    lap("open_store")
    loaded = LoadedModel.load(resolve_checkpoint(config), store)
    lap("load_model")
    ic = load_initial_conditions(config, store, FORECAST_DAY)
    lap("initial_conditions")
    health = check_health(ic, store, config.forecast.health)
    lap("health")
    run = make_forecast(
        loaded,
        ic,
        lead_hours=config.forecast.lead_hours,
        store=store,
        health=health,
        extra_provenance={"fallback_to_previous_cycle": False, "recipe": config.name},
    )
    lap("rollout")
    first = publish_forecast(forecast_url, run)
    lap("publish_new")
    later = dataclasses.replace(run, init_time=run.init_time + np.timedelta64(24, "h"))
    second = publish_forecast(forecast_url, later)
    lap("publish_append")
    if (first.outcome, second.outcome, second.inits) != ("published", "published", 2):
        raise SystemExit(f"unexpected publish results: {first}, {second}")
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "torch_threads": torch.get_num_threads(),
        "health_ok": health.ok,
        "health_problems": health.problems,
        "forward_passes": len(run.lead_hours) - 1,
        "run_shape": list(run.values.shape),
        "published_mb": round(run.values.nbytes / 1e6, 1),
        "pid": os.getpid(),
    }


def worker(config_path: Path, forecast_url: str, out: Path, threads: int | None) -> None:
    out.write_text(json.dumps(timed_forecast(config_path, forecast_url, threads)))


def run_repeat(
    config_path: Path, forecast_url: str, out: Path, threads: int | None
) -> dict[str, Any]:
    """One repeat in a fresh process; its stage timings and the process's wall time."""
    shutil.rmtree(forecast_url, ignore_errors=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(config_path)]
    command += ["--forecast-url", forecast_url, "--out", str(out)]
    if threads is not None:
        command += ["--torch-threads", str(threads)]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - began
    if done.returncode:
        raise SystemExit(f"the repeat failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["process_wall_s"] = round(wall, 3)
    return result


# ---------------------------------------------------------------------------------------------
# profile


def profile_stages(
    config_path: Path, forecast_url: str, top: int, threads: int | None
) -> dict[str, Any]:
    """One repeat in this process under cProfile: the top functions of the whole repeat."""
    shutil.rmtree(forecast_url, ignore_errors=True)
    profiler = cProfile.Profile()
    profiler.enable()
    result = timed_forecast(config_path, forecast_url, threads)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(top)
    profile_path = Path(forecast_url).with_suffix(".prof")
    stats.dump_stats(profile_path)
    tottime = io.StringIO()
    pstats.Stats(profiler, stream=tottime).sort_stats("tottime").print_stats(top)
    return {
        "seconds_profiled": result["seconds"],
        "top_cumulative": [ln for ln in stream.getvalue().splitlines() if ln.strip()],
        "top_tottime": [ln for ln in tottime.getvalue().splitlines() if ln.strip()],
        "prof_file": str(profile_path),
    }


# ---------------------------------------------------------------------------------------------
# figures


def summarise(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and best per stage, and of the per-repeat totals."""
    per_stage = {}
    for key, _ in STAGES:
        values = [r["seconds"][key] for r in repeats]
        cpu = [r["cpu_seconds"][key] for r in repeats]
        per_stage[key] = {
            "median_s": round(statistics.median(values), 3),
            "best_s": round(min(values), 3),
            "all_s": values,
            "cpu_median_s": round(statistics.median(cpu), 3),
        }
    out: dict[str, Any] = {"stages": per_stage}
    for name, keys in (("total", TOTAL), ("end_to_end", END_TO_END)):
        totals = [sum(r["seconds"][k] for k in keys) for r in repeats]
        cpu = [sum(r["cpu_seconds"][k] for k in keys) for r in repeats]
        out[name] = {
            "stages": list(keys),
            "median_s": round(statistics.median(totals), 3),
            "best_s": round(min(totals), 3),
            "all_s": [round(t, 3) for t in totals],
            "cpu_median_s": round(statistics.median(cpu), 3),
        }
    walls = [r["process_wall_s"] for r in repeats]
    out["process_wall"] = {"median_s": round(statistics.median(walls), 3), "best_s": min(walls)}
    out["target_s"] = TARGET_S
    out["meets_target"] = out["total"]["median_s"] < TARGET_S
    return out


def print_table(label: str, summary: dict[str, Any], repeats: int, toy: bool = False) -> None:
    recipe = "default recipe" + (" (--toy: a 6° box)" if toy else "")
    print(f"\n{label}: forecast of {FORECAST_DAY} 00 UTC, {recipe}, {repeats} repeats\n")
    print("| stage | median s | best s | CPU s (median) |")
    print("|---|---|---|---|")
    for key, name in STAGES:
        s = summary["stages"][key]
        print(f"| {name} | {s['median_s']:.2f} | {s['best_s']:.2f} | {s['cpu_median_s']:.2f} |")
    t, e, w = summary["total"], summary["end_to_end"], summary["process_wall"]
    verdict = "meets" if summary["meets_target"] else "MISSES"
    print(
        f"| **total** (load + IC + health + rollout + publish) | **{t['median_s']:.2f}** | "
        f"**{t['best_s']:.2f}** | {t['cpu_median_s']:.2f} |"
    )
    print(
        f"| end-to-end (+ imports + open store) | {e['median_s']:.2f} | {e['best_s']:.2f} | "
        f"{e['cpu_median_s']:.2f} |"
    )
    print(
        f"| process wall (interpreter start to exit) | {w['median_s']:.2f} | {w['best_s']:.2f} | |"
    )
    print(f"\ntotal {t['median_s']:.2f} s (median) against the {TARGET_S:.0f} s target: {verdict}")


# ---------------------------------------------------------------------------------------------
# main


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="folder to keep the data in (reused)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes, timed")
    parser.add_argument("--label", default="current", help="what this run measures")
    parser.add_argument("--profile", action="store_true", help="one more repeat under cProfile")
    parser.add_argument("--top", type=int, default=30, help="functions shown by --profile")
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="torch's intra-op threads in each repeat (default: the recipe's "
        "forecast.torch_threads, as the product runs; torch's own default when unset)",
    )
    parser.add_argument("--toy", action="store_true", help="a 6° box: a smoke run")
    parser.add_argument("--no-record", action="store_true", help="do not append the results")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON list appended to")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # config of one repeat
    parser.add_argument("--forecast-url", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.forecast_url, args.out, args.torch_threads)
        return
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")

    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="aircast-bench-forecast-") as tmp:
        folder = (args.data or Path(tmp)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        config_path, setup_info = setup(folder, args.toy)
        print("inputs ingested; timing", flush=True)
        work = folder / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        repeats = []
        for i in range(args.repeats):
            url, out = str(work / f"forecast-{i}.zarr"), work / f"{i}.json"
            result = run_repeat(config_path, url, out, args.torch_threads)
            s = result["seconds"]
            print(
                f"  repeat {i + 1}: total {sum(s[k] for k in TOTAL):.2f} s ("
                + ", ".join(f"{k} {s[k]:.2f}" for k, _ in STAGES)
                + f"; load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
            repeats.append(result)
        profile = None
        if args.profile:
            url = str(work / "forecast-profile.zarr")
            profile = profile_stages(config_path, url, args.top, args.torch_threads)
            keep = folder / "forecast_publish.prof"
            if args.data:
                shutil.copy(profile["prof_file"], keep)
            profile["prof_file"] = str(keep) if args.data else None  # else deleted with tmp
        load_end = load_average()

    summary = summarise(repeats)
    print_table(args.label, summary, args.repeats, args.toy)
    first = repeats[0]
    print(
        f"torch threads {first['torch_threads']}; {first['forward_passes']} forward passes; "
        f"run {first['run_shape']} ({first['published_mb']} MB float32); initial conditions "
        + ("healthy" if first["health_ok"] else "UNHEALTHY: " + "; ".join(first["health_problems"]))
    )
    if profile:
        print("\nprofile (one more repeat, in process), stage seconds under cProfile:")
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in profile["seconds_profiled"].items()))
        print("\n".join(profile["top_cumulative"]))
        print("\n".join(profile["top_tottime"]))
    print(f"\nload average {load_start} at start, {load_end} at end")

    record = {
        "label": args.label,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["bench/bench_forecast_publish.py", *sys.argv[1:]]),
        "forecast_day": FORECAST_DAY.isoformat(),
        "store_days": f"{FIRST_DAY}..{FIRST_DAY + dt.timedelta(days=DAYS - 1)}",
        "repeats": args.repeats,
        "torch_threads": first["torch_threads"],
        "torch_threads_set": args.torch_threads,
        "machine": machine_info(("torch", "zarr", "xarray", "numpy")),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "setup": setup_info,
        "summary": summary,
        "health_ok": first["health_ok"],
        "health_problems": first["health_problems"],
        "forward_passes": first["forward_passes"],
        "run_shape": first["run_shape"],
        "repeat_results": repeats,
        "profile": profile,
        **({"toy": True} if args.toy else {}),  # a smoke run's figures are not measurements
    }
    if not args.no_record:
        append_result(args.results, record)


if __name__ == "__main__":
    main()
