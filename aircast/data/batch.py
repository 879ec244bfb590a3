"""The typed batch that crosses the data → model boundary, and validates itself.

A batch pairs initial conditions with the targets at one lead time per sample. Values are in
physical units (the store's); the model's normaliser maps them into the space it learns in.
Channel order is part of the contract: a batch built for other channels is refused, never
silently misread.

A batch knows when and where it is: its initial time and its grid. The hour of day and the day
of year the model is conditioned on are derived from the time (:func:`hour_and_day_of_year`),
never carried beside it, so they cannot disagree with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from aircast.align.grid import TargetGrid
from aircast.align.time import hour_and_day_of_year
from aircast.errors import AirCastError


class BatchError(AirCastError, ValueError):
    """A batch whose shapes, dtypes or channels do not match what the model expects."""


@dataclass(frozen=True)
class Batch:
    """Initial conditions, their time and grid, lead times and (when training) targets.

    Attributes
    ----------
    inputs
        float32 (B, C_in, H, W): the state at the initial time, channels in ``input_channels``
        order, physical units.
    lead_hours
        float32 (B,): lead time of each sample's target, hours.
    init_time
        datetime64[ns] (B,): the initial time of each sample, UTC. A numpy array, not a
        tensor: it stays on the host when the batch moves to a device (:meth:`to`), the
        DataLoader's collate stacks it like any array, and the calendar of a time is numpy's.
    grid
        The grid of ``inputs`` and ``targets`` (its shape is (H, W)).
    input_channels
        Channel names of ``inputs``.
    target_channels
        Channel names the model predicts (weather then pollutants).
    targets
        float32 (B, C_out, H, W) in ``target_channels`` order, or None (inference).
    """

    inputs: torch.Tensor
    lead_hours: torch.Tensor
    init_time: np.ndarray
    grid: TargetGrid
    input_channels: tuple[str, ...]
    target_channels: tuple[str, ...]
    targets: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.inputs.ndim != 4:
            raise BatchError(
                f"inputs must be (batch, channel, lat, lon); got shape {tuple(self.inputs.shape)}"
            )
        b, c, h, w = self.inputs.shape
        if c != len(self.input_channels):
            raise BatchError(
                f"inputs have {c} channels but input_channels names {len(self.input_channels)}"
            )
        if len(set(self.input_channels)) != c:
            raise BatchError("input_channels has duplicates")
        if self.lead_hours.shape != (b,):
            raise BatchError(
                f"lead_hours must have shape ({b},); got {tuple(self.lead_hours.shape)}"
            )
        if not isinstance(self.init_time, np.ndarray) or self.init_time.shape != (b,):
            raise BatchError(
                f"init_time must be a numpy array of shape ({b},); got "
                f"{tuple(np.shape(self.init_time))}"
            )
        if self.init_time.dtype != np.dtype("datetime64[ns]"):
            raise BatchError(f"init_time must be datetime64[ns]; got {self.init_time.dtype}")
        if self.grid.shape != (h, w):
            raise BatchError(
                f"the grid is {self.grid.shape[0]}×{self.grid.shape[1]} cells but the inputs "
                f"are on {h}×{w}"
            )
        if self.targets is not None:
            expected = (b, len(self.target_channels), h, w)
            if tuple(self.targets.shape) != expected:
                raise BatchError(
                    f"targets must have shape {expected} (batch, target channels, "
                    f"lat, lon); got {tuple(self.targets.shape)}"
                )
        # the lead too: a float64 lead would reach the model's float32 time embedding and
        # fail there with a dtype error that names neither the batch nor the field
        for name in ("inputs", "targets", "lead_hours"):
            value = getattr(self, name)
            if value is not None and value.dtype != torch.float32:
                raise BatchError(f"{name} must be float32; got {value.dtype}")
        if not set(self.target_channels) <= set(self.input_channels):
            missing = sorted(set(self.target_channels) - set(self.input_channels))
            raise BatchError(
                f"target channels {missing} are not among the input channels; a "
                "forecast starts from every channel it predicts"
            )

    @property
    def size(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def init_hour_of_day(self) -> torch.Tensor:
        """float32 (B,) on the inputs' device: UTC hour of ``init_time`` (0-21)."""
        return self._calendar_feature(0)

    @property
    def init_day_of_year(self) -> torch.Tensor:
        """float32 (B,) on the inputs' device: day of year of ``init_time`` (1-366)."""
        return self._calendar_feature(1)

    def _calendar_feature(self, which: int) -> torch.Tensor:
        values = hour_and_day_of_year(self.init_time)[which].astype(np.float32)
        return torch.from_numpy(values).to(self.inputs.device)

    def check_channels(
        self, input_channels: tuple[str, ...], target_channels: tuple[str, ...]
    ) -> None:
        """Refuse a batch whose channel order differs from the model's."""
        if self.input_channels != input_channels:
            raise BatchError(
                f"the batch's input channels {list(self.input_channels)} are not the "
                f"model's {list(input_channels)}; build batches from the store the "
                "model was trained on"
            )
        if self.target_channels != target_channels:
            raise BatchError(
                f"the batch's target channels {list(self.target_channels)} are not "
                f"the model's {list(target_channels)}"
            )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch with its tensors on ``device`` (its time and grid stay on the host)."""
        targets = self.targets
        return replace(
            self,
            inputs=self.inputs.to(device, non_blocking=non_blocking),
            lead_hours=self.lead_hours.to(device, non_blocking=non_blocking),
            targets=None if targets is None else targets.to(device, non_blocking=non_blocking),
        )
