"""Analytic weather of the toy atmosphere, a pure function of (time, latitude, longitude).

Being analytic, weather is evaluated at full resolution on any grid:

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
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from aircast.sandbox.constants import LAPSE, M_PER_DEG, OMEGA, RAD, RD, G
from aircast.sandbox.counter_random import sym
from aircast.sandbox.geography import StaticFields
from aircast.sandbox.numerics import (
    F64,
    bump,
    bump_lon,
    mm,
    smoothstep,
    soft_clip,
    softplus,
    wrap180,
)
from aircast.sandbox.synoptic import CENTRES, ForecastSpec, SeedParameters, transient_systems
from aircast.sandbox.timeline import declination, seasonal_cycle

__all__ = ["Weather"]


def _esat(temp: F64) -> F64:
    """Saturation vapour pressure over water (Bolton 1980), Pa."""
    out: F64 = 611.2 * np.exp(17.67 * (temp - 273.15) / (temp - 29.65))
    return out


def _qsat(temp: F64, pres: F64 | float) -> F64:
    e = _esat(temp)
    out: F64 = 0.622 * e / np.maximum(pres - 0.378 * e, 0.5 * np.asarray(pres))
    return out


class Weather:
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
        self,
        par: SeedParameters,
        t: F64,
        lat: F64,
        lon: F64,
        st: StaticFields,
        fc: ForecastSpec | None = None,
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
        return seasonal_cycle(self.tt, 30.0)

    @cached_property
    def s_itcz(self) -> F64:
        return seasonal_cycle(self.tt, 20.0)

    @cached_property
    def hour_angle(self) -> F64:
        """(T,1,nx) radians, 0 at local solar noon."""
        h = 2.0 * math.pi * ((self.tt % 24.0) / 24.0 + self.lam / 360.0)
        out: F64 = (h % (2.0 * math.pi)) - math.pi
        return out

    @cached_property
    def _sun_terms(self) -> tuple[F64, F64, F64]:
        dec = declination(self.tt)
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
        s = seasonal_cycle(tt, 30.0)
        track = hemi * (45.0 + 4.0 * s * hemi + 3.0 * (hemi < 0))  # (T, W)
        season_amp = 1.0 - 0.3 * s * hemi
        mod = 0.65 + 0.35 * np.cos(2.0 * math.pi * tt / par.w_mod_period + par.w_mod_phase)
        amp = par.w_amp * season_amp * mod  # (T, W)
        omega = k * par.w_speed * 3600.0 / (M_PER_DEG * 360.0 * math.cos(45.0 * RAD))
        x = omega * tt - par.w_phase  # (T, W) radians
        if lead is not None:
            fe = sym((*par.seed_fc, 1), np.arange(k.size))
            x = x + 0.35 * fe * lead
            amp = amp * (1.0 + 0.08 * sym((*par.seed_fc, 2), np.arange(k.size)) * lead)
        dphi = phi1[None, :, None] - track[:, None, :]  # (T, ny, W)
        env = amp[:, None, :] * np.exp(-0.5 * (dphi / 11.0) ** 2)
        denv = env * (-dphi / 11.0**2)
        cx, sx = np.cos(x)[:, None, :], np.sin(x)[:, None, :]
        p_w = np.concatenate([env * cx, env * sx], axis=2)
        dp_w = np.concatenate([denv * cx, denv * sx], axis=2)
        kl = k[None, :] * lam1[:, None] * RAD  # (nx, W)
        q_w = np.concatenate([np.cos(kl), np.sin(kl)], axis=1)
        dq_w = np.concatenate([-np.sin(kl), np.cos(kl)], axis=1) * np.concatenate([k, k]) * RAD
        anom = mm("tik,jk->tij", p_w, q_w)
        anom_dphi = mm("tik,jk->tij", dp_w, q_w)
        anom_dlam = mm("tik,jk->tij", p_w, dq_w)
        # transient systems: P (T, ny, K) @ Q (T, K, nx)
        sy = transient_systems(par, t, self.fc)
        if sy["amp"].shape[1]:
            sig = sy["sigma"]
            dphi_s = phi1[None, :, None] - sy["lat"][:, None, :]
            ps = sy["amp"][:, None, :] * np.exp(-0.5 * (dphi_s / sig[:, None, :]) ** 2)
            dps = ps * (-dphi_s / sig[:, None, :] ** 2)
            cl = np.cos(sy["lat"] * RAD)[:, :, None]
            dlam = wrap180(lam1[None, None, :] - sy["lon"][:, :, None])
            sigl = sig[:, :, None] / np.maximum(cl, 0.2)
            qs = np.exp(-0.5 * (dlam / sigl) ** 2)
            dqs = qs * (-dlam / sigl**2)
            anom = anom + mm("tik,tkj->tij", ps, qs)
            anom_dphi = anom_dphi + mm("tik,tkj->tij", dps, qs)
            anom_dlam = anom_dlam + mm("tik,tkj->tij", ps, dqs)
        # semi-permanent centres and the zonal climatology
        c = CENTRES
        camp = c[:, 4] + c[:, 5] * s * np.sign(c[:, 0])  # (T, C)
        dphi_c = phi1[None, :, None] - c[None, None, :, 0]
        pc = camp[:, None, :] * np.exp(-0.5 * (dphi_c / c[:, 2]) ** 2)
        dpc = pc * (-dphi_c / c[:, 2] ** 2)
        dlam_c = wrap180(lam1[:, None] - c[None, :, 1])
        qc = np.exp(-0.5 * (dlam_c / c[:, 3]) ** 2)
        dqc = qc * (-dlam_c / c[:, 3] ** 2)
        clim, dclim = self._zonal_msl(phi1, tt)
        total = anom + mm("tik,jk->tij", pc, qc) + clim[:, :, None]
        total_dphi = anom_dphi + mm("tik,jk->tij", dpc, qc) + dclim[:, :, None]
        total_dlam = anom_dlam + mm("tik,jk->tij", pc, dqc)
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
        s = seasonal_cycle(tt, 30.0)

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
    def msl_anom(self) -> F64:
        """Pressure anomaly of the Rossby waves and transient systems (T, ny, nx), Pa."""
        return self._pressure["anom"]

    @cached_property
    def w_geo(self) -> F64:
        """Weight of geostrophy (1, ny, 1): 0 at the equator, 1 poleward of 17°."""
        return smoothstep(np.abs(self.phi), 5.0, 17.0)

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
            9.0 * bump_lon(lam, 5.0, 22.0)
            + 14.0 * bump_lon(lam, 82.0, 18.0)
            + 6.0 * bump_lon(lam, 110.0, 15.0)
        )
        south = np.maximum(-s, 0.0) * (
            8.0 * bump_lon(lam, 28.0, 18.0)
            + 8.0 * bump_lon(lam, 135.0, 18.0)
            + 7.0 * bump_lon(lam, -55.0, 15.0)
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
            10.0 * bump(phi, 12.0, 7.0) * bump_lon(lam, 68.0, 22.0)
            + 6.0 * bump(phi, 8.0, 5.0) * bump_lon(lam, 0.0, 16.0)
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
        gain = 0.35 * self.w_geo * (0.3 + 0.7 * smoothstep(np.abs(self.phi), 20.0, 45.0))
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
        out: F64 = mm("tik,jk->tij", p, q)
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
        return soft_clip(self.t0 - LAPSE * self.orog + self.diurnal, 230.0, 325.0, 3.0)

    @cached_property
    def t2m_mean(self) -> F64:
        """t2m without the diurnal cycle."""
        return soft_clip(self.t0 - LAPSE * self.orog, 230.0, 325.0, 3.0)

    @cached_property
    def d2m(self) -> F64:
        season = self.s_temp * np.sign(self.phi)
        dd = (1.5 + 2.5 * self.lsm + 19.0 * self.arid * (1.0 + 0.3 * season)) / (
            1.0 + 3.0 * self.rain
        )
        td = self.t2m_mean - dd
        out: F64 = self.t2m - softplus(self.t2m - td)
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
            * bump(phi, 12.0, 6.0)
            * bump_lon(self.lam, 70.0, 35.0)
        )
        trade_decay = np.maximum(1.0 - np.maximum(z, 0.0) / 5000.0, 0.0)
        u_free = w * ug * grow * strat + (1.0 - w) * ut * trade_decay + (jet + tej) * prof
        v_free = w * vg * grow * strat + (1.0 - w) * vt * trade_decay
        u10, v10 = self.wind10
        wb = smoothstep(zagl / (1.2 * np.maximum(blh, 300.0)), 0.0, 1.0)
        u = (1.0 - wb) * 1.2 * u10 + wb * u_free
        v = (1.0 - wb) * 1.2 * v10 + wb * v_free
        hq = 2200.0 + 1500.0 * self.cloud
        qs = _qsat(temp, p_pa)
        q = np.minimum(self.q_sfc * np.exp(-za / hq), (0.85 + 0.13 * self.cloud) * qs)
        q = np.maximum(q, 2.5e-6)
        r = np.clip(100.0 * q / qs, 0.0, 100.0)
        return {"z": G * z, "t": temp, "u": u, "v": v, "q": q, "r": r}
