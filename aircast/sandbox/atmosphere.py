"""A deterministic toy atmosphere: the one truth behind every sandbox data-store product.

ERA5 (0.25°, hourly), the CAMS EAC4 reanalysis (0.75°, 3-hourly) and the CAMS forecasts (0.4°)
served by the sandbox are all *views* of :class:`ToyAtmosphere`: they sample the same fields at
their own grids and times, in the units of :data:`aircast.vocab.VARIABLES`.

:class:`ToyAtmosphere` is the face the server and the products use; the atmosphere behind it is
made of one module per part of the sandbox package:

* :mod:`~aircast.sandbox.geography`: coastlines, orography, deserts and the emission sources,
  the same for every seed;
* :mod:`~aircast.sandbox.synoptic` and :mod:`~aircast.sandbox.weather`: the weather, analytic
  (a pure function of time, latitude and longitude, so evaluated at full resolution on any
  grid), from the waves and pressure systems of a seed;
* :mod:`~aircast.sandbox.tracers`: the tracer model (emission, advection, boundary-layer
  venting, deposition, wet scavenging, chemistry and the dust storms' emission) on a fixed
  global 1° grid with hourly steps;
* :mod:`~aircast.sandbox.tracer_runs`: which days and forecasts the tracer model is run for
  (each UTC day from a spin-up, so that any date from 1900 to 2099 is reached directly) and
  the caches that keep them;
* :mod:`~aircast.sandbox.pollutants`: the served pollutant fields, from the tracer burdens and
  the weather at the sampled point;
* :mod:`~aircast.sandbox.timeline`, :mod:`~aircast.sandbox.constants`,
  :mod:`~aircast.sandbox.counter_random` and :mod:`~aircast.sandbox.numerics`: time, physical
  constants, random numbers and the small functions they share.

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
from collections.abc import Sequence
from typing import Final

import numpy as np

from aircast.sandbox.constants import G
from aircast.sandbox.geography import StaticFields, static_fields
from aircast.sandbox.numerics import F32, F64, wrap180
from aircast.sandbox.pollutants import COLUMNS, LEVEL_GASES, SURFACE_PM, TRACERS_NEEDED, pollutant
from aircast.sandbox.synoptic import ForecastSpec, SeedParameters
from aircast.sandbox.timeline import to_hours
from aircast.sandbox.tracer_runs import TracerRuns
from aircast.sandbox.tracers import WindPerturbation
from aircast.sandbox.weather import Weather
from aircast.vocab import VARIABLES, LevelType

__all__ = ["ToyAtmosphere"]

_MAX_LEAD_H: Final = 16 * 24
_SINGLE_WEATHER: Final = ("t2m", "d2m", "u10", "v10", "msl", "sp", "tp", "blh", "tcwv")
_STATIC_NAMES: Final = ("lsm", "z_sfc")
_LEVEL_WEATHER: Final = ("z", "t", "u", "v", "q", "r")
_KNOWN: Final = (
    _SINGLE_WEATHER + _STATIC_NAMES + _LEVEL_WEATHER + SURFACE_PM + LEVEL_GASES + COLUMNS
)
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
        self._par = SeedParameters(self.seed)
        self._tracers = TracerRuns(
            self._par, cache_days=cache_days, wind_perturbation=wind_perturbation
        )

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
            (T,) tz-naive UTC datetime64 values within 1900-01-01..2099-12-31.
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
        t = to_hours(times, "times")
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
            Start (datetime64, whole hour, 1900-01-01..2099-12-31).
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
        init_h = float(to_hours(np.asarray([init_time]), "init_time")[0])
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
        return self._evaluate(names, t, lat1, lon1, level_hpa, ForecastSpec(init_h))

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
        return lat1, wrap180(lon1)

    # ------------------------------------------------------------------------ evaluation
    def _evaluate(
        self,
        names: list[str],
        t: F64,
        lat: F64,
        lon: F64,
        level_hpa: float | None,
        fc: ForecastSpec | None,
    ) -> dict[str, np.ndarray]:
        st = static_fields(lat, lon)
        ny, nx = lat.size, lon.size
        out = {n: np.empty((t.size, ny, nx), dtype=np.float32) for n in dict.fromkeys(names)}
        step = max(1, _CHUNK_POINTS // (ny * nx))
        tracers = sorted({tr for n in out for tr in TRACERS_NEEDED.get(n, ())})
        if fc is not None and "tp" in out:
            out["tp"][:] = self._accumulated_rain(t, lat, lon, st, fc)
        if fc is not None and tracers:
            # one forecast run for all leads (it is cached per start time)
            self._tracers.forecast_states(fc, sorted({round(x - fc.init_h) for x in t}))
        for i0 in range(0, t.size, step):
            tc = t[i0 : i0 + step]
            w = Weather(self._par, tc, lat, lon, st, fc)
            tr = self._tracers.at_points(tc, lat, lon, tracers, fc) if tracers else {}
            for name in out:
                if name == "tp" and fc is not None:
                    continue
                out[name][i0 : i0 + step] = self._field(name, w, tr, level_hpa, st)
        return out

    def _field(
        self, name: str, w: Weather, tr: dict[str, F64], level_hpa: float | None, st: StaticFields
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
            shifted = Weather(self._par, w.t - 0.5, w.lat1, w.lon1, st, w.fc)
            return shifted.rain * 1e-3
        if name in _LEVEL_WEATHER:
            assert level_hpa is not None
            return w.level(float(level_hpa))[name]
        return pollutant(name, w, tr, level_hpa)

    def _accumulated_rain(
        self, t: F64, lat: F64, lon: F64, st: StaticFields, fc: ForecastSpec
    ) -> F64:
        """Rain accumulated since the forecast start (m), (L, ny, nx)."""
        leads = np.round(t - fc.init_h).astype(np.int64)
        lmax = int(leads.max())
        acc = np.zeros((lmax + 1, lat.size, lon.size))
        step = max(1, _CHUNK_POINTS // (lat.size * lon.size))
        total = np.zeros((lat.size, lon.size))
        for j0 in range(1, lmax + 1, step):
            hours = np.arange(j0, min(j0 + step, lmax + 1))
            t_mid = fc.init_h + hours.astype(np.float64) - 0.5
            rate = Weather(self._par, t_mid, lat, lon, st, fc).rain
            cum = total[None] + np.cumsum(rate * 1e-3, axis=0)
            acc[hours] = cum
            total = cum[-1]
        out: F64 = acc[leads]
        return out

    # ------------------------------------------------------------------------ diagnostics
    def _continuous_series(
        self, name: str, start: np.datetime64, hours: int, lat: np.ndarray, lon: np.ndarray
    ) -> F32:
        """Surface PM at points from one continuous tracer run (a diagnostic for statistics).

        The truth of :meth:`sample` restarts every UTC day from a spin-up; a continuous run
        from ``start`` (itself spun up for
        :data:`~aircast.sandbox.tracer_runs.SPIN_UP_DAYS`) agrees with it to about 1 % and
        costs one model hour per hour instead of five.

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
        if name not in SURFACE_PM:
            raise ValueError(f"_continuous_series supports {SURFACE_PM}, not {name!r}")
        t0 = int(to_hours(np.asarray([start]), "start")[0])
        plat, plon = self._check_grid(lat, lon)
        if plat.size != plon.size:
            raise ValueError("lat and lon must have the same length")
        names = list(TRACERS_NEEDED[name])
        series = self._tracers.continuous(names, t0, hours, plat, plon)
        out = np.empty((hours, plat.size), dtype=np.float32)
        times = t0 + np.arange(hours, dtype=np.float64)
        for p in range(plat.size):
            st = static_fields(plat[p : p + 1], plon[p : p + 1])
            w = Weather(self._par, times, plat[p : p + 1], plon[p : p + 1], st, None)
            tr = {n: series[:, j, p][:, None, None] for j, n in enumerate(names)}
            out[:, p] = pollutant(name, w, tr, None)[:, 0, 0]
        return out
