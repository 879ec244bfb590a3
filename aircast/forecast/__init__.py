"""Operational forecasting: rollout, the published forecast store and its readers.

``publish.py`` holds the forecast store's contract and the atomic, idempotent writer;
``reader.py`` the reader (:func:`aircast.open_forecast`).
"""
