"""Training samples read from the training store.

A sample pairs the state at an initial time t with the target channels at t + lead, for every
(t, lead) where both are in the same period and neither is a missing time. Reading a sample is
two chunk reads (one time step holds every channel), so worker processes keep the model fed
without any Python loop over channels or pixels; the zarr array is opened lazily in each
worker, never pickled with the dataset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset

from aircast.align.time import STEP_HOURS
from aircast.data.batch import Batch
from aircast.store.integrity import DECODE_ERRORS
from aircast.store.reader import TrainingStore, open_store
from aircast.vocab import Role, parse_channel


@dataclass(frozen=True)
class Channels:
    """The model's view of the store's channels."""

    inputs: tuple[str, ...]
    targets: tuple[str, ...]

    @classmethod
    def of_store(cls, names: Sequence[str], *, pollutants_only: bool = False) -> Channels:
        """Inputs: every store channel. Targets: weather then pollutants (or pollutants only,
        for the single-task ablation: the weather is then an input only)."""
        roles = {n: parse_channel(n).spec.role for n in names}
        weather = tuple(n for n in names if roles[n] is Role.WEATHER)
        pollutants = tuple(n for n in names if roles[n] is Role.POLLUTANT)
        return cls(tuple(names), pollutants if pollutants_only else weather + pollutants)


def sample_index(
    times: np.ndarray, missing: np.ndarray, start: dt.date, end: dt.date, lead_hours: Sequence[int]
) -> np.ndarray:
    """All (init index, target index, lead) triples inside ``start``..``end``.

    Parameters
    ----------
    times
        The store's time axis, datetime64[ns], shape (T,).
    missing
        Times without data.

    Returns
    -------
    numpy.ndarray
        int64, shape (N, 3).
    """
    first = np.datetime64(start.isoformat(), "ns")
    last = np.datetime64((end + dt.timedelta(days=1)).isoformat(), "ns")
    inside = (times >= first) & (times < last) & ~np.isin(times, missing)
    step = (times[1] - times[0]) / np.timedelta64(1, "h") if times.size > 1 else STEP_HOURS
    rows = []
    for lead in lead_hours:
        shift = int(lead // step)
        if lead % step:
            raise ValueError(f"lead {lead} h is not a multiple of the store's {step:g} h step")
        init = np.flatnonzero(inside[: times.size - shift] & inside[shift:])
        rows.append(np.stack([init, init + shift, np.full_like(init, lead)], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)


class StoreSamples(Dataset[dict[str, Any]]):
    """(state at t, targets at t + lead) samples of one period of a training store.

    Parameters
    ----------
    url
        Store URL (local path or fsspec URL).
    period
        (first day, last day), inclusive.
    lead_hours
        Leads to draw targets at (multiples of the store's 3-hour step).
    channels
        Input and target channel names (targets a subset of inputs).
    in_memory
        Load the period's fields once (small stores: the demo); otherwise read per sample.
    """

    def __init__(
        self,
        url: str,
        period: tuple[dt.date, dt.date],
        lead_hours: Sequence[int],
        channels: Channels,
        *,
        storage_options: dict[str, Any] | None = None,
        in_memory: bool = False,
    ) -> None:
        self.url = url
        self.storage_options = storage_options
        store = open_store(url, storage_options)
        self.times = store.times
        self.grid = store.grid
        self.index = sample_index(
            store.times, store.missing_times, period[0], period[1], lead_hours
        )
        names = store.channel_names
        missing = [c for c in channels.inputs if c not in names]
        if missing:
            raise ValueError(f"channels {missing} are not in the store at {url}")
        self.input_index = np.array([names.index(c) for c in channels.inputs])
        self.target_index = np.array([channels.inputs.index(c) for c in channels.targets])
        self.channels = channels
        self._fields: Any = None
        self._store: Any = None
        self._memory: np.ndarray | None = None
        self._memory_offset = 0
        if in_memory and len(self.index):
            lo, hi = int(self.index[:, 0].min()), int(self.index[:, 1].max()) + 1
            fields = store.group["fields"]
            assert isinstance(fields, zarr.Array)
            try:
                self._memory = np.asarray(fields[lo:hi])[:, self.input_index]
            except DECODE_ERRORS as exc:
                raise store.decode_failure(fields, exc, range(lo, hi)) from exc
            self._memory_offset = lo

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def _state(self, i: int) -> np.ndarray:
        if self._memory is not None:
            state: np.ndarray = self._memory[i - self._memory_offset]
            return state
        if self._fields is None:  # opened in the worker that reads, not pickled across
            self._store = TrainingStore(self.url, self.storage_options)
            self._fields = self._store.group["fields"]
        try:
            state = np.asarray(self._fields[i])[self.input_index]
        except DECODE_ERRORS as exc:  # a bare codec error would name no file
            raise self._store.decode_failure(self._fields, exc, [i]) from exc
        return state

    def __getitem__(self, k: int) -> dict[str, Any]:
        t0, t1, lead = (int(v) for v in self.index[k])
        return {
            "inputs": self._state(t0),
            "targets": self._state(t1)[self.target_index],
            "lead_hours": float(lead),
            "init_time": self.times[t0],
        }

    def collate(self, samples: list[dict[str, Any]]) -> Batch:
        """Stack samples into a :class:`Batch` (use as the DataLoader's ``collate_fn``)."""
        return Batch(
            inputs=torch.from_numpy(np.stack([s["inputs"] for s in samples])).float(),
            targets=torch.from_numpy(np.stack([s["targets"] for s in samples])).float(),
            lead_hours=torch.tensor([s["lead_hours"] for s in samples], dtype=torch.float32),
            init_time=np.array([s["init_time"] for s in samples], dtype="datetime64[ns]"),
            grid=self.grid,
            input_channels=self.channels.inputs,
            target_channels=self.channels.targets,
        )
