"""Where a store lives: a local path or an fsspec URL (``s3://bucket/demo.zarr``).

Every stage of the build and the reader reach Zarr through :func:`zarr_store`, so a store on
object storage takes the same code path as one on the local disk; only the URL (and the
non-secret ``storage_options``, e.g. an S3 ``endpoint_url``) differ. Credentials come from the
environment, as the object stores' own clients expect.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import fsspec
import zarr
from zarr.abc.store import Store
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore


def is_local(url: str) -> bool:
    """True for a local path (or ``file://`` URL): the store is a directory on this machine."""
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> Path:
    """The directory of a local store URL."""
    return Path(url.removeprefix("file://"))


def zarr_store(
    url: str, storage_options: Mapping[str, Any] | None = None, *, read_only: bool = False
) -> Store:
    """The Zarr store object for ``url``.

    Parameters
    ----------
    url
        Local path or fsspec URL of the store's root.
    storage_options
        fsspec options for a remote URL (ignored for a local path).
    read_only
        Open for reading only.
    """
    if is_local(url):
        return LocalStore(local_path(url), read_only=read_only)
    return FsspecStore.from_url(
        url, storage_options=dict(storage_options or {}), read_only=read_only
    )


def exists(url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether anything at all is stored at ``url`` (a store, or other files)."""
    if is_local(url):
        path = local_path(url)
        return path.exists() and (path.is_file() or any(path.iterdir()))
    fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    try:
        return bool(fs.exists(root)) and bool(fs.ls(root))
    except FileNotFoundError:
        return False


def has_zarr_group(store: Store) -> bool:
    """Whether the store's root holds Zarr group metadata."""
    return bool(sync(store.exists("zarr.json")))


def list_keys(store: Store, prefix: str) -> list[str]:
    """Every key under ``prefix`` (for instance ``fields/c/``), sorted."""

    async def collect() -> list[str]:
        return [key async for key in store.list_prefix(prefix)]

    return sorted(sync(collect()))


def size_on_disk(url: str, storage_options: Mapping[str, Any] | None = None) -> int:
    """Bytes used by every object of the store."""
    if is_local(url):
        return sum(p.stat().st_size for p in local_path(url).rglob("*") if p.is_file())
    fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    return int(fs.du(root, total=True))


def remove_partial_writes(url: str, prefixes: Iterator[str] | list[str]) -> int:
    """Remove the temporary files a killed writer left under ``prefixes`` of a local store.

    Zarr's local store writes each chunk to ``<key>.<uuid>.partial`` and renames it into
    place; a writer killed between the two leaves the temporary file behind, and a rerun
    that rewrites the chunk must not leave it (a rerun is byte-identical to a clean run).
    Object stores write each object whole and need nothing. Returns how many were removed.
    """
    if not is_local(url):
        return 0
    root = local_path(url)
    removed = 0
    for prefix in prefixes:
        base = root / prefix
        if not base.exists():
            continue
        for path in base.rglob("*.partial"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def open_group(
    url: str, storage_options: Mapping[str, Any] | None = None, *, mode: str = "r"
) -> zarr.Group:
    """Open the store's root group without consolidated metadata.

    The build reads the metadata of each node itself: the consolidated copy in the root is
    written only when a stage ends, so between stages it may lag behind.
    """
    store = zarr_store(url, storage_options, read_only=mode == "r")
    return zarr.open_group(store, mode=mode, use_consolidated=False)  # type: ignore[arg-type]


def consolidate(url: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write the consolidated metadata that ``xarray.open_zarr`` reads in one request."""
    zarr.consolidate_metadata(zarr_store(url, storage_options))
