"""What a training run leaves for a person: the metrics on record, the loss curve, a report.

The train job (:mod:`aircast.jobs.train`) writes these after every run, from the command line
or a flow: ``loss.png`` beside the checkpoints and a markdown report (the Prefect artifact
``train-<recipe>``) with the validation table, the metrics of every epoch and the curve.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from aircast.config import AirCastConfig
from aircast.training.loop import TrainResult, Validation


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
        f"Recipe `{config.name}`, training store `{config.store_url}`.",
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
