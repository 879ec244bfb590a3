"""A tiny store and a tiny model trained a few steps, built once per session
(:mod:`evaltools` describes the recipe)."""

from __future__ import annotations

import pytest
import yaml
from evaltools import FIRST, LAST, Tiny, tiny_recipe

from aircast.config import parse_config


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    from aircast.jobs.build import run_build
    from aircast.jobs.ingest import run_ingest
    from aircast.sandbox.runtime import datastore_endpoints
    from aircast.training.loop import train

    root = tmp_path_factory.mktemp("tiny-eval")
    data = tiny_recipe(root)
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = parse_config(data, str(config_path))
    with datastore_endpoints(config) as endpoints:
        reports = run_ingest(
            config, ("era5", "eac4"), FIRST, LAST, endpoints=endpoints, raise_on_failure=False
        ).reports
    failed = [r for report in reports.values() for r in report.failed]
    assert not failed, failed
    run_build(config)
    result = train(config, max_steps=4)
    return Tiny(config, config_path, result.last, root)
