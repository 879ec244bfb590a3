"""The AirCast paper's two claims as ablations, same budget and seeds, on a recipe's store.

1. fMAE against plain MAE on the pollutants (``training.loss.weighting`` ens vs none): RMSE
   on cells whose truth is above the training 99th percentile, and the WHO 24-hour
   exceedance scores.
2. Multi-task (weather + pollutants) against pollutants only (``training.pollutants_only``):
   pollutant MAE and extreme RMSE by lead.

and one of AirCast's own design: the baseline the network corrects (``model.residual``),
damped anomaly persistence from the diurnal climatology against plain persistence. For every
variant the table also counts the leads (of 24, 3-72 h) at which its MAE is *not* below that of
persistence and of climatology.

Each variant trains from scratch with the recipe's training settings (same seed, same steps),
then is scored by :func:`aircast.evaluation.scorecard.evaluate` on the test period. Results are
printed as a table and appended to ``results/ablation.json`` with the machine. The figures
hold for the recipe they were measured on: the demo recipe has 20 training days, so read them
as a smoke-scale check of the claims, not as a verdict.

    .venv/bin/python bench/bench_ablation.py --config configs/demo.yaml
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from recording import append_result, machine_info  # bench/ is on sys.path when a bench runs

from aircast.config import AirCastConfig, load_config
from aircast.evaluation.scorecard import evaluate
from aircast.training.loop import train

RESULTS = Path(__file__).parent / "results" / "ablation.json"
VARIANTS: dict[str, dict[str, Any]] = {
    "multi-task fMAE": {"loss": {"weighting": "ens"}, "pollutants_only": False},
    "multi-task MAE": {"loss": {"weighting": "none"}, "pollutants_only": False},
    "pollutants-only fMAE": {"loss": {"weighting": "ens"}, "pollutants_only": True},
    # the gentler schemes: does the claim depend on how hard the rare bins are pushed?
    "multi-task fMAE inverse_log": {"loss": {"weighting": "inverse_log"}, "pollutants_only": False},
    "multi-task fMAE inverse_sqrt": {
        "loss": {"weighting": "inverse_sqrt"},
        "pollutants_only": False,
    },
    # the model's own baseline: what the diurnal-climatology residual is worth
    "inverse_log, persistence residual": {
        "loss": {"weighting": "inverse_log"},
        "pollutants_only": False,
        "model": {"residual": "persistence"},
    },
    # leads 3-72 h all predicted from the initial state, at the same number of steps: does the
    # rollout from the model's own 24 h forecast cost more than spreading the budget thinner?
    "inverse_log, direct to 72 h": {
        "loss": {"weighting": "inverse_log"},
        "pollutants_only": False,
        "training": {"lead_hours": list(range(3, 73, 3))},
    },
}
POLLUTANTS = ("pm2p5", "pm10")


def variant(config: AirCastConfig, changes: dict[str, Any]) -> AirCastConfig:
    """The recipe with a variant's changes; a variant with more leads trains fewer epochs, so
    that every variant takes about the same number of optimiser steps."""
    update: dict[str, Any] = {
        "pollutants_only": changes["pollutants_only"],
        "loss": config.training.loss.model_copy(update=changes["loss"]),
        **changes.get("training", {}),
    }
    if "lead_hours" in update:
        ratio = len(config.training.lead_hours) / len(update["lead_hours"])
        update["epochs"] = max(1, round(config.training.epochs * ratio))
    training = config.training.model_copy(update=update)
    model = config.model.model_copy(update=changes.get("model", {}))
    return config.model_copy(update={"training": training, "model": model})


def leads_lost(row: dict[str, Any], baseline: dict[str, Any], name: str) -> int:
    """Leads at which ``row``'s MAE of ``name`` is not below ``baseline``'s."""
    ours = np.asarray(row[name]["mae_by_lead"], dtype=float)
    theirs = np.asarray(baseline[name]["mae_by_lead"], dtype=float)
    return int(np.sum(~(ours < theirs)))


def table_row(name: str, row: dict[str, Any], rows: dict[str, Any], width: int = 36) -> str:
    """One printed line: the mean MAE and extreme RMSE of PM2.5 and PM10, then the PM2.5 leads
    lost to the ``persistence`` and ``climatology`` rows of ``rows``."""
    lost = (
        f"{leads_lost(row, rows['persistence'], 'pm2p5')}/"
        f"{leads_lost(row, rows['climatology'], 'pm2p5')}"
    )
    return (
        f"{name:<{width}} {row['pm2p5']['mae_mean']:>10.3f} "
        f"{row['pm2p5']['extreme_rmse_mean']:>10.3f} {row['pm10']['mae_mean']:>10.3f} "
        f"{row['pm10']['extreme_rmse_mean']:>10.3f} {lost:>9}"
    )


def summarise(card: Any, model: str = "aircast") -> dict[str, Any]:
    out: dict[str, Any] = {}
    score = card["score"]
    for name in POLLUTANTS:
        s = score.sel(model=model, variable=name)
        out[name] = {
            "mae_by_lead": s.sel(metric="mae").values.round(5).tolist(),
            "extreme_rmse_by_lead": s.sel(metric="extreme_rmse").values.round(5).tolist(),
            "mae_mean": float(np.nanmean(s.sel(metric="mae").values)),
            "extreme_rmse_mean": float(np.nanmean(s.sel(metric="extreme_rmse").values)),
            "who_csi_mean": float(np.nanmean(s.sel(metric="who_csi").values)),
            "who_far_mean": float(np.nanmean(s.sel(metric="who_false_alarm_ratio").values)),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--out", default="data/ablation", help="checkpoints and scorecards")
    parser.add_argument("--max-steps", type=int, default=None, help="budget per variant")
    parser.add_argument(
        "--seed", type=int, default=None, help="training seed (default: the recipe's)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        metavar="NAME",
        help=f"variants to train (default: all of {list(VARIANTS)})",
    )
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON list appended to")
    args = parser.parse_args()
    base = load_config(args.config)
    if args.seed is not None:
        training = base.training.model_copy(update={"seed": args.seed})
        base = base.model_copy(update={"training": training})
    torch.set_num_threads(1)  # two cores shared with other jobs: one thread is steadier
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the loop's progress
    rows: dict[str, Any] = {}
    for name in args.variants:
        config = variant(base, VARIANTS[name])
        out = Path(args.out) / f"seed{base.training.seed}" / name.replace(" ", "_")
        started = time.perf_counter()
        result = train(
            config,
            out_dir=out / "checkpoints",
            resume=False,
            max_steps=args.max_steps,
        )
        trained = time.perf_counter() - started
        ckpt = result.best or result.last
        evaluation = evaluate(ckpt, config, period="test", out_dir=out / "eval")
        rows[name] = {
            "steps": result.steps,
            "train_s": round(trained, 1),
            **summarise(evaluation.scorecard),
        }
        # the baselines do not depend on the variant: scored once, with the first
        rows.setdefault("persistence", summarise(evaluation.scorecard, "persistence"))
        rows.setdefault("climatology", summarise(evaluation.scorecard, "climatology"))
    print(
        f"\n{'model':<36} {'pm2p5 MAE':>10} {'pm2p5 ext':>10} {'pm10 MAE':>10} "
        f"{'pm10 ext':>10} {'lost p/c':>9}   (µg m-3, mean over leads 3-72 h; ext = RMSE "
        "above p99; lost p/c = PM2.5 leads not beating persistence / climatology on MAE)"
    )
    for name, row in rows.items():
        print(table_row(name, row, rows))
    if not args.no_record:
        append_result(
            args.results,
            {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "config": args.config,
                "max_steps": args.max_steps,
                "training": base.training.model_dump(mode="json"),
                "model": base.model.model_dump(mode="json"),
                "machine": {**machine_info(("torch",)), "load_average": os.getloadavg()},
                "results": rows,
            },
        )


if __name__ == "__main__":
    main()
