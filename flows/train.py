"""The Prefect flow that trains the forecaster on a recipe's training store.

``train_forecaster`` runs :func:`aircast.training.loop.train` (the same loop as
``aircast train``: it resumes from ``last.ckpt`` unless ``fresh``) with its progress in the flow
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
import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from aircast.config import AirCastConfig, load_config
from aircast.training.loop import TrainResult, Validation, checkpoint_dir, train
from flows.report import artifact_key, exit_code

DEFAULT_CONFIG = "configs/demo.yaml"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``, one per completed epoch (none before the first)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # blank, or cut short by a kill (dropped on resume)
            continue
    return records


def last_validation(result: TrainResult, records: list[dict[str, Any]]) -> Validation | None:
    """This run's last validation, else the last epoch's on record (a run stopped by
    ``max_steps`` before an epoch's end validates nothing itself)."""
    if result.validation is not None:
        return result.validation
    for record in reversed(records):
        v = record.get("validation")
        if v:
            return Validation(
                v["leads"], v["channels"], np.array(v["mae_model"]), np.array(v["mae_persistence"])
            )
    return None


def plot_loss_curve(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Training loss (total and per task) and validation skill by epoch, as a PNG.

    Returns None (and writes nothing) before the first epoch has ended.
    """
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on a worker
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_skill) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    ax_loss.plot(epochs, [r["train_loss"] for r in records], "o-", label="total")
    for part in ("weather", "pollutants"):
        key = f"train_{part}"
        if any(key in r for r in records):
            ax_loss.plot(epochs, [r.get(key, np.nan) for r in records], ".--", label=part)
    ax_loss.set(xlabel="epoch", ylabel="training loss (normalised MAE / fMAE)")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_skill.plot(epochs, [r["val_score"] for r in records], "o-", color="tab:green")
    ax_skill.axhline(0.0, color="grey", lw=0.8)
    ax_skill.set(xlabel="epoch", ylabel="validation skill vs persistence")
    ax_skill.grid(alpha=0.3)
    for ax in (ax_loss, ax_skill):
        ax.xaxis.get_major_locator().set_params(integer=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def _number(value: Any, fmt: str) -> str:
    return "–" if value is None or not np.isfinite(value) else format(value, fmt)


def training_markdown(
    config: AirCastConfig,
    config_path: str,
    result: TrainResult,
    records: list[dict[str, Any]],
    validation: Validation | None,
    loss_curve: Path | None,
    resumed: bool,
) -> str:
    """The artifact: headline, files, validation table, metrics per epoch, loss curve."""
    start = "resumed from `last.ckpt`" if resumed else "from scratch"
    lines = [
        f"# Training `{config.name}`",
        "",
        f"**{result.steps} steps, {result.epochs} of {config.training.epochs} epochs** "
        f"({start}; {result.samples_per_second:.1f} samples/s in this run).",
        "",
        f"Recipe `{config_path}`, training store `{config.store_url}`.",
        "",
        f"- last checkpoint: `{result.last}`",
        f"- best checkpoint: `{result.best}`" if result.best else "- best checkpoint: none yet",
        f"- metrics: `{result.metrics}`",
        "",
    ]
    if validation is not None:
        lines += [
            f"## Validation: pollutant skill against persistence (score {validation.score:+.3f})",
            "",
            "Skill = 1 − MAE(model) / MAE(persistence) per lead; above 0 the model beats "
            "persistence.",
            "",
            validation.table(),
            "",
        ]
    else:
        lines += ["No epoch has ended yet: no validation.", ""]
    if records:
        lines += [
            "## Metrics per epoch",
            "",
            "| epoch | step | train loss | weather | pollutants | lr | validation skill |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in records:
            lines.append(
                f"| {r['epoch']} | {r['step']} | {_number(r['train_loss'], '.4f')} | "
                f"{_number(r.get('train_weather'), '.4f')} | "
                f"{_number(r.get('train_pollutants'), '.4f')} | {_number(r['lr'], '.2e')} | "
                f"{_number(r['val_score'], '+.3f')} |"
            )
        lines.append("")
    if loss_curve is not None:
        encoded = base64.b64encode(loss_curve.read_bytes()).decode("ascii")
        lines += [
            "## Loss curve",
            "",
            f"![loss curve](data:image/png;base64,{encoded})",
            "",
            f"Saved as `{loss_curve}`.",
        ]
    return "\n".join(lines)


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
    logger = get_run_logger()
    recipe = load_config(config)
    out_dir = checkpoint_dir(recipe)
    resumed = not fresh and (out_dir / "last.ckpt").is_file()
    result = train(recipe, out_dir=out_dir, resume=not fresh, max_steps=max_steps, log=logger.info)
    records = read_metrics(result.metrics)
    validation = last_validation(result, records)
    loss_curve = plot_loss_curve(records, out_dir / "loss.png")
    key = artifact_key("train", recipe.name)
    create_markdown_artifact(
        markdown=training_markdown(
            recipe, config, result, records, validation, loss_curve, resumed
        ),
        key=key,
        description=f"{recipe.name}: {result.steps} steps, {result.epochs} epochs",
    )
    logger.info(
        "trained %d steps (%d epochs); checkpoints in %s; artifact %r",
        result.steps,
        result.epochs,
        out_dir,
        key,
    )
    return {
        "config": config,
        "steps": result.steps,
        "epochs": result.epochs,
        "last": str(result.last),
        "best": None if result.best is None else str(result.best),
        "metrics": str(result.metrics),
        "loss_curve": None if loss_curve is None else str(loss_curve),
        "score": None if validation is None else validation.score,
        "artifact": key,
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
