"""Latitude-weighted verification metrics on plain arrays.

Every function takes arrays shaped ``(..., latitude, longitude)`` and latitude weights of shape
``(latitude,)`` (:func:`area_weights`: cell areas from the cells' latitude bounds, the same
formula as :meth:`aircast.align.grid.TargetGrid.area_weights`: both call
:func:`aircast.align.grid.cell_area_weights`). Latitude and
longitude are always reduced; ``axis`` names the leading axes pooled with them (``None``: every
axis). A cell whose forecast or truth is NaN is left out, weights and all, so missing data
never count as zero error; a reduction with no valid cell gives NaN.

Definitions (``f`` forecast, ``o`` truth, ``w`` area weight, sums over the pooled cells):

- ``mae = Σ w |f - o| / Σ w``; ``bias = Σ w (f - o) / Σ w``;
  ``rmse = sqrt(Σ w (f - o)² / Σ w)``: pooled over the leading axes, not a mean of per-field
  RMSEs, so every cell of every sample counts the same.
- ``acc``: the anomaly correlation of each field (over latitude and longitude) against a
  climatology ``c``, uncentred as in WeatherBench 2:
  ``Σ w f'o' / sqrt(Σ w f'² · Σ w o'²)`` with ``f' = f - c``, ``o' = o - c``; then the plain
  mean over the pooled leading axes. A forecast equal to the climatology has no anomaly and
  gets NaN, not 0.
- ``extreme_rmse``: ``rmse`` over the cells whose *truth* exceeds a threshold (a scalar, or
  an array broadcast against the truth: one value per cell or per channel).
- :func:`contingency`: area-weighted hits (both above the threshold), misses (only the truth),
  false alarms (only the forecast) and correct negatives; "above" is strictly greater, as
  air-quality guidelines count exceedances. Hit rate ``H / (H + M)``, false-alarm *ratio*
  ``F / (H + F)`` and critical success index ``H / (H + M + F)``. Counts are weighted by cell
  area (in units of the mean cell) so that a cell near the pole does not count as much as one
  at the equator; the ratios are unitless either way.

The 24-hour mean that the WHO guideline levels apply to (:func:`daily_means`): forecast day
``d`` of a run is the mean of its eight 3-hourly steps at leads ``24(d-1)+3 … 24d`` h (for a
00 UTC run, 03 UTC to 24 UTC of each calendar day); a day is formed only when all eight steps
are there and is NaN if any of them is NaN. Truth and every model go through the same function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from aircast.align.grid import cell_area_weights
from aircast.align.time import STEP_HOURS

#: WHO 2021 air-quality guideline levels for the 24-hour mean, µg m-3 (by channel name).
WHO_24H_GUIDELINES: Mapping[str, float] = MappingProxyType({"pm2p5": 15.0, "pm10": 45.0})

Axis = int | Sequence[int] | None


def area_weights(latitudes: np.ndarray, resolution: float | None = None) -> np.ndarray:
    """Relative cell areas from the cells' latitude bounds, mean 1.

    Parameters
    ----------
    latitudes
        Cell centres, degrees north, shape (n_lat,).
    resolution
        Cell height in degrees; default: the spacing of ``latitudes``.

    Returns
    -------
    numpy.ndarray
        float64, shape (n_lat,).
    """
    lat = np.asarray(latitudes, dtype=np.float64)
    if resolution is None:
        if lat.size < 2:
            raise ValueError("one latitude does not give a resolution: pass resolution")
        resolution = float(abs(lat[0] - lat[1]))
    return cell_area_weights(lat, float(resolution))


def _axes(ndim: int, axis: Axis) -> tuple[int, ...]:
    """The axes to reduce: the given leading axes (or all) plus latitude and longitude."""
    if ndim < 2:
        raise ValueError("metrics need arrays of shape (..., latitude, longitude)")
    if axis is None:
        return tuple(range(ndim))
    given = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted({a % ndim for a in given} | {ndim - 2, ndim - 1}))


def _weight_array(shape: tuple[int, ...], weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (shape[-2],):
        raise ValueError(
            f"weights must have shape ({shape[-2]},) (one per latitude); got {w.shape}"
        )
    return np.broadcast_to(w[:, None], shape)


def weighted_sums(
    values: np.ndarray, weights: np.ndarray, axis: Axis = None
) -> tuple[np.ndarray, np.ndarray]:
    """``Σ w·x`` and ``Σ w`` over the finite values: the parts every weighted mean is made of.

    Parameters
    ----------
    values
        Shape (..., lat, lon); NaN cells are left out.
    weights
        Latitude weights, shape (lat,).
    axis
        Leading axes pooled besides (lat, lon); None pools every axis.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        float64 sums, each of the shape of ``values`` without the reduced axes.
    """
    x = np.asarray(values, dtype=np.float64)
    axes = _axes(x.ndim, axis)
    w = _weight_array(x.shape, weights)
    finite = np.isfinite(x)
    total = np.where(finite, x * w, 0.0).sum(axis=axes)
    weight = np.where(finite, w, 0.0).sum(axis=axes)
    return total, weight


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` where the denominator is positive, NaN elsewhere."""
    num, den = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    out: np.ndarray = np.divide(
        num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0
    )
    return out


def weighted_mean(values: np.ndarray, weights: np.ndarray, axis: Axis = None) -> np.ndarray:
    """Area-weighted mean over the finite values, shape of ``values`` less the reduced axes."""
    total, weight = weighted_sums(values, weights, axis)
    return ratio(total, weight)


def _error(forecast: np.ndarray, truth: np.ndarray) -> np.ndarray:
    f, o = np.asarray(forecast, np.float64), np.asarray(truth, np.float64)
    if f.shape != o.shape:
        raise ValueError(f"forecast {f.shape} and truth {o.shape} differ in shape")
    return f - o


def mae(
    forecast: np.ndarray, truth: np.ndarray, weights: np.ndarray, axis: Axis = None
) -> np.ndarray:
    """Area-weighted mean absolute error; arrays (..., lat, lon), weights (lat,)."""
    return weighted_mean(np.abs(_error(forecast, truth)), weights, axis)


def bias(
    forecast: np.ndarray, truth: np.ndarray, weights: np.ndarray, axis: Axis = None
) -> np.ndarray:
    """Area-weighted mean error (forecast minus truth); arrays (..., lat, lon)."""
    return weighted_mean(_error(forecast, truth), weights, axis)


def rmse(
    forecast: np.ndarray, truth: np.ndarray, weights: np.ndarray, axis: Axis = None
) -> np.ndarray:
    """Area-weighted root-mean-square error, pooled over the reduced axes."""
    return np.sqrt(weighted_mean(_error(forecast, truth) ** 2, weights, axis))


def extreme_rmse(
    forecast: np.ndarray,
    truth: np.ndarray,
    threshold: float | np.ndarray,
    weights: np.ndarray,
    axis: Axis = None,
) -> np.ndarray:
    """RMSE over the cells whose truth exceeds ``threshold``.

    Parameters
    ----------
    threshold
        A scalar, or an array broadcast against ``truth`` (per cell: (lat, lon); per channel
        of (..., channel, lat, lon) arrays: (channel, 1, 1)).

    Returns
    -------
    numpy.ndarray
        NaN where no cell exceeds the threshold.
    """
    error = _error(forecast, truth)
    extreme = np.asarray(truth, np.float64) > np.asarray(threshold, np.float64)
    return np.sqrt(weighted_mean(np.where(extreme, error**2, np.nan), weights, axis))


def acc_fields(
    forecast: np.ndarray, truth: np.ndarray, climatology: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Uncentred anomaly correlation of each (lat, lon) field.

    Parameters
    ----------
    forecast, truth, climatology
        Shape (..., lat, lon); a cell where any of them is NaN is left out.
    weights
        Latitude weights, shape (lat,).

    Returns
    -------
    numpy.ndarray
        Shape (...): NaN where the forecast or the truth has no anomaly.
    """
    f = np.asarray(forecast, np.float64) - np.asarray(climatology, np.float64)
    o = np.asarray(truth, np.float64) - np.asarray(climatology, np.float64)
    valid = np.isfinite(f) & np.isfinite(o)
    f, o = np.where(valid, f, np.nan), np.where(valid, o, np.nan)
    cross, _ = weighted_sums(f * o, weights, axis=())
    ff, _ = weighted_sums(f * f, weights, axis=())
    oo, _ = weighted_sums(o * o, weights, axis=())
    return ratio(cross, np.sqrt(ff * oo))


def acc(
    forecast: np.ndarray,
    truth: np.ndarray,
    climatology: np.ndarray,
    weights: np.ndarray,
    axis: Axis = None,
) -> np.ndarray:
    """Anomaly correlation: :func:`acc_fields`, then the mean over the pooled leading axes.

    Returns
    -------
    numpy.ndarray
        Shape of the inputs without (lat, lon) and the pooled axes; fields without an ACC
        (NaN) are left out of the mean.
    """
    per_field = acc_fields(forecast, truth, climatology, weights)
    axes = tuple(a for a in _axes(per_field.ndim + 2, axis) if a < per_field.ndim)
    valid = np.isfinite(per_field)
    total = np.where(valid, per_field, 0.0).sum(axis=axes)
    return ratio(total, valid.sum(axis=axes))


@dataclass(frozen=True)
class Contingency:
    """Area-weighted counts of a yes/no event (exceeding a threshold).

    Each attribute is a float64 array (or 0-d array) of the same shape; counts add up with
    ``+``, so scores over several batches are the scores of the summed counts.
    """

    hits: np.ndarray
    misses: np.ndarray
    false_alarms: np.ndarray
    correct_negatives: np.ndarray

    def __add__(self, other: Contingency) -> Contingency:
        return Contingency(
            self.hits + other.hits,
            self.misses + other.misses,
            self.false_alarms + other.false_alarms,
            self.correct_negatives + other.correct_negatives,
        )

    @property
    def hit_rate(self) -> np.ndarray:
        """``hits / (hits + misses)``: the share of observed events that were forecast."""
        return ratio(self.hits, self.hits + self.misses)

    @property
    def false_alarm_ratio(self) -> np.ndarray:
        """``false alarms / (hits + false alarms)``: the share of forecast events not observed."""
        return ratio(self.false_alarms, self.hits + self.false_alarms)

    @property
    def csi(self) -> np.ndarray:
        """Critical success index ``hits / (hits + misses + false alarms)``."""
        return ratio(self.hits, self.hits + self.misses + self.false_alarms)


def contingency(
    forecast: np.ndarray,
    truth: np.ndarray,
    threshold: float | np.ndarray,
    weights: np.ndarray,
    axis: Axis = None,
) -> Contingency:
    """Area-weighted contingency counts of ``value > threshold``.

    Parameters
    ----------
    forecast, truth
        Shape (..., lat, lon); a cell where either is NaN is left out.
    threshold
        Scalar or array broadcast against the inputs.
    weights
        Latitude weights, shape (lat,); ``np.ones(n_lat)`` gives plain counts.
    axis
        Leading axes pooled besides (lat, lon); None pools every axis.
    """
    f, o = np.asarray(forecast, np.float64), np.asarray(truth, np.float64)
    valid = np.isfinite(f) & np.isfinite(o)
    limit = np.asarray(threshold, np.float64)
    f_yes, o_yes = f > limit, o > limit

    def count(event: np.ndarray) -> np.ndarray:
        total, _ = weighted_sums(np.where(valid, event.astype(np.float64), np.nan), weights, axis)
        return total

    return Contingency(
        count(f_yes & o_yes),
        count(~f_yes & o_yes),
        count(f_yes & ~o_yes),
        count(~f_yes & ~o_yes),
    )


def daily_means(
    values: np.ndarray, lead_hours: Sequence[int], axis: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """24-hour means of each complete forecast day (leads ``24(d-1)+3 … 24d``).

    Parameters
    ----------
    values
        Any shape with the lead axis at ``axis`` (e.g. (init, lead, channel, lat, lon)).
    lead_hours
        Lead of each position along ``axis``, hours.
    axis
        The lead axis. A day is formed from its ``24 / STEP_HOURS`` steps only when all of
        them are present.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The day's last lead (24, 48, …), int64 shape (n_days,), and the means with ``axis``
        now of length n_days; NaN where a step of the day is NaN.
    """
    x = np.asarray(values, dtype=np.float64)
    leads = [int(h) for h in lead_hours]
    if len(leads) != x.shape[axis]:
        raise ValueError(f"{len(leads)} lead hours for an axis of length {x.shape[axis]}")
    position = {h: i for i, h in enumerate(leads)}
    ends, means = [], []
    for end in range(24, max(leads, default=0) + 1, 24):
        steps = list(range(end - 24 + STEP_HOURS, end + 1, STEP_HOURS))
        if all(h in position for h in steps):
            # a plain mean: NaN in any step makes the day NaN (an incomplete day is no day)
            means.append(np.take(x, [position[h] for h in steps], axis=axis).mean(axis=axis))
            ends.append(end)
    if not means:
        shape = list(x.shape)
        shape[axis] = 0
        return np.zeros(0, np.int64), np.zeros(shape)
    return np.asarray(ends, np.int64), np.stack(means, axis=axis)
