"""The forecaster: batch validation, shapes and channel order, odd grids, positivity, the
normaliser, and the ClimaX layers against straightforward per-channel references."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from modeltools import (
    INPUTS,
    TARGETS,
    make_batch,
    make_grid,
    make_model,
    make_normaliser,
    physical_fields,
    randomise_heads,
)
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from aircast.data.batch import Batch, BatchError
from aircast.model.normaliser import Normaliser
from aircast.model.vit import CrossVariableAggregation, VariableTokeniser

# ---- the batch validates itself


def batch_fields(**changes: Any) -> dict[str, Any]:
    b = make_batch()
    fields = {
        "inputs": b.inputs,
        "lead_hours": b.lead_hours,
        "init_time": b.init_time,
        "grid": b.grid,
        "input_channels": b.input_channels,
        "target_channels": b.target_channels,
        "targets": b.targets,
    }
    return fields | changes


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"inputs": torch.zeros(6, 8, 12)}, r"inputs must be \(batch, channel, lat, lon\)"),
        ({"inputs": torch.zeros(2, 5, 8, 12)}, "inputs have 5 channels but input_channels names 6"),
        ({"input_channels": ("t2m",) * 6}, "input_channels has duplicates"),
        ({"lead_hours": torch.zeros(3)}, r"lead_hours must have shape \(2,\)"),
        ({"init_time": np.zeros(3, "datetime64[ns]")}, r"init_time must be .* shape \(2,\)"),
        ({"init_time": torch.zeros(2)}, r"init_time must be a numpy array of shape \(2,\)"),
        ({"init_time": np.zeros(2, "datetime64[h]")}, r"init_time must be datetime64\[ns\]"),
        ({"grid": make_grid((8, 11))}, "the grid is 8×11 cells but the inputs are on 8×12"),
        ({"targets": torch.zeros(2, 5, 8, 11)}, r"targets must have shape \(2, 5, 8, 12\)"),
        ({"inputs": torch.zeros(2, 6, 8, 12, dtype=torch.float64)}, "inputs must be float32"),
        ({"targets": torch.zeros(2, 5, 8, 12, dtype=torch.float16)}, "targets must be float32"),
        ({"lead_hours": torch.zeros(2, dtype=torch.float64)}, "lead_hours must be float32"),
        (
            {"target_channels": ("t2m", "blh", "tp", "pm2p5", "no2_925")},
            r"target channels \['no2_925'\] are not among the input channels",
        ),
    ],
)
def test_batch_refuses_bad_fields(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BatchError, match=message):
        Batch(**batch_fields(**changes))


def test_the_calendar_features_come_from_the_initial_time() -> None:
    """Hour and day of year are derived from ``init_time``, on the inputs' device."""
    times = np.array(["2019-12-31T21", "2020-12-31T03"], "datetime64[ns]")
    batch = replace(make_batch(), init_time=times)
    assert batch.init_hour_of_day.tolist() == [21.0, 3.0]
    assert batch.init_day_of_year.tolist() == [365.0, 366.0]  # 2020 is a leap year
    assert batch.init_hour_of_day.dtype == torch.float32
    assert batch.init_day_of_year.device == batch.inputs.device
    moved = batch.to("cpu")
    assert moved.init_time is batch.init_time and moved.grid is batch.grid


def test_a_prediction_carries_its_valid_time() -> None:
    model = make_model()
    randomise_heads(model)
    batch = replace(make_batch(lead=6.0), lead_hours=torch.tensor([6.0, 27.0]))
    with torch.no_grad():
        prediction = model.predict(batch)
        values = model(batch)
    assert torch.equal(prediction.values, values)
    assert (
        prediction.valid_time.tolist()
        == np.array(["2019-04-10T18", "2019-04-11T15"], "datetime64[ns]").tolist()
    )
    assert prediction.channels == TARGETS and prediction.grid is batch.grid


def test_model_refuses_another_channel_order() -> None:
    model = make_model()
    batch = make_batch()
    swapped = (INPUTS[1], INPUTS[0], *INPUTS[2:])
    with pytest.raises(BatchError, match=r"input channels .* are not the model's"):
        model(replace(batch, input_channels=swapped))
    reordered = (*TARGETS[:3], TARGETS[4], TARGETS[3])
    with pytest.raises(BatchError, match=r"target channels .* are not the model's"):
        model(replace(batch, target_channels=reordered))


def test_model_refuses_another_grid() -> None:
    model = make_model(grid=(8, 12))
    with pytest.raises(BatchError, match=r"\(batch, 6, 8, 12\) fields .* got \(2, 6, 9, 12\)"):
        model(make_batch(grid=(9, 12)))


# ---- shapes and channel order through the model


def test_output_shape_and_channel_order() -> None:
    model = make_model()
    batch = make_batch()
    with torch.no_grad():
        out = model(batch)
    assert out.shape == (2, len(TARGETS), 8, 12) and out.dtype == torch.float32
    # the heads start at zero: the output is the input state of each target channel, so the
    # i-th output is the input channel named TARGETS[i] (up to the normaliser's round trip)
    for i, name in enumerate(TARGETS):
        expected = batch.inputs[:, INPUTS.index(name)]
        assert torch.allclose(out[:, i], expected, rtol=1e-5, atol=1e-12), name


def test_each_head_writes_its_own_channels() -> None:
    model = make_model()
    randomise_heads(model)
    with torch.no_grad():
        model.heads["pollutants"].linear.weight.zero_()
        model.heads["pollutants"].linear.bias.zero_()
        batch = make_batch()
        out = model(batch)
    assert model.weather_channels == ("t2m", "blh", "tp")
    assert model.pollutant_channels == ("pm2p5", "go3_925")
    for i, name in enumerate(TARGETS):
        persistence = batch.inputs[:, INPUTS.index(name)]
        same = torch.allclose(out[:, i], persistence, rtol=1e-5, atol=1e-12)
        assert same == (name in model.pollutant_channels), name


@pytest.mark.parametrize(("grid", "patch"), [((17, 37), 2), ((17, 37), 4), ((9, 13), 4)])
def test_grids_not_a_multiple_of_the_patch(grid: tuple[int, int], patch: int) -> None:
    model = make_model(grid=grid, patch=patch)
    assert model.padded == (math.ceil(grid[0] / patch) * patch, math.ceil(grid[1] / patch) * patch)
    randomise_heads(model)
    batch = make_batch(grid=grid)
    out = model(batch)
    assert out.shape == (2, len(TARGETS), *grid)
    assert torch.isfinite(out).all()
    out.sum().backward()  # gradients reach the tokeniser through the padding and the crop
    grad = model.backbone.tokeniser.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_lead_time_changes_the_forecast() -> None:
    model = make_model()
    randomise_heads(model)
    with torch.no_grad():
        a = model(make_batch(lead=3.0))
        b = model(make_batch(lead=24.0))
    assert not torch.allclose(a, b)


def test_positive_channels_are_clamped_at_zero() -> None:
    model = make_model()
    with torch.no_grad():
        for head in model.heads.values():  # a large negative change everywhere
            head.linear.bias.fill_(-50.0)
        out = model(make_batch())
    for i, name in enumerate(TARGETS):
        if name == "t2m":  # not a positive quantity: left as predicted
            assert (out[:, i] < 0).all()
        else:
            assert (out[:, i] >= 0).all(), name
            assert (out[:, i] == 0).any(), name


# ---- the normaliser


def test_normaliser_transforms_by_channel_kind() -> None:
    norm = make_normaliser()
    log_channels = [c for c, m in zip(INPUTS, norm.log_mask.view(-1), strict=True) if m]
    # heavy-tailed positive channels go through log; blh is positive but not heavy-tailed
    assert log_channels == ["tp", "pm2p5", "go3_925"]
    x = physical_fields(INPUTS, (3, 5, 7))
    z = norm.normalise(x).double()
    xd = x.double()
    for i, c in enumerate(INPUTS):
        mean, std = norm.mean.view(-1)[i].item(), norm.std.view(-1)[i].item()
        if c in log_channels:
            off = norm.log_offset.view(-1)[i].item()
            lm, ls = norm.log_mean.view(-1)[i].item(), norm.log_std.view(-1)[i].item()
            expected = (torch.log(xd[:, i] + off) - lm) / ls
        else:
            expected = (xd[:, i] - mean) / std
        assert torch.allclose(z[:, i], expected, rtol=1e-4, atol=1e-4), c
    # heavy tails come out tame in log space: the largest value is a few units, not hundreds
    assert z[:, INPUTS.index("pm2p5")].abs().max() < 10


def test_normaliser_round_trip() -> None:
    norm = make_normaliser()
    x = physical_fields(INPUTS, (4, 6, 9), seed=3)
    back = norm.denormalise(norm.normalise(x))
    assert torch.allclose(back, x, rtol=2e-5, atol=0)
    # negative values of a positive channel (interpolation undershoot) are read as 0
    x[:, INPUTS.index("pm2p5")] = -1e-9
    assert torch.allclose(norm.denormalise(norm.normalise(x))[:, 3], torch.zeros(4, 6, 9))


def test_normaliser_subset_and_bad_statistics() -> None:
    norm = make_normaliser()
    sub = norm.subset(("go3_925", "t2m"))
    x = physical_fields(("go3_925", "t2m"), (1, 2, 2))
    full = torch.zeros(1, len(INPUTS), 2, 2)
    full[:, INPUTS.index("go3_925")] = x[:, 0]
    full[:, INPUTS.index("t2m")] = x[:, 1]
    expected = norm.normalise(full)[:, [INPUTS.index("go3_925"), INPUTS.index("t2m")]]
    assert torch.equal(sub.normalise(x), expected)
    ones = torch.ones(2)
    with pytest.raises(ValueError, match="non-finite"):
        Normaliser(("t2m", "pm2p5"), torch.tensor([1.0, math.nan]), ones, ones, ones, ones)
    with pytest.raises(ValueError, match="zero spread"):
        Normaliser(("t2m", "pm2p5"), ones, torch.tensor([0.0, 1.0]), ones, ones, ones)
    with pytest.raises(ValueError, match=r"must have shape \(2,\)"):
        Normaliser(("t2m", "pm2p5"), torch.ones(3), ones, ones, ones, ones)


def test_state_dict_holds_the_statistics_once() -> None:
    """The target normaliser is derived, never registered: a checkpoint written after a
    forward loads into a fresh model (it did not, when it was cached as a submodule)."""
    model = make_model()
    keys = set(model.state_dict())
    with torch.no_grad():
        model(make_batch())
    assert set(model.state_dict()) == keys
    fresh = make_model(seed=5)
    fresh.load_state_dict(model.state_dict())  # strict
    assert sorted(k for k in keys if "normaliser" in k) == sorted(
        f"normaliser.{n}"
        for n in ("mean", "std", "log_mean", "log_std", "log_offset", "log_mask", "positive")
    )


# ---- the ClimaX layers against per-channel references


def loop_tokeniser(tok: VariableTokeniser, x: torch.Tensor) -> torch.Tensor:
    """The ClimaX reference: one Conv2d patch embedding per channel, in a Python loop."""
    p = tok.patch
    out = []
    for c in range(x.shape[1]):
        width = tok.weight.shape[2]
        kernel = tok.weight[c].T.reshape(width, 1, p, p)  # (p·p, D) → (D, 1, p, p), row-major
        y = F.conv2d(x[:, c : c + 1], kernel, tok.bias[c], stride=p)  # (B, D, H/p, W/p)
        out.append(y.flatten(2).transpose(1, 2))  # (B, L, D), patches row by row
    return torch.stack(out, dim=2)


class _CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("patch", [1, 2, 4])
def test_variable_tokeniser_equals_the_per_channel_loop(patch: int) -> None:
    torch.manual_seed(0)
    tok = VariableTokeniser(n_channels=5, patch=patch, width=24)
    nn.init.normal_(tok.bias)
    x = torch.randn(3, 5, 8, 12, dtype=torch.float64)
    tok = tok.double()
    assert torch.allclose(tok(x), loop_tokeniser(tok, x), rtol=1e-12, atol=1e-12)


def test_variable_tokeniser_is_batched_over_channels() -> None:
    """As many kernel calls for 20 channels as for 2, one matrix product: no channel loop."""
    counts = []
    for c in (2, 20):
        tok = VariableTokeniser(n_channels=c, patch=2, width=16)
        x = torch.randn(2, c, 8, 8)
        with torch.no_grad(), _CountOps() as mode:
            tok(x)
        counts.append(mode.ops)
    assert counts[0] == counts[1]
    assert counts[0]["aten.bmm"] + counts[0]["aten.mm"] == 1


def test_cross_variable_aggregation_equals_multihead_attention() -> None:
    """The aggregation is ClimaX's nn.MultiheadAttention with one learned query per patch."""
    torch.manual_seed(0)
    width, heads = 32, 4
    agg = CrossVariableAggregation(width, heads).double()
    ref = nn.MultiheadAttention(width, heads, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([agg.q.weight, agg.kv.weight]))
        ref.in_proj_bias.copy_(torch.cat([agg.q.bias, agg.kv.bias]))
        ref.out_proj.weight.copy_(agg.out.weight)
        ref.out_proj.bias.copy_(agg.out.bias)
    tokens = torch.randn(2, 6, 5, width, dtype=torch.float64)  # (B, L, C, D)
    flat = tokens.reshape(12, 5, width)
    expected, _ = ref(agg.query.expand(12, 1, width), flat, flat, need_weights=False)
    assert torch.allclose(agg(tokens), expected.reshape(2, 6, width), rtol=1e-12, atol=1e-12)
