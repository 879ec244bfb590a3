"""The mergeable statistics and the fixed histogram bins."""

from __future__ import annotations

import numpy as np
import pytest

from aircast.store.stats import (
    HIST_BINS,
    LOG_SCALES,
    Moments,
    PartStatistics,
    histogram_counts,
    histogram_edges,
    log_scale,
    log_transform,
)
from aircast.vocab import VARIABLES, parse_channel


def test_every_positive_variable_has_a_log_scale() -> None:
    positive = {name for name, v in VARIABLES.items() if v.positive}
    assert positive == set(LOG_SCALES)
    for scale in LOG_SCALES.values():
        assert 0 < scale.offset < scale.upper
    assert log_scale(parse_channel("t2m")) is None


def test_merged_moments_equal_a_single_pass() -> None:
    rng = np.random.default_rng(0)
    values = rng.lognormal(-18, 1.5, size=(37, 3, 5, 7)).astype(np.float32)
    whole = Moments.from_array(values)
    merged = Moments.empty(3)
    for part in np.array_split(values, [5, 6, 20, 20, 31]):  # uneven, one empty
        merged = merged.merge(Moments.from_array(part))
    np.testing.assert_array_equal(merged.count, whole.count)
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.std, whole.std, rtol=1e-10)
    np.testing.assert_allclose(whole.std, values.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-12)
    # merging with nothing changes no bit, and the same order gives the same bits
    assert Moments.empty(3).merge(whole).mean.tobytes() == whole.mean.tobytes()
    again = Moments.empty(3)
    for part in np.array_split(values, [5, 6, 20, 20, 31]):
        again = again.merge(Moments.from_array(part))
    assert again.m2.tobytes() == merged.m2.tobytes()


def test_empty_moments_give_nan() -> None:
    empty = Moments.empty(2).merge(Moments.empty(2))
    assert np.isnan(empty.std).all() and np.isnan(empty.mean_or_nan).all()


def test_log_transform_clamps_below_zero() -> None:
    out = log_transform(np.array([-1e-12, 0.0, 1e-9]), 1e-10)
    assert out[0] == out[1] == pytest.approx(np.log(1e-10))
    assert out[2] == pytest.approx(np.log(1.1e-9))


def test_histogram_bins_have_underflow_and_overflow() -> None:
    channel = parse_channel("pm2p5")
    edges = histogram_edges(channel)
    assert edges.shape == (HIST_BINS + 1,)
    assert edges[0] == pytest.approx(np.log(1e-10))
    assert edges[-1] == pytest.approx(np.log(1e-5 + 1e-10))
    logs = np.array([edges[0] - 1, edges[0], edges[1] - 1e-9, edges[1], edges[-1], edges[-1] + 5])
    counts = histogram_counts(logs, edges)
    assert counts.shape == (HIST_BINS + 2,)
    assert counts[0] == 1  # below the first edge
    assert counts[1] == 2  # [e0, e1)
    assert counts[2] == 1  # [e1, e2)
    assert counts[-1] == 2  # at or above the last edge
    assert counts.sum() == logs.size
    with pytest.raises(ValueError, match="not positive"):
        histogram_edges(parse_channel("t2m"))


def test_part_statistics_merge_like_one_part() -> None:
    rng = np.random.default_rng(1)
    values = np.stack(
        [
            rng.normal(290, 10, size=(16, 6, 9)),  # t2m-like
            rng.lognormal(-18, 1, size=(16, 6, 9)),  # pm2p5-like
        ],
        axis=1,
    ).astype(np.float32)
    offsets = np.array([1e-10])
    edges = histogram_edges(parse_channel("pm2p5"))[None, :]
    args = ((1,), offsets, (1,), edges)
    whole = PartStatistics.from_fields(values, *args)
    merged = PartStatistics.empty(2, 1, 1)
    for part in np.array_split(values, 3):
        merged = merged.merge(PartStatistics.from_fields(part, *args))
    np.testing.assert_array_equal(merged.hist_counts, whole.hist_counts)
    assert merged.hist_counts.sum() == values[:, 1].size
    np.testing.assert_allclose(merged.log.mean, whole.log.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.linear.std, whole.linear.std, rtol=1e-10)
