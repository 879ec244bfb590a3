"""Fixtures of the model tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_threaded(one_thread: None) -> None:
    """Every model test runs on one torch thread (``one_thread``): tiny tensors gain nothing
    from threads on a busy 2-core machine, and comparisons against references do not depend on
    the thread count."""
