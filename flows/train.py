"""The Prefect flow that trains the forecaster on a recipe's training store.

``train_forecaster`` runs the train job (:func:`aircast.jobs.train.run_train`, as ``aircast
train`` does: it resumes from ``last.ckpt`` unless ``fresh``) with its progress in the flow
run's log, then leaves what an operator reads in the UI:

- a markdown artifact (key ``train-<recipe name>``): steps and epochs done, where the
  checkpoints are, the validation table (pollutant skill against persistence per lead), the
  metrics of every epoch, and the loss curve embedded as a PNG data URI (Prefect's image
  artifact takes a URL that the browser fetches, which a file on a worker is not);
- the loss curve as ``loss.png`` next to the checkpoints.

From a shell (without ``PREFECT_API_URL`` Prefect starts a temporary local server)::

    python -m flows.train --config configs/demo.yaml --max-steps 200
    python -m flows.train --fresh
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from prefect import flow

from aircast.config import load_config
from aircast.jobs.train import run_train
from flows.executor import PrefectExecutor
from flows.report import exit_code

DEFAULT_CONFIG = "configs/demo.yaml"


@flow(persist_result=True, name="train-forecaster", flow_run_name="train {config}")
def train_forecaster(
    config: str = DEFAULT_CONFIG, max_steps: int | None = None, fresh: bool = False
) -> dict[str, Any]:
    """Train (or go on training) the recipe's forecaster; report it as artifacts.

    Parameters
    ----------
    config
        Path of the recipe (YAML), relative to the worker's working directory.
    max_steps
        Stop after this many optimiser steps in total (a budget); None trains every epoch of
        ``training.epochs``.
    fresh
        Start from scratch instead of resuming from ``last.ckpt``.

    Returns
    -------
    dict
        Paths of the checkpoints, metrics and loss curve; steps, epochs and the validation
        score (None before the first epoch's end).
    """
    recipe = load_config(config)
    outcome = run_train(recipe, executor=PrefectExecutor(), fresh=fresh, max_steps=max_steps)
    result, validation, curve = outcome.result, outcome.validation, outcome.loss_curve
    return {
        "config": config,
        "steps": result.steps,
        "epochs": result.epochs,
        "last": str(result.last),
        "best": None if result.best is None else str(result.best),
        "metrics": str(result.metrics),
        "loss_curve": None if curve is None else str(curve),
        "score": None if validation is None else validation.score,
        "artifact": outcome.report_key,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.train``: train as a Prefect flow run from a shell; exit 1 if it fails."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.train",
        description="Train the forecaster on a recipe's training store as a Prefect flow run "
        "(set PREFECT_API_URL to use a server; otherwise a temporary one starts).",
    )
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="recipe (default: %(default)s)")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="stop after this many optimiser steps"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="ignore last.ckpt and start from scratch"
    )
    args = parser.parse_args(argv)
    state = train_forecaster(args.config, args.max_steps, args.fresh, return_state=True)
    return exit_code(state)


if __name__ == "__main__":
    sys.exit(main())
