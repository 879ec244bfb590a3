"""The ``aircast`` command: thin wrappers over the package's modules.

Every user error (:class:`aircast.errors.AirCastError`) becomes one clear message on stderr and
exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
