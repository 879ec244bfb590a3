"""Verification: latitude-weighted metrics, extremes, baselines, scorecards and plots, and the
scoring of published forecasts as their analyses arrive (``verification``)."""
