"""Rollout: every 3 h to 72 h, direct up to 24 h, then fed back; static channels kept."""

from __future__ import annotations

import pytest
import torch
from modeltools import INPUTS, TARGETS, make_batch, make_model, randomise_heads

from aircast.data.batch import Batch
from aircast.forecast.rollout import rollout
from aircast.model.forecaster import Forecaster


def spy(model: Forecaster) -> list[Batch]:
    """Record the batches the model is called with."""
    calls: list[Batch] = []
    forward = model.forward

    def recorded(batch: Batch) -> torch.Tensor:
        calls.append(batch)
        return forward(batch)

    model.forward = recorded  # type: ignore[method-assign]
    return calls


@torch.no_grad()
def test_rollout_every_three_hours_with_feedback_after_a_day() -> None:
    model = make_model()
    randomise_heads(model, std=0.05)
    batch = make_batch(targets=True, hour=18.0, doy=365.0)
    calls = spy(model)
    steps = list(rollout(model, batch))

    assert [lead for lead, _ in steps] == list(range(3, 73, 3))
    assert all(p.shape == (2, len(TARGETS), 8, 12) for _, p in steps)
    # direct leads 3..24 h from each of three initial states
    assert [int(c.lead_hours[0]) for c in calls] == list(range(3, 25, 3)) * 3
    assert all(c.targets is None for c in calls)
    predicted = dict(steps)
    lsm = INPUTS.index("lsm")
    target_index = [INPUTS.index(c) for c in TARGETS]
    for k, call in enumerate(calls):
        start = 24 * (k // 8)  # the valid time of this call's initial state
        if start == 0:
            assert torch.equal(call.inputs, batch.inputs)
        else:
            # the forecast at ``start`` became the state; the static field is the original
            assert torch.equal(call.inputs[:, target_index], predicted[start])
            assert torch.equal(call.inputs[:, lsm], batch.inputs[:, lsm])
        assert call.init_hour_of_day[0].item() == 18.0  # a day later: the same hour
        assert call.init_day_of_year[0].item() == [365.0, 366.0, 1.0][k // 8]
    # the direct leads are what the model says for them
    direct = model(make_batch(targets=False, lead=12.0, hour=18.0, doy=365.0))
    assert torch.equal(predicted[12], direct)
    # later leads differ from the first day's (they start from another state)
    assert not torch.equal(predicted[36], predicted[12])
    # positive channels stay positive all the way
    for _, p in steps:
        assert (p[:, 1:] >= 0).all()


@torch.no_grad()
def test_rollout_is_lazy_and_checks_its_steps() -> None:
    model = make_model()
    calls = spy(model)
    generator = rollout(model, make_batch(), max_lead_hours=48)
    assert calls == []  # nothing runs before the first lead is asked for
    first = next(generator)
    assert first[0] == 3 and len(calls) == 1
    assert [lead for lead, _ in generator][-1] == 48
    with pytest.raises(ValueError, match="multiples of step_hours"):
        next(rollout(model, make_batch(), direct_hours=25))
