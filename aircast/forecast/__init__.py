"""Operational forecasting: rollout, the published forecast store and its readers."""
