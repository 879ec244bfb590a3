"""Mergeable normalisation statistics and fixed pollutant histograms.

Each build part summarises its training-period values into :class:`PartStatistics` (float64
counts, means and Chan-style M2 sums, in linear and log space, plus histogram counts); the
finalise stage merges the parts *in part order*, so the result does not depend on which part
finished first. Merging is exact up to float64 rounding (Chan, Golub & LeVeque 1979), so the
merged mean and standard deviation equal a single pass over all values to ~1e-12 relative.

The log transform of a ``positive`` channel is ``log(max(x, 0) + offset)`` with a fixed
per-variable offset (:data:`LOG_SCALES`): small against the values that matter (a tenth of a
µg m-3 of particulate matter, a hundredth of a millimetre of rain) so that it only keeps the
log finite at zero, and fixed so that every part, and the model, use the same one. The clamp
at zero makes packing noise below zero harmless.

Histogram edges are fixed too: ``HIST_BINS`` uniform bins in log space from ``log(offset)``
(the smallest value the transform can give) to ``log(upper + offset)``, with ``upper`` a
physical upper bound of the pollutant, plus an underflow and an overflow bin; so parts agree
on them without a pre-pass over the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from aircast.vocab import Channel

#: Bins between the histogram's edges (plus one underflow and one overflow bin).
HIST_BINS = 100


@dataclass(frozen=True)
class LogScale:
    """How a non-negative variable is log-transformed and histogrammed.

    Attributes
    ----------
    offset
        Added before the log, in the variable's units: about the smallest amount that
        matters physically.
    upper
        Physical upper bound of the histogram, in the variable's units; larger values fall
        in the overflow bin.
    """

    offset: float
    upper: float


#: Per vocabulary variable (every ``positive`` one), in the vocabulary's units.
LOG_SCALES: Mapping[str, LogScale] = MappingProxyType(
    {
        # weather
        "tp": LogScale(1e-5, 0.3),  # m per 3 h: 0.01 mm … 300 mm
        "blh": LogScale(10.0, 6000.0),  # m
        "tcwv": LogScale(0.1, 100.0),  # kg m-2
        "q": LogScale(1e-6, 0.04),  # kg kg-1
        "r": LogScale(1.0, 150.0),  # %
        # particulate matter, kg m-3: 0.1 µg m-3 … 10 000 µg m-3 (the densest dust storms)
        "pm1": LogScale(1e-10, 1e-5),
        "pm2p5": LogScale(1e-10, 1e-5),
        "pm10": LogScale(1e-10, 1e-5),
        # reactive gases, mass mixing ratio kg kg-1
        "go3": LogScale(1e-9, 2e-5),  # ~0.6 ppb … stratospheric maximum
        "no2": LogScale(1e-11, 1e-6),  # ~0.005 ppb … 500 ppb
        "no": LogScale(1e-11, 1e-6),
        "so2": LogScale(1e-11, 1e-5),  # … volcanic plumes
        "co": LogScale(1e-9, 1e-4),  # ~1 ppb … fire plumes
        # total columns, kg m-2
        "tcco": LogScale(1e-5, 0.1),
        "tcno2": LogScale(1e-8, 1e-3),
        "tc_no": LogScale(1e-9, 1e-4),
        "tcso2": LogScale(1e-8, 1e-2),
        "gtco3": LogScale(1e-5, 2e-2),
    }
)


def log_scale(channel: Channel) -> LogScale | None:
    """The channel's log scale, or None when the channel is not ``positive``.

    Raises
    ------
    KeyError
        For a positive variable missing from :data:`LOG_SCALES` (add it there).
    """
    if not channel.spec.positive:
        return None
    try:
        return LOG_SCALES[channel.variable]
    except KeyError:
        raise KeyError(
            f"positive variable {channel.variable!r} has no log offset; add it to "
            "aircast.store.stats.LOG_SCALES"
        ) from None


def log_transform(values: np.ndarray, offset: float | np.ndarray) -> np.ndarray:
    """``log(max(x, 0) + offset)`` in float64, shape unchanged (offset broadcasts)."""
    x = np.asarray(values, dtype=np.float64)
    out: np.ndarray = np.log(np.maximum(x, 0.0) + offset)
    return out


def histogram_edges(channel: Channel) -> np.ndarray:
    """Fixed log-space edges of a positive channel, float64, shape (HIST_BINS + 1,)."""
    scale = log_scale(channel)
    if scale is None:
        raise ValueError(f"channel {channel.name!r} is not positive and has no histogram")
    edges: np.ndarray = np.linspace(
        np.log(scale.offset), np.log(scale.upper + scale.offset), HIST_BINS + 1
    )
    return edges


def histogram_counts(log_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``log_values`` (any shape) in the bins of ``edges``, int64 (len(edges) + 1,).

    Bin 0 is the underflow, bin ``len(edges)`` the overflow (see the store contract).
    """
    index = np.searchsorted(edges, np.ravel(log_values), side="right")
    counts: np.ndarray = np.bincount(index, minlength=edges.size + 1).astype(np.int64)
    return counts


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations (M2) of k series.

    Attributes
    ----------
    count
        int64, shape (k,).
    mean
        float64, shape (k,) (0 where count is 0).
    m2
        float64, shape (k,): sum of squared deviations from the mean.
    """

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, k: int) -> Moments:
        return cls(np.zeros(k, np.int64), np.zeros(k, np.float64), np.zeros(k, np.float64))

    @classmethod
    def from_array(cls, values: np.ndarray) -> Moments:
        """Moments of each series of ``values``, shape (n, k, ...) (series along axis 1).

        Every value counts; the caller passes finite values only.
        """
        k = values.shape[1]
        count = np.zeros(k, np.int64)
        mean = np.zeros(k, np.float64)
        m2 = np.zeros(k, np.float64)
        for i in range(k):
            # one series at a time keeps the float64 copy small
            x = np.asarray(values[:, i], dtype=np.float64)
            count[i] = x.size
            if x.size:
                mean[i] = x.mean()
                m2[i] = np.square(x - mean[i]).sum()
        return cls(count, mean, m2)

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets of values together (Chan et al.'s pairwise update)."""
        n = self.count + other.count
        safe = np.where(n > 0, n, 1).astype(np.float64)
        delta = other.mean - self.mean
        mean = np.where(n > 0, self.mean + delta * (other.count / safe), 0.0)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * (other.count / safe))
        return Moments(n, mean, np.where(n > 0, m2, 0.0))

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (ddof 0), NaN where count is 0, shape (k,)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            std: np.ndarray = np.where(
                self.count > 0, np.sqrt(self.m2 / np.maximum(self.count, 1)), np.nan
            )
        return std

    @property
    def mean_or_nan(self) -> np.ndarray:
        """Mean, NaN where count is 0, shape (k,)."""
        out: np.ndarray = np.where(self.count > 0, self.mean, np.nan)
        return out


@dataclass(frozen=True)
class PartStatistics:
    """What one build part contributes to the store's statistics.

    Attributes
    ----------
    linear
        Moments of every channel, k = n_channels.
    log
        Moments of ``log_transform`` of the positive channels, k = n_positive.
    hist_counts
        int64, shape (n_pollutants, HIST_BINS + 2).
    """

    linear: Moments
    log: Moments
    hist_counts: np.ndarray

    @classmethod
    def empty(cls, n_channels: int, n_positive: int, n_pollutants: int) -> PartStatistics:
        return cls(
            Moments.empty(n_channels),
            Moments.empty(n_positive),
            np.zeros((n_pollutants, HIST_BINS + 2), np.int64),
        )

    @classmethod
    def from_fields(
        cls,
        values: np.ndarray,
        positive: Sequence[int],
        offsets: np.ndarray,
        pollutants: Sequence[int],
        edges: np.ndarray,
    ) -> PartStatistics:
        """Statistics of training fields.

        Parameters
        ----------
        values
            float32, shape (n_times, n_channels, n_lat, n_lon), finite.
        positive
            Channel indices of the positive channels, length n_positive.
        offsets
            Their log offsets, float64, shape (n_positive,).
        pollutants
            Channel indices of the pollutant channels (each also positive), length n_pol.
        edges
            Their histogram edges, float64, shape (n_pol, HIST_BINS + 1).
        """
        linear = Moments.from_array(values)
        logs = np.empty((values.shape[0], len(positive), *values.shape[2:]), np.float64)
        for j, c in enumerate(positive):
            logs[:, j] = log_transform(values[:, c], offsets[j])
        log = Moments.from_array(logs)
        counts = np.zeros((len(pollutants), HIST_BINS + 2), np.int64)
        for j, c in enumerate(pollutants):
            counts[j] = histogram_counts(logs[:, list(positive).index(c)], edges[j])
        return cls(linear, log, counts)

    def merge(self, other: PartStatistics) -> PartStatistics:
        return PartStatistics(
            self.linear.merge(other.linear),
            self.log.merge(other.log),
            self.hist_counts + other.hist_counts,
        )
