"""The training flow end to end on the tiny store (:func:`aircast.testing.ensure_tiny_store`,
shared with the training tests: built once per session), with a real Prefect server
(``prefect_server``)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler

from aircast.testing import TINY_STEPS_PER_EPOCH
from aircast.training.checkpoint import load_checkpoint
from flows.train import train_forecaster

pytestmark = pytest.mark.usefixtures("prefect_server")


def flow_recipe(tiny_recipe: Path, root: Path) -> Path:
    """The tiny recipe reading the shared store, its checkpoints under ``root``."""
    data: dict[str, Any] = yaml.safe_load(tiny_recipe.read_text())
    data["store"] = {"url": str(tiny_recipe.parent / "store.zarr")}
    data["paths"] = {"root": str(root)}
    data["name"] = "tiny_train.flow"
    path = root / "recipe.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def run_artifacts(flow_run: UUID) -> dict[str, Any]:
    """The artifacts (by key) and log messages of a flow run."""
    APILogHandler().flush()  # logs travel to the server in batches: send what is queued
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run]))
        )
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run]))
        )
    return {"artifacts": {a.key: a for a in found if a.key}, "logs": [r.message for r in logs]}


@pytest.mark.usefixtures("one_thread")
def test_train_flow_writes_checkpoints_and_artifacts(tiny_recipe: Path, tmp_path: Path) -> None:
    recipe = flow_recipe(tiny_recipe, tmp_path / "run")
    steps = TINY_STEPS_PER_EPOCH + 2  # one epoch's end (validation), then 2 steps more
    state = train_forecaster(str(recipe), max_steps=steps, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    flow_run = state.state_details.flow_run_id
    assert flow_run is not None

    checkpoints = tmp_path / "run" / "checkpoints"
    assert summary["steps"] == steps and summary["epochs"] == 1
    assert summary["last"] == str(checkpoints / "last.ckpt")
    assert load_checkpoint(checkpoints / "last.ckpt").meta.step == steps
    assert (checkpoints / "best.ckpt").is_file()
    png = checkpoints / "loss.png"
    assert summary["loss_curve"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    found = run_artifacts(flow_run)
    artifact = found["artifacts"]["train-tiny-train-flow"]
    assert artifact.type == "markdown"
    text = str(artifact.data)
    assert f"**{steps} steps, 1 of 2 epochs** (from scratch;" in text
    # the validation table: a row per lead, a column per pollutant
    assert "| lead (h) | pm2p5 skill | go3_925 skill |" in text
    assert re.search(r"\| 12 \| [+-]\d\.\d{3} \| [+-]\d\.\d{3} \|", text)
    assert "| epoch | step | train loss |" in text and "\n| 1 | 15 | " in text
    # the curve is in the artifact itself and named on disk
    encoded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", text)
    assert encoded and base64.b64decode(encoded.group(1)) == png.read_bytes()
    assert f"`{png}`" in text
    # the loop's progress reached the run's log
    assert any(m.startswith("epoch 1/2  step 15") for m in found["logs"])

    # a second run goes on from last.ckpt and says so
    again = train_forecaster(str(recipe), max_steps=steps + 1, return_state=True)
    assert again.is_completed(), again.message
    assert again.result()["steps"] == steps + 1
    rerun = again.state_details.flow_run_id
    assert rerun is not None
    second = run_artifacts(rerun)
    assert "(resumed from `last.ckpt`;" in str(second["artifacts"]["train-tiny-train-flow"].data)
    assert any(m.startswith(f"resuming from {checkpoints / 'last.ckpt'}") for m in second["logs"])
