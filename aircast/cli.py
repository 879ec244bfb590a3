"""The ``aircast`` command: thin wrappers over the package's modules.

Every user error (:class:`aircast.errors.AirCastError`) becomes one clear message on stderr and
exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from aircast.errors import AirCastError

app = typer.Typer(
    name="aircast",
    help=(
        "AirCast: air-pollution forecasts from ERA5 weather and CAMS composition.\n\n"
        "Start with `aircast demo` (runs on the local sandbox data store, no account needed), "
        "`aircast config validate configs/demo.yaml`, or `aircast sandbox serve`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)
sandbox_app = typer.Typer(
    help="The local sandbox data store (speaks the Copernicus CDS/ADS API).",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
app.add_typer(sandbox_app, name="sandbox")


def _fail(exc: Exception) -> typer.Exit:
    """Print a user error on stderr; the caller raises the returned Exit (code 2)."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


@config_app.command("validate")
def config_validate(
    path: Annotated[Path, typer.Argument(help="YAML config file, e.g. configs/demo.yaml")],
) -> None:
    """Validate a config file; exit 2 with one line per problem (key, bad value, fix)."""
    from aircast.config import load_config

    try:
        config = load_config(path)
    except AirCastError as exc:
        raise _fail(exc) from None
    n_lat, n_lon = config.lat_lon_shape
    channels = config.variables.channels()
    typer.echo(
        f"{path}: valid. '{config.name}': {n_lat}×{n_lon} grid at {config.grid.resolution}°, "
        f"{len(channels)} channels, train {config.periods.train.start}..{config.periods.train.end}"
    )


@sandbox_app.command("serve")
def sandbox_serve(
    port: Annotated[int, typer.Option(help="TCP port (0: any free port)")] = 8765,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    key: Annotated[str, typer.Option(help="API key clients must send (no ':')")] = (
        "aircast-sandbox"
    ),
    faults: Annotated[
        str | None,
        typer.Option(
            help="Fault spec, e.g. 'throttle=0.2,fail=0.05,missing=2019-01-03,seed=7' "
            "(see aircast.sandbox.faults)"
        ),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where rendered files go (default: a temporary folder)")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the toy atmosphere")] = 0,
) -> None:
    """Serve the sandbox data store until Ctrl-C; point cdsapi at the URL it prints."""
    import signal
    import threading

    from aircast.sandbox.faults import FaultPlan
    from aircast.sandbox.server import SandboxServer

    try:
        plan = FaultPlan.coerce(faults)
        server = SandboxServer(
            host=host, port=port, key=key, faults=plan, data_dir=data_dir, seed=seed
        ).start()
    except (AirCastError, ValueError) as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise _fail(
            OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port")
        ) from None
    typer.echo(f"AirCast sandbox data store at {server.url}  (key: {server.key})")
    typer.echo(f"files in {server.data_dir}; faults: {plan.to_spec() if plan.active else 'none'}")
    typer.echo(
        "\n    import cdsapi\n"
        f"    client = cdsapi.Client(url={server.url!r}, key={server.key!r})\n"
        "    client.retrieve('reanalysis-era5-single-levels', request, 'out.grib')\n"
    )
    typer.echo(f"or: export CDSAPI_URL={server.url} CDSAPI_KEY={server.key}\nCtrl-C stops.")

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # a service manager stops it like Ctrl-C
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        server.stop()


class _Terminal(logging.Handler):
    """Information on stdout as plain lines, warnings and errors on stderr.

    The streams are looked up at each record, not kept: a command run in-process (the tests'
    runner) swaps ``sys.stdout`` for each call and closes the old one afterwards.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.WARNING:
                sys.stderr.write(f"{record.levelname.lower()}: {text}\n")
                sys.stderr.flush()
            else:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
        except Exception:  # a log line must never break a command
            self.handleError(record)


def log_to_terminal(level: int = logging.INFO) -> None:
    """Print the ``aircast`` logger's records: the job runners say what they do through it.

    Data-store keys are masked. Idempotent (the tests call commands in one process).
    """
    from aircast.sources.datastore import mask_secrets_in

    logger = logging.getLogger("aircast")
    logger.setLevel(level)
    if not any(isinstance(h, _Terminal) for h in logger.handlers):
        logger.addHandler(_Terminal())
    logger.propagate = False  # printed once, here, not again by a root handler
    mask_secrets_in("aircast")


@app.command("ingest")
def ingest_command(
    config_path: Annotated[
        Path, typer.Argument(metavar="CONFIG", help="recipe, e.g. configs/demo.yaml")
    ],
    start: Annotated[str, typer.Option(help="first day, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="last day, YYYY-MM-DD")],
    source: Annotated[
        list[str] | None,
        typer.Option(help="era5, eac4 or forecast; repeat for several (default: era5 and eac4)"),
    ] = None,
) -> None:
    """Fetch ERA5 and CAMS for a date range into the recipe's raw cache (no Prefect needed).

    Requests already in the cache are not sent again; requests an interrupted run submitted
    are resumed by their request id. Exit 2 when a request failed.
    """
    from aircast.config import load_config
    from aircast.dates import parse_range
    from aircast.jobs.ingest import IngestFailed, run_ingest
    from aircast.sources.base import Source
    from aircast.sources.registry import SOURCES

    log_to_terminal()
    try:
        config = load_config(config_path)
        first, last = parse_range(start, end)
        chosen: list[Source] = []
        for name in source or ("era5", "eac4"):
            if name not in SOURCES:
                raise typer.BadParameter(f"unknown source {name!r}; choose from {SOURCES}")
            chosen.append(name)  # type: ignore[arg-type]  # checked against SOURCES above
        try:
            result = run_ingest(config, chosen, first, last)
        except IngestFailed as exc:
            result = exc.result
    except AirCastError as exc:
        raise _fail(exc) from None
    for name, report in result.reports.items():
        typer.echo(f"{name}: {report.summary()}")
    for failure in result.failed:
        typer.secho(f"  failed: {failure.request.label}: {failure.error}", fg="red", err=True)
    typer.echo(
        f"raw files: {config.paths.raw / 'files'} (manifest {config.paths.raw / 'manifest.sqlite'})"
    )
    if result.failed:
        raise typer.Exit(code=2)


# ---- aircast store: the training store (aircast.store) ------------------------------------

store_app = typer.Typer(
    help="The training store: build it from the raw cache, extend it, inspect it.",
    no_args_is_help=True,
)
app.add_typer(store_app, name="store")


@store_app.command("build")
def store_build(
    config_path: Annotated[
        Path, typer.Argument(metavar="CONFIG", help="recipe, e.g. configs/demo.yaml")
    ],
    serial: Annotated[
        bool, typer.Option("--serial", help="load the parts one by one in this process")
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address (default: store.dask_scheduler, else local)"),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="worker processes of the local cluster")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="reload every part, even those already current")
    ] = False,
    accept_holes: Annotated[
        bool,
        typer.Option(
            "--accept-holes",
            help="build requests that could not be fetched as missing times (each with its "
            "reason in missing_times) instead of stopping",
        ),
    ] = False,
) -> None:
    """Build the training store from the raw cache: init → parts (Dask) → finalise → verify.

    Resumes: parts already loaded from unchanged inputs are skipped. Exit 2 on a user error
    (days not ingested or not fetched, a damaged raw file, a store of another recipe at
    store.url, …). Only days the data store has no data for become missing times, unless
    ``--accept-holes``.
    """
    from aircast.config import load_config, parse_config
    from aircast.jobs.build import build_executor, run_build

    log_to_terminal()
    try:
        config = load_config(config_path)
        settings: dict[str, Any] = {}
        if scheduler is not None:
            settings["dask_scheduler"] = scheduler
        if workers is not None:
            settings["dask_workers"] = workers
        if settings:  # validated like the file, so a bad option gets the same clear message
            data = config.model_dump(mode="json", exclude_unset=True)
            data["store"] = {**data.get("store", {}), **settings}
            config = parse_config(data, f"{config_path} with command-line options")
        with build_executor(config, serial=serial) as executor:
            result = run_build(
                config, executor=executor, resume=not rebuild, accept_holes=accept_holes
            )
    except AirCastError as exc:
        raise _fail(exc) from None
    timings = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.seconds.items())
    typer.echo(
        f"built {result.url}: {len(result.loaded)} parts loaded, {len(result.skipped)} current, "
        f"{result.n_missing} missing times ({timings})"
    )


@store_app.command("extend")
def store_extend(
    config_path: Annotated[
        Path, typer.Argument(metavar="CONFIG", help="recipe, e.g. configs/demo.yaml")
    ],
    start: Annotated[str, typer.Option(help="first new day, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="last new day, YYYY-MM-DD")],
) -> None:
    """Append ingested days after the store's last day (existing chunks are not rewritten)."""
    from aircast.config import load_config
    from aircast.dates import parse_range
    from aircast.jobs.build import run_extend

    log_to_terminal()
    try:
        config = load_config(config_path)
        first, last = parse_range(start, end)
        run_extend(config, first, last)
    except AirCastError as exc:
        raise _fail(exc) from None


@store_app.command("inspect")
def store_inspect(
    target: Annotated[
        str, typer.Argument(metavar="CONFIG|URL", help="a recipe (its store.url) or a store URL")
    ],
    deep: Annotated[
        bool,
        typer.Option("--deep", help="also read every chunk and name any that is damaged"),
    ] = False,
) -> None:
    """Print a summary: times, channels with units and role, missing days, statistics, size.

    With --deep, every chunk is read first; exit 2 naming each damaged one and the fix.
    """
    from aircast.config import load_config
    from aircast.store.reader import open_store

    try:
        if target.endswith((".yaml", ".yml")) and Path(target).is_file():
            config = load_config(target)
            store = open_store(
                config.store_url, config.store.storage_options, require_complete=False
            )
        else:
            store = open_store(target, require_complete=False)
        scan = store.check_chunks() if deep else None
        typer.echo(store.summary())
    except AirCastError as exc:
        raise _fail(exc) from None
    if scan is not None:
        typer.echo(f"  chunks: all {scan.n_chunks} of {scan.n_arrays} arrays read, none damaged")


@store_app.command("verify")
def store_verify(
    config_path: Annotated[
        Path, typer.Argument(metavar="CONFIG", help="recipe, e.g. configs/demo.yaml")
    ],
    quick: Annotated[
        bool,
        typer.Option("--quick", help="check the contract only, without reading every chunk"),
    ] = False,
) -> None:
    """Check the recipe's finalised store: every chunk decodes (unless --quick), every time
    has data or is listed missing, statistics and channel metadata agree with the contract.

    Exit 2 naming each problem (a damaged chunk by array, key and path) and the fix.
    """
    from aircast.config import load_config
    from aircast.store.build import verify_store

    try:
        config = load_config(config_path)
        result = verify_store(config, deep=not quick)
    except AirCastError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"verified {config.store_url}: {result.n_times} times ({result.n_missing} missing), "
        f"{result.n_channels} channels"
        + ("; every chunk read" if result.deep else " (contract only: --quick)")
    )


@app.command("train")
def train_command(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="recipe")],
    max_steps: Annotated[
        int | None, typer.Option(help="stop after this many optimiser steps (a budget)")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="ignore last.ckpt and start from scratch")
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option(help="checkpoint folder (default: paths.root/checkpoints)")
    ] = None,
) -> None:
    """Train the forecaster on the recipe's training store; resumes from last.ckpt after a kill.

    Writes last.ckpt (every epoch and every training.checkpoint_every_steps), best.ckpt (best
    pollutant skill against persistence on the validation period) and metrics.jsonl.
    """
    from aircast.config import load_config
    from aircast.jobs.train import run_train

    log_to_terminal()
    try:
        if max_steps is not None and max_steps < 1:
            # 0 or fewer steps would train nothing and write no checkpoint, yet name one
            raise _fail(
                ValueError(
                    f"--max-steps {max_steps}: give a positive number of optimiser steps, or "
                    "leave it out to train training.epochs epochs"
                )
            )
        config = load_config(config_path)
        result = run_train(config, out_dir=out_dir, fresh=fresh, max_steps=max_steps).result
    except AirCastError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"trained {result.steps} steps ({result.epochs} epochs, "
        f"{result.samples_per_second:.1f} samples/s)"
    )
    if result.validation is not None:
        typer.echo(result.validation.table())
    typer.echo(f"checkpoints: {result.last}" + (f", {result.best}" if result.best else ""))
    typer.echo(f"metrics: {result.metrics}")


# ---- aircast evaluate: scorecards and plots (aircast.evaluation) ----------------------------


@app.command("evaluate")
def evaluate_command(
    checkpoint: Annotated[
        Path,
        typer.Argument(metavar="CHECKPOINT", help="a .ckpt, e.g. data/demo/checkpoints/best.ckpt"),
    ],
    config_path: Annotated[
        Path, typer.Option("--config", metavar="CONFIG", help="recipe, e.g. configs/demo.yaml")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="output folder (default: paths.root/evaluation/<checkpoint>-<period>)"),
    ] = None,
    period: Annotated[str, typer.Option(help="test or validation")] = "test",
    max_lead_hours: Annotated[
        int | None, typer.Option(help="rollout horizon (default: training.max_lead_hours)")
    ] = None,
    cams: Annotated[
        bool, typer.Option("--cams/--no-cams", help="fetch and score the CAMS global forecast")
    ] = True,
) -> None:
    """Score a checkpoint against persistence, climatology and the CAMS forecast.

    Forecasts from every 00 UTC initial time of the period, verifies them against the
    training store and writes a scorecard (Zarr, CSV, markdown) and PNG plots. Exit 2 for a
    missing checkpoint, one trained on another store, or a period without initial times.
    """
    from aircast.config import load_config
    from aircast.evaluation.scorecard import PERIODS, EvaluationError, beats, skill_table
    from aircast.jobs.evaluate import run_evaluate

    log_to_terminal()
    try:
        if period not in PERIODS:
            raise EvaluationError(f"--period {period!r}: choose one of {', '.join(PERIODS)}")
        config = load_config(config_path)
        result = run_evaluate(
            checkpoint,
            config,
            period=period,  # type: ignore[arg-type]  # checked against PERIODS above
            max_lead_hours=max_lead_hours,
            out_dir=out,
            cams=cams,
        )
    except AirCastError as exc:
        raise _fail(exc) from None
    ds = result.scorecard
    typer.echo("")
    typer.echo(skill_table(ds))
    typer.echo("")
    for variable in ("pm2p5", "pm10"):
        if variable not in ds["variable"].values.tolist():
            continue
        for baseline in ("persistence", "climatology", "cams_forecast"):
            ok, worse = beats(ds, variable, baseline)
            scored = ds["score"].sel(model=baseline, variable=variable, metric="mae")
            if not bool(scored.notnull().any()):
                continue
            verdict = (
                "yes, at every lead"
                if ok
                else f"no: not at {len(worse)} of {ds.sizes['lead_time']} leads "
                f"({', '.join(map(str, worse[:8]))}{' …' if len(worse) > 8 else ''} h)"
            )
            typer.echo(f"AirCast beats {baseline} on {variable} MAE: {verdict}")
    typer.echo("")
    typer.echo(f"climatology: {ds.attrs['climatology']}")
    typer.echo(f"CAMS forecast: {ds.attrs['cams_forecast']}")
    typer.echo(f"scorecard: {result.zarr}")
    typer.echo(f"table: {result.csv}, {result.markdown}")
    for plot in result.plots:
        typer.echo(f"plot: {plot}")


# ---- aircast forecast: the daily forecast and its store (aircast.forecast) ------------------


@app.command("forecast")
def forecast_command(
    date: Annotated[str, typer.Argument(help="the 00 UTC cycle to forecast, YYYY-MM-DD")],
    config_path: Annotated[
        Path, typer.Option("--config", metavar="CONFIG", help="recipe, e.g. configs/demo.yaml")
    ],
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="score earlier forecasts afterwards")
    ] = True,
) -> None:
    """Forecast one date to forecast.lead_hours, publish it, and verify earlier forecasts.

    Fetches the CAMS global forecast runs of the date and the day before into the raw cache,
    checks the initial conditions against the training statistics, rolls the model out and
    publishes the forecast atomically to the recipe's forecast store (a date already published
    is left as it is). Exit 2 for a bad date, a missing or mismatched checkpoint, missing or
    unhealthy inputs: the forecast store is then unchanged.
    """
    from aircast.config import load_config
    from aircast.dates import parse_day
    from aircast.jobs.executor import ThreadExecutor
    from aircast.jobs.forecast import run_daily_forecast

    log_to_terminal()

    def show(key: str, markdown: str) -> None:
        if key.startswith("input-health"):  # the verification is logged by the job
            typer.echo(markdown)

    try:
        day = parse_day(date, "date")
        config = load_config(config_path)
        run_daily_forecast(config, day, executor=ThreadExecutor(on_report=show), verify=verify)
    except AirCastError as exc:
        raise _fail(exc) from None


@app.command("backfill")
def backfill_command(
    start: Annotated[str, typer.Argument(help="first date, YYYY-MM-DD")],
    end: Annotated[str, typer.Argument(help="last date, YYYY-MM-DD (inclusive)")],
    config_path: Annotated[
        Path, typer.Option("--config", metavar="CONFIG", help="recipe, e.g. configs/demo.yaml")
    ],
) -> None:
    """Forecast every date of START..END that is not yet published, one after another.

    Each date runs the daily forecast (`aircast forecast DATE`); published dates are skipped,
    so running it again retries only the dates that failed. Exit 2 when a date failed.
    """

    from aircast.config import load_config
    from aircast.dates import parse_day
    from aircast.jobs.backfill import run_backfill
    from aircast.jobs.executor import ThreadExecutor
    from aircast.jobs.forecast import run_daily_forecast

    log_to_terminal()
    executor = ThreadExecutor(max_workers=1)

    try:
        config = load_config(config_path)

        def forecast(date: str) -> dict[str, Any]:
            try:
                run_daily_forecast(config, parse_day(date, "date"), executor=executor)
            except AirCastError as exc:  # reported with its date; the other dates go on
                return {"date": date, "state": "Failed", "message": str(exc)}
            return {"date": date, "state": "Completed", "message": ""}

        outcome = run_backfill(config, start, end, forecast, executor=executor)
    except AirCastError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"backfill {start}..{end}: {len(outcome.forecast)} forecast, "
        f"{len(outcome.skipped)} already published"
    )
