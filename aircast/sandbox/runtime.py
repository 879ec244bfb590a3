"""Resolving a recipe's data stores, starting the embedded sandbox where a recipe asks for it.

A store whose ``url`` is ``sandbox`` is served by a :class:`SandboxServer` started here on
127.0.0.1 for as long as the ``with`` block lasts; any other URL is a real store (or a sandbox
started elsewhere) reached with the key the recipe names.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aircast.config import AirCastConfig, DataStore
from aircast.sources.datastore import Endpoint, KeyResolver, Secret, Store, resolve_endpoint


@contextmanager
def datastore_endpoints(
    config: AirCastConfig,
    *,
    key_resolver: KeyResolver | None = None,
    stores: tuple[Store, ...] = ("cds", "ads"),
) -> Iterator[dict[str, Endpoint]]:
    """The recipe's endpoints, with a sandbox running if one of them needs it.

    Parameters
    ----------
    stores
        Which stores to resolve: only their keys are looked up, so an ERA5-only run needs no
        ADS key.

    Yields
    ------
    dict
        ``{"cds": Endpoint, "ads": Endpoint}`` (the requested stores).
    """
    settings_of: dict[Store, DataStore] = {
        "cds": config.datastores.cds,
        "ads": config.datastores.ads,
    }
    server = None
    if any(settings_of[s].is_sandbox for s in stores):
        from aircast.sandbox.server import SandboxServer

        sb = config.sandbox
        server = SandboxServer(
            host=sb.host,
            port=sb.port,
            key=sb.key,
            faults=sb.faults,
            seed=sb.seed,
            grib_editions=sb.grib_edition,
        ).start()
    try:
        endpoints: dict[str, Endpoint] = {}
        for store in stores:
            settings = settings_of[store]
            if settings.is_sandbox:
                assert server is not None
                endpoints[store] = Endpoint(store, server.url, Secret(server.key))
            else:
                endpoints[store] = resolve_endpoint(
                    store,
                    settings.url,
                    key_env=settings.key_env,
                    key_file=settings.key_file,
                    key_resolver=key_resolver,
                )
        yield endpoints
    finally:
        if server is not None:
            server.stop()
