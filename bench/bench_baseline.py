"""What a trained model's network adds to its baseline, and what the anomaly decay is worth.

A model with ``model.residual: climatology_anomaly`` forecasts its baseline (damped anomaly
persistence, :meth:`aircast.model.forecaster.Forecaster.baseline`) plus the heads' correction.
This bench scores one checkpoint on a period four ways, through the same
:func:`aircast.evaluation.scorecard.evaluate` as the ablation:

- as trained;
- with its heads zeroed: the baseline alone, at the learned decay;
- with the decay removed (the whole initial anomaly kept at every lead), with and without the
  heads: at 24 h multiples the baseline is then exactly persistence.

and prints PM2.5 / PM10 MAE and extreme RMSE, the leads lost to persistence and climatology,
and the MAE at 24, 48 and 72 h; results are appended to ``results/baseline.json``.

    .venv/bin/python bench/bench_baseline.py \
        --checkpoint data/ablation/seed0/multi-task_fMAE_inverse_log/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from bench_ablation import summarise, table_row
from recording import append_result, machine_info  # bench/ is on sys.path when a bench runs

from aircast.config import load_config
from aircast.evaluation.scorecard import evaluate
from aircast.training.checkpoint import load_checkpoint, save_checkpoint

RESULTS = Path(__file__).parent / "results" / "baseline.json"
#: softplus⁻¹ of a rate this small keeps exp(-rate · 3 days) = 1 to float32 precision
NO_DECAY = math.log(math.expm1(1e-7))
REPORT_LEADS = (24, 48, 72)


def variants(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """The four model states scored, by name."""
    if "anomaly_decay" not in state:
        raise SystemExit(
            "the checkpoint's model corrects persistence (model.residual: persistence): it has "
            "no anomaly decay to probe; pass a checkpoint of the climatology_anomaly residual"
        )
    no_decay = {**state, "anomaly_decay": torch.full_like(state["anomaly_decay"], NO_DECAY)}

    def headless(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: torch.zeros_like(v) if k.startswith("heads.") else v for k, v in s.items()}

    return {
        "trained": state,
        "baseline alone (learned decay)": headless(state),
        "trained, no decay": no_decay,
        "baseline alone, no decay": headless(no_decay),
    }


def maes_at(row: dict[str, Any], leads: tuple[int, ...]) -> str:
    """A row's PM2.5 MAE at ``leads`` (hours, every 3 h from 3 h) as printed: ``-`` for a lead
    past the recipe's rollout horizon (``training.max_lead_hours``)."""
    mae = np.asarray(row["pm2p5"]["mae_by_lead"])
    return "/".join(f"{mae[lead // 3 - 1]:.3f}" if lead // 3 <= mae.size else "-" for lead in leads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--period", default="test", choices=["validation", "test"])
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON list appended to")
    args = parser.parse_args()
    config = load_config(args.config)
    torch.set_num_threads(1)  # two cores shared with other jobs: one thread is steadier
    ckpt = load_checkpoint(args.checkpoint)
    kept = torch.exp(-F.softplus(ckpt.model.get("anomaly_decay", torch.zeros(1))))
    print(f"learned kept fraction per day, by target channel: {kept.numpy().round(3).tolist()}")
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, state in variants(ckpt.model).items():
            path = Path(tmp) / "probe.ckpt"
            save_checkpoint(path, ckpt.meta, state, ckpt.extra)
            card = evaluate(path, config, period=args.period, out_dir=Path(tmp) / "eval").scorecard
            rows[name] = summarise(card)
            rows.setdefault("persistence", summarise(card, "persistence"))
            rows.setdefault("climatology", summarise(card, "climatology"))
            print(f"scored: {name}")
    print(
        f"\n{'model':<32} {'pm2p5 MAE':>10} {'pm2p5 ext':>10} {'pm10 MAE':>10} {'pm10 ext':>10} "
        f"{'lost p/c':>9} {'pm2p5 MAE 24/48/72 h':>22}   (µg m-3, mean over leads 3-72 h)"
    )
    for name, row in rows.items():
        by_lead = maes_at(row, REPORT_LEADS)
        print(f"{table_row(name, row, rows, width=32)} {by_lead:>22}")
    if not args.no_record:
        append_result(
            args.results,
            {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "config": args.config,
                "checkpoint": str(args.checkpoint),
                "period": args.period,
                "kept_per_day": [round(float(v), 4) for v in kept],
                "machine": {**machine_info(("torch",)), "load_average": os.getloadavg()},
                "results": rows,
            },
        )


if __name__ == "__main__":
    main()
