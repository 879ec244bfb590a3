"""Verification of published forecasts once their verifying analyses have arrived.

Every daily run scores the earlier forecasts whose valid times the training store now holds
(the store is extended day by day with ERA5 and EAC4, which arrive days after real time), lead
by lead: a lead is scored once, when its analysis is in the store, so a forecast is verified in
pieces as the analyses arrive and never twice.

Each (init, lead, channel) gets latitude-weighted RMSE, MAE and bias, in published units (PM in
µg m⁻³), for the model and for its baselines on the same cells: persistence (the published lead
0), the training climatology (by day of year and hour, or hour of day for short training
periods; see :mod:`aircast.evaluation.baselines`), and the CAMS global forecast of the same
00 UTC run where it is in the raw cache.

The scores go to a CSV table (``paths.root/verification/scores.csv``): one row per init, lead,
channel and model, appended by rewriting the file under a temporary name and renaming it into
place, so that a killed run leaves the previous table whole.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aircast.align.grid import TargetGrid
from aircast.align.units import published_units
from aircast.config import AirCastConfig
from aircast.evaluation.baselines import training_climate
from aircast.evaluation.metrics import bias, mae, rmse
from aircast.forecast.reader import open_forecast
from aircast.sources.cams import CAMS_FORECAST_SOURCE, cams_channels
from aircast.sources.ingest import raw_cache
from aircast.store.reader import TrainingStore
from aircast.vocab import parse_channel

COLUMNS = (
    "init_time",
    "lead_hours",
    "valid_time",
    "channel",
    "units",
    "model",
    "rmse",
    "mae",
    "bias",
)
MODELS = ("aircast", "persistence", "climatology", "cams")


def scores_path(config: AirCastConfig) -> Path:
    """Where a recipe's verification scores are kept."""
    return config.paths.root / "verification" / "scores.csv"


def read_scores(path: Path) -> pd.DataFrame:
    """The scores table (empty, with its columns, when there is none yet)."""
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    return pd.read_csv(path, parse_dates=["init_time", "valid_time"])


def _write_atomically(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    table.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M")
    os.replace(tmp, path)


@dataclass(frozen=True)
class Verification:
    """What one verification pass did."""

    scored: pd.DataFrame
    """The rows added by this pass."""
    path: Path
    pending: int
    """(init, lead) pairs still waiting for their analyses."""

    def markdown(self, channels: Sequence[str] = ("pm2p5", "pm10")) -> str:
        """RMSE of the model and its baselines per lead (pooled over the inits scored now)."""
        if self.scored.empty:
            return (
                "No forecast lead was newly verifiable: "
                f"{self.pending} (init, lead) pairs wait for their analyses."
            )
        lines = [
            f"## Verification: {self.scored['init_time'].nunique()} inits, "
            f"{len(self.scored)} scores ({self.pending} leads still waiting)",
        ]
        for name in channels:
            rows = self.scored[self.scored["channel"] == name]
            if rows.empty:
                continue
            units = rows["units"].iloc[0]
            table = rows.pivot_table(index="lead_hours", columns="model", values="rmse")
            models = [m for m in MODELS if m in table.columns]
            lines += [
                "",
                f"### {name}: RMSE ({units}) by lead",
                "",
                "| lead (h) | " + " | ".join(models) + " |",
                "|---:|" + "---:|" * len(models),
            ]
            for lead, row in table.iterrows():
                cells = " | ".join(f"{row[m]:.3g}" for m in models)
                lines.append(f"| {int(lead)} | {cells} |")  # type: ignore[call-overload]
        return "\n".join(lines)


def _cams_run(
    config: AirCastConfig,
    day: dt.date,
    grid: TargetGrid,
    channels: Sequence[str],
    leads: Sequence[int],
) -> np.ndarray | None:
    """The CAMS forecast of ``day`` 00 UTC from the raw cache: (lead, channel, lat, lon), or
    None unless every file of the run is there."""
    run = CAMS_FORECAST_SOURCE.run(config, raw_cache(config), day, grid, channels, leads)
    return run.values if run.complete else None


def verify_published(
    config: AirCastConfig, store: TrainingStore, *, now: np.datetime64 | None = None
) -> Verification:
    """Score every published (init, lead) whose analysis the training store now holds.

    Parameters
    ----------
    now
        Only inits before this time are considered (the daily run's own init is not yet
        verifiable); default: every published init.
    """
    path = scores_path(config)
    done = read_scores(path)
    seen = {
        (np.datetime64(t, "ns"), int(h))
        for t, h in zip(done["init_time"], done["lead_hours"], strict=True)
    }
    forecast = open_forecast(config.forecast_url, storage_options=config.forecast.storage_options)
    store_times = store.times[store.available(store.times)]
    grid = store.grid
    weights = grid.area_weights()
    channels = [c for c in forecast.variables if c in store.channel_names]
    published = [published_units(parse_channel(c).variable) for c in channels]
    factors = np.array([factor for _, factor in published])
    units = [name for name, _ in published]
    rows: list[dict[str, object]] = []
    pending = 0
    climate = None
    for init in forecast.init_times:
        if now is not None and init >= now:
            continue
        run = forecast.forecast(init)
        leads = (run["lead_time"].values / np.timedelta64(1, "h")).astype(int)
        todo = []
        for lead in leads[1:]:
            if (np.datetime64(init, "ns"), int(lead)) in seen:
                continue
            if np.datetime64(init, "ns") + np.timedelta64(int(lead), "h") in store_times:
                todo.append(int(lead))
            else:
                pending += 1
        if not todo:
            continue
        valid: np.ndarray = np.array(
            [init + np.timedelta64(h, "h") for h in todo], "datetime64[ns]"
        )
        truth = store.read(valid).sel(channel=channels).values * factors[None, :, None, None]
        lead_index = [list(leads).index(h) for h in todo]
        model = np.stack([run[c].values[lead_index] for c in channels], axis=1)
        start = np.stack([run[c].values[0] for c in channels])
        if climate is None:
            train = (config.periods.train.start, config.periods.train.end)
            climate = training_climate(store, channels, train).climatology
        clim = climate.at(valid) * factors[None, :, None, None]
        day = dt.date.fromisoformat(str(np.datetime64(init, "D")))
        provided = cams_channels(channels)
        cams = _cams_run(config, day, grid, provided, todo) if provided else None
        candidates: dict[str, np.ndarray] = {
            "aircast": model,
            "persistence": np.broadcast_to(start, model.shape),
            "climatology": clim,
        }
        if cams is not None:
            full = np.full(model.shape, np.nan)
            for j, name in enumerate(provided):
                full[:, channels.index(name)] = cams[:, j] * factors[channels.index(name)]
            candidates["cams"] = full
        for name, values in candidates.items():
            scores = {
                "rmse": rmse(values, truth, weights, axis=()),
                "mae": mae(values, truth, weights, axis=()),
                "bias": bias(values, truth, weights, axis=()),
            }
            for i, lead in enumerate(todo):
                for c, channel in enumerate(channels):
                    if not np.isfinite(scores["rmse"][i, c]):
                        continue  # a baseline without this channel (CAMS: weather)
                    rows.append(
                        {
                            "init_time": pd.Timestamp(init),
                            "lead_hours": lead,
                            "valid_time": pd.Timestamp(valid[i]),
                            "channel": channel,
                            "units": units[c],
                            "model": name,
                            **{k: float(v[i, c]) for k, v in scores.items()},
                        }
                    )
    scored = pd.DataFrame(rows, columns=list(COLUMNS))
    if rows:
        table = pd.concat([done, scored], ignore_index=True) if len(done) else scored
        _write_atomically(table.sort_values(["init_time", "lead_hours", "channel", "model"]), path)
    return Verification(scored, path, pending)


def skill_summary(
    table: pd.DataFrame,
    channels: Sequence[str] = ("pm2p5", "pm10"),
    leads: Sequence[int] = (3, 24, 48, 72),
) -> str:
    """A short text table: mean RMSE over the verified inits, per channel, model and lead."""
    if table.empty:
        return "no forecast verified yet"
    lines = []
    for name in channels:
        rows = table[(table["channel"] == name) & table["lead_hours"].isin(leads)]
        if rows.empty:
            continue
        units = rows["units"].iloc[0]
        pivot = rows.pivot_table(index="model", columns="lead_hours", values="rmse")
        counts = rows[rows["model"] == "aircast"].groupby("lead_hours")["init_time"].nunique()
        shown = [h for h in leads if h in pivot.columns]
        lines.append(f"{name} RMSE ({units}), mean over the forecasts verified at each lead")
        lines.append(f"  {'model':<12}" + "".join(f"{f'{h} h':>9}" for h in shown))
        for model in (m for m in MODELS if m in pivot.index):
            cells = "".join(f"{pivot.loc[model, h]:>9.2f}" for h in shown)
            lines.append(f"  {model:<12}{cells}")
        lines.append(
            f"  {'(forecasts)':<12}" + "".join(f"{int(counts.get(h, 0)):>9d}" for h in shown)
        )
    return "\n".join(lines)
