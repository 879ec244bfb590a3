"""The training loop on the tiny store: it learns, it resumes after a kill to the same weights,
it refuses checkpoints of other stores or channel lists, and it runs under torchrun (DDP).

Every run is single-threaded (``one_thread``, ``single_thread_env()``): CPU kernels then reduce
in a fixed order, which is what makes a resumed run bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from aircast.cli import app
from aircast.config import AirCastConfig, load_config
from aircast.data.dataset import StoreSamples
from aircast.jobs.build import run_build
from aircast.model.forecaster import Forecaster
from aircast.store.reader import open_store
from aircast.testing import (
    TINY_STEPS_PER_EPOCH,
    TINY_TRAIN_SAMPLES,
    TINY_TRAINING,
    single_thread_env,
    tiny_training_config,
    write_recipe,
)
from aircast.training.checkpoint import CheckpointError, load_checkpoint, load_forecaster
from aircast.training.loop import (
    _keep_records_until,
    build_loss,
    build_model,
    epoch_order,
    rank_share,
    train,
)
from aircast.training.losses import AirCastLoss

REPO = Path(__file__).resolve().parents[2]
TOTAL_STEPS = TINY_TRAINING["epochs"] * TINY_STEPS_PER_EPOCH


def recipe_data(tiny_recipe: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(tiny_recipe.read_text())
    return data


def derived_recipe(tiny_recipe: Path, target: Path, **training: Any) -> Path:
    """The tiny recipe with some training settings changed, written to ``target``."""
    data = recipe_data(tiny_recipe)
    data["training"] = {**data["training"], **training}
    return write_recipe(target, data)


def fixed_loss(model: Forecaster, loss_fn: AirCastLoss, samples: StoreSamples) -> float:
    """The training loss over the first 48 samples (fixed, in store order)."""
    batch = samples.collate([samples[k] for k in range(48)])
    assert batch.targets is not None
    with torch.no_grad():
        z_in = model.normaliser.normalise(batch.inputs)
        z_out = model.forward_normalised(
            z_in, batch.lead_hours, batch.init_hour_of_day, batch.init_day_of_year
        )
        loss, _ = loss_fn(z_out, model.target_normaliser().normalise(batch.targets))
    return float(loss)


@pytest.fixture(scope="module")
def trained(tiny_recipe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the checkpoints of 20 steps on the tiny store (read-only)."""
    out = tmp_path_factory.mktemp("trained")
    torch.set_num_threads(1)
    train(load_config(tiny_recipe), out_dir=out, max_steps=20)
    return out


# ---- learning


def initial_loss(config: AirCastConfig) -> tuple[float, Forecaster, AirCastLoss, StoreSamples]:
    """The fixed loss of the model the loop starts from, with what it was computed from."""
    store = open_store(config.store_url)
    torch.manual_seed(config.training.seed)  # the loop's initial weights
    model, channels = build_model(config, store)
    loss_fn = build_loss(config, store, model)
    period = config.periods.train
    samples = StoreSamples(
        config.store_url, (period.start, period.end), config.training.lead_hours, channels
    )
    return fixed_loss(model, loss_fn, samples), model, loss_fn, samples


def test_a_batch_of_store_samples_knows_its_time_and_grid(tiny_recipe: Path) -> None:
    """The collated batch carries each sample's initial time and the store's grid; the hour
    and day of year the model sees are those of that time."""
    config = load_config(tiny_recipe)
    store = open_store(config.store_url)
    _, _, _, samples = initial_loss(config)
    picks = [0, 9, 40]
    batch = samples.collate([samples[k] for k in picks])
    expected = store.times[samples.index[picks, 0]]
    assert batch.init_time.dtype == np.dtype("datetime64[ns]")
    assert (batch.init_time == expected).all()
    assert batch.grid.shape == batch.inputs.shape[2:]
    assert (batch.grid.latitudes == store.ds["latitude"].values).all()
    assert batch.grid.resolution == store.attrs["grid"]["resolution"]
    hours = (expected - expected.astype("datetime64[D]")) / np.timedelta64(1, "h")
    assert batch.init_hour_of_day.tolist() == hours.tolist()
    days = [dt.date.fromisoformat(str(t)[:10]).timetuple().tm_yday for t in expected]
    assert batch.init_day_of_year.tolist() == days


def test_a_few_steps_reduce_the_loss(tiny_recipe: Path, tmp_path: Path) -> None:
    """The network learns. Measured on the persistence residual: on four training days the
    diurnal climatology is nearly each hour's own mean, so the climatology baseline leaves
    the network little to gain in 20 steps (see the next test)."""
    data = recipe_data(tiny_recipe)
    data["model"] = {**data["model"], "residual": "persistence"}
    config = tiny_training_config(data)
    before, model, loss_fn, samples = initial_loss(config)
    train(config, out_dir=tmp_path, max_steps=20)
    ckpt = load_checkpoint(tmp_path / "last.ckpt")
    assert ckpt.meta.step == 20 and ckpt.meta.epoch == 1
    model.load_state_dict(ckpt.model)
    after = fixed_loss(model, loss_fn, samples)
    # the heads start at zero, so "before" is persistence's loss; single-threaded runs are
    # reproducible, so the margin (1.164 → 1.048 when written) is not a matter of luck
    assert after < 0.95 * before, (before, after)


def test_the_climatology_baseline_starts_far_below_persistence(tiny_recipe: Path) -> None:
    """Untrained, the default model (damped anomaly persistence) has well under half the loss
    of persistence on the same samples (0.373 against 1.164 when written)."""
    data = recipe_data(tiny_recipe)
    data["model"] = {**data["model"], "residual": "persistence"}
    persistence, *_ = initial_loss(tiny_training_config(data))
    anomaly, *_ = initial_loss(load_config(tiny_recipe))
    assert anomaly < 0.5 * persistence, (anomaly, persistence)


def test_metrics_and_checkpoints_of_a_run(trained: Path) -> None:
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1]
    assert records[0]["step"] == TINY_STEPS_PER_EPOCH
    validation = records[0]["validation"]
    assert validation["channels"] == ["pm2p5", "go3_925"]
    assert validation["leads"] == [3, 6, 12]  # 24 h from the one validation day runs past it
    best = load_checkpoint(trained / "best.ckpt")
    assert (
        best.meta.step == TINY_STEPS_PER_EPOCH and best.meta.best_score == records[0]["val_score"]
    )
    # the stop at max_steps is mid-epoch: last.ckpt says where to go on
    last = load_checkpoint(trained / "last.ckpt")
    assert last.training["batch_in_epoch"] == 20 - TINY_STEPS_PER_EPOCH


def test_a_run_resumed_at_its_budget_trains_no_further(tiny_recipe: Path, tmp_path: Path) -> None:
    config = load_config(tiny_recipe)
    result = train(config, out_dir=tmp_path, max_steps=2)
    before = load_checkpoint(result.last)
    again = train(config, out_dir=tmp_path, max_steps=2)
    after = load_checkpoint(again.last)
    assert again.steps == 2 and after.meta.step == 2
    assert all(torch.equal(before.model[k], after.model[k]) for k in before.model)


def test_a_fresh_run_starts_its_own_files(tiny_recipe: Path, tmp_path: Path) -> None:
    config = load_config(tiny_recipe)
    train(config, out_dir=tmp_path, max_steps=TINY_STEPS_PER_EPOCH)
    assert (tmp_path / "best.ckpt").is_file() and (tmp_path / "metrics.jsonl").is_file()
    result = train(config, out_dir=tmp_path, max_steps=2, resume=False)
    assert result.steps == 2 and result.best is None
    assert not (tmp_path / "metrics.jsonl").exists()


# ---- resume after a kill


def cli_train(recipe: Path, out_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "aircast",
        "train",
        str(recipe),
        "--out-dir",
        str(out_dir),
        *extra,
    ]


def run_cli(recipe: Path, out_dir: Path, *extra: str) -> str:
    done = subprocess.run(
        cli_train(recipe, out_dir, *extra),
        env=single_thread_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def kill_after_mid_epoch_checkpoint(recipe: Path, out_dir: Path) -> None:
    """Start ``aircast train`` and SIGKILL it as soon as it has written a checkpoint."""
    process = subprocess.Popen(
        cli_train(recipe, out_dir),
        env=single_thread_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = out_dir / "last.ckpt"
    deadline = time.monotonic() + 300
    try:
        while not last.exists():
            if process.poll() is not None:
                pytest.fail(f"training ended before a checkpoint: {process.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within 300 s")
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL, "the run finished before it was killed"


def test_resume_after_kill_gives_the_same_weights(tiny_recipe: Path, tmp_path: Path) -> None:
    """SIGKILL mid-epoch, rerun: it goes on from the checkpoint's step and batch, and ends
    with exactly (bit for bit) the weights of a run that was never interrupted."""
    reference = tmp_path / "reference"
    run_cli(tiny_recipe, reference)

    resumed = tmp_path / "resumed"
    kill_after_mid_epoch_checkpoint(tiny_recipe, resumed)
    killed = load_checkpoint(resumed / "last.ckpt")
    step, batch = killed.meta.step, killed.training["batch_in_epoch"]
    assert 0 < step < TOTAL_STEPS
    assert 0 < batch < TINY_STEPS_PER_EPOCH, "killed at an epoch's end, not in the middle"

    out = run_cli(tiny_recipe, resumed)
    assert f"step {step}, epoch {killed.meta.epoch}, batch {batch}" in out, out

    want, got = load_checkpoint(reference / "last.ckpt"), load_checkpoint(resumed / "last.ckpt")
    assert got.meta.step == want.meta.step == TOTAL_STEPS
    assert got.meta.epoch == want.meta.epoch == TINY_TRAINING["epochs"]
    assert want.model.keys() == got.model.keys()
    different = [k for k in want.model if not torch.equal(want.model[k], got.model[k])]
    assert not different, f"weights differ after resuming: {different}"
    for a, b in zip(
        want.training["optimiser"]["state"].values(),
        got.training["optimiser"]["state"].values(),
        strict=True,
    ):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert got.meta.best_score == want.meta.best_score
    # one record per epoch, none lost or doubled by the kill, with the same validation
    records = [
        [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        for d in (reference, resumed)
    ]
    assert [r["epoch"] for r in records[1]] == [1, 2]
    assert [r["val_score"] for r in records[0]] == [r["val_score"] for r in records[1]]


def test_resume_drops_records_the_checkpoint_does_not_cover(tmp_path: Path) -> None:
    """Epochs recorded after the checkpoint a run resumes from (and a line cut by the kill)
    are dropped: the resumed run records them again."""
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2, 3)) + '{"epo')
    _keep_records_until(path, 2)
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2]


# ---- checkpoints that do not fit, and safe loading


def test_checkpoints_load_without_unpickling(trained: Path) -> None:
    payload = torch.load(trained / "last.ckpt", weights_only=True)
    assert payload["format"] == "aircast-checkpoint"
    meta = json.loads(payload["meta"])
    assert meta["input_channels"] == ["t2m", "u10", "tp", "pm2p5", "go3_925", "lsm"]
    assert set(payload["extra"]) == {"fmae_edges", "fmae_table"}
    # the normaliser's statistics are in the weights, once
    assert [k for k in payload["model"] if k.endswith(".log_mean")] == ["normaliser.log_mean"]


class _Exploit:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_checkpoint_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "evil.ckpt"
    torch.save({"format": "aircast-checkpoint", "payload": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="not a readable AirCast checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_checkpoint_of_another_store_is_refused(
    tiny_recipe: Path, trained: Path, tmp_path: Path
) -> None:
    """Another recipe (periods cut differently) gives a store of another fingerprint."""
    data = recipe_data(tiny_recipe)
    data["store"] = {"url": str(tmp_path / "other.zarr")}
    data["periods"] = {
        "train": {"start": "2019-06-01", "end": "2019-06-03"},
        "validation": {"start": "2019-06-04", "end": "2019-06-05"},
        "test": {"start": "2019-06-06", "end": "2019-06-06"},
    }
    config = tiny_training_config(data)
    run_build(config)
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "last.ckpt").write_bytes((trained / "last.ckpt").read_bytes())
    with pytest.raises(CheckpointError) as caught:
        train(config, out_dir=out, max_steps=1)
    message = str(caught.value)
    assert "recipe fingerprint" in message and "aircast train" in message
    assert open_store(config.store_url).fingerprint[:12] in message
    # the refused checkpoint is left as it was
    assert (out / "last.ckpt").read_bytes() == (trained / "last.ckpt").read_bytes()


def test_a_checkpoint_of_another_channel_list_is_refused(
    tiny_recipe: Path, trained: Path, tmp_path: Path
) -> None:
    """The single-task ablation predicts pollutants only: its target channels differ; the
    command says so on one line and exits 2."""
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "last.ckpt").write_bytes((trained / "last.ckpt").read_bytes())
    recipe = derived_recipe(tiny_recipe, tmp_path / "ablation.yaml", pollutants_only=True)
    result = CliRunner().invoke(
        app, ["train", str(recipe), "--out-dir", str(out), "--max-steps", "1"]
    )
    assert result.exit_code == 2, result.output
    assert "error: the checkpoint does not match" in result.output
    assert "target channels ['t2m', 'u10', 'tp', 'pm2p5', 'go3_925']" in result.output
    assert "['pm2p5', 'go3_925']" in result.output
    # starting afresh is the way out, and works
    fresh = CliRunner().invoke(
        app, ["train", str(recipe), "--out-dir", str(out), "--max-steps", "1", "--fresh"]
    )
    assert fresh.exit_code == 0, fresh.output
    assert load_checkpoint(out / "last.ckpt").meta.target_channels == ("pm2p5", "go3_925")


def test_a_checkpoint_of_another_model_size_is_refused(
    tiny_recipe: Path, trained: Path, tmp_path: Path
) -> None:
    data = recipe_data(tiny_recipe)
    data["model"] = {**data["model"], "width": 64}
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "last.ckpt").write_bytes((trained / "last.ckpt").read_bytes())
    with pytest.raises(
        CheckpointError,
        match=r"holds a model of other sizes than this recipe's \(model.width 32 → 64\)",
    ):
        train(tiny_training_config(data), out_dir=out, max_steps=21)


def test_a_checkpoint_of_the_first_format_resumes(
    tiny_recipe: Path, trained: Path, tmp_path: Path
) -> None:
    """Checkpoints written while the target normaliser was a cached submodule carry its
    buffers too (data/demo's did): they load, and training goes on from them."""
    payload = torch.load(trained / "last.ckpt", weights_only=True)
    for name in ("mean", "std", "log_mean", "log_std", "log_offset", "log_mask", "positive"):
        payload["model"][f"_target_normaliser.{name}"] = payload["model"][f"normaliser.{name}"]
    out = tmp_path / "ckpt"
    out.mkdir()
    torch.save(payload, out / "last.ckpt")
    assert load_checkpoint(out / "last.ckpt").model.keys() == payload["model"].keys() - {
        k for k in payload["model"] if k.startswith("_target_normaliser.")
    }
    result = train(load_config(tiny_recipe), out_dir=out, max_steps=21)
    assert result.steps == 21


# ---- the model's diurnal climatology


def test_the_models_climatology_is_the_training_periods_mean_by_hour(tiny_recipe: Path) -> None:
    """Built from the training days only (06-01..06-04), per hour of day and cell, in the
    model's normalised space; a reference by numpy grouping."""
    config = load_config(tiny_recipe)
    store = open_store(config.store_url)
    model, channels = build_model(config, store)
    times = store.times[store.times < np.datetime64("2019-06-05")]
    assert times.size == 4 * 8
    fields = store.read(times).sel(channel=list(channels.targets)).values
    z = model.target_normaliser().normalise(torch.from_numpy(fields)).numpy()
    hour = times.astype("datetime64[h]").astype(np.int64) % 24
    assert model.climatology_hours.tolist() == list(range(0, 24, 3))
    for slot, h in enumerate(range(0, 24, 3)):
        expected = np.nanmean(z[hour == h], axis=0)
        np.testing.assert_allclose(model.climatology[slot].numpy(), expected, atol=1e-5)
    # the validation day would move the means: they are not in
    late = store.read(store.times[store.times >= np.datetime64("2019-06-05")][:1])
    assert not np.allclose(fields[0], late.sel(channel=list(channels.targets)).values[0])


def test_a_persistence_residual_model_trains_and_loads(tiny_recipe: Path, tmp_path: Path) -> None:
    """``model.residual: persistence`` (the ablation, and checkpoints written before the
    climatology existed): no climatology in the checkpoint, and the loader builds the model
    without one."""
    data = recipe_data(tiny_recipe)
    data["model"] = {**data["model"], "residual": "persistence"}
    result = train(tiny_training_config(data), out_dir=tmp_path, max_steps=3)
    ckpt = load_checkpoint(result.last)
    assert "climatology" not in ckpt.model
    model = load_forecaster(ckpt, open_store(load_config(tiny_recipe).store_url))
    assert model.anomaly_decay is None


def test_a_climatology_model_loads_with_its_own_climatology(
    tiny_recipe: Path, trained: Path
) -> None:
    ckpt = load_checkpoint(trained / "last.ckpt")
    assert tuple(ckpt.model["climatology"].shape) == (8, 5, 9, 13)
    model = load_forecaster(ckpt, open_store(load_config(tiny_recipe).store_url))
    torch.testing.assert_close(model.climatology, ckpt.model["climatology"])
    assert model.anomaly_decay is not None
    torch.testing.assert_close(model.anomaly_decay.detach(), ckpt.model["anomaly_decay"])


# ---- data order and distributed training


def test_rank_shares_are_equal_and_cover_the_epoch() -> None:
    order = epoch_order(TINY_TRAIN_SAMPLES, 0, 3)
    assert np.array_equal(order, epoch_order(TINY_TRAIN_SAMPLES, 0, 3))
    assert not np.array_equal(order, epoch_order(TINY_TRAIN_SAMPLES, 0, 4))
    for world in (1, 2, 3, 4):
        shares = [rank_share(order, r, world) for r in range(world)]
        assert len({len(s) for s in shares}) == 1, "every rank must run the same steps"
        assert set(np.concatenate(shares)) == set(range(TINY_TRAIN_SAMPLES))
        assert sum(len(s) for s in shares) - TINY_TRAIN_SAMPLES < world


def test_ddp_ranks_read_their_own_shares(tiny_recipe: Path, tmp_path: Path) -> None:
    """torchrun with two CPU processes (gloo): each rank reads its own samples, the ranks end
    with identical weights (gradients are averaged), and only rank 0 writes files."""
    # each rank reads 57 samples an epoch (113 padded to 114), 8 steps of batch 8: ten steps
    # cross into the second epoch, so validation and the end-of-epoch checkpoint run too
    per_rank_steps, steps = 8, 10
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(Path(__file__).with_name("ddp_train.py")),
            str(tiny_recipe),
            str(tmp_path),
            str(steps),
        ],
        env=single_thread_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert ranks[0]["steps"] == ranks[1]["steps"] == steps
    assert ranks[0]["weights"] == ranks[1]["weights"]
    for epoch in (0, 1):
        reads = [r["reads"][epoch] for r in ranks]
        expected = [rank_share(epoch_order(TINY_TRAIN_SAMPLES, 0, epoch), r, 2) for r in (0, 1)]
        for rank in (0, 1):
            want = expected[rank] if epoch == 0 else expected[rank][: 8 * (steps - per_rank_steps)]
            assert reads[rank] == want.tolist()
        if epoch == 0:
            # disjoint, but for the one sample that pads 113 to an even count
            overlap = set(reads[0]) & set(reads[1])
            assert overlap == {int(expected[0][0])}
            assert set(reads[0]) | set(reads[1]) == set(range(TINY_TRAIN_SAMPLES))
        else:
            assert not set(reads[0]) & set(reads[1])
    ckpt = load_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert ckpt.meta.step == steps
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
        "metrics.jsonl",
    ]


# ---- checkpoints missing weights, and a budget of no steps


def _edited_checkpoint(trained: Path, target: Path, edit: Any) -> Path:
    payload = torch.load(trained / "last.ckpt", weights_only=True)
    edit(payload["model"])
    torch.save(payload, target)
    return target


@pytest.mark.parametrize(
    ("case", "edit", "named"),
    [
        ("a block's weight", lambda m: m.pop("backbone.blocks.0.qkv.weight"), "lacks 1 weight"),
        ("the climatology's hours", lambda m: m.pop("climatology_hours"), "lacks 1 weight"),
        ("an extra weight", lambda m: m.update(stray=torch.zeros(2)), "holds 1 the model"),
        ("a reshaped weight", lambda m: m.update(climatology=m["climatology"][:1]), "shapes"),
    ],
    ids=["block weight", "climatology hours", "extra weight", "reshaped weight"],
)
def test_a_checkpoint_with_weights_edited_is_refused_naming_them(
    tiny_recipe: Path, trained: Path, tmp_path: Path, case: str, edit: Any, named: str
) -> None:
    payload = torch.load(trained / "last.ckpt", weights_only=True)
    before = set(payload["model"])
    path = _edited_checkpoint(trained, tmp_path / "edited.ckpt", edit)
    after = set(torch.load(path, weights_only=True)["model"])
    store = open_store(load_config(tiny_recipe).store_url)
    with pytest.raises(CheckpointError) as caught:
        load_forecaster(load_checkpoint(path), store)
    message = str(caught.value)
    assert str(path) in message and named in message, (case, message)
    for key in (before ^ after) or {"climatology"}:
        assert key in message, (case, key, message)
    assert "aircast train CONFIG --fresh" in message


def test_the_weights_check_admits_the_checkpoint_as_written(
    tiny_recipe: Path, trained: Path
) -> None:
    model = load_forecaster(
        load_checkpoint(trained / "last.ckpt"), open_store(load_config(tiny_recipe).store_url)
    )
    saved = torch.load(trained / "last.ckpt", weights_only=True)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("steps", ["-1", "0"])
def test_train_refuses_a_budget_of_no_steps(tiny_recipe: Path, tmp_path: Path, steps: str) -> None:
    out = tmp_path / "ckpt"
    result = CliRunner().invoke(
        app, ["train", str(tiny_recipe), "--out-dir", str(out), "--max-steps", steps]
    )
    assert result.exit_code == 2, result.output
    assert f"--max-steps {steps}: give a positive number of optimiser steps" in result.output
    assert "checkpoints:" not in result.output
    assert not out.exists()
