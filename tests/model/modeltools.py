"""Small models, normalisers and batches for the model tests (no store needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from aircast.align.grid import TargetGrid
from aircast.data.batch import Batch
from aircast.model.forecaster import Forecaster, ModelShape
from aircast.model.normaliser import Normaliser

#: weather (a linear one, a positive linear one, a heavy-tailed one), pollutants, a static field
INPUTS = ("t2m", "blh", "tp", "pm2p5", "go3_925", "lsm")
TARGETS = ("t2m", "blh", "tp", "pm2p5", "go3_925")

#: physical scale of each channel: (typical value, spread)
SCALES = {
    "t2m": (290.0, 8.0),
    "blh": (800.0, 400.0),
    "tp": (2e-4, 4e-4),
    "pm2p5": (2e-8, 3e-8),
    "go3_925": (8e-8, 2e-8),
    "lsm": (0.5, 0.4),
}


def make_normaliser(channels: Sequence[str] = INPUTS) -> Normaliser:
    """Statistics as the store would give them: linear ones, and log ones with an offset of
    a tenth of the typical value (NaN-free fillers for the linear channels)."""
    typical = torch.tensor([SCALES[c][0] for c in channels], dtype=torch.float64)
    spread = torch.tensor([SCALES[c][1] for c in channels], dtype=torch.float64)
    offset = typical / 10
    log_mean = torch.log(typical + offset)
    return Normaliser(channels, typical, spread, log_mean, torch.full_like(typical, 0.8), offset)


def physical_fields(
    channels: Sequence[str], shape: tuple[int, int, int], seed: int = 0
) -> torch.Tensor:
    """Plausible float32 fields (B, C, H, W): positive channels log-normal (heavy tails)."""
    g = torch.Generator().manual_seed(seed)
    b, h, w = shape
    out = []
    for c in channels:
        typical, spread = SCALES[c]
        noise = torch.randn(b, h, w, generator=g, dtype=torch.float64)
        if c in ("tp", "pm2p5", "go3_925", "blh"):
            sigma = math.log1p(spread / typical)
            out.append(typical * torch.exp(sigma * noise))
        else:
            out.append(typical + spread * noise)
    return torch.stack(out, dim=1).float()


def make_model(
    grid: tuple[int, int] = (8, 12),
    patch: int = 2,
    width: int = 32,
    depth: int = 1,
    heads: int = 4,
    seed: int = 0,
) -> Forecaster:
    torch.manual_seed(seed)
    return Forecaster(
        ModelShape(patch, width, depth, heads), INPUTS, TARGETS, grid, make_normaliser()
    ).eval()


def make_grid(shape: tuple[int, int] = (8, 12)) -> TargetGrid:
    """A 1.5° grid of ``shape`` cells, north to south from 45°N, east from 0°E."""
    return TargetGrid(45.0 - 1.5 * np.arange(shape[0]), 1.5 * np.arange(shape[1]), 1.5)


def make_batch(
    grid: tuple[int, int] = (8, 12),
    size: int = 2,
    lead: float = 6.0,
    init: str = "2019-04-10T12",
    targets: bool = True,
    seed: int = 0,
) -> Batch:
    """A batch of ``size`` samples, all from the initial time ``init`` (day 100 of 2019)."""
    inputs = physical_fields(INPUTS, (size, *grid), seed)
    return Batch(
        inputs=inputs,
        lead_hours=torch.full((size,), lead),
        init_time=np.full(size, np.datetime64(init, "ns")),
        grid=make_grid(grid),
        input_channels=INPUTS,
        target_channels=TARGETS,
        targets=physical_fields(TARGETS, (size, *grid), seed + 1) if targets else None,
    )


def randomise_heads(model: Forecaster, std: float = 0.5, seed: int = 1) -> None:
    """The heads start at zero (the model starts as persistence); give them weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in model.heads.values():
            head.linear.weight.copy_(torch.randn(head.linear.weight.shape, generator=g) * std)
            head.linear.bias.copy_(torch.randn(head.linear.bias.shape, generator=g) * std)
