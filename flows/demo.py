"""The whole demo, the README's main command: ``make demo`` runs ``python -m flows.demo``.

It starts the embedded sandbox data store (inside each ingest flow), ingests ERA5 and the CAMS
reanalysis for every day of the demo recipe's periods through the ingestion flows, builds the
training store from them with the build flow, and prints where everything went. Later stages
(train, forecast, publish) join it as they land.

Run it twice: the second run fetches nothing and loads nothing, and says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow

from aircast.config import DEMO_CONFIG, load_config
from aircast.errors import AirCastError
from flows.build import build_training_store
from flows.ingest import ingest_all


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
    return {
        "config": config,
        "recipe": recipe.name,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "ingested": ingested,
        "raw_cache": str(recipe.paths.raw),
        "store": built,
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
    return "\n".join(lines)


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
