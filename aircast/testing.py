"""Factories for tests and benchmarks: a flat fake atmosphere, the sandbox, tiny stores.

- :class:`FakeAtmosphere`, an analytic stand-in for the sandbox's toy atmosphere, and
  :func:`product_renderer`, real products written over it: sandbox servers that answer at once;
- :class:`Sandboxes`, sandbox servers started on demand and stopped together (the ``sandbox``
  fixture of ``tests/conftest.py``), and :func:`free_port` for a server of one's own;
- :func:`ingest_from_sandbox`, a recipe's raw inputs from the embedded sandbox, and
  :func:`torch_threads` / :func:`single_thread_env`, torch on one thread (here or in a child);
- the tiny training recipe (:func:`tiny_training_recipe`), its store
  (:func:`ensure_tiny_store`) and a few-step forecaster trained on it
  (:func:`ensure_tiny_forecaster`), each built once into a folder that callers share;
- the tiny evaluation recipe (:func:`tiny_evaluation_recipe`) with its store and a model
  trained four steps (:func:`build_tiny_evaluation`), for scorecards and the ablation benches;
- :func:`snapshot` and :func:`assert_same_files`, byte-level comparisons of stores.

Nothing here imports pytest: the fixtures that wrap these factories live in
``tests/conftest.py``. The heavy modules (torch, the store build, the training loop) are
imported by the factories that need them, so that importing this module stays cheap for the
tests that need none of them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from aircast.catalogue import ParsedRequest
from aircast.config import DEMO_CONFIG, AirCastConfig, parse_config
from aircast.sandbox.faults import FaultPlan
from aircast.sandbox.server import Renderer, SandboxServer

if TYPE_CHECKING:
    from aircast.sandbox.products import AtmosphereLike
    from aircast.sources.base import Source

# ---------------------------------------------------------------------------------------------
# a flat fake atmosphere


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
        values: np.ndarray = base + amp * shape
        return values

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
        """name -> float32 (time, lat, lon) at valid ``times`` (shape (time,))."""
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
        """name -> float32 (lead, lat, lon) of the run started at ``init_time``; ``tp`` is
        accumulated since the start."""
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


def product_renderer(
    atmosphere: AtmosphereLike, grib_editions: Mapping[str, int] | None = None
) -> Renderer:
    """A sandbox renderer writing real products (``products.write_product``) over
    ``atmosphere`` (an ``AtmosphereLike``, e.g. a :class:`FakeAtmosphere`): the bytes the
    decoders check, without the toy atmosphere's simulation. ``grib_editions``
    (``{dataset id: 1 or 2}``) as ``write_product`` takes it."""
    from aircast.sandbox.products import write_product

    def render(parsed: ParsedRequest, target: Path) -> str:
        return write_product(parsed, target, atmosphere, grib_editions)

    return render


# ---------------------------------------------------------------------------------------------
# the sandbox


class Sandboxes:
    """Sandbox servers on 127.0.0.1, started on demand and all stopped together.

    Call it to start one: ``sandboxes(faults=None, **kwargs)`` takes the arguments of
    :class:`~aircast.sandbox.server.SandboxServer`; ``defaults`` (e.g. ``key``, ``renderer``)
    apply where a call does not say otherwise. As a context manager it stops every server it
    started on exit.
    """

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        self.servers: list[SandboxServer] = []

    def __call__(self, faults: FaultPlan | str | None = None, **kwargs: Any) -> SandboxServer:
        server = SandboxServer(faults=faults, **(self.defaults | kwargs)).start()
        self.servers.append(server)
        return server

    def stop(self) -> None:
        """Stop every server started so far."""
        while self.servers:
            self.servers.pop().stop()

    def __enter__(self) -> Sandboxes:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def tiny_fetch_config(root: Path, name: str = "fetch-test") -> AirCastConfig:
    """A recipe of one weather and one pollutant channel over a 6° box at 3°, data under
    ``root``: the smallest requests the sandbox serves (fetch and data-store answer tests)."""
    return parse_config(
        {
            "name": name,
            "region": {"north": 30.0, "south": 24.0, "west": 30.0, "east": 36.0},
            "grid": {"resolution": 3.0},
            "variables": {"weather": ["t2m"], "pollutants": ["pm2p5"]},
            "periods": {
                "train": {"start": "2019-06-01", "end": "2019-06-20"},
                "validation": {"start": "2019-06-21", "end": "2019-06-25"},
                "test": {"start": "2019-06-26", "end": "2019-06-30"},
            },
            "paths": {"root": str(root)},
        }
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ingest_from_sandbox(
    config: AirCastConfig,
    first: dt.date,
    last: dt.date,
    sources: tuple[Source, ...] = ("era5", "eac4"),
) -> None:
    """Ingest ``sources`` for ``first``..``last`` into the recipe's raw cache from the
    embedded sandbox (idempotent).

    Raises
    ------
    RuntimeError
        When a request failed, naming each failure.
    """
    from aircast.jobs.ingest import run_ingest

    failed = run_ingest(config, sources, first, last, raise_on_failure=False).failed
    if failed:
        raise RuntimeError(f"the sandbox ingestion of {first}..{last} failed: {failed}")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the block, then restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# the tiny training recipe and its store
#
# Built from ``configs/demo.yaml``: a 12°×18° box of the demo region at 1.5° (9×13 cells), three
# weather channels (an instant, a wind and an accumulated field), two pollutants (a surface and a
# pressure-level one) and a static field; six days: train 06-01..06-04, validation 06-05, test
# 06-06. The model is small enough that a training step takes milliseconds on one CPU thread.
#
# The store is ingested from the embedded sandbox and built once into a folder that every
# caller shares (:func:`ensure_tiny_store` is idempotent), so that the training tests and the
# flow tests pay for one ingestion.

TINY_FIRST, TINY_LAST = dt.date(2019, 6, 1), dt.date(2019, 6, 6)
TINY_REGION = {"north": 33.0, "south": 21.0, "west": 24.0, "east": 42.0}
TINY_CHANNELS = {
    "weather": ["t2m", "u10", "tp"],
    "pollutants": ["pm2p5", "go3_925"],
    "static": ["lsm"],
}
TINY_PERIODS = {
    "train": {"start": "2019-06-01", "end": "2019-06-04"},
    "validation": {"start": "2019-06-05", "end": "2019-06-05"},
    "test": {"start": "2019-06-06", "end": "2019-06-06"},
}
TINY_MODEL = {"patch_size": 2, "width": 32, "depth": 2, "heads": 2}
#: 4 days × 8 times with leads 3, 6, 12, 24 h: 31 + 30 + 28 + 24 = 113 training samples,
#: 15 steps per epoch at batch size 8
TINY_TRAINING: dict[str, Any] = {
    "lead_hours": [3, 6, 12, 24],
    "batch_size": 8,
    "epochs": 2,
    "learning_rate": 2e-3,
    "warmup_steps": 4,
    "in_memory": True,
    "num_workers": 0,
    "checkpoint_every_steps": 3,
    "device": "cpu",
    "seed": 0,
}
TINY_TRAIN_SAMPLES = 113
TINY_STEPS_PER_EPOCH = 15
#: the steps :func:`ensure_tiny_forecaster` trains: its forecasts need not be good, only real
TINY_FORECASTER_STEPS = 6


def single_thread_env() -> dict[str, str]:
    """This process's environment with single-threaded torch, for subprocesses.

    The figures are then the same from run to run (a reduction's order depends on the thread
    count), and a loaded 2-core machine is not oversubscribed.
    """
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }


def tiny_training_recipe(
    root: Path, store_url: Path | None = None, **changes: Any
) -> dict[str, Any]:
    """The tiny recipe as plain data, raw cache (and default store) under ``root``.

    ``changes`` replace top-level sections; ``training`` and ``model`` are merged into the
    tiny ones.
    """
    data: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text())
    data.update(
        region=TINY_REGION,
        variables=TINY_CHANNELS,
        periods=TINY_PERIODS,
        paths={"root": str(root)},
        ingest={"sleep_max": 0.2},
        model=TINY_MODEL | changes.pop("model", {}),
        training=TINY_TRAINING | changes.pop("training", {}),
    )
    if store_url is not None:
        data["store"] = {"url": str(store_url)}
    data.update(changes)
    return data


def tiny_training_config(data: dict[str, Any]) -> AirCastConfig:
    """``data`` (a :func:`tiny_training_recipe`, perhaps changed) validated."""
    return parse_config(data, "tiny training recipe")


def merge_sections(data: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a recipe as plain data) with ``changes`` applied one level deep: a mapping
    updates the section of its name, anything else replaces it. Changes ``data``; returns it."""
    for section, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **value}
        else:
            data[section] = value
    return data


def write_recipe(path: Path, data: dict[str, Any]) -> Path:
    """``data`` as YAML at ``path`` (its folder created); ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def ensure_tiny_store(root: Path) -> Path:
    """Ingest and build the tiny store under ``root`` unless done already; the recipe's path.

    Returns ``root/recipe.yaml`` (store at ``root/store.zarr``, raw cache at ``root/raw``).
    """
    path = root / "recipe.yaml"
    done = root / ".built"
    if done.is_file():
        return path
    from aircast.jobs.build import run_build

    data = tiny_training_recipe(root)
    config = tiny_training_config(data)
    ingest_from_sandbox(config, TINY_FIRST, TINY_LAST)
    run_build(config)
    write_recipe(path, data)
    done.touch()
    return path


# ---------------------------------------------------------------------------------------------
# a forecaster trained a few steps on the tiny store
#
# The tiny training store (9×13 cells, six days of June 2019), a model trained for a few steps
# on it (the forecasts need not be good, only real), and a forecast store under the same
# folder. The CAMS forecast runs are left to the code that forecasts: it fetches them from the
# embedded sandbox.


def tiny_forecast_recipe(root: Path, **forecast: Any) -> dict[str, Any]:
    """The tiny recipe with a forecast section (``forecast`` entries override it)."""
    data = tiny_training_recipe(root)
    data["forecast"] = {
        "checkpoint": str(root / "checkpoints" / "last.ckpt"),
        "url": str(root / "forecast.zarr"),
        **forecast,
    }
    return data


def ensure_tiny_forecaster(root: Path) -> Path:
    """The tiny store and a few-step checkpoint under ``root``; returns the recipe's path.

    The recipe (``root/forecast-recipe.yaml``) forecasts with ``root/checkpoints/last.ckpt``
    into ``root/forecast.zarr``.
    """
    path = root / "forecast-recipe.yaml"
    if path.is_file():
        return path
    ensure_tiny_store(root)
    from aircast.training.loop import train

    data = tiny_forecast_recipe(root)
    train(tiny_training_config(data), max_steps=TINY_FORECASTER_STEPS)
    write_recipe(path, data)
    return path


def write_forecast_variant(root: Path, name: str, **forecast: Any) -> Path:
    """A copy of the trained recipe with other forecast settings, e.g. another store URL."""
    return write_recipe(root / f"{name}.yaml", tiny_forecast_recipe(root, **forecast))


# ---------------------------------------------------------------------------------------------
# the tiny evaluation recipe
#
# The demo's cut down: a 7×11 grid at 1.5°, two weather, three pollutant and one static
# channel, five days (train 06-01..06-02, validation 06-03, test 06-04..06-05) ingested from
# the embedded sandbox, a one-block transformer trained for four steps and a 48-hour rollout
# horizon. The CAMS forecast of the test days is left to ``aircast evaluate`` itself.

TINY_EVALUATION_FIRST, TINY_EVALUATION_LAST = dt.date(2019, 6, 1), dt.date(2019, 6, 5)
TINY_EVALUATION_STEPS = 4


def tiny_evaluation_recipe(root: Path, **changes: Any) -> dict[str, Any]:
    """The tiny evaluation recipe as a YAML-able mapping, its files under ``root``;
    ``changes`` replace top-level sections."""
    data: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text())
    data["name"] = "tiny-eval"
    data["region"] = {"north": 33.0, "south": 24.0, "west": 24.0, "east": 39.0}
    data["variables"] = {
        "weather": ["t2m", "u10"],
        "pollutants": ["pm2p5", "pm10", "go3_925"],
        "static": ["lsm"],
    }
    data["periods"] = {
        "train": {"start": "2019-06-01", "end": "2019-06-02"},
        "validation": {"start": "2019-06-03", "end": "2019-06-03"},
        "test": {"start": "2019-06-04", "end": "2019-06-05"},
    }
    data["paths"] = {"root": str(root)}
    data["ingest"] = {"sleep_max": 0.2, "forecast_lead_hours": 48}
    data["model"] = {"patch_size": 2, "width": 32, "depth": 1, "heads": 2}
    data["training"] = {
        "lead_hours": list(range(3, 25, 3)),
        "max_lead_hours": 48,
        "batch_size": 8,
        "epochs": 1,
        "warmup_steps": 2,
        "num_workers": 0,
        "in_memory": True,
        "device": "cpu",
    }
    data.update(changes)
    return data


@dataclass(frozen=True)
class TinyEvaluation:
    """The tiny evaluation recipe, its store and checkpoint."""

    config: AirCastConfig
    config_path: Path
    checkpoint: Path
    root: Path


def build_tiny_evaluation(root: Path) -> TinyEvaluation:
    """Ingest, build and train the tiny evaluation recipe under ``root`` (an empty folder):
    the recipe at ``root/tiny.yaml``, the checkpoint of its last step."""
    from aircast.jobs.build import run_build
    from aircast.training.loop import train

    data = tiny_evaluation_recipe(root)
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = parse_config(data, str(config_path))
    ingest_from_sandbox(config, TINY_EVALUATION_FIRST, TINY_EVALUATION_LAST)
    run_build(config)
    result = train(config, max_steps=TINY_EVALUATION_STEPS)
    return TinyEvaluation(config, config_path, result.last, root)


# ---------------------------------------------------------------------------------------------
# byte-level comparisons


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path → bytes)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def assert_same_files(a: Path, b: Path) -> None:
    """Two stores hold the same files with the same bytes.

    Raises
    ------
    AssertionError
        Naming the files that one holds and the other lacks, or the first ten that differ.
    """
    files_a, files_b = snapshot(a), snapshot(b)
    if sorted(files_a) != sorted(files_b):
        only_a, only_b = sorted(files_a.keys() - files_b), sorted(files_b.keys() - files_a)
        raise AssertionError(f"only in {a}: {only_a[:10]}; only in {b}: {only_b[:10]}")
    different = [name for name in files_a if files_a[name] != files_b[name]]
    if different:
        raise AssertionError(f"files differ: {different[:10]}")
