"""AirCast's Prefect deployments, in one place, for local serving and for production work pools.

:func:`deployments` builds every deployment (one per operator-facing flow); both ways of
running them use it:

``python -m flows.deploy --serve [--config RECIPE]``
    Registers the deployments and serves them from this process (``prefect.serve``): a run
    started from the UI, the API or the schedule executes in a subprocess of this process. For a
    laptop, the demo, the UI walk-through of the README and the browser test.

``python -m flows.deploy --pools [--config RECIPE] [--code-dir DIR]``
    Registers the same deployments to the work pools of ``infra/pools.yaml`` (``aircast-cpu``:
    ingest, build, extend, backfill; ``aircast-gpu``: train, daily forecast) without building
    an image: the workers run the code already at ``--code-dir`` (default: this checkout; in
    the images, where the project is installed). Create the pools first with
    ``infra/prefect/bootstrap.py``, then start a worker per pool
    (``prefect worker start --pool aircast-cpu``).

Both need ``PREFECT_API_URL`` (e.g. ``http://127.0.0.1:4200/api``): without it Prefect would
register the deployments on a throwaway temporary server.

The deployments (``<flow>/<deployment>``)::

    ingest-all/ingest-all                      ERA5 + CAMS for a date range
    build-training-store/build-training-store  staged store build from the raw cache
    extend-training-store/extend-training-store
    train-forecaster/train-forecaster
    daily-forecast/daily-forecast              cron 0 7 * * * UTC; what backfills run
    backfill-forecasts/backfill-forecasts      one daily-forecast run per date of a range

Every deployment takes the recipe as its ``config`` parameter, whose default ``--config`` sets
(default ``configs/demo.yaml``, relative to the working directory of the runs: the repository
root). Dates are ISO strings ``YYYY-MM-DD``; the parameter schema the UI's run form is built
from carries each parameter's description (from the flow's docstring) and an ISO-date pattern,
so the form rejects ``2019/06/02`` before a run is created.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from prefect import Flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Schedule

from flows.backfill import FORECAST_DEPLOYMENT, backfill_forecasts
from flows.build import build_training_store, extend_training_store
from flows.forecast import daily_forecast
from flows.ingest import DEFAULT_CONFIG, ingest_all
from flows.train import train_forecaster

#: The repository root: entrypoints are relative to it, and ``--serve`` runs from it.
REPO_ROOT = Path(__file__).resolve().parents[1]
#: The work pools and the flows each one runs (infra/pools.yaml, owned by infra/).
POOLS_FILE = REPO_ROOT / "infra" / "pools.yaml"
CPU_POOL = "aircast-cpu"
GPU_POOL = "aircast-gpu"

#: The daily forecast's schedule: the CAMS 00 UTC forecast is out by about 06-07 UTC.
DAILY_CRON = "0 7 * * *"
TIMEZONE = "UTC"
#: Daily-forecast runs at once. Backfills go through this deployment, so this, not the number
#: of dates, bounds the forecasts in flight (backfill_forecasts' max_concurrent defaults to the
#: same 2); a third run waits in AwaitingConcurrencySlot (ENQUEUE), it is not dropped.
DAILY_CONCURRENCY = 2
#: One backfill at a time. Overlapping backfills would be harmless (each date's run has a
#: deterministic idempotency key, so both wait on the same run) but pointless: they compete for
#: the same DAILY_CONCURRENCY slots, and a second one started by mistake (a double click in the
#: UI) should queue behind the first and then find its dates published, not interleave its
#: runs with it. A backfill never waits on itself: its runs belong to daily-forecast, so this
#: limit cannot deadlock.
BACKFILL_CONCURRENCY = 1
#: Build, extend and train write one store or checkpoint folder per recipe; two runs at once
#: would race on it. Ingest is left unbounded here: its writes are atomic per request and the
#: global limits aircast-cds / aircast-ads bound what it asks of the data stores.
WRITER_CONCURRENCY = 1

#: ``YYYY-MM-DD``, for the run form's validation (the flows parse the date again); an optional
#: date (the daily forecast's: empty means today) may also be left empty.
ISO_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
OPTIONAL_ISO_DATE_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"
#: Parameters that hold an ISO date.
DATE_PARAMETERS = frozenset({"date", "start", "end"})


@dataclass(frozen=True)
class Spec:
    """One deployment: which flow, its entry point, the pool it runs on, and its limits."""

    flow: Flow[..., Any]
    entrypoint: str
    pool: str
    description: str
    concurrency: int | None = None
    schedule: Schedule | None = None

    @property
    def name(self) -> str:
        """The deployment's name: the flow's name, so the full name reads ``x/x``."""
        return self.flow.name


def specs() -> list[Spec]:
    """Every AirCast deployment, in the order an operator meets them."""
    return [
        Spec(
            ingest_all,
            "flows/ingest.py:ingest_all",
            CPU_POOL,
            "Fetch ERA5 and the CAMS reanalysis (optionally the CAMS forecasts) for a date "
            "range into the recipe's raw cache.",
        ),
        Spec(
            build_training_store,
            "flows/build.py:build_training_store",
            CPU_POOL,
            "Build (or finish building) the recipe's training store from its raw cache.",
            concurrency=WRITER_CONCURRENCY,
        ),
        Spec(
            extend_training_store,
            "flows/build.py:extend_training_store",
            CPU_POOL,
            "Append ingested days after the end of the recipe's training store.",
            concurrency=WRITER_CONCURRENCY,
        ),
        Spec(
            train_forecaster,
            "flows/train.py:train_forecaster",
            GPU_POOL,
            "Train (or go on training) the recipe's forecaster on its training store.",
            concurrency=WRITER_CONCURRENCY,
        ),
        Spec(
            daily_forecast,
            "flows/forecast.py:daily_forecast",
            GPU_POOL,
            "Forecast one date's 00 UTC cycle to 72 h, publish it and verify older forecasts. "
            f"Scheduled every day at 07:00 UTC for today; at most {DAILY_CONCURRENCY} runs at "
            "once (backfills included).",
            concurrency=DAILY_CONCURRENCY,
            schedule=Cron(DAILY_CRON, timezone=TIMEZONE),
        ),
        Spec(
            backfill_forecasts,
            "flows/backfill.py:backfill_forecasts",
            CPU_POOL,
            "Forecast every date of start..end (inclusive) that is not published yet, as runs "
            f"of {FORECAST_DEPLOYMENT}; idempotent, so running it again is safe.",
            concurrency=BACKFILL_CONCURRENCY,
        ),
    ]


def deployments(config: str = DEFAULT_CONFIG) -> list[RunnerDeployment]:
    """Every AirCast deployment, its ``config`` parameter defaulting to ``config``.

    Pool-agnostic: ``--serve`` serves them as they are, ``--pools`` sets each one's pool
    (:func:`pool_assignments`) and code location before registering it.
    """
    built = []
    for spec in specs():
        # to_deployment is sync here (called outside an event loop); typed as either
        deployment = cast(
            RunnerDeployment,
            spec.flow.to_deployment(
                name=spec.name,
                description=spec.description,
                parameters={"config": config},
                schedules=[spec.schedule] if spec.schedule is not None else None,
                concurrency_limit=(
                    ConcurrencyLimitConfig(
                        limit=spec.concurrency, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
                    )
                    if spec.concurrency is not None
                    else None
                ),
                tags=["aircast"],
            ),
        )
        # relative to the repository root, wherever this was started from (Prefect would
        # make it relative to the current directory)
        deployment.entrypoint = spec.entrypoint
        describe_parameters(deployment, spec.flow, config)
        built.append(deployment)
    return built


def describe_parameters(deployment: RunnerDeployment, flow: Flow[..., Any], config: str) -> None:
    """Make the parameter schema the UI's run form is built from say what each field wants.

    Prefect generates the schema from the signature (types and defaults) and reads parameter
    descriptions from Google-style docstrings only; AirCast's are numpy-style, so they are
    read here. ISO-date parameters get a ``YYYY-MM-DD`` pattern, which the form checks
    before it creates a run, and ``config`` shows this deployment's default.
    """
    docs = parameter_docs(flow.fn)
    schema = deployment._parameter_openapi_schema
    properties: dict[str, Any] = schema.properties
    required = set(schema.required or ())
    for name, prop in properties.items():
        if name in docs and "description" not in prop:
            prop["description"] = docs[name]
        if name in DATE_PARAMETERS:
            for branch in prop.get("anyOf", [prop]):
                if branch.get("type") == "string":
                    branch["pattern"] = (
                        ISO_DATE_PATTERN if name in required else OPTIONAL_ISO_DATE_PATTERN
                    )
        if name == "config":
            prop["default"] = config


def parameter_docs(fn: Callable[..., Any]) -> dict[str, str]:
    """Each parameter's description from a numpy-style docstring, as one line of plain text.

    RST literals lose their backquotes: the V1 UI renders descriptions as Markdown, the V2 UI
    as text, so plain text reads well in both.
    """
    from griffe import Docstring, DocstringSectionKind, Parser
    from prefect.logging.loggers import disable_logger

    if not fn.__doc__:
        return {}
    found: dict[str, str] = {}
    with disable_logger("griffe"):  # it warns about every parameter without a type
        sections = Docstring(fn.__doc__, lineno=1).parse(Parser.numpy)
    for section in sections:
        if section.kind is DocstringSectionKind.parameters:
            for parameter in section.value:
                text = " ".join(parameter.description.split())
                found[parameter.name] = re.sub(r"``([^`]+)``", r"\1", text)
    return found


def pool_assignments(path: Path = POOLS_FILE) -> dict[str, str]:
    """Flow name → work pool, from ``infra/pools.yaml`` (the one place that names the pools).

    Without that file (a checkout without infra/), the pools of :func:`specs` are used.
    """
    if not path.is_file():
        return {spec.flow.name: spec.pool for spec in specs()}
    import yaml

    spec_file: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    assigned: dict[str, str] = {}
    for pool, entry in (spec_file.get("work_pools") or {}).items():
        for flow_name in (entry or {}).get("flows") or []:
            assigned[str(flow_name)] = str(pool)
    return assigned


def to_pools(
    built: Sequence[RunnerDeployment], code_dir: Path, pools: Mapping[str, str]
) -> dict[str, list[RunnerDeployment]]:
    """The deployments grouped by work pool, each reading its code from ``code_dir``.

    The code is not copied anywhere: the workers' runs change to ``code_dir`` (a
    ``set_working_directory`` pull step) and import the entrypoint from there, so the workers
    need the project at that path (the images have it; on a host, this checkout).
    """
    from prefect.runner.storage import LocalStorage

    missing = [str(d.flow_name) for d in built if d.flow_name not in pools]
    if missing:
        raise SystemExit(
            f"error: {POOLS_FILE.relative_to(REPO_ROOT)} assigns no work pool to the flow(s) "
            f"{', '.join(missing)}: add each under work_pools.<pool>.flows"
        )
    grouped: dict[str, list[RunnerDeployment]] = {}
    for deployment in built:
        pool = pools[str(deployment.flow_name)]
        deployment.storage = LocalStorage(path=str(code_dir))
        deployment.work_pool_name = pool
        grouped.setdefault(pool, []).append(deployment)
    return grouped


def register_to_pools(config: str, code_dir: Path) -> int:
    """``--pools``: register every deployment to its work pool; exit status."""
    from prefect import deploy

    grouped = to_pools(deployments(config), code_dir, pool_assignments())
    for pool, members in grouped.items():
        try:
            deploy(
                *members,
                work_pool_name=pool,
                build=False,
                push=False,
                print_next_steps_message=False,
                ignore_warnings=True,
            )
        except ValueError as exc:  # e.g. "Could not find work pool 'aircast-gpu'"
            print(
                f"error: {exc}\nCreate the pools first: python infra/prefect/bootstrap.py",
                file=sys.stderr,
            )
            return 1
    for pool in grouped:
        print(f"start a worker for {pool}: prefect worker start --pool {pool}")
    return 0


def serve_here(config: str) -> int:
    """``--serve``: register the deployments and run their runs in subprocesses of this one."""
    from prefect import serve

    os.chdir(REPO_ROOT)  # the runs' working directory: entrypoints and recipes are relative to it
    serve(*deployments(config))
    return 0


def _config_for_serve(config: str) -> str:
    """``config`` as the runs (started in the repository root) will find it."""
    path = Path(config)
    if path.is_absolute() or not path.exists():
        return config  # not ours to second-guess: the flow reports a missing recipe
    resolved = path.resolve()
    if resolved.is_relative_to(REPO_ROOT):
        return str(resolved.relative_to(REPO_ROOT))
    return str(resolved)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.deploy``: serve the deployments here, or register them to pools."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.deploy",
        description="Register AirCast's Prefect deployments and serve them from this process "
        "(--serve), or register them to the work pools of infra/pools.yaml (--pools). "
        "PREFECT_API_URL names the server.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--serve", action="store_true", help="serve them here (local, UI, demo)")
    mode.add_argument("--pools", action="store_true", help="register them to the work pools")
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        help="the recipe every deployment defaults to (default: %(default)s)",
    )
    parser.add_argument(
        "--code-dir",
        type=Path,
        default=REPO_ROOT,
        help="with --pools: where the workers have this repository (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        print(
            "error: PREFECT_API_URL is not set; point it at the Prefect server "
            "(e.g. http://127.0.0.1:4200/api, see the README)",
            file=sys.stderr,
        )
        return 2
    if args.serve:
        return serve_here(_config_for_serve(args.config))
    return register_to_pools(args.config, args.code_dir)


if __name__ == "__main__":
    sys.exit(main())
