"""The stages of the GPU run (``run.py`` starts each in its own process, with its own budget).

Every stage keeps a report and rewrites ``OUT/<stage>.json`` after each measurement, so a stage
killed at its budget still reports what it measured. ``dry`` runs every step at toy size on
whatever device is there (the CI's CPU).

FLOP count of one training sample (forward + backward = 3 × the forward's matrix products,
2·m·n·k each; element-wise work, norms and the optimiser not counted), ``L`` patch tokens,
``C`` input channels, width ``d``, ``depth`` blocks, MLP ratio ``r``, ``C_out`` targets,
patch ``p``: tokeniser ``2·L·C·p²·d``; aggregation ``4·L·C·d²`` (keys and values) ``+
4·L·C·d`` (one query's attention) ``+ 2·L·d²`` (output); each block ``(8 + 4r)·L·d²`` (qkv,
projection, MLP) ``+ 4·L²·d`` (attention); heads ``2·L·d·C_out·p²``. The default recipe's
model (61 × 129 padded to 62 × 130, L = 2015, C = 23, d = 128, depth 4) is 44.1 GFLOP per
sample; at the paper's size (d = 1024, depth 8) 2.21 TFLOP.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

GPU = Path(__file__).resolve().parent
BENCH = GPU.parent
REPO = BENCH.parent
for _path in (str(BENCH), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

#: the H200's bf16 dense matrix rate measured here (KINDS.md: 769-798 TFLOP/s on random data)
PEAK_BF16_TFLOPS = 790.0

#: the default recipe's channels (configs/default.yaml)
WEATHER = (
    "t2m", "d2m", "u10", "v10", "msl", "sp", "tp", "blh", "tcwv",
    "t_850", "u_850", "v_850", "q_850", "z_500",
)  # fmt: skip
POLLUTANTS = ("pm1", "pm2p5", "pm10", "go3_925", "no2_925", "so2_925", "co_925")
STATIC = ("lsm", "z_sfc")
DEFAULT_GRID = (61, 129)

#: model sizes of the model-alone stage (name → patch, width, depth, heads)
SIZES = {
    "default": (2, 128, 4, 4),
    "wider": (2, 256, 4, 8),
    "paper": (2, 1024, 8, 32),
}
DRY_SIZES = {"default": (2, 16, 1, 2), "wider": (2, 32, 1, 4), "paper": (2, 64, 2, 4)}
MODES = ("fp32", "tf32", "bf16", "bf16_compile")


class Report:
    """A stage's report, rewritten to ``OUT/<stage>.json`` at every :meth:`save`."""

    def __init__(self, out: Path, stage: str, dry: bool) -> None:
        self.path = out / f"{stage}.json"
        self.data: dict[str, Any] = {"stage": stage, "dry": dry, "done": False}
        self.started = time.perf_counter()

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.perf_counter() - self.started, 2)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str) + "\n")
        os.replace(tmp, self.path)

    def finish(self) -> None:
        self.data["done"] = True
        self.data["imported_distributions"] = imported_distributions()
        self.save()


def imported_distributions() -> list[str]:
    """The installed distributions whose modules this process imported: what must travel."""
    from importlib import metadata

    owners = metadata.packages_distributions()
    top = {name.split(".")[0] for name in list(sys.modules)}
    return sorted({d for name in top for d in owners.get(name, [])})


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronise() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# the model alone


def flops_per_sample(
    grid: tuple[int, int], shape: tuple[int, int, int, int], n_in: int, n_out: int, r: float = 4
) -> float:
    """Matrix-product FLOPs of one training sample (forward + backward): module docstring."""
    p, d, depth, _ = shape
    n_tok = math.ceil(grid[0] / p) * math.ceil(grid[1] / p)
    tokeniser = 2 * n_tok * n_in * p * p * d
    aggregation = 4 * n_tok * n_in * d * d + 4 * n_tok * n_in * d + 2 * n_tok * d * d
    block = (8 + 4 * r) * n_tok * d * d + 4 * n_tok * n_tok * d
    heads = 2 * n_tok * d * n_out * p * p
    return 3.0 * (tokeniser + aggregation + depth * block + heads)


def make_loss(grid: tuple[int, int], n_weather: int, n_pollutants: int, resolution: float) -> Any:
    """The training loss (latitude-weighted MAE + inverse-log fMAE), a plausible histogram."""
    from aircast.training.losses import AirCastLoss, FrequencyWeights, latitude_weights

    lat = torch.linspace(45.0, 0.0, grid[0], dtype=torch.float64)
    edges = torch.linspace(-4, 4, 101).repeat(n_pollutants, 1)
    centres = torch.linspace(-4.04, 4.04, 102)
    counts = (1e6 * torch.exp(-0.5 * centres**2) + 1).round().long().repeat(n_pollutants, 1)
    weights = FrequencyWeights(edges, counts, "inverse_log")
    return AirCastLoss(latitude_weights(lat, resolution), n_weather, weights)


@dataclasses.dataclass
class Problem:
    """A model, its loss, optimiser and one batch on the device: a training step's parts."""

    model: torch.nn.Module
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    loss_fn: torch.nn.Module
    optimiser: torch.optim.Optimizer
    z: torch.Tensor
    target: torch.Tensor
    lead: torch.Tensor
    parameters: int


def aircast_problem(
    channels: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]],
    grid: tuple[int, int],
    shape: tuple[int, int, int, int],
    batch: int,
    dev: torch.device,
    resolution: float = 0.75,
    seed: int = 0,
) -> Problem:
    """AirCast's forecaster (with a diurnal climatology, as a trained one has) on ``dev``."""
    from aircast.model.forecaster import DiurnalMean, Forecaster, ModelShape
    from aircast.model.normaliser import Normaliser

    weather, pollutants, static = channels
    inputs, targets = weather + pollutants + static, weather + pollutants
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    n = len(inputs)
    ones, zeros = torch.ones(n), torch.zeros(n)
    norm = Normaliser(inputs, zeros, ones, zeros, ones, ones)
    climatology = DiurnalMean(
        torch.arange(0, 24, 3), torch.randn(8, len(targets), *grid, generator=g)
    )
    model = Forecaster(ModelShape(*shape), inputs, targets, grid, norm, climatology).to(dev)
    hour = torch.full((batch,), 6.0, device=dev)
    doy = torch.full((batch,), 180.0, device=dev)

    def forward(z: torch.Tensor, lead: torch.Tensor) -> torch.Tensor:
        return model.forward_normalised(z, lead, hour, doy)

    channel_counts = (len(inputs), weather, pollutants)
    return _problem(model, forward, channel_counts, grid, batch, dev, resolution, g)


def reference_problem(
    channels: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]],
    grid: tuple[int, int],
    shape: tuple[int, int, int, int],
    batch: int,
    dev: torch.device,
    seed: int = 0,
) -> Problem:
    """The ClimaX-structure reference (``bench/climax_reference.py``) on ``dev``."""
    from climax_reference import ClimaXReference

    weather, pollutants, static = channels
    p, width, depth, heads = shape
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    n_in = len(weather + pollutants + static)
    model = ClimaXReference(n_in, len(weather), len(pollutants), grid, p, width, depth, heads).to(
        dev
    )

    def forward(z: torch.Tensor, lead: torch.Tensor) -> torch.Tensor:
        return model(z, lead)

    channel_counts = (n_in, weather, pollutants)
    return _problem(model, forward, channel_counts, grid, batch, dev, 120 / grid[0], g)


def _problem(
    model: torch.nn.Module,
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    channel_counts: tuple[int, tuple[str, ...], tuple[str, ...]],
    grid: tuple[int, int],
    batch: int,
    dev: torch.device,
    resolution: float,
    g: torch.Generator,
) -> Problem:
    n_in, weather, pollutants = channel_counts
    n_out = len(weather) + len(pollutants)
    z = torch.randn(batch, n_in, *grid, generator=g)
    target = z[:, :n_out] + 0.1 * torch.randn(batch, n_out, *grid, generator=g)
    model.train()
    return Problem(
        model,
        forward,
        make_loss(grid, len(weather), len(pollutants), resolution).to(dev),
        torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05),
        z.to(dev),
        target.to(dev),
        torch.full((batch,), 12.0, device=dev),
        sum(p.numel() for p in model.parameters()),
    )


def set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def step_function(problem: Problem, mode: str, dry: bool) -> Callable[[], torch.Tensor]:
    """One training step in ``mode``: forward (autocast for bf16), loss in fp32, backward,
    clip, AdamW, as ``aircast.training.loop`` steps. Returns the loss (not synchronised)."""
    dev = problem.z.device
    bf16 = mode.startswith("bf16")
    forward = problem.forward
    if mode == "bf16_compile":
        # on the CPU dry run, dynamo alone: inductor's C++ build would take the test minutes
        forward = torch.compile(forward, backend="eager" if dry else "inductor")
    params = list(problem.model.parameters())

    def step() -> torch.Tensor:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = forward(problem.z, problem.lead)
        loss, _ = problem.loss_fn(out.float(), problem.target)
        problem.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        problem.optimiser.step()
        return loss.detach()

    return step


def time_steps(
    step: Callable[[], torch.Tensor], warmup: int, steps: int, max_s: float
) -> dict[str, Any]:
    """Warm-up steps, then timed ones (CUDA events on a GPU), stopping early past ``max_s``."""
    began = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronise()
    warm_s = time.perf_counter() - began
    times: list[float] = []
    for _ in range(steps):
        if torch.cuda.is_available():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        if time.perf_counter() - began > max_s:
            break
    return {"warmup_s": round(warm_s, 3), "step_s": [round(t, 5) for t in times]}


def peak_memory_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib() -> float | None:
    return (
        round(torch.cuda.max_memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None
    )


def bf16_against_fp32(problem: Problem) -> dict[str, float]:
    """One batch, the same weights: loss difference and gradient cosine, bf16 vs fp32."""
    set_tf32(False)
    results = {}
    grads = {}
    dev = problem.z.device
    for name, bf16 in (("fp32", False), ("bf16", True)):
        problem.model.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = problem.forward(problem.z, problem.lead)
        loss, _ = problem.loss_fn(out.float(), problem.target)
        loss.backward()
        results[name] = float(loss)
        grads[name] = torch.cat(
            [p.grad.flatten().double() for p in problem.model.parameters() if p.grad is not None]
        )
    cosine = torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0)
    problem.model.zero_grad(set_to_none=True)
    return {
        "loss_fp32": results["fp32"],
        "loss_bf16": results["bf16"],
        "loss_relative_difference": abs(results["bf16"] - results["fp32"]) / abs(results["fp32"]),
        "gradient_cosine": float(cosine),
    }


def measure_case(
    problem: Problem, mode: str, flops: float, batch: int, dry: bool, timing: tuple[int, int, float]
) -> dict[str, Any]:
    """Time one (model, mode, batch) case; samples/s, TFLOP/s, MFU, peak memory."""
    set_tf32(mode != "fp32")
    peak_memory_reset()
    step = step_function(problem, mode, dry)
    warmup, steps, max_s = timing
    timed = time_steps(
        step, warmup + (2 if mode == "bf16_compile" and not dry else 0), steps, max_s
    )
    median = statistics.median(timed["step_s"])
    tflops = flops * batch / median / 1e12
    return {
        "mode": mode,
        "batch": batch,
        **timed,
        "median_step_s": round(median, 5),
        "samples_per_s": round(batch / median, 2),
        "tflops": round(tflops, 3),
        "mfu": round(tflops / PEAK_BF16_TFLOPS, 4),
        "peak_memory_gib": peak_memory_gib(),
    }


def stage_model(out: Path, dry: bool) -> None:
    """1. The model alone: three sizes × four modes × two batch sizes on the default grid."""
    report = Report(out, "model", dry)
    dev = device()
    channels = (WEATHER, POLLUTANTS, STATIC)
    grid = (8, 12) if dry else DEFAULT_GRID
    sizes = DRY_SIZES if dry else SIZES
    batches = (1, 2) if dry else (8, 32)
    timing = (1, 1, 5.0) if dry else (3, 10, 4.0)
    n_in, n_out = len(WEATHER + POLLUTANTS + STATIC), len(WEATHER + POLLUTANTS)
    report.data.update(
        device=str(dev),
        grid=grid,
        channels={"inputs": n_in, "targets": n_out},
        peak_bf16_tflops=PEAK_BF16_TFLOPS,
        flop_count="3 × forward matrix products per sample (bench/gpu/stages.py docstring)",
        sizes={},
        cases=[],
        bf16_vs_fp32={},
    )
    for name, shape in sizes.items():
        flops = flops_per_sample(grid, shape, n_in, n_out)
        report.data["sizes"][name] = {
            "patch_width_depth_heads": shape,
            "gflop_per_sample": round(flops / 1e9, 3),
        }
        report.save()
    # the compiled cases last: a budget cut loses those, not the plain ones
    order = [(m, n, b) for m in MODES if m != "bf16_compile" for n in sizes for b in batches]
    order += [("bf16_compile", n, b) for n in sizes for b in batches]
    problems: dict[tuple[str, int], Problem] = {}
    for mode, name, batch in order:
        key = (name, batch)
        if key not in problems:
            problems.clear()  # one model on the GPU at a time
            peak_memory_reset()
            problems[key] = aircast_problem(channels, grid, sizes[name], batch, dev)
            report.data["sizes"][name]["parameters"] = problems[key].parameters
            if batch == batches[0] and name not in report.data["bf16_vs_fp32"]:
                report.data["bf16_vs_fp32"][name] = bf16_against_fp32(problems[key])
        flops = report.data["sizes"][name]["gflop_per_sample"] * 1e9
        try:
            case = measure_case(problems[key], mode, flops, batch, dry, timing)
        except Exception as exc:  # e.g. out of memory: recorded, the other cases still run
            case = {"mode": mode, "batch": batch, "error": f"{type(exc).__name__}: {exc}"[:500]}
        case["size"] = name
        report.data["cases"].append(case)
        report.save()
        print(f"  model {name} {mode} batch {batch}: {case.get('samples_per_s')} samples/s, "
              f"{case.get('tflops')} TFLOP/s", flush=True)  # fmt: skip
    report.finish()


# ---------------------------------------------------------------------------------------------
# against the published structure

#: the paper's "best" configuration (bench_train.BEST): 20 variables, 32×64, patch 2
REFERENCE_GRID = (32, 64)
REFERENCE_SHAPE = (2, 1024, 8, 32)
REFERENCE_CHANNELS = (
    ("t2m", "d2m", "u10", "v10", "msl", "sp", "tp", "blh", "tcwv", "t_850", "u_850", "v_850"),
    ("pm1", "pm2p5", "pm10", "go3_925", "no2_925", "so2_925"),
    ("lsm", "z_sfc"),
)


def stage_reference(out: Path, dry: bool) -> None:
    """2. AirCast's model against the ClimaX-structure reference, the paper's best config."""
    report = Report(out, "reference", dry)
    dev = device()
    grid = (8, 16) if dry else REFERENCE_GRID
    shape = (2, 32, 1, 4) if dry else REFERENCE_SHAPE
    batch = 2 if dry else 16
    timing = (1, 1, 5.0) if dry else (3, 10, 6.0)
    n_in = sum(len(c) for c in REFERENCE_CHANNELS)
    n_out = n_in - len(REFERENCE_CHANNELS[2])
    flops = flops_per_sample(grid, shape, n_in, n_out)
    report.data.update(
        device=str(dev), grid=grid, shape=shape, batch=batch, variables=n_in,
        gflop_per_sample=round(flops / 1e9, 3), cases={},
    )  # fmt: skip
    cases = (("aircast", "bf16"), ("reference", "fp32"), ("reference", "bf16"), ("aircast", "fp32"))
    for kind, mode in cases:
        make = aircast_problem if kind == "aircast" else reference_problem
        peak_memory_reset()
        problem = make(REFERENCE_CHANNELS, grid, shape, batch, dev)
        try:
            case = measure_case(problem, mode, flops, batch, dry, timing)
        except Exception as exc:
            case = {"mode": mode, "error": f"{type(exc).__name__}: {exc}"[:500]}
        case["parameters"] = problem.parameters
        report.data["cases"][f"{kind}_{mode}"] = case
        del problem
        report.save()
        print(f"  {kind} {mode}: {case.get('samples_per_s')} samples/s", flush=True)
    c = report.data["cases"]

    def ratio(a: str, b: str) -> float | None:
        if "samples_per_s" in c.get(a, {}) and "samples_per_s" in c.get(b, {}):
            return round(c[a]["samples_per_s"] / c[b]["samples_per_s"], 3)
        return None

    report.data["speedups"] = {
        "aircast_bf16_over_reference_fp32": ratio("aircast_bf16", "reference_fp32"),
        "aircast_bf16_over_reference_bf16": ratio("aircast_bf16", "reference_bf16"),
        "aircast_fp32_over_reference_fp32": ratio("aircast_fp32", "reference_fp32"),
    }
    report.data["targets"] = {
        "aircast_bf16_over_reference_fp32": ">= 3",
        "aircast_bf16_over_reference_bf16": ">= 1.5",
        "mfu_at_paper_size": ">= 0.40 (model.json, size 'paper', bf16 or bf16_compile)",
    }
    report.finish()


# ---------------------------------------------------------------------------------------------
# the real loop


def recipe_data(recipe: Path) -> dict[str, Any]:
    """A recipe with a relative ``paths.root`` resolved against the recipe's folder."""
    import yaml

    data: dict[str, Any] = yaml.safe_load(recipe.read_text())
    root = Path(data["paths"]["root"])
    if not root.is_absolute():
        data["paths"]["root"] = str((recipe.parent / root).resolve())
    return data


@dataclasses.dataclass
class Timeline:
    """When each training batch reached the loop: per-step wall time, loader waits included."""

    stamps: list[float] = dataclasses.field(default_factory=list)


def stage_loop(out: Path, dry: bool, recipe: Path) -> None:
    """3. ``train()`` on the store in bf16 (autocast on a GPU): in memory, and from Zarr by
    worker processes; the loader alone; then the 72 h rollout and publish."""
    from torch.utils.data import DataLoader

    from aircast.config import parse_config
    from aircast.data.dataset import Channels, StoreSamples
    from aircast.store.reader import open_store
    from aircast.training import loop

    report = Report(out, "loop", dry)
    base = recipe_data(recipe)
    batch = 4 if dry else 16
    steps = (3, 6) if dry else (10, 60)
    workers = 2 if dry else 8
    report.data.update(recipe=str(recipe), batch=batch, runs=[], loader=[])
    timeline = Timeline()
    batches = loop._batches

    def stamped(*args: Any) -> Iterator[Any]:
        for b in batches(*args):
            timeline.stamps.append(time.perf_counter())
            yield b

    loop._batches = stamped  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="aircast-gpu-loop-") as tmp:
        for in_memory, n_workers in ((True, 0), (False, workers)):
            data = copy.deepcopy(base)
            data["training"] = {
                **data.get("training", {}),
                "batch_size": batch, "epochs": 1000, "in_memory": in_memory,
                "num_workers": n_workers, "checkpoint_every_steps": 10**6, "device": "auto",
            }  # fmt: skip
            config = parse_config(data, str(recipe))
            timeline.stamps.clear()
            began = time.perf_counter()
            result = loop.train(
                config, out_dir=Path(tmp) / "ckpt", resume=False, max_steps=steps[1]
            )
            whole = time.perf_counter() - began
            gaps = np.diff(timeline.stamps[steps[0] :]) if len(timeline.stamps) > steps[0] else []
            steady = batch / float(np.median(gaps)) if len(gaps) else None
            run = {
                "in_memory": in_memory,
                "num_workers": n_workers,
                "steps": result.steps,
                "epochs_ended": result.epochs,
                "whole_train_call_s": round(whole, 2),
                "loop_samples_per_s": round(result.samples_per_second, 2),
                "steady_samples_per_s": None if steady is None else round(steady, 2),
                "steady_from_step": steps[0],
                "autocast_bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
                "peak_memory_gib": peak_memory_gib(),
            }
            report.data["runs"].append(run)
            report.save()
            print(f"  train in_memory={in_memory} workers={n_workers}: {run}", flush=True)
        config = parse_config(base, str(recipe))
        store = open_store(config.store_url)
        channels = Channels.of_store(store.channel_names)
        period = config.periods.train
        samples = StoreSamples(
            config.store_url, (period.start, period.end), config.training.lead_hours, channels
        )
        for n_workers in (0, workers):
            order = np.random.default_rng(0).permutation(len(samples))
            chunks = [order[i : i + batch].tolist() for i in range(0, len(order), batch)]
            loader = DataLoader(
                samples, batch_sampler=chunks, num_workers=n_workers, collate_fn=samples.collate
            )
            first = None
            n = 0
            t0 = time.perf_counter()
            for b in loader:
                if first is None:
                    first = time.perf_counter()
                else:
                    n += b.size
            end = time.perf_counter()
            rate = n / (end - first) if first is not None and end > first else None
            report.data["loader"].append({
                "num_workers": n_workers, "samples": len(samples),
                "first_batch_s": None if first is None else round(first - t0, 3),
                "samples_per_s": None if rate is None else round(rate, 1),
            })  # fmt: skip
            report.save()
    loop._batches = batches  # type: ignore[assignment]
    gpu_rate = report.data["runs"][0]["steady_samples_per_s"]
    loader_rate = report.data["loader"][-1]["samples_per_s"]
    report.data["loader_over_consumption"] = (
        round(loader_rate / gpu_rate, 2) if gpu_rate and loader_rate else None
    )
    report.data["loader_target"] = ">= 2 (zarr loader with workers / in-memory steady rate)"
    report.finish()


def stage_forecast(out: Path, dry: bool, recipe: Path) -> None:
    """The 72 h rollout and publish of one day, the model on the device.

    The initial state is the store's own 00 UTC state of the test period's last day: the
    carried store has no CAMS runs (59 MiB), and decoding them is CPU work timed by
    ``bench_forecast_publish.py``. ``aircast.forecast.daily`` is not imported, as it imports
    the GRIB and NetCDF decoders (60 MiB of wheels); its ``make_forecast`` is, as here, the
    initial state at lead 0 and then :func:`aircast.forecast.rollout.rollout`. The rollout
    runs on the CPU too, and the two are compared.
    """
    from bench_forecast_publish import write_checkpoint

    from aircast.config import parse_config
    from aircast.data.batch import Batch
    from aircast.forecast.publish import ForecastRun, publish_forecast
    from aircast.forecast.rollout import rollout
    from aircast.store.reader import open_store
    from aircast.training.checkpoint import load_checkpoint, load_forecaster

    report = Report(out, "forecast", dry)
    config = parse_config(recipe_data(recipe), str(recipe))
    lead_hours = 72
    dev = device()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(key: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[key] = round(now - clock, 4)
        clock = now
        report.data["seconds"] = seconds
        report.save()

    store = open_store(config.store_url)
    day = config.periods.test.end
    path, _ = write_checkpoint(config)  # untrained: the weights' values do not change the time
    lap("write_checkpoint")
    ckpt = load_checkpoint(path)
    model = load_forecaster(ckpt, store)
    leads = ckpt.meta.recipe.get("training", {}).get("lead_hours") or [24]
    direct_hours = min(int(max(leads)), lead_hours)
    lap("load_model")
    init = np.datetime64(dt.datetime.combine(day, dt.time()), "ns")
    state = np.asarray(store.read(init).values, dtype=np.float32).reshape(
        len(store.channel_names), *store.grid.shape
    )
    lap("initial_state_from_store")
    batch = Batch(
        inputs=torch.from_numpy(state[None]).float(),
        lead_hours=torch.zeros(1),
        init_time=np.array([init], dtype="datetime64[ns]"),
        grid=store.grid,
        input_channels=store.channel_names,
        target_channels=model.target_channels,
    )
    lead_list = tuple(range(0, lead_hours + 1, 3))

    def roll(on: torch.device) -> np.ndarray:
        values = np.empty((len(lead_list), len(model.target_channels), *state.shape[1:]), "f4")
        values[0] = state[model.target_index.tolist()]
        with torch.inference_mode():
            steps = rollout(
                model.to(on), batch.to(on), max_lead_hours=lead_hours, direct_hours=direct_hours
            )
            for lead, prediction in steps:
                values[lead // 3] = prediction.values[0].float().cpu().numpy()
        synchronise()
        return values

    cpu_values = roll(torch.device("cpu"))
    lap("rollout_cpu")
    for key in ("rollout_on_device_first", "rollout_on_device"):  # the first warms up
        device_values = roll(dev)
        lap(key)
    run = ForecastRun(
        init_time=init,
        lead_hours=lead_list,
        channels=model.target_channels,
        values=device_values,
        latitudes=np.asarray(store.ds["latitude"].values),
        longitudes=np.asarray(store.ds["longitude"].values),
        provenance={
            "checkpoint_sha256": ckpt.sha256,
            "input_request_ids": [],
            "input_source": f"the training store's state at {init} (GPU bench)",
        },
    )
    with tempfile.TemporaryDirectory(prefix="aircast-gpu-forecast-") as tmp:
        published = publish_forecast(str(Path(tmp) / "forecast.zarr"), run)
        lap("publish_new_store")
    report.data.update(
        device=str(dev),
        day=str(day),
        lead_hours=lead_hours,
        forward_passes=len(lead_list) - 1,
        cpu_torch_threads=torch.get_num_threads(),
        publish_outcome=published.outcome,
        device_vs_cpu_max_abs_difference=float(np.nanmax(np.abs(device_values - cpu_values))),
        rollout_and_publish_s=round(seconds["rollout_on_device"] + seconds["publish_new_store"], 3),
        target_s=10.0,
    )
    report.finish()


# ---------------------------------------------------------------------------------------------
# distributed


def stage_distributed(out: Path, dry: bool, recipe: Path, budget_s: float) -> None:
    """4. torchrun, two ranks on one device over gloo: equal steps, gradient norms and
    weights; rank 0 alone writes; a second call resumes from ``last.ckpt``."""
    import subprocess

    report = Report(out, "distributed", dry)
    steps = 2 if dry else 4
    with tempfile.TemporaryDirectory(prefix="aircast-gpu-ddp-") as tmp:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            str(GPU / "ddp_smoke.py"), str(recipe), tmp, str(steps),
        ]  # fmt: skip
        report.data["command"] = " ".join(command)
        report.save()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=budget_s, cwd=REPO
        )
        report.data["returncode"] = done.returncode
        if done.returncode != 0:
            report.data["output_tail"] = (done.stdout + done.stderr)[-3000:]
            report.save()
            raise SystemExit(f"the torchrun smoke failed:\n{report.data['output_tail']}")
        ranks = [json.loads((Path(tmp) / f"rank{r}.json").read_text()) for r in (0, 1)]
    a, b = ranks
    norms_a = np.array(a["grad_norms"])
    norms_b = np.array(b["grad_norms"])
    report.data.update(
        ranks=ranks,
        checks={
            "devices": [a["device"], b["device"]],
            "equal_steps": a["steps"] == b["steps"] == [steps, 2 * steps],
            "grad_norms_identical": bool(np.array_equal(norms_a, norms_b)),
            "grad_norm_max_abs_difference": float(np.max(np.abs(norms_a - norms_b))),
            "weights_identical": a["weights"] == b["weights"],
            "only_rank0_writes": bool(a["writes"]) and not b["writes"],
            "resumed_from_step": [a["resumed_from"], b["resumed_from"]],
            "resume_ok": a["resumed_from"] == b["resumed_from"] == steps,
        },
    )
    report.data["passed"] = (
        all(
            report.data["checks"][k]
            for k in (
                "equal_steps",
                "grad_norms_identical",
                "weights_identical",
                "only_rank0_writes",
            )
        )
        and report.data["checks"]["resume_ok"]
    )
    report.finish()


def stage_env(out: Path, dry: bool) -> None:
    """The environment: Python, torch, CUDA, the device, the packages the run needs."""
    from recording import machine_info

    report = Report(out, "env", dry)
    info = machine_info(("torch", "numpy", "xarray", "zarr", "numcodecs", "pydantic", "dask"))
    info["torch"] = torch.__version__
    info["cuda_available"] = torch.cuda.is_available()
    info["torch_cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_count=torch.cuda.device_count(),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            capability=f"{props.major}.{props.minor}",
            bf16_supported=torch.cuda.is_bf16_supported(),
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        info["gpu"] = "none (CPU dry run)" if dry else "none"
    report.data["machine"] = info
    # what the later stages import: a missing wheel fails here, named, not in a later stage
    import aircast.forecast.publish
    import aircast.forecast.rollout
    import aircast.training.loop  # noqa: F401

    report.finish()
