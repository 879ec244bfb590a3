"""What a config asks of its training store: the :class:`Layout` every build stage works from.

The channels in store order and the dataset each comes from, the target grid, the recipe's
span and its parts, the recipe fingerprint, and the log offsets and histogram edges of the
statistics: derived from the config once, so that the stages (:mod:`aircast.store.build`),
their inputs (:mod:`aircast.store.inputs`) and the day loading (:mod:`aircast.store.days`)
agree on them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aircast.align.grid import TargetGrid
from aircast.align.time import STEP_HOURS
from aircast.config import TRAINING_SOURCE, AirCastConfig
from aircast.store.schema import StoreError, recipe_fingerprint, recipe_of
from aircast.store.stats import HIST_BINS, LogScale, histogram_edges, log_scale
from aircast.vocab import ERA5_PRESSURE, ERA5_SINGLE, Channel, LevelType, Role

#: Time steps of one day on the store's axis.
STEPS_PER_DAY = 24 // STEP_HOURS


def source_dataset(channel: Channel) -> str:
    """The dataset a channel's training values come from."""
    if channel.spec.role is Role.WEATHER:
        return ERA5_PRESSURE if channel.spec.level_type is LevelType.PRESSURE else ERA5_SINGLE
    return TRAINING_SOURCE[channel.spec.role][0]


@dataclass(frozen=True)
class Layout:
    """Everything the stages derive from a config, computed in one place.

    Attributes
    ----------
    channels
        In store order (weather, pollutants, static).
    sources
        The dataset each channel comes from, same order.
    first_day, last_day
        The recipe's span (first and last day over all periods).
    positive
        Indices of the ``positive`` channels; ``offsets`` their log offsets, shape (P,).
    pollutants
        Indices of the pollutant channels; ``edges`` their histogram edges, shape
        (n_pollutants, HIST_BINS + 1).
    """

    config: AirCastConfig
    url: str
    storage_options: Mapping[str, Any]
    channels: tuple[Channel, ...]
    sources: tuple[str, ...]
    grid: TargetGrid
    first_day: dt.date
    last_day: dt.date
    part_days: int
    recipe: Mapping[str, Any]
    fingerprint: str
    positive: tuple[int, ...]
    offsets: np.ndarray
    pollutants: tuple[int, ...]
    edges: np.ndarray

    @classmethod
    def from_config(cls, config: AirCastConfig) -> Layout:
        channels = tuple(config.variables.channels())
        first, last = config.periods.span()
        positive = tuple(i for i, c in enumerate(channels) if c.spec.positive)
        offsets = np.array(
            [log_scale_of(channels[i]).offset for i in positive], dtype=np.float64
        ).reshape(-1)
        pollutants = tuple(i for i, c in enumerate(channels) if c.spec.role is Role.POLLUTANT)
        edges = np.array([histogram_edges(channels[i]) for i in pollutants], np.float64).reshape(
            len(pollutants), HIST_BINS + 1
        )
        recipe = recipe_of(config)
        return cls(
            config=config,
            url=config.store_url,
            storage_options=dict(config.store.storage_options),
            channels=channels,
            sources=tuple(source_dataset(c) for c in channels),
            grid=TargetGrid.from_config(config),
            first_day=first,
            last_day=last,
            part_days=config.store.part_days,
            recipe=recipe,
            fingerprint=recipe_fingerprint(recipe),
            positive=positive,
            offsets=offsets,
            pollutants=pollutants,
            edges=edges,
        )

    @property
    def n_parts(self) -> int:
        days = (self.last_day - self.first_day).days + 1
        return int(-(-days // self.part_days))

    def part_range(self, index: int) -> tuple[dt.date, dt.date]:
        """First and last day of part ``index``."""
        if not 0 <= index < self.n_parts:
            raise StoreError(
                f"part {index} does not exist: the recipe's {self.first_day}..{self.last_day} "
                f"makes parts 0..{self.n_parts - 1} of {self.part_days} days"
            )
        first = self.first_day + dt.timedelta(days=index * self.part_days)
        last = min(first + dt.timedelta(days=self.part_days - 1), self.last_day)
        return first, last

    def time_index(self, day: dt.date) -> int:
        """Index on the store's time axis of 00 UTC of ``day``."""
        return int((day - self.first_day).days * STEPS_PER_DAY)

    def training(self, times: np.ndarray) -> np.ndarray:
        """Which ``times`` fall in the training period, bool, shape (n,)."""
        train = self.config.periods.train
        start = np.datetime64(train.start.isoformat(), "ns")
        end = np.datetime64((train.end + dt.timedelta(days=1)).isoformat(), "ns")
        mask: np.ndarray = (times >= start) & (times < end)
        return mask


def log_scale_of(channel: Channel) -> LogScale:
    """The log scale of a ``positive`` channel."""
    scale = log_scale(channel)
    assert scale is not None
    return scale
