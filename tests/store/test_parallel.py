"""Scale-out and crash safety: parts on a Dask cluster in any order give the same bytes as a
serial build, and a part killed while writing is repaired by running it again."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zarr
from distributed import Client, LocalCluster
from storetools import ConfigFactory

from aircast.jobs.build import build_executor, run_build
from aircast.jobs.executor import ThreadExecutor
from aircast.store.build import (
    finalise_store,
    init_store,
    load_part,
    part_name,
    verify_store,
)
from aircast.store.reader import open_store
from aircast.store.schema import StoreIncompleteError
from aircast.testing import assert_same_files


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """A local cluster of two worker processes, as the build starts by default."""
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


def test_shuffled_parts_on_dask_give_a_byte_identical_store(
    reference_store: Path, make_config: ConfigFactory, client: Client
) -> None:
    config = make_config()
    init_store(config)
    order = [0, 1, 2]
    random.Random(3).shuffle(order)
    assert order != [0, 1, 2]
    # tasks carry the config and an index, never arrays
    futures = [client.submit(load_part, config, index, pure=False) for index in order]
    results = client.gather(futures)
    assert sorted(r.index for r in results) == [0, 1, 2]
    finalise_store(config)
    verify_store(config, deep=True)
    assert_same_files(reference_store, Path(config.store_url))
    stats, ref = (
        open_store(config.store_url).statistics,
        open_store(str(reference_store)).statistics,
    )
    assert stats.mean.tobytes() == ref.mean.tobytes()
    assert stats.log_std.tobytes() == ref.log_std.tobytes()


def test_build_on_a_scheduler_address_gives_the_same_store(
    reference_store: Path,
    make_config: ConfigFactory,
    client: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # store.dask_scheduler: the way a real cluster is named in a config
    config = make_config(store={"dask_scheduler": client.scheduler.address})
    with caplog.at_level(logging.INFO, logger="aircast"), build_executor(config) as executor:
        result = run_build(config, executor=executor)
    lines = caplog.messages
    assert result.loaded == [0, 1, 2] and result.workers == 2
    assert any(client.scheduler.address in line for line in lines)
    assert any("part 1 (2019-06-03..2019-06-04)" in line for line in lines)
    assert_same_files(reference_store, Path(config.store_url))
    assert client.status == "running", "a cluster the build did not start stays up"


def test_parts_on_threads_of_one_process_give_a_byte_identical_store(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    # how the build flow loads parts without a cluster: threads beside each other, sharing the
    # process's BLAS (which the regrid pins to one thread, as a Dask worker's is)
    config = make_config()
    result = run_build(config, executor=ThreadExecutor(max_workers=3))
    assert result.loaded == [0, 1, 2]
    assert_same_files(reference_store, Path(config.store_url))


def test_the_build_starts_a_local_cluster_by_default(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    config = make_config(store={"dask_workers": 2})
    with build_executor(config) as executor:
        result = run_build(config, executor=executor)
    assert result.workers == 2
    assert_same_files(reference_store, Path(config.store_url))


_KILLED_PART = """
import asyncio, json, sys, uuid
from zarr.storage import LocalStore
from aircast.config import parse_config
from aircast.store.build import load_part

original = LocalStore.set
written = 0

async def slow_set(self, key, value, *args, **kwargs):
    global written
    if not key.startswith("fields/c/"):
        return await original(self, key, value, *args, **kwargs)
    written += 1
    if written == 1:
        await original(self, key, value, *args, **kwargs)
        print("WROTE", key, flush=True)
        return
    # what a kill inside zarr's atomic write leaves: half a temporary file, no rename
    path = self.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(f".{uuid.uuid4().hex}.partial").write_bytes(value.to_bytes()[:100])
    print("PARTIAL", key, flush=True)
    await asyncio.sleep(3600)

LocalStore.set = slow_set
load_part(parse_config(json.loads(sys.argv[1])), int(sys.argv[2]))
"""


def test_a_part_killed_while_writing_is_repaired_by_a_rerun(
    reference_store: Path, make_config: ConfigFactory, tmp_path: Path
) -> None:
    config = make_config()
    init_store(config)
    load_part(config, 0)
    load_part(config, 2)
    script = tmp_path / "killed_part.py"
    script.write_text(textwrap.dedent(_KILLED_PART))
    process = subprocess.Popen(
        [sys.executable, str(script), json.dumps(config.model_dump(mode="json")), "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    deadline = time.monotonic() + 120
    try:
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            markers = {seen_line.split()[0] for seen_line in seen}
            if {"WROTE", "PARTIAL"} <= markers:
                break  # one chunk written, another half-written: kill now
        assert any(line.startswith("WROTE") for line in seen), "".join(seen)
        assert any(line.startswith("PARTIAL") for line in seen), "".join(seen)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    root = Path(config.store_url)
    assert list(root.rglob("*.partial")), "the kill should leave a temporary file"
    part = zarr.open_group(str(root), mode="r", use_consolidated=False)[part_name(1)]
    assert part.attrs["complete"] is False
    with pytest.raises(StoreIncompleteError, match="parts 1 of 3 are not loaded"):
        finalise_store(config)

    load_part(config, 1)
    finalise_store(config)
    verify_store(config, deep=True)
    assert not list(root.rglob("*.partial"))
    assert_same_files(reference_store, root)
