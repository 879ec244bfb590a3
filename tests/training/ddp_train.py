"""Run by ``torchrun`` in ``test_ddp_ranks_read_their_own_shares``: train a few steps on the
tiny store and write what this rank read and the weights it ended with to ``OUT/rank{R}.json``.

Usage: ``torchrun --standalone --nproc_per_node=2 ddp_train.py RECIPE OUT STEPS``.

The hook: the training loop's ``_batches`` is wrapped to learn which dataset is the training
one and to start a new list each epoch, and ``StoreSamples.__getitem__`` to record the index
of every training sample this process reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aircast.config import load_config
from aircast.data.batch import Batch
from aircast.data.dataset import StoreSamples
from aircast.model.forecaster import Forecaster
from aircast.training import loop


def main() -> None:
    recipe, out, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    reads: list[list[int]] = []
    training_sets: set[int] = set()
    models: list[Forecaster] = []

    batches = loop._batches

    def recorded_batches(samples: StoreSamples, order: np.ndarray, *args: Any) -> Iterator[Batch]:
        training_sets.add(id(samples))
        reads.append([])
        yield from batches(samples, order, *args)

    getitem = StoreSamples.__getitem__

    def recorded_getitem(self: StoreSamples, k: int) -> dict[str, Any]:
        if id(self) in training_sets:
            reads[-1].append(int(k))
        return getitem(self, k)

    build_model = loop.build_model

    def kept_model(*args: Any) -> tuple[Forecaster, Any]:
        model, channels = build_model(*args)
        models.append(model)
        return model, channels

    loop._batches = recorded_batches  # type: ignore[assignment]
    loop.build_model = kept_model  # type: ignore[assignment]
    StoreSamples.__getitem__ = recorded_getitem  # type: ignore[method-assign]

    result = loop.train(load_config(recipe), out_dir=out / "ckpt", resume=False, max_steps=steps)
    weights = b"".join(
        t.detach().contiguous().numpy().tobytes() for t in models[0].state_dict().values()
    )
    (out / f"rank{os.environ['RANK']}.json").write_text(
        json.dumps(
            {
                "world": int(os.environ["WORLD_SIZE"]),
                "steps": result.steps,
                "reads": reads,
                "weights": hashlib.sha256(weights).hexdigest(),
            }
        )
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
