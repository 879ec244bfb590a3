"""Scorecards: the model and its baselines, verified against the store, lead by lead.

:func:`evaluate` runs the checkpoint's forecaster with :func:`aircast.forecast.rollout.rollout`
from every 00 UTC initial time of a period (several initial times per batch), and scores it
and the baselines (:mod:`aircast.evaluation.baselines`) against the store's analyses at the
valid times that the store holds, for every target channel and every lead (3 h … the rollout
horizon). Scores are in the units people read (particulate matter in µg m-3,
:func:`aircast.align.units.published_units`).

**Same cells, same times.** For each channel and lead, a cell of an initial time is scored
only where the truth and every model that forecasts that channel at that lead have a value;
all models are then scored on exactly those cells. The CAMS forecast covers the pollutants up
to ``ingest.forecast_lead_hours``: where one of its runs was not delivered, that run's
pollutant cells are left out for every model.

**Streaming.** Nothing of size (initial times × leads × grid) is kept: each lead of each batch
adds its weighted sums to a tally (the pieces of :mod:`aircast.evaluation.metrics`), and the
scores are the ratios of the sums at the end. RMSE, MAE and bias are pooled over every scored
cell of every initial time; ACC is the mean of the per-field ACCs; contingency counts add up.

The scorecard (:func:`compute_scorecard`) is an ``xarray.Dataset``:

- ``score (model, variable, lead_time, metric)``: metrics of :data:`METRICS`; ``variable``
  holds the channel names (``pm2p5``, ``go3_925``); ``lead_time`` is a timedelta with a
  ``lead_hours`` coordinate. WHO scores are defined for PM2.5 and PM10 at the end of each
  forecast day (24, 48, 72 h: the 24-hour mean of leads 3-24, 27-48, 51-72) and NaN elsewhere.
- ``n_fields (variable, lead_time)``: initial times scored; ``extreme_cells`` the same
  shape: the area-weighted number of cells behind ``extreme_rmse``.
- ``mae_map (model, variable, map_lead_time, latitude, longitude)``: MAE of each cell.
- coordinates ``units``, ``extreme_threshold`` (the training 99th percentile) and
  ``who_guideline`` per variable; attributes say how everything was made.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr

import aircast
from aircast.align.time import STEP_HOURS
from aircast.align.units import published_units
from aircast.config import AirCastConfig
from aircast.data.batch import Batch
from aircast.errors import AirCastError
from aircast.evaluation import metrics
from aircast.evaluation.baselines import (
    CamsForecast,
    CamsProvider,
    TrainingClimate,
    persistence,
    training_climate,
)
from aircast.forecast.rollout import rollout
from aircast.model.forecaster import Forecaster
from aircast.sources.cams import cams_channels
from aircast.store.reader import TrainingStore, open_store
from aircast.training.checkpoint import load_checkpoint, load_forecaster
from aircast.training.loop import pick_device
from aircast.vocab import parse_channel

Period = Literal["test", "validation"]
PERIODS: tuple[Period, ...] = ("test", "validation")
MODELS = ("aircast", "persistence", "climatology", "cams_forecast")
METRICS = (
    "rmse",
    "mae",
    "bias",
    "acc",
    "extreme_rmse",
    "who_hit_rate",
    "who_false_alarm_ratio",
    "who_csi",
    "who_hits",
    "who_misses",
    "who_false_alarms",
)

LOG = logging.getLogger(__name__)


class EvaluationError(AirCastError, ValueError):
    """An evaluation that cannot run as asked (no initial times in the period, bad period)."""


# ---------------------------------------------------------------------------------------------
# Initial times and truth


def init_times(store: TrainingStore, first: dt.date, last: dt.date) -> np.ndarray:
    """The 00 UTC times of ``first``..``last`` that the store holds data for, datetime64[ns]."""
    days = np.arange(
        np.datetime64(first.isoformat(), "D"), np.datetime64(last.isoformat(), "D") + 1
    )
    wanted = days.astype("datetime64[ns]")
    inside = wanted[np.isin(wanted, store.times)]
    return inside[store.available(inside)] if inside.size else inside


def _truth(store: TrainingStore, index: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Store fields of channels ``index`` at ``valid`` (B, L) → (B, L, C, H, W) float64.

    NaN where the valid time is beyond the store or missing from it.
    """
    flat = valid.ravel()
    have = np.isin(flat, store.times)
    have[have] = store.available(flat[have])
    n_lat, n_lon = store.ds.sizes["latitude"], store.ds.sizes["longitude"]
    out = np.full((flat.size, index.size, n_lat, n_lon), np.nan)
    if have.any():
        unique, inverse = np.unique(flat[have], return_inverse=True)
        values = store.read(unique).values[:, index]
        out[have] = values[inverse]
    return out.reshape(*valid.shape, index.size, n_lat, n_lon)


# ---------------------------------------------------------------------------------------------
# The tally: sums that the scores are ratios of


@dataclass
class _Tally:
    """Weighted sums per (model, channel, lead), and per cell at the map leads."""

    n_models: int
    n_channels: int
    n_leads: int
    grid: tuple[int, int]
    map_leads: tuple[int, ...]

    def __post_init__(self) -> None:
        shape = (self.n_models, self.n_channels, self.n_leads)

        def z() -> np.ndarray:
            return np.zeros(shape)

        self.abs, self.sq, self.err, self.weight = z(), z(), z(), z()
        self.ext_sq, self.ext_weight = z(), z()
        self.acc_sum, self.acc_n = z(), z()
        self.hits, self.misses, self.false_alarms = z(), z(), z()
        self.who = np.zeros(shape, bool)
        self.fields = np.zeros((self.n_channels, self.n_leads), np.int64)
        map_shape = (self.n_models, self.n_channels, len(self.map_leads), *self.grid)
        self.map_abs, self.map_n = np.zeros(map_shape), np.zeros(map_shape)

    def add(
        self,
        j: int,
        lead: int,
        forecasts: Sequence[np.ndarray],
        truth: np.ndarray,
        climatology: np.ndarray,
        weights: np.ndarray,
        thresholds: np.ndarray,
    ) -> None:
        """Add one lead of one batch: every array (B, C, H, W), already masked alike."""
        self.fields[:, j] += np.isfinite(truth).any(axis=(2, 3)).sum(axis=0)
        extreme = truth > thresholds.reshape(1, -1, 1, 1)
        for m, f in enumerate(forecasts):
            error = f - truth
            for total, weight, values in (
                (self.abs, self.weight, np.abs(error)),
                (self.sq, None, error**2),
                (self.err, None, error),
                (self.ext_sq, self.ext_weight, np.where(extreme, error**2, np.nan)),
            ):
                part, part_weight = metrics.weighted_sums(values, weights, axis=0)
                total[m, :, j] += part
                if weight is not None:
                    weight[m, :, j] += part_weight
            per_field = metrics.acc_fields(f, truth, climatology, weights)
            self.acc_sum[m, :, j] += np.nansum(per_field, axis=0)
            self.acc_n[m, :, j] += np.isfinite(per_field).sum(axis=0)
            if lead in self.map_leads:
                k = self.map_leads.index(lead)
                finite = np.isfinite(error)
                self.map_abs[m, :, k] += np.where(finite, np.abs(error), 0.0).sum(axis=0)
                self.map_n[m, :, k] += finite.sum(axis=0)

    def add_who(
        self, j: int, channels: Sequence[int], counts: Sequence[metrics.Contingency]
    ) -> None:
        """Add the contingency counts of each model at lead index ``j`` (a day's end)."""
        for m, table in enumerate(counts):
            scored = table.hits + table.misses + table.false_alarms + table.correct_negatives
            for i, c in enumerate(channels):
                if scored[i] <= 0:
                    continue  # no cell: the model does not forecast it (CAMS unavailable)
                self.hits[m, c, j] += table.hits[i]
                self.misses[m, c, j] += table.misses[i]
                self.false_alarms[m, c, j] += table.false_alarms[i]
                self.who[m, c, j] = True

    def scores(self) -> np.ndarray:
        """(model, channel, lead, metric) in :data:`METRICS` order."""
        r = metrics.ratio
        table = metrics.Contingency(
            self.hits, self.misses, self.false_alarms, np.zeros_like(self.hits)
        )
        nan = np.full(self.hits.shape, np.nan)
        who = self.who
        values = {
            "rmse": np.sqrt(r(self.sq, self.weight)),
            "mae": r(self.abs, self.weight),
            "bias": r(self.err, self.weight),
            "acc": r(self.acc_sum, self.acc_n),
            "extreme_rmse": np.sqrt(r(self.ext_sq, self.ext_weight)),
            "who_hit_rate": np.where(who, table.hit_rate, nan),
            "who_false_alarm_ratio": np.where(who, table.false_alarm_ratio, nan),
            "who_csi": np.where(who, table.csi, nan),
            "who_hits": np.where(who, self.hits, nan),
            "who_misses": np.where(who, self.misses, nan),
            "who_false_alarms": np.where(who, self.false_alarms, nan),
        }
        return np.stack([values[name] for name in METRICS], axis=-1)

    def maps(self) -> np.ndarray:
        return metrics.ratio(self.map_abs, self.map_n)


# ---------------------------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True)
class _Setup:
    """What the scoring loop needs besides the model and the store."""

    inits: np.ndarray
    leads: tuple[int, ...]
    direct_hours: int
    climate: TrainingClimate
    cams: CamsForecast | None
    batch_size: int
    device: torch.device


def _units(channels: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Published units and factors (from store units) of each channel, factors shape (C,)."""
    pairs = [published_units(parse_channel(c).variable) for c in channels]
    return [u for u, _ in pairs], np.array([f for _, f in pairs], np.float64)


def _score(
    model: Forecaster, store: TrainingStore, setup: _Setup
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Run the model from every initial time and tally every model's errors.

    Returns
    -------
    (scores, n_fields, extreme_cells, maps, map_leads)
        scores (model, channel, lead, metric); n_fields (channel, lead); extreme_cells
        (channel, lead), the same for every model; maps (model, channel, map lead, lat, lon).
    """
    targets = model.target_channels
    store_index = np.array([store.channel_names.index(c) for c in targets])
    input_index = np.array([store.channel_names.index(c) for c in model.input_channels])
    _, factor = _units(targets)
    scale = factor.reshape(1, -1, 1, 1)
    weights = metrics.area_weights(
        np.asarray(store.ds["latitude"].values), float(store.attrs["grid"]["resolution"])
    )
    leads = setup.leads
    grid = (store.ds.sizes["latitude"], store.ds.sizes["longitude"])
    map_leads = tuple(h for h in (24,) if h in leads) or (leads[-1],)
    tally = _Tally(len(MODELS), len(targets), len(leads), grid, map_leads)
    thresholds = setup.climate.thresholds * factor
    cams = setup.cams
    cams_cols = (
        np.array([targets.index(c) for c in cams.channels])
        if cams is not None and cams.available
        else np.zeros(0, np.int64)
    )
    cams_last = max(cams.lead_hours) if cams is not None and cams.available else -1
    who_cols = [targets.index(c) for c in metrics.WHO_24H_GUIDELINES if c in targets]
    who_limits = np.array([metrics.WHO_24H_GUIDELINES[targets[c]] for c in who_cols])
    step = np.timedelta64(1, "h").astype("timedelta64[ns]")
    for start in range(0, setup.inits.size, setup.batch_size):
        inits = setup.inits[start : start + setup.batch_size]
        b = inits.size
        state = store.read(inits).values
        valid = inits[:, None] + np.asarray(leads)[None, :] * step
        truth = _truth(store, store_index, valid) * scale[:, None]
        clim_all = setup.climate.climatology.at(valid.ravel()).reshape(truth.shape) * scale[:, None]
        initial = np.asarray(state[:, store_index], np.float64) * scale
        held = persistence(initial, len(leads))
        cams_fields = (
            cams.fields(inits, leads) * scale[:, cams_cols][:, None]
            if cams_cols.size and cams is not None
            else None
        )
        batch = Batch(
            inputs=torch.from_numpy(np.ascontiguousarray(state[:, input_index])).float(),
            lead_hours=torch.zeros(b),
            init_time=inits.astype("datetime64[ns]"),
            grid=store.grid,
            input_channels=model.input_channels,
            target_channels=targets,
        ).to(setup.device)
        day: list[list[np.ndarray]] = []
        day_leads: list[int] = []
        with torch.inference_mode():
            steps = rollout(
                model,
                batch,
                max_lead_hours=leads[-1],
                direct_hours=setup.direct_hours,
            )
            for j, (lead, prediction) in enumerate(steps):
                assert lead == leads[j]
                aircast_f = prediction.values.float().cpu().numpy().astype(np.float64) * scale
                cams_f = np.full_like(aircast_f, np.nan)
                covered = np.zeros(len(targets), bool)
                if cams_fields is not None and lead <= cams_last:
                    cams_f[:, cams_cols] = cams_fields[:, j]
                    covered[cams_cols] = True
                forecasts = [aircast_f, held[:, j], clim_all[:, j], cams_f]
                truth_j, clim_j = truth[:, j], clim_all[:, j]
                # the same cells for every model: where the truth and every model covering
                # the channel have a value
                valid_cells = np.isfinite(truth_j)
                for f in forecasts[:3]:
                    valid_cells &= np.isfinite(f)
                valid_cells[:, covered] &= np.isfinite(cams_f[:, covered])
                masked = [np.where(valid_cells, f, np.nan) for f in forecasts]
                truth_j = np.where(valid_cells, truth_j, np.nan)
                tally.add(j, lead, masked, truth_j, clim_j, weights, thresholds)
                if who_cols:
                    day.append([truth_j[:, who_cols], *(f[:, who_cols] for f in masked)])
                    day_leads.append(lead)
                    if lead % 24 == 0:
                        _score_day(tally, j, day, day_leads, who_cols, who_limits, weights)
                        day, day_leads = [], []
        LOG.info("  scored initial times %d-%d of %d", start + 1, start + b, setup.inits.size)
    return tally.scores(), tally.fields, tally.ext_weight[0], tally.maps(), list(map_leads)


def _score_day(
    tally: _Tally,
    j: int,
    day: list[list[np.ndarray]],
    day_leads: list[int],
    who_cols: list[int],
    limits: np.ndarray,
    weights: np.ndarray,
) -> None:
    """Contingency of the 24-hour means of a forecast day, for truth and every model."""
    # (B, steps, C_who, H, W) per series: truth first, then the models
    series = [np.stack([step[k] for step in day], axis=1) for k in range(len(day[0]))]
    ends, _ = metrics.daily_means(series[0], day_leads, axis=1)
    if not ends.size:
        return  # the day is not complete (a horizon that is not a whole number of days)
    means = [metrics.daily_means(s, day_leads, axis=1)[1][:, -1] for s in series]
    truth = means[0]
    tables = [
        metrics.contingency(f, truth, limits.reshape(-1, 1, 1), weights, axis=0) for f in means[1:]
    ]
    tally.add_who(j, who_cols, tables)


def compute_scorecard(
    model: Forecaster,
    store: TrainingStore,
    inits: np.ndarray,
    *,
    max_lead_hours: int,
    climate: TrainingClimate,
    cams: CamsForecast | None = None,
    direct_hours: int = 24,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Score the model and the baselines from ``inits`` against the store.

    Parameters
    ----------
    model
        The forecaster (on ``device``, in eval mode), checked against the store.
    store
        The training store that gives initial states and truth.
    inits
        Initial times (00 UTC, with data), datetime64[ns], shape (N,).
    max_lead_hours
        Rollout horizon; leads are 3, 6, … ``max_lead_hours``.
    climate
        The training period's climatology and thresholds, channels = the model's targets.
    cams
        The CAMS forecast baseline, or None.
    direct_hours
        The longest lead the model predicts directly (the training leads' maximum).

    Returns
    -------
    xarray.Dataset
        The scorecard (module docstring).
    """
    if max_lead_hours % STEP_HOURS or max_lead_hours < STEP_HOURS:
        raise EvaluationError(
            f"max_lead_hours = {max_lead_hours} is not a positive multiple of {STEP_HOURS} h"
        )
    if climate.climatology.channels != model.target_channels:
        raise ValueError("the climate's channels are not the model's target channels")
    leads = tuple(range(STEP_HOURS, max_lead_hours + 1, STEP_HOURS))
    setup = _Setup(inits, leads, direct_hours, climate, cams, batch_size, torch.device(device))
    scores, n_fields, extreme_cells, maps, map_leads = _score(model, store, setup)
    targets = list(model.target_channels)
    units, factor = _units(targets)
    hours = np.asarray(leads, np.int64)
    who = [metrics.WHO_24H_GUIDELINES.get(c, np.nan) for c in targets]
    ds = xr.Dataset(
        {
            "score": (("model", "variable", "lead_time", "metric"), scores),
            "n_fields": (("variable", "lead_time"), n_fields),
            "extreme_cells": (("variable", "lead_time"), extreme_cells),
            "mae_map": (
                ("model", "variable", "map_lead_time", "latitude", "longitude"),
                maps,
            ),
        },
        coords={
            "model": list(MODELS),
            "variable": targets,
            "lead_time": hours.astype("timedelta64[h]").astype("timedelta64[ns]"),
            "lead_hours": ("lead_time", hours),
            "metric": list(METRICS),
            "map_lead_time": np.asarray(map_leads, np.int64)
            .astype("timedelta64[h]")
            .astype("timedelta64[ns]"),
            "latitude": np.asarray(store.ds["latitude"].values),
            "longitude": np.asarray(store.ds["longitude"].values),
            "units": ("variable", units),
            "extreme_threshold": ("variable", climate.thresholds * factor),
            "who_guideline": ("variable", np.asarray(who, np.float64)),
        },
    )
    ds["score"].attrs = {
        "long_name": "verification score",
        "units": "the variable's units (rmse, mae, bias, extreme_rmse); 1 otherwise",
    }
    ds["n_fields"].attrs = {"long_name": "initial times scored"}
    ds["extreme_cells"].attrs = {
        "long_name": "cells above extreme_threshold behind extreme_rmse (all initial times)",
        "units": "area-weighted count (mean cell = 1)",
    }
    ds["mae_map"].attrs = {"long_name": "mean absolute error of each cell", "units": "variable's"}
    ds["extreme_threshold"].attrs = {
        "long_name": f"training-period {climate.quantile:.0%} quantile over all cells and times"
    }
    ds["who_guideline"].attrs = {"long_name": "WHO 2021 24-hour guideline level", "units": "ug m-3"}
    ds.attrs = {
        "title": "AirCast scorecard",
        "aircast_version": aircast.__version__,
        "store": store.url,
        "store_fingerprint": store.fingerprint,
        "init_times": [str(np.datetime64(t, "m")) for t in inits],
        "n_init_times": int(inits.size),
        "direct_hours": direct_hours,
        "climatology": climate.climatology.describe(),
        "climatology_method": climate.climatology.method,
        "cams_forecast": cams.note if cams is not None else "not requested",
        "masking": (
            "every model is scored on the same cells: where the truth and every model that "
            "forecasts the channel at that lead have a value"
        ),
        "weights": "cell areas from latitude bounds (TargetGrid.area_weights)",
        "acc": "uncentred anomaly correlation against the climatology, mean over fields",
        "who": (
            "contingency of the 24-hour mean of each forecast day (the 8 steps at leads "
            "24(d-1)+3..24d h), truth and models alike, event = mean > guideline; counts "
            "area-weighted; reported at the day's last lead"
        ),
        **dict(attrs or {}),
    }
    return ds


# ---------------------------------------------------------------------------------------------
# Writing


def scorecard_table(ds: xr.Dataset) -> list[dict[str, Any]]:
    """The scorecard as rows (model, variable, units, lead_hours, metric, value), NaN left out."""
    rows = []
    units = dict(zip(ds["variable"].values.tolist(), ds["units"].values.tolist(), strict=True))
    values = ds["score"].values
    for m, model in enumerate(ds["model"].values.tolist()):
        for v, variable in enumerate(ds["variable"].values.tolist()):
            for j, lead in enumerate(ds["lead_hours"].values.tolist()):
                for k, metric in enumerate(ds["metric"].values.tolist()):
                    value = float(values[m, v, j, k])
                    if np.isfinite(value):
                        rows.append(
                            {
                                "model": model,
                                "variable": variable,
                                "units": units[variable],
                                "lead_hours": int(lead),
                                "metric": metric,
                                "value": value,
                            }
                        )
    return rows


def _fmt(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.4g}"


def scorecard_markdown(
    ds: xr.Dataset, metrics_shown: Sequence[str] = ("mae", "rmse", "acc")
) -> str:
    """A markdown page: per variable, the chosen metrics of every model by lead."""
    models = ds["model"].values.tolist()
    lines = [
        f"# {ds.attrs.get('title', 'Scorecard')}",
        "",
        f"- checkpoint: {ds.attrs.get('checkpoint', '?')}",
        f"- period: {ds.attrs.get('period', '?')}, {ds.attrs.get('n_init_times')} initial "
        "times (00 UTC)",
        f"- climatology: {ds.attrs.get('climatology')}",
        f"- CAMS forecast: {ds.attrs.get('cams_forecast')}",
        f"- {ds.attrs.get('masking')}",
        "",
    ]
    for variable in ds["variable"].values.tolist():
        units = str(ds["units"].sel(variable=variable).values)
        lines += [f"## {variable} ({units})", ""]
        head = ["lead (h)"] + [f"{m_} {model}" for m_ in metrics_shown for model in models]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for lead in ds["lead_hours"].values.tolist():
            cells = [str(lead)]
            for metric in metrics_shown:
                for model in models:
                    value = (
                        ds["score"]
                        .sel(model=model, variable=variable, metric=metric)
                        .values[ds["lead_hours"].values == lead][0]
                    )
                    cells.append(_fmt(float(value)))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_scorecard(ds: xr.Dataset, out_dir: Path) -> tuple[Path, Path, Path]:
    """Write ``scorecard.zarr``, ``scorecard.csv`` and ``scorecard.md`` into ``out_dir``.

    The Zarr is written beside and renamed into place, so a reader never sees half of one.
    """
    import csv

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "scorecard.zarr"
    tmp = out_dir / ".scorecard.zarr.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    encoded = ds.copy()
    encoded.attrs = {k: _jsonable(v) for k, v in ds.attrs.items()}
    for name in list(encoded.variables):
        # zarr 3 has a specified variable-length string type, not fixed-width unicode
        if encoded[name].dtype.kind == "U":
            encoded[name] = encoded[name].astype(np.dtypes.StringDType())
    with warnings.catch_warnings():
        # consolidated, so that a plain xarray.open_zarr(path) opens it without a warning
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        encoded.to_zarr(tmp, mode="w", consolidated=True)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    csv_path = out_dir / "scorecard.csv"
    rows = scorecard_table(ds)
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=["model", "variable", "units", "lead_hours", "metric", "value"]
        )
        writer.writeheader()
        writer.writerows(rows)
    md_path = out_dir / "scorecard.md"
    md_path.write_text(scorecard_markdown(ds) + "\n")
    return target, csv_path, md_path


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------------------------------
# Summaries for people


def skill_table(
    ds: xr.Dataset, variables: Sequence[str] = ("pm2p5", "pm10"), metric: str = "mae"
) -> str:
    """A fixed-width table of ``metric`` by lead for every model, one column group a variable."""
    variables = [v for v in variables if v in ds["variable"].values.tolist()]
    models = ds["model"].values.tolist()
    short = {
        "aircast": "aircast",
        "persistence": "persist",
        "climatology": "clim",
        "cams_forecast": "cams",
    }
    width = 9 * len(models) - 1
    titles = [f"{v} {metric.upper()} ({ds['units'].sel(variable=v).values})" for v in variables]
    head1 = f"{'':>8}" + "".join(f" | {title:<{width}}" for title in titles)
    head2 = f"{'lead (h)':>8}" + "".join(
        " | " + " ".join(f"{short.get(m, m):>8}" for m in models) for _ in variables
    )
    lines = [head1, head2, "-" * len(head2)]
    for j, lead in enumerate(ds["lead_hours"].values.tolist()):
        row = f"{lead:>8}"
        for v in variables:
            values = ds["score"].sel(variable=v, metric=metric).values[:, j]
            row += " | " + " ".join(
                f"{'–':>8}" if not np.isfinite(x) else f"{x:>8.3g}" for x in values
            )
        lines.append(row)
    return "\n".join(lines)


def beats(
    ds: xr.Dataset, variable: str, baseline: str, metric: str = "mae"
) -> tuple[bool, list[int]]:
    """Whether AirCast's ``metric`` is lower than ``baseline``'s at every scored lead.

    Returns
    -------
    (bool, list of int)
        The verdict, and the leads (hours) where it does not hold.
    """
    ours = ds["score"].sel(model="aircast", variable=variable, metric=metric).values
    theirs = ds["score"].sel(model=baseline, variable=variable, metric=metric).values
    scored = np.isfinite(ours) & np.isfinite(theirs)
    leads = ds["lead_hours"].values
    worse = [int(h) for h in leads[scored & (ours >= theirs)]]
    return bool(scored.any() and not worse), worse


# ---------------------------------------------------------------------------------------------
# The whole evaluation


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` made."""

    scorecard: xr.Dataset
    out_dir: Path
    zarr: Path
    csv: Path
    markdown: Path
    plots: tuple[Path, ...]


def evaluate(
    checkpoint: str | Path,
    config: AirCastConfig,
    *,
    period: Period = "test",
    max_lead_hours: int | None = None,
    out_dir: Path | None = None,
    cams_forecast: CamsProvider | None = None,
    batch_size: int | None = None,
) -> Evaluation:
    """Score a checkpoint and the baselines over a period; write the scorecard and plots.

    Parameters
    ----------
    checkpoint
        A ``.ckpt`` written by :func:`aircast.training.loop.train`.
    config
        The recipe: its store, periods, data stores (for the CAMS forecast) and
        ``training.max_lead_hours``.
    period
        ``test`` or ``validation``: every 00 UTC initial time of its days.
    max_lead_hours
        Rollout horizon (default ``training.max_lead_hours``).
    out_dir
        Where the scorecard and plots go (default ``paths.root/evaluation/<ckpt>-<period>``).
    cams_forecast
        Where the CAMS global forecast of the period comes from (the evaluate job fetches it
        into the recipe's raw cache); None: the scorecard leaves it out.
    batch_size
        Initial times per batch (default ``training.batch_size``).

    Raises
    ------
    CheckpointError
        A missing or unreadable checkpoint, or one trained on another store or channel list.
    EvaluationError
        An unknown period, or a period without initial times with data.
    """
    from aircast.evaluation.plots import plot_error_map, plot_skill_vs_lead

    if period not in PERIODS:
        raise EvaluationError(f"period = {period!r}; choose one of {', '.join(PERIODS)}")
    path = Path(checkpoint)
    ckpt = load_checkpoint(path)
    store = open_store(config.store_url, config.store.storage_options or None)
    device = pick_device(config.training.device)
    model = load_forecaster(ckpt, store, device)
    chosen = getattr(config.periods, period)
    inits = init_times(store, chosen.start, chosen.end)
    if not inits.size:
        raise EvaluationError(
            f"the {period} period {chosen.start}..{chosen.end} has no 00 UTC initial time with "
            f"data in the store at {store.url} (it covers {str(store.times[0])[:10]}.."
            f"{str(store.times[-1])[:10]}): extend the store over the period, or choose "
            "another --period"
        )
    horizon = max_lead_hours or config.training.max_lead_hours
    leads = np.arange(STEP_HOURS, horizon + 1, STEP_HOURS)
    step = np.timedelta64(1, "h").astype("timedelta64[ns]")
    valid = (inits[:, None] + leads[None, :] * step).ravel()
    # the climatology of the store's own training period, whatever the config at hand says
    train = store.recipe["periods"]["train"]
    first_train = dt.date.fromisoformat(str(train["start"]))
    last_train = dt.date.fromisoformat(str(train["end"]))
    LOG.info("climatology and thresholds from the training period %s..%s", first_train, last_train)
    climate = training_climate(
        store, model.target_channels, (first_train, last_train), valid_times=valid
    )
    baseline: CamsForecast | None = None
    if cams_forecast is not None and cams_channels(model.target_channels):
        LOG.info("the CAMS forecast runs of %s..%s", chosen.start, chosen.end)
        baseline = cams_forecast(
            dt.date.fromisoformat(str(inits[0])[:10]),
            dt.date.fromisoformat(str(inits[-1])[:10]),
            model.target_channels,
            store.grid,
        )
    recipe_leads = ckpt.meta.recipe.get("training", {}).get("lead_hours") or [24]
    direct = max(int(h) for h in recipe_leads)
    LOG.info("forecasting from %d initial times to %d h", inits.size, horizon)
    ds = compute_scorecard(
        model,
        store,
        inits,
        max_lead_hours=horizon,
        climate=climate,
        cams=baseline,
        direct_hours=direct if direct % STEP_HOURS == 0 else 24,
        batch_size=batch_size or config.training.batch_size,
        device=device,
        attrs={
            "checkpoint": str(path),
            "checkpoint_sha256": ckpt.sha256,
            "checkpoint_step": ckpt.meta.step,
            "period": f"{period} {chosen.start}..{chosen.end}",
        },
    )
    out = (
        Path(out_dir)
        if out_dir is not None
        else (config.paths.root / "evaluation" / f"{path.stem}-{period}")
    )
    zarr_path, csv_path, md_path = write_scorecard(ds, out)
    plots = [plot_skill_vs_lead(ds, out / "skill_vs_lead.png")]
    pm = "pm2p5" if "pm2p5" in model.target_channels else model.target_channels[-1]
    map_hours = int(ds["map_lead_time"].values[0] / np.timedelta64(1, "h"))
    plots.append(
        plot_error_map(
            ds, out / f"mae_map_{pm}_{map_hours}h.png", variable=pm, lead_hours=map_hours
        )
    )
    return Evaluation(ds, out, zarr_path, csv_path, md_path, tuple(plots))
