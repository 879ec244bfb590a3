"""The GPU run's dry mode (``bench/gpu/run.sh --dry``): every stage at toy size on the CPU, so
that nothing in the one GPU call can fail for a reason a CPU would have shown.

The figures are not checked (a toy run's timings mean nothing); what is checked is that each
stage ran to its end and wrote the report the GPU run's reader (bench/RESULTS.md) expects,
and, for the distributed smoke, the checks it exists for.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aircast.testing import single_thread_env

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "gpu" / "run.sh"


@pytest.fixture
def recipe(tiny_recipe: Path, tmp_path: Path) -> Path:
    """A copy of the tiny store and its recipe: the forecast stage writes a checkpoint into the
    recipe's root, which must not land in the session's shared one."""
    data = yaml.safe_load(tiny_recipe.read_text())
    root = tmp_path / "tiny"
    shutil.copytree(Path(data["paths"]["root"]) / "store.zarr", root / "store.zarr")
    data["paths"]["root"] = "tiny"  # relative: resolved against the recipe's folder
    data.pop("store", None)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def dry_run(recipe: Path, out: Path, stages: str) -> dict[str, Any]:
    env = single_thread_env() | {
        "PYTHON": sys.executable,
        "OUT": str(out),
        "CARRY": str(out / "no-carry"),  # no wheels: the environment as it is
    }
    command = ["bash", str(RUN), "--dry", "--recipe", str(recipe), "--stages", stages]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert (out / "log.txt").is_file()
    record: dict[str, Any] = json.loads((out / "record.json").read_text())
    assert record["dry"] is True and list(record["stages"]) == stages.split(",")
    for stage, report in record["stages"].items():
        assert report["done"] is True and report["returncode"] == 0, stage
    return record


@pytest.mark.timeout(300)
def test_dry_run_of_every_single_process_stage(recipe: Path, tmp_path: Path) -> None:
    record = dry_run(recipe, tmp_path / "out", "env,model,reference,loop,forecast")
    stages = record["stages"]
    assert stages["env"]["machine"]["cuda_available"] is False
    model = stages["model"]
    assert {c["size"] for c in model["cases"]} == {"default", "wider", "paper"}
    assert {c["mode"] for c in model["cases"]} == {"fp32", "tf32", "bf16", "bf16_compile"}
    assert len(model["cases"]) == 24 and all("error" not in c for c in model["cases"])
    assert all(c["samples_per_s"] > 0 and c["mfu"] >= 0 for c in model["cases"])
    for comparison in model["bf16_vs_fp32"].values():
        assert comparison["gradient_cosine"] > 0.99
    assert set(stages["reference"]["cases"]) == {
        "aircast_bf16",
        "reference_fp32",
        "reference_bf16",
        "aircast_fp32",
    }
    assert all(v is not None for v in stages["reference"]["speedups"].values())
    loop = stages["loop"]
    assert [(r["in_memory"], r["num_workers"]) for r in loop["runs"]] == [(True, 0), (False, 2)]
    assert all(r["steps"] == 6 and r["steady_samples_per_s"] for r in loop["runs"])
    assert [r["num_workers"] for r in loop["loader"]] == [0, 2]
    forecast = stages["forecast"]
    assert forecast["publish_outcome"] == "published" and forecast["forward_passes"] == 24
    assert forecast["device_vs_cpu_max_abs_difference"] == 0.0  # the same CPU twice


def test_the_flop_count_is_the_issues() -> None:
    """≈ 44 GFLOP per training sample for the default model, ≈ 2.2 TFLOP at the paper's
    size (issue 14), on the default grid (61 × 129, 23 inputs, 21 targets)."""
    sys.path.insert(0, str(REPO / "bench" / "gpu"))
    try:
        from stages import DEFAULT_GRID, SIZES, flops_per_sample
    finally:
        sys.path.remove(str(REPO / "bench" / "gpu"))
    default = flops_per_sample(DEFAULT_GRID, SIZES["default"], 23, 21)
    paper = flops_per_sample(DEFAULT_GRID, SIZES["paper"], 23, 21)
    assert default == pytest.approx(44.1e9, rel=0.01)
    assert paper == pytest.approx(2.21e12, rel=0.01)
    assert flops_per_sample(DEFAULT_GRID, SIZES["wider"], 23, 21) > default


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dry_run_of_the_torchrun_smoke(recipe: Path, tmp_path: Path) -> None:
    """Two torchrun ranks on one device over gloo: the checks the GPU run makes all pass."""
    record = dry_run(recipe, tmp_path / "out", "distributed")
    checks = record["stages"]["distributed"]["checks"]
    assert record["stages"]["distributed"]["passed"] is True
    assert checks["devices"] == ["cpu", "cpu"]
    assert checks["grad_norms_identical"] and checks["weights_identical"]
    assert checks["only_rank0_writes"] and checks["resume_ok"]
