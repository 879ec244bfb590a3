"""A deterministic toy atmosphere: the one truth behind every sandbox data-store product.

ERA5 (0.25°, hourly), the CAMS EAC4 reanalysis (0.75°, 3-hourly) and the CAMS forecasts (0.4°)
served by the sandbox are all *views* of :class:`ToyAtmosphere`: they sample the same fields at
their own grids and times, in the units of :data:`aircast.vocab.VARIABLES`.

Weather is analytic, a pure function of (time, latitude, longitude), so it is evaluated at full
resolution on any grid:

* mean sea-level pressure is a zonal climatology plus seasonal centres of action (Azores high,
  Siberian high, the summer heat lows over the Sahara and Pakistan), eastward-travelling Rossby
  waves in both storm tracks, and discrete pressure systems born, moved and filled by a
  counter-based random generator: mid-latitude cyclones, migratory highs, Mediterranean lows and
  small intense desert lows (the dust storms);
* 10 m wind is the geostrophic wind of that pressure field, weakened and turned towards low
  pressure by friction (more over land, less in the daytime mixed layer), blended near the
  equator with trade winds converging on a seasonally migrating ITCZ and the summer monsoons;
* 2 m temperature has a zonal, seasonal climatology with land-sea contrast, deserts, a lapse
  rate over the orography, a diurnal cycle in local solar time (large over deserts, damped by
  rain) and warm/cold advection by the synoptic wind; dew point follows aridity and rain;
* rain falls in the ITCZ band (afternoon convection over land) and in frontal bands on the
  poleward-flow side of lows, broken into cells by travelling noise; deserts stay dry;
* the boundary layer grows after sunrise to 1-3.5 km over land (deepest over deserts), collapses
  at sunset to 100-300 m (deeper with wind) and stays near 500-1000 m over the sea;
* pressure levels follow a piecewise-lapse standard atmosphere anchored on the surface state
  (hypsometric geopotential, tropopause, stratospheric warming), with a thermal-wind increase
  of the geostrophic wind, jets, and moisture decaying above the boundary layer.

Pollution comes from a tracer model run on a fixed global 1° grid with hourly steps: emissions
from cities, industry, seasonal fires, dust (only above a wind threshold, flux ~ u*^3) and sea
salt; semi-Lagrangian advection by the boundary-layer wind; venting, dry deposition (faster in
shallow layers), wet scavenging by rain; SO2 to sulphate conversion, NOx loss and photochemical
ozone production (sunlight, temperature, NOx). Surface concentration is the column burden over
the mixing depth (boundary-layer height plus a residual layer), so the daily cycle of the
boundary layer shows at the surface; NO/NO2/O3 are partitioned at the sampled point by the
photostationary state (titration of ozone by NO at night near sources).

Any date from 2003 to 2030 is reached without simulating from 2003: the tracers of UTC day D are
simulated from a climatological state four days before D (:data:`SPIN_UP_DAYS`); all lifetimes
are at most a day so the memory of that start has decayed to about 1 % by D, and the windows of
consecutive days join without visible jumps. Simulated days are kept in a small LRU cache, so
many requests for one day (different variables, products or areas) pay for the simulation once.

Cost and memory (2-core machine, ``bench/bench_atmosphere.py``): weather costs ~70 ns per value
(one day of 8 ERA5 single-level fields over 0-45N, 20W-76E at 0.25° in ~1 s); the first
request touching a UTC day runs the tracer model for that day with its spin-up (~1.5 s) and
keeps its hourly states (~50 MB a day, ``cache_days`` days, default 4); a forecast runs the
tracer model once per start time (a 120 h forecast costs ~5 s cold, including the analysis
day) and keeps its states (~2 MB per lead, the last two start times). Requests are processed
in time chunks of about 1.5 million points, so memory stays bounded for global grids. The
class is thread-safe (one lock around the caches and the tracer model).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
import numpy.typing as npt

from aircast.vocab import VARIABLES, LevelType

__all__ = ["SPIN_UP_DAYS", "ToyAtmosphere", "WindPerturbation"]

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
U64 = npt.NDArray[np.uint64]

# ----------------------------------------------------------------------------------- constants
G: Final = 9.80665  # m s-2
RD: Final = 287.05  # J kg-1 K-1
OMEGA: Final = 7.2921e-5  # s-1
M_PER_DEG: Final = 111195.0  # metres per degree of latitude
RAD: Final = math.pi / 180.0
LAPSE: Final = 0.0065  # K m-1
YEAR_DAYS: Final = 365.2422
M_AIR: Final = 28.97  # g mol-1
KBOLTZ: Final = 1.380649e-23
DU: Final = 2.1415e-5  # kg m-2 of ozone per Dobson unit

#: days of tracer spin-up before each simulated UTC day
SPIN_UP_DAYS: Final = 4

_EPOCH = np.datetime64("2000-01-01T00:00:00", "s")
_FIRST = np.datetime64("2003-01-01T00:00:00", "s")
_LAST = np.datetime64("2031-01-01T00:00:00", "s")  # exclusive
_MAX_LEAD_H: Final = 16 * 24

# ------------------------------------------------------------------------ counter-based random


def _mix64(x: U64) -> U64:
    """splitmix64 finaliser, element-wise (wrapping uint64 arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _u01(keys: Sequence[int], index: npt.ArrayLike) -> F64:
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


def _sym(keys: Sequence[int], index: npt.ArrayLike) -> F64:
    """Zero-mean, unit-variance uniform numbers (see :func:`_u01`)."""
    return (_u01(keys, index) * 2.0 - 1.0) * math.sqrt(3.0)


# ------------------------------------------------------------------------------------ helpers


def _wrap180(x: npt.ArrayLike) -> F64:
    out: F64 = (np.asarray(x, dtype=np.float64) + 180.0) % 360.0 - 180.0
    return out


def _smoothstep(x: F64, a: float, b: float) -> F64:
    y = np.clip((x - a) / (b - a), 0.0, 1.0)
    out: F64 = y * y * (3.0 - 2.0 * y)
    return out


def _softplus(x: F64) -> F64:
    out: F64 = np.logaddexp(0.0, x)
    return out


def _soft_clip(x: F64, lo: float, hi: float, width: float) -> F64:
    y = lo + width * _softplus((x - lo) / width)
    out: F64 = hi - width * _softplus((hi - y) / width)
    return out


def _esat(temp: F64) -> F64:
    """Saturation vapour pressure over water (Bolton 1980), Pa."""
    out: F64 = 611.2 * np.exp(17.67 * (temp - 273.15) / (temp - 29.65))
    return out


def _qsat(temp: F64, pres: F64 | float) -> F64:
    e = _esat(temp)
    out: F64 = 0.622 * e / np.maximum(pres - 0.378 * e, 0.5 * np.asarray(pres))
    return out


def _bump(x: F64, centre: float, width: float) -> F64:
    out: F64 = np.exp(-0.5 * ((x - centre) / width) ** 2)
    return out


def _bump_lon(lon: F64, centre: float, width: float) -> F64:
    return _bump(_wrap180(lon - centre), 0.0, width)


def _mm(spec: str, a: F64, b: F64) -> F64:
    """Small contractions by numpy's own loops: no BLAS threads (they thrash on busy servers)
    and a fixed summation order, so a point's value does not depend on the grid's size."""
    out: F64 = np.einsum(spec, a, b, optimize=False)
    return out


# ---------------------------------------------------------------------------------- geography
# Coarse coastlines as rings of "lon lat" pairs; land is inside by the even-odd rule, so the
# Black Sea and the Caspian (rings inside Eurasia) are water. Africa and Eurasia share the
# Sinai-Negev border traced identically in both rings.
_RINGS_TEXT: Final = (
    # Africa with Sinai
    """-5.9 35.8 -6.8 34.0 -9.8 31.5 -9.6 30.4 -12.9 27.9 -14.5 26.1 -16.0 23.7 -17.1 20.8
    -16.5 19.4 -16.0 18.0 -16.5 16.0 -17.5 14.7 -16.8 13.4 -16.7 12.3 -15.2 11.0 -13.7 9.5
    -13.2 8.4 -11.5 6.9 -10.8 6.3 -7.5 4.4 -5.0 5.1 -4.0 5.3 -2.0 4.8 -0.2 5.55 1.2 6.1
    2.4 6.35 3.4 6.4 5.2 5.6 6.0 4.3 7.5 4.5 8.5 4.6 9.5 3.9 9.8 2.5 9.5 1.0 8.7 -0.7 9.6 -2.5
    11.8 -4.8 12.3 -6.0 13.2 -8.8 13.5 -12.3 12.15 -15.2 11.8 -17.2 13.2 -20.5 14.5 -22.9
    15.2 -27.0 16.5 -28.6 17.9 -31.0 18.4 -33.9 18.5 -34.4 20.0 -34.8 22.0 -34.1 25.6 -34.0
    27.9 -33.0 30.0 -31.3 31.0 -29.9 32.4 -28.5 32.9 -26.0 35.5 -24.0 35.3 -22.0 34.8 -20.0
    36.9 -17.9 39.0 -16.5 40.5 -15.0 40.5 -11.0 39.3 -8.0 39.3 -6.8 39.7 -4.1 40.9 -2.1
    42.5 -0.4 45.3 2.0 48.5 5.3 49.8 8.0 51.2 10.4 51.3 11.8 49.2 11.3 45.0 10.4 43.1 11.6
    43.2 12.4 42.74 13.0 41.5 14.2 39.45 15.6 38.9 17.5 37.3 19.1 37.2 19.6 36.9 22.0 35.6 23.9
    33.9 26.7 33.8 27.25 34.25 27.75 34.5 28.5 34.9 29.5 34.25 31.3 32.3 31.3 30.5 31.5
    29.9 31.2 27.2 31.4 25.2 31.6 23.96 32.08 22.6 32.77 21.0 32.8 20.07 32.12 19.6 30.4
    18.6 30.5 16.6 31.2 15.2 32.3 13.2 32.9 11.5 33.2 10.1 33.9 10.76 34.74 11.06 35.5 10.6 35.8
    11.05 37.07 10.2 36.9 9.8 37.3 8.6 36.9 6.9 36.9 5.0 36.7 3.0 36.8 0.1 35.9 -0.6 35.7
    -2.2 35.1 -3.9 35.25 -5.3 35.9""",
    # Eurasia with Arabia, India and the South-East Asian mainland
    """34.9 29.5 35.1 28.0 35.7 27.35 36.45 26.2 38.06 24.09 39.2 21.5 40.6 19.8 42.55 16.9
    42.95 14.8 43.5 12.7 45.0 12.8 48.5 14.0 52.2 15.6 55.0 17.0 57.8 18.95 58.8 20.4 59.8 22.4
    58.6 23.6 56.7 24.35 56.4 26.4 55.95 25.8 55.3 25.25 54.4 24.45 52.6 24.1 51.3 24.5
    51.6 25.3 51.25 26.15 50.8 25.5 50.2 26.45 49.6 27.1 48.6 28.1 48.0 29.4 48.6 30.0
    50.1 30.1 50.8 28.9 51.5 27.9 52.6 27.4 54.5 26.6 56.3 27.2 57.8 25.65 59.5 25.4 62.3 25.1
    64.5 25.25 66.6 25.4 67.0 24.8 67.5 23.9 68.4 23.5 69.6 22.8 69.0 22.4 69.6 21.6 70.4 20.9
    71.0 20.7 72.6 22.3 72.8 21.2 72.9 19.0 73.4 16.5 73.8 15.5 74.8 12.9 75.8 11.2 76.3 9.9
    77.5 8.1 78.2 8.8 79.3 9.3 79.85 10.3 79.8 11.9 80.3 13.1 80.1 15.5 81.15 16.2 82.25 16.95
    83.3 17.7 85.1 19.4 86.6 20.3 87.5 21.6 89.0 21.7 90.5 22.2 91.8 22.4 92.0 21.4 92.9 20.15
    94.2 18.5 94.3 16.0 95.4 15.7 96.2 16.8 97.6 16.5 98.6 12.4 98.6 10.0 98.3 8.0 100.0 6.6
    100.3 5.4 101.4 3.0 102.25 2.2 103.5 1.3 104.2 1.4 103.3 3.8 102.25 6.1 101.25 6.87
    100.6 7.2 99.3 9.15 99.2 10.5 99.96 12.57 100.5 13.6 100.9 12.7 102.3 12.2 103.0 11.0
    104.5 10.4 104.8 8.6 106.5 9.6 107.0 10.4 109.0 11.6 109.45 12.9 109.2 15.1 108.3 16.1
    106.8 17.6 105.7 18.9 106.6 20.3 107.9 21.5 109.1 21.45 110.2 20.25 111.0 21.4 113.5 22.2
    114.2 22.3 116.7 23.35 118.1 24.5 119.6 26.0 120.7 28.0 121.9 29.9 121.0 30.35 121.95 30.9
    121.9 31.7 120.9 32.5 119.4 34.7 120.3 36.0 122.7 37.4 121.45 37.5 118.7 37.8 117.7 39.0
    119.6 39.9 121.1 40.9 122.2 40.7 121.6 38.9 124.4 40.0 125.1 38.5 126.6 37.45 126.4 34.8
    127.7 34.7 129.0 35.1 129.4 36.0 128.6 38.0 127.5 39.9 129.8 41.8 130.7 42.3 131.9 43.1
    133.0 42.8 135.5 43.9 138.0 46.5 140.4 48.5 140.5 50.5 141.4 52.9 140.0 54.0 137.5 54.2
    135.2 54.7 138.2 56.45 143.3 59.3 148.0 59.4 151.0 59.5 155.0 59.2 156.5 57.5 156.7 51.0
    158.6 53.0 160.0 54.5 162.5 56.2 163.3 58.0 164.5 59.8 170.0 60.0 173.0 61.5 177.0 62.5
    180.0 65.0 180.0 69.0 170.0 70.0 160.0 69.7 150.0 71.5 140.0 72.5 130.0 71.0 113.0 73.5
    104.3 77.7 97.0 76.0 87.0 74.0 80.0 73.5 70.0 73.0 67.0 69.0 60.0 69.0 53.0 68.5 44.0 68.5
    40.0 68.0 33.0 69.4 25.0 71.0 18.5 69.8 14.4 67.3 10.5 64.5 8.0 63.5 5.0 61.0 5.7 59.0
    8.0 58.0 10.7 59.9 11.9 57.7 12.8 55.6 14.2 55.4 16.4 56.7 18.1 59.3 17.3 62.4 20.3 63.8
    22.15 65.6 24.1 65.8 25.4 65.0 21.6 63.1 21.8 61.5 22.3 60.45 22.95 59.8 25.0 60.2
    29.0 60.2 30.3 59.9 28.0 59.5 24.7 59.4 23.5 59.2 23.5 58.0 24.1 57.0 21.6 57.4 21.1 55.7
    19.9 54.6 18.7 54.4 16.0 54.3 14.2 53.9 12.1 54.2 10.9 54.0 10.2 54.4 10.6 56.5 10.6 57.7
    8.6 57.1 8.1 55.6 8.6 54.9 8.8 54.0 8.6 53.55 7.0 53.4 5.0 53.2 4.7 52.4 3.6 51.4 2.4 51.1
    1.6 50.2 0.1 49.6 -1.6 49.65 -1.5 48.7 -3.0 48.8 -4.7 48.4 -4.2 47.8 -2.2 47.2 -1.2 46.0
    -1.2 44.6 -1.5 43.5 -3.8 43.5 -8.0 43.7 -9.3 43.0 -8.8 42.0 -8.7 41.2 -9.5 38.7 -8.8 38.0
    -8.9 37.0 -7.5 37.2 -6.3 36.5 -5.6 36.0 -4.4 36.7 -2.45 36.8 -0.8 37.6 -0.5 38.35 0.2 38.8
    -0.3 39.5 1.25 41.1 2.2 41.4 3.2 42.0 3.05 42.7 4.0 43.5 5.4 43.3 6.5 43.1 7.5 43.8 8.9 44.4
    10.2 43.9 10.5 42.9 11.2 42.4 12.25 41.75 13.0 41.2 14.2 40.8 15.6 40.0 15.65 38.1
    16.05 37.93 16.6 38.8 17.1 39.1 16.5 39.7 17.2 40.45 18.0 40.05 18.35 39.8 18.5 40.15
    17.95 40.65 16.9 41.1 15.9 41.6 16.2 41.9 14.2 42.45 13.5 43.6 12.3 44.4 12.3 45.4
    13.7 45.65 13.6 44.85 14.45 45.3 15.2 44.1 16.45 43.5 18.1 42.65 19.1 42.1 19.45 41.3
    19.4 40.45 20.0 39.85 20.75 38.95 21.1 38.3 21.4 37.7 22.1 37.0 22.5 36.4 23.05 36.7
    22.8 37.55 24.0 37.65 24.0 38.2 22.95 39.35 22.6 40.3 22.9 40.6 24.4 40.9 25.9 40.85
    26.2 40.4 26.2 40.0 26.7 39.2 26.4 38.4 27.25 37.85 27.4 37.0 28.3 36.8 29.1 36.6 30.6 36.8
    32.0 36.5 32.8 36.0 34.6 36.8 35.5 36.6 36.2 36.6 35.9 36.1 35.8 35.5 35.9 34.9 35.85 34.4
    35.5 33.9 35.2 33.27 35.0 32.8 34.75 32.07 34.4 31.5 34.25 31.3""",
    # Black Sea and Caspian (water inside Eurasia)
    """29.0 41.2 27.9 42.5 28.6 44.0 29.7 45.2 30.7 46.5 33.0 46.0 32.5 45.4 33.5 44.4 36.5 45.3
    38.0 44.5 39.7 43.5 41.6 41.6 37.0 41.2 35.0 42.0 31.0 41.1""",
    """47.5 45.5 49.5 46.5 51.9 47.1 53.0 46.5 53.0 45.0 51.0 44.5 52.5 42.0 53.0 40.0 53.8 37.5
    51.0 36.7 49.0 37.5 49.0 38.5 49.5 40.5 48.0 42.0 47.5 43.0 47.0 44.5""",
    # the Americas
    """-168.0 65.6 -166.8 68.35 -156.8 71.3 -148.0 70.3 -141.0 69.7 -135.0 69.3 -128.0 70.2
    -115.0 67.8 -108.0 68.2 -96.0 68.5 -86.0 67.0 -90.5 63.5 -94.0 61.0 -94.2 58.8 -92.5 57.0
    -85.0 55.3 -82.3 53.0 -80.5 51.3 -79.0 54.5 -77.0 59.0 -77.8 62.3 -73.5 62.2 -70.0 61.0
    -68.0 58.5 -64.4 60.4 -62.0 57.5 -60.5 55.0 -57.0 52.5 -56.0 52.0 -57.5 51.45 -60.0 50.2
    -64.0 50.2 -66.5 50.0 -68.5 49.0 -70.0 47.5 -68.5 48.6 -65.0 49.2 -64.2 48.8 -65.5 47.8
    -64.5 46.2 -61.0 45.7 -60.0 46.2 -61.5 45.0 -63.5 44.6 -65.8 43.6 -67.0 44.8 -70.2 43.6
    -70.8 42.5 -70.0 41.7 -71.5 41.4 -74.0 40.6 -74.1 39.6 -75.0 38.8 -76.0 37.0 -75.5 35.25
    -76.7 34.7 -78.0 33.9 -79.9 32.8 -81.1 32.0 -81.4 30.3 -80.6 28.4 -80.1 26.7 -80.4 25.2
    -81.8 26.0 -82.7 27.8 -83.7 29.9 -85.3 29.7 -88.0 30.5 -89.2 30.3 -89.3 29.0 -90.5 29.2
    -93.8 29.7 -94.8 29.3 -97.2 27.8 -97.4 25.9 -97.85 22.25 -96.1 19.2 -94.4 18.2 -91.8 18.6
    -90.5 19.85 -90.3 21.0 -86.8 21.2 -87.5 18.5 -88.3 18.5 -88.2 16.0 -86.0 15.9 -83.3 15.0
    -83.7 11.0 -82.2 9.3 -79.5 9.6 -77.3 8.6 -76.8 8.2 -75.5 10.5 -74.2 11.2 -71.7 12.4
    -70.2 11.9 -68.0 10.5 -66.9 10.6 -64.0 10.6 -61.9 10.7 -61.0 9.0 -59.8 8.3 -58.1 6.8
    -55.2 5.9 -52.3 4.9 -51.1 3.9 -50.0 1.8 -50.0 0.0 -48.5 -1.4 -44.3 -2.5 -41.8 -2.9
    -38.5 -3.7 -36.0 -5.0 -35.2 -5.8 -34.9 -8.0 -35.7 -9.7 -37.0 -11.0 -38.5 -13.0 -39.0 -15.0
    -39.2 -17.7 -40.3 -20.3 -41.0 -22.0 -43.2 -23.0 -45.4 -23.9 -48.4 -25.9 -48.6 -28.5
    -50.2 -30.4 -52.1 -32.1 -53.4 -33.7 -54.9 -34.9 -56.2 -34.9 -57.3 -35.9 -56.7 -36.4
    -57.5 -38.0 -60.0 -38.8 -62.3 -38.8 -62.1 -40.6 -65.0 -41.0 -64.4 -42.5 -65.0 -43.3
    -67.6 -46.4 -65.9 -47.8 -67.7 -49.3 -69.0 -51.6 -68.4 -52.4 -68.6 -54.8 -66.5 -55.0
    -68.0 -55.5 -70.5 -55.0 -73.0 -53.0 -75.0 -51.5 -75.5 -48.0 -74.5 -45.0 -73.7 -43.0
    -73.5 -41.5 -73.6 -37.2 -71.6 -33.0 -71.5 -30.0 -71.3 -27.0 -70.5 -23.6 -70.3 -18.5
    -71.4 -17.6 -74.0 -15.7 -76.2 -13.7 -77.2 -12.0 -78.8 -8.6 -79.9 -6.8 -81.3 -4.8 -80.3 -3.4
    -80.0 -2.2 -80.9 -1.0 -80.1 0.8 -78.8 1.8 -77.3 3.9 -77.4 6.5 -78.4 8.2 -79.5 8.9 -80.4 7.4
    -82.9 8.1 -84.7 9.7 -85.8 10.6 -87.5 13.0 -89.8 13.5 -91.9 14.2 -94.2 16.1 -96.5 15.65
    -99.9 16.8 -102.2 17.9 -104.3 19.1 -105.6 20.4 -105.2 21.5 -106.4 23.2 -108.9 25.7
    -110.9 27.9 -112.8 30.3 -114.8 31.8 -113.0 29.0 -111.0 25.8 -110.3 24.1 -109.9 22.9
    -112.2 24.8 -114.1 27.5 -115.1 27.85 -116.6 31.8 -117.1 32.5 -118.4 33.8 -120.6 34.6
    -121.9 36.6 -122.5 37.8 -123.8 39.5 -124.3 40.4 -124.1 42.0 -124.0 46.2 -124.7 48.4
    -123.0 48.2 -123.2 49.3 -125.0 50.5 -127.5 51.5 -130.0 54.0 -131.0 55.5 -133.0 56.5
    -135.5 58.3 -137.5 58.6 -139.5 59.5 -144.0 60.0 -146.3 61.0 -148.7 60.0 -151.5 59.2
    -151.0 60.9 -154.0 58.0 -156.5 56.8 -159.5 55.6 -162.9 54.7 -160.0 56.8 -157.0 58.7
    -161.8 58.6 -162.0 60.0 -165.3 61.0 -164.0 63.0 -165.4 64.5""",
    # Chukotka east of the date line
    "-180.0 65.0 -172.0 64.3 -170.0 66.0 -175.0 67.5 -180.0 69.0",
    # Antarctica
    """-180 -90 -180 -78.0 -160 -78.5 -150 -77.0 -140 -75.5 -120 -74.0 -100 -73.0 -80 -73.0
    -75 -71.0 -68 -68.0 -63 -65.0 -58 -63.5 -60 -66.0 -62 -70.0 -60 -74.0 -45 -78.0 -30 -77.0
    -20 -73.5 -10 -71.0 0 -70.0 20 -70.0 40 -69.0 55 -66.5 70 -68.0 75 -69.5 80 -67.5
    90 -66.5 110 -66.0 130 -66.0 140 -66.5 150 -68.5 160 -70.5 170 -72.0 165 -77.5 180 -78.0
    180 -90""",
    # Australia, Tasmania, New Zealand
    """113.5 -22.0 114.1 -26.5 115.7 -32.0 115.1 -34.4 118.0 -35.0 123.5 -34.0 126.0 -32.3
    131.0 -31.5 135.5 -34.8 138.5 -35.6 140.0 -38.0 144.0 -38.3 146.5 -39.0 150.0 -37.5
    151.2 -33.9 153.0 -31.0 153.5 -28.0 153.0 -25.0 150.5 -22.5 146.5 -19.0 145.3 -15.0
    143.5 -14.0 142.5 -10.7 141.6 -13.0 141.5 -17.0 139.5 -17.5 136.5 -15.5 136.8 -12.2
    132.5 -11.3 130.0 -12.5 129.5 -15.0 126.0 -14.0 122.2 -17.2 121.0 -19.5 117.0 -20.7
    114.0 -21.8""",
    "144.6 -40.7 148.3 -40.9 148.0 -43.2 145.5 -43.5",
    """172.7 -34.4 175.0 -36.5 178.5 -37.7 177.9 -39.3 175.0 -41.6 174.6 -39.8 173.8 -39.2
    174.6 -37.0""",
    """172.7 -40.5 174.3 -41.7 173.0 -43.8 171.2 -44.5 169.0 -46.6 166.5 -46.0 167.0 -45.0
    168.2 -44.0 170.6 -42.9 172.0 -41.4""",
    # Greenland, Baffin, Iceland, Newfoundland
    """-73.0 78.0 -60.0 82.0 -30.0 83.5 -18.0 81.0 -20.0 75.0 -22.0 70.5 -32.0 68.0 -40.0 65.0
    -43.0 60.0 -48.0 61.0 -53.0 66.0 -54.0 70.0 -58.0 75.5 -66.0 76.2""",
    "-79.0 64.0 -65.0 62.5 -63.0 67.0 -71.0 71.5 -82.0 73.5 -90.0 72.0 -84.0 69.0",
    "-22.7 64.0 -24.0 65.5 -22.0 66.4 -16.5 66.5 -13.5 65.2 -15.0 64.3 -18.7 63.4",
    "-59.4 47.6 -57.5 50.5 -55.6 51.35 -53.5 49.5 -52.7 47.6 -53.5 46.6 -56.0 47.3",
    # British Isles
    """-5.7 50.0 1.4 51.2 1.7 52.7 0.2 53.5 -1.5 55.0 -2.0 55.9 -1.8 57.5 -3.3 58.6 -5.0 58.6
    -6.2 57.4 -5.6 56.0 -4.9 54.9 -3.2 54.3 -3.0 53.4 -4.6 53.2 -4.2 52.4 -5.2 51.7 -3.0 51.4""",
    "-6.0 52.2 -6.0 54.1 -6.2 55.3 -8.3 55.2 -10.0 54.2 -9.8 53.1 -10.4 51.9 -8.5 51.6",
    # Mediterranean islands
    "12.4 38.1 15.5 38.25 15.1 36.7 12.4 37.6",
    "8.2 41.0 9.8 41.1 9.6 39.2 8.4 38.9",
    "8.6 42.9 9.4 43.0 9.5 42.0 9.2 41.4 8.6 41.9",
    "32.3 34.7 32.4 35.1 33.0 35.4 34.6 35.7 33.9 35.1 34.0 34.6 33.0 34.6",
    "23.5 35.3 24.3 35.6 26.3 35.3 26.1 35.0 24.7 34.9",
    # Caribbean
    "-85.0 21.9 -82.5 23.1 -80.0 23.2 -77.0 21.8 -74.2 20.3 -77.5 19.9 -78.5 21.5 -82.0 22.3",
    "-73.4 19.9 -70.0 19.8 -68.4 18.6 -70.0 18.2 -71.4 17.6 -74.4 18.3",
    # Indian Ocean islands
    "79.9 9.8 80.9 8.3 81.9 7.3 81.6 6.2 80.5 5.9 79.8 7.2",
    """49.3 -12.0 50.5 -15.5 49.5 -17.8 48.0 -22.5 47.1 -24.9 45.2 -25.6 43.7 -23.5 43.3 -21.7
    44.4 -19.6 44.0 -17.0 46.3 -15.8 48.0 -13.5""",
    # East and South-East Asian islands
    """141.6 45.4 145.5 43.4 143.2 41.9 141.5 41.4 142.0 39.5 141.0 38.3 140.9 36.9 140.9 35.7
    139.8 34.9 138.8 34.6 137.0 34.5 135.8 33.5 135.0 34.6 132.2 33.8 131.9 31.4 130.6 31.1
    129.8 32.7 130.9 33.9 132.0 34.8 133.0 35.5 135.7 35.6 136.8 37.3 138.5 37.8 140.0 39.8
    140.0 41.3 140.5 43.2 141.4 43.2 141.8 44.5""",
    "121.0 25.2 122.0 25.0 121.0 22.0 120.1 23.0",
    "108.6 19.2 110.5 20.1 111.0 19.6 109.6 18.2",
    "120.5 18.5 122.3 18.4 121.8 14.5 124.0 12.9 121.0 13.7 120.5 16.0",
    "122.0 11.8 124.5 12.5 125.8 11.0 124.4 9.7 123.2 9.1 122.0 10.5",
    "122.0 7.2 125.5 9.7 126.5 7.3 126.0 6.2 125.3 5.6 124.0 6.5",
    """108.9 1.6 111.0 1.8 113.0 3.2 115.5 5.3 117.0 7.0 119.2 5.1 118.0 4.5 117.9 1.0
    116.4 -2.5 116.0 -3.8 114.5 -4.0 110.3 -3.0 109.1 -0.8""",
    """95.2 5.6 97.5 5.2 98.7 3.8 100.2 2.0 101.5 1.5 103.8 -1.0 106.0 -3.2 105.9 -5.8
    104.5 -5.9 102.3 -4.0 100.3 -1.0 98.7 1.7 95.3 4.0""",
    """105.2 -6.8 106.5 -6.0 108.5 -6.3 111.0 -6.4 112.7 -6.9 114.5 -7.7 114.4 -8.7 111.0 -8.2
    108.0 -7.8 105.5 -7.3""",
    """118.9 -3.5 119.5 -5.6 120.5 -5.5 121.0 -2.5 123.0 -1.0 121.3 0.5 124.9 1.5 120.2 1.0
    119.8 -0.5""",
    """131.0 -1.4 134.0 -0.9 135.5 -3.3 138.0 -1.7 141.0 -2.6 145.7 -4.9 147.5 -6.0 148.0 -8.3
    150.8 -10.3 147.2 -10.1 144.2 -7.7 142.5 -9.3 141.0 -9.1 138.2 -8.4 137.8 -5.4 135.0 -4.4
    132.7 -4.1 132.0 -2.9""",
)


def _edges() -> tuple[F64, F64, F64, F64]:
    """All ring edges as (x1, y1, x2, y2) arrays in degrees."""
    xs1: list[F64] = []
    ys1: list[F64] = []
    xs2: list[F64] = []
    ys2: list[F64] = []
    for text in _RINGS_TEXT:
        v = np.array(text.split(), dtype=np.float64).reshape(-1, 2)
        xs1.append(v[:, 0])
        ys1.append(v[:, 1])
        xs2.append(np.roll(v[:, 0], -1))
        ys2.append(np.roll(v[:, 1], -1))
    return np.concatenate(xs1), np.concatenate(ys1), np.concatenate(xs2), np.concatenate(ys2)


_EDGES: Final = _edges()


def _inside_land(rows: F64, cols: F64) -> npt.NDArray[np.bool_]:
    """Even-odd point-in-polygon on a product grid by scan lines.

    Parameters
    ----------
    rows
        Latitudes, (ny,), degrees.
    cols
        Longitudes in [-180, 180), (nx,), degrees.

    Returns
    -------
    (ny, nx) boolean, True on land.
    """
    x1, y1, x2, y2 = _EDGES
    out = np.zeros((rows.size, cols.size), dtype=bool)
    for i, y in enumerate(rows):
        m = (y1 > y) != (y2 > y)
        if not m.any():
            continue
        xs = x1[m] + (y - y1[m]) * (x2[m] - x1[m]) / (y2[m] - y1[m])
        xs.sort()
        out[i] = (np.searchsorted(xs, cols, side="right") & 1).astype(bool)
    return out


# Mountains: lat, lon, sigma_lat, sigma_lon (degrees), height (m); summed and masked by land.
# fmt: off
_MOUNTAINS: Final = np.array(
    [
        # North Africa and the Sahara
        (31.5, -6.0, 1.0, 3.0, 2200), (33.8, -1.0, 0.9, 3.0, 1300), (35.8, 4.0, 0.7, 3.5, 1100),
        (23.3, 5.6, 1.8, 1.8, 1300), (21.0, 17.5, 1.4, 1.4, 1600), (18.0, 8.5, 1.3, 1.0, 800),
        (13.0, 24.3, 1.0, 1.0, 1100), (9.5, 38.5, 3.0, 2.6, 2300), (13.0, 38.8, 1.8, 1.2, 1800),
        (-2.0, 35.5, 4.5, 3.5, 1400), (-26.0, 26.0, 4.5, 5.5, 1300), (-29.5, 29.5, 1.3, 1.0, 1800),
        (6.0, 11.0, 1.3, 1.3, 900), (11.0, -12.0, 1.0, 1.0, 800), (-12.0, 16.0, 4.0, 3.0, 1200),
        # Arabia, Levant, Iran, Anatolia, Caucasus
        (17.5, 43.3, 2.3, 1.0, 2100), (24.0, 39.5, 2.8, 1.0, 1100), (28.0, 36.5, 1.8, 1.0, 1000),
        (15.0, 44.5, 1.3, 1.3, 2300), (24.0, 45.0, 4.5, 5.0, 650), (23.0, 57.5, 0.7, 1.3, 1400),
        (33.0, 36.0, 1.5, 0.6, 1000), (29.0, 34.0, 0.9, 0.9, 900), (35.0, 46.5, 1.4, 1.4, 2000),
        (32.0, 49.5, 1.4, 1.4, 2200), (29.5, 52.5, 1.4, 1.4, 2000), (27.5, 56.0, 1.1, 1.4, 1500),
        (32.0, 55.0, 4.0, 6.0, 1100), (36.2, 52.0, 0.7, 2.8, 2400), (39.0, 34.0, 2.2, 5.5, 1100),
        (39.5, 42.5, 2.2, 2.8, 1900), (42.8, 44.0, 0.7, 3.5, 2700),
        # Central and South Asia
        (34.5, 68.0, 2.6, 4.5, 2500), (38.5, 73.0, 1.8, 2.6, 4000), (35.5, 76.5, 1.3, 2.2, 4200),
        (32.5, 85.0, 3.6, 8.0, 4400), (34.0, 93.0, 3.2, 5.5, 4300), (29.0, 84.0, 1.0, 7.0, 1500),
        (42.0, 80.0, 1.4, 6.0, 3000), (49.0, 88.0, 1.8, 3.5, 2200), (46.0, 102.0, 4.5, 9.0, 1500),
        (26.0, 101.0, 2.6, 3.5, 2000), (18.0, 77.0, 4.5, 3.5, 550), (14.0, 75.0, 4.5, 0.7, 700),
        (22.0, 74.0, 1.2, 3.0, 500),
        # Europe
        (46.3, 9.0, 0.9, 3.8, 2000), (42.7, 0.5, 0.5, 2.3, 1500), (40.0, -4.0, 2.3, 2.8, 700),
        (43.0, 12.5, 2.3, 0.7, 900), (43.5, 18.0, 1.3, 1.8, 1100), (42.0, 23.0, 0.9, 2.8, 1000),
        (47.5, 24.0, 1.3, 2.8, 900), (63.0, 12.0, 3.5, 2.3, 1100), (57.0, 60.0, 5.0, 1.2, 700),
        # the Americas
        (45.0, -112.0, 9.0, 4.5, 2000), (37.0, -108.0, 4.5, 4.5, 2200),
        (23.0, -103.0, 3.5, 3.5, 1900), (5.0, -75.0, 2.6, 1.8, 2500), (-5.0, -78.0, 2.6, 1.3, 2500),
        (-15.0, -69.0, 3.5, 2.6, 4000), (-25.0, -68.0, 3.5, 1.8, 3500),
        (-35.0, -70.0, 4.5, 1.0, 3000), (-45.0, -72.0, 4.5, 0.9, 1500),
        (-18.0, -46.0, 5.5, 5.5, 800), (38.0, -80.0, 4.0, 2.0, 700),
        # ice sheets, Australia
        (-90.0, 0.0, 12.0, 1e9, 3000), (73.0, -40.0, 6.5, 9.0, 2800), (-28.0, 150.0, 9.0, 1.8, 700),
    ],
    dtype=np.float64,
)
# fmt: on

# Deserts (aridity 0..1): lat, lon, sigma_lat, sigma_lon, amplitude.
# fmt: off
_DESERTS: Final = np.array(
    [
        (23.0, 5.0, 5.5, 14.0, 1.1), (25.0, 25.0, 4.5, 9.0, 1.1), (19.5, -8.0, 3.5, 7.0, 1.0),
        (17.5, 18.0, 3.5, 5.5, 0.9), (23.0, 47.0, 4.5, 6.5, 1.1), (31.0, 41.0, 3.0, 4.0, 0.9),
        (32.0, 58.0, 3.0, 5.5, 0.85), (29.0, 64.0, 3.0, 4.5, 0.85), (27.0, 71.0, 2.5, 3.0, 0.8),
        (39.0, 83.0, 2.5, 6.5, 0.95), (42.0, 103.0, 3.0, 8.0, 0.75), (-25.0, 130.0, 6.5, 11.0, 0.8),
        (-23.0, 19.0, 4.5, 5.5, 0.6), (-23.0, -70.0, 4.5, 1.8, 0.8), (33.0, -113.0, 3.5, 4.5, 0.6),
        (7.0, 46.0, 3.5, 3.5, 0.6), (45.0, 62.0, 3.5, 9.0, 0.5), (21.0, 33.0, 3.0, 5.0, 0.9),
    ],
    dtype=np.float64,
)
# fmt: on

# Erodible dust sources (0..1): lat, lon, sigma_lat, sigma_lon, amplitude.
# fmt: off
_DUST_SOURCES: Final = np.array(
    [
        (17.0, 18.0, 1.4, 2.3, 1.0), (20.0, -5.0, 2.6, 5.0, 0.8), (27.0, 8.0, 2.6, 5.0, 0.6),
        (28.0, 20.0, 2.6, 4.5, 0.6), (22.0, 28.0, 2.6, 3.5, 0.6), (20.5, 50.0, 2.3, 3.5, 0.9),
        (27.0, 45.0, 2.6, 2.6, 0.7), (33.0, 43.0, 1.8, 2.6, 0.8), (31.0, 61.5, 1.4, 1.8, 0.8),
        (27.0, 71.0, 1.8, 2.3, 0.8), (39.0, 83.0, 1.8, 4.5, 0.9), (42.0, 105.0, 1.8, 5.5, 0.6),
        (-27.0, 137.0, 2.6, 4.5, 0.5), (-23.0, 20.0, 1.8, 2.6, 0.3), (34.0, -114.0, 1.8, 2.6, 0.3),
    ],
    dtype=np.float64,
)
# fmt: on

# Cities: lat, lon, weight (traffic, domestic and industrial mix).
# fmt: off
_CITIES: Final = np.array(
    [
        (30.05, 31.25, 1.6), (28.6, 77.2, 2.2), (31.55, 74.35, 1.4), (24.86, 67.0, 1.3),
        (19.07, 72.88, 1.2), (35.7, 51.4, 1.3), (24.7, 46.7, 0.9), (21.5, 39.2, 0.6),
        (25.2, 55.3, 0.7), (29.4, 47.9, 0.5), (33.3, 44.4, 0.9), (41.0, 29.0, 1.1),
        (39.9, 32.85, 0.5), (6.5, 3.4, 1.4), (12.0, 8.5, 0.6), (5.6, -0.2, 0.5),
        (5.35, -4.0, 0.5), (14.7, -17.45, 0.4), (15.5, 32.5, 0.6), (9.0, 38.75, 0.5),
        (33.6, -7.6, 0.5), (36.75, 3.05, 0.5), (36.8, 10.2, 0.3), (32.9, 13.2, 0.3),
        (37.98, 23.73, 0.5), (41.9, 12.5, 0.5), (45.5, 9.2, 1.0), (40.4, -3.7, 0.5),
        (41.4, 2.17, 0.4), (32.1, 34.8, 0.5), (31.95, 35.9, 0.3), (33.9, 35.5, 0.3),
        (33.5, 36.3, 0.4), (40.4, 49.9, 0.4), (41.3, 69.3, 0.5), (34.5, 69.2, 0.5),
        (23.0, 72.6, 0.8), (12.97, 77.6, 0.8), (13.08, 80.27, 0.7), (22.57, 88.36, 1.3),
        (23.8, 90.4, 1.3), (26.45, 80.33, 1.2), (25.6, 85.1, 1.0), (17.4, 78.5, 0.8),
        (26.9, 75.8, 0.6), (32.6, 51.7, 0.5), (36.3, 59.6, 0.5), (38.1, 46.3, 0.4),
        (-1.3, 36.8, 0.4), (-4.3, 15.3, 0.7), (-26.2, 28.0, 0.9), (-8.8, 13.2, 0.4),
        (55.75, 37.6, 1.0), (51.5, -0.1, 0.8), (48.85, 2.35, 0.8), (51.45, 7.0, 0.9),
        (52.2, 21.0, 0.5), (50.45, 30.5, 0.5), (39.9, 116.4, 1.8), (31.2, 121.5, 1.5),
        (23.1, 113.3, 1.5), (30.7, 104.1, 1.2), (30.6, 114.3, 1.0), (34.3, 108.9, 1.0),
        (41.8, 123.4, 0.8), (37.55, 127.0, 1.0), (35.7, 139.7, 1.2), (34.7, 135.5, 0.8),
        (13.75, 100.5, 0.9), (-6.2, 106.8, 1.2), (14.6, 121.0, 1.0), (21.0, 105.85, 0.8),
        (10.8, 106.7, 0.8), (40.7, -74.0, 1.0), (34.05, -118.25, 1.0), (41.9, -87.6, 0.7),
        (29.8, -95.4, 0.7), (19.4, -99.1, 1.2), (-23.55, -46.6, 1.1), (-34.6, -58.4, 0.7),
        (-12.05, -77.0, 0.6), (4.7, -74.1, 0.5), (-33.45, -70.65, 0.6), (-33.9, 151.2, 0.4),
    ],
    dtype=np.float64,
)
# fmt: on

# Industrial and volcanic SO2 sources: lat, lon, weight.
# fmt: off
_INDUSTRY: Final = np.array(
    [
        (27.0, 49.7, 1.0), (26.3, 50.2, 0.6), (24.1, 52.7, 0.7), (29.1, 48.1, 0.8),
        (32.6, 51.7, 0.4), (24.1, 82.7, 1.5), (22.35, 82.7, 1.2), (20.9, 85.2, 1.0),
        (11.6, 79.5, 0.5), (19.95, 79.3, 0.8), (22.8, 69.7, 0.6), (-26.0, 29.2, 1.5),
        (69.35, 88.2, 2.0), (37.75, 15.0, 1.2), (44.7, 21.2, 0.6), (42.15, 26.0, 0.7),
        (51.25, 19.3, 0.6), (37.9, 112.5, 1.5), (40.7, 111.0, 1.2), (39.6, 118.2, 1.2),
        (-17.6, -71.3, 0.6), (-22.3, -68.9, 0.6), (46.5, -81.0, 0.5), (20.0, -99.3, 0.5),
        (30.0, 31.2, 0.5), (36.9, 30.7, 0.2), (23.6, 58.3, 0.3), (38.4, 27.2, 0.3),
    ],
    dtype=np.float64,
)
# fmt: on

# Seasonal fires: lat, lon, sigma_lat, sigma_lon, weight, peak day of year, half-width (days).
# fmt: off
_FIRES: Final = np.array(
    [
        (9.0, 5.0, 2.5, 12.0, 1.0, 15.0, 45.0),  # Sahel and Sudan savanna, dry season
        (-10.0, 22.0, 4.5, 10.0, 1.2, 220.0, 50.0),  # southern Africa
        (30.5, 75.5, 1.0, 1.6, 2.5, 305.0, 18.0),  # Punjab stubble burning
        (19.0, 100.0, 2.6, 4.5, 0.8, 75.0, 30.0),  # South-East Asia
        (-10.0, -55.0, 4.5, 9.0, 1.0, 240.0, 40.0),  # Amazon arc of deforestation
        (-2.0, 110.0, 2.6, 7.0, 0.8, 265.0, 30.0),  # Indonesia
        (60.0, 110.0, 5.0, 25.0, 0.4, 200.0, 35.0),  # boreal forest
    ],
    dtype=np.float64,
)
# fmt: on


def _gauss_sum(lat: F64, lon: F64, table: F64, weights: F64 | None = None) -> F64:
    """Sum of separable Gaussians ``table`` rows (lat, lon, s_lat, s_lon, amp, ...).

    Returns
    -------
    (ny, nx) array.
    """
    amp = table[:, 4] if weights is None else weights
    a = np.exp(-0.5 * ((lat[:, None] - table[None, :, 0]) / table[None, :, 2]) ** 2)
    b = np.exp(-0.5 * (_wrap180(lon[:, None] - table[None, :, 1]) / table[None, :, 3]) ** 2)
    out: F64 = _mm("ik,jk->ij", a * amp[None, :], b)
    return out


@dataclass(frozen=True)
class _Static:
    """Time-independent fields on a (lat, lon) product grid, each (ny, nx)."""

    lsm: F64
    orog: F64  # m
    arid: F64
    dust: F64


_STATIC_CACHE: OrderedDict[bytes, _Static] = OrderedDict()
_STATIC_LOCK = threading.Lock()


def _static_fields(lat: F64, lon: F64) -> _Static:
    """Land-sea mask (fraction of a 0.25° box), orography, aridity and dust sources.

    ``lon`` must be canonical ([-180, 180)). Values at a point do not depend on the grid.
    """
    key = lat.tobytes() + b"|" + lon.tobytes()
    with _STATIC_LOCK:
        hit = _STATIC_CACHE.get(key)
        if hit is not None:
            _STATIC_CACHE.move_to_end(key)
            return hit
    offs = np.array([-0.09375, -0.03125, 0.03125, 0.09375])
    rows = np.clip((lat[:, None] + offs[None, :]).ravel(), -89.9999, 89.9999)
    cols = _wrap180((lon[:, None] + offs[None, :]).ravel())
    land = _inside_land(rows, cols).reshape(lat.size, 4, lon.size, 4)
    lsm = land.mean(axis=(1, 3)).astype(np.float64)
    orog = np.maximum(_gauss_sum(lat, lon, _MOUNTAINS), 0.0) * np.sqrt(lsm)
    arid = np.clip(_gauss_sum(lat, lon, _DESERTS), 0.0, 1.0) * lsm
    dust = np.clip(_gauss_sum(lat, lon, _DUST_SOURCES), 0.0, 1.0) * lsm
    st = _Static(lsm=lsm, orog=orog, arid=arid, dust=dust)
    with _STATIC_LOCK:
        _STATIC_CACHE[key] = st
        while len(_STATIC_CACHE) > 4:
            _STATIC_CACHE.popitem(last=False)
    return st


# ------------------------------------------------------------------------------ time helpers


def _to_hours(times: object, name: str) -> F64:
    """Hours since 2000-01-01T00 UTC of tz-naive datetime64 values, (T,)."""
    arr = np.atleast_1d(np.asarray(times))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "MOU":
        raise ValueError(f"{name} must be datetime64 values, got dtype {arr.dtype}")
    try:
        sec = arr.astype("datetime64[s]")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be tz-naive datetime64 values: {exc}") from None
    if np.isnat(sec).any():
        raise ValueError(f"{name} contains NaT")
    if (sec < _FIRST).any() or (sec >= _LAST).any():
        bad = sec[(sec < _FIRST) | (sec >= _LAST)][0]
        raise ValueError(
            f"{name} value {bad} is outside the toy atmosphere's range 2003-01-01..2030-12-31"
        )
    out: F64 = (sec - _EPOCH).astype(np.int64).astype(np.float64) / 3600.0
    return out


def _season(t: F64, lag_days: float) -> F64:
    """+1 at northern midsummer + ``lag_days``, -1 half a year later."""
    out: F64 = np.sin(
        2.0 * math.pi * (t / 24.0 - 79.0 - 91.3 - lag_days) / YEAR_DAYS + 0.5 * math.pi
    )
    return out


def _declination(t: F64) -> F64:
    out: F64 = 23.44 * RAD * np.sin(2.0 * math.pi * (t / 24.0 - 79.0) / YEAR_DAYS)
    return out


def _day_of_year(t: F64) -> F64:
    out: F64 = (t / 24.0 - 0.5) % YEAR_DAYS
    return out


# ---------------------------------------------------------------------------- synoptic systems


@dataclass(frozen=True)
class _SystemType:
    """A family of transient pressure systems born on a regular slot grid."""

    stream: int
    slot_h: float
    prob: float
    seasonal: float  # probability factor (1 + seasonal * season(t_birth))
    life_h: tuple[float, float]
    lat: tuple[float, float]
    lon: tuple[float, float]
    u: tuple[float, float]  # m s-1 eastward
    v: tuple[float, float]  # m s-1 northward
    depth: tuple[float, float]  # Pa
    sigma: tuple[float, float]  # degrees
    new_amp: tuple[float, float]  # forecast amplitude factor for systems born after init


# fmt: off
_SYSTEMS: Final = (
    # mid-latitude cyclones
    _SystemType(101, 8.0, 0.55, -0.3, (72, 144), (33, 56), (-180, 180), (7, 14), (0.5, 3.0),
                (-2600, -800), (5.0, 8.0), (0.5, 1.0)),
    _SystemType(102, 8.0, 0.6, 0.25, (72, 144), (-58, -35), (-180, 180), (8, 15), (-3.0, -0.5),
                (-2800, -900), (5.0, 8.0), (0.5, 1.0)),
    # migratory anticyclones
    _SystemType(103, 24.0, 0.6, -0.2, (96, 192), (30, 52), (-180, 180), (4, 9), (-1.0, 1.0),
                (500, 1400), (8.0, 11.0), (0.6, 1.0)),
    _SystemType(104, 24.0, 0.6, 0.2, (96, 192), (-50, -30), (-180, 180), (4, 9), (-1.0, 1.0),
                (500, 1400), (8.0, 11.0), (0.6, 1.0)),
    # Mediterranean and Sharav lows (winter and spring)
    _SystemType(105, 24.0, 0.4, -0.6, (48, 96), (28, 41), (-10, 36), (5, 11), (0.0, 1.5),
                (-1500, -600), (3.0, 4.5), (0.4, 1.0)),
    # desert lows: haboobs, shamal surges, Saharan and Arabian dust storms
    _SystemType(106, 12.0, 0.22, 0.3, (12, 36), (13, 34), (-15, 76), (-4, 4), (-2, 2),
                (-1300, -650), (1.8, 2.8), (0.2, 0.8)),
    _SystemType(107, 24.0, 0.25, 0.4, (12, 36), (36, 46), (75, 112), (-2, 6), (-2, 2),
                (-1200, -600), (1.8, 2.8), (0.2, 0.8)),
    _SystemType(108, 24.0, 0.2, -0.4, (12, 36), (-32, -20), (115, 145), (-2, 6), (-2, 2),
                (-1200, -600), (1.8, 2.8), (0.2, 0.8)),
    _SystemType(109, 24.0, 0.15, 0.3, (12, 36), (28, 37), (-118, -105), (-2, 6), (-2, 2),
                (-1100, -600), (1.8, 2.8), (0.2, 0.8)),
)
# fmt: on

# Semi-permanent centres: lat, lon, sigma_lat, sigma_lon, mean amplitude, amplitude x season.
# fmt: off
_CENTRES: Final = np.array(
    [
        (36.0, -30.0, 7.0, 18.0, 500.0, 300.0), (34.0, -145.0, 8.0, 22.0, 500.0, 400.0),
        (62.0, -30.0, 7.0, 20.0, -700.0, 600.0), (52.0, -175.0, 7.0, 20.0, -700.0, 650.0),
        (50.0, 95.0, 9.0, 22.0, 900.0, -1300.0), (28.0, 62.0, 7.0, 16.0, -300.0, -800.0),
        (21.0, 2.0, 5.0, 14.0, -150.0, -450.0), (45.0, -105.0, 9.0, 18.0, 200.0, -500.0),
        (-30.0, -10.0, 7.0, 15.0, 500.0, 200.0), (-30.0, 80.0, 7.0, 25.0, 500.0, 200.0),
        (-32.0, -100.0, 7.0, 20.0, 500.0, 200.0), (-22.0, 130.0, 6.0, 12.0, 100.0, 400.0),
        (26.0, 48.0, 5.0, 8.0, -100.0, -350.0),
    ],
    dtype=np.float64,
)
# fmt: on


@dataclass(frozen=True)
class _FcSpec:
    """A forecast started at ``init_h``: errors of the synoptic parameters grow with lead."""

    init_h: float

    def lead_days(self, t: F64) -> F64:
        """Error clock in days: 0.03 at analysis time (analysis error), growing linearly."""
        out: F64 = np.maximum(t - self.init_h, 0.0) / 24.0 + 0.03
        return out


class _Params:
    """Random but fixed parameters of one toy atmosphere (its ``seed``)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        # Rossby waves: both hemispheres, zonal wavenumbers 3..8
        hemi = np.repeat([1.0, -1.0], 6)
        k = np.tile(np.arange(3, 9, dtype=np.float64), 2)
        n = np.arange(k.size)
        s = (self.seed, 11)
        self.w_hemi = hemi
        self.w_k = k
        self.w_amp = 380.0 + 260.0 * _u01((*s, 1), n)
        self.w_speed = 6.0 + 1.1 * (k - 3.0) + 3.0 * _u01((*s, 2), n)  # m s-1 eastward
        self.w_phase = 2.0 * math.pi * _u01((*s, 3), n)
        self.w_mod_period = 24.0 * (7.0 + 20.0 * _u01((*s, 4), n))  # hours
        self.w_mod_phase = 2.0 * math.pi * _u01((*s, 5), n)
        # rain-cell noise: two families (convective and frontal)
        self.noise = [
            self._noise(21, 14, (5.0, 12.0), (-9.0, 6.0), (24.0, 60.0)),
            self._noise(22, 12, (10.0, 24.0), (5.0, 13.0), (36.0, 96.0)),
        ]
        # forecast analysis-noise shapes
        self.seed_fc = (self.seed, 31)

    def _noise(
        self,
        stream: int,
        n_terms: int,
        wavelength: tuple[float, float],
        speed: tuple[float, float],
        pulse_h: tuple[float, float],
    ) -> dict[str, F64]:
        s = (self.seed, stream)
        n = np.arange(n_terms)
        wl_lat = wavelength[0] + (wavelength[1] - wavelength[0]) * _u01((*s, 1), n)
        wl_lon = wavelength[0] + (wavelength[1] - wavelength[0]) * _u01((*s, 2), n)
        m = np.maximum(np.round(360.0 / wl_lon), 1.0)
        c = speed[0] + (speed[1] - speed[0]) * _u01((*s, 3), n)
        return {
            "k": 2.0 * math.pi / wl_lat,  # rad per degree of latitude
            "m": m,  # zonal wavenumber
            "alpha": 2.0 * math.pi * _u01((*s, 4), n),
            "omega": m * c * 3600.0 / (M_PER_DEG * 360.0 * 0.85),  # rad per hour
            "beta": 2.0 * math.pi * _u01((*s, 5), n),
            "nu": 2.0 * math.pi / (pulse_h[0] + (pulse_h[1] - pulse_h[0]) * _u01((*s, 6), n)),
            "psi": 2.0 * math.pi * _u01((*s, 7), n),
            "amp": np.full(n_terms, math.sqrt(8.0 / n_terms)),
            "fc": _sym((*s, 8), n),
        }


def _systems(par: _Params, t: F64, fc: _FcSpec | None) -> dict[str, F64]:
    """Transient systems active during ``t``: per (time, system) centre, amplitude and width.

    Returns
    -------
    Mapping with ``lat``, ``lon``, ``amp``, ``sigma``, ``coslat``: (T, K) arrays.
    """
    t0, t1 = float(t.min()), float(t.max())
    parts: dict[str, list[F64]] = {k: [] for k in ("lat", "lon", "amp", "sigma")}
    for st in _SYSTEMS:
        n = np.arange(
            math.floor((t0 - st.life_h[1]) / st.slot_h) - 1,
            math.floor(t1 / st.slot_h) + 1,
            dtype=np.int64,
        )
        keys = (par.seed, st.stream)

        def u(
            d: int, rng: tuple[float, float], n: npt.NDArray[np.int64], keys: tuple[int, int] = keys
        ) -> F64:
            return rng[0] + (rng[1] - rng[0]) * _u01((*keys, d), n)

        birth = (n + _u01((*keys, 1), n)) * st.slot_h
        season = _season(birth, 0.0)
        lat0 = u(3, st.lat, n)
        hemi = np.sign(lat0)
        p = st.prob * (1.0 + st.seasonal * season * hemi)
        life = u(4, st.life_h, n)
        keep = (_u01((*keys, 2), n) < p) & (birth + life >= t0) & (birth <= t1)
        if not keep.any():
            continue
        n = n[keep]
        birth, life, lat0 = birth[keep], life[keep], lat0[keep]
        lon0, cu, cv = u(5, st.lon, n), u(6, st.u, n), u(7, st.v, n)
        depth, sigma = u(8, st.depth, n), u(9, st.sigma, n)
        tau = t[:, None] - birth[None, :]
        env = np.where(
            (tau > 0) & (tau < life[None, :]),
            np.sin(math.pi * np.clip(tau / life[None, :], 0.0, 1.0)) ** 2,
            0.0,
        )
        lat_c = lat0[None, :] + cv[None, :] * tau * 3600.0 / M_PER_DEG
        lon_c = lon0[None, :] + cu[None, :] * tau * 3600.0 / (
            M_PER_DEG * np.cos(lat0[None, :] * RAD)
        )
        amp = depth[None, :] * env
        if fc is not None:
            lead = fc.lead_days(t)[:, None]
            e = [_sym((*keys, 50 + j), n)[None, :] for j in range(5)]
            new = birth[None, :] > fc.init_h
            # systems present in the analysis drift in position and depth; new ones are
            # misplaced from birth and (especially the desert lows) under-deepened
            lon_c = lon_c + e[0] * (1.6 * lead + np.where(new, 2.0, 0.0))
            lat_c = lat_c + e[1] * (0.7 * lead + np.where(new, 1.0, 0.0))
            amp = amp * np.where(new, u(60, st.new_amp, n)[None, :], 1.0 + 0.1 * e[2] * lead)
        parts["lat"].append(np.clip(lat_c, -89.0, 89.0))
        parts["lon"].append(_wrap180(lon_c))
        parts["amp"].append(amp)
        parts["sigma"].append(np.broadcast_to(sigma[None, :], amp.shape))
    if not parts["amp"]:
        z = np.zeros((t.size, 0))
        return {"lat": z, "lon": z, "amp": z, "sigma": z}
    return {k: np.concatenate(v, axis=1) for k, v in parts.items()}


# ------------------------------------------------------------------------------------ weather


class _Weather:
    """Analytic weather on a product grid; every field is a pure function of (t, lat, lon).

    Parameters
    ----------
    par
        Parameters of the atmosphere.
    t
        Hours since 2000-01-01 UTC, (T,).
    lat, lon
        Grid, (ny,) and (nx,), degrees; ``lon`` canonical in [-180, 180).
    st
        Static fields on that grid.
    fc
        Forecast error specification, or None for the truth.

    All fields are float64 arrays broadcastable to (T, ny, nx).
    """

    def __init__(
        self, par: _Params, t: F64, lat: F64, lon: F64, st: _Static, fc: _FcSpec | None = None
    ) -> None:
        self.par = par
        self.t = t
        self.tt = t[:, None, None]
        self.lat1 = lat
        self.lon1 = lon
        self.phi = lat[None, :, None]
        self.lam = lon[None, None, :]
        self.st = st
        self.fc = fc
        self.lsm = st.lsm[None]
        self.arid = st.arid[None]
        self.orog = st.orog[None]

    # ---- sun and seasons
    @cached_property
    def s_temp(self) -> F64:
        """Temperature season (T,1,1): +1 in late July."""
        return _season(self.tt, 30.0)

    @cached_property
    def s_itcz(self) -> F64:
        return _season(self.tt, 20.0)

    @cached_property
    def hour_angle(self) -> F64:
        """(T,1,nx) radians, 0 at local solar noon."""
        h = 2.0 * math.pi * ((self.tt % 24.0) / 24.0 + self.lam / 360.0)
        out: F64 = (h % (2.0 * math.pi)) - math.pi
        return out

    @cached_property
    def _sun_terms(self) -> tuple[F64, F64, F64]:
        dec = _declination(self.tt)
        sp, cp = np.sin(self.phi * RAD), np.cos(self.phi * RAD)
        a = sp * np.sin(dec)
        b = cp * np.cos(dec)
        h0 = np.arccos(np.clip(-a / np.maximum(b, 1e-9), -1.0, 1.0))  # half day length
        return a, b, h0

    @cached_property
    def cosz(self) -> F64:
        a, b, _ = self._sun_terms
        out: F64 = a + b * np.cos(self.hour_angle)
        return out

    @cached_property
    def sun(self) -> F64:
        return np.maximum(self.cosz, 0.0)

    @cached_property
    def noon_sun(self) -> F64:
        """Cosine of the noon zenith angle, (T, ny, 1)."""
        a, b, _ = self._sun_terms
        out: F64 = np.maximum(a + b, 0.0)
        return out

    @cached_property
    def day_growth(self) -> F64:
        """Boundary-layer growth factor 0..1: rises after sunrise, collapses at sunset."""
        _, _, h0 = self._sun_terms
        frac = (self.hour_angle + h0) / np.maximum(2.0 * h0, 1e-6)
        day = (frac > 0.0) & (frac < 1.0)
        f = np.clip(frac, 0.0, 1.0)
        g = (1.0 - np.exp(-4.0 * f)) * np.minimum(1.0, 5.0 * (1.0 - f))
        out: F64 = np.where(day, g, 0.0) * np.minimum(1.0, self.noon_sun / 0.3)
        return out

    @cached_property
    def hloc(self) -> F64:
        """Local solar hour (T,1,nx)."""
        out: F64 = (self.hour_angle / math.pi * 12.0 + 12.0) % 24.0
        return out

    # ---- pressure
    @cached_property
    def _pressure(self) -> dict[str, F64]:
        par, t, phi1, lam1 = self.par, self.t, self.lat1, self.lon1
        tt = t[:, None]
        lead = self.fc.lead_days(t)[:, None] if self.fc is not None else None
        # Rossby waves: P (T, ny, 2W) @ Q (2W, nx)
        hemi, k = par.w_hemi, par.w_k
        s = _season(tt, 30.0)
        track = hemi * (45.0 + 4.0 * s * hemi + 3.0 * (hemi < 0))  # (T, W)
        season_amp = 1.0 - 0.3 * s * hemi
        mod = 0.65 + 0.35 * np.cos(2.0 * math.pi * tt / par.w_mod_period + par.w_mod_phase)
        amp = par.w_amp * season_amp * mod  # (T, W)
        omega = k * par.w_speed * 3600.0 / (M_PER_DEG * 360.0 * math.cos(45.0 * RAD))
        x = omega * tt - par.w_phase  # (T, W) radians
        if lead is not None:
            fe = _sym((*par.seed_fc, 1), np.arange(k.size))
            x = x + 0.35 * fe * lead
            amp = amp * (1.0 + 0.08 * _sym((*par.seed_fc, 2), np.arange(k.size)) * lead)
        dphi = phi1[None, :, None] - track[:, None, :]  # (T, ny, W)
        env = amp[:, None, :] * np.exp(-0.5 * (dphi / 11.0) ** 2)
        denv = env * (-dphi / 11.0**2)
        cx, sx = np.cos(x)[:, None, :], np.sin(x)[:, None, :]
        p_w = np.concatenate([env * cx, env * sx], axis=2)
        dp_w = np.concatenate([denv * cx, denv * sx], axis=2)
        kl = k[None, :] * lam1[:, None] * RAD  # (nx, W)
        q_w = np.concatenate([np.cos(kl), np.sin(kl)], axis=1)
        dq_w = np.concatenate([-np.sin(kl), np.cos(kl)], axis=1) * np.concatenate([k, k]) * RAD
        anom = _mm("tik,jk->tij", p_w, q_w)
        anom_dphi = _mm("tik,jk->tij", dp_w, q_w)
        anom_dlam = _mm("tik,jk->tij", p_w, dq_w)
        # transient systems: P (T, ny, K) @ Q (T, K, nx)
        sy = _systems(par, t, self.fc)
        if sy["amp"].shape[1]:
            sig = sy["sigma"]
            dphi_s = phi1[None, :, None] - sy["lat"][:, None, :]
            ps = sy["amp"][:, None, :] * np.exp(-0.5 * (dphi_s / sig[:, None, :]) ** 2)
            dps = ps * (-dphi_s / sig[:, None, :] ** 2)
            cl = np.cos(sy["lat"] * RAD)[:, :, None]
            dlam = _wrap180(lam1[None, None, :] - sy["lon"][:, :, None])
            sigl = sig[:, :, None] / np.maximum(cl, 0.2)
            qs = np.exp(-0.5 * (dlam / sigl) ** 2)
            dqs = qs * (-dlam / sigl**2)
            anom = anom + _mm("tik,tkj->tij", ps, qs)
            anom_dphi = anom_dphi + _mm("tik,tkj->tij", dps, qs)
            anom_dlam = anom_dlam + _mm("tik,tkj->tij", ps, dqs)
        # semi-permanent centres and the zonal climatology
        c = _CENTRES
        camp = c[:, 4] + c[:, 5] * s * np.sign(c[:, 0])  # (T, C)
        dphi_c = phi1[None, :, None] - c[None, None, :, 0]
        pc = camp[:, None, :] * np.exp(-0.5 * (dphi_c / c[:, 2]) ** 2)
        dpc = pc * (-dphi_c / c[:, 2] ** 2)
        dlam_c = _wrap180(lam1[:, None] - c[None, :, 1])
        qc = np.exp(-0.5 * (dlam_c / c[:, 3]) ** 2)
        dqc = qc * (-dlam_c / c[:, 3] ** 2)
        clim, dclim = self._zonal_msl(phi1, tt)
        total = anom + _mm("tik,jk->tij", pc, qc) + clim[:, :, None]
        total_dphi = anom_dphi + _mm("tik,jk->tij", dpc, qc) + dclim[:, :, None]
        total_dlam = anom_dlam + _mm("tik,jk->tij", pc, dqc)
        # soft limits 96.3-104.3 kPa, chain rule for the gradients
        hi, lo = 3000.0, 5000.0
        scale = np.where(total > 0, hi, lo)
        th = np.tanh(total / scale)
        fac = 1.0 - th**2
        return {
            "msl": 101325.0 + scale * th,
            "dphi": total_dphi * fac,
            "dlam": total_dlam * fac,
            "anom": anom,
            "anom_dphi": anom_dphi,
            "anom_dlam": anom_dlam,
        }

    @staticmethod
    def _zonal_msl(phi: F64, tt: F64) -> tuple[F64, F64]:
        """Zonal-mean msl anomaly and its latitude derivative, (T, ny) each."""
        s = _season(tt, 30.0)

        def f(p: F64) -> F64:
            ap = np.abs(p)
            shift = 3.0 * s * np.sign(p)
            out: F64 = (
                850.0 * np.exp(-(((ap - 32.0 - shift) / 10.0) ** 2))
                - 1100.0 * np.exp(-(((p - 63.0) / 9.0) ** 2))
                - 2000.0 * np.exp(-(((p + 63.0) / 7.0) ** 2))
                - 350.0 * np.exp(-0.5 * ((p - 4.0 - 6.0 * s) / 7.0) ** 2)
                + 500.0 * np.exp(-(((ap - 85.0) / 10.0) ** 2))
            )
            return out

        p = phi[None, :]
        d = 1e-3
        return f(p), (f(p + d) - f(p - d)) / (2.0 * d)

    @cached_property
    def msl(self) -> F64:
        return self._pressure["msl"]

    @cached_property
    def w_geo(self) -> F64:
        """Weight of geostrophy (1, ny, 1): 0 at the equator, 1 poleward of 17°."""
        return _smoothstep(np.abs(self.phi), 5.0, 17.0)

    def _geostrophic(self, dphi: F64, dlam: F64) -> tuple[F64, F64]:
        phi = self.phi
        phi_eff = np.where(phi >= 0.0, np.maximum(phi, 10.0), np.minimum(phi, -10.0))
        f = 2.0 * OMEGA * np.sin(phi_eff * RAD)
        dpdy = dphi / M_PER_DEG
        dpdx = dlam / (M_PER_DEG * np.maximum(np.cos(phi * RAD), 0.02))
        rho = 1.2
        return -dpdy / (rho * f), dpdx / (rho * f)

    @cached_property
    def geo(self) -> tuple[F64, F64]:
        p = self._pressure
        return self._geostrophic(p["dphi"], p["dlam"])

    @cached_property
    def geo_anom_v(self) -> F64:
        p = self._pressure
        return self._geostrophic(p["anom_dphi"], p["anom_dlam"])[1]

    @cached_property
    def itcz(self) -> F64:
        """ITCZ latitude (T, 1, nx)."""
        s = self.s_itcz
        lam = self.lam
        north = np.maximum(s, 0.0) * (
            9.0 * _bump_lon(lam, 5.0, 22.0)
            + 14.0 * _bump_lon(lam, 82.0, 18.0)
            + 6.0 * _bump_lon(lam, 110.0, 15.0)
        )
        south = np.maximum(-s, 0.0) * (
            8.0 * _bump_lon(lam, 28.0, 18.0)
            + 8.0 * _bump_lon(lam, 135.0, 18.0)
            + 7.0 * _bump_lon(lam, -55.0, 15.0)
        )
        out: F64 = 4.0 + 5.0 * s + north - south
        return out

    @cached_property
    def trop_wind(self) -> tuple[F64, F64]:
        """Trade winds converging on the ITCZ and the summer monsoon westerlies."""
        phi, lam = self.phi, self.lam
        u = -5.0 * (0.6 + 0.4 * np.minimum(np.abs(phi) / 10.0, 1.0))
        v = -3.5 * np.tanh((phi - self.itcz) / 5.0)
        mon = np.maximum(self.s_itcz, 0.0)
        u = u + mon * (
            10.0 * _bump(phi, 12.0, 7.0) * _bump_lon(lam, 68.0, 22.0)
            + 6.0 * _bump(phi, 8.0, 5.0) * _bump_lon(lam, 0.0, 16.0)
        )
        return u, v

    @cached_property
    def wind10(self) -> tuple[F64, F64]:
        """10 m wind (T, ny, nx), m s-1."""
        ug, vg = self.geo
        lsm = self.lsm
        alpha = (1.0 - lsm) * 0.72 + lsm * (0.40 + 0.22 * self.day_growth + 0.06 * self.arid)
        beta = (1.0 - lsm) * (15.0 * RAD) + lsm * (32.0 * RAD)
        sgn = np.sign(self.phi) + (self.phi == 0.0)
        cb, sb = np.cos(beta), np.sin(beta) * sgn
        ugs = alpha * (cb * ug - sb * vg)
        vgs = alpha * (sb * ug + cb * vg)
        ut, vt = self.trop_wind
        w = self.w_geo
        u = w * ugs + (1.0 - w) * ut
        v = w * vgs + (1.0 - w) * vt
        speed = np.hypot(u, v)
        fac = np.where(speed > 1e-6, 26.0 * np.tanh(speed / 26.0) / np.maximum(speed, 1e-6), 1.0)
        return u * fac, v * fac

    @cached_property
    def speed10(self) -> F64:
        u, v = self.wind10
        out: F64 = np.hypot(u, v)
        return out

    # ---- temperature, humidity, rain, boundary layer
    @cached_property
    def t_sealevel_clim(self) -> F64:
        """Sea-level climatological daily-mean temperature (T, ny, nx), K."""
        phi = self.phi
        s2 = np.sin(phi * RAD) ** 2
        t_ann = 300.5 - 31.0 * s2 - 14.0 * s2 * s2
        sgn = np.tanh(phi / 10.0)
        ss = np.abs(np.sin(phi * RAD))
        season = self.s_temp * sgn
        t_sea = t_ann + (1.0 + 6.0 * s2) * season + 0.5
        t_land = (
            t_ann
            + (2.0 + 22.0 * ss**1.5) * season
            + self.arid * (3.0 + 4.0 * np.maximum(season, 0.0))
        )
        out: F64 = self.lsm * t_land + (1.0 - self.lsm) * t_sea
        return out

    @cached_property
    def t_syn(self) -> F64:
        """Synoptic temperature anomaly: warm advection ahead of troughs, K."""
        vpol = self.geo_anom_v * np.sign(self.phi)
        gain = 0.35 * self.w_geo * (0.3 + 0.7 * _smoothstep(np.abs(self.phi), 20.0, 45.0))
        out: F64 = 7.0 * np.tanh(gain * vpol / 7.0)
        return out

    @cached_property
    def t0(self) -> F64:
        """Sea-level daily-mean temperature including synoptic anomalies (T, ny, nx), K."""
        out: F64 = self.t_sealevel_clim + self.t_syn
        return out

    def _noise(self, i: int) -> F64:
        nz = self.par.noise[i]
        tt = self.t[:, None]
        x = nz["omega"] * tt - nz["beta"]
        if self.fc is not None:
            x = x + 0.9 * nz["fc"] * self.fc.lead_days(self.t)[:, None]
        pulse = nz["amp"] * np.cos(nz["nu"] * tt + nz["psi"])  # (T, J)
        lat_part = np.cos(nz["k"][None, :] * self.lat1[:, None] + nz["alpha"])  # (ny, J)
        p = np.concatenate(
            [
                (pulse * np.cos(x))[:, None, :] * lat_part[None],
                (pulse * np.sin(x))[:, None, :] * lat_part[None],
            ],
            axis=2,
        )
        ml = nz["m"][None, :] * self.lon1[:, None] * RAD
        q = np.concatenate([np.cos(ml), np.sin(ml)], axis=1)
        out: F64 = _mm("tik,jk->tij", p, q)
        return out

    @cached_property
    def rain(self) -> F64:
        """Instantaneous rain rate (T, ny, nx), mm h-1."""
        moist = np.exp((self.t0 - 300.0) / 14.0) * (1.0 - 0.95 * self.arid)
        n1, n2 = self._noise(0), self._noise(1)
        band = np.exp(-0.5 * ((self.phi - self.itcz) / 4.5) ** 2)
        h = self.hloc
        conv = self.lsm * (
            0.4 + 1.6 * np.maximum(np.cos(2 * math.pi * (h - 16.0) / 24.0), 0.0) ** 2
        ) + (1.0 - self.lsm) * (1.0 + 0.3 * np.cos(2 * math.pi * (h - 5.0) / 24.0))
        r_itcz = 1.4 * band * conv * np.maximum(n1 - 0.4, 0.0) ** 1.5
        p = self._pressure
        vpol = self.geo_anom_v * np.sign(self.phi)
        front = np.maximum(-(p["anom"] + 250.0) / 900.0, 0.0) * (
            0.35 + 0.65 / (1.0 + np.exp(-vpol / 3.0))
        )
        r_front = 0.7 * self.w_geo * front * np.maximum(n2 + 0.3, 0.0) ** 1.2
        r_show = 0.04 * (1.0 - self.lsm) * np.maximum(n1, 0.0) ** 2
        out: F64 = (r_itcz + r_front + r_show) * moist
        return out

    @cached_property
    def cloud(self) -> F64:
        out: F64 = 1.0 - np.exp(-self.rain / 0.4)
        return out

    @cached_property
    def diurnal(self) -> F64:
        """Diurnal temperature anomaly (T, ny, nx), K."""
        h = self.hloc
        shape = 0.85 * np.cos(2 * math.pi * (h - 14.5) / 24.0) + 0.2 * np.cos(
            4 * math.pi * (h - 14.5) / 24.0
        )
        amp = self.lsm * (4.0 + 9.0 * self.arid) + (1.0 - self.lsm) * 0.4
        amp = amp * np.minimum(1.0, self.noon_sun / 0.25 + 0.1) * (1.0 - 0.6 * self.cloud)
        out: F64 = amp * shape
        return out

    @cached_property
    def t2m(self) -> F64:
        return _soft_clip(self.t0 - LAPSE * self.orog + self.diurnal, 230.0, 325.0, 3.0)

    @cached_property
    def t2m_mean(self) -> F64:
        """t2m without the diurnal cycle."""
        return _soft_clip(self.t0 - LAPSE * self.orog, 230.0, 325.0, 3.0)

    @cached_property
    def d2m(self) -> F64:
        season = self.s_temp * np.sign(self.phi)
        dd = (1.5 + 2.5 * self.lsm + 19.0 * self.arid * (1.0 + 0.3 * season)) / (
            1.0 + 3.0 * self.rain
        )
        td = self.t2m_mean - dd
        out: F64 = self.t2m - _softplus(self.t2m - td)
        return out

    @cached_property
    def sp(self) -> F64:
        tm = self.t2m_mean + 0.5 * LAPSE * self.orog
        out: F64 = self.msl * np.exp(-G * self.orog / (RD * tm))
        return out

    @cached_property
    def q_sfc(self) -> F64:
        e = _esat(self.d2m)
        out: F64 = 0.622 * e / (self.sp - 0.378 * e)
        return out

    @cached_property
    def tcwv(self) -> F64:
        rho = self.sp / (RD * self.t2m_mean)
        out: F64 = self.q_sfc * rho * (2200.0 + 1500.0 * self.cloud)
        return out

    @cached_property
    def blh(self) -> F64:
        """Boundary-layer height (T, ny, nx), m."""
        ws = self.speed10
        season = np.maximum(self.s_temp * np.sign(self.phi), 0.0)
        h_day = (900.0 + 2000.0 * self.arid + 500.0 * season * (0.3 + self.arid)) * (
            1.0 - 0.55 * self.cloud
        )
        h_night = np.minimum(90.0 + 30.0 * ws, 900.0)
        land = h_night + np.maximum(h_day - h_night, 0.0) * self.day_growth
        sea = 450.0 + 28.0 * ws + 150.0 * self.cloud
        out: F64 = self.lsm * land + (1.0 - self.lsm) * sea
        return out

    # ---- pressure levels
    def t_trop(self) -> F64:
        out: F64 = 193.0 + 30.0 * np.abs(np.sin(self.phi * RAD))
        return out

    def height_temp(self, p_pa: float) -> tuple[F64, F64]:
        """Geometric height (m) and temperature (K) of the pressure level, (T, ny, nx) each."""
        p0 = self.msl
        t0 = np.maximum(self.t0, 215.0)
        ttr = np.minimum(self.t_trop(), t0 - 5.0)
        z1 = (t0 - ttr) / LAPSE
        p1 = p0 * (ttr / t0) ** (G / (RD * LAPSE))
        z_a = (t0 / LAPSE) * (1.0 - (p_pa / p0) ** (RD * LAPSE / G))
        t_a = t0 - LAPSE * z_a
        z2 = np.maximum(z1, 20000.0)
        p2 = p1 * np.exp(-G * (z2 - z1) / (RD * ttr))
        z_b = z1 + RD * ttr / G * np.log(p1 / p_pa)
        t_b = ttr
        g1 = 0.001
        z3 = np.maximum(z2, 32000.0)
        t3 = ttr + g1 * (z3 - z2)
        p3 = p2 * (t3 / ttr) ** (-G / (RD * g1))
        z_c = z2 + (ttr / g1) * ((p_pa / p2) ** (-RD * g1 / G) - 1.0)
        t_c = ttr + g1 * (z_c - z2)
        g2 = 0.0028
        z4 = 47000.0
        t4 = t3 + g2 * (z4 - z3)
        p4 = p3 * (t4 / t3) ** (-G / (RD * g2))
        z_d = z3 + (t3 / g2) * ((p_pa / p3) ** (-RD * g2 / G) - 1.0)
        t_d = t3 + g2 * (z_d - z3)
        z_e = z4 + RD * t4 / G * np.log(p4 / p_pa)
        z = np.where(
            p_pa >= p1,
            z_a,
            np.where(p_pa >= p2, z_b, np.where(p_pa >= p3, z_c, np.where(p_pa >= p4, z_d, z_e))),
        )
        temp = np.where(
            p_pa >= p1,
            t_a,
            np.where(p_pa >= p2, t_b, np.where(p_pa >= p3, t_c, np.where(p_pa >= p4, t_d, t4))),
        )
        return z, temp

    def level(self, p_hpa: float) -> dict[str, F64]:
        """z (m2 s-2), t (K), u, v (m s-1), q (kg kg-1), r (%) on one pressure level."""
        p_pa = p_hpa * 100.0
        z, temp = self.height_temp(p_pa)
        zagl = z - self.orog
        za = np.maximum(zagl, 0.0)
        blh = self.blh
        temp = temp + self.diurnal * np.exp(-za / (0.5 * blh + 150.0))
        z1 = np.maximum((np.maximum(self.t0, 215.0) - self.t_trop()) / LAPSE, 5000.0)
        prof = np.where(
            z < z1, (np.maximum(z, 0.0) / z1) ** 1.5, np.exp(-(((z - z1) / 7000.0) ** 2))
        )
        ug, vg = self.geo
        ut, vt = self.trop_wind
        w = self.w_geo
        grow = 1.0 + np.minimum(np.maximum(z, 0.0), z1) / 6000.0
        strat = np.where(z < z1, 1.0, np.exp(-(((z - z1) / 9000.0) ** 2)))
        phi = self.phi
        s = self.s_temp
        jet = np.zeros_like(phi * s)
        for hemi in (1.0, -1.0):
            sh = s * hemi
            lat_sj = hemi * (29.0 + 4.0 * sh)
            u_sj = 32.0 - 10.0 * sh
            lat_pj = hemi * (47.0 + 4.0 * sh)
            jet = (
                jet
                + u_sj * np.exp(-(((phi - lat_sj) / 6.0) ** 2))
                + 14.0 * np.exp(-(((phi - lat_pj) / 8.0) ** 2))
            )
        tej = (
            -14.0
            * np.maximum(self.s_itcz, 0.0)
            * _bump(phi, 12.0, 6.0)
            * _bump_lon(self.lam, 70.0, 35.0)
        )
        trade_decay = np.maximum(1.0 - np.maximum(z, 0.0) / 5000.0, 0.0)
        u_free = w * ug * grow * strat + (1.0 - w) * ut * trade_decay + (jet + tej) * prof
        v_free = w * vg * grow * strat + (1.0 - w) * vt * trade_decay
        u10, v10 = self.wind10
        wb = _smoothstep(zagl / (1.2 * np.maximum(blh, 300.0)), 0.0, 1.0)
        u = (1.0 - wb) * 1.2 * u10 + wb * u_free
        v = (1.0 - wb) * 1.2 * v10 + wb * v_free
        hq = 2200.0 + 1500.0 * self.cloud
        qs = _qsat(temp, p_pa)
        q = np.minimum(self.q_sfc * np.exp(-za / hq), (0.85 + 0.13 * self.cloud) * qs)
        q = np.maximum(q, 2.5e-6)
        r = np.clip(100.0 * q / qs, 0.0, 100.0)
        return {"z": G * z, "t": temp, "u": u, "v": v, "q": q, "r": r}


# ----------------------------------------------------------------------------- tracer model
_TRACERS: Final = ("dust", "anth", "so2", "sulf", "nox", "co", "ss", "o3")
_I = {n: i for i, n in enumerate(_TRACERS)}
_NTR: Final = len(_TRACERS)
# mixing depth = blh + _H_EXTRA[tracer]; above the boundary layer the excess decays with it
_H_EXTRA: Final = {
    "dust": 1500.0,
    "anth": 500.0,
    "so2": 500.0,
    "sulf": 500.0,
    "nox": 500.0,
    "co": 500.0,
    "ss": 300.0,
    "o3": 1000.0,
}
# size fractions (PM1, PM2.5, PM10) of each aerosol tracer
_PM_FRAC: Final = {
    "dust": (0.07, 0.28, 1.0),
    "anth": (0.65, 1.0, 1.2),
    "sulf": (0.85, 1.0, 1.0),
    "ss": (0.05, 0.25, 1.0),
}
_SIM_RES: Final = 1.0
_SIM_LAT: Final = np.arange(-89.5, 90.0, _SIM_RES)
_SIM_LON: Final = np.arange(0.5, 360.0, _SIM_RES)
_SIM_SNAP_H: Final = 3  # hours between weather snapshots of the tracer model

# emission scales, kg m-2 s-1 at a source centre of weight 1
_E_CITY: Final = {"anth": 2.0e-9, "so2": 0.6e-9, "nox": 1.6e-9, "co": 1.2e-8}
_E_INDUSTRY: Final = {"anth": 0.2e-9, "so2": 4.0e-9, "nox": 0.6e-9, "co": 0.5e-9}
_E_FIRE: Final = {"anth": 0.5e-9, "so2": 0.02e-9, "nox": 0.15e-9, "co": 6.0e-9}
_DUST_C: Final = 1.6e-6  # kg m-2 s-1 per (m s-1)^3 of friction velocity
_DUST_USTAR_T: Final = 0.47  # threshold friction velocity, m s-1
_SEASALT_C: Final = 2.0e-14  # kg m-2 s-1 per (m s-1)^3.41
_VENT_S: Final = 86400.0  # venting time scale
_PPB_O3: Final = 48.0 / M_AIR * 1e-9  # kg kg-1 per ppb
_PPB_NO2: Final = 46.0 / M_AIR * 1e-9
_PPB_NO: Final = 30.0 / M_AIR * 1e-9
_PPB_CO: Final = 28.0 / M_AIR * 1e-9
_PPB_SO2: Final = 64.0 / M_AIR * 1e-9


@dataclass(frozen=True)
class WindPerturbation:
    """Scale the tracer-transport wind inside a box and a time interval (experiments, tests).

    Only the wind that carries the tracers changes; the weather fields and the emissions stay
    those of the unperturbed atmosphere.

    Parameters
    ----------
    lat_range, lon_range
        Box in degrees, ``lon_range`` in [-180, 180) (may not cross the date line).
    start, end
        Interval (datetime64) during which the scale applies.
    scale
        Factor on the transport wind (0 stops transport, 2 doubles it).
    """

    lat_range: tuple[float, float]
    lon_range: tuple[float, float]
    start: np.datetime64
    end: np.datetime64
    scale: float

    def factor(self, t_h: float) -> F64 | None:
        """Wind factor on the simulation grid (ny*nx,) at hour ``t_h``, or None if inactive."""
        start = float(_to_hours(np.asarray([self.start]), "start")[0])
        end = float(_to_hours(np.asarray([self.end]), "end")[0])
        if not start <= t_h < end:
            return None
        lat = _SIM_LAT[:, None]
        lon = _wrap180(_SIM_LON)[None, :]
        inside = (
            (lat >= self.lat_range[0])
            & (lat <= self.lat_range[1])
            & (lon >= self.lon_range[0])
            & (lon <= self.lon_range[1])
        )
        out: F64 = np.where(inside, self.scale, 1.0).ravel()
        return out


@dataclass(frozen=True)
class _Model:
    """Tunable parts of the tracer model (the forecast model differs slightly from the truth)."""

    emis_scale: tuple[float, ...] = (1.0,) * _NTR
    dust_threshold: float = _DUST_USTAR_T
    vent_s: float = _VENT_S
    smooth: float = 0.0  # extra diffusion per step (0..0.2)


def _o3_background(phi: F64, t: F64) -> F64:
    """Surface ozone background, kg kg-1 (broadcast of phi and t)."""
    spring = _season(t, -100.0) * np.sign(phi)
    ppb = 28.0 + 10.0 * np.exp(-(((np.abs(phi) - 40.0) / 20.0) ** 2)) * (1.0 + 0.35 * spring)
    out: F64 = ppb * _PPB_O3
    return out


class _SimGrid:
    """Static fields and emission maps of the 1° global tracer grid (shared by all seeds).

    Flattened fields are (ny*nx,) float32, row-major (latitude, longitude).
    """

    def __init__(self) -> None:
        f4 = np.float32
        self.lat = _SIM_LAT
        self.lon = _wrap180(_SIM_LON)
        self.ny, self.nx = self.lat.size, self.lon.size
        self.st = _static_fields(self.lat, self.lon)
        lat2 = np.broadcast_to(self.lat[:, None], (self.ny, self.nx)).ravel()
        self.lat2 = lat2.astype(f4)
        self.lon2 = np.broadcast_to(_SIM_LON[None, :], (self.ny, self.nx)).ravel().astype(f4)
        self.m_per_deg_lon = (
            M_PER_DEG * np.maximum(np.cos(lat2 * RAD), math.cos(80.0 * RAD))
        ).astype(f4)
        self.lsm = self.st.lsm.ravel().astype(f4)
        self.dust_src = self.st.dust.ravel().astype(f4)
        city = np.concatenate(
            [_CITIES[:, :2], np.full((len(_CITIES), 2), 0.6), _CITIES[:, 2:3]], axis=1
        )
        ind = np.concatenate(
            [_INDUSTRY[:, :2], np.full((len(_INDUSTRY), 2), 0.5), _INDUSTRY[:, 2:3]], axis=1
        )
        self.city = _gauss_sum(self.lat, self.lon, city).ravel().astype(f4)
        self.industry = _gauss_sum(self.lat, self.lon, ind).ravel().astype(f4)
        self.fires = np.stack(
            [_gauss_sum(self.lat, self.lon, _FIRES[i : i + 1]).ravel() for i in range(len(_FIRES))]
        ).astype(f4)
        self.heating = _smoothstep(np.abs(lat2), 25.0, 40.0).astype(f4)
        self.hemi = np.sign(lat2).astype(f4)
        self.sinlat = np.sin(self.lat * RAD)[:, None]
        self.coslat = np.cos(self.lat * RAD)[:, None]


_SIMGRID: _SimGrid | None = None


def _simgrid() -> _SimGrid:
    global _SIMGRID
    if _SIMGRID is None:
        _SIMGRID = _SimGrid()
    return _SIMGRID


@dataclass(frozen=True)
class _SimWeather:
    """Weather snapshots on the tracer grid for one UTC day: (9, ny*nx) float32 each."""

    u: F32
    v: F32
    ws: F32
    blh: F32
    rain: F32
    t2m: F32


@dataclass
class _FcRun:
    """Cached tracer states of one forecast: requested leads and the last state computed."""

    states: dict[int, F32]
    last_lead: int
    last_state: F32 | None


def _photostationary(nox_ppb: F64, ox_ppb: F64, jno2: F64, temp: F64, pres: F64) -> F64:
    """NO2 (ppb) of the NO-NO2-O3 photostationary state with total NOx and Ox.

    Solves j [NO2] = k [NO][O3] with [NO] = NOx - NO2 and [O3] = Ox - NO2.
    """
    dens = pres / (KBOLTZ * temp) * 1e-6 * 1e-9  # molecules cm-3 per ppb
    k = 3.0e-12 * np.exp(-1500.0 / temp) * dens  # ppb-1 s-1
    b = k * (nox_ppb + ox_ppb) + jno2
    c = k * nox_ppb * ox_ppb
    disc = np.maximum(b * b - 4.0 * k * c, 0.0)
    den = b + np.sqrt(disc)
    out: F64 = np.where(den > 0, 2.0 * c / np.where(den > 0, den, 1.0), 0.0)
    return np.minimum(out, np.minimum(nox_ppb, ox_ppb))


# ------------------------------------------------------------------------------ public class
_SINGLE_WEATHER: Final = ("t2m", "d2m", "u10", "v10", "msl", "sp", "tp", "blh", "tcwv")
_STATIC_NAMES: Final = ("lsm", "z_sfc")
_LEVEL_WEATHER: Final = ("z", "t", "u", "v", "q", "r")
_SURFACE_PM: Final = ("pm1", "pm2p5", "pm10")
_LEVEL_GAS: Final = ("go3", "no2", "no", "so2", "co")
_COLUMNS: Final = ("tcco", "tcno2", "tc_no", "tcso2", "gtco3")
_KNOWN: Final = (
    _SINGLE_WEATHER + _STATIC_NAMES + _LEVEL_WEATHER + _SURFACE_PM + _LEVEL_GAS + _COLUMNS
)
_NEEDS: Final = {
    "pm1": ("dust", "anth", "sulf", "ss"),
    "pm2p5": ("dust", "anth", "sulf", "ss"),
    "pm10": ("dust", "anth", "sulf", "ss"),
    "go3": ("o3", "nox"),
    "no2": ("o3", "nox"),
    "no": ("o3", "nox"),
    "so2": ("so2",),
    "co": ("co",),
    "tcco": ("co",),
    "tcno2": ("o3", "nox"),
    "tc_no": ("o3", "nox"),
    "tcso2": ("so2",),
    "gtco3": ("o3",),
}
_CHUNK_POINTS: Final = 1_500_000


class ToyAtmosphere:
    """A deterministic toy atmosphere: weather, static fields and pollution at any point.

    Parameters
    ----------
    seed
        Chooses the weather history (waves, pressure systems, rain cells); geography and
        emission sources are the same for every seed.
    cache_days
        Number of simulated UTC days of tracers kept in memory (~50 MB each).
    wind_perturbation
        Optional change of the tracer-transport wind, for experiments and tests.

    Notes
    -----
    Every value is a pure function of (seed, variable, level, time, point): it does not depend
    on the other points, times or variables of the request, nor on earlier calls.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        cache_days: int = 4,
        wind_perturbation: WindPerturbation | None = None,
    ) -> None:
        self.seed = int(seed)
        self._par = _Params(self.seed)
        self._cache_days = max(1, int(cache_days))
        self._perturb = wind_perturbation
        self._lock = threading.RLock()
        self._days: OrderedDict[int, F32] = OrderedDict()
        self._simw: OrderedDict[tuple[int, float | None], _SimWeather] = OrderedDict()
        self._fc: OrderedDict[int, _FcRun] = OrderedDict()

    # ------------------------------------------------------------------------ public API
    def sample(
        self,
        names: Sequence[str],
        times: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        level_hpa: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Truth on a grid at given times.

        Parameters
        ----------
        names
            AirCast short names (:data:`aircast.vocab.VARIABLES`).
        times
            (T,) tz-naive UTC datetime64 values within 2003-01-01..2030-12-31.
        lat
            (ny,) latitudes in degrees, any order.
        lon
            (nx,) longitudes in degrees, any values (periodic: -20 and 340 are one point).
        level_hpa
            Pressure level for pressure-level variables (z, t, u, v, q, r, go3, no2, no, so2,
            co).

        Returns
        -------
        dict
            name -> float32 array (T, ny, nx) in the units of the vocabulary. ``tp`` is the
            amount over the hour ending at each time stamp (m); static fields are repeated
            along time.
        """
        names = list(names)
        self._check_names(names, level_hpa)
        t = _to_hours(times, "times")
        lat1, lon1 = self._check_grid(lat, lon)
        return self._evaluate(names, t, lat1, lon1, level_hpa, None)

    def sample_forecast(
        self,
        names: Sequence[str],
        init_time: np.datetime64,
        lead_hours: Sequence[int],
        lat: np.ndarray,
        lon: np.ndarray,
        level_hpa: float | None = None,
    ) -> dict[str, np.ndarray]:
        """A CAMS-like forecast started at ``init_time``.

        Close to the truth at lead 0 (a small analysis error); the errors grow with lead:
        pressure systems and rain cells drift in phase and depth, systems born after the
        start are misplaced and too weak (the forecast misses the peak of dust storms), the
        tracers are carried by that wrong wind with biased emissions and extra smoothing.

        Parameters
        ----------
        names
            AirCast short names.
        init_time
            Start (datetime64, whole hour, 2003-01-01..2030-12-31).
        lead_hours
            (L,) non-negative whole hours, at most 384.
        lat, lon, level_hpa
            As in :meth:`sample`.

        Returns
        -------
        dict
            name -> float32 array (L, ny, nx). ``tp`` is accumulated since ``init_time`` (m).
        """
        names = list(names)
        self._check_names(names, level_hpa)
        init_h = float(_to_hours(np.asarray([init_time]), "init_time")[0])
        if init_h != math.floor(init_h):
            raise ValueError(f"init_time {init_time} must be a whole hour")
        leads = np.asarray(list(lead_hours))
        if leads.ndim != 1 or leads.size == 0:
            raise ValueError("lead_hours must be a non-empty sequence of whole hours")
        if leads.dtype.kind not in "iuf" or np.any(leads != np.round(leads)):
            raise ValueError(f"lead_hours must be whole hours, got {list(lead_hours)!r}")
        if leads.min() < 0 or leads.max() > _MAX_LEAD_H:
            raise ValueError(f"lead_hours must lie in 0..{_MAX_LEAD_H}, got {list(lead_hours)!r}")
        lat1, lon1 = self._check_grid(lat, lon)
        t = init_h + leads.astype(np.float64)
        return self._evaluate(names, t, lat1, lon1, level_hpa, _FcSpec(init_h))

    # ------------------------------------------------------------------------ validation
    @staticmethod
    def _check_names(names: list[str], level_hpa: float | None) -> None:
        for name in names:
            if name not in _KNOWN:
                known = ", ".join(_KNOWN)
                raise ValueError(f"unknown variable {name!r}; the toy atmosphere knows: {known}")
            if VARIABLES[name].level_type is LevelType.PRESSURE and level_hpa is None:
                raise ValueError(f"variable {name!r} is on pressure levels: pass level_hpa")
        if level_hpa is not None and not (0.0 < float(level_hpa) <= 1100.0):
            raise ValueError(f"level_hpa must be in (0, 1100] hPa, got {level_hpa}")

    @staticmethod
    def _check_grid(lat: np.ndarray, lon: np.ndarray) -> tuple[F64, F64]:
        lat1 = np.asarray(lat, dtype=np.float64)
        lon1 = np.asarray(lon, dtype=np.float64)
        if lat1.ndim != 1 or lon1.ndim != 1 or lat1.size == 0 or lon1.size == 0:
            raise ValueError("lat and lon must be non-empty one-dimensional arrays")
        if not (np.isfinite(lat1).all() and np.isfinite(lon1).all()):
            raise ValueError("lat and lon must be finite")
        if np.abs(lat1).max() > 90.0:
            raise ValueError("latitudes must lie in [-90, 90]")
        return lat1, _wrap180(lon1)

    # ------------------------------------------------------------------------ evaluation
    def _evaluate(
        self,
        names: list[str],
        t: F64,
        lat: F64,
        lon: F64,
        level_hpa: float | None,
        fc: _FcSpec | None,
    ) -> dict[str, np.ndarray]:
        st = _static_fields(lat, lon)
        ny, nx = lat.size, lon.size
        out = {n: np.empty((t.size, ny, nx), dtype=np.float32) for n in dict.fromkeys(names)}
        step = max(1, _CHUNK_POINTS // (ny * nx))
        tracers = sorted({tr for n in out for tr in _NEEDS.get(n, ())})
        if fc is not None and "tp" in out:
            out["tp"][:] = self._accumulated_rain(t, lat, lon, st, fc)
        if fc is not None and tracers:
            # one forecast run for all leads (it is cached per start time)
            self._forecast_states(fc, sorted({round(x - fc.init_h) for x in t}))
        for i0 in range(0, t.size, step):
            tc = t[i0 : i0 + step]
            w = _Weather(self._par, tc, lat, lon, st, fc)
            tr = self._tracers_at(tc, lat, lon, tracers, fc) if tracers else {}
            for name in out:
                if name == "tp" and fc is not None:
                    continue
                out[name][i0 : i0 + step] = self._field(name, w, tr, level_hpa, st)
        return out

    def _field(
        self, name: str, w: _Weather, tr: dict[str, F64], level_hpa: float | None, st: _Static
    ) -> F64:
        shape = (w.t.size, w.lat1.size, w.lon1.size)
        if name in ("lsm", "z_sfc"):
            v = st.lsm if name == "lsm" else G * st.orog
            return np.broadcast_to(v[None], shape)
        if name in ("t2m", "d2m", "msl", "sp", "blh", "tcwv"):
            return np.broadcast_to(getattr(w, name), shape)
        if name in ("u10", "v10"):
            return w.wind10[0 if name == "u10" else 1]
        if name == "tp":
            shifted = _Weather(self._par, w.t - 0.5, w.lat1, w.lon1, st, w.fc)
            return shifted.rain * 1e-3
        if name in _LEVEL_WEATHER:
            assert level_hpa is not None
            return w.level(float(level_hpa))[name]
        return self._pollutant(name, w, tr, level_hpa)

    def _accumulated_rain(self, t: F64, lat: F64, lon: F64, st: _Static, fc: _FcSpec) -> F64:
        """Rain accumulated since the forecast start (m), (L, ny, nx)."""
        leads = np.round(t - fc.init_h).astype(np.int64)
        lmax = int(leads.max())
        acc = np.zeros((lmax + 1, lat.size, lon.size))
        step = max(1, _CHUNK_POINTS // (lat.size * lon.size))
        total = np.zeros((lat.size, lon.size))
        for j0 in range(1, lmax + 1, step):
            hours = np.arange(j0, min(j0 + step, lmax + 1))
            t_mid = fc.init_h + hours.astype(np.float64) - 0.5
            rate = _Weather(self._par, t_mid, lat, lon, st, fc).rain
            cum = total[None] + np.cumsum(rate * 1e-3, axis=0)
            acc[hours] = cum
            total = cum[-1]
        out: F64 = acc[leads]
        return out

    # ------------------------------------------------------------------------ pollutants
    def _pollutant(
        self, name: str, w: _Weather, tr: dict[str, F64], level_hpa: float | None
    ) -> F64:
        blh = w.blh
        rho = w.sp / (RD * w.t2m)

        def conc(n: str) -> F64:
            out: F64 = tr[n] / (blh + _H_EXTRA[n])
            return out

        if name in _SURFACE_PM:
            lsm = w.lsm
            bg1 = (1.5e-9 + 2.0e-9 * lsm) * (1.0 + 0.2 * w.s_temp * np.sign(w.phi))
            # desert haze: fine dust always present over arid land, diluted by the mixed layer
            haze = (
                w.arid
                * 3.5e-8
                * (1.0 + 0.35 * w.s_temp * np.sign(w.phi))
                * 2500.0
                / (blh + _H_EXTRA["dust"])
            )
            f = _PM_FRAC["dust"]
            cum = [
                bg1 + f[0] * haze,
                bg1 * 0.7 + (f[1] - f[0]) * haze,
                bg1 * 1.1 + (f[2] - f[1]) * haze,
            ]
            for n, frac in _PM_FRAC.items():
                c = conc(n)
                cum = [
                    cum[0] + frac[0] * c,
                    cum[1] + (frac[1] - frac[0]) * c,
                    cum[2] + (frac[2] - frac[1]) * c,
                ]
            pm1 = cum[0]
            pm25 = pm1 + cum[1]
            pm10 = pm25 + cum[2]
            return {"pm1": pm1, "pm2p5": pm25, "pm10": pm10}[name]
        if name in ("tcco", "tcso2"):
            col_air = w.sp / G
            if name == "tcco":
                bg = (85.0 + 35.0 * _smoothstep(w.phi, -20.0, 30.0)) * _PPB_CO * 0.8
                out: F64 = bg * col_air + tr["co"]
                return out
            out = 0.04 * _PPB_SO2 * col_air * (1.0 + w.lsm) + tr["so2"]
            return out
        if name == "gtco3":
            du = (
                265.0
                + 75.0
                * np.sin(w.phi * RAD) ** 2
                * (1.0 + 0.3 * _season(w.tt, -100.0) * np.sign(w.phi))
                - 90.0 * _bump(w.phi, -75.0, 10.0) * np.maximum(_season(w.tt, 100.0), 0.0) ** 2
                - 0.02 * w._pressure["anom"]
            )
            exc = (tr["o3"] - _o3_background(w.phi, w.tt)) * rho * (blh + _H_EXTRA["o3"])
            out = np.maximum(du * DU + exc, 100.0 * DU)
            return out
        jno2 = 8.5e-3 * w.sun**0.8 * (1.0 - 0.5 * w.cloud)
        if name in ("tcno2", "tc_no"):
            nox_ppb = conc("nox") / rho / _PPB_NO2
            ox_ppb = tr["o3"] / _PPB_O3 + 0.1 * nox_ppb
            no2_ppb = _photostationary(nox_ppb, ox_ppb, jno2, w.t2m, w.sp)
            f_no2 = np.where(nox_ppb > 0, no2_ppb / np.maximum(nox_ppb, 1e-30), 1.0)
            if name == "tcno2":
                out = 2.4e-6 * (1.0 + 0.3 * np.abs(np.sin(w.phi * RAD))) + tr["nox"] * f_no2
                return out
            out = 1.5e-7 * w.sun + tr["nox"] * (1.0 - f_no2) * 30.0 / 46.0
            return out
        # pressure-level gases
        assert level_hpa is not None
        p_pa = float(level_hpa) * 100.0
        z, temp = w.height_temp(p_pa)
        za = np.maximum(z - w.orog, 0.0)

        def shape(n: str) -> F64:
            out: F64 = np.exp(-np.maximum(za - blh, 0.0) / _H_EXTRA[n])
            return out

        pfac = p_pa / 100000.0
        if name == "co":
            bg = (85.0 + 35.0 * _smoothstep(w.phi, -20.0, 30.0)) * (0.75 + 0.25 * pfac) * _PPB_CO
            out = bg + conc("co") / rho * shape("co")
            return out
        if name == "so2":
            out = 0.05 * _PPB_SO2 * pfac**2 * (1.0 + w.lsm) + conc("so2") / rho * shape("so2")
            return out
        # ozone and nitrogen oxides
        lnp = np.log(max(float(level_hpa), 1e-3) / 8.0)
        strat = 1.4e-5 * math.exp(-(lnp**2) / (2.0 * 1.1**2))
        o3_bg_sfc = _o3_background(w.phi, w.tt)
        # stratospheric ozone above the ~600 hPa level, fading in smoothly
        y = min(max((0.6 - pfac) / 0.6, 0.0), 1.0)
        o3_free = o3_bg_sfc * (1.0 + 0.8 * (1.0 - pfac)) + strat * y * y * (3.0 - 2.0 * y)
        o3 = o3_free + (tr["o3"] - o3_bg_sfc) * shape("o3")
        nox_bg = (
            0.15 * pfac
            + 2.0
            * math.exp(-(math.log(max(float(level_hpa), 1e-3) / 20.0) ** 2) / 2.0)
            * (pfac < 0.2)
        ) * _PPB_NO2
        nox = nox_bg + conc("nox") / rho * shape("nox")
        nox_ppb = nox / _PPB_NO2
        ox_ppb = np.maximum(o3, 0.0) / _PPB_O3 + 0.1 * nox_ppb
        no2_ppb = _photostationary(
            nox_ppb, ox_ppb, jno2 * (1.0 + 0.3 * (1.0 - pfac)), temp, np.full_like(temp, p_pa)
        )
        if name == "go3":
            out = np.maximum(ox_ppb - no2_ppb, 0.0) * _PPB_O3
            return out
        if name == "no2":
            out = no2_ppb * _PPB_NO2
            return out
        out = np.maximum(nox_ppb - no2_ppb, 0.0) * _PPB_NO
        return out

    def _tracers_at(
        self, t: F64, lat: F64, lon: F64, names: list[str], fc: _FcSpec | None
    ) -> dict[str, F64]:
        """Tracer burdens (kg m-2; ozone kg kg-1) interpolated to the points, (T, ny, nx)."""
        idx = [_I[n] for n in names]
        states = np.empty((t.size, len(idx), _SIM_LAT.size, _SIM_LON.size), dtype=np.float64)
        for i, th in enumerate(t):
            states[i] = self._state_at(th, fc)[idx]
        # bilinear interpolation, separable: first latitude, then longitude (periodic)
        fy = np.clip((lat - _SIM_LAT[0]) / _SIM_RES, 0.0, _SIM_LAT.size - 1.0)
        iy0 = np.minimum(np.floor(fy).astype(np.int64), _SIM_LAT.size - 2)
        wy = (fy - iy0)[None, None, :, None]
        rows = states[:, :, iy0, :] * (1.0 - wy) + states[:, :, iy0 + 1, :] * wy
        fx = ((lon - _SIM_LON[0]) % 360.0) / _SIM_RES
        ix0 = np.floor(fx).astype(np.int64) % _SIM_LON.size
        ix1 = (ix0 + 1) % _SIM_LON.size
        wx = (fx - np.floor(fx))[None, None, None, :]
        vals = rows[:, :, :, ix0] * (1.0 - wx) + rows[:, :, :, ix1] * wx
        return {n: vals[:, j] for j, n in enumerate(names)}

    def _state_at(self, t_h: float, fc: _FcSpec | None) -> F64:
        """All tracers on the simulation grid at hour ``t_h``, (ntr, ny, nx)."""
        if fc is not None:
            lead = round(t_h - fc.init_h)
            return self._forecast_states(fc, [lead])[lead].astype(np.float64)
        day = math.floor(t_h / 24.0)
        snaps = self._truth_day(day)
        x = t_h - day * 24.0
        i = min(math.floor(x), 23)
        a = x - i
        if a == 0.0:
            exact: F64 = snaps[i].astype(np.float64)
            return exact
        out: F64 = snaps[i].astype(np.float64) * (1.0 - a) + snaps[i + 1].astype(np.float64) * a
        return out

    def _continuous_series(
        self, name: str, start: np.datetime64, hours: int, lat: np.ndarray, lon: np.ndarray
    ) -> F32:
        """Surface PM at points from one continuous tracer run (a diagnostic for statistics).

        The truth of :meth:`sample` restarts every UTC day from a spin-up; a continuous run
        from ``start`` (itself spun up for :data:`SPIN_UP_DAYS`) agrees with it to about 1 %
        and costs one model hour per hour instead of five.

        Parameters
        ----------
        name
            ``pm1``, ``pm2p5`` or ``pm10``.
        start
            First time stamp (datetime64, whole hour).
        hours
            Number of hourly values.
        lat, lon
            (P,) coordinates of the points.

        Returns
        -------
        (hours, P) float32, kg m-3.
        """
        if name not in _SURFACE_PM:
            raise ValueError(f"_continuous_series supports {_SURFACE_PM}, not {name!r}")
        t0 = int(_to_hours(np.asarray([start]), "start")[0])
        plat, plon = self._check_grid(lat, lon)
        if plat.size != plon.size:
            raise ValueError("lat and lon must have the same length")
        names = list(_NEEDS[name])
        idx = [_I[n] for n in names]
        fy = np.clip((plat - _SIM_LAT[0]) / _SIM_RES, 0.0, _SIM_LAT.size - 1.0)
        iy0 = np.minimum(np.floor(fy).astype(np.int64), _SIM_LAT.size - 2)
        wy = fy - iy0
        fx = ((plon - _SIM_LON[0]) % 360.0) / _SIM_RES
        ix0 = np.floor(fx).astype(np.int64) % _SIM_LON.size
        ix1 = (ix0 + 1) % _SIM_LON.size
        wx = fx - np.floor(fx)
        nx = _SIM_LON.size
        series = np.empty((hours, len(idx), plat.size))

        def keep(hour: int, st: F32) -> None:
            j = hour - t0
            if 0 <= j < hours:
                v = st[idx].astype(np.float64)
                series[j] = (v[:, iy0 * nx + ix0] * (1 - wx) + v[:, iy0 * nx + ix1] * wx) * (
                    1 - wy
                ) + (v[:, (iy0 + 1) * nx + ix0] * (1 - wx) + v[:, (iy0 + 1) * nx + ix1] * wx) * wy

        start_h = t0 - SPIN_UP_DAYS * 24
        with self._lock:
            self._run(
                self._initial_state(float(start_h)),
                start_h,
                SPIN_UP_DAYS * 24 + hours - 1,
                None,
                _Model(),
                keep,
            )
        out = np.empty((hours, plat.size), dtype=np.float32)
        times = t0 + np.arange(hours, dtype=np.float64)
        for p in range(plat.size):
            st = _static_fields(plat[p : p + 1], plon[p : p + 1])
            w = _Weather(self._par, times, plat[p : p + 1], plon[p : p + 1], st, None)
            tr = {n: series[:, j, p][:, None, None] for j, n in enumerate(names)}
            out[:, p] = self._pollutant(name, w, tr, None)[:, 0, 0]
        return out

    # ------------------------------------------------------------------------ tracer runs
    def _sim_weather(self, day: int, fc: _FcSpec | None) -> _SimWeather:
        key = (day, None if fc is None else fc.init_h)
        with self._lock:
            hit = self._simw.get(key)
            if hit is not None:
                self._simw.move_to_end(key)
                return hit
        g = _simgrid()
        t = day * 24.0 + np.arange(0.0, 24.0 + _SIM_SNAP_H, _SIM_SNAP_H)
        w = _Weather(self._par, t, g.lat, g.lon, g.st, fc)
        u, v = w.wind10

        def f32(a: F64) -> F32:
            return np.ascontiguousarray(
                np.broadcast_to(a, (t.size, g.ny, g.nx)).reshape(t.size, -1), dtype=np.float32
            )

        sw = _SimWeather(
            u=f32(1.3 * u),
            v=f32(1.3 * v),
            ws=f32(w.speed10),
            blh=f32(w.blh),
            rain=f32(w.rain),
            t2m=f32(w.t2m),
        )
        with self._lock:
            self._simw[key] = sw
            while len(self._simw) > SPIN_UP_DAYS + 4:
                self._simw.popitem(last=False)
        return sw

    def _truth_day(self, day: int) -> F32:
        """Hourly tracer snapshots of UTC day ``day`` (days since 2000-01-01), (25, ntr, ny, nx)."""
        with self._lock:
            hit = self._days.get(day)
            if hit is not None:
                self._days.move_to_end(day)
                return hit
            start = (day - SPIN_UP_DAYS) * 24
            arr = np.empty((25, _NTR, _SIM_LAT.size, _SIM_LON.size), dtype=np.float32)

            def keep(hour: int, state: F32) -> None:
                if hour >= day * 24:
                    arr[hour - day * 24] = state.reshape(arr.shape[1:])

            self._run(
                self._initial_state(float(start)),
                start,
                (SPIN_UP_DAYS + 1) * 24,
                None,
                _Model(),
                keep,
            )
            self._days[day] = arr
            while len(self._days) > self._cache_days:
                self._days.popitem(last=False)
            return arr

    def _forecast_states(self, fc: _FcSpec, leads: list[int]) -> dict[int, F32]:
        """Tracer states of the forecast started at ``fc.init_h``: lead -> (ntr, ny, nx).

        Cached per start time; a request for later leads resumes from the last state computed
        (stepping is a pure function of the state and the hour, so the values are the same as
        those of one run from the start).
        """
        key = int(fc.init_h)
        with self._lock:
            entry = self._fc.get(key)
            if entry is None:
                entry = _FcRun(states={}, last_lead=-1, last_state=None)
                self._fc[key] = entry
            self._fc.move_to_end(key)
            while len(self._fc) > 2:
                self._fc.popitem(last=False)
            missing = sorted(set(leads) - set(entry.states))
            if not missing:
                return entry.states
            if entry.last_state is not None and missing[0] > entry.last_lead:
                start_lead, state = entry.last_lead, entry.last_state
            else:
                start_lead, state = 0, self._forecast_analysis(fc)
            g = _simgrid()
            init_hour = key
            want = set(missing)
            new: dict[int, F32] = {}

            def keep(hour: int, st: F32) -> None:
                if hour - init_hour in want:
                    new[hour - init_hour] = st.reshape(_NTR, g.ny, g.nx).copy()

            self._run(
                state,
                init_hour + start_lead,
                missing[-1] - start_lead,
                fc,
                self._forecast_model(),
                keep,
            )
            entry.states.update(new)
            entry.last_lead, entry.last_state = missing[-1], new[missing[-1]].reshape(_NTR, -1)
            return entry.states

    def _forecast_model(self) -> _Model:
        """The forecast's tracer model: biased emissions, easier dust threshold, smoothing."""
        bias = tuple(float(b) for b in 1.0 + 0.15 * _sym((*self._par.seed_fc, 9), np.arange(_NTR)))
        return _Model(
            emis_scale=bias, dust_threshold=_DUST_USTAR_T * 1.08, vent_s=_VENT_S * 0.9, smooth=0.06
        )

    def _forecast_analysis(self, fc: _FcSpec) -> F32:
        """The forecast's initial state: the truth with a smooth multiplicative error (~6 %)."""
        key = int(fc.init_h)
        init = self._state_at(fc.init_h, None)
        g = _simgrid()
        noise = np.zeros((g.ny, g.nx))
        ks = (*self._par.seed_fc, 7, key)
        for j in range(6):
            m = 1 + int(6 * _u01((*ks, 1), j)[()])
            k = 2.0 * math.pi / (20.0 + 40.0 * _u01((*ks, 2), j)[()])
            ph = 2.0 * math.pi * _u01((*ks, 3), np.arange(2) + 2 * j)
            noise += np.cos(k * g.lat[:, None] + ph[0]) * np.cos(m * g.lon[None, :] * RAD + ph[1])
        state = init.reshape(_NTR, -1) * np.exp(0.06 * noise.ravel())[None, :]
        out: F32 = state.astype(np.float32)
        return out

    def _initial_state(self, t_h: float) -> F32:
        """Climatological start: no excess tracers, background ozone; (ntr, ny*nx)."""
        g = _simgrid()
        state = np.zeros((_NTR, g.ny * g.nx), dtype=np.float32)
        state[_I["o3"]] = _o3_background(g.lat2.astype(np.float64), np.asarray(t_h))
        return state

    def _run(
        self,
        state0: F32,
        start_h: int,
        n_steps: int,
        fc: _FcSpec | None,
        model: _Model,
        on_hour: Callable[[int, F32], None],
    ) -> None:
        """Integrate the tracers hourly from ``start_h`` for ``n_steps`` hours.

        Parameters
        ----------
        state0
            (ntr, ny*nx) state at ``start_h``.
        on_hour
            Called with (hour, state) for the start and after every step; ``state`` is reused.
        """
        s = np.array(state0, dtype=np.float32).reshape(_NTR, -1)
        on_hour(start_h, s)
        for n in range(n_steps):
            s = self._step(s, start_h + n, fc, model)
            on_hour(start_h + n + 1, s)

    def _step(self, s: F32, hour: int, fc: _FcSpec | None, model: _Model) -> F32:
        """One hour of transport, emission, chemistry and removal; ``s`` is (ntr, ny*nx)."""
        g = _simgrid()
        f4 = np.float32
        dt = 3600.0
        tm = hour + 0.5
        day = math.floor(tm / 24.0)
        sw = self._sim_weather(day, fc)
        x = (tm - day * 24.0) / _SIM_SNAP_H
        k = int(x)
        a = f4(x - k)
        b = f4(1.0) - a

        def wt(arr: F32) -> F32:
            out: F32 = arr[k] * b + arr[k + 1] * a
            return out

        u, v, ws, blh, rain, t2m = (
            wt(sw.u),
            wt(sw.v),
            wt(sw.ws),
            wt(sw.blh),
            wt(sw.rain),
            wt(sw.t2m),
        )
        if self._perturb is not None:
            fac = self._perturb.factor(tm)
            if fac is not None:
                u, v = u * fac.astype(f4), v * fac.astype(f4)
        # ---- semi-Lagrangian advection (bilinear, periodic in longitude)
        lat_d = np.clip(g.lat2 - v * f4(dt / M_PER_DEG), f4(_SIM_LAT[0]), f4(_SIM_LAT[-1]))
        fy = (lat_d - f4(_SIM_LAT[0])) * f4(1.0 / _SIM_RES)
        iy0 = np.minimum(fy.astype(np.int64), g.ny - 2)
        wy = fy - iy0.astype(f4)
        fx = ((g.lon2 - u * f4(dt) / g.m_per_deg_lon - f4(_SIM_LON[0])) % f4(360.0)) * f4(
            1.0 / _SIM_RES
        )
        ix0f = np.floor(fx)
        wx = fx - ix0f
        ix0 = ix0f.astype(np.int64) % g.nx
        ix1 = (ix0 + 1) % g.nx
        r0 = iy0 * g.nx
        r1 = r0 + g.nx
        w00 = (1 - wx) * (1 - wy)
        w01 = wx * (1 - wy)
        w10 = (1 - wx) * wy
        w11 = wx * wy
        s = (
            np.take(s, r0 + ix0, axis=1) * w00
            + np.take(s, r0 + ix1, axis=1) * w01
            + np.take(s, r1 + ix0, axis=1) * w10
            + np.take(s, r1 + ix1, axis=1) * w11
        )
        if model.smooth > 0.0:
            s2 = s.reshape(_NTR, g.ny, g.nx)
            nb = 0.25 * (
                np.roll(s2, 1, 2)
                + np.roll(s2, -1, 2)
                + np.concatenate([s2[:, :1], s2[:, :-1]], 1)
                + np.concatenate([s2[:, 1:], s2[:, -1:]], 1)
            )
            s = ((1.0 - model.smooth) * s2 + model.smooth * nb).reshape(_NTR, -1).astype(f4)
        # ---- time factors (functions of longitude or of time only)
        hloc = ((tm % 24.0) + g.lon / 15.0) % 24.0
        diurnal = (
            0.75
            + 0.45 * np.exp(-0.5 * ((hloc - 8.5) / 1.8) ** 2)
            + 0.4 * np.exp(-0.5 * ((hloc - 18.5) / 2.2) ** 2)
            - 0.25 * np.exp(-0.5 * ((hloc - 3.0) / 2.0) ** 2)
        )
        fire_diurnal = 0.4 + 1.2 * np.exp(-0.5 * ((hloc - 15.0) / 3.0) ** 2)
        dow = int((math.floor(tm / 24.0) + 5) % 7)  # 0 = Monday
        weekly = (1.03, 1.03, 1.03, 1.03, 1.03, 0.9, 0.82)[dow]
        sea = float(_season(np.asarray(tm), 30.0))
        doy = float(_day_of_year(np.asarray(tm)))
        fw = _FIRES[:, 4] * np.exp(
            -0.5
            * (((doy - _FIRES[:, 5] + YEAR_DAYS / 2) % YEAR_DAYS - YEAR_DAYS / 2) / _FIRES[:, 6])
            ** 2
        )
        fire = (fw.astype(f4)[:, None] * g.fires).sum(axis=0).reshape(
            g.ny, g.nx
        ) * fire_diurnal.astype(f4)[None, :]
        heating = f4(1.0) + f4(0.35) * g.heating * np.maximum(-sea * g.hemi, f4(0.0))
        urban = (g.city.reshape(g.ny, g.nx) * (weekly * diurnal).astype(f4)[None, :]).ravel()
        urban = urban * heating
        dec = float(_declination(np.asarray(tm)))
        ha = 2.0 * math.pi * ((tm % 24.0) / 24.0 + g.lon / 360.0) - math.pi
        sun = (
            np.maximum(
                g.sinlat * math.sin(dec) + g.coslat * math.cos(dec) * np.cos(ha)[None, :], 0.0
            )
            .astype(f4)
            .ravel()
        )
        fire = fire.ravel()
        # ---- emissions
        e = model.emis_scale
        for n in ("anth", "so2", "nox", "co"):
            i = _I[n]
            s[i] += f4(dt * e[i]) * (
                f4(_E_CITY[n]) * urban + f4(_E_INDUSTRY[n]) * g.industry + f4(_E_FIRE[n]) * fire
            )
        ustar = f4(0.043) * ws
        ut = f4(model.dust_threshold)
        r = ut / np.maximum(ustar, f4(1e-6))
        flux = np.where(ustar > ut, f4(_DUST_C) * ustar**3 * (1 + r) * (1 - r * r), f4(0.0))
        s[_I["dust"]] += f4(dt * e[_I["dust"]]) * flux * g.dust_src * np.exp(-rain * f4(5.0))
        s[_I["ss"]] += f4(dt * e[_I["ss"]] * _SEASALT_C) * (1 - g.lsm) * ws ** f4(3.41)
        # ---- removal and chemistry (exact exponential decay over the step)
        vent = f4(1.0 / model.vent_s)
        inv_d = f4(1.0) / (blh + f4(500.0))
        wet = f4(1.5e-4) * rain ** f4(0.75)
        base = vent + wet
        fdt = f4(-dt)
        s[_I["dust"]] *= np.exp(fdt * (base + f4(0.012) / (blh + f4(1500.0))))
        s[_I["anth"]] *= np.exp(fdt * (base + f4(0.0015) * inv_d))
        s[_I["sulf"]] *= np.exp(fdt * (base + f4(0.001) * inv_d))
        s[_I["ss"]] *= np.exp(fdt * (base + f4(0.008) / (blh + f4(300.0))))
        s[_I["nox"]] *= np.exp(
            fdt * (vent + f4(1.0 / 72000.0) + f4(3.5e-5) * sun + f4(0.001) * inv_d)
        )
        s[_I["co"]] *= f4(math.exp(-dt * (1.0 / model.vent_s + 1.0 / (30 * 86400.0))))
        so2 = s[_I["so2"]]
        kconv = f4(1.5e-6) + f4(7.0e-6) * sun * (1 + rain)
        kso2 = vent + f4(0.005) * inv_d + f4(5.0e-5) * rain ** f4(0.7)
        ktot = kconv + kso2
        so2_new = so2 * np.exp(fdt * ktot)
        s[_I["sulf"]] += f4(1.5) * (so2 - so2_new) * kconv / ktot
        s[_I["so2"]] = so2_new
        # ozone: production by sunlight, heat and NOx; deposition; relaxation to background
        nox_ppb = s[_I["nox"]] * inv_d * f4(1.0 / (1.2 * _PPB_NO2))
        prod = (
            f4(14.0)
            * sun
            * np.exp((t2m - f4(298.0)) * f4(1.0 / 12.0))
            * nox_ppb
            / (nox_ppb + f4(4.0))
            + f4(0.8) * sun * g.lsm
        ) * f4(_PPB_O3 / 3600.0)
        bg = np.broadcast_to(
            _o3_background(g.lat[:, None], np.asarray(tm)).astype(f4), (g.ny, g.nx)
        ).ravel()
        kdep = (f4(0.004) * g.lsm + f4(0.0005)) / np.maximum(blh, f4(50.0))
        krel = f4(1.0 / (20.0 * 3600.0))
        kt = kdep + krel
        eq = (prod + krel * bg) / kt
        s[_I["o3"]] = eq + (s[_I["o3"]] - eq) * np.exp(fdt * kt)
        return s
