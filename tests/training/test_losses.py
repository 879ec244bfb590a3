"""The losses against hand-computed references on small tensors."""

from __future__ import annotations

import math

import pytest
import torch

from aircast.training.losses import (
    AirCastLoss,
    FrequencyWeights,
    bin_weights,
    latitude_weights,
)


def test_latitude_weights_follow_cell_areas() -> None:
    w = latitude_weights(torch.tensor([60.0, 0.0]), 1.0)
    # cell areas ∝ sin(north) - sin(south)
    a60 = math.sin(math.radians(60.5)) - math.sin(math.radians(59.5))
    a0 = math.sin(math.radians(0.5)) - math.sin(math.radians(-0.5))
    expected = torch.tensor([a60, a0]) / ((a60 + a0) / 2)
    assert torch.allclose(w, expected.float(), rtol=1e-6)
    assert w.mean().item() == pytest.approx(1.0)


def test_bins_use_the_target_with_under_and_overflow() -> None:
    edges = torch.tensor([[0.0, 1.0, 2.0]])
    fw = FrequencyWeights(edges, torch.tensor([[1, 10, 100, 1]]), "inverse_sqrt")
    target = torch.tensor([-5.0, 0.0, 0.5, 1.0, 1.99, 2.0, 7.0]).view(1, 1, 1, 7)
    assert fw.bins(target).view(-1).tolist() == [0, 1, 1, 2, 2, 3, 3]


def test_inverse_sqrt_reference() -> None:
    counts = torch.tensor([[0, 100, 25, 4]])
    fw = FrequencyWeights(torch.tensor([[0.0, 1.0, 2.0]]), counts, "inverse_sqrt")
    target = torch.tensor([0.5, 0.5, 1.5, 2.5]).view(1, 1, 2, 2)
    raw = torch.tensor([1 / 10, 1 / 10, 1 / 5, 1 / 2])
    expected = raw / raw.mean()
    assert torch.allclose(fw(target).view(-1), expected, rtol=1e-6)
    # the empty underflow bin takes the rarest observed bin's weight
    assert fw.table[0, 0].item() == pytest.approx(1 / 2)


def test_inverse_log_reference() -> None:
    w = bin_weights(torch.tensor([[1, 1000]]), "inverse_log")
    assert w[0, 0].item() == pytest.approx(1 / math.log(math.e + 1))
    assert w[0, 1].item() == pytest.approx(1 / math.log(math.e + 1000))


def test_ens_reference_and_no_saturation() -> None:
    counts = torch.tensor([[1_000_000, 10_000, 100, 1]])
    beta = 0.999
    w = bin_weights(counts, "ens", beta)
    for i, n in enumerate([1_000_000, 10_000, 100, 1]):
        assert w[0, i].item() == pytest.approx((1 - beta) / (1 - beta**n), rel=1e-9)
    # a fixed small β saturates: every bin with more than a few dozen samples weighs the same
    saturated = bin_weights(counts, "ens", 0.8)
    assert saturated[0, 0].item() == pytest.approx(saturated[0, 2].item(), rel=1e-6)
    # the default β = 1 - 1/N keeps rare bins heavier than common ones, in order
    auto = bin_weights(counts, "ens")
    assert (auto[0, 1:] > auto[0, :-1]).all()


def test_heavy_tail_extremes_get_the_largest_weights() -> None:
    """A heavy-tailed histogram: the extreme bins weigh most under every scheme."""
    torch.manual_seed(0)
    sample = torch.distributions.LogNormal(0.0, 1.0).sample((200_000,)).log()
    edges = torch.linspace(-4, 4, 33)
    index = torch.bucketize(sample, edges, right=True)
    counts = torch.bincount(index, minlength=34).view(1, -1)
    target = torch.tensor([0.0, 3.5]).view(1, 1, 1, 2)  # the mode, and an extreme
    for scheme in ("ens", "inverse_log", "inverse_sqrt"):
        fw = FrequencyWeights(edges.view(1, -1), counts, scheme)  # type: ignore[arg-type]
        w = fw(target).view(-1)
        assert w[1] > w[0], scheme
        assert fw.table[0].argmax().item() in (0, 1, 32, 33), scheme  # a tail bin


def test_aircast_loss_reference() -> None:
    lat = torch.tensor([2.0, 0.0])  # weights as given (mean 1)
    fw = FrequencyWeights(torch.tensor([[0.0]]), torch.tensor([[3, 1]]), "inverse_sqrt")
    loss = AirCastLoss(lat, n_weather=1, frequency=fw, weather_weight=1.0, pollutant_weight=2.0)
    prediction = torch.zeros(1, 2, 2, 1)
    target = torch.tensor([[[[1.0], [5.0]], [[-1.0], [1.0]]]])
    total, parts = loss(prediction, target)
    # weather: rows weighted 2 and 0 → |0-1| only
    assert parts["weather"] == pytest.approx(1.0)
    # pollutants: frequency weights 1/sqrt(3) (below 0) and 1 (above), normalised to mean 1,
    # times latitude 2 and 0 → only the first pixel counts, error 1
    assert parts["pollutants"] == pytest.approx(1.0)
    assert total.item() == pytest.approx(1.0 + 2.0 * 1.0)


def test_missing_targets_are_left_out() -> None:
    loss = AirCastLoss(torch.ones(2), n_weather=1, frequency=None)
    target = torch.tensor([[[[1.0], [float("nan")]]]])
    total, parts = loss(torch.zeros(1, 1, 2, 1), target)
    assert parts["weather"] == pytest.approx(1.0) and torch.isfinite(total)
