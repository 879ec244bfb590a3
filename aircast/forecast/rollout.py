"""Rollout: a forecast to any lead as a generator of three-hourly steps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import torch

from aircast.data.batch import Batch
from aircast.model.forecaster import Forecaster


def rollout(
    model: Forecaster,
    batch: Batch,
    *,
    max_lead_hours: int = 72,
    step_hours: int = 3,
    direct_hours: int = 24,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Forecast every ``step_hours`` up to ``max_lead_hours``, as a generator.

    Leads up to ``direct_hours`` are predicted directly from the initial state (the model is
    lead-time conditioned); beyond, the prediction at the last direct lead becomes the new
    initial state (static channels kept), and so on: errors do not compound every 3 hours,
    only every ``direct_hours``.

    Yields
    ------
    (lead_hours, prediction)
        Prediction (B, C_out, H, W) in physical units, positive channels clamped at zero.
    """
    if direct_hours % step_hours or max_lead_hours % step_hours:
        raise ValueError("direct_hours and max_lead_hours must be multiples of step_hours")
    state = batch
    base = 0
    for lead in range(step_hours, max_lead_hours + 1, step_hours):
        relative = lead - base
        step_batch = replace(
            state, targets=None, lead_hours=torch.full_like(state.lead_hours, float(relative))
        )
        prediction = model(step_batch)
        yield lead, prediction
        if relative == direct_hours and lead < max_lead_hours:
            inputs = state.inputs.clone()
            inputs[:, model.target_index] = prediction
            hour = (state.init_hour_of_day + relative) % 24
            doy = state.init_day_of_year + torch.div(
                state.init_hour_of_day + relative, 24, rounding_mode="floor"
            )
            state = replace(
                state, inputs=inputs, init_hour_of_day=hour, init_day_of_year=((doy - 1) % 366) + 1
            )
            base = lead
