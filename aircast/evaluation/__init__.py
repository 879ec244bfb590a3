"""Verification: latitude-weighted metrics, extremes, baselines, scorecards and plots."""
