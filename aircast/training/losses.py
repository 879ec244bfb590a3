"""Losses: latitude-weighted MAE on weather, frequency-weighted MAE (fMAE) on pollutants.

fMAE gives each pixel a weight from how often its *target* value occurs in the training
histogram, so that rare extremes (dust storms) count more than the common background. The
bin of every target value is looked up on the device (``torch.searchsorted``, the batched
form of ``torch.bucketize``: one call for all pollutant channels, each with its own edges);
values below the first or above the last edge fall in under/overflow bins, and empty bins
take the weight of the rarest observed bin. Weights are normalised to mean 1 over each batch.

Schemes (``FrequencyWeighting``):

- ``ens``: effective number of samples (Cui et al., 2019), ``w = (1 - β) / (1 - βⁿ)``. With
  millions of samples per bin any fixed β < 1 saturates (βⁿ → 0 and every bin gets the same
  weight — what the AirCast code did with β = 0.8 on predictions); so β defaults to
  ``1 - 1/N`` with N the histogram's total, which keeps the weights informative.
- ``inverse_log``: ``w = 1 / log(e + n)``.
- ``inverse_sqrt``: ``w = 1 / sqrt(n)``.
- ``none``: plain (latitude-weighted) MAE.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from aircast.align.grid import cell_area_weights

FrequencyWeighting = Literal["ens", "inverse_log", "inverse_sqrt", "none"]


def latitude_weights(latitudes: torch.Tensor, resolution: float) -> torch.Tensor:
    """Cell-area weights from latitude bounds, mean 1, shape (H,) (the grid's own formula)."""
    weights = cell_area_weights(latitudes.detach().cpu().double().numpy(), resolution)
    return torch.from_numpy(weights).float()


def bin_weights(
    counts: torch.Tensor, scheme: FrequencyWeighting, beta: float | None = None
) -> torch.Tensor:
    """Weight of each histogram bin from its count.

    Parameters
    ----------
    counts
        (P, n_bins) counts per pollutant, including under/overflow bins.
    scheme
        Weighting scheme.
    beta
        For ``ens``; None means ``1 - 1/N`` per pollutant (N its total count).

    Returns
    -------
    torch.Tensor
        (P, n_bins) float64 weights; empty bins get their pollutant's largest weight.
    """
    n = counts.double()
    observed = n > 0
    if scheme == "none":
        return torch.ones_like(n)
    clamped = n.clamp(min=1.0)
    if scheme == "ens":
        total = n.sum(dim=1, keepdim=True).clamp(min=2.0)
        b = (1.0 - 1.0 / total) if beta is None else torch.full_like(total, beta)
        if not ((b > 0) & (b < 1)).all():
            raise ValueError(f"beta must lie in (0, 1), got {beta}")
        # (1 - β) / (1 - β^n), computed as -expm1 in log space to stay exact for β near 1
        w = -torch.expm1(torch.log(b)) / -torch.expm1(clamped * torch.log(b))
    elif scheme == "inverse_log":
        w = 1.0 / torch.log(math.e + clamped)
    elif scheme == "inverse_sqrt":
        w = 1.0 / torch.sqrt(clamped)
    else:
        raise ValueError(
            f"unknown weighting {scheme!r}; choose ens, inverse_log, inverse_sqrt or none"
        )
    rarest = torch.where(observed, w, torch.zeros_like(w)).amax(dim=1, keepdim=True)
    return torch.where(observed, w, rarest)


class FrequencyWeights(nn.Module):
    """Per-pixel fMAE weights from the training histograms, looked up on the device.

    Parameters
    ----------
    edges
        (P, E) increasing bin edges per pollutant, in the space the targets are given in
        (the normalised log space of the loss).
    counts
        (P, E + 1) counts: bin 0 is below ``edges[:, 0]``, bin E above ``edges[:, -1]``.
    """

    edges: torch.Tensor
    table: torch.Tensor

    def __init__(
        self,
        edges: torch.Tensor,
        counts: torch.Tensor,
        scheme: FrequencyWeighting,
        beta: float | None = None,
    ) -> None:
        super().__init__()
        if counts.shape != (edges.shape[0], edges.shape[1] + 1):
            raise ValueError(
                f"counts {tuple(counts.shape)} must be (P, E + 1) for edges "
                f"{tuple(edges.shape)}: bins between edges plus under/overflow"
            )
        if (edges.diff(dim=1) <= 0).any():
            raise ValueError("histogram edges must be strictly increasing")
        self.register_buffer("edges", edges.float().contiguous())
        self.register_buffer("table", bin_weights(counts, scheme, beta).float())

    def bins(self, target: torch.Tensor) -> torch.Tensor:
        """Bin index of each target value: (B, P, H, W) → (B, P, H, W) int64."""
        b, p, h, w = target.shape
        flat = target.detach().permute(1, 0, 2, 3).reshape(p, -1).contiguous()
        # right=True: a value equal to an edge belongs to the bin that starts there
        index = torch.searchsorted(self.edges, flat, right=True)
        return index.reshape(p, b, h, w).permute(1, 0, 2, 3)

    def forward(self, target: torch.Tensor) -> torch.Tensor:
        """Weights (B, P, H, W), mean 1 over the finite targets of the batch."""
        index = self.bins(target)
        p = target.shape[1]
        rows = torch.arange(p, device=target.device).view(1, p, 1, 1).expand_as(index)
        weights = self.table[rows, index]
        finite = torch.isfinite(target)
        weights = torch.where(finite, weights, torch.zeros_like(weights))
        return weights / weights.sum().clamp(min=1e-12) * finite.sum().clamp(min=1)


class AirCastLoss(nn.Module):
    """Latitude-weighted MAE on weather + frequency-weighted MAE on pollutants.

    Inputs are normalised predictions and targets (B, C_out, H, W), weather channels first.
    NaN targets (missing data) are left out.
    """

    lat: torch.Tensor

    def __init__(
        self,
        latitude_weight: torch.Tensor,
        n_weather: int,
        frequency: FrequencyWeights | None,
        weather_weight: float = 1.0,
        pollutant_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.register_buffer("lat", latitude_weight.float().view(1, 1, -1, 1))
        self.n_weather = n_weather
        self.frequency = frequency
        self.weather_weight = weather_weight
        self.pollutant_weight = pollutant_weight

    @staticmethod
    def _weighted_mae(error: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        finite = torch.isfinite(error)
        w = torch.where(finite, weight.expand_as(error), torch.zeros_like(error))
        return (torch.where(finite, error, torch.zeros_like(error)) * w).sum() / w.sum().clamp(
            min=1e-12
        )

    def forward(
        self, prediction: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        error = (prediction - target).abs()
        nw = self.n_weather
        parts: dict[str, torch.Tensor] = {}
        if nw:
            parts["weather"] = self._weighted_mae(error[:, :nw], self.lat)
        if error.shape[1] > nw:
            pollutant_target = target[:, nw:]
            weight = self.lat
            if self.frequency is not None:
                weight = self.frequency(pollutant_target) * self.lat
            parts["pollutants"] = self._weighted_mae(error[:, nw:], weight)
        total = self.weather_weight * parts.get(
            "weather", error.new_zeros(())
        ) + self.pollutant_weight * parts.get("pollutants", error.new_zeros(()))
        return total, {k: float(v.detach()) for k, v in parts.items()}
