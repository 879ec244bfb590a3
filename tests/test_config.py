"""Configs: the shipped ones validate; each bad one fails with key, bad value and fix."""

from __future__ import annotations

import copy
import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from aircast.cli import app
from aircast.config import DEFAULT_CONFIG, DEMO_CONFIG, MAX_GRID_CELLS, load_config, parse_config

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_default_config_is_the_widened_aircast_region() -> None:
    config = load_config(DEFAULT_CONFIG)
    r = config.region
    assert (r.south, r.north, r.west, r.east) == (0, 45, -20.25, 75.75)
    assert config.grid.resolution == 0.75
    assert config.lat_lon_shape == (61, 129)


def test_demo_config_is_small() -> None:
    config = load_config(DEMO_CONFIG)
    n_lat, n_lon = config.lat_lon_shape
    assert n_lat * n_lon < 1000
    assert config.periods.train.days <= 31


def _set(path: str, value: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[p]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


_DELETE = object()

BAD_CONFIGS = [
    (
        "unknown variable",
        _set("variables.pollutants", ["pm2p5", "pm25"]),
        ["variables.pollutants", "'pm25'", "did you mean 'pm2p5'"],
    ),
    (
        "level not offered",
        _set("variables.pollutants", ["go3_975"]),
        ["variables.pollutants", "975 hPa", "cams-global-reanalysis-eac4", "925"],
    ),
    (
        "pollutant as weather",
        _set("variables.weather", ["t2m", "pm10"]),
        ["variables.weather", "'pm10'", "move it to variables.pollutants"],
    ),
    (
        "period ends before it starts",
        _set("periods.train.end", "2019-05-01"),
        ["periods.train", "2019-05-01", "swap start and end"],
    ),
    ("region outside the globe", _set("region.north", 95), ["region", "95", "[-90, 90]"]),
    ("longitude in 0..360", _set("region.east", 300), ["region.east", "300", "write -60"]),
    ("unknown key", _set("regoin", {"north": 1}), ["regoin", "did you mean 'region'"]),
    (
        "misspelt nested key",
        _set("grid.resolutoin", 1.5),
        ["grid.resolutoin", "did you mean 'resolution'"],
    ),
    (
        "resolution that does not divide the region",
        _set("grid.resolution", 0.7),
        ["grid.resolution = 0.7", "north", "set region.north"],
    ),
    (
        "overlapping periods",
        _set("periods.validation.start", "2019-06-20"),
        ["periods.train", "overlaps periods.validation"],
    ),
    ("impossible date", _set("periods.test.end", "2019-06-31"), ["periods.test.end", "2019-06-31"]),
    (
        "period without data",
        _set("periods.test", {"start": "2024-01-01", "end": "2024-01-31"}),
        ["cams-global-reanalysis-eac4", "2021-12-31", "move the periods"],
    ),
    (
        "api key in the config",
        _set("datastores.cds.key", "abcd"),
        ["datastores.cds.key", "never goes in a config", "key_env"],
    ),
    (
        "bad url",
        _set("datastores.ads.url", "ads.example"),
        ["datastores.ads.url", "'ads.example'", "https://ads.atmosphere.copernicus.eu/api"],
    ),
    ("missing section", _set("periods", _DELETE), ["periods", "required key is missing"]),
    (
        "channel listed twice",
        _set("variables.weather", ["t2m", "t2m"]),
        ["variables.weather", "listed twice"],
    ),
    (
        "GRIB edition of a dataset the sandbox does not serve",
        _set("sandbox", {"grib_edition": {"reanalysis-era5-land": 2}}),
        ["sandbox.grib_edition", "'reanalysis-era5-land'", "cams-global-reanalysis-eac4"],
    ),
    (
        "east edge on the antimeridian",
        _set("region", {"north": 39.0, "south": 15.0, "west": 150.0, "east": 180.0}),
        ["region.east = 180", "[-180, 180)", "179.25"],
    ),
    (
        "a boolean for a number",
        _set("grid.resolution", True),
        ["grid.resolution", "true is a yes/no value, not a number"],
    ),
    (
        "a boolean for a whole number",
        _set("training.epochs", False),
        ["training.epochs", "false is a yes/no value, not a whole number"],
    ),
    (
        "a grid too fine to build",
        _set("grid.resolution", 0.0001),
        ["grid.resolution = 0.0001", "1,048,576", "at least 0.04°"],
    ),
    (
        "GRIB edition neither 1 nor 2",
        _set("sandbox", {"grib_edition": {"cams-global-reanalysis-eac4": 3}}),
        ["sandbox.grib_edition", "3"],
    ),
]


@pytest.mark.parametrize(
    ("case", "mutate", "fragments"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_is_rejected_with_a_fix(
    tmp_path: Path, case: str, mutate: Any, fragments: list[str]
) -> None:
    data = copy.deepcopy(yaml.safe_load(DEMO_CONFIG.read_text()))
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2, result.output
    for fragment in fragments:
        assert fragment in result.output, (case, fragment, result.output)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: demo\nregion: {north: 3\n")
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2
    assert "line" in result.output and "YAML" in result.output


def test_missing_file() -> None:
    result = runner.invoke(app, ["config", "validate", "nowhere.yaml"])
    assert result.exit_code == 2 and "file not found" in result.output


def test_console_script_exit_code(tmp_path: Path) -> None:
    """The installed command itself exits non-zero (not only the in-process runner)."""
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\n")
    proc = subprocess.run(
        [sys.executable, "-m", "aircast", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "region: required key is missing" in proc.stderr


def test_a_yes_no_setting_still_takes_a_boolean() -> None:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["training"]["pollutants_only"] = True
    data["forecast"] = {"fallback_to_previous_cycle": True}
    config = parse_config(data)
    assert config.training.pollutants_only and config.forecast.fallback_to_previous_cycle


def test_the_finest_grid_allowed_validates() -> None:
    """The bound admits the whole globe at 0.25° (ERA5's grid), as the README says."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["region"] = {"north": 90.0, "south": -90.0, "west": -180.0, "east": 179.75}
    data["grid"] = {"resolution": 0.25}
    assert parse_config(data).lat_lon_shape == (721, 1440)
    assert f"{MAX_GRID_CELLS:,}" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("key", ["train.start", "test.end"])
def test_impossible_date_written_as_a_yaml_date_names_its_key(tmp_path: Path, key: str) -> None:
    """An unquoted YAML date is read by PyYAML itself, which would raise a bare ValueError."""
    section, field = key.split(".")
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["periods"][section][field] = "PLACEHOLDER"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data).replace("PLACEHOLDER", "2019-02-30"))
    assert "2019-02-30\n" in path.read_text() and "'2019-02-30'" not in path.read_text()
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2, result.output
    assert f"periods.{key}: '2019-02-30' is not a date" in result.output
    assert "write a day that exists" in result.output
    assert "Traceback" not in result.output


def test_yaml_dates_still_load_as_dates() -> None:
    config = load_config(DEMO_CONFIG)
    assert config.periods.train.start == dt.date(2019, 6, 1)
