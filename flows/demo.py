"""The whole demo, the README's main command: ``make demo`` runs ``python -m flows.demo``.

It starts the embedded sandbox data store (inside each flow), ingests the first days of the
demo recipe's training period through the ingestion flows, and prints where everything went.
Later stages (build, train, forecast, publish) join it as they land.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any

from prefect import flow

from aircast.config import DEMO_CONFIG, load_config
from aircast.errors import AirCastError
from flows.ingest import ingest_all


@flow(name="aircast-demo", flow_run_name="demo {config}")
def demo(config: str = str(DEMO_CONFIG), days: int = 3) -> dict[str, Any]:
    """Ingest ``days`` days of ERA5 and CAMS for the recipe from its data stores."""
    recipe = load_config(config)
    start = recipe.periods.train.start
    end = start + dt.timedelta(days=days - 1)
    ingested = ingest_all(start.isoformat(), end.isoformat(), config)
    return {
        "config": config,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "ingested": ingested,
        "raw_cache": str(recipe.paths.raw),
    }


def _report(summary: dict[str, Any]) -> str:
    lines = [f"AirCast demo: {summary['config']}, {summary['start']}..{summary['end']}"]
    for name, counts in summary["ingested"].items():
        lines.append(
            f"  {name:<16} "
            + ", ".join(
                f"{counts.get(k, 0)} {k}" for k in ("fetched", "reused", "recovered", "failed")
            )
        )
    lines.append(
        f"raw files: {summary['raw_cache']}/files  "
        f"(manifest: {summary['raw_cache']}/manifest.sqlite)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.demo", description=__doc__)
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="recipe (default: demo)")
    parser.add_argument("--days", type=int, default=3, help="days to ingest (default: 3)")
    args = parser.parse_args(argv)
    try:
        summary = demo(config=args.config, days=args.days)
    except AirCastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_report(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
