"""End to end: the tiny recipe (its region crosses 0°) ingested as GRIB2 and built into a store.

The real stores deliver some products as GRIB2, whose longitudes lie in [0, 360): the
region's west edge is stored east of 180°. Ingest used to call every such file damaged,
quarantine it and ask again until the request failed. Here the sandbox delivers every dataset
in GRIB2 (``sandbox.grib_edition``); the ingest must accept the files and the build must give
the store that the GRIB1 products give, within the packing's precision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from storetools import FIRST, LAST, tiny_config

from aircast.catalogue import DATASETS
from aircast.jobs.build import run_build
from aircast.testing import ingest_from_sandbox


@pytest.mark.slow
def test_grib2_products_across_0_degrees_ingest_and_build(
    tmp_path: Path, reference_store: Path
) -> None:
    grib2 = {"sandbox": {"grib_edition": dict.fromkeys(DATASETS, 2)}}
    config = tiny_config(tmp_path / "raw2", tmp_path / "store.zarr", **grib2)
    assert config.sandbox.grib_edition == dict.fromkeys(DATASETS, 2)
    ingest_from_sandbox(config, FIRST, LAST)  # raises, naming them, if a request failed
    grib_files = sorted((tmp_path / "raw2").rglob("*.grib"))
    assert grib_files
    for path in grib_files:
        assert path.read_bytes()[7] == 2  # GRIB edition, octet 8 of section 0
    run_build(config)

    built, reference = xr.open_zarr(tmp_path / "store.zarr"), xr.open_zarr(reference_store)
    assert built.attrs["state"] == "complete"
    assert built["missing_times"].size == 0
    assert built["longitude"].values.min() < 0 < built["longitude"].values.max()
    for coord in ("time", "channel", "latitude", "longitude"):
        np.testing.assert_array_equal(built[coord].values, reference[coord].values)
    mine, theirs = built["fields"].values, reference["fields"].values
    for c, name in enumerate(reference["channel"].values):
        # 16-bit packing in both editions: each source value within one packing step of the
        # other edition's; averaging onto the store's grid keeps that bound
        span = float(np.nanmax(theirs[:, c]) - np.nanmin(theirs[:, c]))
        step = span / (2**16 - 1)
        np.testing.assert_allclose(
            mine[:, c], theirs[:, c], rtol=0, atol=2 * step + 1e-12, err_msg=str(name)
        )
