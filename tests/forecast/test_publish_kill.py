"""Publishers killed with SIGKILL while readers poll: no reader ever sees a partial init.

A child process publishes a sequence of inits (each a deterministic function of its init, so a
reader can check it). The test kills it several times, at seeded random points, and restarts
it; the child publishes every init again, so the inits already complete are the no-op path and
the next one is new. Half of the kills are random in time (anywhere: imports, chunk writes,
read-back, commit, lock handling); the other half land after the child said that an init's
chunks were written and before it commits (the child pauses there), so a crashed publish's
orphans are certainly on disk. Meanwhile a reader thread polls ``open_forecast`` and plain
``xarray.open_zarr`` and checks that every visible init is whole and that the number of visible
inits never goes down. A last, unkilled run completes, and the store must then hold the same
bytes as one written without crashes.

Run as a script, this file is the child: ``python test_publish_kill.py URL N pause|nopause``.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr
from synthetic_runs import make_run, published_value

from aircast.forecast.publish import publish_forecast, published_init_times
from aircast.forecast.reader import open_forecast
from aircast.forecast.schema import ForecastStoreError
from aircast.testing import snapshot

SEED = 20190601
KILLS = 6
N_INITS = 16
CHANNELS = ("t2m", "pm2p5", "pm10", "go3_925")
LEADS = tuple(range(0, 73, 3))
LATS = 40.0 - 0.75 * np.arange(32)
LONS = -10.0 + 0.75 * np.arange(48)  # 32 × 48 cells: one tile, 0.15 MB a chunk
#: the pause of a child run with "pause" between an init's chunk writes and its commit, s
PAUSE = 0.5


def days(n: int) -> list[str]:
    """The inits, published in this order: a backfill in the middle (06-01 after 06-05)."""
    order = [*range(2, 7), 1, *range(7, n + 1)]
    return [f"2019-06-{d:02d}" for d in order]


def run_of(day: str) -> Any:
    return make_run(day, leads=LEADS, channels=CHANNELS, lats=LATS, lons=LONS)


def expected(init: np.datetime64) -> np.ndarray:
    return published_value(init, LEADS, CHANNELS, LATS, LONS)


# ---------------------------------------------------------------------------------------------
# the child


def child(url: str, n: int, pause: bool) -> None:
    """Publish the n inits; with ``pause``, say "written" after an init's chunk writes and
    wait PAUSE seconds before going on to its read-back and commit."""
    from aircast.forecast import publish

    real_write = publish._write_init

    def write_then_pause(*args: Any, **kwargs: Any) -> None:
        real_write(*args, **kwargs)
        print("written", flush=True)  # chunks of a new init are on disk, not committed
        time.sleep(PAUSE)

    if pause:
        publish._write_init = write_then_pause  # type: ignore[assignment]
    print("ready", flush=True)
    for day in days(n):
        publish.publish_forecast(url, run_of(day))
        print("done", day, flush=True)


# ---------------------------------------------------------------------------------------------
# the reader


class Reader(threading.Thread):
    """Polls the store until stopped; records every violation it sees."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.polls = 0
        self.seen = 0  # most complete inits seen so far
        self.checked = 0  # inits checked whole, over all polls

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll()
            except Exception as error:  # anything else is a failure too
                self.failures.append(f"poll {self.polls}: {type(error).__name__}: {error}")
            self.polls += 1
            time.sleep(0.005)  # leave the publisher its core while there is nothing to read

    def check(self, ds: xr.Dataset, how: str) -> int:
        n = int(ds.sizes["init_time"])
        if n < self.seen:
            self.failures.append(f"{how}: {n} inits visible after {self.seen} were")
        for init in ds["init_time"].values:
            self.checked += 1
            one = ds.sel(init_time=init)
            got = np.stack([one[name].values for name in CHANNELS], axis=1)
            if not np.isfinite(got).all():
                self.failures.append(f"{how}: init {init} has non-finite values")
            elif not np.allclose(got, expected(init), rtol=1e-6, atol=0):
                self.failures.append(f"{how}: init {init} is not the published run")
        latest = ds.attrs.get("latest_complete_init_time")
        if n and latest != str(ds["init_time"].values.max().astype("datetime64[s]")):
            self.failures.append(f"{how}: latest_complete_init_time {latest} is not the latest")
        return n

    def poll(self) -> None:
        try:
            store = open_forecast(self.url)
        except ForecastStoreError as error:
            if self.seen:
                self.failures.append(f"open_forecast failed after {self.seen} inits: {error}")
            return
        n = self.check(store.dataset, "open_forecast")
        try:
            plain = xr.open_zarr(self.url, consolidated=True)
        except Exception as error:
            self.failures.append(f"xarray.open_zarr failed on a committed store: {error}")
            return
        self.seen = max(self.seen, n, self.check(plain, "xarray.open_zarr"))


def orphans(url: str) -> int:
    """Inits written but not committed: the arrays' own length minus the committed one."""
    group = zarr.open_group(url, mode="r", use_consolidated=False)
    return int(group["pm2p5"].shape[0]) - int(published_init_times(url).size)


# ---------------------------------------------------------------------------------------------
# the test


def test_readers_never_see_a_partial_init(tmp_path: Path) -> None:
    began = time.monotonic()
    url = str(tmp_path / "forecast.zarr")
    rng = random.Random(SEED)
    reader = Reader(url)
    reader.start()
    command = [sys.executable, __file__, url, str(N_INITS)]
    kills: list[str] = []
    try:
        for k in range(KILLS):
            targeted = k % 2 == 1
            proc = subprocess.Popen(
                [*command, "pause" if targeted else "nopause"], stdout=subprocess.PIPE, text=True
            )
            assert proc.stdout is not None
            wanted = "written" if targeted else "ready"
            said = []
            while (line := proc.stdout.readline()) and not line.startswith(wanted):
                said.append(line.strip())
            assert line, f"the child ended before saying {wanted!r}: {said}"
            # random kills come within ~4 publishes of the start, so that inits are left for
            # the targeted runs whatever the machine's speed
            delay = rng.uniform(0, 0.2) if targeted else rng.uniform(0, 0.25)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            said += proc.stdout.read().splitlines()
            proc.stdout.close()
            assert proc.returncode == -signal.SIGKILL, said  # it had not finished
            published = sum(line.startswith("done") for line in said)
            kills.append(
                f"{'after a write' if targeted else 'random'} +{delay:.2f} s "
                f"({published} publish calls returned)"
            )
            if targeted:  # killed in the pause: an orphaned init is certainly on disk
                assert orphans(url) == 1, kills
        final = subprocess.run([*command, "nopause"], capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
    finally:
        time.sleep(0.2)  # one more poll of the finished store
        reader.stop.set()
        reader.join(timeout=30)

    assert not reader.failures, reader.failures[:5]
    assert reader.polls >= 10 and reader.checked >= 10, (reader.polls, reader.checked)
    store = open_forecast(url)
    assert store.init_times.size == N_INITS
    for init in store.init_times:
        np.testing.assert_allclose(
            store.forecast(init)[list(CHANNELS)]
            .to_array("channel")
            .transpose("lead_time", "channel", "latitude", "longitude")
            .values,
            expected(init),
            rtol=1e-6,
        )
    clean = tmp_path / "clean.zarr"
    for day in days(N_INITS):
        publish_forecast(str(clean), run_of(day))
    assert snapshot(Path(url)) == snapshot(clean), kills
    elapsed = time.monotonic() - began  # ~20-30 s on 2 busy cores
    print(f"kills: {kills}; {reader.polls} polls checked {reader.checked} inits; {elapsed:.1f} s")


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "pause")
