"""A tiny store and a tiny model trained a few steps, built once per session
(:mod:`evaltools` describes the recipe)."""

from __future__ import annotations

import pytest
import yaml
from evaltools import FIRST, LAST, Tiny, tiny_recipe

from aircast.config import parse_config
from aircast.testing import ingest_from_sandbox


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    from aircast.store.build import build_store
    from aircast.training.loop import train

    root = tmp_path_factory.mktemp("tiny-eval")
    data = tiny_recipe(root)
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = parse_config(data, str(config_path))
    ingest_from_sandbox(config, FIRST, LAST)
    build_store(config, parallel=False)
    result = train(config, max_steps=4, log=lambda _: None)
    return Tiny(config, config_path, result.last, root)
