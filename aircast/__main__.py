"""``python -m aircast`` runs the command line."""

from aircast.cli import app

app(prog_name="aircast")
