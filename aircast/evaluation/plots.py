"""Plots of a scorecard, as PNG files.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly, never
through ``pyplot``: no global backend is switched, nothing is left open, and it works on a
machine without a display (a Prefect worker, CI).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from aircast.vocab import Role, parse_channel

#: Weather channels shown beside the pollutants, in this order of preference.
WEATHER_SHOWN = ("t2m", "u10", "msl", "blh", "v10", "tp")
#: One look per model, kept across figures.
STYLE = {
    "aircast": {"color": "#1b6ca8", "marker": "o", "linestyle": "-", "label": "AirCast"},
    "persistence": {"color": "#7f7f7f", "marker": "s", "linestyle": "--", "label": "persistence"},
    "climatology": {"color": "#2ca02c", "marker": "^", "linestyle": ":", "label": "climatology"},
    "cams_forecast": {
        "color": "#d62728",
        "marker": "D",
        "linestyle": "-.",
        "label": "CAMS forecast",
    },
}
DPI = 110
#: Metrics that are errors in the variable's units (non-negative).
ERROR_METRICS = ("mae", "rmse", "extreme_rmse")


def _pretty(units: str) -> str:
    """Units as a reader writes them on a figure (µg m⁻³ for ``ug m-3``)."""
    superscript = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    words = [w[0] + w[1:].translate(superscript) if len(w) > 1 else w for w in units.split()]
    return " ".join(words).replace("ug", "µg", 1) if units.startswith("ug") else " ".join(words)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def shown_variables(ds: xr.Dataset, n_weather: int = 3) -> list[str]:
    """Every pollutant of the scorecard, then up to ``n_weather`` weather channels."""
    names = ds["variable"].values.tolist()
    pollutants = [v for v in names if parse_channel(v).spec.role is Role.POLLUTANT]
    weather = [v for v in WEATHER_SHOWN if v in names][:n_weather]
    return pollutants + weather


def plot_skill_vs_lead(
    ds: xr.Dataset,
    path: Path,
    *,
    variables: Sequence[str] | None = None,
    metric: str = "mae",
) -> Path:
    """``metric`` against lead time, one panel per variable, one line per model.

    Parameters
    ----------
    ds
        A scorecard (:func:`aircast.evaluation.scorecard.compute_scorecard`).
    path
        The PNG to write.
    variables
        Panels (default: :func:`shown_variables`).
    metric
        A metric of the scorecard.
    """
    chosen = list(variables) if variables is not None else shown_variables(ds)
    n = max(1, len(chosen))
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    leads = ds["lead_hours"].values
    for i, ax in enumerate(axes.ravel()):
        if i >= len(chosen):
            ax.set_visible(False)
            continue
        variable = chosen[i]
        units = str(ds["units"].sel(variable=variable).values)
        for model in ds["model"].values.tolist():
            values = ds["score"].sel(model=model, variable=variable, metric=metric).values
            if not np.isfinite(values).any():
                continue  # e.g. the CAMS forecast on a weather channel
            style = STYLE.get(model, {"label": model})
            ax.plot(leads, values, markersize=3.5, linewidth=1.4, **style)  # type: ignore[arg-type]
        ax.set_title(variable)
        ax.set_xlabel("lead time (h)")
        ax.set_xticks(np.arange(0, leads.max() + 1, 12 if leads.max() > 24 else 6))
        ax.grid(alpha=0.3, which="both")
        shown = ds["score"].sel(variable=variable, metric=metric).values
        positive = shown[np.isfinite(shown) & (shown > 0)]
        # persistence's error swings with the daily cycle (10x and more for PM): a log axis
        # keeps the models that do not swing distinguishable
        if metric in ERROR_METRICS and positive.size and positive.max() > 20 * positive.min():
            ax.set_yscale("log")
            ax.set_ylabel(f"{metric.upper()} ({_pretty(units)}, log scale)")
        else:
            ax.set_ylabel(f"{metric.upper()} ({_pretty(units)})")
            if metric in ERROR_METRICS:
                ax.set_ylim(bottom=0)
    handles, labels = [], []
    for ax in axes.ravel():
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    fig.suptitle(
        f"{metric.upper()} against lead time — {ds.attrs.get('period', '')}, "
        f"{ds.attrs.get('n_init_times', '?')} initial times (00 UTC)"
    )
    return _save(fig, path)


def plot_error_map(
    ds: xr.Dataset,
    path: Path,
    *,
    variable: str = "pm2p5",
    lead_hours: int = 24,
    model: str = "aircast",
    reference: str = "persistence",
) -> Path:
    """A map of ``model``'s mean absolute error, and of its difference to ``reference``.

    Parameters
    ----------
    ds
        A scorecard holding ``mae_map`` at ``lead_hours``.
    variable
        The channel mapped.
    lead_hours
        A lead of ``ds.map_lead_time``.
    model, reference
        Left panel: ``model``'s MAE; right panel: ``model`` minus ``reference`` (blue where
        ``model`` is better).
    """
    lead = np.timedelta64(lead_hours, "h").astype("timedelta64[ns]")
    maps = ds["mae_map"].sel(variable=variable, map_lead_time=lead)
    ours = maps.sel(model=model).values
    theirs = maps.sel(model=reference).values
    lat, lon = ds["latitude"].values, ds["longitude"].values
    dlat = abs(float(lat[0] - lat[1])) if lat.size > 1 else 1.0
    dlon = abs(float(lon[1] - lon[0])) if lon.size > 1 else 1.0
    extent = (
        float(lon[0] - dlon / 2),
        float(lon[-1] + dlon / 2),
        float(lat[-1] - dlat / 2),
        float(lat[0] + dlat / 2),
    )
    units = _pretty(str(ds["units"].sel(variable=variable).values))
    aspect = 1.0 / np.cos(np.deg2rad(float(np.mean(lat))))
    width = 11.0
    # each map gets about half the width less its colour bar; the height follows its aspect
    panel = width / 2 - 1.2
    ratio = (extent[3] - extent[2]) / (extent[1] - extent[0]) * aspect
    height = min(9.0, max(3.0, panel * ratio + 1.2))
    fig = Figure(figsize=(width, height), layout="constrained")
    left, right = fig.subplots(1, 2)
    image = left.imshow(ours, extent=extent, origin="upper", cmap="viridis", aspect=aspect)
    fig.colorbar(image, ax=left, label=f"MAE ({units})", shrink=0.85)
    left.set_title(f"{STYLE.get(model, {}).get('label', model)} MAE, {variable} at +{lead_hours} h")
    difference = ours - theirs
    bound = float(np.nanmax(np.abs(difference))) if np.isfinite(difference).any() else 1.0
    image = right.imshow(
        difference,
        extent=extent,
        origin="upper",
        cmap="RdBu_r",
        vmin=-bound,
        vmax=bound,
        aspect=aspect,
    )
    fig.colorbar(image, ax=right, label=f"MAE difference ({units})", shrink=0.85)
    right.set_title(f"minus {STYLE.get(reference, {}).get('label', reference)} (blue: better)")
    for ax in (left, right):
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
    fig.suptitle(f"{ds.attrs.get('period', '')}, {ds.attrs.get('n_init_times', '?')} initial times")
    return _save(fig, path)


def plot_forecast_map(field: xr.DataArray, path: Path, *, title: str) -> Path:
    """A map of one published field (latitude, longitude), e.g. tomorrow's PM2.5.

    The colour scale is logarithmic for positive heavy-tailed fields (dust plumes span three
    orders of magnitude), linear otherwise.
    """
    from matplotlib.colors import LogNorm

    values = np.asarray(field.values, np.float64)
    lat, lon = field["latitude"].values, field["longitude"].values
    name = str(field.name)
    heavy = parse_channel(name).spec.heavy_tailed
    fig = Figure(figsize=(8.0, 4.6))
    ax = fig.add_subplot()
    positive = values[np.isfinite(values) & (values > 0)]
    norm = (
        LogNorm(vmin=max(float(positive.min()), 1e-3), vmax=float(positive.max()))
        if heavy and positive.size
        else None
    )
    mesh = ax.pcolormesh(lon, lat, values, shading="nearest", cmap="YlOrBr", norm=norm)
    colourbar = fig.colorbar(mesh, ax=ax, shrink=0.9)
    colourbar.set_label(f"{name} ({_pretty(str(field.attrs.get('units', '')))})")
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
