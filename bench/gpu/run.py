"""The GPU run: every stage of issue 14 in its own process, with its own time budget.

Started on the device machine by ``bench/gpu/run.sh`` (which installs the carried wheels
first); on a CPU with ``--dry`` every step runs at toy size (the CI test). Each stage writes
``OUT/<stage>.json`` as it goes, so a stage cut short at its budget still reports; at the end
``OUT/record.json`` holds them all with the machine, the record ``--append`` adds to
``bench/results/gpu.json``.

Stages and budgets (GPU; 465 s in all, inside the 8 minutes the issue allows):

====================  ======  ==================================================================
stage                 budget  what
====================  ======  ==================================================================
env                   20 s    Python, torch, CUDA, the device; the aircast imports
model                 200 s   3 sizes × fp32 / TF32 / bf16 / bf16 + torch.compile × 2 batches
reference             60 s    AirCast vs ClimaX-structure reference, paper's best config
loop                  75 s    ``train()`` in memory and from Zarr with workers; the loader alone
forecast              40 s    72 h rollout on the device + publish of one day
distributed           70 s    torchrun, 2 ranks on one device over gloo, resume
====================  ======  ==================================================================
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GPU = Path(__file__).resolve().parent
REPO = GPU.parents[1]
sys.path.insert(0, str(GPU.parent))
sys.path.insert(0, str(GPU))

BUDGETS_S = {
    "env": 20,
    "model": 200,
    "reference": 60,
    "loop": 75,
    "forecast": 40,
    "distributed": 70,
}
DRY_BUDGET_S = 120  # per stage: a toy stage takes seconds; the CI test's own timeout is lower
DEFAULT_RECIPE = REPO / ".carry" / "default" / "recipe.yaml"


def run_stage(stage: str, args: argparse.Namespace, recipe: Path) -> dict[str, Any]:
    """``run.py --stage STAGE`` in a process group of its own, killed at its budget."""
    budget = DRY_BUDGET_S if args.dry else BUDGETS_S[stage]
    command = [sys.executable, str(Path(__file__)), "--stage", stage, "--out", str(args.out)]
    command += ["--recipe", str(recipe), "--budget", str(budget)] + (["--dry"] if args.dry else [])
    began = time.perf_counter()
    print(f"== {stage} (budget {budget} s)", flush=True)
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True)
    try:
        returncode: int | str = process.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        returncode = "killed at its budget"
    took = round(time.perf_counter() - began, 1)
    path = args.out / f"{stage}.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"stage": stage}
    report.update(returncode=returncode, wall_s=took, budget_s=budget)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"== {stage}: {returncode} after {took} s", flush=True)
    return report


def dry_data(folder: Path) -> Path:
    """The tiny recipe, its store and a few-step checkpoint (``aircast.testing``), built from
    the embedded sandbox into ``folder`` unless there already: the dry run's recipe."""
    from aircast.testing import ensure_tiny_store

    return ensure_tiny_store(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="every step at toy size (CPU)")
    parser.add_argument("--out", type=Path, help="where the JSON goes (default $OUT)")
    parser.add_argument("--recipe", type=Path, help="the store's recipe (default: the carried)")
    parser.add_argument("--dry-data", type=Path, help="--dry: folder of the tiny store (kept)")
    parser.add_argument("--stages", default=",".join(BUDGETS_S), help="comma-separated")
    parser.add_argument("--append", type=Path, help="append this record.json to --results")
    parser.add_argument("--results", type=Path, default=GPU.parent / "results" / "gpu.json")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.append:
        from recording import append_result

        append_result(args.results, json.loads(args.append.read_text()))
        return 0
    if args.out is None:
        if "OUT" not in os.environ:
            parser.error("say where the results go: --out DIR, or set OUT")
        args.out = Path(os.environ["OUT"])
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage:
        return stage_main(args)
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(BUDGETS_S)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}: choose from {list(BUDGETS_S)}")
    recipe = args.recipe
    if recipe is None:
        if args.dry:
            folder = args.dry_data or Path(tempfile.mkdtemp(prefix="aircast-gpu-dry-"))
            recipe = dry_data(folder)
        else:
            recipe = DEFAULT_RECIPE
    if not recipe.is_file():
        parser.error(f"no recipe at {recipe}: run `python bench/gpu/make_carry.py` first")
    began = time.perf_counter()
    reports = {stage: run_stage(stage, args, recipe.resolve()) for stage in stages}
    record = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "dry": args.dry,
        "recipe": str(recipe),
        "machine": reports.get("env", {}).get("machine"),
        "wall_s": round(time.perf_counter() - began, 1),
        "stages": reports,
    }
    (args.out / "record.json").write_text(json.dumps(record, indent=1) + "\n")
    failed = [s for s, r in reports.items() if r.get("returncode") != 0]
    print(f"total {record['wall_s']} s; stages not finished: {failed or 'none'}", flush=True)
    return 1 if failed else 0


def stage_main(args: argparse.Namespace) -> int:
    """One stage, in this process (started by :func:`run_stage`)."""
    import stages

    if args.dry:
        import torch

        torch.set_num_threads(1)
    if args.stage == "env":
        stages.stage_env(args.out, args.dry)
    elif args.stage == "model":
        stages.stage_model(args.out, args.dry)
    elif args.stage == "reference":
        stages.stage_reference(args.out, args.dry)
    elif args.stage == "loop":
        stages.stage_loop(args.out, args.dry, args.recipe)
    elif args.stage == "forecast":
        stages.stage_forecast(args.out, args.dry, args.recipe)
    elif args.stage == "distributed":
        stages.stage_distributed(args.out, args.dry, args.recipe, args.budget - 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
