"""Array types and small numerical functions shared by the toy atmosphere's modules."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "F32",
    "F64",
    "I64",
    "U64",
    "bump",
    "bump_lon",
    "mm",
    "smoothstep",
    "soft_clip",
    "softplus",
    "wrap180",
]

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


def wrap180(x: npt.ArrayLike) -> F64:
    """Longitudes (degrees) wrapped into [-180, 180)."""
    out: F64 = (np.asarray(x, dtype=np.float64) + 180.0) % 360.0 - 180.0
    return out


def smoothstep(x: F64, a: float, b: float) -> F64:
    """0 below ``a``, 1 above ``b`` and the cubic Hermite step between them."""
    y = np.clip((x - a) / (b - a), 0.0, 1.0)
    out: F64 = y * y * (3.0 - 2.0 * y)
    return out


def softplus(x: F64) -> F64:
    """log(1 + exp(x)) without overflow."""
    out: F64 = np.logaddexp(0.0, x)
    return out


def soft_clip(x: F64, lo: float, hi: float, width: float) -> F64:
    """``x`` held inside (lo, hi) by softplus shoulders ``width`` wide."""
    y = lo + width * softplus((x - lo) / width)
    out: F64 = hi - width * softplus((hi - y) / width)
    return out


def bump(x: F64, centre: float, width: float) -> F64:
    """Gaussian of ``x`` about ``centre`` with standard deviation ``width``; 1 at the centre."""
    out: F64 = np.exp(-0.5 * ((x - centre) / width) ** 2)
    return out


def bump_lon(lon: F64, centre: float, width: float) -> F64:
    """:func:`bump` of a longitude (degrees), periodic."""
    return bump(wrap180(lon - centre), 0.0, width)


def mm(spec: str, a: F64, b: F64) -> F64:
    """Small contractions by numpy's own loops: no BLAS threads (they thrash on busy servers)
    and a fixed summation order, so a point's value does not depend on the grid's size."""
    out: F64 = np.einsum(spec, a, b, optimize=False)
    return out
