"""Helpers shared by the flow and server tests: which run a returned state belongs to, and a
free port for a server of one's own."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:  # conftest imports this module: Prefect is not loaded for every test
    from prefect.states import State


def run_id(state: State) -> UUID:
    """The flow run of a state a flow returned with ``return_state=True``."""
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
