"""Fixtures of the training tests: the tiny store (built once per session) and one thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tinystore import ensure_tiny_store


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Single-threaded torch: results reproducible to the bit, and no oversubscription of a
    small, busy machine (two threads on two loaded cores run a small matmul ~30x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny recipe's YAML; its store and raw cache are beside it. Read-only."""
    return ensure_tiny_store(tmp_path_factory.getbasetemp() / "tiny-training")
