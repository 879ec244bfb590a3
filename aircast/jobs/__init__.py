"""The jobs: one runner per job, the one place where each job's steps are put in order.

``ingest`` (:func:`~aircast.jobs.ingest.run_ingest`), ``build``
(:func:`~aircast.jobs.build.run_build`, :func:`~aircast.jobs.build.run_extend`), ``train``
(:func:`~aircast.jobs.train.run_train`), the daily ``forecast``
(:func:`~aircast.jobs.forecast.run_daily_forecast`, which verifies) and ``backfill``
(:func:`~aircast.jobs.backfill.run_backfill`). Each takes a validated recipe and an executor
(:mod:`aircast.jobs.executor`: threads, a Dask cluster, or Prefect tasks from ``flows/``), so
the command line (``aircast.cli``) and the flows are thin faces over the same runner and a
rule added to a job holds for both.

This layer sits above everything else in ``aircast`` (it may import ``forecast`` and
``evaluation``) and below ``cli.py`` and ``flows/``; nothing in ``aircast`` imports it but the
command line.
"""
