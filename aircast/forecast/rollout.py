"""Rollout: a forecast to any lead as a generator of three-hourly steps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import torch

from aircast.align.time import STEP_HOURS
from aircast.data.batch import Batch
from aircast.model.forecaster import Forecaster, Prediction


def rollout(
    model: Forecaster,
    batch: Batch,
    *,
    max_lead_hours: int = 72,
    direct_hours: int = 24,
) -> Iterator[tuple[int, Prediction]]:
    """Forecast every ``STEP_HOURS`` up to ``max_lead_hours``, as a generator.

    Leads up to ``direct_hours`` are predicted directly from the initial state (the model is
    lead-time conditioned); beyond, the prediction at the last direct lead becomes the new
    initial state (static channels kept), valid at the prediction's valid time, and so on:
    errors do not compound every 3 hours, only every ``direct_hours``.

    Yields
    ------
    (lead_hours, prediction)
        Lead since ``batch``'s initial time; the prediction (B, C_out, H, W) in physical
        units, positive channels clamped at zero, valid at ``batch.init_time + lead_hours``.
    """
    if direct_hours % STEP_HOURS or max_lead_hours % STEP_HOURS:
        raise ValueError(
            f"direct_hours and max_lead_hours must be multiples of the {STEP_HOURS} h step"
        )
    state, base = batch, 0  # base: the lead of the state's time since the batch's
    for lead in range(STEP_HOURS, max_lead_hours + 1, STEP_HOURS):
        lead_hours = torch.full_like(state.lead_hours, float(lead - base))
        prediction = model.predict(replace(state, targets=None, lead_hours=lead_hours))
        yield lead, prediction
        if lead - base == direct_hours and lead < max_lead_hours:
            state, base = restart_from(state, prediction, model.target_index), lead


def restart_from(state: Batch, prediction: Prediction, target_index: torch.Tensor) -> Batch:
    """The next initial state: ``prediction`` in its channels of ``state``, at its valid time.

    ``target_index`` (C_out,) places the predicted channels among the inputs; the others
    (static fields) are kept.
    """
    inputs = state.inputs.clone()
    inputs[:, target_index] = prediction.values
    return replace(state, inputs=inputs, init_time=prediction.valid_time)
