"""Flow tests run against a real, temporary Prefect server, isolated from the user's Prefect.

The environment is set here, at import, because Prefect reads its settings when it is first
imported: ``PREFECT_HOME`` in a temporary directory (no profile, result storage or block
registry under ``~/.prefect`` is read or written), no ``PREFECT_API_URL`` (a developer's
server is never touched), analytics off (the machine may have no network).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

_HOME = tempfile.mkdtemp(prefix="aircast-prefect-home-")
atexit.register(shutil.rmtree, _HOME, True)
os.environ["PREFECT_HOME"] = _HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
for _name in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary Prefect server (SQLite in a temporary directory) for the whole session.

    Starting one takes 10-20 s, so every flow test shares it; tests tell their runs apart by
    flow run id, not by reading "the latest" of anything.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def client(prefect_server: None) -> Iterator[SyncPrefectClient]:
    """A synchronous client of the session's server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as c:
        yield c
