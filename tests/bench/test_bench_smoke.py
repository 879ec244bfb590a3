"""Every benchmark's main path at toy size: it runs to its end, prints its table and appends its
record to a file of the test's own (never to ``bench/results``).

Each bench runs as a person runs it, ``python bench/NAME.py`` in a fresh process, with the
smallest options it offers (``--toy`` where the recipe or the region would otherwise take
minutes). The figures are not checked: tests never assert on wall time, and a toy run's figures
mean nothing. anemoi-datasets is never installed here: the store bench must say so and measure
AirCast alone.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aircast.testing import TinyEvaluation, single_thread_env, snapshot

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(autouse=True)
def results_untouched() -> Any:
    """No bench run by a test writes into ``bench/results``."""
    before = snapshot(BENCH / "results")
    yield
    assert snapshot(BENCH / "results") == before, "a smoke run wrote into bench/results"


def run_bench(script: str, *args: str | Path, cwd: Path) -> str:
    """``python bench/SCRIPT ARGS`` in ``cwd`` (single-threaded); its standard output."""
    command = [sys.executable, str(BENCH / script), *map(str, args)]
    done = subprocess.run(
        command, cwd=cwd, env=single_thread_env(), capture_output=True, text=True, timeout=540
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def records(path: Path) -> list[dict[str, Any]]:
    """The JSON list a bench appended to."""
    history: list[dict[str, Any]] = json.loads(path.read_text())
    return history


def test_products_encode(tmp_path: Path) -> None:
    out = run_bench("products_encode.py", "--toy", cwd=tmp_path)
    assert "| product | best s | median s | size MB |" in out
    assert "| GRIB |" in out and "| NetCDF (zip) |" in out
    assert "| clone a prepared template (used) |" in out


def test_bench_atmosphere(tmp_path: Path) -> None:
    results = tmp_path / "atmosphere.json"
    out = run_bench("bench_atmosphere.py", "--toy", "--results", results, cwd=tmp_path)
    assert out.splitlines()[0].split() == [
        "case",
        "what",
        "values",
        "cold",
        "s",
        "warm",
        "s",
        "ns/val",
    ]
    for case in ("era5_single_levels_day", "eac4_pollutants_day", "cams_forecast_120h"):
        assert case in out
    (record,) = records(results)
    assert record["toy"] is True and len(record["results"]) == 3


def test_bench_decode(tmp_path: Path) -> None:
    results = tmp_path / "decode.json"
    args = ("--toy", "--repeats", "1", "--min-seconds", "0", "--results", results)
    out = run_bench("bench_decode.py", *args, cwd=tmp_path)
    assert out.count("| file | MB | raw MB/s |") == 2  # wall time and CPU time
    assert "| era5-single-1day-toy |" in out and "| all files |" in out
    (record,) = records(results)
    assert record["toy"] is True and len(record["results"]) == 4


def test_bench_forecast_read(tmp_path: Path) -> None:
    results = tmp_path / "forecast_read.json"
    args = ("--inits", "2", "--repeats", "1", "--results", results)
    out = run_bench("bench_forecast_read.py", *args, cwd=tmp_path)
    assert "| publish | s |" in out and "| one more init (median / best of 1) |" in out
    assert "| read (median / best of 1) | ms |" in out
    (record,) = records(results)
    assert record["store"]["inits"] == 2 and len(record["reads"]) == 6


def test_bench_store_without_anemoi(tmp_path: Path) -> None:
    results = tmp_path / "store.json"
    args = ("--toy", "--days", "3", "--repeats", "1", "--read-seconds", "0.2")
    args += ("--anemoi-venv", tmp_path / "no-anemoi", "--results", results)
    out = run_bench("bench_store.py", *args, cwd=tmp_path)
    assert "anemoi-datasets is not installed" in out and "AirCast only, no comparison" in out
    assert "| tool | files | GB in | wall s |" in out
    assert "| aircast serial |" in out and "| aircast dask (2 workers) |" in out
    assert "ratio (AirCast over anemoi" not in out
    assert "| readers | steps/s | MB/s (uncompressed) |" in out
    (record,) = records(results)
    assert record["toy"] is True and record["anemoi_recipes"] is None
    assert record["ratios"] == {"best_vs_best": None, "serial": None, "parallel": None}
    assert [r["processes"] for r in record["training_reads"]] == [1, 2]


def test_bench_store_ratio_line_leaves_out_a_mode_anemoi_did_not_run() -> None:
    """anemoi's parallel mode is not run: its ratio is None, and the summary still prints."""
    sys.path.insert(0, str(BENCH))
    try:
        bench_store = importlib.import_module("bench_store")
    finally:
        sys.path.remove(str(BENCH))
    rows = [
        {"tool": "aircast", "mode": "serial", "wall_s": 8.0, "cpu_s": 7.0},
        {"tool": "aircast", "mode": "parallel", "wall_s": 5.0, "cpu_s": 9.0},
        {"tool": "anemoi", "mode": "serial", "wall_s": 10.0, "cpu_s": 10.0},
    ]
    ratios = bench_store.figures(rows)
    assert ratios == {"best_vs_best": 0.5, "serial": 0.8, "parallel": None}
    assert bench_store.ratio_line(ratios) == (
        "ratio (AirCast over anemoi, wall): best mode vs best mode 0.50; serial 0.80 (target: <= 1)"
    )
    assert bench_store.ratio_line({"best_vs_best": None, "serial": None, "parallel": None}) is None


def test_bench_forecast_publish(tmp_path: Path) -> None:
    results = tmp_path / "forecast_publish.json"
    args = ("--toy", "--repeats", "1", "--results", results)
    out = run_bench("bench_forecast_publish.py", *args, cwd=tmp_path)
    assert "| stage | median s | best s | CPU s (median) |" in out
    assert "| rollout 0-72 h every 3 h |" in out and "| **total** (load + IC" in out
    (record,) = records(results)
    assert record["toy"] is True and len(record["repeat_results"]) == 1


def test_bench_train(tiny_recipe: Path, tmp_path: Path) -> None:
    results = tmp_path / "train.json"
    args = ("--quick", "--warmup", "0", "--steps", "1", "--loader-config", tiny_recipe)
    args += ("--loader-batches", "1", "--results", results)
    out = run_bench("bench_train.py", *args, cwd=tmp_path)
    assert "| model | parameters | step s (wall, median) |" in out
    assert "| AirCast |" in out and "| ClimaX-structure reference |" in out
    assert "| loader workers | batch | samples/s | first batch s |" in out
    (record,) = records(results)
    assert record["config"]["name"] == "quick" and len(record["loader"]["runs"]) == 2


def test_bench_ablation(tiny_evaluation: TinyEvaluation, tmp_path: Path) -> None:
    results = tmp_path / "ablation.json"
    args = ("--config", tiny_evaluation.config_path, "--max-steps", "1")
    args += ("--variants", "multi-task fMAE", "--out", tmp_path / "out", "--results", results)
    out = run_bench("bench_ablation.py", *args, cwd=tmp_path)
    table = out[out.index("pm2p5 MAE") :]
    for row in ("multi-task fMAE", "persistence", "climatology"):
        assert f"\n{row} " in table
    (record,) = records(results)
    assert set(record["results"]) == {"multi-task fMAE", "persistence", "climatology"}


def test_bench_baseline(tiny_evaluation: TinyEvaluation, tmp_path: Path) -> None:
    """The tiny recipe rolls out to 48 h: the 72 h column shows ``-``."""
    results = tmp_path / "baseline.json"
    args = ("--checkpoint", tiny_evaluation.checkpoint, "--config", tiny_evaluation.config_path)
    out = run_bench("bench_baseline.py", *args, "--results", results, cwd=tmp_path)
    assert "pm2p5 MAE 24/48/72 h" in out
    table = out[out.index("pm2p5 MAE 24/48/72 h") :]
    for row in ("trained", "baseline alone (learned decay)", "baseline alone, no decay"):
        assert f"\n{row} " in table
    assert "/-\n" in table
    (record,) = records(results)
    assert len(record["results"]) == 6  # four variants, persistence and climatology
