"""A faithful re-implementation of the published AirCast / ClimaX layer structure, for
``bench_train.py`` to time AirCast's model against.

What the published code does, and this module copies:

- variable tokenisation: a ``ModuleList`` with one ``PatchEmbed`` (a ``Conv2d(1, D, p, p)``)
  per variable, applied in a Python loop over the variables, the results stacked;
- a learned variable embedding ``(1, V, D)`` added to each variable's tokens;
- cross-variable aggregation: ``nn.MultiheadAttention`` with one learned query, over the
  ``V`` tokens of each patch (batch × patches flattened), called with its default
  ``need_weights=True`` as ClimaX calls it;
- transformer blocks built on ``nn.MultiheadAttention`` (pre-norm, as ``nn.TransformerEncoder
  Layer(norm_first=True)`` calls it, ``need_weights=False``) and a GELU MLP;
- fp32 throughout.

The head, the lead-time conditioning and the residual output are AirCast's, so that the
comparison is of the layer structure only (tokeniser, aggregation, attention blocks).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aircast.model.vit import Head, sincos_2d


class ReferenceBlock(nn.Module):
    """Pre-norm transformer block on ``nn.MultiheadAttention``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ClimaXReference(nn.Module):
    """The ClimaX layer structure with AirCast's heads: normalised (B, V, H, W) → (B, C_out,
    H, W) for ``n_weather + n_pollutants`` target channels (the first inputs)."""

    def __init__(
        self,
        n_vars: int,
        n_weather: int,
        n_pollutants: int,
        grid: tuple[int, int],
        patch: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if grid[0] % patch or grid[1] % patch:
            raise ValueError("the reference takes grids that are a multiple of the patch")
        self.n_vars, self.patch = n_vars, patch
        self.token_grid = (grid[0] // patch, grid[1] // patch)
        self.token_embeds = nn.ModuleList(
            nn.Conv2d(1, width, kernel_size=patch, stride=patch) for _ in range(n_vars)
        )
        self.var_embed = nn.Parameter(torch.zeros(1, n_vars, width))
        self.var_query = nn.Parameter(torch.zeros(1, 1, width))
        self.var_agg = nn.MultiheadAttention(width, heads, batch_first=True)
        self.register_buffer("pos_embed", sincos_2d(*self.token_grid, width).unsqueeze(0))
        self.lead_time_embed = nn.Linear(1, width)
        self.blocks = nn.ModuleList(ReferenceBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.heads = nn.ModuleList(
            [
                Head(width, n_weather, patch, self.token_grid),
                Head(width, n_pollutants, patch, self.token_grid),
            ]
        )
        self.n_out = n_weather + n_pollutants
        nn.init.trunc_normal_(self.var_embed, std=0.02)
        nn.init.trunc_normal_(self.var_query, std=0.02)
        for embed in self.token_embeds:
            nn.init.trunc_normal_(embed.weight, std=1.0 / math.sqrt(patch * patch))

    def forward(self, z: torch.Tensor, lead_hours: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        n_tokens = self.token_grid[0] * self.token_grid[1]
        # one patch embedding per variable, in a loop: (B, L, D) each
        embeds = [
            self.token_embeds[i](z[:, i : i + 1]).flatten(2).transpose(1, 2)
            for i in range(self.n_vars)
        ]
        x = torch.stack(embeds, dim=1) + self.var_embed.unsqueeze(2)  # (B, V, L, D)
        x = torch.einsum("bvld->blvd", x).flatten(0, 1)  # (B·L, V, D)
        query = self.var_query.repeat_interleave(x.shape[0], dim=0)  # (B·L, 1, D)
        x, _ = self.var_agg(query, x, x)  # need_weights=True: ClimaX's call
        x = x.squeeze(1).unflatten(0, (b, n_tokens)) + self.pos_embed  # (B, L, D)
        x = x + self.lead_time_embed(lead_hours.view(b, 1) / 24.0).unsqueeze(1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        change = torch.cat([head(x) for head in self.heads], dim=1)
        return z[:, : self.n_out] + change
