"""One day's forecast: initial conditions → checked model → rollout → a publishable run.

The pieces of one day's forecast, as plain functions:

1. :func:`resolve_checkpoint`: the recipe's checkpoint (``forecast.checkpoint``, else the
   training's ``best.ckpt``), checked against the training store it will run on;
2. :func:`prepare_forecast`: the initial conditions from the raw cache
   (:mod:`aircast.forecast.initial`), their health check, the fallback policy, and
3. :func:`make_forecast`: the model rolled out to ``forecast.lead_hours`` every 3 h, lead 0
   being the initial state itself, as a :class:`~aircast.forecast.publish.ForecastRun` whose
   provenance names the checkpoint, the inputs and the code.

Their order, the fetching of the inputs, publishing (:func:`aircast.forecast.publish.
publish_forecast`) under the writers' concurrency slot and the verification are the daily
forecast job's (:mod:`aircast.jobs.forecast`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import aircast
from aircast.align.time import STEP_HOURS
from aircast.config import AirCastConfig
from aircast.data.batch import Batch
from aircast.dates import DateError
from aircast.forecast.initial import (
    HealthReport,
    InitialConditions,
    InputError,
    check_health,
    load_initial_conditions,
)
from aircast.forecast.publish import ForecastRun
from aircast.forecast.rollout import rollout
from aircast.model.forecaster import Forecaster
from aircast.store.reader import TrainingStore
from aircast.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    load_forecaster,
)
from aircast.training.loop import checkpoint_dir

LOG = logging.getLogger(__name__)


def check_forecast_date(day: dt.date, store: TrainingStore) -> None:
    """Refuse a date before the training store's first day or after today (UTC).

    Raises
    ------
    DateError
        Naming the date, the limit and the dates that may be forecast.
    """
    first = dt.date.fromisoformat(str(np.datetime64(store.times[0], "D")))
    if day < first:
        raise DateError(
            f"date = {day} is before the training store, which starts on {first}: the "
            f"forecast's static fields and statistics come from it; choose a date from {first} on"
        )
    today = dt.datetime.now(dt.UTC).date()
    if day > today:
        raise DateError(
            f"date = {day} is in the future (today is {today} UTC): its 00 UTC run does not "
            "exist yet; choose a date up to today"
        )


def resolve_checkpoint(config: AirCastConfig) -> Path:
    """The checkpoint a recipe forecasts with.

    Raises
    ------
    CheckpointError
        When there is none, naming where it was looked for and how to make one.
    """
    path = config.forecast.checkpoint or checkpoint_dir(config) / "best.ckpt"
    if not Path(path).is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; train the model first (`aircast train CONFIG`), or set "
            "forecast.checkpoint in the recipe to an existing .ckpt file"
        )
    return Path(path)


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A checkpoint's forecaster, ready to run on one training store's grid."""

    checkpoint: Checkpoint
    model: Forecaster
    sha256: str
    direct_hours: int

    @classmethod
    def load(cls, path: Path, store: TrainingStore) -> LoadedModel:
        """Load and check ``path`` against ``store`` (raises ``CheckpointError``)."""
        ckpt = load_checkpoint(path)
        model = load_forecaster(ckpt, store)
        leads = ckpt.meta.recipe.get("training", {}).get("lead_hours") or [24]
        return cls(ckpt, model, ckpt.sha256, int(max(leads)))


def make_forecast(
    loaded: LoadedModel,
    ic: InitialConditions,
    *,
    lead_hours: int,
    store: TrainingStore,
    health: HealthReport | None = None,
    extra_provenance: dict[str, Any] | None = None,
) -> ForecastRun:
    """Roll the model out from ``ic`` to ``lead_hours``; lead 0 is the initial state.

    Values stay in training-store units; publishing converts them.
    """
    model = loaded.model
    if ic.channels != model.input_channels:
        raise CheckpointError(
            f"the initial state's channels {list(ic.channels)} are not the model's inputs "
            f"{list(model.input_channels)}; use a checkpoint trained on this store"
        )
    batch = Batch(
        inputs=torch.from_numpy(ic.values[None]).float(),
        lead_hours=torch.zeros(1),
        init_time=np.array([ic.init_time], dtype="datetime64[ns]"),
        grid=store.grid,
        input_channels=ic.channels,
        target_channels=model.target_channels,
    )
    leads = tuple(range(0, lead_hours + 1, STEP_HOURS))
    values = np.empty((len(leads), len(model.target_channels), *ic.values.shape[1:]), np.float32)
    values[0] = ic.values[list(model.target_index.tolist())]
    with torch.inference_mode():
        steps = rollout(
            model,
            batch,
            max_lead_hours=lead_hours,
            direct_hours=min(loaded.direct_hours, lead_hours),
        )
        for lead, prediction in steps:
            values[lead // STEP_HOURS] = prediction.values[0].numpy()
    meta = loaded.checkpoint.meta
    provenance: dict[str, Any] = {
        "checkpoint_sha256": loaded.sha256,
        "checkpoint_step": meta.step,
        "training_store_fingerprint": store.fingerprint,
        "input_request_ids": list(ic.request_ids),
        "input_source": ic.source,
        "input_health": "not checked"
        if health is None
        else ("healthy" if health.ok else "; ".join(health.problems)),
        "code_version": aircast.__version__,
        "rollout": f"direct to {loaded.direct_hours} h, then from the {loaded.direct_hours} h "
        "forecast",
        **(extra_provenance or {}),
    }
    return ForecastRun(
        init_time=ic.init_time,
        lead_hours=leads,
        channels=model.target_channels,
        values=values,
        latitudes=np.asarray(store.ds["latitude"].values),
        longitudes=np.asarray(store.ds["longitude"].values),
        provenance=provenance,
    )


@dataclasses.dataclass(frozen=True)
class PreparedForecast:
    """A forecast ready to publish, and how its initial conditions fared."""

    run: ForecastRun
    initial: InitialConditions
    health: HealthReport
    fallback: bool


def prepare_forecast(
    config: AirCastConfig,
    store: TrainingStore,
    loaded: LoadedModel,
    day: dt.date,
    *,
    on_health: Callable[[HealthReport], None] | None = None,
) -> PreparedForecast:
    """The forecast of ``day`` 00 UTC from the raw cache's CAMS runs, not yet published.

    ``on_health`` receives each health report as soon as it is made (the flow's artifact, the
    command line's table), also when the inputs then fail.

    Raises
    ------
    InputError
        When the inputs are missing or unhealthy and ``forecast.fallback_to_previous_cycle``
        is off (or the fallback is missing or unhealthy too): nothing may be published.
    """
    settings = config.forecast
    fallback = False
    try:
        ic = load_initial_conditions(config, store, day)
        health = check_health(ic, store, settings.health)
        if on_health is not None:
            on_health(health)
        failure = None if health.ok else "; ".join(health.problems)
    except InputError as exc:
        failure = str(exc)
    if failure is not None:
        if not settings.fallback_to_previous_cycle:
            raise InputError(
                f"the initial conditions of {day} 00 UTC cannot be used: {failure}; nothing "
                "was published (set forecast.fallback_to_previous_cycle: true to start from "
                "the previous day's run instead)"
            )
        LOG.warning("falling back to the previous cycle: %s", failure)
        fallback = True
        ic = load_initial_conditions(config, store, day, previous_cycle=True)
        health = check_health(ic, store, settings.health)
        if on_health is not None:
            on_health(health)
        if not health.ok:
            raise InputError(
                f"the fallback initial conditions for {day} are unhealthy too: "
                + "; ".join(health.problems)
                + "; nothing was published"
            )
    if settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)
    run = make_forecast(
        loaded,
        ic,
        lead_hours=settings.lead_hours,
        store=store,
        health=health,
        extra_provenance={"fallback_to_previous_cycle": fallback, "recipe": config.name},
    )
    return PreparedForecast(run, ic, health, fallback)
