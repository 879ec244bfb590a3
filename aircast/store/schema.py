"""The training-store contract (schema version 1).

One Zarr (format 3) group, readable with plain ``xarray.open_zarr(url)`` (consolidated
metadata is written at the end of every stage). Times are tz-naive UTC, three-hourly
(00, 03, … 21), encoded as int64 ``hours since 1970-01-01 00:00:00``; latitude runs north to
south; longitude increases within [-180, 180).

Arrays of the root group (dimensions in brackets)
-------------------------------------------------
``fields [time, channel, latitude, longitude]``
    float32, one chunk per time step holding every channel (a training sample is one read).
    Fill value NaN; a time that has no data has *no chunk at all* and is listed in
    ``missing_times``. Values are in the units of ``channel_units`` (the data stores' units:
    particulate matter in kg m-3). Accumulated channels (``tp``) are amounts over the three
    hours ending at the time stamp.
``time [time]``, ``channel [channel]`` (str), ``latitude [latitude]``, ``longitude [longitude]``
    The coordinates (float64 degrees; channel names such as ``t2m``, ``go3_925``).
``channel_variable``, ``channel_level``, ``channel_units``, ``channel_long_name``,
``channel_role``, ``channel_source``, ``channel_positive``, ``channel_time_kind``,
``channel_log_offset`` ``[channel]``
    Per-channel metadata (non-index coordinates of ``fields``): vocabulary variable, level in
    hPa (-1 for a single-level variable), units, long name, role (weather / pollutant /
    static), the dataset the values come from, whether the quantity is non-negative,
    instant / accumulated / constant, and the offset of the log transform (NaN where the
    channel is not ``positive``).
``missing_times [missing]``
    Times of the axis without data, ascending: the data store answered that it has no data for
    an input of that time (MARS's "no data"). An input that could not be fetched stops the build
    instead; only a build with ``accept_holes`` (``aircast store build --accept-holes``) lists
    its times here too. The array's attribute ``reasons`` is a list of strings parallel to it,
    one per missing time: the undelivered inputs of its day, each ``no data at the store:
    <request>``, ``fetch failed: <request>: <error>`` or ``file gone from the raw cache:
    <request>``, joined by ``"; "`` (``(not recorded)`` for times of a store built before
    reasons were kept). With xarray: ``ds["missing_times"].attrs["reasons"]``.
``stat_count``, ``stat_mean``, ``stat_std`` ``[channel]``
    int64 / float64: number of values, mean and population standard deviation (ddof 0) of
    each channel over every grid cell and every non-missing time of the *training period*
    only, unweighted. Written by the finalise stage (NaN before).
``stat_log_count``, ``stat_log_mean``, ``stat_log_std`` ``[channel]``
    The same in log space, ``log(max(x, 0) + channel_log_offset)``, for ``positive`` channels
    (0 / NaN for the others). The clamp at 0 makes packing noise below zero harmless.
``pollutant [pollutant]`` (str)
    The channels of role ``pollutant``, in channel order.
``hist_edges_log [pollutant, hist_edge]``
    float64, ``HIST_BINS + 1`` fixed edges in log space, uniform from
    ``log(channel_log_offset)`` to ``log(upper + channel_log_offset)`` where ``upper`` is a
    physical upper bound (``aircast.store.stats.LOG_SCALES``): fixed, so that parts need no
    pre-pass to agree on them.
``hist_edges_normalised [pollutant, hist_edge]``
    The same edges in the normalised log space the loss works in:
    ``(hist_edges_log - stat_log_mean) / stat_log_std`` (a linear map of the same bins).
``hist_counts [pollutant, hist_bin]``
    int64, ``HIST_BINS + 2`` counts over the training period: bin 0 is the underflow
    (below the first edge), bins 1 … HIST_BINS the intervals ``[e[i-1], e[i])``, the last bin
    the overflow (at or above the last edge); ``numpy.searchsorted(edges, v, side="right")``
    gives a value's bin. Counts sum to ``stat_log_count`` of the channel.

Attributes of the root group (JSON, no timestamps or other run-dependent values)
-----------------------------------------------------------------------------------
``aircast_store``: ``"training"``; ``schema_version``: :data:`SCHEMA_VERSION`;
``recipe``: the config's ``region``, ``grid``, ``variables`` and ``periods`` as JSON;
``recipe_fingerprint``: sha256 of the canonical JSON of ``recipe`` (sorted keys, no spaces);
``grid``: resolution, edges and shape; ``time_axis``: ``start``, ``end`` (ISO, first and last
time), ``step_hours``, ``n_times`` (the declared length: ``fields`` and ``time`` always have
it once a stage has ended); ``recipe_days``: the periods' first and last day;
``part_days``/``n_parts``: how the recipe's days are cut into build parts;
``statistics``: how the statistics were computed; ``state``: ``initialising``, ``building``
or ``complete``.

The ``build`` subgroup (the build's own bookkeeping, not part of the data)
--------------------------------------------------------------------------
``build/part-NNNN``: one group per part, holding the part's mergeable statistics (float64
count, mean and M2 in linear and log space, histogram counts), its ``missing_times`` and, in
its attributes, its days, a digest of the raw inputs it read, ``missing_reasons`` (parallel to
its ``missing_times``) and ``complete``. Finalise merges
them in part order, so a parallel build gives the same bytes as a serial one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from aircast.config import AirCastConfig
from aircast.errors import AirCastError
from aircast.store.coordinates import time_attrs

SCHEMA_VERSION = 1
STORE_KIND = "training"

# ---- dimension names
TIME = "time"
CHANNEL = "channel"
LATITUDE = "latitude"
LONGITUDE = "longitude"
MISSING = "missing"
POLLUTANT = "pollutant"
HIST_EDGE = "hist_edge"
HIST_BIN = "hist_bin"

# ---- array names
FIELDS = "fields"
MISSING_TIMES = "missing_times"
CHANNEL_META = (
    "channel_variable",
    "channel_level",
    "channel_units",
    "channel_long_name",
    "channel_role",
    "channel_source",
    "channel_positive",
    "channel_time_kind",
    "channel_log_offset",
)
STATISTICS = (
    "stat_count",
    "stat_mean",
    "stat_std",
    "stat_log_count",
    "stat_log_mean",
    "stat_log_std",
)
HIST_EDGES_LOG = "hist_edges_log"
HIST_EDGES_NORMALISED = "hist_edges_normalised"
HIST_COUNTS = "hist_counts"

BUILD_GROUP = "build"
TIME_ATTRS: Mapping[str, str] = time_attrs("time", "time (UTC)")
#: Single-level channels carry this in ``channel_level``.
NO_LEVEL = -1
#: Entries of the 1-D ``time`` coordinate per chunk: a year of three-hourly steps, so that
#: opening a store reads a handful of objects, not one per day.
TIME_CHUNK = 2920
#: Entries of ``missing_times`` per chunk.
MISSING_CHUNK = 4096

STATES = ("initialising", "building", "complete")


@dataclass(frozen=True)
class ArraySpec:
    """What the contract requires of one array: its dimensions and its dtype kind."""

    dims: tuple[str, ...]
    kind: str  # numpy dtype kind: f float, i int, b bool, T/U/O string


ARRAYS: Mapping[str, ArraySpec] = {
    FIELDS: ArraySpec((TIME, CHANNEL, LATITUDE, LONGITUDE), "f"),
    TIME: ArraySpec((TIME,), "i"),
    CHANNEL: ArraySpec((CHANNEL,), "T"),
    LATITUDE: ArraySpec((LATITUDE,), "f"),
    LONGITUDE: ArraySpec((LONGITUDE,), "f"),
    "channel_variable": ArraySpec((CHANNEL,), "T"),
    "channel_level": ArraySpec((CHANNEL,), "i"),
    "channel_units": ArraySpec((CHANNEL,), "T"),
    "channel_long_name": ArraySpec((CHANNEL,), "T"),
    "channel_role": ArraySpec((CHANNEL,), "T"),
    "channel_source": ArraySpec((CHANNEL,), "T"),
    "channel_positive": ArraySpec((CHANNEL,), "b"),
    "channel_time_kind": ArraySpec((CHANNEL,), "T"),
    "channel_log_offset": ArraySpec((CHANNEL,), "f"),
    MISSING_TIMES: ArraySpec((MISSING,), "i"),
    "stat_count": ArraySpec((CHANNEL,), "i"),
    "stat_mean": ArraySpec((CHANNEL,), "f"),
    "stat_std": ArraySpec((CHANNEL,), "f"),
    "stat_log_count": ArraySpec((CHANNEL,), "i"),
    "stat_log_mean": ArraySpec((CHANNEL,), "f"),
    "stat_log_std": ArraySpec((CHANNEL,), "f"),
    POLLUTANT: ArraySpec((POLLUTANT,), "T"),
    HIST_EDGES_LOG: ArraySpec((POLLUTANT, HIST_EDGE), "f"),
    HIST_EDGES_NORMALISED: ArraySpec((POLLUTANT, HIST_EDGE), "f"),
    HIST_COUNTS: ArraySpec((POLLUTANT, HIST_BIN), "i"),
}

REQUIRED_ATTRS = (
    "aircast_store",
    "schema_version",
    "recipe",
    "recipe_fingerprint",
    "grid",
    "time_axis",
    "recipe_days",
    "part_days",
    "n_parts",
    "statistics",
    "state",
)


# ---- errors


class StoreError(AirCastError, RuntimeError):
    """A training store that cannot be used as asked; the message says what to do."""


class SchemaError(StoreError):
    """A store that does not satisfy this contract (or another schema version of it)."""


class RecipeMismatchError(StoreError):
    """A store at the URL that was built from another recipe."""


class StoreIncompleteError(StoreError):
    """A store whose build has not been finalised."""


class MissingDataError(StoreError, LookupError):
    """Times that the store lists in ``missing_times`` were asked for.

    Attributes
    ----------
    times
        The requested times without data, datetime64[ns], shape (n,).
    """

    def __init__(self, message: str, times: np.ndarray) -> None:
        super().__init__(message)
        self.times = times


# ---- the recipe and its fingerprint


def recipe_of(config: AirCastConfig) -> dict[str, Any]:
    """The part of a config that determines the store's contents, as plain JSON values."""
    recipe: dict[str, Any] = config.model_dump(
        mode="json", include={"region", "grid", "variables", "periods"}
    )
    return json.loads(canonical_json(recipe))  # type: ignore[no-any-return]


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def recipe_fingerprint(recipe: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a recipe."""
    return hashlib.sha256(canonical_json(recipe).encode()).hexdigest()


def recipe_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Human-readable differences ``key: store has A, config has B`` between two recipes."""

    def flat(value: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                out.update(flat(item, f"{prefix}.{key}" if prefix else str(key)))
            return out
        return {prefix: value}

    a, b = flat(stored), flat(wanted)
    return [
        f"{key}: the store has {a.get(key, '(nothing)')}, the config has {b.get(key, '(nothing)')}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


# ---- time encoding


def encode_times(times: np.ndarray) -> np.ndarray:
    """datetime64 → int64 hours since 1970-01-01, shape unchanged."""
    hours = np.asarray(times).astype("datetime64[h]").astype(np.int64)
    return hours


def decode_times(hours: np.ndarray) -> np.ndarray:
    """int64 hours since 1970-01-01 → datetime64[ns], shape unchanged."""
    return np.asarray(hours, dtype=np.int64).astype("datetime64[h]").astype("datetime64[ns]")


def iso_hour(time: Any) -> str:
    """``2019-06-01T03:00`` for a time (datetime64 or datetime)."""
    return str(np.datetime64(time, "m"))


def array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``group`` (a SchemaError if it is missing or a group)."""
    try:
        node = group[name]
    except KeyError:
        raise SchemaError(f"{_where(group)}: array {name!r} is missing") from None
    if not isinstance(node, zarr.Array):
        raise SchemaError(f"{_where(group)}: {name!r} is a group, not an array")
    return node


def read_array(group: zarr.Group, name: str) -> np.ndarray:
    """All of array ``name`` as a numpy array."""
    return np.asarray(array(group, name)[...])


# ---- the check


def _dims(array: zarr.Array) -> tuple[str, ...]:
    names = getattr(array.metadata, "dimension_names", None)
    return tuple(str(n) for n in names) if names else ()


def _kind(array: zarr.Array) -> str:
    dtype = array.dtype
    kind = str(getattr(dtype, "kind", "O"))
    # zarr's variable-length strings read as numpy StringDType (kind T) or objects
    return "T" if kind in {"T", "U", "O"} else kind


def check_store(group: zarr.Group, *, allow_pending_extension: bool = False) -> dict[str, Any]:
    """Check that ``group`` satisfies this contract; return its root attributes.

    Reads only metadata and the small 1-D coordinates, never ``fields``.

    Parameters
    ----------
    group
        The store's root group.
    allow_pending_extension
        Accept ``fields`` and ``time`` longer than the declared time axis (an extension
        that was interrupted; only :func:`aircast.store.build.extend_store` passes this).

    Raises
    ------
    SchemaError
        Naming what is wrong and the fix.
    """
    attrs: dict[str, Any] = dict(group.attrs)
    kind = attrs.get("aircast_store")
    if kind != STORE_KIND:
        raise SchemaError(
            f"{_where(group)} is not an AirCast training store (attribute aircast_store = "
            f"{kind!r}, expected {STORE_KIND!r}); point store.url somewhere else"
        )
    version = attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SchemaError(
            f"{_where(group)} has schema version {version!r}, this AirCast reads and writes "
            f"version {SCHEMA_VERSION}; rebuild it (`aircast store build`) at a new store.url, "
            "or use the AirCast release that wrote it. Nothing was changed."
        )
    if attrs.get("state") == "initialising":
        raise StoreIncompleteError(
            f"{_where(group)}: the store's initialisation was interrupted; run "
            "`aircast store build CONFIG` (or init_store) again to finish it"
        )
    problems = [f"attribute {name!r} is missing" for name in REQUIRED_ATTRS if name not in attrs]
    if not problems:
        if recipe_fingerprint(attrs["recipe"]) != attrs["recipe_fingerprint"]:
            problems.append("recipe_fingerprint is not the sha256 of the recipe attribute")
        if attrs["state"] not in STATES:
            problems.append(f"state {attrs['state']!r} is not one of {STATES}")
    members = dict(group.arrays())
    for name, spec in ARRAYS.items():
        if name not in members:
            problems.append(f"array {name!r} is missing")
            continue
        dims = _dims(members[name])
        if dims != spec.dims:
            problems.append(f"array {name!r} has dimensions {dims}, expected {spec.dims}")
        if _kind(members[name]) != spec.kind:
            problems.append(
                f"array {name!r} has dtype {members[name].dtype}, expected kind {spec.kind}"
            )
    if problems:
        raise SchemaError(_report(group, problems))
    sizes: dict[str, int] = {}
    for name, spec in ARRAYS.items():
        for dim, size in zip(spec.dims, members[name].shape, strict=True):
            if sizes.setdefault(dim, size) != size and dim != TIME:
                problems.append(
                    f"dimension {dim!r} has length {sizes[dim]} in one array and {size} in {name!r}"
                )
    fields, time = members[FIELDS], members[TIME]
    n_channel, n_lat, n_lon = fields.shape[1:]
    if fields.chunks != (1, n_channel, n_lat, n_lon):
        problems.append(
            f"fields is chunked {fields.chunks}, the contract is one time step per chunk "
            f"{(1, n_channel, n_lat, n_lon)}"
        )
    if fields.dtype != np.float32:
        problems.append(f"fields has dtype {fields.dtype}, expected float32")
    declared = int(attrs["time_axis"]["n_times"])
    lengths = {fields.shape[0], time.shape[0]}
    if lengths != {declared}:
        if allow_pending_extension and min(lengths) >= declared:
            pass
        elif min(lengths) > declared:
            problems.append(
                f"fields has {fields.shape[0]} and time {time.shape[0]} times but the store "
                f"declares {declared}: an extension was interrupted; rerun extend_store "
                "(`aircast store extend`) with the same dates to finish it"
            )
        else:
            problems.append(
                f"fields has {fields.shape[0]} and time {time.shape[0]} times but the store "
                f"declares {declared}; the store is damaged: rebuild it"
            )
    grid = attrs["grid"]
    if (n_lat, n_lon) != (grid["n_lat"], grid["n_lon"]):
        problems.append(
            f"fields is {n_lat}×{n_lon} but the grid attribute says {grid['n_lat']}×{grid['n_lon']}"
        )
    if not problems:
        problems.extend(_check_coordinates(group, attrs, declared))
    if problems:
        raise SchemaError(_report(group, problems))
    return attrs


def _check_coordinates(group: zarr.Group, attrs: Mapping[str, Any], declared: int) -> list[str]:
    problems = []
    hours = read_array(group, TIME)[:declared]
    start = np.datetime64(attrs["time_axis"]["start"], "h").astype(np.int64)
    step = int(attrs["time_axis"]["step_hours"])
    if not np.array_equal(hours, start + step * np.arange(declared)):
        problems.append(
            f"time is not the regular {step}-hourly axis from {attrs['time_axis']['start']}"
        )
    if declared and iso_hour(decode_times(hours[-1:])[0]) != attrs["time_axis"]["end"]:
        problems.append(f"time ends at {decode_times(hours[-1:])[0]}, not at time_axis.end")
    lat = read_array(group, LATITUDE)
    lon = read_array(group, LONGITUDE)
    if lat.size > 1 and not np.all(np.diff(lat) < 0):
        problems.append("latitude does not run north to south")
    if lon.size > 1 and not np.all(np.diff(lon) > 0):
        problems.append("longitude is not increasing")
    if lon.size and (lon.min() < -180 or lon.max() >= 180):
        problems.append("longitude is not within [-180, 180)")
    channels = [str(c) for c in read_array(group, CHANNEL)]
    recipe = attrs["recipe"]["variables"]
    wanted = [*recipe["weather"], *recipe["pollutants"], *recipe.get("static", [])]
    if channels != wanted:
        problems.append(f"channels {channels} are not the recipe's {wanted}")
    return problems


def _where(group: zarr.Group) -> str:
    return str(group.store_path)


def _report(group: zarr.Group, problems: list[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    return (
        f"{_where(group)} does not satisfy the training-store contract (schema version "
        f"{SCHEMA_VERSION}):\n{lines}\nrebuild it with `aircast store build` at a new "
        "store.url (nothing was changed)"
    )
