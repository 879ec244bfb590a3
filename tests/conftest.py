"""Shared fixtures: where the real reference data live, and the sandbox server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from flowtools import free_port

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


class FakeAtmosphere:
    """A tiny analytic stand-in for the sandbox's toy atmosphere (``AtmosphereLike``).

    Every field is a smooth function of latitude, longitude (periodic), time and level,
    within ``base ± amp`` in vocabulary units, so positive quantities stay positive. The
    forecast drifts with lead time so that a test can tell it from the analysis.
    """

    #: name -> (base, amplitude); pressure-level bases scale with the level
    SCALES: dict[str, tuple[float, float]] = {  # noqa: RUF012 - a fixed table
        "t2m": (280.0, 15.0),
        "d2m": (272.0, 10.0),
        "u10": (0.0, 8.0),
        "v10": (0.0, 8.0),
        "msl": (101_000.0, 1500.0),
        "sp": (97_000.0, 3000.0),
        "tp": (2e-4, 1.5e-4),
        "blh": (800.0, 500.0),
        "tcwv": (25.0, 15.0),
        "lsm": (0.5, 0.5),
        "z_sfc": (3000.0, 2500.0),
        "z": (50_000.0, 500.0),
        "t": (250.0, 10.0),
        "u": (5.0, 10.0),
        "v": (0.0, 10.0),
        "q": (4e-3, 3e-3),
        "r": (60.0, 30.0),
        "pm1": (5e-9, 3e-9),
        "pm2p5": (1e-8, 6e-9),
        "pm10": (2e-8, 1e-8),
        "go3": (5e-8, 2e-8),
        "no2": (1e-9, 5e-10),
        "no": (3e-10, 1e-10),
        "so2": (1e-9, 5e-10),
        "co": (1e-7, 3e-8),
        "tcco": (2e-3, 5e-4),
        "tcno2": (1e-5, 5e-6),
        "tc_no": (1e-6, 4e-7),
        "tcso2": (1e-5, 5e-6),
        "gtco3": (6e-3, 1e-3),
    }
    DRIFT_PER_HOUR = 0.002  # of the amplitude

    def _hourly(
        self,
        name: str,
        hours: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        level_hpa: float | None,
    ) -> np.ndarray:
        """float64 (time, lat, lon); ``hours`` since 2000-01-01, shape (time,)."""
        base, amp = self.SCALES[name]
        phase = sorted(self.SCALES).index(name)
        la = np.deg2rad(np.asarray(lat, dtype=np.float64))[None, :, None]
        lo = np.deg2rad(np.asarray(lon, dtype=np.float64))[None, None, :]
        h = np.asarray(hours, dtype=np.float64)[:, None, None]
        shape = 0.6 * np.sin(2 * lo + phase + 3 * la) * np.cos(la) + 0.4 * np.sin(
            2 * np.pi * h / 24 + lo + phase
        )  # within [-1, 1]
        if level_hpa is not None:
            base = base * (0.5 + level_hpa / 2000.0)
        return base + amp * shape

    @staticmethod
    def _hours(times: np.ndarray) -> np.ndarray:
        since = np.asarray(times).astype("datetime64[s]") - np.datetime64("2000-01-01", "s")
        return since.astype(np.int64) / 3600.0

    def sample(
        self,
        names: Sequence[str],
        times: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        level_hpa: float | None = None,
    ) -> dict[str, np.ndarray]:
        hours = self._hours(times)
        return {n: self._hourly(n, hours, lat, lon, level_hpa).astype(np.float32) for n in names}

    def sample_forecast(
        self,
        names: Sequence[str],
        init_time: np.datetime64,
        lead_hours: Sequence[int],
        lat: np.ndarray,
        lon: np.ndarray,
        level_hpa: float | None = None,
    ) -> dict[str, np.ndarray]:
        init = float(self._hours(np.asarray([init_time]))[0])
        leads = np.asarray(lead_hours, dtype=np.float64)
        out: dict[str, np.ndarray] = {}
        for n in names:
            if n == "tp":  # accumulated since the run started: the sum of the hourly amounts
                hourly = self._hourly(
                    n, init + np.arange(1, int(leads.max(initial=0)) + 1), lat, lon, None
                )
                total = np.concatenate(
                    [np.zeros((1, *hourly.shape[1:])), np.cumsum(hourly, axis=0)]
                )
                out[n] = total[leads.astype(int)].astype(np.float32)
            else:
                drift = self.DRIFT_PER_HOUR * self.SCALES[n][1] * leads[:, None, None]
                out[n] = (self._hourly(n, init + leads, lat, lon, level_hpa) + drift).astype(
                    np.float32
                )
        return out


@pytest.fixture(scope="session")
def fake_atmosphere() -> FakeAtmosphere:
    """An analytic atmosphere for product and decoder tests (no simulation, instant)."""
    return FakeAtmosphere()


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
