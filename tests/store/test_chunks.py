"""Damaged chunks: `store verify` and `store inspect --deep` name them; the readers translate
a codec's bare error into one naming the store, the chunk and the fix; `--rebuild` repairs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from storetools import ConfigFactory
from typer.testing import CliRunner

from aircast.cli import app
from aircast.config import AirCastConfig
from aircast.data.dataset import Channels, StoreSamples
from aircast.store.integrity import CorruptChunkError
from aircast.store.reader import open_store
from aircast.testing import snapshot

#: fields chunks are one time step each: times 5 and 17 of the tiny store
DAMAGED = ("fields/c/5/0/0/0", "fields/c/17/0/0/0")


def _damaged_copy(reference: Path, config: AirCastConfig, keys: tuple[str, ...]) -> Path:
    """A copy of the reference store with each chunk of ``keys`` truncated to half."""
    root = Path(config.store_url)
    shutil.copytree(reference, root)
    for key in keys:
        chunk = root / key
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    return root


def _recipe(config: AirCastConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def test_verify_names_every_damaged_chunk_and_changes_nothing(
    reference_store: Path, make_config: ConfigFactory, tmp_path: Path
) -> None:
    config = make_config()
    root = _damaged_copy(reference_store, config, DAMAGED)
    before = snapshot(root)
    result = CliRunner().invoke(app, ["store", "verify", str(_recipe(config, tmp_path / "r.yaml"))])
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "2 damaged chunk(s)" in out
    for key in DAMAGED:
        assert f"fields chunk {key} ({root}/{key})" in out
    assert "blosc" in out  # the decoder's own words, after the names
    assert "aircast store build CONFIG --rebuild" in out
    assert snapshot(root) == before


def test_rebuild_repairs_damaged_fields(
    reference_store: Path, make_config: ConfigFactory, tmp_path: Path
) -> None:
    config = make_config()
    root = _damaged_copy(reference_store, config, DAMAGED)
    recipe = _recipe(config, tmp_path / "r.yaml")
    runner = CliRunner()
    rebuilt = runner.invoke(app, ["store", "build", str(recipe), "--serial", "--rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    verified = runner.invoke(app, ["store", "verify", str(recipe)])
    assert verified.exit_code == 0, verified.output
    assert "every chunk read" in verified.output
    for key in DAMAGED:
        assert (root / key).read_bytes() == (reference_store / key).read_bytes()


def test_a_damaged_statistic_is_named_and_rebuilt_too(
    reference_store: Path, make_config: ConfigFactory, tmp_path: Path
) -> None:
    config = make_config()
    _damaged_copy(reference_store, config, ("stat_mean/c/0",))
    recipe = _recipe(config, tmp_path / "r.yaml")
    # even the quick check reads the statistics, and names the chunk rather than crash
    quick = CliRunner().invoke(app, ["store", "verify", str(recipe), "--quick"])
    assert quick.exit_code == 2, quick.output
    assert "stat_mean chunk stat_mean/c/0" in quick.output and "--rebuild" in quick.output
    with pytest.raises(CorruptChunkError, match="stat_mean/c/0"):
        open_store(config.store_url).statistics  # noqa: B018  (the property reads)


def test_a_damaged_coordinate_needs_a_new_build(
    reference_store: Path, make_config: ConfigFactory, tmp_path: Path
) -> None:
    config = make_config()
    _damaged_copy(reference_store, config, ("latitude/c/0",))
    result = CliRunner().invoke(app, ["store", "verify", str(_recipe(config, tmp_path / "r.yaml"))])
    assert result.exit_code == 2, result.output
    assert "latitude chunk latitude/c/0" in result.output
    assert "set store.url to a new location" in " ".join(result.output.split())


def test_inspect_deep_reads_every_chunk(reference_store: Path, make_config: ConfigFactory) -> None:
    clean = CliRunner().invoke(app, ["store", "inspect", str(reference_store), "--deep"])
    assert clean.exit_code == 0, clean.output
    assert "none damaged" in clean.output and "chunks: all" in clean.output
    config = make_config()
    root = _damaged_copy(reference_store, config, DAMAGED[:1])
    shallow = CliRunner().invoke(app, ["store", "inspect", str(root)])
    assert shallow.exit_code == 0, shallow.output  # the summary reads no fields chunk
    deep = CliRunner().invoke(app, ["store", "inspect", str(root), "--deep"])
    assert deep.exit_code == 2, deep.output
    assert f"{root}/{DAMAGED[0]}" in deep.output and "1 damaged chunk" in deep.output


def test_the_readers_name_the_store_the_chunk_and_the_fix(
    reference_store: Path, make_config: ConfigFactory
) -> None:
    config = make_config()
    root = _damaged_copy(reference_store, config, DAMAGED[:1])
    store = open_store(str(root))
    with pytest.raises(CorruptChunkError) as caught:
        store.read(slice("2019-06-01T12", "2019-06-02"))  # time 5 is 06-01T15
    message = str(caught.value)
    assert f"{root} (training store)" in message and f"{root}/{DAMAGED[0]}" in message
    assert "--rebuild" in message
    assert [b.key for b in caught.value.bad] == [DAMAGED[0]]
    # the undamaged times still read, equal to the reference
    expected = open_store(str(reference_store)).read(slice("2019-06-02", "2019-06-03"))
    np.testing.assert_array_equal(store.read(slice("2019-06-02", "2019-06-03")), expected)

    names = store.channel_names
    channels = Channels.of_store(names)
    period = (config.periods.train.start, config.periods.train.end)
    samples = StoreSamples(str(root), period, [3], channels)
    touching = [k for k, row in enumerate(samples.index) if 5 in row[:2].tolist()]
    with pytest.raises(CorruptChunkError, match=DAMAGED[0]):
        samples[touching[0]]
    other = next(k for k, row in enumerate(samples.index) if 5 not in row[:2].tolist())
    assert samples[other]["inputs"].shape[0] == len(names)
    with pytest.raises(CorruptChunkError, match=DAMAGED[0]):
        StoreSamples(str(root), period, [3], channels, in_memory=True)
