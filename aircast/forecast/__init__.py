"""Operational forecasting: rollout, the published forecast store and its readers.

``schema.py`` holds the forecast store's contract, ``publish.py`` the atomic, idempotent
writer, ``reader.py`` the reader (:func:`aircast.open_forecast`).
"""
