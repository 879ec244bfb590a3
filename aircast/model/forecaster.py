"""The multi-task forecaster: one encoder, a weather head and a pollutant head.

It works in normalised space and predicts a correction to a baseline forecast, conditioned on
the lead time and on the initial time's hour and season. With a diurnal climatology (the
training period's mean state at each hour of day, normalised; :class:`DiurnalMean`) the
baseline is *damped anomaly persistence*: the climatology of the target hour plus the initial
anomaly from the climatology of the initial hour, decayed by a learned per-channel rate,

    base = clim[target hour] + exp(-k_c · lead) · (z - clim[initial hour]).

Why: the sandbox's pollutants and boundary layer follow a strong daily cycle, so persistence is
poor at 6-18 h and the hour-of-day climatology is poor at 24 h multiples; anomaly persistence
is better than either at every lead before any training (bench/RESULTS.md, forecaster), and
the head, initialised at zero, starts from it. Without a climatology (``model.residual:
persistence``, and checkpoints written before it existed) the baseline is the initial state.
Grids whose size is not a multiple of the patch size are padded by replication and cropped
back. Physical outputs of positive channels are clamped at zero by the normaliser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aircast.align.grid import TargetGrid
from aircast.align.time import plus_hours
from aircast.data.batch import Batch, BatchError
from aircast.model.normaliser import Normaliser
from aircast.model.vit import Head, ViTBackbone
from aircast.vocab import Role, parse_channel


@dataclass(frozen=True)
class ModelShape:
    """The architecture's sizes (the ``model`` section of a recipe)."""

    patch_size: int = 2
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0


class DiurnalMean(NamedTuple):
    """The training period's mean of each target channel by hour of day, normalised.

    Attributes
    ----------
    hours
        int64 (K,): the hours of day (0-23) held, distinct and ascending.
    mean
        float32 (K, C_out, H, W): normalised mean state at each of ``hours``.
    """

    hours: torch.Tensor
    mean: torch.Tensor


@dataclass(frozen=True)
class Prediction:
    """What the model predicts for a batch, and when and where it is valid.

    Attributes
    ----------
    values
        float32 (B, C_out, H, W): physical units, positive channels ≥ 0.
    valid_time
        datetime64[ns] (B,): each sample's initial time plus its lead.
    channels
        Channel names of ``values`` (the model's target channels).
    grid
        The grid of ``values`` (the batch's).
    """

    values: torch.Tensor
    valid_time: np.ndarray
    channels: tuple[str, ...]
    grid: TargetGrid

    def __post_init__(self) -> None:
        b = int(self.values.shape[0])
        if tuple(self.values.shape[1:]) != (len(self.channels), *self.grid.shape):
            raise ValueError(
                f"prediction values of shape {tuple(self.values.shape)} for "
                f"{len(self.channels)} channels on a {self.grid.shape} grid"
            )
        if self.valid_time.shape != (b,) or self.valid_time.dtype != np.dtype("datetime64[ns]"):
            raise ValueError(f"valid_time must be datetime64[ns] of shape ({b},)")


#: Initial anomaly decay rate, per day: exp(-0.105) ≈ 0.9 of the anomaly is kept after 24 h.
INITIAL_DECAY_PER_DAY = 0.105


def time_features(
    lead_hours: torch.Tensor, hour_of_day: torch.Tensor, day_of_year: torch.Tensor
) -> torch.Tensor:
    """(B,) × 3 → (B, 5): lead in days, then sin/cos of the hour of day and the season."""
    day = 2 * math.pi * hour_of_day / 24.0
    year = 2 * math.pi * day_of_year / 365.25
    return torch.stack([lead_hours / 24.0, day.sin(), day.cos(), year.sin(), year.cos()], dim=1)


class Forecaster(nn.Module):
    """Weather and pollutants from one shared encoder.

    Parameters
    ----------
    shape
        Architecture sizes.
    input_channels
        Channels of the initial state (weather, pollutants, static), in store order.
    target_channels
        Channels predicted: every weather and pollutant input channel (not static ones).
    grid
        (H, W) of the fields.
    normaliser
        Statistics of ``input_channels`` (the training store's).
    climatology
        Diurnal mean of ``target_channels``: the baseline becomes damped anomaly persistence.
        None: the baseline is persistence.
    """

    target_index: torch.Tensor
    climatology_hours: torch.Tensor
    climatology: torch.Tensor

    def __init__(
        self,
        shape: ModelShape,
        input_channels: Sequence[str],
        target_channels: Sequence[str],
        grid: tuple[int, int],
        normaliser: Normaliser,
        climatology: DiurnalMean | None = None,
    ) -> None:
        super().__init__()
        self.shape = shape
        self.input_channels = tuple(input_channels)
        self.target_channels = tuple(target_channels)
        if normaliser.channels != self.input_channels:
            raise ValueError("the normaliser's channels are not the model's input channels")
        roles = [parse_channel(c).spec.role for c in self.target_channels]
        self.weather_channels = tuple(
            c for c, r in zip(self.target_channels, roles, strict=True) if r is Role.WEATHER
        )
        self.pollutant_channels = tuple(
            c for c, r in zip(self.target_channels, roles, strict=True) if r is Role.POLLUTANT
        )
        if self.target_channels != self.weather_channels + self.pollutant_channels:
            raise ValueError("target channels must be the weather channels, then the pollutants")
        self.grid = grid
        p = shape.patch_size
        self.padded = (math.ceil(grid[0] / p) * p, math.ceil(grid[1] / p) * p)
        self.normaliser = normaliser
        self.register_buffer(
            "target_index",
            torch.tensor([self.input_channels.index(c) for c in self.target_channels]),
            persistent=False,
        )
        self.anomaly_decay: nn.Parameter | None = None
        if climatology is not None:
            hours, mean = climatology
            expected = (len(self.target_channels), *grid)
            if hours.ndim != 1 or tuple(mean.shape) != (hours.numel(), *expected):
                raise ValueError(
                    f"the climatology must be (hours,) and (hours, {expected}); got "
                    f"{tuple(hours.shape)} and {tuple(mean.shape)}"
                )
            if not torch.isfinite(mean).all():
                raise ValueError("the climatology has non-finite values")
            self.register_buffer("climatology_hours", hours.to(torch.long).clone())
            self.register_buffer("climatology", mean.float().clone())
            # softplus⁻¹ of the rate: the learned rate stays positive (anomalies decay)
            rate = math.log(math.expm1(INITIAL_DECAY_PER_DAY))
            self.anomaly_decay = nn.Parameter(torch.full((len(self.target_channels),), rate))
        self.backbone = ViTBackbone(
            len(self.input_channels),
            self.padded,
            p,
            shape.width,
            shape.depth,
            shape.heads,
            shape.mlp_ratio,
            shape.dropout,
        )
        token_grid = (self.padded[0] // p, self.padded[1] // p)
        self.heads = nn.ModuleDict()
        if self.weather_channels:
            self.heads["weather"] = Head(shape.width, len(self.weather_channels), p, token_grid)
        if self.pollutant_channels:
            self.heads["pollutants"] = Head(
                shape.width, len(self.pollutant_channels), p, token_grid
            )

    def forward_normalised(
        self,
        z: torch.Tensor,
        lead_hours: torch.Tensor,
        hour_of_day: torch.Tensor,
        day_of_year: torch.Tensor,
    ) -> torch.Tensor:
        """Normalised initial state (B, C_in, H, W) → normalised targets (B, C_out, H, W)."""
        h, w = self.grid
        if tuple(z.shape[1:]) != (len(self.input_channels), h, w):
            # caught here, not as a reshape error deep in the encoder
            raise BatchError(
                f"the model takes (batch, {len(self.input_channels)}, {h}, {w}) fields (its "
                f"channels on the grid it was trained on); got {tuple(z.shape)}"
            )
        pad = (0, self.padded[1] - w, 0, self.padded[0] - h)
        x = F.pad(z, pad, mode="replicate") if any(pad) else z
        tokens = self.backbone(x, time_features(lead_hours, hour_of_day, day_of_year))
        change = torch.cat([head(tokens) for head in self.heads.values()], dim=1)
        return self.baseline(z, lead_hours, hour_of_day) + change[:, :, :h, :w]

    def baseline(
        self, z: torch.Tensor, lead_hours: torch.Tensor, hour_of_day: torch.Tensor
    ) -> torch.Tensor:
        """The forecast the network corrects, normalised (B, C_out, H, W): persistence, or
        damped anomaly persistence where the model has a climatology."""
        state = z.index_select(1, self.target_index)
        if self.anomaly_decay is None:
            return state
        at_init = self.climatology[self._slot(hour_of_day)]
        at_target = self.climatology[self._slot(hour_of_day + lead_hours)]
        rate = F.softplus(self.anomaly_decay)
        kept = torch.exp(-rate[None, :] * (lead_hours[:, None] / 24.0))[:, :, None, None]
        return at_target + kept.to(state.dtype) * (state - at_init)

    def _slot(self, hours: torch.Tensor) -> torch.Tensor:
        """Index into ``climatology`` of the held hour of day nearest to each of ``hours``."""
        hour = torch.remainder(torch.round(hours), 24).to(torch.long)
        gap = (hour[:, None] - self.climatology_hours[None, :]).abs()
        return torch.minimum(gap, 24 - gap).argmin(dim=1)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Physical predictions (B, C_out, H, W) for a batch; positive channels ≥ 0."""
        batch.check_channels(self.input_channels, self.target_channels)
        z = self.normaliser.normalise(batch.inputs)
        out = self.forward_normalised(
            z, batch.lead_hours, batch.init_hour_of_day, batch.init_day_of_year
        )
        return self.target_normaliser().denormalise(out)

    def predict(self, batch: Batch) -> Prediction:
        """The physical predictions of :meth:`forward`, with their valid time and grid."""
        return Prediction(
            self(batch),
            plus_hours(batch.init_time, batch.lead_hours.detach().cpu().double().numpy()),
            self.target_channels,
            batch.grid,
        )

    def target_normaliser(self) -> Normaliser:
        """The normaliser of the target channels, derived from ``normaliser`` on each call.

        Not cached as an attribute: assigning a module to a module registers it, which put a
        second copy of the statistics into ``state_dict()`` after the first forward only, so
        a checkpoint written by the training loop no longer loaded into a fresh model (and a
        cache would go stale when ``load_state_dict`` replaces the statistics). Building it
        is a few (C,) tensors: nothing next to the encoder.
        """
        return self.normaliser.subset(self.target_channels).to(self.normaliser.mean.device)
