"""Helpers of the flow tests (imported from this folder only): which run a returned state
belongs to."""

from __future__ import annotations

from uuid import UUID

from prefect.states import State


def run_id(state: State) -> UUID:
    """The flow run of a state a flow returned with ``return_state=True``."""
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id
