"""Run by ``torchrun --standalone --nproc_per_node=2`` in the GPU run's distributed stage.

Usage: ``torchrun --standalone --nproc_per_node=2 ddp_smoke.py RECIPE OUT STEPS``.

Both ranks share the one device (``pick_device``: LOCAL_RANK modulo the GPUs there are), over
gloo, set up here before ``train()`` (which then leaves the group alone): NCCL refuses two
ranks on one GPU. ``train()`` runs to STEPS fresh, then again to 2 × STEPS resuming from
``last.ckpt``. Each rank writes ``OUT/rank{R}.json``: its device, the steps of each call, the
gradient norm of every step (``clip_grad_norm_``'s, after DDP's all-reduce), the sha256 of its
final weights, which checkpoint writes it made and the step the second call resumed from.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from aircast.config import parse_config
from aircast.training import loop
from aircast.training.checkpoint import load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stages import recipe_data


def main() -> None:
    recipe, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo")
    data = recipe_data(recipe)
    data["training"] = {
        **data.get("training", {}),
        "batch_size": 2, "num_workers": 0, "in_memory": True, "epochs": 1000,
        "checkpoint_every_steps": 10**6, "device": "auto",
    }  # fmt: skip
    config = parse_config(data, str(recipe))
    norms: list[float] = []
    writes: list[str] = []
    models: list[torch.nn.Module] = []
    clip = torch.nn.utils.clip_grad_norm_

    def recorded_clip(parameters: Any, max_norm: float, *args: Any, **kwargs: Any) -> torch.Tensor:
        norm = clip(parameters, max_norm, *args, **kwargs)
        norms.append(float(norm))
        return norm

    save = loop.save_checkpoint

    def recorded_save(path: Path, *args: Any, **kwargs: Any) -> Path:
        writes.append(Path(path).name)
        return save(path, *args, **kwargs)

    build_model = loop.build_model

    def kept_model(*args: Any) -> Any:
        model, channels = build_model(*args)
        models.append(model)
        return model, channels

    torch.nn.utils.clip_grad_norm_ = recorded_clip  # type: ignore[assignment]
    loop.save_checkpoint = recorded_save  # type: ignore[assignment]
    loop.build_model = kept_model  # type: ignore[assignment]
    ckpt_dir = out / "ckpt"
    first = loop.train(config, out_dir=ckpt_dir, resume=False, max_steps=steps)
    dist.barrier()
    resumed_from = load_checkpoint(ckpt_dir / "last.ckpt").meta.step
    second = loop.train(config, out_dir=ckpt_dir, resume=True, max_steps=2 * steps)
    weights = b"".join(
        t.detach().cpu().contiguous().numpy().tobytes() for t in models[-1].state_dict().values()
    )
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "rank": rank,
                "world": dist.get_world_size(),
                "backend": dist.get_backend(),
                "device": str(next(models[-1].parameters()).device),
                "steps": [first.steps, second.steps],
                "grad_norms": norms,
                "weights": hashlib.sha256(weights).hexdigest(),
                "writes": writes,
                "resumed_from": resumed_from,
            }
        )
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
