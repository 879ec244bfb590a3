"""The training loop: the same code on a CPU, one GPU, or many (torchrun + DDP).

AdamW with linear warm-up and cosine decay, gradient clipping, bf16 autocast on GPUs that
support it. A checkpoint is written every ``checkpoint_every_steps`` steps and at the end of
every epoch (``last.ckpt``), and at the best validation score (``best.ckpt``); a killed run
resumes from ``last.ckpt`` at the very step it reached, with the same data order (the order
of each epoch is a function of the seed and the epoch number only).

The validation score is the pollutants' skill against persistence, in physical units, per
lead time: ``1 - MAE(model) / MAE(persistence)`` for each pollutant and lead, averaged. It is
unitless, so channels measured in kg m-3 and kg kg-1 never mix, and > 0 means the model beats
persistence.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

import aircast
from aircast.config import AirCastConfig
from aircast.data.batch import Batch
from aircast.data.dataset import Channels, StoreSamples
from aircast.model.factory import new_forecaster, normaliser_of
from aircast.model.forecaster import DiurnalMean, Forecaster, ModelShape
from aircast.store.reader import TrainingStore, open_store
from aircast.training.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    check_compatible,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from aircast.training.climatology import diurnal_mean
from aircast.training.losses import AirCastLoss, FrequencyWeights, latitude_weights

LOG = logging.getLogger(__name__)


def checkpoint_dir(config: AirCastConfig) -> Path:
    return config.paths.root / "checkpoints"


def pick_device(setting: str) -> torch.device:
    """The device this process trains on, for ``training.device`` (auto, cpu or cuda).

    Under torchrun each local rank takes GPU ``LOCAL_RANK`` modulo the GPUs visible: with as
    many GPUs as ranks each rank has its own, and with fewer (two ranks on one GPU, as the
    gloo smoke run does) ranks share them, where indexing by rank alone would name a GPU
    that does not exist.

    Raises
    ------
    RuntimeError
        When ``setting`` is 'cuda' and no CUDA device is visible.
    """
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError(
                "training.device is 'cuda' but no CUDA device is visible: set training.device "
                "to 'auto' or 'cpu', or run where a GPU is (check CUDA_VISIBLE_DEVICES)"
            )
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu")


def build_model(config: AirCastConfig, store: TrainingStore) -> tuple[Forecaster, Channels]:
    """A fresh model for ``config`` on ``store``: its statistics and, for the
    ``climatology_anomaly`` residual, the training period's diurnal climatology."""
    channels = Channels.of_store(
        store.channel_names, pollutants_only=config.training.pollutants_only
    )
    m = config.model
    shape = ModelShape(m.patch_size, m.width, m.depth, m.heads, m.mlp_ratio, m.dropout)
    normaliser = normaliser_of(store, channels.inputs)
    climatology: DiurnalMean | None = None
    if m.residual == "climatology_anomaly":
        train = config.periods.train
        climatology = diurnal_mean(store, channels.targets, (train.start, train.end), normaliser)
    model = new_forecaster(store, channels, shape, normaliser=normaliser, climatology=climatology)
    return model, channels


def build_loss(config: AirCastConfig, store: TrainingStore, model: Forecaster) -> AirCastLoss:
    # a copy: the store's coordinate is read-only, and torch warns on non-writable arrays
    lat = torch.from_numpy(np.array(store.ds["latitude"].values, dtype="float64"))
    weights = latitude_weights(lat, config.grid.resolution)
    frequency = None
    pollutants = model.pollutant_channels
    if pollutants and config.training.loss.weighting != "none":
        hist = store.histograms
        edges = torch.from_numpy(np.stack([hist[c].edges_normalised for c in pollutants]))
        counts = torch.from_numpy(np.stack([hist[c].counts for c in pollutants]))
        frequency = FrequencyWeights(
            edges, counts, config.training.loss.weighting, config.training.loss.beta
        )
    s = config.training.loss
    return AirCastLoss(
        weights, len(model.weather_channels), frequency, s.weather_weight, s.pollutant_weight
    )


def checkpoint_meta(
    config: AirCastConfig,
    store: TrainingStore,
    channels: Channels,
    *,
    step: int,
    epoch: int,
    best_score: float | None,
) -> CheckpointMeta:
    """What a checkpoint of ``config``'s model on ``store`` says about itself."""
    return CheckpointMeta(
        recipe=json.loads(config.model_dump_json()),
        input_channels=channels.inputs,
        target_channels=channels.targets,
        grid={
            "latitudes": store.ds["latitude"].values.tolist(),
            "longitudes": store.ds["longitude"].values.tolist(),
            "resolution": config.grid.resolution,
        },
        store_fingerprint=store.fingerprint,
        step=step,
        epoch=epoch,
        best_score=best_score,
        code_version=aircast.__version__,
    )


def checkpoint_tensors(loss_fn: AirCastLoss) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint keeps beside the model's: the fMAE histogram edges and table."""
    if loss_fn.frequency is None:
        return {}
    return {"fmae_edges": loss_fn.frequency.edges, "fmae_table": loss_fn.frequency.table}


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up to 1, then cosine decay to 0 at ``total`` steps."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of an epoch: a function of (seed, epoch) only, so a resumed run sees
    the same batches as an uninterrupted one."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def rank_share(order: np.ndarray, rank: int, world: int) -> np.ndarray:
    """The samples one rank reads in an epoch: every ``world``-th of ``order`` from ``rank``.

    The order is first padded with its own beginning to a multiple of ``world`` (as torch's
    ``DistributedSampler`` does), so that every rank gets the same number of samples and so
    runs the same number of steps: with unequal shares one rank would finish its epoch while
    the others wait forever in DDP's gradient all-reduce.
    """
    pad = (-len(order)) % world
    if pad:
        order = np.concatenate([order, order[:pad]])
    return order[rank::world]


@dataclass
class Validation:
    """Pollutant skill per lead against persistence, physical units."""

    leads: list[int]
    channels: list[str]
    mae_model: np.ndarray  # (lead, pollutant)
    mae_persistence: np.ndarray  # (lead, pollutant)

    @property
    def skill(self) -> np.ndarray:
        return 1.0 - self.mae_model / np.maximum(self.mae_persistence, 1e-30)

    @property
    def score(self) -> float:
        return float(np.nanmean(self.skill))

    def table(self) -> str:
        head = "| lead (h) | " + " | ".join(f"{c} skill" for c in self.channels) + " |"
        rows = [head, "|" + "---|" * (len(self.channels) + 1)]
        for i, lead in enumerate(self.leads):
            rows.append(f"| {lead} | " + " | ".join(f"{v:+.3f}" for v in self.skill[i]) + " |")
        return "\n".join(rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "leads": self.leads,
            "channels": self.channels,
            "mae_model": self.mae_model.tolist(),
            "mae_persistence": self.mae_persistence.tolist(),
            "score": self.score,
        }


@torch.no_grad()
def validate(
    model: Forecaster,
    samples: StoreSamples,
    device: torch.device,
    lat_weights: torch.Tensor,
    batch_size: int,
) -> Validation:
    """MAE of model and persistence per lead and pollutant over a period, physical units."""
    model.eval()
    pollutants = list(model.pollutant_channels)
    p_index = [model.target_channels.index(c) for c in pollutants]
    p_input = model.target_index[p_index].cpu()
    leads = sorted({int(v) for v in samples.index[:, 2]})
    sums = np.zeros((len(leads), len(pollutants), 2))
    weight_sum = np.zeros((len(leads), len(pollutants)))
    w = lat_weights.to(device).view(1, 1, -1, 1)
    loader = DataLoader(samples, batch_size=batch_size, shuffle=False, collate_fn=samples.collate)
    for batch in loader:
        batch = batch.to(device)
        assert batch.targets is not None
        prediction = model(batch)[:, p_index]
        truth = batch.targets[:, p_index]
        persistence = batch.inputs[:, p_input.to(device)]
        finite = torch.isfinite(truth)
        ww = torch.where(finite, w.expand_as(truth), torch.zeros_like(truth))
        truth0 = torch.nan_to_num(truth)
        err_m = ((prediction - truth0).abs() * ww).sum(dim=(2, 3))
        err_p = ((persistence - truth0).abs() * ww).sum(dim=(2, 3))
        wsum = ww.sum(dim=(2, 3))
        for i, lead in enumerate(leads):
            sel = batch.lead_hours == lead
            if sel.any():
                sums[i, :, 0] += err_m[sel].sum(0).cpu().double().numpy()
                sums[i, :, 1] += err_p[sel].sum(0).cpu().double().numpy()
                weight_sum[i] += wsum[sel].sum(0).cpu().double().numpy()
    model.train()
    denom = np.maximum(weight_sum, 1e-30)
    return Validation(leads, pollutants, sums[..., 0] / denom, sums[..., 1] / denom)


def _record(line: str) -> dict[str, Any] | None:
    """One record of ``metrics.jsonl``; None for a blank line or one cut short by a kill."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def _keep_records_until(metrics_path: Path, epoch: int) -> None:
    """Drop the records of epochs after ``epoch`` from ``metrics.jsonl``: a run killed after
    writing them but before its checkpoint redoes those epochs when it resumes."""
    if not metrics_path.is_file():
        return
    lines = metrics_path.read_text().splitlines()
    kept = [line for line in lines if (record := _record(line)) and record["epoch"] <= epoch]
    if len(kept) != len(lines):
        tmp = metrics_path.with_name(f".{metrics_path.name}.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, metrics_path)


class _NormalisedForward(torch.nn.Module):
    def __init__(self, model: Forecaster) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, z: torch.Tensor, lead: torch.Tensor, hour: torch.Tensor, doy: torch.Tensor
    ) -> torch.Tensor:
        return self.model.forward_normalised(z, lead, hour, doy)


@dataclass
class TrainResult:
    last: Path
    best: Path | None
    steps: int
    epochs: int
    metrics: Path
    validation: Validation | None
    samples_per_second: float


def _distributed() -> tuple[int, int, bool]:
    """(rank, world size, whether this call initialised the process group); the group is
    initialised when launched by torchrun and not yet set up by the caller."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    initialised = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        initialised = True
    return (dist.get_rank() if world > 1 else 0), world, initialised


def _batches(
    samples: StoreSamples, order: np.ndarray, batch_size: int, start_batch: int, num_workers: int
) -> Iterator[Batch]:
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    loader = DataLoader(
        samples,
        batch_sampler=batches[start_batch:],
        num_workers=num_workers,
        collate_fn=samples.collate,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )
    yield from loader


def train(
    config: AirCastConfig,
    *,
    url: str | None = None,
    out_dir: Path | None = None,
    resume: bool = True,
    max_steps: int | None = None,
    config_source: str = "<config>",
) -> TrainResult:
    """Train (or resume training) the recipe's forecaster on its training store.

    Parameters
    ----------
    url
        Training store (default: the recipe's).
    out_dir
        Where ``last.ckpt``, ``best.ckpt`` and ``metrics.jsonl`` go.
    resume
        Continue from ``out_dir/last.ckpt`` when it exists.
    max_steps
        Stop after this many optimiser steps in total (a budget for tests and the demo); a run
        resumed at or past it trains no further.

    A fresh run (no ``last.ckpt``, or ``resume=False``) starts ``metrics.jsonl`` anew and
    removes a ``best.ckpt`` left in ``out_dir`` by an earlier run, so that what the folder
    holds always belongs to one run. Launched by ``torchrun``, every rank trains on its own
    share of each epoch (:func:`rank_share`) and rank 0 writes the files.
    """
    rank, world, initialised = _distributed()
    try:
        return _train(
            config,
            rank=rank,
            world=world,
            url=url,
            out_dir=out_dir,
            resume=resume,
            max_steps=max_steps,
        )
    finally:
        if initialised:  # a group this call set up; a caller's own group is left alone
            dist.destroy_process_group()


def _train(
    config: AirCastConfig,
    *,
    rank: int,
    world: int,
    url: str | None,
    out_dir: Path | None,
    resume: bool,
    max_steps: int | None,
) -> TrainResult:
    s = config.training
    device = pick_device(s.device)
    if s.torch_threads is not None and device.type == "cpu":
        torch.set_num_threads(s.torch_threads)
    torch.manual_seed(s.seed)
    url = url or config.store_url
    out_dir = Path(out_dir or checkpoint_dir(config))
    store = open_store(url, config.store.storage_options or None)
    model, channels = build_model(config, store)
    model.to(device)
    loss_fn = build_loss(config, store, model).to(device)
    period = config.periods
    train_samples = StoreSamples(
        url,
        (period.train.start, period.train.end),
        s.lead_hours,
        channels,
        in_memory=s.in_memory,
        storage_options=config.store.storage_options or None,
    )
    val_samples = StoreSamples(
        url,
        (period.validation.start, period.validation.end),
        s.lead_hours,
        channels,
        in_memory=s.in_memory,
        storage_options=config.store.storage_options or None,
    )
    if len(train_samples) == 0:
        raise RuntimeError(
            f"the training period {period.train.start}..{period.train.end} has "
            f"no samples in {url}: build the store for this recipe first"
        )
    steps_per_epoch = math.ceil(len(train_samples) / (s.batch_size * world))
    total_steps = s.epochs * steps_per_epoch
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_lambda(s.warmup_steps, total_steps))
    step = epoch = start_batch = 0
    best_score: float | None = None
    last_path, best_path = out_dir / "last.ckpt", out_dir / "best.ckpt"
    metrics_path = out_dir / "metrics.jsonl"
    if resume and last_path.is_file():
        ckpt = load_checkpoint(last_path, map_location=device)
        check_compatible(
            ckpt.meta,
            store_fingerprint=store.fingerprint,
            input_channels=channels.inputs,
            target_channels=channels.targets,
        )
        try:
            load_weights(model, ckpt)
        except CheckpointError:  # same store and channels: another architecture, or damage
            theirs, ours = dict(ckpt.meta.recipe.get("model", {})), config.model.model_dump()
            changed = [
                f"model.{k} {theirs.get(k)} → {v}" for k, v in ours.items() if theirs.get(k) != v
            ]
            if not changed:
                raise  # the weights themselves differ: load_weights names them
            raise CheckpointError(
                f"{last_path} holds a model of other sizes than this recipe's "
                f"({', '.join(changed)}); restore the recipe's model section, or start afresh "
                "with `aircast train CONFIG --fresh`"
            ) from None
        optimiser.load_state_dict(ckpt.training["optimiser"])
        scheduler.load_state_dict(ckpt.training["scheduler"])
        torch.set_rng_state(ckpt.training["torch_rng"].cpu())
        step, epoch = ckpt.meta.step, ckpt.meta.epoch
        start_batch = int(ckpt.training["batch_in_epoch"])
        best_score = ckpt.meta.best_score
        if rank == 0:
            _keep_records_until(metrics_path, epoch)
        LOG.info(
            "resuming from %s: step %d, epoch %d, batch %d", last_path, step, epoch, start_batch
        )
    elif rank == 0:
        # a fresh run: files of an earlier run in this folder would be mistaken for its own
        metrics_path.unlink(missing_ok=True)
        best_path.unlink(missing_ok=True)
    # DDP synchronises gradients through its forward, so the step goes through a module whose
    # forward is the normalised-space forward
    net: torch.nn.Module = _NormalisedForward(model)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    autocast = device.type == "cuda" and torch.cuda.is_bf16_supported()
    target_norm = model.target_normaliser()
    lat_w = loss_fn.lat.view(-1)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = checkpoint_tensors(loss_fn)

    def save(path: Path, batch_in_epoch: int) -> None:
        if rank != 0:
            return
        save_checkpoint(
            path,
            checkpoint_meta(config, store, channels, step=step, epoch=epoch, best_score=best_score),
            model.state_dict(),
            extra,
            {
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "batch_in_epoch": batch_in_epoch,
            },
        )

    validation: Validation | None = None
    seen = 0
    started = time.perf_counter()
    # checked before any step too: a run resumed at its budget trains no further
    stop = max_steps is not None and step >= max_steps
    while epoch < s.epochs and not stop:
        order = rank_share(epoch_order(len(train_samples), s.seed, epoch), rank, world)
        running, n_batches = 0.0, 0
        part_sums: dict[str, float] = {}
        batch_index = start_batch
        for batch in _batches(train_samples, order, s.batch_size, start_batch, s.num_workers):
            batch = batch.to(device, non_blocking=True)
            assert batch.targets is not None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                z_in = model.normaliser.normalise(batch.inputs)
                z_out = net(z_in, batch.lead_hours, batch.init_hour_of_day, batch.init_day_of_year)
            loss, parts = loss_fn(z_out.float(), target_norm.normalise(batch.targets))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
            optimiser.step()
            scheduler.step()
            step += 1
            batch_index += 1
            seen += batch.size
            running += float(loss.detach())
            for name, value in parts.items():
                part_sums[name] = part_sums.get(name, 0.0) + value
            n_batches += 1
            if step % s.checkpoint_every_steps == 0:
                save(last_path, batch_index)
            if max_steps is not None and step >= max_steps:
                stop = True
                break
        if stop and batch_index < steps_per_epoch:
            save(last_path, batch_index)
            break
        epoch += 1
        start_batch = 0
        validation = (
            validate(model, val_samples, device, lat_w, s.batch_size) if len(val_samples) else None
        )
        score = validation.score if validation is not None else float("nan")
        improved = validation is not None and (best_score is None or score > best_score)
        if improved:
            best_score = score
        record = {
            "epoch": epoch,
            "step": step,
            "train_loss": running / max(1, n_batches),
            **{f"train_{k}": v / max(1, n_batches) for k, v in part_sums.items()},
            "lr": scheduler.get_last_lr()[0],
            "val_score": score,
            "validation": validation.to_json() if validation else None,
        }
        # record, best, then last: a kill anywhere in between resumes from the previous
        # last.ckpt, which redoes this epoch's end and drops the record written for it
        # (_keep_records_until), so nothing is lost or counted twice
        if rank == 0:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if improved:
            save(best_path, 0)
        save(last_path, 0)
        if rank == 0:
            LOG.info(
                "epoch %d/%d  step %d  loss %.4f  pollutant skill vs persistence %+.3f%s",
                epoch,
                s.epochs,
                step,
                record["train_loss"],
                score,
                "  (best)" if improved else "",
            )
    elapsed = time.perf_counter() - started
    return TrainResult(
        last_path,
        best_path if best_path.is_file() else None,
        step,
        epoch,
        metrics_path,
        validation,
        seen / max(elapsed, 1e-9),
    )
