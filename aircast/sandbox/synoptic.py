"""The weather history of one seed: its waves, transient pressure systems and forecast errors.

:class:`SeedParameters` holds the random but fixed parameters of a seed (Rossby waves, rain-cell
noise); :func:`transient_systems` places the discrete pressure systems (mid-latitude cyclones,
migratory highs, Mediterranean lows and the small intense desert lows of the dust storms) that
a counter-based random generator gives birth to, moves and fills. :data:`CENTRES` are the
semi-permanent centres of action. A :class:`ForecastSpec` turns all of them into a forecast
whose errors grow with lead time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from aircast.sandbox.constants import M_PER_DEG, RAD
from aircast.sandbox.counter_random import sym, u01
from aircast.sandbox.numerics import F64, wrap180
from aircast.sandbox.timeline import seasonal_cycle

__all__ = ["CENTRES", "ForecastSpec", "SeedParameters", "transient_systems"]


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
CENTRES: Final = np.array(
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
class ForecastSpec:
    """A forecast started at ``init_h``: errors of the synoptic parameters grow with lead."""

    init_h: float

    def lead_days(self, t: F64) -> F64:
        """Error clock in days: 0.03 at analysis time (analysis error), growing linearly."""
        out: F64 = np.maximum(t - self.init_h, 0.0) / 24.0 + 0.03
        return out


class SeedParameters:
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
        self.w_amp = 380.0 + 260.0 * u01((*s, 1), n)
        self.w_speed = 6.0 + 1.1 * (k - 3.0) + 3.0 * u01((*s, 2), n)  # m s-1 eastward
        self.w_phase = 2.0 * math.pi * u01((*s, 3), n)
        self.w_mod_period = 24.0 * (7.0 + 20.0 * u01((*s, 4), n))  # hours
        self.w_mod_phase = 2.0 * math.pi * u01((*s, 5), n)
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
        wl_lat = wavelength[0] + (wavelength[1] - wavelength[0]) * u01((*s, 1), n)
        wl_lon = wavelength[0] + (wavelength[1] - wavelength[0]) * u01((*s, 2), n)
        m = np.maximum(np.round(360.0 / wl_lon), 1.0)
        c = speed[0] + (speed[1] - speed[0]) * u01((*s, 3), n)
        return {
            "k": 2.0 * math.pi / wl_lat,  # rad per degree of latitude
            "m": m,  # zonal wavenumber
            "alpha": 2.0 * math.pi * u01((*s, 4), n),
            "omega": m * c * 3600.0 / (M_PER_DEG * 360.0 * 0.85),  # rad per hour
            "beta": 2.0 * math.pi * u01((*s, 5), n),
            "nu": 2.0 * math.pi / (pulse_h[0] + (pulse_h[1] - pulse_h[0]) * u01((*s, 6), n)),
            "psi": 2.0 * math.pi * u01((*s, 7), n),
            "amp": np.full(n_terms, math.sqrt(8.0 / n_terms)),
            "fc": sym((*s, 8), n),
        }


def transient_systems(par: SeedParameters, t: F64, fc: ForecastSpec | None) -> dict[str, F64]:
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
            return rng[0] + (rng[1] - rng[0]) * u01((*keys, d), n)

        birth = (n + u01((*keys, 1), n)) * st.slot_h
        season = seasonal_cycle(birth, 0.0)
        lat0 = u(3, st.lat, n)
        hemi = np.sign(lat0)
        p = st.prob * (1.0 + st.seasonal * season * hemi)
        life = u(4, st.life_h, n)
        keep = (u01((*keys, 2), n) < p) & (birth + life >= t0) & (birth <= t1)
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
            e = [sym((*keys, 50 + j), n)[None, :] for j in range(5)]
            new = birth[None, :] > fc.init_h
            # systems present in the analysis drift in position and depth; new ones are
            # misplaced from birth and (especially the desert lows) under-deepened
            lon_c = lon_c + e[0] * (1.6 * lead + np.where(new, 2.0, 0.0))
            lat_c = lat_c + e[1] * (0.7 * lead + np.where(new, 1.0, 0.0))
            amp = amp * np.where(new, u(60, st.new_amp, n)[None, :], 1.0 + 0.1 * e[2] * lead)
        parts["lat"].append(np.clip(lat_c, -89.0, 89.0))
        parts["lon"].append(wrap180(lon_c))
        parts["amp"].append(amp)
        parts["sigma"].append(np.broadcast_to(sigma[None, :], amp.shape))
    if not parts["amp"]:
        z = np.zeros((t.size, 0))
        return {"lat": z, "lon": z, "amp": z, "sigma": z}
    return {k: np.concatenate(v, axis=1) for k, v in parts.items()}
