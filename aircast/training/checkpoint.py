"""Self-contained checkpoints: everything needed to run or resume a model, nothing executable.

A checkpoint holds the weights (the normaliser's statistics and the diurnal climatology of the
model's baseline are buffers among them), the validated recipe, the channel lists, the fMAE
histogram bins, the grid, the training store's fingerprint and the code version; a resumable
one also holds the optimiser, scheduler, step and random-generator states. It is written with
``torch.save`` to a temporary name and renamed into place, and read with
``torch.load(weights_only=True)``: only tensors, numbers, strings and containers of them are
accepted, so loading never unpickles arbitrary objects. Metadata is one JSON string.
:func:`load_forecaster` turns a checkpoint back into the forecaster it was saved from, checked
against the training store it will run on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import aircast
from aircast.data.dataset import Channels
from aircast.errors import AirCastError
from aircast.model.factory import new_forecaster
from aircast.model.forecaster import DiurnalMean, Forecaster, ModelShape
from aircast.store.reader import TrainingStore

FORMAT = "aircast-checkpoint"
FORMAT_VERSION = 1
_LEGACY_PREFIX = "_target_normaliser."


class CheckpointError(AirCastError, ValueError):
    """A checkpoint that is missing, damaged, or does not fit the store or config at hand."""


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint says about itself (its JSON metadata).

    Attributes
    ----------
    recipe
        The validated config as a JSON-able mapping.
    input_channels, target_channels
        Channel names in tensor order.
    grid
        ``{"latitudes": [...], "longitudes": [...], "resolution": r}``.
    store_fingerprint
        The training store's recipe fingerprint.
    step, epoch
        Optimiser steps and completed epochs.
    best_score
        Best validation score so far (pollutant skill; higher is better), or None.
    code_version
        ``aircast.__version__``.
    """

    recipe: Mapping[str, Any]
    input_channels: tuple[str, ...]
    target_channels: tuple[str, ...]
    grid: Mapping[str, Any]
    store_fingerprint: str
    step: int
    epoch: int
    best_score: float | None
    code_version: str

    def to_json(self) -> str:
        data = {
            **self.__dict__,
            "input_channels": list(self.input_channels),
            "target_channels": list(self.target_channels),
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CheckpointMeta:
        data = json.loads(text)
        data["input_channels"] = tuple(data["input_channels"])
        data["target_channels"] = tuple(data["target_channels"])
        return cls(**data)


def save_checkpoint(
    path: Path,
    meta: CheckpointMeta,
    model_state: Mapping[str, torch.Tensor],
    extra_tensors: Mapping[str, torch.Tensor] | None = None,
    training_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (a reader never sees half a file).

    Parameters
    ----------
    model_state
        ``model.state_dict()``.
    extra_tensors
        Tensors outside the model (the fMAE histogram edges and counts).
    training_state
        Optimiser/scheduler/RNG states for resuming (tensors, numbers, containers).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "meta": meta.to_json(),
        "model": {k: v.detach().cpu() for k, v in model_state.items()},
        "extra": {k: v.detach().cpu() for k, v in (extra_tensors or {}).items()},
        "training": dict(training_state or {}),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint."""

    path: Path
    meta: CheckpointMeta
    model: dict[str, torch.Tensor]
    extra: dict[str, torch.Tensor]
    training: dict[str, Any]

    @property
    def sha256(self) -> str:
        """Hash of the checkpoint file: the provenance of every forecast made with it."""
        return file_sha256(self.path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint without unpickling anything but tensors and plain data.

    Raises
    ------
    CheckpointError
        When the file is missing, not an AirCast checkpoint, or of another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; train one with `aircast train CONFIG` "
            "or pass the path of an existing .ckpt file"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged or foreign file
        raise CheckpointError(
            f"{path} is not a readable AirCast checkpoint ({exc}); it may be "
            "damaged or of another program: train again or restore it"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an AirCast checkpoint (no '{FORMAT}' marker)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {payload.get('format_version')}, this AirCast "
            f"({aircast.__version__}) reads format {FORMAT_VERSION}; use the AirCast version "
            "that wrote it, or train again"
        )
    # checkpoints written before Forecaster.target_normaliser() stopped caching a submodule
    # hold a second copy of the target channels' statistics under this prefix: derived from
    # the normaliser's own buffers, so dropped here, and such a file loads like a new one
    model = {k: v for k, v in payload["model"].items() if not k.startswith(_LEGACY_PREFIX)}
    return Checkpoint(
        path,
        CheckpointMeta.from_json(payload["meta"]),
        model,
        payload["extra"],
        payload["training"],
    )


def check_compatible(
    meta: CheckpointMeta,
    *,
    store_fingerprint: str,
    input_channels: tuple[str, ...],
    target_channels: tuple[str, ...],
) -> None:
    """Refuse a checkpoint made for another store or channel list, saying what differs.

    Raises
    ------
    CheckpointError
        Naming the differing store fingerprint or channels and the fix.
    """
    problems = []
    if meta.store_fingerprint != store_fingerprint:
        problems.append(
            f"it was trained on a store with recipe fingerprint "
            f"{meta.store_fingerprint[:12]}…, this store's is {store_fingerprint[:12]}…"
        )
    if meta.input_channels != input_channels:
        problems.append(
            f"its input channels {list(meta.input_channels)} differ from the store's "
            f"{list(input_channels)}"
        )
    if meta.target_channels != target_channels:
        problems.append(
            f"its target channels {list(meta.target_channels)} differ from {list(target_channels)}"
        )
    if problems:
        raise CheckpointError(
            "the checkpoint does not match: "
            + "; ".join(problems)
            + "; use a checkpoint trained on this store, or train one with "
            "`aircast train CONFIG`"
        )


def load_forecaster(
    checkpoint: Checkpoint, store: TrainingStore, device: torch.device | str = "cpu"
) -> Forecaster:
    """The checkpoint's forecaster, checked against the store it will run on.

    The architecture comes from the checkpoint's own recipe (not the config at hand), the
    normaliser's statistics from its weights.

    Raises
    ------
    CheckpointError
        When the checkpoint was trained on another store or channel list.
    """
    meta = checkpoint.meta
    pollutants_only = bool(meta.recipe.get("training", {}).get("pollutants_only", False))
    channels = Channels.of_store(store.channel_names, pollutants_only=pollutants_only)
    check_compatible(
        meta,
        store_fingerprint=store.fingerprint,
        input_channels=channels.inputs,
        target_channels=channels.targets,
    )
    settings = meta.recipe.get("model", {})
    shape = ModelShape(
        **{f.name: settings[f.name] for f in dataclasses.fields(ModelShape) if f.name in settings}
    )
    # a model trained with a diurnal climatology carries it; one without is persistence-based
    halves = [k for k in _CLIMATOLOGY_KEYS if k in checkpoint.model]
    if len(halves) == 1:
        (missing,) = set(_CLIMATOLOGY_KEYS) - set(halves)
        raise _missing_weights(checkpoint.path, [missing], [])
    climatology = (
        DiurnalMean(checkpoint.model["climatology_hours"], checkpoint.model["climatology"])
        if halves
        else None
    )
    try:
        model = new_forecaster(store, channels, shape, climatology=climatology)
    except ValueError as exc:  # the climatology's shapes do not fit the store's grid
        raise CheckpointError(
            f"{checkpoint.path} holds weights of other shapes than its own recipe's model "
            f"({exc}); the file is damaged or was edited: restore it from a copy, or train "
            "again with `aircast train CONFIG --fresh`"
        ) from None
    load_weights(model, checkpoint)
    return model.to(device).eval()


#: The model's diurnal climatology: both weights, or neither (a persistence-residual model).
_CLIMATOLOGY_KEYS = ("climatology_hours", "climatology")


def load_weights(model: torch.nn.Module, checkpoint: Checkpoint) -> None:
    """Load the checkpoint's weights into ``model``, which must have exactly those weights.

    Every name and shape is compared before anything is loaded, so a damaged or edited
    checkpoint is refused whole, with the names that differ, rather than a bare torch error.

    Raises
    ------
    CheckpointError
        Naming the missing, unexpected or differently shaped weights and the fix.
    """
    expected = model.state_dict()
    have = checkpoint.model  # legacy keys were dropped by load_checkpoint
    missing = [k for k in expected if k not in have]
    unexpected = [k for k in have if k not in expected]
    if missing or unexpected:
        raise _missing_weights(checkpoint.path, missing, unexpected)
    reshaped = [
        f"{k} {tuple(have[k].shape)} (the model's is {tuple(v.shape)})"
        for k, v in expected.items()
        if tuple(have[k].shape) != tuple(v.shape)
    ]
    if reshaped:
        raise CheckpointError(
            f"{checkpoint.path} holds weights of other shapes than its own recipe's model: "
            f"{_listed(reshaped)}; the file is damaged or was edited: restore it from a copy, "
            "or train again with `aircast train CONFIG --fresh`"
        )
    model.load_state_dict(have)


def _missing_weights(path: Path, missing: list[str], unexpected: list[str]) -> CheckpointError:
    parts = []
    if missing:
        parts.append(f"it lacks {len(missing)} weight(s) the model needs: {_listed(missing)}")
    if unexpected:
        parts.append(f"it holds {len(unexpected)} the model has not: {_listed(unexpected)}")
    return CheckpointError(
        f"{path} does not hold this model's weights: {'; '.join(parts)}; the file is damaged, "
        "was edited, or was written by another AirCast version: restore it from a copy, or "
        "train again with `aircast train CONFIG --fresh`"
    )


def _listed(names: list[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" … ({len(names)} in all)" if len(names) > most else "")
