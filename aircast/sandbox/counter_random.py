"""Counter-based random numbers: the same keys and index give the same number on any machine.

The toy atmosphere draws every random choice (wave phases, pressure systems, rain cells,
forecast errors) from a hash of (seed, stream, draw, index), so a value never depends on the
order of the requests or on how many numbers were drawn before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from aircast.sandbox.numerics import F64, U64

__all__ = ["sym", "u01"]


def _mix64(x: U64) -> U64:
    """splitmix64 finaliser, element-wise (wrapping uint64 arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def u01(keys: Sequence[int], index: npt.ArrayLike) -> F64:
    """Uniform [0, 1) numbers that depend only on ``keys`` and each ``index``.

    Parameters
    ----------
    keys
        Integers (seed, stream, draw number, ...) hashed in order.
    index
        Integer array (any shape); one number per element.

    Returns
    -------
    Array of the shape of ``index``.
    """
    mask = (1 << 64) - 1
    with np.errstate(over="ignore"):
        idx = np.asarray(index, dtype=np.int64).astype(np.uint64)
        h = np.zeros(idx.shape, dtype=np.uint64)
        for k in keys:
            h = _mix64(h ^ np.uint64(int(k) & mask))
        h = _mix64(h ^ idx)
        h = _mix64(h)
    out: F64 = (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53)
    return out


def sym(keys: Sequence[int], index: npt.ArrayLike) -> F64:
    """Zero-mean, unit-variance uniform numbers (see :func:`u01`)."""
    return (u01(keys, index) * 2.0 - 1.0) * math.sqrt(3.0)
