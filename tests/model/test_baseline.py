"""The forecast the network corrects: damped anomaly persistence from a diurnal climatology.

With its heads at zero (as a model starts), a model with a climatology forecasts
``clim[target hour] + exp(-k·lead) · (state - clim[initial hour])`` in normalised space, and a
model without one forecasts persistence; both checked against hand-written references.
"""

from __future__ import annotations

import math

import pytest
import torch
from modeltools import INPUTS, TARGETS, make_batch, make_normaliser

from aircast.model.forecaster import INITIAL_DECAY_PER_DAY, DiurnalMean, Forecaster, ModelShape

GRID = (6, 10)
HOURS = torch.arange(0, 24, 3)


def climatology(seed: int = 3, hours: torch.Tensor = HOURS) -> DiurnalMean:
    g = torch.Generator().manual_seed(seed)
    return DiurnalMean(hours, torch.randn(hours.numel(), len(TARGETS), *GRID, generator=g))


def model_with(clim: DiurnalMean | None) -> Forecaster:
    torch.manual_seed(0)
    shape = ModelShape(patch_size=2, width=16, depth=1, heads=2)
    return Forecaster(shape, INPUTS, TARGETS, GRID, make_normaliser(), clim).eval()


@pytest.mark.parametrize(("init_hour", "lead"), [(0.0, 3.0), (21.0, 6.0), (12.0, 24.0)])
def test_an_untrained_model_forecasts_damped_anomaly_persistence(
    init_hour: float, lead: float
) -> None:
    clim = climatology()
    model = model_with(clim)
    batch = make_batch(GRID, size=2, lead=lead, init=f"2019-04-10T{int(init_hour):02d}")
    z = model.normaliser.normalise(batch.inputs)
    with torch.no_grad():
        out = model.forward_normalised(
            z, batch.lead_hours, batch.init_hour_of_day, batch.init_day_of_year
        )
    # by hand: the slots of the initial and the target hour (21 h + 6 h wraps to 03 h)
    init_slot = int(init_hour) // 3
    target_slot = int((init_hour + lead) % 24) // 3
    kept = math.exp(-INITIAL_DECAY_PER_DAY * lead / 24)
    state = z[:, [INPUTS.index(c) for c in TARGETS]]
    expected = clim.mean[target_slot] + kept * (state - clim.mean[init_slot])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_at_a_whole_day_the_baseline_is_damped_persistence_of_the_anomaly() -> None:
    """24 h ahead the hour of day is the same: the climatology cancels from the anomaly."""
    clim = climatology()
    model = model_with(clim)
    batch = make_batch(GRID, lead=24.0, init="2019-04-10T09")
    z = model.normaliser.normalise(batch.inputs)
    with torch.no_grad():
        base = model.baseline(z, batch.lead_hours, batch.init_hour_of_day)
    state = z[:, [INPUTS.index(c) for c in TARGETS]]
    kept = math.exp(-INITIAL_DECAY_PER_DAY)
    torch.testing.assert_close(base - clim.mean[3], kept * (state - clim.mean[3]))


def test_without_a_climatology_the_baseline_is_persistence() -> None:
    model = model_with(None)
    batch = make_batch(GRID, lead=9.0, init="2019-04-10T06")
    with torch.no_grad():
        out = model(batch)
    persistence = batch.inputs[:, [INPUTS.index(c) for c in TARGETS]]
    torch.testing.assert_close(out, persistence, rtol=1e-5, atol=0.0)
    assert "climatology" not in model.state_dict()
    assert "anomaly_decay" not in dict(model.named_parameters())


def test_an_hour_the_climatology_lacks_takes_the_nearest_held_hour() -> None:
    """A store of 00 and 12 UTC only: 07 h → 12 h, 23 h → 00 h (across midnight), and a tie
    (06 h) takes the earlier slot."""
    model = model_with(climatology(hours=torch.tensor([0, 12])))
    slots = model._slot(torch.tensor([7.0, 23.0, 6.0, 13.0, 0.0]))
    assert slots.tolist() == [1, 0, 0, 1, 0]


def test_the_decay_is_learned_and_stays_a_decay() -> None:
    """The rate goes through softplus: whatever the optimiser does, 0 < kept ≤ 1."""
    model = model_with(climatology())
    assert model.anomaly_decay is not None
    with torch.no_grad():
        model.anomaly_decay.fill_(-50.0)
    batch = make_batch(GRID, lead=24.0, init="2019-04-10T00")
    z = model.normaliser.normalise(batch.inputs)
    base = model.baseline(z, batch.lead_hours, batch.init_hour_of_day)
    base.sum().backward()
    assert model.anomaly_decay.grad is not None
    state = z[:, [INPUTS.index(c) for c in TARGETS]]
    # rate ≈ 0: persistence of the anomaly, i.e. of the state at 24 h
    torch.testing.assert_close(base, state, rtol=1e-5, atol=1e-5)


def test_the_climatology_travels_in_the_state_dict() -> None:
    model = model_with(climatology())
    state = model.state_dict()
    fresh = model_with(DiurnalMean(state["climatology_hours"], state["climatology"]))
    fresh.load_state_dict(state)  # strict
    torch.testing.assert_close(fresh.climatology, model.climatology)
    assert fresh.climatology_hours.dtype == torch.long


@pytest.mark.parametrize(
    ("clim", "message"),
    [
        (DiurnalMean(HOURS, torch.zeros(8, len(TARGETS), 5, 10)), "climatology must be"),
        (DiurnalMean(HOURS, torch.zeros(8, 2, *GRID)), "climatology must be"),
        (DiurnalMean(HOURS, torch.full((8, len(TARGETS), *GRID), math.nan)), "non-finite"),
    ],
)
def test_a_climatology_of_another_shape_is_refused(clim: DiurnalMean, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model_with(clim)
