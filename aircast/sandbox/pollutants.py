"""The pollutant fields served by the sandbox, diagnosed from the tracer burdens and the weather.

Surface concentration is the column burden over the mixing depth (boundary-layer height plus a
residual layer), so the daily cycle of the boundary layer shows at the surface; above it the
excess decays with height. NO/NO2/O3 are partitioned at the sampled point by the photostationary
state (titration of ozone by NO at night near sources). Backgrounds (fine particles, desert
haze, CO, SO2, the ozone column and the free troposphere and stratosphere) are analytic.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from aircast.sandbox.constants import (
    DU,
    KBOLTZ,
    PPB_CO,
    PPB_NO,
    PPB_NO2,
    PPB_O3,
    PPB_SO2,
    RAD,
    RD,
    G,
)
from aircast.sandbox.numerics import F64, bump, smoothstep
from aircast.sandbox.timeline import seasonal_cycle
from aircast.sandbox.tracers import o3_background
from aircast.sandbox.weather import Weather

__all__ = ["COLUMNS", "LEVEL_GASES", "SURFACE_PM", "TRACERS_NEEDED", "pollutant"]

# the pollutants served: at the surface, on pressure levels and as columns
SURFACE_PM: Final = ("pm1", "pm2p5", "pm10")
LEVEL_GASES: Final = ("go3", "no2", "no", "so2", "co")
COLUMNS: Final = ("tcco", "tcno2", "tc_no", "tcso2", "gtco3")
#: the tracers each pollutant is diagnosed from
TRACERS_NEEDED: Final = {
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


def _co_background_ppb(phi: F64) -> F64:
    """Surface CO background (ppb), more in the north: broadcast of latitudes ``phi``."""
    out: F64 = 85.0 + 35.0 * smoothstep(phi, -20.0, 30.0)
    return out


def pollutant(name: str, w: Weather, tr: dict[str, F64], level_hpa: float | None) -> F64:
    """One pollutant field from the tracer burdens at the points of ``w``.

    Parameters
    ----------
    name
        A short name of :data:`SURFACE_PM`, :data:`COLUMNS` or :data:`LEVEL_GASES`.
    w
        The weather at the points, (T, ny, nx).
    tr
        The burdens of the tracers ``name`` needs (:data:`TRACERS_NEEDED`), each broadcastable
        to (T, ny, nx): kg m-2, ozone kg kg-1.
    level_hpa
        Pressure level of a pressure-level gas, else None.

    Returns
    -------
    (T, ny, nx) float64 in the units of the vocabulary.
    """
    blh = w.blh
    rho = w.sp / (RD * w.t2m)

    def conc(n: str) -> F64:
        out: F64 = tr[n] / (blh + _H_EXTRA[n])
        return out

    if name in SURFACE_PM:
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
            bg = _co_background_ppb(w.phi) * PPB_CO * 0.8
            out: F64 = bg * col_air + tr["co"]
            return out
        out = 0.04 * PPB_SO2 * col_air * (1.0 + w.lsm) + tr["so2"]
        return out
    if name == "gtco3":
        du = (
            265.0
            + 75.0
            * np.sin(w.phi * RAD) ** 2
            * (1.0 + 0.3 * seasonal_cycle(w.tt, -100.0) * np.sign(w.phi))
            - 90.0 * bump(w.phi, -75.0, 10.0) * np.maximum(seasonal_cycle(w.tt, 100.0), 0.0) ** 2
            - 0.02 * w.msl_anom
        )
        exc = (tr["o3"] - o3_background(w.phi, w.tt)) * rho * (blh + _H_EXTRA["o3"])
        out = np.maximum(du * DU + exc, 100.0 * DU)
        return out
    jno2 = 8.5e-3 * w.sun**0.8 * (1.0 - 0.5 * w.cloud)
    if name in ("tcno2", "tc_no"):
        nox_ppb = conc("nox") / rho / PPB_NO2
        ox_ppb = tr["o3"] / PPB_O3 + 0.1 * nox_ppb
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
        bg = _co_background_ppb(w.phi) * (0.75 + 0.25 * pfac) * PPB_CO
        out = bg + conc("co") / rho * shape("co")
        return out
    if name == "so2":
        out = 0.05 * PPB_SO2 * pfac**2 * (1.0 + w.lsm) + conc("so2") / rho * shape("so2")
        return out
    # ozone and nitrogen oxides
    lnp = np.log(max(float(level_hpa), 1e-3) / 8.0)
    strat = 1.4e-5 * math.exp(-(lnp**2) / (2.0 * 1.1**2))
    o3_bg_sfc = o3_background(w.phi, w.tt)
    # stratospheric ozone above the ~600 hPa level, fading in smoothly
    y = min(max((0.6 - pfac) / 0.6, 0.0), 1.0)
    o3_free = o3_bg_sfc * (1.0 + 0.8 * (1.0 - pfac)) + strat * y * y * (3.0 - 2.0 * y)
    o3 = o3_free + (tr["o3"] - o3_bg_sfc) * shape("o3")
    nox_bg = (
        0.15 * pfac
        + 2.0 * math.exp(-(math.log(max(float(level_hpa), 1e-3) / 20.0) ** 2) / 2.0) * (pfac < 0.2)
    ) * PPB_NO2
    nox = nox_bg + conc("nox") / rho * shape("nox")
    nox_ppb = nox / PPB_NO2
    ox_ppb = np.maximum(o3, 0.0) / PPB_O3 + 0.1 * nox_ppb
    no2_ppb = _photostationary(
        nox_ppb, ox_ppb, jno2 * (1.0 + 0.3 * (1.0 - pfac)), temp, np.full_like(temp, p_pa)
    )
    if name == "go3":
        out = np.maximum(ox_ppb - no2_ppb, 0.0) * PPB_O3
        return out
    if name == "no2":
        out = no2_ppb * PPB_NO2
        return out
    out = np.maximum(nox_ppb - no2_ppb, 0.0) * PPB_NO
    return out
