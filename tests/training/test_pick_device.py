"""``pick_device``: which device a (torchrun) rank trains on, for any number of visible GPUs.

CUDA's presence is faked (``is_available``, ``device_count``): the logic is the rank-to-GPU
mapping, which a CPU machine can check; ``torch.device("cuda", i)`` needs no GPU to exist.
"""

from __future__ import annotations

import pytest
import torch

from aircast.training.loop import pick_device


def fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize(
    ("gpus", "local_ranks", "expected"),
    [
        (1, [0, 1], [0, 0]),  # two ranks on one GPU (the gloo smoke run): both on cuda:0
        (2, [0, 1], [0, 1]),  # one GPU per rank
        (2, [0, 1, 2, 3], [0, 1, 0, 1]),  # four ranks on two GPUs: two on each
        (8, [3], [3]),
    ],
)
def test_ranks_share_the_gpus_there_are(
    monkeypatch: pytest.MonkeyPatch, gpus: int, local_ranks: list[int], expected: list[int]
) -> None:
    fake_gpus(monkeypatch, gpus)
    picked = []
    for rank in local_ranks:
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        picked.append(pick_device("auto"))
    assert picked == [torch.device("cuda", i) for i in expected]


def test_without_torchrun_the_first_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 4)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert pick_device("cuda") == torch.device("cuda", 0)


def test_cpu_when_asked_or_when_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 2)
    assert pick_device("cpu") == torch.device("cpu")
    fake_gpus(monkeypatch, 0)
    assert pick_device("auto") == torch.device("cpu")


def test_cuda_without_a_gpu_says_what_to_change(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 0)
    with pytest.raises(RuntimeError, match=r"no CUDA device is visible: set training\.device"):
        pick_device("cuda")
