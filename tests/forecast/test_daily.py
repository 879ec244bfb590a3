"""The daily forecast through the command line: publish, verify, and every bad input refused.

Runs on the tiny trained recipe (:func:`aircast.testing.ensure_tiny_forecaster`), the CAMS runs
fetched from the embedded sandbox by the code under test. Each bad input must exit 2 with a
message that names the problem and leave the published store byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from aircast.cli import app
from aircast.config import load_config
from aircast.forecast.initial import check_health, load_initial_conditions
from aircast.forecast.reader import open_forecast
from aircast.store.reader import open_store
from aircast.testing import tiny_forecast_recipe, write_forecast_variant, write_recipe


@pytest.fixture(scope="module")
def trained(tiny_forecaster: Path) -> Path:
    """The trained tiny recipe with 2019-06-02 and 2019-06-03 published."""
    path = tiny_forecaster
    for day in ("2019-06-02", "2019-06-03"):
        result = CliRunner().invoke(app, ["forecast", day, "--config", str(path)])
        assert result.exit_code == 0, result.output
    return path


def tree_hash(path: Path) -> str:
    """One hash of every file's name and bytes under ``path``."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def test_forecast_is_published_with_provenance_and_units(trained: Path) -> None:
    config = load_config(trained)
    forecast = open_forecast(config.forecast_url)
    assert [str(t)[:10] for t in forecast.init_times] == ["2019-06-02", "2019-06-03"]
    run = forecast.forecast("2019-06-03")
    leads = run["lead_time"].values / np.timedelta64(1, "h")
    assert leads.tolist() == list(range(0, 73, 3))
    pm = run["pm2p5"]
    assert pm.attrs["units"] == "ug m-3"
    assert np.isfinite(pm.values).all() and (pm.values >= 0).all()
    # lead 0 is the initial state: the CAMS analysis regridded, in µg m-3
    store = open_store(config.store_url)
    ic = load_initial_conditions(config, store, __import__("datetime").date(2019, 6, 3))
    expected = ic.values[ic.channels.index("pm2p5")] * 1e9
    np.testing.assert_allclose(pm.values[0], expected, rtol=1e-5)
    # a typical PM2.5 is a few to a few hundred µg m-3, not kg m-3
    assert 0.1 < float(np.median(pm.values)) < 1000
    provenance = forecast.provenance("2019-06-03")
    ckpt = Path(config.forecast.checkpoint or "")
    assert provenance["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert provenance["input_request_ids"], provenance
    assert "lead 0" in provenance["input_source"]
    assert "tp from the run of 2019-06-02" in provenance["input_source"]
    # downstream apps read it with plain xarray
    ds = xr.open_zarr(config.forecast_url)
    assert ds["go3_925"].dims == ("init_time", "lead_time", "latitude", "longitude")
    assert ds["valid_time"].shape == (2, 25)


def test_same_date_again_changes_nothing(trained: Path) -> None:
    config = load_config(trained)
    before = tree_hash(Path(config.forecast_url))
    result = CliRunner().invoke(app, ["forecast", "2019-06-03", "--config", str(trained)])
    assert result.exit_code == 0, result.output
    assert "already published" in result.output
    assert tree_hash(Path(config.forecast_url)) == before


def test_verification_scores_each_lead_once_against_the_baselines(trained: Path) -> None:
    config = load_config(trained)
    table_path = config.paths.root / "verification" / "scores.csv"
    import pandas as pd

    table = pd.read_csv(table_path)
    # 06-02 was verified when 06-03 ran: every lead (to 06-05 00 UTC) is in the 6-day store
    first = table[table["init_time"].str.startswith("2019-06-02")]
    assert sorted(first["lead_hours"].unique()) == list(range(3, 73, 3))
    assert set(first["model"]) == {"aircast", "persistence", "climatology", "cams"}
    cams = first[first["model"] == "cams"]
    assert set(cams["channel"]) == {"pm2p5", "go3_925"}  # CAMS forecasts no weather here
    pm = first[(first["channel"] == "pm2p5")]
    assert (pm["units"] == "ug m-3").all() and (pm["rmse"] > 0).all()
    # a second pass adds nothing: each lead is scored once
    result = CliRunner().invoke(app, ["forecast", "2019-06-04", "--config", str(trained)])
    assert result.exit_code == 0, result.output
    again = pd.read_csv(table_path)
    keys = ["init_time", "lead_hours", "channel", "model"]
    assert not again.duplicated(keys).any()
    assert len(again[again["init_time"].str.startswith("2019-06-02")]) == len(first)


def _corrupt_checkpoint_meta(src: Path, dst: Path) -> None:
    payload = torch.load(src, weights_only=True)
    meta = json.loads(payload["meta"])
    meta["store_fingerprint"] = "0" * 64
    payload["meta"] = json.dumps(meta)
    torch.save(payload, dst)


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("date-format", "is not a date; write it as YYYY-MM-DD"),
        ("before-store", "is before the training store"),
        ("no-checkpoint", "no checkpoint at"),
        ("other-store", "the checkpoint does not match"),
        ("schema", "schema version"),
        ("store-down", "could not be fetched"),
        ("unhealthy", "cannot be used: t2m: a cell lies"),
    ],
)
def test_bad_input_is_refused_and_the_store_is_unchanged(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, said: str
) -> None:
    root = trained.parent
    config = load_config(trained)
    store_path = Path(config.forecast_url)
    date = "2019-06-05"
    path = trained
    if case == "date-format":
        date = "05/06/2019"
    elif case == "before-store":
        date = "2019-05-20"
    elif case == "no-checkpoint":
        path = write_forecast_variant(root, "no-ckpt", checkpoint=str(tmp_path / "missing.ckpt"))
    elif case == "other-store":
        foreign = tmp_path / "foreign.ckpt"
        _corrupt_checkpoint_meta(Path(config.forecast.checkpoint or ""), foreign)
        path = write_forecast_variant(root, "foreign", checkpoint=str(foreign))
    elif case == "schema":
        import shutil

        copy = tmp_path / "old.zarr"
        shutil.copytree(store_path, copy)
        meta = json.loads((copy / "zarr.json").read_text())
        meta["attributes"]["aircast_forecast_schema_version"] = 99
        (copy / "zarr.json").write_text(json.dumps(meta))
        store_path = copy
        path = write_forecast_variant(root, "old-schema", url=str(copy))
    elif case == "unhealthy":
        # limits no real field meets: the health check must stop the run before publishing
        path = write_forecast_variant(root, "strict-health", health={"max_cell_sigma": 0.01})
    elif case == "store-down":
        data = tiny_forecast_recipe(root)
        data["datastores"]["ads"]["url"] = "http://127.0.0.1:9"  # nothing listens there
        data["ingest"] = {"sleep_max": 0.05, "http_tries": 1, "download_tries": 1, "timeout": 2.0}
        monkeypatch.setenv("AIRCAST_ADS_KEY", "a-key-for-a-store-that-is-down")
        path = tmp_path / "down.yaml"
        write_recipe(path, data)
    before = tree_hash(store_path)
    result = CliRunner().invoke(app, ["forecast", date, "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert said in result.output, result.output
    assert tree_hash(store_path) == before


def test_health_check_flags_nans_wrong_units_and_drift(trained: Path) -> None:
    import dataclasses
    import datetime as dt

    config = load_config(trained)
    store = open_store(config.store_url)
    ic = load_initial_conditions(config, store, dt.date(2019, 6, 3))
    healthy = check_health(ic, store, config.forecast.health)
    assert healthy.ok, healthy.markdown()
    pm = ic.channels.index("pm2p5")
    t2m = ic.channels.index("t2m")
    values = ic.values.copy()
    values[pm] *= 1e9  # µg m-3 delivered where kg m-3 belongs
    values[t2m, :3] = np.nan
    sick = check_health(dataclasses.replace(ic, values=values), store, config.forecast.health)
    assert not sick.ok
    problems = "\n".join(sick.problems)
    assert "pm2p5: a cell lies" in problems and "wrong units" in problems
    assert "t2m: " in problems and "NaN" in problems
    assert "UNHEALTHY" in sick.markdown()
    warm = ic.values.copy()
    stats = store.statistics
    sigma = float(stats.std[stats.channels.index("t2m")])
    warm[t2m] += 5 * sigma  # a whole field five training standard deviations too warm
    drifted = check_health(dataclasses.replace(ic, values=warm), store, config.forecast.health)
    assert any(p.startswith("t2m: the area mean drifted") for p in drifted.problems)


def test_missing_run_fails_or_falls_back_to_the_previous_cycle(
    trained: Path, tmp_path: Path
) -> None:
    root = trained.parent
    # the ADS has nothing for 2019-06-06: its run never arrives
    data = tiny_forecast_recipe(root, url=str(tmp_path / "fc.zarr"))
    data["sandbox"] = {"faults": "missing=2019-06-06"}
    strict = tmp_path / "strict.yaml"
    write_recipe(strict, data)
    result = CliRunner().invoke(app, ["forecast", "2019-06-06", "--config", str(strict)])
    assert result.exit_code == 2, result.output
    assert "could not be fetched" in result.output
    assert (
        not (tmp_path / "fc.zarr").exists()
        or open_forecast(str(tmp_path / "fc.zarr")).init_times.size == 0
    )

    data["forecast"]["fallback_to_previous_cycle"] = True
    lenient = tmp_path / "lenient.yaml"
    write_recipe(lenient, data)
    result = CliRunner().invoke(app, ["forecast", "2019-06-06", "--config", str(lenient)])
    assert result.exit_code == 0, result.output
    provenance = open_forecast(str(tmp_path / "fc.zarr")).provenance("2019-06-06")
    assert provenance["fallback_to_previous_cycle"] is True
    assert "2019-06-05 00 UTC at lead 24 h (fallback" in provenance["input_source"]
