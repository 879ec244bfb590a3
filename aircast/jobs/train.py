"""The train job: train (or go on training) a recipe's forecaster, and report the run.

``aircast train`` and the ``train-forecaster`` flow both call :func:`run_train`: the training
loop (:func:`aircast.training.loop.train`, which resumes from ``last.ckpt`` unless ``fresh``),
then the loss curve beside the checkpoints and the report ``train-<recipe>`` (steps, epochs,
where the checkpoints are, the validation table, the metrics per epoch, the curve).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from aircast.config import AirCastConfig
from aircast.jobs.executor import Executor, ThreadExecutor, report_key
from aircast.training.loop import TrainResult, Validation, checkpoint_dir, train
from aircast.training.report import (
    last_validation,
    plot_loss_curve,
    read_metrics,
    training_markdown,
)

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    """A training run and what it left: the loop's result, its last validation, the curve."""

    result: TrainResult
    validation: Validation | None
    loss_curve: Path | None
    report_key: str


def run_train(
    config: AirCastConfig,
    *,
    executor: Executor | None = None,
    out_dir: Path | None = None,
    fresh: bool = False,
    max_steps: int | None = None,
) -> TrainOutcome:
    """Train the recipe's forecaster (resuming unless ``fresh``), then report it.

    Parameters
    ----------
    out_dir
        Checkpoint folder (default: ``paths.root/checkpoints``).
    max_steps
        Stop after this many optimiser steps in total (a budget); None trains every epoch.
    """
    executor = executor or ThreadExecutor()
    out = Path(out_dir) if out_dir is not None else checkpoint_dir(config)
    resumed = not fresh and (out / "last.ckpt").is_file()
    result = executor.run(
        "train", train, config, out_dir=out, resume=not fresh, max_steps=max_steps
    )
    records = read_metrics(result.metrics)
    validation = last_validation(result, records)
    loss_curve = plot_loss_curve(records, out / "loss.png")
    key = report_key("train", config.name)
    executor.report(
        key,
        training_markdown(config, result, records, validation, loss_curve, resumed),
        f"{config.name}: {result.steps} steps, {result.epochs} epochs",
    )
    LOG.info(
        "trained %d steps (%d epochs); checkpoints in %s; report %r",
        result.steps,
        result.epochs,
        out,
        key,
    )
    return TrainOutcome(result, validation, loss_curve, key)
