"""Publishing the forecast store: the atomic, idempotent writer of AirCast's public product.

The store's contract (arrays, attributes, schema version) is :mod:`aircast.forecast.schema`;
this module writes it.

Chunking
--------
Every array with an ``init_time`` dimension has chunk size 1 along it, so that appending an
init only *adds* objects and never rewrites one a reader may be reading. A data chunk is
``(1, every lead, ≤64 latitudes, ≤64 longitudes)``, the grid cut into equal tiles of at most
64 cells per side (61 × 129 cells → 1 × 3 tiles of 61 × 43): about 0.26 MB of float32 raw per
chunk on the default grid. The two reads a user makes are then both cheap:

- a time series at one point of one init reads one object per variable (all leads are in it);
- a map at one lead reads one object per tile per variable: it decodes every lead of those
  tiles (25 × the bytes needed, ≤ 1 MB per variable on the default grid), which costs
  milliseconds; one chunk per lead would make the map minimal but the series 25 objects.

A series across N inits reads N objects per variable. Zarr sharding (one shard per init and
variable, small inner chunks) could bring both reads near their minimum, at the price of many
range requests per map on object storage and a format fewer tools read; on grids of this size
whole-tile chunks cost milliseconds, so the layout stays plain.

Publishing: atomic and idempotent
---------------------------------
Readers see the store through its **consolidated metadata**: the root ``zarr.json`` holds
the root attributes and the metadata (shapes included) of every array. It is the commit
record. ``xarray.open_zarr``, ``zarr.open_group`` and :func:`aircast.open_forecast` all read
it by default; a reader that opens an array's own ``zarr.json`` instead (``zarr.open_array``
on a sub-path, ``use_consolidated=False``) may see a crashed publish's uncommitted init.

The first publish creates the store: a root ``zarr.json`` *without* consolidated metadata
(meaning "being created"; readers find no forecast), the arrays with no init, then a commit
of N = 0. A creation killed half-way is redone from the start by the next publish.
:func:`publish_forecast`:

1. takes the writer lock, ``<store>/.aircast-publish.lock``, created exclusively
   (:mod:`aircast.locks`: a local hard link of a complete temporary file, which fails if the
   lock exists; on object stores a conditional put, ``If-None-Match: *``). A lock left by a
   killed publisher is broken when its process is gone (same host) or when it is older than
   :data:`STALE_LOCK_SECONDS`.
   Exclusive creation is not available on every fsspec file system: concurrent publishers
   must be serialised by their caller too (the Prefect flows hold the global concurrency slot
   ``aircast-publish``);
2. reads the committed state, the number N of complete inits, from the consolidated metadata
   — not from the arrays' own metadata, which a crashed publish may have grown to N + 1;
3. resizes every ``init_time`` array to N + 1 and writes index N (new objects only, or
   orphans of a crashed publish, which no reader could see);
4. reads index N back and checks it is exactly what was meant (hence finite, and
   non-negative where the quantity is);
5. commits: writes the root ``zarr.json`` — new shapes, root attributes with
   ``complete_inits`` and ``latest_complete_init_time`` — in **one put** (atomic: a local
   store writes a temporary file and renames it; an object store replaces the object whole).
   ``zarr.consolidate_metadata`` is not used, because updating the root attributes and then
   consolidating would be two puts, with a window in between where readers see the new
   attributes with the old shapes or no consolidated metadata at all.

A kill anywhere before step 5 leaves readers on the previous N inits; the next publish
overwrites the orphaned index-N objects (and removes a killed local write's temporary
files), so once it has completed, a store that survived crashes holds the same bytes as one
that did not. A kill after step 5 leaves only the lock, which the next publish breaks.

Publishing an init that is already complete is a no-op ("already published") when its
``content_sha256`` matches, so the store's bytes do not change; different values for the
same init are refused (:class:`PublishError`): complete inits are never rewritten, because a
reader may be reading them. The data arrays carry no timestamps; the provenance's
``created`` is the caller's (``run.provenance["created"]``) when given, else the time of the
publish that wrote the init (a re-publish does not write it again). A caller that retries a
crashed publish and wants the result byte-identical to an uncrashed one passes ``created``
(for instance the flow run's scheduled time).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import fsspec
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle
from zarr.core.array_spec import ArrayConfigParams
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import AsyncGroup, ConsolidatedMetadata, GroupMetadata
from zarr.core.sync import sync
from zarr.storage import StorePath

import aircast
from aircast.align.units import published_units
from aircast.errors import AirCastError, VocabularyError
from aircast.forecast.schema import (
    COORDINATES,
    DATA_DIMS,
    INIT_TIME,
    LATITUDE,
    LONGITUDE,
    PROVENANCE,
    REQUIRED_PROVENANCE,
    VALID_TIME,
    Committed,
    ForecastStoreError,
    check_root,
    committed,
    content_sha256,
    coordinate_arrays,
    encode_hours,
    get_array,
    iso,
    read_root,
    root_attrs,
    variable_attrs,
)
from aircast.locks import (
    FsspecLockFile,
    LocalLockFile,
    LockContendedError,
    LockFile,
    LockHeldError,
)
from aircast.store import location
from aircast.store.coordinates import write_coordinates
from aircast.vocab import Channel, parse_channel

LOCK_NAME = ".aircast-publish.lock"
#: A lock older than this is taken to be a killed publisher's (a publish takes seconds).
STALE_LOCK_SECONDS = 3600.0
#: Largest tile side of a data chunk, in grid cells.
MAX_TILE = 64

_DATA_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle, typesize=4)
#: Zarr writes every chunk even when it equals the fill value (by default it would skip it, and
#: delete an orphan there): every index-N object exists after a publish, whatever the values.
_ARRAY_CONFIG: ArrayConfigParams = {"write_empty_chunks": True}


class PublishError(AirCastError, ValueError):
    """A forecast that cannot be published as asked; nothing was changed."""


@dataclass(frozen=True)
class ForecastRun:
    """One forecast, ready to publish.

    Attributes
    ----------
    init_time
        Initial time (UTC, whole hour; 00 UTC for the daily forecast), datetime64[ns].
    lead_hours
        Leads in hours, ascending (``0, 3, …, 72``).
    channels
        Training-store channel names (``t2m``, ``pm2p5``, ``go3_925``).
    values
        float32 (lead, channel, latitude, longitude) in **training-store units** (PM in
        kg m-3); publishing converts to the published units. Finite; non-negative for
        positive quantities.
    latitudes
        Cell centres, north to south.
    longitudes
        Cell centres, ascending within [-180, 180).
    provenance
        ``checkpoint_sha256`` (str), ``input_request_ids`` (list of str), ``input_source``
        (str), optionally ``code_version`` (default: this AirCast's version) and ``created``
        (ISO string or datetime; default: the time of publishing), plus anything JSON-able.
    """

    init_time: np.datetime64
    lead_hours: tuple[int, ...]
    channels: tuple[str, ...]
    values: np.ndarray
    latitudes: np.ndarray
    longitudes: np.ndarray
    provenance: Mapping[str, Any]


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish_forecast` did.

    Attributes
    ----------
    url
        The store.
    init_time
        The run's initial time, datetime64[ns].
    index
        Its position along the store's ``init_time`` axis (publication order).
    outcome
        ``"published"``, or ``"already published"`` (same content; nothing was written).
    inits
        Complete inits in the store afterwards.
    """

    url: str
    init_time: np.datetime64
    index: int
    outcome: Literal["published", "already published"]
    inits: int


# ---------------------------------------------------------------------------------------------
# public API


def published_init_times(
    url: str, *, storage_options: Mapping[str, Any] | None = None
) -> np.ndarray:
    """The complete inits of the store at ``url``, sorted, datetime64[ns].

    Empty when there is no store yet (or its creation never completed).

    Raises
    ------
    ForecastStoreError
        When ``url`` holds something else, or a forecast store of another schema version.
    """
    store = location.zarr_store(url, storage_options, read_only=True)
    root = read_root(store)
    if root is None:
        return np.empty(0, "datetime64[ns]")
    check_root(url, root, action="read")
    state = committed(url, store, root)
    if state is None:
        return np.empty(0, "datetime64[ns]")
    return np.sort(state.init_times())


def publish_forecast(
    url: str, run: ForecastRun, *, storage_options: Mapping[str, Any] | None = None
) -> PublishResult:
    """Publish ``run`` to the forecast store at ``url`` (created by the first publish).

    Atomic (readers see the init whole or not at all) and idempotent (the same run again is a
    no-op that changes no byte); see the module docstring for how.

    Parameters
    ----------
    url
        Local path, ``file://`` or fsspec URL (``s3://bucket/forecast.zarr``).
    run
        The forecast, in training-store units.
    storage_options
        fsspec options for a remote URL (credentials come from the environment).

    Raises
    ------
    PublishError
        When the run is malformed or does not fit the store (other channels, leads or grid),
        when the init is already published with other values, or when another publisher
        holds the lock. Nothing is changed.
    ForecastStoreError
        When ``url`` holds something else or a forecast store of another schema version.
    """
    prepared = _prepare(run)
    store = location.zarr_store(url, storage_options)
    with _writer_lock(url, storage_options):
        root = read_root(store)
        if root is None:
            _refuse_foreign(url, store)
        else:
            check_root(url, root, action="publish to")
        # ours (or empty): a killed local write left <key>.<uuid>.partial files; we hold the
        # lock, so no live writer is behind any of them
        location.remove_partial_writes(url, [""])
        found = None if root is None else committed(url, store, root)
        state = found if found is not None else _create(url, store, prepared)
        _check_fits(state, prepared)
        times = state.init_times()
        hits = np.flatnonzero(times == prepared.init_time)
        if hits.size:
            return _already(state, prepared, int(hits[0]))
        index = state.n_inits
        group = zarr.open_group(store, mode="r+", use_consolidated=False)
        _write_init(group, state, prepared, index)
        _verify_init(store, state, prepared, index)
        _commit(store, state, index + 1, np.append(times, prepared.init_time))
    return PublishResult(
        url=url,
        init_time=prepared.init_time,
        index=index,
        outcome="published",
        inits=index + 1,
    )


# ---------------------------------------------------------------------------------------------
# preparing a run


@dataclass(frozen=True)
class _Prepared:
    init_time: np.datetime64
    lead_hours: tuple[int, ...]
    channels: tuple[Channel, ...]
    #: channel name → float32 (lead, latitude, longitude) in published units
    values: Mapping[str, np.ndarray]
    units: Mapping[str, str]
    latitudes: np.ndarray
    longitudes: np.ndarray
    provenance: str
    content_sha256: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)


def _prepare(run: ForecastRun) -> _Prepared:
    """Check the run and convert it to published units (PublishError naming each problem)."""
    init_time = _init_time(run.init_time)
    leads = tuple(int(h) for h in run.lead_hours)
    if not leads or any(h < 0 for h in leads) or any(b <= a for a, b in pairwise(leads)):
        raise PublishError(
            f"lead_hours {list(run.lead_hours)} must be non-negative and strictly ascending"
        )
    channels = _channels(run.channels)
    latitudes = np.asarray(run.latitudes, np.float64)
    longitudes = np.asarray(run.longitudes, np.float64)
    _check_grid(latitudes, longitudes)
    values = np.asarray(run.values)
    shape = (len(leads), len(channels), latitudes.size, longitudes.size)
    if values.shape != shape:
        raise PublishError(
            f"values have shape {values.shape}, expected (lead, channel, latitude, longitude) "
            f"= {shape} from lead_hours, channels, latitudes and longitudes"
        )
    if values.dtype.kind != "f":
        raise PublishError(f"values must be floating point (float32), not {values.dtype}")
    published: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for i, channel in enumerate(channels):
        raw = values[:, i]
        bad = int(np.count_nonzero(~np.isfinite(raw)))
        if bad:
            raise PublishError(
                f"{iso(init_time)}: channel {channel.name} has {bad} non-finite values; a "
                "published forecast is finite everywhere — fix the run before publishing"
            )
        if channel.spec.positive and float(raw.min()) < 0:
            raise PublishError(
                f"{iso(init_time)}: channel {channel.name} is non-negative by nature but has "
                f"values down to {float(raw.min()):.3g}; clamp the forecast at zero (the "
                "rollout does) before publishing"
            )
        unit, factor = published_units(channel.variable)
        # float64 product, one rounding to float32: deterministic, and 1e-9 kg m-3 → 1 µg m-3
        converted = raw.astype(np.float64) * factor if factor != 1.0 else raw
        published[channel.name] = np.ascontiguousarray(converted, dtype=np.float32)
        units[channel.name] = unit
    digest = content_sha256(init_time, leads, latitudes, longitudes, published)
    provenance = _provenance(run.provenance, init_time, digest)
    return _Prepared(
        init_time=init_time,
        lead_hours=leads,
        channels=channels,
        values=published,
        units=units,
        latitudes=latitudes,
        longitudes=longitudes,
        provenance=provenance,
        content_sha256=digest,
    )


def _init_time(value: Any) -> np.datetime64:
    try:
        init = np.datetime64(value, "ns")
    except (TypeError, ValueError) as error:
        raise PublishError(f"init_time {value!r} is not a time: {error}") from None
    if np.isnat(init) or init != init.astype("datetime64[h]"):
        raise PublishError(f"init_time {value!r} must be a whole hour (UTC)")
    return init


def _channels(names: Sequence[str]) -> tuple[Channel, ...]:
    if not names:
        raise PublishError("a forecast run needs at least one channel")
    if len(set(names)) != len(names):
        raise PublishError(f"channels {list(names)} name a channel twice")
    channels = []
    for name in names:
        if name in COORDINATES:
            raise PublishError(f"channel name {name!r} is reserved for a coordinate")
        try:
            channels.append(parse_channel(name))
        except VocabularyError as error:
            raise PublishError(f"channel {name!r}: {error}") from None
    return tuple(channels)


def _check_grid(latitudes: np.ndarray, longitudes: np.ndarray) -> None:
    if latitudes.ndim != 1 or latitudes.size == 0 or not np.all(np.isfinite(latitudes)):
        raise PublishError("latitudes must be a non-empty 1-D array of finite degrees")
    if longitudes.ndim != 1 or longitudes.size == 0 or not np.all(np.isfinite(longitudes)):
        raise PublishError("longitudes must be a non-empty 1-D array of finite degrees")
    if np.any(np.diff(latitudes) >= 0):
        raise PublishError("latitudes must run north to south (strictly descending)")
    if np.any(np.diff(longitudes) <= 0):
        raise PublishError("longitudes must be strictly ascending")
    if longitudes[0] < -180 or longitudes[-1] >= 180:
        raise PublishError(
            f"longitudes must lie within [-180, 180), got {longitudes[0]} .. {longitudes[-1]}"
        )


def _provenance(given: Mapping[str, Any], init_time: np.datetime64, digest: str) -> str:
    missing = [key for key in REQUIRED_PROVENANCE if key not in given]
    if missing:
        raise PublishError(
            f"provenance lacks {', '.join(missing)}; a published init must name its "
            "checkpoint (sha256), its input request ids and its input source"
        )
    ids = given["input_request_ids"]
    if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
        raise PublishError(f"provenance input_request_ids must be a list of strings, not {ids!r}")
    for key in ("checkpoint_sha256", "input_source"):
        if not isinstance(given[key], str) or not given[key]:
            raise PublishError(f"provenance {key} must be a non-empty string")
    if "content_sha256" in given:
        raise PublishError("provenance content_sha256 is computed by publish_forecast; drop it")
    record = {
        **given,
        "input_request_ids": list(ids),
        "code_version": str(given.get("code_version", aircast.__version__)),
        "created": _created(given.get("created")),
        "init_time": iso(init_time),
        "content_sha256": digest,
    }
    try:
        return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise PublishError(f"provenance must be JSON-able: {error}") from None


def _created(value: Any) -> str:
    if value is None:
        return iso(np.datetime64(dt.datetime.now(dt.UTC).replace(tzinfo=None), "s"))
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, str):
        value = value.removesuffix("Z")
    try:
        return iso(np.datetime64(value, "s"))
    except (TypeError, ValueError):
        raise PublishError(
            f"provenance created {value!r} is not a time; pass an ISO string such as "
            "2019-06-01T06:30:00 (UTC)"
        ) from None


# ---------------------------------------------------------------------------------------------
# the writer lock


@contextmanager
def _writer_lock(url: str, storage_options: Mapping[str, Any] | None) -> Iterator[None]:
    """Hold ``<store>/.aircast-publish.lock`` while publishing (PublishError if it is held)."""
    lock: LockFile
    if location.is_local(url):
        root = location.local_path(url)
        root.mkdir(parents=True, exist_ok=True)
        lock = LocalLockFile(root / LOCK_NAME)
    else:
        fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        lock = FsspecLockFile(
            fs, f"{path.rstrip('/')}/{LOCK_NAME}", where=f"{url.rstrip('/')}/{LOCK_NAME}"
        )
    try:
        lock.acquire(stale_after=STALE_LOCK_SECONDS)
    except LockHeldError as held:
        raise PublishError(
            f"another publisher holds the lock of the forecast store {url} ({held.holder}); "
            f"publishers must run one at a time — wait for it, or, if no publisher is "
            f"running, delete {lock.where}"
        ) from None
    except LockContendedError:
        raise PublishError(
            f"could not take the lock of the forecast store {url} ({lock.where}); publishers "
            "must run one at a time — retry"
        ) from None
    try:
        yield
    finally:
        lock.release()


# ---------------------------------------------------------------------------------------------
# creating the store


def _refuse_foreign(url: str, store: Any) -> None:
    """Refuse to create a forecast store where something else already lives."""

    others = [key for key in _top_level(store) if key != LOCK_NAME]
    if others:
        raise ForecastStoreError(
            f"{url} is not empty and holds no Zarr group ({', '.join(sorted(others)[:5])}); "
            "publish the forecast to an empty location or to an existing forecast store"
        )


def _top_level(store: Any) -> list[str]:
    """Names directly under the store's root, except temporary files of killed writes."""

    async def entries() -> list[str]:
        return [key.rstrip("/") async for key in store.list_dir("")]

    return [key for key in sync(entries()) if not key.endswith(".partial")]


def _tile(n: int) -> int:
    """Equal tiles of at most MAX_TILE cells covering n cells."""
    return math.ceil(n / math.ceil(n / MAX_TILE))


def _create(url: str, store: Any, prepared: _Prepared) -> Committed:
    """Create the store for ``prepared``'s channels, leads and grid, and commit it with no
    inits. Rerun from the start if a creation was interrupted (nothing was committed)."""
    n_leads = len(prepared.lead_hours)
    n_lat, n_lon = prepared.latitudes.size, prepared.longitudes.size
    # the root zarr.json is written without consolidated metadata: "being created"
    root = GroupMetadata(
        attributes=root_attrs(
            latitudes=prepared.latitudes,
            longitudes=prepared.longitudes,
            lead_hours=prepared.lead_hours,
            variables=prepared.names,
            n_inits=0,
            latest=None,
        )
    )
    _put_root(store, root)
    group = zarr.open_group(store, mode="r+", use_consolidated=False)
    expected = {*COORDINATES, *prepared.names, LOCK_NAME, "zarr.json"}
    for name in _top_level(store):
        if name not in expected:  # left by an interrupted creation of other channels
            sync(store.delete_dir(name))
    write_coordinates(
        group,
        coordinate_arrays(prepared.lead_hours, prepared.latitudes, prepared.longitudes),
        config=_ARRAY_CONFIG,
    )
    for channel in prepared.channels:
        group.create_array(
            channel.name,
            shape=(0, n_leads, n_lat, n_lon),
            chunks=(1, n_leads, _tile(n_lat), _tile(n_lon)),
            dtype=np.float32,
            fill_value=np.nan,
            compressors=_DATA_CODEC,
            dimension_names=DATA_DIMS,
            attributes=variable_attrs(channel, prepared.units[channel.name]),
            overwrite=True,
            config=_ARRAY_CONFIG,
        )
    state = Committed(
        url=url,
        attrs=root.attributes,
        group=group,
        n_inits=0,
    )
    return _commit(store, state, 0, np.empty(0, "datetime64[ns]"))


def _check_fits(state: Committed, prepared: _Prepared) -> None:
    """The run has the store's channels, leads and grid (PublishError otherwise)."""
    where = f"the forecast store {state.url}"
    fix = "publish it to a new store URL"
    if set(prepared.names) != set(state.variables):
        raise PublishError(
            f"the run's channels {sorted(prepared.names)} are not those of {where} "
            f"{sorted(state.variables)}; {fix}, or publish the store's channels"
        )
    if prepared.lead_hours != state.lead_hours:
        raise PublishError(
            f"the run's leads {list(prepared.lead_hours)} h are not those of {where} "
            f"{list(state.lead_hours)} h (fixed by its first publish); {fix}"
        )
    for name, values in ((LATITUDE, prepared.latitudes), (LONGITUDE, prepared.longitudes)):
        stored = np.asarray(state.array(name)[:])
        if stored.shape != values.shape or not np.array_equal(stored, values):
            raise PublishError(f"the run's {name}s are not the grid of {where}; {fix}")
    for name in prepared.names:
        units = state.array(name).attrs.get("units")
        if units != prepared.units[name]:
            raise PublishError(
                f"{where} holds {name} in {units!r}, this AirCast publishes it in "
                f"{prepared.units[name]!r}; {fix}"
            )


def _already(state: Committed, prepared: _Prepared, index: int) -> PublishResult:
    record = json.loads(str(state.array(PROVENANCE)[index]))
    if record.get("content_sha256") != prepared.content_sha256:
        raise PublishError(
            f"init {iso(prepared.init_time)} is already published in {state.url} with other "
            f"values (content sha256 {record.get('content_sha256')}, this run "
            f"{prepared.content_sha256}); a published init is never rewritten, because "
            "readers may be reading it — publish this run to a new store URL"
        )
    return PublishResult(
        url=state.url,
        init_time=prepared.init_time,
        index=index,
        outcome="already published",
        inits=state.n_inits,
    )


# ---------------------------------------------------------------------------------------------
# writing one init


def _write_init(group: zarr.Group, state: Committed, prepared: _Prepared, index: int) -> None:
    """Steps 3: grow every init_time array to index + 1 and write index (not yet visible)."""
    leads = np.asarray(prepared.lead_hours, np.int64)
    rows: dict[str, Any] = {
        INIT_TIME: encode_hours(prepared.init_time),
        VALID_TIME: encode_hours(prepared.init_time) + leads,
        PROVENANCE: prepared.provenance,
        **prepared.values,
    }
    for name, row in rows.items():
        array = get_array(group, name).with_config(_ARRAY_CONFIG)  # config is not stored
        # resize only ever grows past the committed shape; what lies beyond index was never
        # committed, so zarr may drop it
        array.resize((index + 1, *array.shape[1:]))
        if name == PROVENANCE:
            array[index : index + 1] = np.array([row], dtype=object)
        else:
            array[index] = row


def _verify_init(store: Any, state: Committed, prepared: _Prepared, index: int) -> None:
    """Step 4: read index back through fresh metadata; it must be exactly what was meant."""
    group = zarr.open_group(store, mode="r", use_consolidated=False)
    problems = []
    for name, expected in prepared.values.items():
        array = get_array(group, name)
        if array.shape[0] != index + 1:
            problems.append(f"{name} has {array.shape[0]} inits, expected {index + 1}")
            continue
        got = np.asarray(array[index])
        if not np.array_equal(got, expected):
            problems.append(f"{name} reads back different values")
    if str(get_array(group, PROVENANCE)[index]) != prepared.provenance:
        problems.append("provenance reads back different")
    if np.asarray(get_array(group, INIT_TIME)[index]) != encode_hours(prepared.init_time):
        problems.append("init_time reads back different")
    if problems:
        raise ForecastStoreError(
            f"{state.url}: init {iso(prepared.init_time)} was written but does not read back "
            f"({'; '.join(problems)}); nothing was committed, readers still see "
            f"{index} inits — check the storage and publish again"
        )


def _commit(store: Any, state: Committed, n_inits: int, times: np.ndarray) -> Committed:
    """Step 5: the root zarr.json with every array's metadata and the new attributes, one put."""
    names = [*COORDINATES, *state.variables]

    async def metadata() -> list[Any]:
        # exactly the contract's arrays, each from its own zarr.json: anything else under the
        # root stays invisible to readers
        group = await AsyncGroup.open(store, use_consolidated=False)
        nodes = await asyncio.gather(*(group.getitem(name) for name in names))
        return [node.metadata for node in nodes]

    members = dict(zip(names, sync(metadata()), strict=True))
    for name, meta in members.items():
        dims = meta.dimension_names or ()
        if dims and dims[0] == INIT_TIME and meta.shape[0] != n_inits:
            raise ForecastStoreError(
                f"{state.url}: array {name} has {meta.shape[0]} inits at commit, expected "
                f"{n_inits}; nothing was committed — publish again"
            )
    attrs = dict(state.attrs)
    attrs["complete_inits"] = n_inits
    attrs.pop("latest_complete_init_time", None)
    attrs["latest_complete_init_time"] = iso(times.max()) if times.size else None
    root = GroupMetadata(
        attributes=attrs, consolidated_metadata=ConsolidatedMetadata(metadata=members)
    )
    _put_root(store, root)
    return Committed(
        url=state.url,
        attrs=attrs,
        group=zarr.Group(AsyncGroup(metadata=root, store_path=StorePath(store))),
        n_inits=n_inits,
    )


def _put_root(store: Any, root: GroupMetadata) -> None:
    """Write the root zarr.json in one put."""
    buffers = root.to_buffer_dict(default_buffer_prototype())
    assert list(buffers) == ["zarr.json"]
    sync(store.set("zarr.json", buffers["zarr.json"]))
