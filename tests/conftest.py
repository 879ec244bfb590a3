"""Shared fixtures: where the real reference data live, the fake atmosphere and the sandbox
servers over it, single-threaded torch, and an S3 server (the factories are
:mod:`aircast.testing`'s)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aircast.sandbox.server import Renderer
from aircast.testing import (
    FakeAtmosphere,
    Sandboxes,
    TinyEvaluation,
    build_tiny_evaluation,
    ensure_tiny_forecaster,
    ensure_tiny_store,
    free_port,
    product_renderer,
    torch_threads,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AIRCAST_SHARED_DATA", REPO.parent / "shared" / "data"))


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        message = (
            f"{path} is missing: the real ECMWF reference data live in ../shared/data "
            "beside the checkout (set AIRCAST_SHARED_DATA to point elsewhere)"
        )
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


@pytest.fixture(scope="session")
def fake_atmosphere() -> FakeAtmosphere:
    """An analytic atmosphere for product and decoder tests (no simulation, instant)."""
    return FakeAtmosphere()


@pytest.fixture(scope="session")
def fake_renderer(fake_atmosphere: FakeAtmosphere) -> Renderer:
    """Real products over the fake atmosphere: what a sandbox server renders in the tests."""
    return product_renderer(fake_atmosphere)


@pytest.fixture
def sandbox_options(fake_renderer: Renderer) -> dict[str, Any]:
    """What every :func:`sandbox` server gets unless its call says otherwise: real products
    over the fake atmosphere. A module overrides this fixture for a key or renderer of its
    own."""
    return {"renderer": fake_renderer}


@pytest.fixture
def sandbox(sandbox_options: dict[str, Any]) -> Iterator[Sandboxes]:
    """``sandbox(faults=None, **kwargs)`` starts a sandbox server on 127.0.0.1 (the arguments
    of ``SandboxServer``, :func:`sandbox_options` by default); all are stopped afterwards."""
    with Sandboxes(**sandbox_options) as servers:
        yield servers


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Single-threaded torch for the test: tiny tensors gain nothing from threads on a busy
    2-core machine, and results then do not depend on the thread count (a reduction's order
    does)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny training recipe's YAML (:func:`aircast.testing.ensure_tiny_store`), built once
    per session for the training and the flow tests; its store and raw cache are beside it.
    Read-only."""
    return ensure_tiny_store(tmp_path_factory.getbasetemp() / "tiny-training")


@pytest.fixture(scope="session")
def tiny_forecaster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny recipe with a few-step checkpoint and a forecast store beside it
    (:func:`aircast.testing.ensure_tiny_forecaster`), built once per session for the forecast
    and the flow tests; the recipe's path."""
    return ensure_tiny_forecaster(tmp_path_factory.getbasetemp() / "tiny-forecast")


@pytest.fixture(scope="session")
def tiny_evaluation(tmp_path_factory: pytest.TempPathFactory) -> TinyEvaluation:
    """The tiny evaluation recipe, its store and a model trained a few steps
    (:func:`aircast.testing.build_tiny_evaluation`), built once per session for the evaluation
    and the benchmark tests. Read-only."""
    return build_tiny_evaluation(tmp_path_factory.mktemp("tiny-eval"))


@pytest.fixture
def s3_bucket() -> str:
    """The bucket that :func:`s3_endpoint`'s server starts with: a new name per test, because
    moto keeps its buckets in the process, shared by every server the session starts."""
    return f"aircast-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch, s3_bucket: str) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with an empty bucket; fake credentials in the env."""
    moto_server = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
        fs.mkdir(s3_bucket)
        yield endpoint
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
