"""The runs of the tracer model behind one toy atmosphere: truth days and forecasts, cached.

Any date from 1900 to 2099 is reached without simulating from 1900: the tracers of UTC day D are
simulated from a climatological state four days before D (:data:`SPIN_UP_DAYS`); all lifetimes
are at most a day so the memory of that start has decayed to about 1 % by D, and the windows of
consecutive days join without visible jumps. Simulated days are kept in a small LRU cache, so
many requests for one day (different variables, products or areas) pay for the simulation once.
A forecast is one run per start time, from the truth with a small analysis error, with the
forecast's own weather and a slightly different model; its states are kept for the last two
start times.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from aircast.sandbox.constants import RAD
from aircast.sandbox.counter_random import sym, u01
from aircast.sandbox.numerics import F32, F64, I64
from aircast.sandbox.synoptic import ForecastSpec, SeedParameters
from aircast.sandbox.tracers import (
    DUST_USTAR_T,
    N_TRACERS,
    SIM_LAT,
    SIM_LON,
    SIM_RES,
    SIM_SNAP_H,
    TRACER_INDEX,
    VENT_S,
    SimWeather,
    TracerSettings,
    WindPerturbation,
    o3_background,
    run,
    sim_grid,
)
from aircast.sandbox.weather import Weather

__all__ = ["SPIN_UP_DAYS", "TracerRuns"]

#: days of tracer spin-up before each simulated UTC day
SPIN_UP_DAYS: Final = 4


@dataclass
class _FcRun:
    """Cached tracer states of one forecast: requested leads and the last state computed."""

    states: dict[int, F32]
    last_lead: int
    last_state: F32 | None


class TracerRuns:
    """Tracer states of one atmosphere at any hour, for the truth and for forecasts.

    Parameters
    ----------
    par
        Parameters of the atmosphere (its seed).
    cache_days
        Number of simulated UTC days of truth kept in memory (~50 MB each).
    wind_perturbation
        Optional change of the tracer-transport wind.

    Thread-safe: one lock around the caches and the tracer model.
    """

    def __init__(
        self,
        par: SeedParameters,
        *,
        cache_days: int,
        wind_perturbation: WindPerturbation | None,
    ) -> None:
        self._par = par
        self._cache_days = max(1, int(cache_days))
        self._perturb = wind_perturbation
        self._lock = threading.RLock()
        self._days: OrderedDict[int, F32] = OrderedDict()
        self._simw: OrderedDict[tuple[int, float | None], SimWeather] = OrderedDict()
        self._fc: OrderedDict[int, _FcRun] = OrderedDict()

    # ------------------------------------------------------------------------ states
    def at_points(
        self, t: F64, lat: F64, lon: F64, names: list[str], fc: ForecastSpec | None
    ) -> dict[str, F64]:
        """Tracer burdens (kg m-2; ozone kg kg-1) interpolated to a grid.

        Parameters
        ----------
        t
            (T,) hours since 2000-01-01 UTC.
        lat, lon
            (ny,) and (nx,) degrees, ``lon`` any values (periodic).
        names
            Tracer names (:data:`aircast.sandbox.tracers.TRACERS`).
        fc
            The forecast, or None for the truth.

        Returns
        -------
        dict
            name -> (T, ny, nx) float64.
        """
        idx = [TRACER_INDEX[n] for n in names]
        states = np.empty((t.size, len(idx), SIM_LAT.size, SIM_LON.size), dtype=np.float64)
        for i, th in enumerate(t):
            states[i] = self._state_at(th, fc)[idx]
        # bilinear interpolation, separable: first latitude, then longitude (periodic)
        iy0, wy, ix0, ix1, wx = _bilinear(lat, lon)
        wy = wy[None, None, :, None]
        rows = states[:, :, iy0, :] * (1.0 - wy) + states[:, :, iy0 + 1, :] * wy
        wx = wx[None, None, None, :]
        vals = rows[:, :, :, ix0] * (1.0 - wx) + rows[:, :, :, ix1] * wx
        return {n: vals[:, j] for j, n in enumerate(names)}

    def continuous(self, names: list[str], t0: int, hours: int, lat: F64, lon: F64) -> F64:
        """Tracer burdens at points from one continuous truth run, spun up before ``t0``.

        Parameters
        ----------
        names
            Tracer names.
        t0
            First hour (hours since 2000-01-01 UTC).
        hours
            Number of hourly values.
        lat, lon
            (P,) coordinates of the points, degrees.

        Returns
        -------
        (hours, len(names), P) float64.
        """
        idx = [TRACER_INDEX[n] for n in names]
        iy0, wy, ix0, ix1, wx = _bilinear(lat, lon)
        nx = SIM_LON.size
        series = np.empty((hours, len(idx), lat.size))

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
                TracerSettings(),
                keep,
            )
        return series

    def _state_at(self, t_h: float, fc: ForecastSpec | None) -> F64:
        """All tracers on the simulation grid at hour ``t_h``, (ntr, ny, nx)."""
        if fc is not None:
            lead = round(t_h - fc.init_h)
            return self.forecast_states(fc, [lead])[lead].astype(np.float64)
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

    # ------------------------------------------------------------------------ tracer runs
    def _sim_weather(self, day: int, fc: ForecastSpec | None) -> SimWeather:
        """The weather of UTC ``day`` on the tracer grid every :data:`SIM_SNAP_H` hours, cached."""
        key = (day, None if fc is None else fc.init_h)
        with self._lock:
            hit = self._simw.get(key)
            if hit is not None:
                self._simw.move_to_end(key)
                return hit
        g = sim_grid()
        t = day * 24.0 + np.arange(0.0, 24.0 + SIM_SNAP_H, SIM_SNAP_H)
        w = Weather(self._par, t, g.lat, g.lon, g.st, fc)
        u, v = w.wind10

        def f32(a: F64) -> F32:
            return np.ascontiguousarray(
                np.broadcast_to(a, (t.size, g.ny, g.nx)).reshape(t.size, -1), dtype=np.float32
            )

        sw = SimWeather(
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
            arr = np.empty((25, N_TRACERS, SIM_LAT.size, SIM_LON.size), dtype=np.float32)

            def keep(hour: int, state: F32) -> None:
                if hour >= day * 24:
                    arr[hour - day * 24] = state.reshape(arr.shape[1:])

            self._run(
                self._initial_state(float(start)),
                start,
                (SPIN_UP_DAYS + 1) * 24,
                None,
                TracerSettings(),
                keep,
            )
            self._days[day] = arr
            while len(self._days) > self._cache_days:
                self._days.popitem(last=False)
            return arr

    def forecast_states(self, fc: ForecastSpec, leads: list[int]) -> dict[int, F32]:
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
            g = sim_grid()
            init_hour = key
            want = set(missing)
            new: dict[int, F32] = {}

            def keep(hour: int, st: F32) -> None:
                if hour - init_hour in want:
                    new[hour - init_hour] = st.reshape(N_TRACERS, g.ny, g.nx).copy()

            self._run(
                state,
                init_hour + start_lead,
                missing[-1] - start_lead,
                fc,
                self._forecast_settings(),
                keep,
            )
            entry.states.update(new)
            entry.last_lead, entry.last_state = missing[-1], new[missing[-1]].reshape(N_TRACERS, -1)
            return entry.states

    def _forecast_settings(self) -> TracerSettings:
        """The forecast's tracer model: biased emissions, easier dust threshold, smoothing."""
        bias = tuple(
            float(b) for b in 1.0 + 0.15 * sym((*self._par.seed_fc, 9), np.arange(N_TRACERS))
        )
        return TracerSettings(
            emis_scale=bias, dust_threshold=DUST_USTAR_T * 1.08, vent_s=VENT_S * 0.9, smooth=0.06
        )

    def _forecast_analysis(self, fc: ForecastSpec) -> F32:
        """The forecast's initial state: the truth with a smooth multiplicative error (~6 %)."""
        key = int(fc.init_h)
        init = self._state_at(fc.init_h, None)
        g = sim_grid()
        noise = np.zeros((g.ny, g.nx))
        ks = (*self._par.seed_fc, 7, key)
        for j in range(6):
            m = 1 + int(6 * u01((*ks, 1), j)[()])
            k = 2.0 * math.pi / (20.0 + 40.0 * u01((*ks, 2), j)[()])
            ph = 2.0 * math.pi * u01((*ks, 3), np.arange(2) + 2 * j)
            noise += np.cos(k * g.lat[:, None] + ph[0]) * np.cos(m * g.lon[None, :] * RAD + ph[1])
        state = init.reshape(N_TRACERS, -1) * np.exp(0.06 * noise.ravel())[None, :]
        out: F32 = state.astype(np.float32)
        return out

    def _initial_state(self, t_h: float) -> F32:
        """Climatological start: no excess tracers, background ozone; (ntr, ny*nx)."""
        g = sim_grid()
        state = np.zeros((N_TRACERS, g.ny * g.nx), dtype=np.float32)
        state[TRACER_INDEX["o3"]] = o3_background(g.lat2.astype(np.float64), np.asarray(t_h))
        return state

    def _run(
        self,
        state0: F32,
        start_h: int,
        n_steps: int,
        fc: ForecastSpec | None,
        model: TracerSettings,
        on_hour: Callable[[int, F32], None],
    ) -> None:
        """:func:`aircast.sandbox.tracers.run` in the weather of ``fc`` (None: the truth)."""
        weather = functools.partial(self._sim_weather, fc=fc)
        run(state0, start_h, n_steps, weather, model, self._perturb, on_hour)


def _bilinear(lat: F64, lon: F64) -> tuple[I64, F64, I64, I64, F64]:
    """Bilinear interpolation from the tracer grid: the cells around points and the weights.

    Parameters
    ----------
    lat, lon
        (ny,) and (nx,) degrees; ``lon`` any values (periodic).

    Returns
    -------
    iy0, wy
        (ny,) the grid row south of each latitude and the weight of the row north of it.
    ix0, ix1, wx
        (nx,) the grid columns west and east of each longitude and the weight of the east one.
    """
    fy = np.clip((lat - SIM_LAT[0]) / SIM_RES, 0.0, SIM_LAT.size - 1.0)
    iy0 = np.minimum(np.floor(fy).astype(np.int64), SIM_LAT.size - 2)
    wy = fy - iy0
    fx = ((lon - SIM_LON[0]) % 360.0) / SIM_RES
    ix0 = np.floor(fx).astype(np.int64) % SIM_LON.size
    ix1 = (ix0 + 1) % SIM_LON.size
    wx = fx - np.floor(fx)
    return iy0, wy, ix0, ix1, wx
