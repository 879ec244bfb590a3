"""The training store: one Zarr group of aligned fields, statistics and histograms.

``schema`` is the contract, ``build`` the staged build and daily extension, ``stats`` the
mergeable statistics, ``reader`` the reader.
"""
