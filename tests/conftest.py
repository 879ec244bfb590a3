"""Shared fixtures: where the real reference data live, and the sandbox server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AIRCAST_SHARED_DATA", REPO.parent / "shared" / "data"))


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        message = (f"{path} is missing: the real ECMWF reference data live in ../shared/data "
                   "beside the checkout (set AIRCAST_SHARED_DATA to point elsewhere)")
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has shared/: its absence is a broken setup
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def cds_forms() -> Path:
    """``../shared/data/cds-forms``: the data stores' own catalogue forms."""
    return _shared("cds-forms")


@pytest.fixture(scope="session")
def real_grib() -> Path:
    """``../shared/data/real-grib``: GRIB files written by ECMWF's own systems."""
    return _shared("real-grib")
