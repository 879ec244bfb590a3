"""``aircast store build`` and ``aircast store inspect``."""

from __future__ import annotations

from pathlib import Path

import yaml
from storetools import ConfigFactory
from typer.testing import CliRunner

from aircast.cli import app


def _write(config: object, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))  # type: ignore[attr-defined]
    return path


def test_inspect_prints_a_readable_summary(reference_store: Path) -> None:
    result = CliRunner().invoke(app, ["store", "inspect", str(reference_store)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "times: 2019-06-01T00:00 .. 2019-06-05T21:00, 40 (every 3 h)" in out
    assert "missing: none" in out
    for fragment in ("pm2p5", "kg m-3", "pollutant", "go3_925", "log mean", "size on disk"):
        assert fragment in out
    assert "statistics: training 2019-06-01..2019-06-03" in out


def test_build_then_inspect_by_config(make_config: ConfigFactory, tmp_path: Path) -> None:
    config_path = _write(make_config(), tmp_path / "tiny.yaml")
    runner = CliRunner()
    result = runner.invoke(app, ["store", "build", str(config_path), "--serial"])
    assert result.exit_code == 0, result.output
    assert "3 parts loaded, 0 current, 0 missing times" in result.output
    again = runner.invoke(app, ["store", "build", str(config_path), "--serial"])
    assert "0 parts loaded, 3 current" in again.output
    shown = runner.invoke(app, ["store", "inspect", str(config_path)])
    assert shown.exit_code == 0 and "state: complete" in shown.output


def test_build_errors_are_one_clear_line(make_config: ConfigFactory, tmp_path: Path) -> None:
    config = make_config(region={"north": 40.5, "south": 16.5, "west": -6.0, "east": 48.0})
    config_path = _write(config, tmp_path / "moved.yaml")
    result = CliRunner().invoke(app, ["store", "build", str(config_path), "--serial"])
    assert result.exit_code == 2
    assert "ingested for another region or grid" in result.output
    bad = CliRunner().invoke(
        app, ["store", "build", str(config_path), "--scheduler", "localhost:8786"]
    )
    assert bad.exit_code == 2 and "tcp://host:8786" in bad.output
