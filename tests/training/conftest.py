"""Fixtures of the training tests: one thread (the tiny store, ``tiny_recipe``, is shared with
the flow tests: ``tests/conftest.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_threaded(one_thread: None) -> None:
    """Every training test runs on one torch thread (``one_thread``): results reproducible to
    the bit, and no oversubscription of a small, busy machine (two threads on two loaded cores
    run a small matmul ~30x slower)."""
