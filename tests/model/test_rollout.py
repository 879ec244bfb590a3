"""Rollout: every 3 h to 72 h, direct up to 24 h, then fed back; static channels kept; each
state's time is the valid time of the prediction it starts from."""

from __future__ import annotations

import numpy as np
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
    batch = make_batch(targets=True, init="2019-06-30T18")
    calls = spy(model)
    steps = list(rollout(model, batch))

    assert [lead for lead, _ in steps] == list(range(3, 73, 3))
    assert all(p.values.shape == (2, len(TARGETS), 8, 12) for _, p in steps)
    assert all(p.channels == TARGETS and p.grid is batch.grid for _, p in steps)
    for lead, p in steps:  # each step is valid at the initial time plus its lead
        assert (p.valid_time == batch.init_time + np.timedelta64(lead, "h")).all()
    # direct leads 3..24 h from each of three initial states
    assert [int(c.lead_hours[0]) for c in calls] == list(range(3, 25, 3)) * 3
    assert all(c.targets is None for c in calls)
    predicted = {lead: p.values for lead, p in steps}
    lsm = INPUTS.index("lsm")
    target_index = [INPUTS.index(c) for c in TARGETS]
    for k, call in enumerate(calls):
        start = 24 * (k // 8)  # the valid time of this call's initial state
        assert (call.init_time == batch.init_time + np.timedelta64(start, "h")).all()
        if start == 0:
            assert torch.equal(call.inputs, batch.inputs)
        else:
            # the forecast at ``start`` became the state; the static field is the original
            assert torch.equal(call.inputs[:, target_index], predicted[start])
            assert torch.equal(call.inputs[:, lsm], batch.inputs[:, lsm])
        assert call.init_hour_of_day[0].item() == 18.0  # a day later: the same hour
        assert call.init_day_of_year[0].item() == [181.0, 182.0, 183.0][k // 8]
    # the direct leads are what the model says for them
    direct = model(make_batch(targets=False, lead=12.0, init="2019-06-30T18"))
    assert torch.equal(predicted[12], direct)
    # later leads differ from the first day's (they start from another state)
    assert not torch.equal(predicted[36], predicted[12])
    # positive channels stay positive all the way
    for _, p in steps:
        assert (p.values[:, 1:] >= 0).all()


@pytest.mark.parametrize(
    ("init", "days"),
    [
        ("2018-12-31T18", [365, 1, 2]),  # not 366: 2018 is not a leap year
        ("2020-12-31T18", [366, 1, 2]),
        ("2019-02-28T18", [59, 60, 61]),  # 1 March is day 60 of a common year
        ("2020-02-28T18", [59, 60, 61]),  # 29 February, then 1 March
    ],
)
@torch.no_grad()
def test_the_restarted_states_take_their_day_of_year_from_the_calendar(
    init: str, days: list[int]
) -> None:
    model = make_model()
    calls = spy(model)
    list(rollout(model, make_batch(targets=False, init=init), max_lead_hours=72))
    starts = [calls[0], calls[8], calls[16]]  # the first call from each initial state
    assert [int(c.init_day_of_year[0]) for c in starts] == days
    assert [int(c.init_hour_of_day[0]) for c in starts] == [18, 18, 18]


@torch.no_grad()
def test_rollout_is_lazy_and_checks_its_steps() -> None:
    model = make_model()
    calls = spy(model)
    generator = rollout(model, make_batch(), max_lead_hours=48)
    assert calls == []  # nothing runs before the first lead is asked for
    first = next(generator)
    assert first[0] == 3 and len(calls) == 1
    assert [lead for lead, _ in generator][-1] == 48
    with pytest.raises(ValueError, match="multiples of the 3 h step"):
        next(rollout(model, make_batch(), direct_hours=25))
