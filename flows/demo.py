"""The whole demo, the README's main command: ``make demo`` runs ``python -m flows.demo``.

It starts the embedded sandbox data store (inside each ingest flow), ingests ERA5 and the CAMS
reanalysis for every day of the demo recipe's periods through the ingestion flows, builds the
training store from them with the build flow, trains the model (a few minutes on 2 CPU cores),
forecasts and publishes the last ``FORECAST_DAYS`` days of the test period one by one as the
daily forecast does (each run verifying the earlier ones whose analyses the store holds), and
prints where everything is, a short skill table and a map of tomorrow's PM2.5 for the latest
forecast.

Run it twice: the second run fetches nothing, loads nothing, trains no further and publishes
nothing again, and says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow

from aircast.config import DEMO_CONFIG, AirCastConfig, load_config
from aircast.errors import AirCastError
from flows.backfill import backfill_forecasts
from flows.build import build_training_store
from flows.ingest import ingest_all
from flows.train import train_forecaster

#: Days at the end of the test period that the demo forecasts (the earliest is verified whole
#: against the store's last days, the others in part).
FORECAST_DAYS = 4


@flow(persist_result=True, name="aircast-demo", flow_run_name="demo {config}")
def demo(config: str = str(DEMO_CONFIG)) -> dict[str, Any]:
    """Ingest what the recipe's training store needs, then build the store.

    The store's time axis spans the recipe's periods (training, validation and test), and its
    build refuses a day that was never ingested, so the ingestion covers exactly that span.
    """
    recipe = load_config(config)
    first, last = recipe.periods.span()
    ingested = ingest_all(first.isoformat(), last.isoformat(), config)
    built = build_training_store(config)
    trained = train_forecaster(config)
    forecast_first = last - dt.timedelta(days=FORECAST_DAYS - 1)
    forecasts = backfill_forecasts(
        forecast_first.isoformat(), last.isoformat(), config, deployment=""
    )
    return {
        "config": config,
        "recipe": recipe.name,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "ingested": ingested,
        "raw_cache": str(recipe.paths.raw),
        "store": built,
        "trained": trained,
        "forecasts": forecasts,
        **_products(recipe),
    }


def _products(recipe: AirCastConfig) -> dict[str, Any]:
    """The skill table and the map of tomorrow's PM2.5 from the latest published forecast."""
    from aircast.evaluation.plots import plot_forecast_map
    from aircast.evaluation.verification import read_scores, scores_path, skill_summary
    from aircast.forecast.reader import open_forecast

    store = open_forecast(recipe.forecast_url, storage_options=recipe.forecast.storage_options)
    init = store.latest_init_time
    field = store.map("pm2p5", lead_hours=24, init_time=init)
    valid = np.datetime64(init, "h") + np.timedelta64(24, "h")
    path = recipe.paths.root / "maps" / f"pm2p5-{str(valid)[:13].replace('T', '-')}UTC.png"
    plot_forecast_map(
        field,
        path,
        title=f"AirCast PM2.5, {str(valid).replace('T', ' ')}:00 UTC "
        f"(run of {str(init)[:10]} 00 UTC, lead 24 h)",
    )
    scores = scores_path(recipe)
    return {
        "forecast_store": recipe.forecast_url,
        "published": [str(t)[:10] for t in store.init_times],
        "scores": str(scores),
        "skill": skill_summary(read_scores(scores)),
        "map": str(path),
    }


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it is inside it (shorter to read)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _report(summary: dict[str, Any]) -> str:
    config = _shown(summary["config"])
    lines = [
        f"AirCast demo: recipe {summary['recipe']} ({config}), {summary['start']}..{summary['end']}"
    ]
    for name, counts in summary["ingested"].items():
        lines.append(
            f"  {name:<16} "
            + ", ".join(
                f"{counts.get(k, 0)} {k}" for k in ("fetched", "reused", "recovered", "failed")
            )
        )
    raw = summary["raw_cache"]
    lines.append(f"raw files:      {raw}/files  (manifest: {raw}/manifest.sqlite)")
    built = summary["store"]
    facts = built["summary"]
    lines.append(f"training store: {built['store']}  ({built['headline']})")
    lines.append(
        f"  times:    {facts['first_time']} .. {facts['last_time']}, {facts['n_times']} "
        f"(every {facts['step_hours']} h)"
    )
    lines.append(f"  channels: {len(facts['channels'])}: {' '.join(facts['channels'])}")
    if facts["n_missing_times"]:
        lines.append(
            f"  missing:  {facts['n_missing_times']} times on {len(facts['missing_days'])} "
            f"days: {', '.join(facts['missing_days'])}"
        )
    else:
        lines.append("  missing:  none")
    lines.append(f"  size:     {facts['size']}")
    lines.append(
        f"inspect it: .venv/bin/aircast store inspect {config}   "
        f"or xarray.open_zarr({built['store']!r})"
    )
    trained = summary["trained"]
    lines.append(
        f"model:          {trained['best'] or trained['last']}  ({trained['steps']} steps, "
        f"{trained['epochs']} epochs; validation skill against persistence "
        f"{_signed(trained['score'])})"
    )
    forecasts = summary["forecasts"]
    lines.append(
        f"forecast store: {summary['forecast_store']}  (published: "
        f"{', '.join(summary['published'])}; this run: {len(forecasts['forecast'])} new, "
        f"{len(forecasts['skipped'])} already there)"
    )
    lines.append(f"verification:   {summary['scores']}")
    lines.append(summary["skill"])
    lines.append(f"map of tomorrow's PM2.5: {_shown(summary['map'])}")
    url = summary["forecast_store"]
    lines.append(f"read it: aircast.open_forecast({url!r}) or xarray.open_zarr({url!r})")
    return "\n".join(lines)


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.demo", description=__doc__)
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="recipe (default: demo)")
    args = parser.parse_args(argv)
    try:
        summary = demo(config=args.config)
    except AirCastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_report(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
