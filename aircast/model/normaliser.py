"""Maps physical values to the space the model learns in, and back.

Heavy-tailed positive channels (pollutants, precipitation) are log-transformed,
``log(x + offset)``, before standardisation; every other channel is standardised linearly.
The statistics are the training store's (training period only) and live in the module as
buffers, so a checkpoint carries them and a model can never be paired with other numbers.
On the way out, every physically positive channel is clamped at zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from aircast.vocab import parse_channel


class Normaliser(nn.Module):
    """Per-channel normalisation with statistics as buffers.

    Parameters
    ----------
    channels
        Channel names, in tensor order.
    mean, std
        Linear statistics, shape (C,).
    log_mean, log_std, log_offset
        Statistics of ``log(x + log_offset)``, shape (C,); used where ``log_mask``.
    """

    mean: torch.Tensor
    std: torch.Tensor
    log_mean: torch.Tensor
    log_std: torch.Tensor
    log_offset: torch.Tensor
    log_mask: torch.Tensor
    positive: torch.Tensor

    def __init__(
        self,
        channels: Sequence[str],
        mean: torch.Tensor,
        std: torch.Tensor,
        log_mean: torch.Tensor,
        log_std: torch.Tensor,
        log_offset: torch.Tensor,
    ) -> None:
        super().__init__()
        self.channels = tuple(channels)
        specs = [parse_channel(c).spec for c in self.channels]
        n = len(self.channels)
        for name, value in (
            ("mean", mean),
            ("std", std),
            ("log_mean", log_mean),
            ("log_std", log_std),
            ("log_offset", log_offset),
        ):
            if tuple(value.shape) != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {tuple(value.shape)}")
            if not torch.isfinite(value).all():
                raise ValueError(
                    f"{name} has non-finite values: the store's statistics are "
                    "broken; run `aircast store build` again"
                )
        log_mask = torch.tensor([s.heavy_tailed for s in specs])
        if (std[~log_mask] <= 0).any() or (log_std[log_mask] <= 0).any():
            raise ValueError("a channel has zero spread in the training period; drop it")
        self.register_buffer("mean", mean.float().view(1, n, 1, 1))
        self.register_buffer("std", std.float().view(1, n, 1, 1))
        self.register_buffer("log_mean", log_mean.float().view(1, n, 1, 1))
        self.register_buffer("log_std", log_std.float().view(1, n, 1, 1))
        self.register_buffer("log_offset", log_offset.float().view(1, n, 1, 1))
        self.register_buffer("log_mask", log_mask.view(1, n, 1, 1))
        self.register_buffer("positive", torch.tensor([s.positive for s in specs]).view(1, n, 1, 1))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Physical (B, C, H, W) → model space (B, C, H, W)."""
        logged = (torch.log(x.clamp(min=0) + self.log_offset) - self.log_mean) / self.log_std
        linear = (x - self.mean) / self.std
        return torch.where(self.log_mask, logged, linear)

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        """Model space (B, C, H, W) → physical (B, C, H, W), positive channels clamped at 0."""
        logged = torch.exp(z * self.log_std + self.log_mean) - self.log_offset
        linear = z * self.std + self.mean
        x = torch.where(self.log_mask, logged, linear)
        return torch.where(self.positive, x.clamp(min=0), x)

    def subset(self, channels: Sequence[str]) -> Normaliser:
        """The normaliser of some of the channels, in the given order."""
        take = torch.as_tensor([self.channels.index(c) for c in channels], dtype=torch.long)

        def pick(t: torch.Tensor) -> torch.Tensor:
            # built on the CPU, where the new module's masks are made; the caller moves it
            return t.detach().view(-1).cpu()[take]

        return Normaliser(
            channels,
            pick(self.mean),
            pick(self.std),
            pick(self.log_mean),
            pick(self.log_std),
            pick(self.log_offset),
        )
