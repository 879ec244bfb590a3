"""``aircast evaluate`` end to end on the tiny store and model, and its clear errors."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from matplotlib.image import imread
from typer.testing import CliRunner

from aircast.cli import app
from aircast.evaluation import metrics
from aircast.evaluation.scorecard import METRICS, MODELS
from aircast.store.reader import open_store
from aircast.testing import TinyEvaluation, tiny_evaluation_recipe
from aircast.training.checkpoint import load_checkpoint, save_checkpoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluated(
    tiny_evaluation: TinyEvaluation, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """The CLI's output and its output folder (run once: it fetches the CAMS forecast)."""
    out = tmp_path_factory.mktemp("evaluation")
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(tiny_evaluation.checkpoint),
            "--config",
            str(tiny_evaluation.config_path),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return result.output, out


def test_evaluate_prints_the_skill_table_and_the_paths(evaluated: tuple[str, Path]) -> None:
    output, out = evaluated
    assert "pm2p5 MAE (ug m-3)" in output and "pm10 MAE (ug m-3)" in output
    for baseline in ("persistence", "climatology", "cams_forecast"):
        assert f"AirCast beats {baseline} on pm2p5 MAE:" in output
    assert "climatology: mean by hour of day over the training period" in output
    assert f"scorecard: {out / 'scorecard.zarr'}" in output
    assert f"plot: {out / 'skill_vs_lead.png'}" in output


def test_the_scorecard_has_every_model_variable_lead_and_metric(
    evaluated: tuple[str, Path],
) -> None:
    _, out = evaluated
    ds = xr.open_zarr(out / "scorecard.zarr").load()
    score = ds["score"]
    assert score.dims == ("model", "variable", "lead_time", "metric")
    assert ds["model"].values.tolist() == list(MODELS)
    assert ds["metric"].values.tolist() == list(METRICS)
    assert ds["variable"].values.tolist() == ["t2m", "u10", "pm2p5", "pm10", "go3_925"]
    assert ds["lead_hours"].values.tolist() == list(range(3, 49, 3))
    assert ds["units"].sel(variable="pm2p5").item() == "ug m-3"
    # two 00 UTC runs; the store ends 06-05 21 UTC, so the second one verifies up to 21 h
    assert ds["n_fields"].sel(variable="pm2p5").values.tolist() == [2] * 7 + [1] * 8 + [0]
    mae = score.sel(metric="mae")
    assert np.isfinite(
        mae.sel(model=["aircast", "persistence", "climatology"]).values[:, :, :-1]
    ).all()
    # the CAMS forecast scores the pollutants only
    assert np.isfinite(mae.sel(model="cams_forecast", variable="pm2p5").values[:-1]).all()
    assert np.isnan(mae.sel(model="cams_forecast", variable="t2m").values).all()
    # WHO scores: PM only, at the end of the one complete forecast day (06-04, leads 3-24)
    who = score.sel(metric="who_csi", model="aircast")
    assert np.isfinite(who.sel(variable="pm2p5", lead_time=np.timedelta64(24, "h"))).item()
    assert np.isfinite(who.sel(variable="pm2p5")).sum() == 1
    assert np.isnan(who.sel(variable="t2m")).all()
    assert ds["who_guideline"].sel(variable="pm10").item() == 45.0
    assert ds["extreme_threshold"].sel(variable="pm2p5").item() > 0
    assert ds["extreme_cells"].dims == ("variable", "lead_time")
    assert ds["mae_map"].dims == ("model", "variable", "map_lead_time", "latitude", "longitude")
    assert ds.attrs["climatology_method"] == "hour_of_day"
    assert ds.attrs["n_init_times"] == 2


def test_scores_match_a_direct_computation(
    evaluated: tuple[str, Path], tiny_evaluation: TinyEvaluation
) -> None:
    """Persistence at 3 h, from the store by hand, pooled over both runs, in µg m-3."""
    _, out = evaluated
    ds = xr.open_zarr(out / "scorecard.zarr").load()
    store = open_store(tiny_evaluation.config.store_url)
    inits = np.array(["2019-06-04T00", "2019-06-05T00"], dtype="datetime64[ns]")
    before = store.read(inits)
    after = store.read(inits + np.timedelta64(3, "h"))
    weights = metrics.area_weights(store.ds["latitude"].values, 1.5)
    for channel, factor in (("pm2p5", 1e9), ("t2m", 1.0)):
        f = before.sel(channel=channel).values.astype(np.float64) * factor
        o = after.sel(channel=channel).values.astype(np.float64) * factor
        got = ds["score"].sel(model="persistence", variable=channel).isel(lead_time=0)
        assert got.sel(metric="mae").item() == pytest.approx(metrics.mae(f, o, weights))
        assert got.sel(metric="rmse").item() == pytest.approx(metrics.rmse(f, o, weights))
        assert got.sel(metric="bias").item() == pytest.approx(metrics.bias(f, o, weights))


def test_the_tables_and_plots_are_written(evaluated: tuple[str, Path]) -> None:
    _, out = evaluated
    with open(out / "scorecard.csv") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"model", "variable", "units", "lead_hours", "metric", "value"}
    assert {r["model"] for r in rows} == set(MODELS)
    assert "## pm2p5 (ug m-3)" in (out / "scorecard.md").read_text()
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["mae_map_pm2p5_24h.png", "skill_vs_lead.png"]
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        image = imread(png)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400


def test_a_missing_checkpoint_is_a_clear_error(
    tiny_evaluation: TinyEvaluation, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "nope.ckpt"), "--config", str(tiny_evaluation.config_path)]
    )
    assert result.exit_code == 2
    assert "no checkpoint at" in result.output


def test_a_checkpoint_of_another_store_is_refused(
    tiny_evaluation: TinyEvaluation, tmp_path: Path
) -> None:
    ckpt = load_checkpoint(tiny_evaluation.checkpoint)
    other = dataclasses.replace(ckpt.meta, store_fingerprint="0" * 64)
    path = save_checkpoint(tmp_path / "other.ckpt", other, ckpt.model, ckpt.extra)
    result = CliRunner().invoke(
        app, ["evaluate", str(path), "--config", str(tiny_evaluation.config_path)]
    )
    assert result.exit_code == 2
    assert "the checkpoint does not match" in result.output


def test_a_period_without_initial_times_is_a_clear_error(
    tiny_evaluation: TinyEvaluation, tmp_path: Path
) -> None:
    data = tiny_evaluation_recipe(tiny_evaluation.root)
    data["periods"]["test"] = {"start": "2019-06-08", "end": "2019-06-09"}
    path = tmp_path / "later.yaml"
    path.write_text(yaml.safe_dump(data))
    runner = CliRunner()
    result = runner.invoke(
        app, ["evaluate", str(tiny_evaluation.checkpoint), "--config", str(path)]
    )
    assert result.exit_code == 2
    assert "has no 00 UTC initial time with data" in result.output
    result = runner.invoke(
        app,
        ["evaluate", str(tiny_evaluation.checkpoint), "--config", str(path), "--period", "train"],
    )
    assert result.exit_code == 2 and "choose one of test, validation" in result.output


def test_batching_the_initial_times_does_not_change_the_scores(
    evaluated: tuple[str, Path], tiny_evaluation: TinyEvaluation, tmp_path: Path
) -> None:
    """One initial time per batch gives the CLI's scores (two runs in one batch)."""
    from aircast.evaluation.scorecard import evaluate

    _, out = evaluated
    expected = xr.open_zarr(out / "scorecard.zarr").load()
    one_by_one = evaluate(
        tiny_evaluation.checkpoint,
        tiny_evaluation.config,
        out_dir=tmp_path / "one",
        batch_size=1,
    ).scorecard
    baselines = ["persistence", "climatology"]
    # the CLI's run masked the pollutants where CAMS was missing: it was not missing anywhere
    for name in ("score", "mae_map"):
        np.testing.assert_allclose(
            one_by_one[name].sel(model=baselines).values,
            expected[name].sel(model=baselines).values,
            rtol=1e-9,
        )
    # the model's float32 kernels round differently with the batch size: compare its errors,
    # which are far from zero, to a relative 1e-4
    errors = ["mae", "rmse"]
    np.testing.assert_allclose(
        one_by_one["score"].sel(model="aircast", metric=errors).values,
        expected["score"].sel(model="aircast", metric=errors).values,
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        one_by_one["mae_map"].sel(model="aircast").values,
        expected["mae_map"].sel(model="aircast").values,
        rtol=1e-3,
    )
    np.testing.assert_array_equal(one_by_one["n_fields"].values, expected["n_fields"].values)
    assert np.isnan(one_by_one["score"].sel(model="cams_forecast").values).all()
    assert one_by_one.attrs["cams_forecast"] == "not requested"
