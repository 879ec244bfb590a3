"""The tracer model: eight tracers on a global 1° grid, stepped hourly by the analytic weather.

Emissions from cities, industry, seasonal fires, dust (only above a wind threshold, flux ~ u*^3)
and sea salt; semi-Lagrangian advection by the boundary-layer wind; venting, dry deposition
(faster in shallow layers), wet scavenging by rain; SO2 to sulphate conversion, NOx loss and
photochemical ozone production (sunlight, temperature, NOx). The state is the column burden of
each tracer (kg m-2; ozone as a mixing ratio, kg kg-1), (ntr, ny*nx) float32.

Stepping is a pure function of the state, the hour and the weather, so a run may stop and resume
anywhere; :mod:`aircast.sandbox.tracer_runs` decides which runs are made and keeps them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from aircast.sandbox.constants import M_PER_DEG, PPB_NO2, PPB_O3, RAD, YEAR_DAYS
from aircast.sandbox.geography import CITIES, FIRES, INDUSTRY, gauss_sum, static_fields
from aircast.sandbox.numerics import F32, F64, smoothstep, wrap180
from aircast.sandbox.timeline import day_of_year, declination, seasonal_cycle, to_hours

__all__ = [
    "DUST_USTAR_T",
    "N_TRACERS",
    "SIM_LAT",
    "SIM_LON",
    "SIM_RES",
    "SIM_SNAP_H",
    "TRACERS",
    "TRACER_INDEX",
    "VENT_S",
    "SimGrid",
    "SimWeather",
    "TracerSettings",
    "WindPerturbation",
    "o3_background",
    "run",
    "sim_grid",
    "step",
]

TRACERS: Final = ("dust", "anth", "so2", "sulf", "nox", "co", "ss", "o3")
TRACER_INDEX = {n: i for i, n in enumerate(TRACERS)}
N_TRACERS: Final = len(TRACERS)
SIM_RES: Final = 1.0
SIM_LAT: Final = np.arange(-89.5, 90.0, SIM_RES)
SIM_LON: Final = np.arange(0.5, 360.0, SIM_RES)
SIM_SNAP_H: Final = 3  # hours between weather snapshots of the tracer model

# emission scales, kg m-2 s-1 at a source centre of weight 1
_E_CITY: Final = {"anth": 2.0e-9, "so2": 0.6e-9, "nox": 1.6e-9, "co": 1.2e-8}
_E_INDUSTRY: Final = {"anth": 0.2e-9, "so2": 4.0e-9, "nox": 0.6e-9, "co": 0.5e-9}
_E_FIRE: Final = {"anth": 0.5e-9, "so2": 0.02e-9, "nox": 0.15e-9, "co": 6.0e-9}
_DUST_C: Final = 1.6e-6  # kg m-2 s-1 per (m s-1)^3 of friction velocity
DUST_USTAR_T: Final = 0.47  # threshold friction velocity, m s-1
_SEASALT_C: Final = 2.0e-14  # kg m-2 s-1 per (m s-1)^3.41
VENT_S: Final = 86400.0  # venting time scale


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
        start = float(to_hours(np.asarray([self.start]), "start")[0])
        end = float(to_hours(np.asarray([self.end]), "end")[0])
        if not start <= t_h < end:
            return None
        lat = SIM_LAT[:, None]
        lon = wrap180(SIM_LON)[None, :]
        inside = (
            (lat >= self.lat_range[0])
            & (lat <= self.lat_range[1])
            & (lon >= self.lon_range[0])
            & (lon <= self.lon_range[1])
        )
        out: F64 = np.where(inside, self.scale, 1.0).ravel()
        return out


@dataclass(frozen=True)
class TracerSettings:
    """Tunable parts of the tracer model (the forecast model differs slightly from the truth)."""

    emis_scale: tuple[float, ...] = (1.0,) * N_TRACERS
    dust_threshold: float = DUST_USTAR_T
    vent_s: float = VENT_S
    smooth: float = 0.0  # extra diffusion per step (0..0.2)


def o3_background(phi: F64, t: F64) -> F64:
    """Surface ozone background, kg kg-1 (broadcast of phi and t)."""
    spring = seasonal_cycle(t, -100.0) * np.sign(phi)
    ppb = 28.0 + 10.0 * np.exp(-(((np.abs(phi) - 40.0) / 20.0) ** 2)) * (1.0 + 0.35 * spring)
    out: F64 = ppb * PPB_O3
    return out


class SimGrid:
    """Static fields and emission maps of the 1° global tracer grid (shared by all seeds).

    Flattened fields are (ny*nx,) float32, row-major (latitude, longitude).
    """

    def __init__(self) -> None:
        f4 = np.float32
        self.lat = SIM_LAT
        self.lon = wrap180(SIM_LON)
        self.ny, self.nx = self.lat.size, self.lon.size
        self.st = static_fields(self.lat, self.lon)
        lat2 = np.broadcast_to(self.lat[:, None], (self.ny, self.nx)).ravel()
        self.lat2 = lat2.astype(f4)
        self.lon2 = np.broadcast_to(SIM_LON[None, :], (self.ny, self.nx)).ravel().astype(f4)
        self.m_per_deg_lon = (
            M_PER_DEG * np.maximum(np.cos(lat2 * RAD), math.cos(80.0 * RAD))
        ).astype(f4)
        self.lsm = self.st.lsm.ravel().astype(f4)
        self.dust_src = self.st.dust.ravel().astype(f4)
        city = np.concatenate(
            [CITIES[:, :2], np.full((len(CITIES), 2), 0.6), CITIES[:, 2:3]], axis=1
        )
        ind = np.concatenate(
            [INDUSTRY[:, :2], np.full((len(INDUSTRY), 2), 0.5), INDUSTRY[:, 2:3]], axis=1
        )
        self.city = gauss_sum(self.lat, self.lon, city).ravel().astype(f4)
        self.industry = gauss_sum(self.lat, self.lon, ind).ravel().astype(f4)
        self.fires = np.stack(
            [gauss_sum(self.lat, self.lon, FIRES[i : i + 1]).ravel() for i in range(len(FIRES))]
        ).astype(f4)
        self.heating = smoothstep(np.abs(lat2), 25.0, 40.0).astype(f4)
        self.hemi = np.sign(lat2).astype(f4)
        self.sinlat = np.sin(self.lat * RAD)[:, None]
        self.coslat = np.cos(self.lat * RAD)[:, None]


@functools.cache
def sim_grid() -> SimGrid:
    """The tracer grid, built once per process."""
    return SimGrid()


@dataclass(frozen=True)
class SimWeather:
    """Weather snapshots on the tracer grid for one UTC day: (9, ny*nx) float32 each."""

    u: F32
    v: F32
    ws: F32
    blh: F32
    rain: F32
    t2m: F32


def step(
    s: F32,
    hour: int,
    weather: Callable[[int], SimWeather],
    model: TracerSettings,
    perturbation: WindPerturbation | None,
) -> F32:
    """One hour of transport, emission, chemistry and removal.

    Parameters
    ----------
    s
        (ntr, ny*nx) state at ``hour``; may be changed in place.
    hour
        Hours since 2000-01-01 UTC at the start of the step.
    weather
        The tracer-grid weather snapshots of a UTC day (days since 2000-01-01).
    model
        Settings of the tracer model (truth or forecast).
    perturbation
        Optional change of the transport wind.

    Returns
    -------
    (ntr, ny*nx) state at ``hour + 1``.
    """
    f4 = np.float32
    tm = hour + 0.5
    day = math.floor(tm / 24.0)
    sw = weather(day)
    x = (tm - day * 24.0) / SIM_SNAP_H
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
    if perturbation is not None:
        fac = perturbation.factor(tm)
        if fac is not None:
            u, v = u * fac.astype(f4), v * fac.astype(f4)
    s = _advect(s, u, v, model)
    _emit(s, tm, ws, rain, model)
    _remove_and_react(s, tm, blh, rain, t2m, model)
    return s


def _advect(s: F32, u: F32, v: F32, model: TracerSettings) -> F32:
    """Semi-Lagrangian advection over one hour (bilinear, periodic in longitude).

    Parameters
    ----------
    s
        (ntr, ny*nx) state.
    u, v
        (ny*nx,) transport wind, m s-1.
    model
        Its ``smooth`` adds diffusion (the forecast model).

    Returns
    -------
    (ntr, ny*nx) new state.
    """
    g = sim_grid()
    f4 = np.float32
    dt = 3600.0
    lat_d = np.clip(g.lat2 - v * f4(dt / M_PER_DEG), f4(SIM_LAT[0]), f4(SIM_LAT[-1]))
    fy = (lat_d - f4(SIM_LAT[0])) * f4(1.0 / SIM_RES)
    iy0 = np.minimum(fy.astype(np.int64), g.ny - 2)
    wy = fy - iy0.astype(f4)
    fx = ((g.lon2 - u * f4(dt) / g.m_per_deg_lon - f4(SIM_LON[0])) % f4(360.0)) * f4(1.0 / SIM_RES)
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
        s2 = s.reshape(N_TRACERS, g.ny, g.nx)
        nb = 0.25 * (
            np.roll(s2, 1, 2)
            + np.roll(s2, -1, 2)
            + np.concatenate([s2[:, :1], s2[:, :-1]], 1)
            + np.concatenate([s2[:, 1:], s2[:, -1:]], 1)
        )
        s = ((1.0 - model.smooth) * s2 + model.smooth * nb).reshape(N_TRACERS, -1).astype(f4)
    return s


def _emit(s: F32, tm: float, ws: F32, rain: F32, model: TracerSettings) -> None:
    """Add one hour of emissions to ``s`` (ntr, ny*nx) in place.

    Cities (daily and weekly cycles, domestic heating in winter), industry and seasonal fires
    emit the anthropogenic tracers; dust rises above a friction-velocity threshold (less when
    it rains) and sea salt with the wind over the sea. ``tm`` is the middle of the step (hours
    since 2000-01-01 UTC); ``ws`` (m s-1) and ``rain`` (mm h-1) are (ny*nx,).
    """
    g = sim_grid()
    f4 = np.float32
    dt = 3600.0
    # time factors (functions of longitude or of time only)
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
    sea = float(seasonal_cycle(np.asarray(tm), 30.0))
    doy = float(day_of_year(np.asarray(tm)))
    fw = FIRES[:, 4] * np.exp(
        -0.5
        * (((doy - FIRES[:, 5] + YEAR_DAYS / 2) % YEAR_DAYS - YEAR_DAYS / 2) / FIRES[:, 6]) ** 2
    )
    fire = (fw.astype(f4)[:, None] * g.fires).sum(axis=0).reshape(g.ny, g.nx) * fire_diurnal.astype(
        f4
    )[None, :]
    heating = f4(1.0) + f4(0.35) * g.heating * np.maximum(-sea * g.hemi, f4(0.0))
    urban = (g.city.reshape(g.ny, g.nx) * (weekly * diurnal).astype(f4)[None, :]).ravel()
    urban = urban * heating
    fire = fire.ravel()
    e = model.emis_scale
    for n in ("anth", "so2", "nox", "co"):
        i = TRACER_INDEX[n]
        s[i] += f4(dt * e[i]) * (
            f4(_E_CITY[n]) * urban + f4(_E_INDUSTRY[n]) * g.industry + f4(_E_FIRE[n]) * fire
        )
    ustar = f4(0.043) * ws
    ut = f4(model.dust_threshold)
    r = ut / np.maximum(ustar, f4(1e-6))
    flux = np.where(ustar > ut, f4(_DUST_C) * ustar**3 * (1 + r) * (1 - r * r), f4(0.0))
    s[TRACER_INDEX["dust"]] += (
        f4(dt * e[TRACER_INDEX["dust"]]) * flux * g.dust_src * np.exp(-rain * f4(5.0))
    )
    s[TRACER_INDEX["ss"]] += (
        f4(dt * e[TRACER_INDEX["ss"]] * _SEASALT_C) * (1 - g.lsm) * ws ** f4(3.41)
    )


def _remove_and_react(
    s: F32, tm: float, blh: F32, rain: F32, t2m: F32, model: TracerSettings
) -> None:
    """One hour of removal and chemistry on ``s`` (ntr, ny*nx), in place.

    Venting, dry deposition through the boundary layer, wet scavenging, SO2 to sulphate, NOx
    loss and ozone production and relaxation, each an exact exponential over the step. ``tm``
    is the middle of the step; ``blh`` (m), ``rain`` (mm h-1) and ``t2m`` (K) are (ny*nx,).
    """
    g = sim_grid()
    f4 = np.float32
    dt = 3600.0
    dec = float(declination(np.asarray(tm)))
    ha = 2.0 * math.pi * ((tm % 24.0) / 24.0 + g.lon / 360.0) - math.pi
    sun = (
        np.maximum(g.sinlat * math.sin(dec) + g.coslat * math.cos(dec) * np.cos(ha)[None, :], 0.0)
        .astype(f4)
        .ravel()
    )
    vent = f4(1.0 / model.vent_s)
    inv_d = f4(1.0) / (blh + f4(500.0))
    wet = f4(1.5e-4) * rain ** f4(0.75)
    base = vent + wet
    fdt = f4(-dt)
    s[TRACER_INDEX["dust"]] *= np.exp(fdt * (base + f4(0.012) / (blh + f4(1500.0))))
    s[TRACER_INDEX["anth"]] *= np.exp(fdt * (base + f4(0.0015) * inv_d))
    s[TRACER_INDEX["sulf"]] *= np.exp(fdt * (base + f4(0.001) * inv_d))
    s[TRACER_INDEX["ss"]] *= np.exp(fdt * (base + f4(0.008) / (blh + f4(300.0))))
    s[TRACER_INDEX["nox"]] *= np.exp(
        fdt * (vent + f4(1.0 / 72000.0) + f4(3.5e-5) * sun + f4(0.001) * inv_d)
    )
    s[TRACER_INDEX["co"]] *= f4(math.exp(-dt * (1.0 / model.vent_s + 1.0 / (30 * 86400.0))))
    so2 = s[TRACER_INDEX["so2"]]
    kconv = f4(1.5e-6) + f4(7.0e-6) * sun * (1 + rain)
    kso2 = vent + f4(0.005) * inv_d + f4(5.0e-5) * rain ** f4(0.7)
    ktot = kconv + kso2
    so2_new = so2 * np.exp(fdt * ktot)
    s[TRACER_INDEX["sulf"]] += f4(1.5) * (so2 - so2_new) * kconv / ktot
    s[TRACER_INDEX["so2"]] = so2_new
    # ozone: production by sunlight, heat and NOx; deposition; relaxation to background
    nox_ppb = s[TRACER_INDEX["nox"]] * inv_d * f4(1.0 / (1.2 * PPB_NO2))
    prod = (
        f4(14.0) * sun * np.exp((t2m - f4(298.0)) * f4(1.0 / 12.0)) * nox_ppb / (nox_ppb + f4(4.0))
        + f4(0.8) * sun * g.lsm
    ) * f4(PPB_O3 / 3600.0)
    bg = np.broadcast_to(
        o3_background(g.lat[:, None], np.asarray(tm)).astype(f4), (g.ny, g.nx)
    ).ravel()
    kdep = (f4(0.004) * g.lsm + f4(0.0005)) / np.maximum(blh, f4(50.0))
    krel = f4(1.0 / (20.0 * 3600.0))
    kt = kdep + krel
    eq = (prod + krel * bg) / kt
    s[TRACER_INDEX["o3"]] = eq + (s[TRACER_INDEX["o3"]] - eq) * np.exp(fdt * kt)


def run(
    state0: F32,
    start_h: int,
    n_steps: int,
    weather: Callable[[int], SimWeather],
    model: TracerSettings,
    perturbation: WindPerturbation | None,
    on_hour: Callable[[int, F32], None],
) -> None:
    """Integrate the tracers hourly from ``start_h`` for ``n_steps`` hours.

    Parameters
    ----------
    state0
        (ntr, ny*nx) state at ``start_h``.
    weather, model, perturbation
        As in :func:`step`.
    on_hour
        Called with (hour, state) for the start and after every step; ``state`` is reused.
    """
    s = np.array(state0, dtype=np.float32).reshape(N_TRACERS, -1)
    on_hour(start_h, s)
    for n in range(n_steps):
        s = step(s, start_h + n, weather, model, perturbation)
        on_hour(start_h + n + 1, s)
