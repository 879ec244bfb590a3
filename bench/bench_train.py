"""Training throughput of AirCast's forecaster against the published AirCast / ClimaX layer
structure, and the training store loader's throughput.

Model: AirCast's :class:`aircast.model.forecaster.Forecaster` (batched variable tokenisation,
aggregation and blocks on scaled-dot-product attention) against ``climax_reference.py`` (a
Python loop of per-variable ``Conv2d`` patch embeddings, ``nn.MultiheadAttention`` for the
aggregation and in the blocks, fp32), both at the paper's "best" configuration: 20 variables,
32×64 input, patch 2, width 1024, depth 8, 32 heads; the same AirCast loss (latitude-weighted
MAE + fMAE) and AdamW with gradient clipping, the steps of ``aircast.training.loop``.

- Time: forward + backward + clip + AdamW step, warm-up steps then timed steps, the two models
  interleaved step by step in one process, so that a change in the machine's load hits both.
  The figure is the ratio of the median step times (reference / AirCast).
- Peak memory: each model trained for two steps in its own subprocess (RSS cannot be reset
  within one): the peak resident set size, and its growth over the process before the model
  was built (weights, gradients, AdamW state, activations).
- Loader: :class:`aircast.data.dataset.StoreSamples` + ``DataLoader`` over the demo's training
  store (``data/demo/store.zarr``, read per sample: ``in_memory=False``) with 0 and 2 worker
  processes: samples/s after the first batch, and the first batch's latency.

Run from the repository root (3 minutes at batch 2, 7 at batch 4, on 2 loaded CPU cores)::

    .venv/bin/python bench/bench_train.py                       # batch 2, 1 warm-up + 2 steps
    .venv/bin/python bench/bench_train.py --batch 4 --steps 3
    .venv/bin/python bench/bench_train.py --quick --no-record   # a small config: smoke test

Torch runs one thread by default: the figure is CPU time per step, which on a shared, loaded
machine measures the work, where two threads mostly measure waits for the neighbours.

Prints a table and appends the run, with the machine, to ``bench/results/train.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from climax_reference import ClimaXReference  # noqa: E402
from recording import append_result, machine_info  # noqa: E402

from aircast.model.forecaster import DiurnalMean, Forecaster, ModelShape  # noqa: E402
from aircast.model.normaliser import Normaliser  # noqa: E402
from aircast.training.losses import (  # noqa: E402
    AirCastLoss,
    FrequencyWeights,
    latitude_weights,
)

RESULTS = BENCH / "results" / "train.json"

#: 20 variables: 12 weather (surface and 850 hPa), 6 pollutants, 2 static fields
WEATHER = ("t2m", "d2m", "u10", "v10", "msl", "sp", "tp", "blh", "tcwv", "t_850", "u_850", "v_850")
POLLUTANTS = ("pm1", "pm2p5", "pm10", "go3_925", "no2_925", "so2_925")
STATIC = ("lsm", "z_sfc")
CHANNELS = WEATHER + POLLUTANTS + STATIC

BEST = {"grid": (32, 64), "patch": 2, "width": 1024, "depth": 8, "heads": 32}
QUICK = {"grid": (16, 32), "patch": 2, "width": 128, "depth": 2, "heads": 4}

Step = Callable[[], None]


def machine() -> dict[str, Any]:
    info = machine_info()
    del info["versions"]
    info.update(
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        gpu="none lent to this run (CPU only)",
    )
    return info


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    """Current resident set size, MB."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """Peak resident set size of this process image, MB.

    ``VmHWM``, not ``getrusage().ru_maxrss``: Linux carries ru_maxrss across fork and exec,
    so a probe started by a parent holding the models' 5 GB would report the parent's size.
    """
    return _status_mb("VmHWM")


def make_loss(grid: tuple[int, int]) -> AirCastLoss:
    """The training loss with a plausible heavy-tailed histogram per pollutant."""
    lat = torch.linspace(60, -60, grid[0])
    edges = torch.linspace(-4, 4, 101).repeat(len(POLLUTANTS), 1)
    centres = torch.linspace(-4.04, 4.04, 102)
    counts = (1e6 * torch.exp(-0.5 * centres**2) + 1).round().long().repeat(len(POLLUTANTS), 1)
    return AirCastLoss(
        latitude_weights(lat, 120 / grid[0]),
        len(WEATHER),
        FrequencyWeights(edges, counts, "ens"),
    )


def build(kind: str, config: dict[str, Any], batch: int, seed: int = 0) -> tuple[Step, int]:
    """One training step of model ``kind`` ('aircast' or 'reference') as a closure, and the
    model's parameter count. Both models see the same batch (normalised fields)."""
    torch.manual_seed(seed)
    grid = config["grid"]
    n_out = len(WEATHER) + len(POLLUTANTS)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, len(CHANNELS), *grid, generator=g)
    target = z[:, :n_out] + 0.1 * torch.randn(batch, n_out, *grid, generator=g)
    lead = torch.full((batch,), 12.0)
    hour = torch.full((batch,), 6.0)
    doy = torch.full((batch,), 180.0)
    model: torch.nn.Module
    if kind == "aircast":
        n = len(CHANNELS)
        norm = Normaliser(
            CHANNELS,
            torch.zeros(n),
            torch.ones(n),
            torch.zeros(n),
            torch.ones(n),
            torch.ones(n),
        )
        shape = ModelShape(config["patch"], config["width"], config["depth"], config["heads"])
        # with a diurnal climatology, as a trained model has one (its baseline is in the step)
        n_out = len(WEATHER + POLLUTANTS)
        climatology = DiurnalMean(torch.arange(0, 24, 3), torch.randn(8, n_out, *grid, generator=g))
        forecaster = Forecaster(shape, CHANNELS, WEATHER + POLLUTANTS, grid, norm, climatology)
        model = forecaster

        def forward(z: torch.Tensor, lead: torch.Tensor) -> torch.Tensor:
            return forecaster.forward_normalised(z, lead, hour, doy)

    elif kind == "reference":
        reference = ClimaXReference(
            len(CHANNELS),
            len(WEATHER),
            len(POLLUTANTS),
            grid,
            config["patch"],
            config["width"],
            config["depth"],
            config["heads"],
        )
        model = reference

        def forward(z: torch.Tensor, lead: torch.Tensor) -> torch.Tensor:
            return reference(z, lead)

    else:
        raise ValueError(kind)
    model.train()
    loss_fn = make_loss(grid)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

    def step() -> None:
        loss, _ = loss_fn(forward(z, lead), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()

    return step, sum(p.numel() for p in model.parameters())


def time_models(
    config: dict[str, Any], batch: int, warmup: int, steps: int
) -> dict[str, dict[str, Any]]:
    """Per-step wall and CPU seconds of both models, interleaved step by step."""
    built = {kind: build(kind, config, batch) for kind in ("aircast", "reference")}
    wall: dict[str, list[float]] = {kind: [] for kind in built}
    cpu: dict[str, list[float]] = {kind: [] for kind in built}
    for i in range(warmup + steps):
        for kind, (step, _) in built.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            step()
            elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
            phase = "warm-up" if i < warmup else "timed"
            print(
                f"  {kind:<9} step {i + 1}/{warmup + steps} ({phase}): {elapsed:.2f} s wall, "
                f"{elapsed_cpu:.2f} s CPU",
                flush=True,
            )
            if i >= warmup:
                wall[kind].append(elapsed)
                cpu[kind].append(elapsed_cpu)
    return {
        kind: {
            "parameters": built[kind][1],
            "step_seconds": [round(t, 3) for t in wall[kind]],
            "step_cpu_seconds": [round(t, 3) for t in cpu[kind]],
            "median_step_s": round(statistics.median(wall[kind]), 3),
            "median_step_cpu_s": round(statistics.median(cpu[kind]), 3),
            "samples_per_s": round(batch / statistics.median(wall[kind]), 4),
        }
        for kind in built
    }


def probe(kind: str, config_name: str, batch: int) -> None:
    """Subprocess body: train ``kind`` for two steps, print its memory figures as JSON."""
    config = QUICK if config_name == "quick" else BEST
    before = rss_mb()
    step, _ = build(kind, config, batch)
    built = rss_mb()
    for _ in range(2):  # the first step allocates AdamW's state; the second is a steady one
        step()
    print(
        json.dumps(
            {
                "rss_before_mb": round(before, 1),
                "rss_built_mb": round(built, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "growth_mb": round(peak_rss_mb() - before, 1),
            }
        )
    )


def memory(config_name: str, batch: int) -> dict[str, dict[str, float]]:
    out = {}
    for kind in ("aircast", "reference"):
        done = subprocess.run(
            [sys.executable, __file__, "--probe", kind, "--batch", str(batch)]
            + ["--threads", str(torch.get_num_threads())]
            + (["--quick"] if config_name == "quick" else []),
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        out[kind] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {kind:<9} peak RSS {out[kind]['peak_rss_mb']:.0f} MB", flush=True)
    return out


def loader_throughput(
    config_path: Path, workers: int, batch_size: int, max_batches: int
) -> dict[str, Any]:
    """Samples/s of StoreSamples + DataLoader over the recipe's store (read per sample)."""
    from torch.utils.data import DataLoader

    from aircast.config import load_config
    from aircast.data.dataset import Channels, StoreSamples
    from aircast.store.reader import open_store

    config = load_config(config_path)
    store = open_store(config.store_url)
    channels = Channels.of_store(store.channel_names)
    period = config.periods.train
    samples = StoreSamples(
        config.store_url,
        (period.start, period.end),
        config.training.lead_hours,
        channels,
        in_memory=False,
    )
    order = np.random.default_rng(0).permutation(len(samples))[: batch_size * max_batches]
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    loader = DataLoader(
        samples, batch_sampler=batches, num_workers=workers, collate_fn=samples.collate
    )
    started = time.perf_counter()
    first = None
    n = 0
    for batch in loader:
        if first is None:
            first = time.perf_counter()
        else:
            n += batch.size
    end = time.perf_counter()
    assert first is not None
    return {
        "workers": workers,
        "batch_size": batch_size,
        "batches": len(batches),
        "sample_shape": list(samples[0]["inputs"].shape),
        "first_batch_s": round(first - started, 3),
        "samples_per_s": round(n / (end - first), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=2, help="batch size (default: 2)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per model")
    parser.add_argument("--quick", action="store_true", help="small model: a smoke test")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: CPU time per step then measures the work, where on a "
        "shared, loaded machine two threads mostly measure waits for the neighbours)",
    )
    parser.add_argument("--probe", choices=("aircast", "reference"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--loader-config", type=Path, default=REPO / "configs" / "demo.yaml", help="recipe"
    )
    parser.add_argument("--loader-batches", type=int, default=40)
    parser.add_argument("--no-record", action="store_true", help="do not write results")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON list appended to")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config_name = "quick" if args.quick else "best"
    if args.probe:
        probe(args.probe, config_name, args.batch)
        return 0
    config = QUICK if args.quick else BEST
    load_before = os.getloadavg()
    print(f"config {config_name}: {config}, {len(CHANNELS)} variables, batch {args.batch}")
    print("timing (interleaved):", flush=True)
    timing = time_models(config, args.batch, args.warmup, args.steps)
    print("peak memory (a subprocess per model):", flush=True)
    mem = memory(config_name, args.batch)
    loader: list[dict[str, Any]] = []
    store_config = args.loader_config
    try:
        from aircast.config import load_config

        have_store = Path(load_config(store_config).store_url).is_dir()
    except Exception:
        have_store = False
    if have_store:
        print(f"loader over {store_config}'s store:", flush=True)
        for workers in (0, 2):
            loader.append(loader_throughput(store_config, workers, 16, args.loader_batches))
            print(f"  {workers} workers: {loader[-1]['samples_per_s']:.0f} samples/s", flush=True)
    else:
        print(f"no store for {store_config}: loader not measured (run `make demo` first)")
    load_after = os.getloadavg()

    a, r = timing["aircast"], timing["reference"]
    ratio = r["median_step_s"] / a["median_step_s"]
    cpu_ratio = r["median_step_cpu_s"] / a["median_step_cpu_s"]
    print()
    print(
        f"Training step, {config_name} config ({len(CHANNELS)} variables, "
        f"{config['grid'][0]}×{config['grid'][1]}, patch {config['patch']}, "
        f"width {config['width']}, depth {config['depth']}, {config['heads']} heads), "
        f"batch {args.batch}, fp32, CPU ({torch.get_num_threads()} threads):"
    )
    print()
    print(
        "| model | parameters | step s (wall, median) | step s (CPU, median) | steps s (wall) "
        "| samples/s | peak RSS MB | growth MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind, label in (("aircast", "AirCast"), ("reference", "ClimaX-structure reference")):
        t, m = timing[kind], mem[kind]
        print(
            f"| {label} | {t['parameters'] / 1e6:.1f} M | {t['median_step_s']:.2f} | "
            f"{t['median_step_cpu_s']:.2f} | {', '.join(f'{s:.2f}' for s in t['step_seconds'])} "
            f"| {t['samples_per_s']:.3f} | {m['peak_rss_mb']:.0f} | {m['growth_mb']:.0f} |"
        )
    print()
    print(f"speed-up, reference / AirCast: {cpu_ratio:.2f}x by CPU time, {ratio:.2f}x by wall time")
    mem_ratio = mem["reference"]["growth_mb"] / mem["aircast"]["growth_mb"]
    print(f"memory growth ratio (reference / AirCast): {mem_ratio:.2f}x")
    if loader:
        print()
        print("| loader workers | batch | samples/s | first batch s |")
        print("|---|---|---|---|")
        for row in loader:
            print(
                f"| {row['workers']} | {row['batch_size']} | {row['samples_per_s']:.0f} | "
                f"{row['first_batch_s']:.2f} |"
            )
    print(f"\nload average before {load_before[0]:.1f}, after {load_after[0]:.1f}")

    if not args.no_record:
        record = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "config": {"name": config_name, "variables": len(CHANNELS), **config},
            "batch": args.batch,
            "warmup": args.warmup,
            "steps": args.steps,
            "machine": machine(),
            "load_average": {"before": load_before, "after": load_after},
            "timing": timing,
            "speedup_wall": round(ratio, 3),
            "speedup_cpu": round(cpu_ratio, 3),
            "memory": mem,
            "memory_ratio": round(mem_ratio, 3),
            "loader": {"config": str(store_config), "runs": loader},
        }
        append_result(args.results, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
