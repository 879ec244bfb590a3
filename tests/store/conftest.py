"""A tiny recipe ingested once per session from the embedded sandbox, and a reference store.

The recipe: the demo region (which crosses 0° longitude) at 1.5°, five channels covering every
kind of input (an instant and an accumulated ERA5 field, a single-level and a pressure-level
EAC4 pollutant, a static field), five days cut into parts of two days: train 06-01..06-03,
validation 06-04, test 06-05, so one part straddles the training period's end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from storetools import FIRST, LAST, ConfigFactory, tiny_config

from aircast.config import AirCastConfig
from aircast.testing import ingest_from_sandbox


@pytest.fixture(scope="session")
def raw_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw cache holding the tiny recipe's ERA5 and EAC4 inputs (ingested once)."""
    root = tmp_path_factory.mktemp("tiny-raw")
    ingest_from_sandbox(tiny_config(root), FIRST, LAST)
    return root


@pytest.fixture
def make_config(raw_root: Path, tmp_path: Path) -> ConfigFactory:
    """``make_config(name="store.zarr", root=None, **changes)``: the tiny recipe with its store
    in this test's tmp_path (and the session's raw cache unless ``root`` is given)."""

    def make(name: str = "store.zarr", root: Path | None = None, **changes: Any) -> AirCastConfig:
        return tiny_config(root or raw_root, tmp_path / name, **changes)

    return make


@pytest.fixture(scope="session")
def reference_store(raw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny recipe built serially, once per session. Read-only: copy it to change it."""
    from aircast.jobs.build import run_build

    url = tmp_path_factory.mktemp("reference") / "store.zarr"
    run_build(tiny_config(raw_root, url))
    return url
