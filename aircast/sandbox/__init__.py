"""The sandbox: a toy atmosphere and a local server speaking the Copernicus data-store API.

It is the embedded default: the pipeline's real code path (the real ``cdsapi`` client) runs
against it unchanged, and only the URL differs from the real stores.
"""
