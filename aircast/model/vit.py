"""A ClimaX-style vision transformer, as the AirCast paper uses it.

Each channel is patch-embedded on its own (variable tokenisation: one batched einsum over all
channels, not a loop), a learned channel embedding is added, and one learned query per patch
aggregates the channels of that patch by cross-attention (cross-variable aggregation). The
patch tokens then pass through transformer blocks with the lead time and the time of day /
season embedded, and task heads decode them back into fields. Attention is PyTorch's
scaled-dot-product attention throughout (flash / memory-efficient kernels where available).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sincos_2d(n_h: int, n_w: int, width: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding, shape (n_h * n_w, width)."""
    if width % 4:
        raise ValueError(f"width {width} must be a multiple of 4 for 2-D sincos embeddings")
    quarter = width // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    ys, xs = torch.meshgrid(
        torch.arange(n_h, dtype=torch.float64),
        torch.arange(n_w, dtype=torch.float64),
        indexing="ij",
    )
    y = ys.reshape(-1, 1) * omega
    x = xs.reshape(-1, 1) * omega
    return torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], dim=1).float()


class VariableTokeniser(nn.Module):
    """Per-channel patch embedding in one batched operation.

    (B, C, H, W) → (B, L, C, D): every channel has its own linear patch projection
    (weight (C, p·p, D)), applied to all channels at once with one einsum.
    """

    def __init__(self, n_channels: int, patch: int, width: int) -> None:
        super().__init__()
        self.patch = patch
        self.weight = nn.Parameter(torch.empty(n_channels, patch * patch, width))
        self.bias = nn.Parameter(torch.zeros(n_channels, width))
        nn.init.trunc_normal_(self.weight, std=1.0 / math.sqrt(patch * patch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.patch
        patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(b, (h // p) * (w // p), c, p * p)
        return torch.einsum("blcq,cqd->blcd", patches, self.weight) + self.bias


class CrossVariableAggregation(nn.Module):
    """One learned query per patch attends over that patch's channel tokens: (B, L, C, D) →
    (B, L, D)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n_patch, c, d = tokens.shape
        h = self.heads
        kv = self.kv(tokens.reshape(b * n_patch, c, d))
        k, v = kv.reshape(b * n_patch, c, 2, h, d // h).permute(2, 0, 3, 1, 4)
        q = self.q(self.query).reshape(1, 1, h, d // h).permute(0, 2, 1, 3)
        q = q.expand(b * n_patch, h, 1, d // h)
        mixed = F.scaled_dot_product_attention(q, k, v)  # (B·L, heads, 1, D/heads)
        return self.out(mixed.reshape(b, n_patch, d))


class Block(nn.Module):
    """Pre-norm transformer block with scaled-dot-product self-attention."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width)
        )
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class Head(nn.Module):
    """Decodes patch tokens into ``n_out`` fields: (B, L, D) → (B, n_out, Hp, Wp)."""

    def __init__(self, width: int, n_out: int, patch: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.n_out, self.patch, self.grid = n_out, patch, grid
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, n_out * patch * patch)
        nn.init.zeros_(self.linear.weight)  # start as "no change": the model is residual
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        n_h, n_w = self.grid
        p = self.patch
        y = self.linear(self.norm(x)).reshape(b, n_h, n_w, self.n_out, p, p)
        return y.permute(0, 3, 1, 4, 2, 5).reshape(b, self.n_out, n_h * p, n_w * p)


class ViTBackbone(nn.Module):
    """Tokenise, aggregate, embed time, run the blocks: (B, C, Hp, Wp) → (B, L, D).

    Parameters
    ----------
    n_channels
        Input channels (physical channels plus derived ones, e.g. the lead-time map).
    padded_grid
        (Hp, Wp), multiples of ``patch``.
    """

    def __init__(
        self,
        n_channels: int,
        padded_grid: tuple[int, int],
        patch: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be a multiple of heads {heads}")
        n_h, n_w = padded_grid[0] // patch, padded_grid[1] // patch
        self.tokeniser = VariableTokeniser(n_channels, patch, width)
        self.channel_embed = nn.Parameter(torch.zeros(1, 1, n_channels, width))
        nn.init.trunc_normal_(self.channel_embed, std=0.02)
        self.aggregate = CrossVariableAggregation(width, heads)
        self.register_buffer("pos_embed", sincos_2d(n_h, n_w, width).unsqueeze(0), persistent=False)
        # lead time (hours/24) and time of day / season (sin, cos pairs) → one embedding
        self.time_embed = nn.Sequential(nn.Linear(5, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, time_features: torch.Tensor) -> torch.Tensor:
        tokens = self.tokeniser(x) + self.channel_embed  # (B, L, C, D)
        h = self.aggregate(tokens) + self.pos_embed  # (B, L, D)
        h = h + self.time_embed(time_features).unsqueeze(1)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)
