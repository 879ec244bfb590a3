"""A forecaster for a training store: its normaliser, its grid and its channels, in one place.

Training makes a fresh forecaster (:func:`aircast.training.loop.build_model`) and a checkpoint
gives a trained one back (:func:`aircast.training.checkpoint.load_forecaster`); both are made
by :func:`new_forecaster`, so that a loaded model is the very network that was trained, on the
same store's statistics.
"""

from __future__ import annotations

import numpy as np
import torch

from aircast.data.dataset import Channels
from aircast.model.forecaster import DiurnalMean, Forecaster, ModelShape
from aircast.model.normaliser import Normaliser
from aircast.store.reader import TrainingStore


def normaliser_of(store: TrainingStore, channels: tuple[str, ...]) -> Normaliser:
    """The store's training statistics for ``channels``, as a module with buffers."""
    stats = store.statistics
    idx = [stats.channels.index(c) for c in channels]

    def pick(a: np.ndarray, fill: float) -> torch.Tensor:
        values = np.asarray(a, dtype="float64")[idx]
        return torch.from_numpy(np.where(np.isfinite(values), values, fill))

    return Normaliser(
        channels,
        pick(stats.mean, 0.0),
        pick(stats.std, 1.0),
        pick(stats.log_mean, 0.0),
        pick(stats.log_std, 1.0),
        pick(stats.log_offset, 1.0),
    )


def new_forecaster(
    store: TrainingStore,
    channels: Channels,
    shape: ModelShape,
    *,
    normaliser: Normaliser | None = None,
    climatology: DiurnalMean | None = None,
) -> Forecaster:
    """An untrained forecaster of ``shape`` for ``channels`` on ``store``'s grid.

    Parameters
    ----------
    normaliser
        The inputs' normaliser (default: :func:`normaliser_of` the store for
        ``channels.inputs``).
    climatology
        The diurnal climatology of a ``climatology_anomaly`` baseline, or None.
    """
    grid = (store.ds.sizes["latitude"], store.ds.sizes["longitude"])
    return Forecaster(
        shape,
        channels.inputs,
        channels.targets,
        grid,
        normaliser if normaliser is not None else normaliser_of(store, channels.inputs),
        climatology,
    )
