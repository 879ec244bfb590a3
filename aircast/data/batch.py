"""The typed batch that crosses the data → model boundary, and validates itself.

A batch pairs initial conditions with the targets at one lead time per sample. Values are in
physical units (the store's); the model's normaliser maps them into the space it learns in.
Channel order is part of the contract: a batch built for other channels is refused, never
silently misread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from aircast.errors import AirCastError


class BatchError(AirCastError, ValueError):
    """A batch whose shapes, dtypes or channels do not match what the model expects."""


@dataclass(frozen=True)
class Batch:
    """Initial conditions, lead times and (when training) targets.

    Attributes
    ----------
    inputs
        float32 (B, C_in, H, W): the state at the initial time, channels in ``input_channels``
        order, physical units.
    lead_hours
        float32 (B,): lead time of each sample's target, hours.
    init_hour_of_day
        float32 (B,): UTC hour of the initial time (0-21).
    init_day_of_year
        float32 (B,): day of year of the initial time (1-366).
    input_channels
        Channel names of ``inputs``.
    target_channels
        Channel names the model predicts (weather then pollutants).
    targets
        float32 (B, C_out, H, W) in ``target_channels`` order, or None (inference).
    """

    inputs: torch.Tensor
    lead_hours: torch.Tensor
    init_hour_of_day: torch.Tensor
    init_day_of_year: torch.Tensor
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
        for name in ("lead_hours", "init_hour_of_day", "init_day_of_year"):
            value = getattr(self, name)
            if value.shape != (b,):
                raise BatchError(f"{name} must have shape ({b},); got {tuple(value.shape)}")
        if self.targets is not None:
            expected = (b, len(self.target_channels), h, w)
            if tuple(self.targets.shape) != expected:
                raise BatchError(
                    f"targets must have shape {expected} (batch, target channels, "
                    f"lat, lon); got {tuple(self.targets.shape)}"
                )
        # the time tensors too: a float64 lead would reach the model's float32 time embedding
        # and fail there with a dtype error that names neither the batch nor the field
        for name in ("inputs", "targets", "lead_hours", "init_hour_of_day", "init_day_of_year"):
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
        """The same batch on ``device``."""
        targets = self.targets
        return replace(
            self,
            inputs=self.inputs.to(device, non_blocking=non_blocking),
            lead_hours=self.lead_hours.to(device, non_blocking=non_blocking),
            init_hour_of_day=self.init_hour_of_day.to(device, non_blocking=non_blocking),
            init_day_of_year=self.init_day_of_year.to(device, non_blocking=non_blocking),
            targets=None if targets is None else targets.to(device, non_blocking=non_blocking),
        )
