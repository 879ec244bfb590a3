"""The training store: one Zarr group of aligned fields, statistics and histograms.

``schema`` is the contract, ``build`` the staged build and daily extension (with ``layout``,
what a config asks of its store; ``inputs``, the raw inputs of a span; ``days``, loading a span
through its sources; ``arrays``, the zarr arrays and attributes), ``stats`` the mergeable
statistics, ``reader`` the reader.
"""
