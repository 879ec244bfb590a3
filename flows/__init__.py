"""AirCast's Prefect flows: thin faces over the job runners of :mod:`aircast.jobs`, with Prefect
as their executor (:mod:`flows.executor`); they take paths, dates and config files, never arrays.

``flows`` imports ``aircast``; ``aircast`` never imports ``prefect`` or ``flows``, so the
library and its command line work without an orchestrator.

Every flow persists its result (``persist_result=True``). A busy server can time out the
client's "Completed" proposal after accepting it; the client's retry is then rejected and the
engine keeps the server's copy of the state, which carries no in-memory result. A persisted
result is read back from result storage in that case, so ``state.result()`` still works.

Modules
-------
ingest
    ``ingest_era5``, ``ingest_cams`` and ``ingest_all``: fetch a date range into a recipe's raw
    cache (``python -m flows.ingest --help``).
build
    ``build_training_store`` and ``extend_training_store``: the staged store build, one task per
    part (``python -m flows.build --help``).
executor
    ``PrefectExecutor``: a job's steps as tasks, its limits as global concurrency limits, its
    reports as artifacts, the library's log in the run's log.
report
    ``exit_code``: how each flow's ``python -m flows.…`` entry point reports its run.
demo
    The README's main command (``make demo``): ingest, then build, the demo recipe.
train
    ``train_forecaster``: train (or resume training) the forecaster on a recipe's training
    store; a markdown artifact with the validation table, metrics and loss curve
    (``python -m flows.train --help``).
forecast
    ``daily_forecast``: one date's 00 UTC cycle forecast to 72 h, published, older forecasts
    verified (``python -m flows.forecast --help``).
backfill
    ``backfill_forecasts``: one daily-forecast run per date of a range, idempotent and bounded
    (``python -m flows.backfill --help``).
deploy
    ``deployments``: every deployment, served from one process (``python -m flows.deploy
    --serve``) or registered to the work pools of ``infra/pools.yaml`` (``--pools``).
"""
