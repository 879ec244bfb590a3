"""The metrics against values computed by hand on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aircast.align.grid import TargetGrid
from aircast.evaluation import metrics

# Two latitudes, 60°N and the equator, cells 1° high: areas ∝ sin(north) - sin(south)
A60 = math.sin(math.radians(60.5)) - math.sin(math.radians(59.5))
A0 = math.sin(math.radians(0.5)) - math.sin(math.radians(-0.5))
W60, W0 = A60 / ((A60 + A0) / 2), A0 / ((A60 + A0) / 2)
LAT = np.array([60.0, 0.0])
W = np.array([W60, W0])


def test_area_weights_come_from_the_latitude_bounds() -> None:
    w = metrics.area_weights(LAT, 1.0)
    assert w == pytest.approx([W60, W0], rel=1e-12)
    assert w.mean() == pytest.approx(1.0)
    # one implementation: the target grid's
    grid = TargetGrid(np.array([39.0, 37.5, 36.0]), np.array([0.0, 1.5]), 1.5)
    assert np.array_equal(metrics.area_weights(grid.latitudes), grid.area_weights())


def test_mae_rmse_bias_by_hand() -> None:
    # one field (lat 2, lon 2); errors: row 60°N = [1, -3], row 0° = [2, 0]
    truth = np.array([[10.0, 10.0], [10.0, 10.0]])
    forecast = truth + np.array([[1.0, -3.0], [2.0, 0.0]])
    total = 2 * W60 + 2 * W0
    assert metrics.mae(forecast, truth, W) == pytest.approx((W60 * 4 + W0 * 2) / total)
    assert metrics.bias(forecast, truth, W) == pytest.approx((W60 * -2 + W0 * 2) / total)
    assert metrics.rmse(forecast, truth, W) == pytest.approx(math.sqrt((W60 * 10 + W0 * 4) / total))


def test_nan_cells_are_left_out_not_counted_as_zero_error() -> None:
    truth = np.array([[0.0, np.nan], [0.0, 0.0]])
    forecast = np.array([[2.0, 100.0], [4.0, np.nan]])
    # valid cells: (60°N, lon 0) error 2, (0°, lon 0) error 4
    assert metrics.mae(forecast, truth, W) == pytest.approx((2 * W60 + 4 * W0) / (W60 + W0))
    everything_missing = np.full((2, 2), np.nan)
    assert np.isnan(metrics.mae(everything_missing, truth, W))


def test_leading_axes_are_pooled_or_kept() -> None:
    truth = np.zeros((2, 2, 2))  # (time, lat, lon)
    forecast = np.stack([np.ones((2, 2)), 3 * np.ones((2, 2))])
    per_time = metrics.mae(forecast, truth, W, axis=())
    assert per_time == pytest.approx([1.0, 3.0])
    # pooled: every cell of every time weighs the same → mean of squares for RMSE
    assert metrics.rmse(forecast, truth, W) == pytest.approx(math.sqrt((1 + 9) / 2))
    assert metrics.rmse(forecast, truth, W, axis=0) == pytest.approx(math.sqrt(5))
    with pytest.raises(ValueError, match="one per latitude"):
        metrics.mae(forecast, truth, np.ones(3))


def test_acc_by_hand() -> None:
    clim = np.full((2, 2), 5.0)
    truth = clim + np.array([[1.0, -1.0], [2.0, 0.0]])
    forecast = clim + np.array([[1.0, 0.0], [1.0, 1.0]])
    fo = W60 * (1 * 1 + 0 * -1) + W0 * (1 * 2 + 1 * 0)
    ff = W60 * (1 + 0) + W0 * (1 + 1)
    oo = W60 * (1 + 1) + W0 * (4 + 0)
    assert metrics.acc(forecast, truth, clim, W) == pytest.approx(fo / math.sqrt(ff * oo))
    assert metrics.acc(truth, truth, clim, W) == pytest.approx(1.0)
    assert metrics.acc(2 * clim - truth, truth, clim, W) == pytest.approx(-1.0)
    # a forecast without anomaly has no correlation: NaN, not 0
    assert np.isnan(metrics.acc(clim, truth, clim, W))


def test_acc_is_the_mean_of_per_field_values() -> None:
    clim = np.zeros((2, 2, 2))
    truth = np.stack([np.array([[1.0, -1.0], [1.0, -1.0]])] * 2)
    forecast = np.stack([truth[0], -truth[1]])  # a perfect field and an inverted one
    assert metrics.acc_fields(forecast, truth, clim, W) == pytest.approx([1.0, -1.0])
    assert metrics.acc(forecast, truth, clim, W) == pytest.approx(0.0)


def test_extreme_rmse_only_counts_cells_whose_truth_exceeds_the_threshold() -> None:
    truth = np.array([[1.0, 50.0], [60.0, 5.0]])
    forecast = np.array([[9.0, 40.0], [66.0, 0.0]])  # errors 8, -10, 6, -5
    # scalar: cells 50 (60°N) and 60 (0°) exceed 20
    expected = math.sqrt((W60 * 100 + W0 * 36) / (W60 + W0))
    assert metrics.extreme_rmse(forecast, truth, 20.0, W) == pytest.approx(expected)
    # per cell: only the 0°, lon 0 cell's threshold (55) is exceeded
    per_cell = np.array([[0.5, 55.0], [55.0, 55.0]])
    assert metrics.extreme_rmse(forecast, truth, per_cell, W) == pytest.approx(
        math.sqrt((W60 * 64 + W0 * 36) / (W60 + W0))
    )
    assert np.isnan(metrics.extreme_rmse(forecast, truth, 1000.0, W))


def test_contingency_scores_by_hand() -> None:
    # threshold 15: truth yes at 3 cells, forecast yes at 3; 15 itself is not an exceedance
    truth = np.array([[20.0, 16.0, 15.0], [30.0, 1.0, 2.0]])
    forecast = np.array([[18.0, 10.0, 40.0], [25.0, 15.0, np.nan]])
    ones = np.ones(2)
    table = metrics.contingency(forecast, truth, 15.0, ones)
    # hits: (20,18) (30,25); miss: (16,10); false alarm: (15,40); correct negative: (1,15)
    assert (table.hits, table.misses, table.false_alarms, table.correct_negatives) == (
        2,
        1,
        1,
        1,
    )
    assert table.hit_rate == pytest.approx(2 / 3)
    assert table.false_alarm_ratio == pytest.approx(1 / 3)
    assert table.csi == pytest.approx(2 / 4)
    weighted = metrics.contingency(forecast, truth, 15.0, W)
    assert weighted.hits == pytest.approx(W60 + W0)
    assert weighted.misses == pytest.approx(W60)
    assert weighted.false_alarms == pytest.approx(W60)
    assert weighted.hit_rate == pytest.approx((W60 + W0) / (2 * W60 + W0))
    summed = table + table
    assert summed.hits == 4 and summed.csi == pytest.approx(table.csi)


def test_contingency_without_events_gives_nan_scores() -> None:
    table = metrics.contingency(np.zeros((2, 2)), np.zeros((2, 2)), 15.0, W)
    assert np.isnan(table.hit_rate) and np.isnan(table.false_alarm_ratio)
    assert np.isnan(table.csi)


def test_daily_means_of_each_forecast_day() -> None:
    leads = list(range(3, 73, 3))
    values = np.asarray(leads, float).reshape(1, -1, 1, 1, 1)  # (init, lead, C, lat, lon)
    ends, means = metrics.daily_means(values, leads, axis=1)
    assert ends.tolist() == [24, 48, 72]
    # mean of 3..24, 27..48, 51..72
    assert means.ravel().tolist() == pytest.approx([13.5, 37.5, 61.5])
    assert means.shape == (1, 3, 1, 1, 1)


def test_daily_means_need_every_step_of_the_day() -> None:
    leads = list(range(3, 46, 3))  # day 2 lacks lead 48
    values = np.ones((len(leads), 2, 2))
    ends, means = metrics.daily_means(values, leads, axis=0)
    assert ends.tolist() == [24] and means.shape == (1, 2, 2)
    values[5, 0, 0] = np.nan  # lead 18 of day 1 missing at one cell
    _, means = metrics.daily_means(values, leads, axis=0)
    assert np.isnan(means[0, 0, 0]) and means[0, 1, 1] == 1.0
    ends, means = metrics.daily_means(values[:4], leads[:4], axis=0)
    assert ends.size == 0 and means.shape == (0, 2, 2)
