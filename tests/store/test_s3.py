"""The store on object storage: the same build to s3:// (a moto server on 127.0.0.1), read
back with plain xarray; credentials come from the environment, never from the config."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from storetools import ConfigFactory

s3fs = pytest.importorskip("s3fs")

from aircast.jobs.build import run_build  # noqa: E402
from aircast.store.build import init_store  # noqa: E402
from aircast.store.reader import open_store  # noqa: E402
from aircast.store.schema import RecipeMismatchError  # noqa: E402
from aircast.testing import snapshot  # noqa: E402


def test_build_to_s3_and_read_back_with_xarray(
    reference_store: Path, make_config: ConfigFactory, s3_endpoint: str, s3_bucket: str
) -> None:
    url = f"s3://{s3_bucket}/tiny/store.zarr"
    options = {"endpoint_url": s3_endpoint}
    config = make_config(store={"url": url, "storage_options": options})
    assert config.store_url == url
    result = run_build(config)
    assert result.loaded == [0, 1, 2]  # run_build verified it too

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # consolidated metadata is there
        ds = xr.open_zarr(url, storage_options=options)
    reference = xr.open_zarr(reference_store)
    np.testing.assert_array_equal(ds["fields"].values, reference["fields"].values)
    assert ds.attrs["recipe_fingerprint"] == reference.attrs["recipe_fingerprint"]

    store = open_store(url, options)
    ref = open_store(str(reference_store))
    assert store.statistics.mean.tobytes() == ref.statistics.mean.tobytes()
    assert "size on disk" in store.summary()

    # the objects are the reference store's files, byte for byte
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True)
    prefix = f"{s3_bucket}/tiny/store.zarr/"
    objects = {key.removeprefix(prefix): fs.cat_file(key) for key in fs.find(prefix)}
    assert objects == snapshot(reference_store)

    # a rerun resumes; another recipe at the same URL is refused there too
    assert run_build(config).skipped == [0, 1, 2]
    other = make_config(
        store={"url": url, "storage_options": options},
        grid={"resolution": 3.0},
    )
    with pytest.raises(RecipeMismatchError):
        init_store(other)
