"""Building the training store: staged, resumable, idempotent, and extended day by day.

Stages (each safe to rerun; the contract is in :mod:`aircast.store.schema`):

``init_store``
    Creates the group with the whole time axis of the recipe's periods (NaN, no chunks) and
    every piece of metadata. Rerun on the same recipe it changes nothing; a store of another
    recipe or schema version at the URL is refused and left as it is.
``load_part``
    A part is ``store.part_days`` consecutive days of the recipe. It reads their raw files
    (through the manifest), decodes, regrids conservatively onto the target grid, aligns to
    the three-hourly axis by timestamp, stacks the channels in config order and writes its
    own time region of ``fields``; then it writes its mergeable training statistics to
    ``build/part-NNNN``. Parts touch disjoint chunks, so they run in any order and in
    parallel; a rerun (or a rerun after a kill) writes the same bytes.
``finalise_store``
    Merges the parts' statistics in part order (so the order the parts ran in does not
    matter), writes statistics, histograms and ``missing_times``, marks the store complete.
``verify_store``
    Every time has data or is listed missing; statistics are finite and consistent; channel
    metadata agree with the vocabulary.
``extend_store``
    Appends days after the store's end: resizes the time dimension and writes only the new
    chunks. Statistics stay those of the training period.

A day that the data stores have no data for (its requests are ``failed`` in the manifest with
the store's "no data" answer) becomes a NaN slot without a chunk, listed in ``missing_times``
and left out of the statistics. A time is missing when *any* channel lacks it: a missing
precipitation request of day D also takes 00 UTC of D + 1, whose three-hour amount needs the
last two hours of D. A day that was never ingested, or could not be fetched (another failure,
or ``complete`` but the file is gone), is an error, not a missing day: silently building holes
would be worse. ``accept_holes`` builds them as missing times all the same; the reason of each
missing time is kept in the ``reasons`` attribute of ``missing_times`` (see the contract in
:mod:`aircast.store.schema`).

The store holds no timestamps or other run-dependent values, so two builds of the same
recipe from the same raw cache are byte-identical, whatever the order and parallelism.

The stages' parts live beside this module: what a config asks of its store
(:mod:`aircast.store.layout`), the raw inputs of a span and their digest
(:mod:`aircast.store.inputs`), loading a span of days through its sources
(:mod:`aircast.store.days`), and the zarr arrays, codecs and attributes
(:mod:`aircast.store.arrays`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from aircast.align.time import STEP_HOURS, axis_times
from aircast.config import AirCastConfig
from aircast.sources.ingest import raw_cache
from aircast.store import coordinates, location
from aircast.store.arrays import (
    FIELDS_CODEC,
    SMALL_CODEC,
    create_array,
    root_attrs,
    time_axis_attrs,
)
from aircast.store.days import LoadedDays, StoreBuildError, load_days
from aircast.store.inputs import inputs_digest, raw_inputs
from aircast.store.integrity import DECODE_ERRORS, corrupt_chunks, scan_chunks, training_store_fix
from aircast.store.layout import STEPS_PER_DAY, Layout, log_scale_of
from aircast.store.schema import (
    BUILD_GROUP,
    CHANNEL,
    CHANNEL_META,
    FIELDS,
    HIST_BIN,
    HIST_COUNTS,
    HIST_EDGE,
    HIST_EDGES_LOG,
    HIST_EDGES_NORMALISED,
    LATITUDE,
    LONGITUDE,
    MISSING,
    MISSING_CHUNK,
    MISSING_TIMES,
    NO_LEVEL,
    POLLUTANT,
    SCHEMA_VERSION,
    STORE_KIND,
    TIME,
    TIME_ATTRS,
    TIME_CHUNK,
    RecipeMismatchError,
    SchemaError,
    StoreError,
    StoreIncompleteError,
    array,
    check_store,
    decode_times,
    encode_times,
    iso_hour,
    read_array,
    recipe_differences,
)
from aircast.store.stats import HIST_BINS, Moments, PartStatistics

LOG = logging.getLogger(__name__)


class VerificationError(StoreError):
    """A store that fails :func:`verify_store`; the message lists every problem."""


# ---------------------------------------------------------------------------------------------
# Opening a store and checking it belongs to the config


def _open(layout: Layout, mode: str = "r+", *, pending_extension: bool = False) -> zarr.Group:
    store = location.zarr_store(layout.url, layout.storage_options, read_only=mode == "r")
    if not location.has_zarr_group(store):
        raise StoreError(
            f"there is no training store at {layout.url}: create it with init_store "
            "(`aircast store build CONFIG` runs every stage)"
        )
    group = zarr.open_group(store, mode=mode, use_consolidated=False)  # type: ignore[arg-type]
    _check_identity(group, layout)
    attrs = check_store(group, allow_pending_extension=pending_extension)
    if attrs["state"] == "initialising":
        raise StoreIncompleteError(
            f"the store at {layout.url} was not fully initialised (interrupted): run init_store "
            "(or `aircast store build CONFIG`) again"
        )
    if attrs["part_days"] != layout.part_days:
        raise StoreError(
            f"the store at {layout.url} was started with store.part_days = {attrs['part_days']}, "
            f"the config says {layout.part_days}; set store.part_days: {attrs['part_days']} to "
            "go on building it (parts must keep their days)"
        )
    return group


def _check_identity(group: zarr.Group, layout: Layout) -> None:
    """Refuse a store of another kind, schema version or recipe (changing nothing)."""
    attrs: dict[str, Any] = dict(group.attrs)
    if attrs.get("aircast_store") != STORE_KIND or attrs.get("schema_version") != SCHEMA_VERSION:
        check_store(group)  # raises its SchemaError naming the problem
    if attrs.get("recipe_fingerprint") != layout.fingerprint:
        diff = recipe_differences(attrs.get("recipe", {}), layout.recipe)
        shown = "\n".join(f"  - {d}" for d in diff) or "  - (the recipe attribute is damaged)"
        raise RecipeMismatchError(
            f"the store at {layout.url} was built from another recipe (fingerprint "
            f"{str(attrs.get('recipe_fingerprint'))[:12]}…, this config's is "
            f"{layout.fingerprint[:12]}…):\n{shown}\nset store.url to a new location for this "
            "recipe, or delete the old store if it is no longer needed. Nothing was changed."
        )


# ---------------------------------------------------------------------------------------------
# init


def init_store(config: AirCastConfig) -> None:
    """Create the store for ``config`` (idempotent).

    Raises
    ------
    RecipeMismatchError
        When a store of another recipe exists at the URL (nothing is changed).
    SchemaError
        When something else, or another schema version, is there (nothing is changed).
    """
    layout = Layout.from_config(config)
    store = location.zarr_store(layout.url, layout.storage_options)
    if location.has_zarr_group(store):
        group = zarr.open_group(store, mode="r", use_consolidated=False)  # type: ignore[arg-type]
        _check_identity(group, layout)
        if group.attrs.get("state") != "initialising":
            check_store(group, allow_pending_extension=True)
            return  # the same recipe is already there: change nothing
        LOG.info("finishing the interrupted initialisation of %s", layout.url)
    elif location.exists(layout.url, layout.storage_options):
        raise SchemaError(
            f"{layout.url} already holds files that are not an AirCast training store; set "
            "store.url to an empty or new location (nothing was changed)"
        )
    times = axis_times(layout.first_day, layout.last_day)
    # the identity goes first, so an interrupted init is recognised (and finished) by a rerun
    # of the same recipe and refused by another
    group = zarr.open_group(
        store,  # type: ignore[arg-type]
        mode="w",
        zarr_format=3,
        attributes=root_attrs(layout, times, "initialising"),
    )
    _write_coordinates(group, layout, times)
    group.attrs.update({"state": "building"})


def _write_coordinates(group: zarr.Group, layout: Layout, times: np.ndarray) -> None:
    channels, grid = layout.channels, layout.grid
    n_c, (n_lat, n_lon) = len(channels), grid.shape
    coordinates.write_coordinates(
        group,
        [
            coordinates.Coordinate(
                TIME,
                (TIME,),
                {**TIME_ATTRS, "axis": "T"},
                encode_times(times),
                chunks=(TIME_CHUNK,),
            ),
            coordinates.Coordinate(
                CHANNEL, (CHANNEL,), {}, np.array([c.name for c in channels]), dtype=str
            ),
            coordinates.latitude(grid.latitudes, axis="Y"),
            coordinates.longitude(grid.longitudes, axis="X"),
        ],
        compressors=SMALL_CODEC,
    )
    meta: dict[str, tuple[np.ndarray, Any, str]] = {
        "channel_variable": (np.array([c.variable for c in channels]), str, "vocabulary variable"),
        "channel_level": (
            np.array([NO_LEVEL if c.level is None else c.level for c in channels], np.int32),
            None,
            f"pressure level in hPa; {NO_LEVEL} for a single-level variable",
        ),
        "channel_units": (np.array([c.spec.units for c in channels]), str, "units of fields"),
        "channel_long_name": (np.array([c.spec.long_name for c in channels]), str, "long name"),
        "channel_role": (np.array([c.spec.role.value for c in channels]), str, "model role"),
        "channel_source": (np.array(layout.sources), str, "dataset the values come from"),
        "channel_positive": (
            np.array([c.spec.positive for c in channels], bool),
            None,
            "physically non-negative: log-transformed and clamped at zero by the model",
        ),
        "channel_time_kind": (
            np.array([c.spec.time_kind.value for c in channels]),
            str,
            "instant; accumulated over the 3 hours ending at the time; constant",
        ),
        "channel_log_offset": (
            np.array(
                [log_scale_of(c).offset if c.spec.positive else np.nan for c in channels],
                np.float64,
            ),
            None,
            "offset of the log transform log(max(x, 0) + offset); NaN if not positive",
        ),
    }
    for name, (data, dtype, description) in meta.items():
        create_array(group, name, data, (CHANNEL,), dtype=dtype, attrs={"description": description})
    pollutant_names = np.array([channels[i].name for i in layout.pollutants])
    create_array(group, POLLUTANT, pollutant_names, (POLLUTANT,), dtype=str)
    n_p = len(layout.pollutants)
    hist_attrs = {"bins": "bin 0: underflow; 1..N: [e[i-1], e[i]); N+1: overflow"}
    create_array(
        group,
        HIST_EDGES_LOG,
        layout.edges,
        (POLLUTANT, HIST_EDGE),
        attrs={"description": "fixed edges of log(max(x, 0) + channel_log_offset)"},
    )
    create_array(
        group,
        HIST_EDGES_NORMALISED,
        None,
        (POLLUTANT, HIST_EDGE),
        shape=(n_p, HIST_BINS + 1),
        dtype=np.float64,
        fill_value=np.nan,
        attrs={"description": "(hist_edges_log - stat_log_mean) / stat_log_std"},
    )
    create_array(
        group,
        HIST_COUNTS,
        None,
        (POLLUTANT, HIST_BIN),
        shape=(n_p, HIST_BINS + 2),
        dtype=np.int64,
        fill_value=0,
        attrs={"description": "training-period counts", **hist_attrs},
    )
    for name, dtype, fill, description in (
        ("stat_count", np.int64, 0, "values in the training statistics"),
        ("stat_mean", np.float64, np.nan, "training-period mean"),
        ("stat_std", np.float64, np.nan, "training-period standard deviation (ddof 0)"),
        ("stat_log_count", np.int64, 0, "values in the log-space statistics"),
        ("stat_log_mean", np.float64, np.nan, "training-period mean of the log transform"),
        ("stat_log_std", np.float64, np.nan, "training-period std of the log transform"),
    ):
        create_array(
            group,
            name,
            None,
            (CHANNEL,),
            shape=(n_c,),
            dtype=dtype,
            fill_value=fill,
            attrs={"description": description},
        )
    create_array(
        group,
        MISSING_TIMES,
        None,
        (MISSING,),
        shape=(0,),
        dtype=np.int64,
        chunks=(MISSING_CHUNK,),
        fill_value=0,
        attrs={**TIME_ATTRS, "description": "times of the axis without data"},
    )
    create_array(
        group,
        FIELDS,
        None,
        (TIME, CHANNEL, LATITUDE, LONGITUDE),
        shape=(times.size, n_c, n_lat, n_lon),
        dtype=np.float32,
        chunks=(1, n_c, n_lat, n_lon),
        fill_value=np.nan,
        attrs={
            "long_name": "AirCast training fields (units per channel: channel_units)",
            "coordinates": " ".join(CHANNEL_META),
        },
        codec=FIELDS_CODEC,
    )
    group.require_group(BUILD_GROUP)


# ---------------------------------------------------------------------------------------------
# load a part


@dataclass(frozen=True)
class PartResult:
    """What :func:`load_part` did (returned to the caller; nothing of it enters the store)."""

    index: int
    first_day: dt.date
    last_day: dt.date
    n_times: int
    n_missing: int
    notes: tuple[str, ...]
    seconds: float


def part_name(index: int) -> str:
    """The part's group path inside the store."""
    return f"{BUILD_GROUP}/part-{index:04d}"


def load_part(config: AirCastConfig, part_index: int, *, accept_holes: bool = False) -> PartResult:
    """Load part ``part_index`` (days ``part_days × index`` … of the recipe) into the store.

    Idempotent: a rerun, or a rerun after a kill at any moment, leaves the same bytes.

    Parameters
    ----------
    accept_holes
        Let inputs that could not be fetched become missing times instead of stopping.

    Raises
    ------
    NotIngestedError, GridError
        Before anything is written, when the raw inputs are not there or do not fit (a
        :class:`~aircast.store.inputs.HolesError` for inputs that could not be fetched).
    DamagedInputError
        Before anything is written, when a cached file is damaged (it is quarantined).
    """
    started = time.perf_counter()
    layout = Layout.from_config(config)
    group = _open(layout)
    first, last = layout.part_range(part_index)
    # all reading and computing happens before the first write, so a bad input changes nothing
    loaded = load_days(layout, first, last, accept_holes=accept_holes)
    train = layout.training(loaded.times) & ~loaded.missing
    stats = PartStatistics.from_fields(
        loaded.values[train], layout.positive, layout.offsets, layout.pollutants, layout.edges
    )
    if group.attrs.get("state") == "complete":
        group.attrs.update({"state": "building"})  # the statistics must be merged again
    name = part_name(part_index)
    part = zarr.open_group(
        group.store,  # type: ignore[arg-type]
        path=name,
        mode="w",
        attributes=_part_attrs(part_index, first, last, loaded, complete=False),
        use_consolidated=False,
    )
    start = layout.time_index(first)
    stop = start + loaded.times.size
    location.remove_partial_writes(
        layout.url, [f"{FIELDS}/c/{t}" for t in range(start, stop)] + [name]
    )
    array(group, FIELDS)[start:stop] = loaded.values
    _write_part_stats(part, stats, loaded)
    part.attrs.update({"complete": True})  # last: a part is complete only once all is written
    LOG.info("part %d (%s..%s): %d missing times", part_index, first, last, loaded.missing.sum())
    return PartResult(
        part_index,
        first,
        last,
        int(loaded.times.size),
        int(loaded.missing.sum()),
        loaded.notes,
        time.perf_counter() - started,
    )


def _part_attrs(
    index: int, first: dt.date, last: dt.date, loaded: LoadedDays, *, complete: bool
) -> dict[str, Any]:
    return {
        "part_index": index,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "n_times": int(loaded.times.size),
        "n_missing": int(loaded.missing.sum()),
        "inputs_digest": loaded.digest,
        "missing_reasons": list(loaded.reasons),
        "complete": complete,
    }


def _write_part_stats(part: zarr.Group, stats: PartStatistics, loaded: LoadedDays) -> None:
    for prefix, moments, dim in (("lin", stats.linear, CHANNEL), ("log", stats.log, "positive")):
        create_array(part, f"{prefix}_count", moments.count, (dim,))
        create_array(part, f"{prefix}_mean", moments.mean, (dim,))
        create_array(part, f"{prefix}_m2", moments.m2, (dim,))
    create_array(part, HIST_COUNTS, stats.hist_counts, (POLLUTANT, HIST_BIN))
    missing = encode_times(loaded.times[loaded.missing])
    create_array(part, MISSING_TIMES, missing, (MISSING,), shape=missing.shape, dtype=np.int64)


def _read_part(group: zarr.Group, index: int) -> tuple[PartStatistics, np.ndarray, list[str]]:
    part = group[part_name(index)]
    assert isinstance(part, zarr.Group)

    def read(name: str) -> np.ndarray:
        return read_array(part, name)

    stats = PartStatistics(
        Moments(read("lin_count"), read("lin_mean"), read("lin_m2")),
        Moments(read("log_count"), read("log_mean"), read("log_m2")),
        read(HIST_COUNTS),
    )
    missing = read(MISSING_TIMES)
    return stats, missing, _reasons(part.attrs.get("missing_reasons"), missing.size)


def _reasons(stored: Any, n: int) -> list[str]:
    """Reasons parallel to ``n`` missing times (an older store recorded none)."""
    if isinstance(stored, list) and len(stored) == n:
        return [str(r) for r in stored]
    return ["(not recorded)"] * n


def _part_state(group: zarr.Group, layout: Layout, index: int) -> dict[str, Any] | None:
    """The attributes of a complete part whose days match the layout, else None."""
    try:
        part = group[part_name(index)]
    except KeyError:
        return None
    attrs = dict(part.attrs)
    first, last = layout.part_range(index)
    if (
        attrs.get("complete") is not True
        or attrs.get("first_day") != first.isoformat()
        or attrs.get("last_day") != last.isoformat()
    ):
        return None
    return attrs


# ---------------------------------------------------------------------------------------------
# finalise


@dataclass(frozen=True)
class FinaliseResult:
    """What :func:`finalise_store` wrote."""

    n_missing: int
    training_values: int


def finalise_store(config: AirCastConfig) -> FinaliseResult:
    """Merge the parts' statistics (in part order), write them and ``missing_times``, and
    mark the store complete (idempotent).

    Raises
    ------
    StoreIncompleteError
        Naming the parts that are not loaded yet (or were interrupted).
    StoreBuildError
        When a channel has no training values at all.
    """
    layout = Layout.from_config(config)
    group = _open(layout)
    not_done = [i for i in range(layout.n_parts) if _part_state(group, layout, i) is None]
    if not_done:
        raise StoreIncompleteError(
            f"parts {_ranges(not_done)} of {layout.n_parts} are not loaded (or were "
            "interrupted): run load_part for them, or `aircast store build CONFIG`, which "
            "resumes where it stopped"
        )
    merged = PartStatistics.empty(
        len(layout.channels), len(layout.positive), len(layout.pollutants)
    )
    reasons: dict[int, str] = {}
    for index in range(layout.n_parts):
        stats, missing, why = _read_part(group, index)
        merged = merged.merge(stats)
        reasons.update(zip(missing.tolist(), why, strict=True))
    empty = [layout.channels[i].name for i in np.flatnonzero(merged.linear.count == 0)]
    if empty:
        raise StoreBuildError(
            f"no training values for {', '.join(empty)}: every time of the training period "
            f"{layout.config.periods.train.start}..{layout.config.periods.train.end} is missing; "
            "ingest those days again (see missing_times of the parts) and rebuild"
        )
    _write_statistics(group, layout, merged)
    # the days an extension appended keep their missing times (they belong to no part)
    recipe_end = encode_times(axis_times(layout.last_day, layout.last_day))[-1]
    current = _current_reasons(group)
    reasons.update((hour, why) for hour, why in current.items() if hour > recipe_end)
    _write_missing(group, reasons)
    group.attrs.update({"state": "complete"})
    location.remove_partial_writes(layout.url, ["."])
    _consolidate(layout)
    return FinaliseResult(len(reasons), int(merged.linear.count.sum()))


def _ranges(indices: Sequence[int]) -> str:
    out: list[str] = []
    for i in indices:
        if out and out[-1].split("..")[-1] == str(i - 1):
            out[-1] = f"{out[-1].split('..')[0]}..{i}"
        else:
            out.append(str(i))
    return ", ".join(out)


def _write_statistics(group: zarr.Group, layout: Layout, merged: PartStatistics) -> None:
    n_c = len(layout.channels)
    log_count = np.zeros(n_c, np.int64)
    log_mean = np.full(n_c, np.nan)
    log_std = np.full(n_c, np.nan)
    positive = list(layout.positive)
    log_count[positive] = merged.log.count
    log_mean[positive] = merged.log.mean_or_nan
    log_std[positive] = merged.log.std
    arrays = {
        "stat_count": merged.linear.count,
        "stat_mean": merged.linear.mean_or_nan,
        "stat_std": merged.linear.std,
        "stat_log_count": log_count,
        "stat_log_mean": log_mean,
        "stat_log_std": log_std,
        HIST_COUNTS: merged.hist_counts,
    }
    pollutants = list(layout.pollutants)
    normalised = (layout.edges - log_mean[pollutants][:, None]) / log_std[pollutants][:, None]
    arrays[HIST_EDGES_NORMALISED] = normalised
    for name, data in arrays.items():
        array(group, name)[...] = data


def _current_reasons(group: zarr.Group) -> dict[int, str]:
    """The store's missing times (hours) and why each is missing."""
    hours = read_array(group, MISSING_TIMES).astype(np.int64)
    why = _reasons(array(group, MISSING_TIMES).attrs.get("reasons"), hours.size)
    return dict(zip(hours.tolist(), why, strict=True))


def _write_missing(group: zarr.Group, reasons: dict[int, str]) -> None:
    """Write ``missing_times`` (ascending hours) and, parallel to it, their reasons."""
    hours = np.array(sorted(reasons), dtype=np.int64)
    missing = array(group, MISSING_TIMES)
    missing.resize((hours.size,))
    if hours.size:
        missing[...] = hours
    missing.attrs.update({"reasons": [reasons[int(h)] for h in hours]})


def _consolidate(layout: Layout) -> None:
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not yet in the v3 spec; xarray relies on it
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        location.consolidate(layout.url, layout.storage_options)


# ---------------------------------------------------------------------------------------------
# verify


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify_store` checked."""

    n_times: int
    n_missing: int
    n_channels: int
    deep: bool


def verify_store(config: AirCastConfig, *, deep: bool = False) -> VerifyResult:
    """Check a finalised store against its recipe and the contract.

    Every time has a chunk or is listed in ``missing_times`` (never both); statistics are
    finite and agree with the histograms; channel metadata agree with the vocabulary. With
    ``deep``, every chunk of every array is read first (one at a time), and the fields must
    be finite.

    Raises
    ------
    CorruptChunkError
        Naming every chunk that cannot be decoded (array, key, path) and the fix; with
        ``deep``, or when a chunk the other checks read is damaged.
    VerificationError
        Listing every other problem found.
    """
    layout = Layout.from_config(config)
    try:
        group = _open(layout, mode="r")
    except DECODE_ERRORS:  # a damaged coordinate, read by the contract check
        _refuse_damaged_chunks(
            location.open_group(layout.url, layout.storage_options, mode="r"), layout.url
        )
        raise
    attrs: dict[str, Any] = dict(group.attrs)
    if attrs["state"] != "complete":
        raise StoreIncompleteError(
            f"the store at {layout.url} is not finalised (state {attrs['state']!r}): run "
            "finalise_store, or `aircast store build CONFIG`"
        )
    if deep:
        _refuse_damaged_chunks(group, layout.url)
    try:
        return _verify_contents(group, layout, attrs, deep)
    except DECODE_ERRORS:  # a damaged chunk among those read: find and name every one
        _refuse_damaged_chunks(group, layout.url)
        raise


def _refuse_damaged_chunks(group: zarr.Group, url: str) -> None:
    bad = scan_chunks(group, url).bad
    if bad:
        raise corrupt_chunks(url, bad, training_store_fix(bad))


def _verify_contents(
    group: zarr.Group, layout: Layout, attrs: dict[str, Any], deep: bool
) -> VerifyResult:
    problems: list[str] = []
    n_times = int(attrs["time_axis"]["n_times"])
    keys = location.list_keys(group.store, f"{FIELDS}/c/")
    with_data = np.zeros(n_times, dtype=bool)
    for key in keys:
        index = int(key.split("/")[2])
        if index < n_times:
            with_data[index] = True
    first = np.datetime64(attrs["time_axis"]["start"], "h").astype(np.int64)
    missing_hours = read_array(group, MISSING_TIMES).astype(np.int64)
    why = array(group, MISSING_TIMES).attrs.get("reasons")
    if why is not None and (not isinstance(why, list) or len(why) != missing_hours.size):
        problems.append(
            f"the reasons of missing_times are not one per missing time ({missing_hours.size} "
            "times): finalise the store again (`aircast store build CONFIG`)"
        )
    listed = np.zeros(n_times, dtype=bool)
    offsets = (missing_hours - first) // STEP_HOURS
    if missing_hours.size and (
        not np.all(np.diff(missing_hours) > 0)
        or offsets.min() < 0
        or offsets.max() >= n_times
        or np.any((missing_hours - first) % STEP_HOURS)
    ):
        problems.append("missing_times is not an ascending subset of the time axis")
    else:
        listed[offsets] = True
    times = decode_times(first + STEP_HOURS * np.arange(n_times))
    neither = np.flatnonzero(~with_data & ~listed)
    both = np.flatnonzero(with_data & listed)
    if neither.size:
        problems.append(
            f"{neither.size} times have no data and are not in missing_times "
            f"({_times_text(times[neither])}): rerun their parts (or extend_store) and finalise"
        )
    if both.size:
        problems.append(
            f"{both.size} times are in missing_times but have data ({_times_text(times[both])})"
        )
    problems.extend(_check_statistics(group, layout))
    problems.extend(_check_channel_metadata(group, layout))
    if deep and not problems:
        fields = array(group, FIELDS)
        for index in np.flatnonzero(with_data).tolist():
            chunk = np.asarray(fields[index])
            if not np.isfinite(chunk).all():
                problems.append(f"fields at {_times_text(times[[index]])} hold non-finite values")
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise VerificationError(f"the store at {layout.url} fails verification:\n{lines}")
    return VerifyResult(n_times, int(listed.sum()), len(layout.channels), deep)


def _times_text(times: np.ndarray, limit: int = 4) -> str:
    shown = ", ".join(iso_hour(t) for t in times[:limit])
    return shown + (f" … ({times.size} in all)" if times.size > limit else "")


def _check_statistics(group: zarr.Group, layout: Layout) -> list[str]:
    def read(name: str) -> np.ndarray:
        return read_array(group, name)

    problems = []
    names = [c.name for c in layout.channels]
    for name in ("stat_mean", "stat_std"):
        bad = [names[i] for i in np.flatnonzero(~np.isfinite(read(name)))]
        if bad:
            problems.append(f"{name} is not finite for {', '.join(bad)}")
    if np.any(read("stat_count") <= 0):
        problems.append("stat_count is 0 for some channels")
    positive = list(layout.positive)
    for name in ("stat_log_mean", "stat_log_std"):
        values = read(name)
        bad = [names[i] for i in positive if not np.isfinite(values[i])]
        if bad:
            problems.append(f"{name} is not finite for positive channels {', '.join(bad)}")
    counts = read(HIST_COUNTS)
    log_count = read("stat_log_count")
    for j, c in enumerate(layout.pollutants):
        if counts[j].sum() != log_count[c]:
            problems.append(
                f"hist_counts of {names[c]} sum to {counts[j].sum()}, not stat_log_count "
                f"{log_count[c]}"
            )
    if not np.array_equal(read(HIST_EDGES_LOG), layout.edges):
        problems.append("hist_edges_log are not the fixed edges of aircast.store.stats")
    log_mean, log_std = read("stat_log_mean"), read("stat_log_std")
    pol = list(layout.pollutants)
    expected = (layout.edges - log_mean[pol][:, None]) / log_std[pol][:, None]
    if not np.allclose(read(HIST_EDGES_NORMALISED), expected, rtol=1e-12, atol=0):
        problems.append("hist_edges_normalised are not (hist_edges_log - log mean) / log std")
    return problems


def _check_channel_metadata(group: zarr.Group, layout: Layout) -> list[str]:
    def read(name: str) -> list[Any]:
        return [v.item() if hasattr(v, "item") else v for v in read_array(group, name)]

    expected: dict[str, list[Any]] = {
        "channel_variable": [c.variable for c in layout.channels],
        "channel_level": [NO_LEVEL if c.level is None else c.level for c in layout.channels],
        "channel_units": [c.spec.units for c in layout.channels],
        "channel_role": [c.spec.role.value for c in layout.channels],
        "channel_source": list(layout.sources),
        "channel_positive": [c.spec.positive for c in layout.channels],
        "channel_time_kind": [c.spec.time_kind.value for c in layout.channels],
    }
    problems = []
    for name, want in expected.items():
        have = [str(v) if isinstance(v, str) else v for v in read(name)]
        if have != want:
            problems.append(f"{name} is {have}, the vocabulary says {want}")
    offsets = read_array(group, "channel_log_offset")
    if not np.array_equal(offsets[list(layout.positive)], layout.offsets):
        problems.append("channel_log_offset does not match aircast.store.stats.LOG_SCALES")
    return problems


# ---------------------------------------------------------------------------------------------
# extend


@dataclass(frozen=True)
class ExtendResult:
    """What :func:`extend_store` appended."""

    first_day: dt.date | None
    last_day: dt.date | None
    n_times: int
    n_missing: int


def extend_store(
    config: AirCastConfig, start: dt.date, end: dt.date, *, accept_holes: bool = False
) -> ExtendResult:
    """Append days ``start``..``end`` after the store's last day.

    Days already in the store are skipped (never rewritten); the time dimension grows and
    only the new chunks are written; statistics stay those of the training period. The
    declared time axis is updated last and the consolidated metadata after it, so readers see
    the old store until the new days are all there, and an interrupted extension is finished
    by running it again.

    Raises
    ------
    StoreError
        When ``start`` leaves a gap after the store's last day.
    NotIngestedError, GridError
        When the new days' raw inputs are not there or do not fit (a
        :class:`~aircast.store.inputs.HolesError` for inputs that could not be fetched,
        unless ``accept_holes``).
    DamagedInputError
        When a cached file is damaged (it is quarantined).
    """
    layout = Layout.from_config(config)
    group = _open(layout, pending_extension=True)
    attrs: dict[str, Any] = dict(group.attrs)
    axis_end = np.datetime64(attrs["time_axis"]["end"], "D").astype(dt.date)
    first_new = axis_end + dt.timedelta(days=1)
    if end < start:
        raise StoreError(f"extension end {end} is before its start {start}; swap them")
    if start > first_new:
        raise StoreError(
            f"the store ends on {axis_end}; extending from {start} would leave a gap: extend "
            f"from {first_new} (missing days are recorded as missing, not skipped)"
        )
    if end < first_new:
        return ExtendResult(None, None, 0, 0)  # every day is already in the store
    store_first = np.datetime64(attrs["time_axis"]["start"], "D").astype(dt.date)
    fields, time_array = array(group, FIELDS), array(group, TIME)
    new_missing: dict[int, str] = {}
    day = first_new
    while day <= end:
        last = min(day + dt.timedelta(days=layout.part_days - 1), end)
        loaded = load_days(layout, day, last, accept_holes=accept_holes)
        begin = (day - store_first).days * STEPS_PER_DAY
        stop = begin + loaded.times.size
        if fields.shape[0] < stop:
            fields.resize((stop, *fields.shape[1:]))
        location.remove_partial_writes(layout.url, [f"{FIELDS}/c/{t}" for t in range(begin, stop)])
        fields[begin:stop] = loaded.values
        hours = encode_times(loaded.times[loaded.missing]).tolist()
        new_missing.update(zip(hours, loaded.reasons, strict=True))
        day = last + dt.timedelta(days=1)
    times = axis_times(store_first, end)
    time_array.resize((times.size,))
    time_array[...] = encode_times(times)
    declared_end = encode_times(axis_times(axis_end, axis_end))[-1]
    kept = {h: why for h, why in _current_reasons(group).items() if h <= declared_end}
    _write_missing(group, {**kept, **new_missing})
    group.attrs.update({"time_axis": time_axis_attrs(times)})  # the declaration goes last
    _consolidate(layout)
    return ExtendResult(
        first_new, end, int(times.size - int(attrs["time_axis"]["n_times"])), len(new_missing)
    )


# ---------------------------------------------------------------------------------------------
# which parts are current (the build job, aircast.jobs.build, sequences the stages)


def _stale_parts(layout: Layout, group: zarr.Group, resume: bool) -> list[int]:
    """Parts to (re)load: all, or those not complete or whose raw inputs changed since."""
    if not resume:
        return list(range(layout.n_parts))
    cache = raw_cache(layout.config)
    entries = {e.key: e for e in cache.entries()}
    todo = []
    for index in range(layout.n_parts):
        state = _part_state(group, layout, index)
        if state is None:
            todo.append(index)
            continue
        first, last = layout.part_range(index)
        if state.get("inputs_digest") != inputs_digest(
            raw_inputs(layout, cache, first, last, entries.get)
        ):
            todo.append(index)
    return todo


@dataclass(frozen=True)
class PartStatus:
    """Where one part of an existing store stands (for a scheduler; nothing of it is stored).

    Attributes
    ----------
    current
        The part is complete and its raw inputs are unchanged since it was loaded: loading it
        again would write the same bytes (the test the build job resumes with).
    n_missing
        The part's missing times when it is current, else None.
    """

    index: int
    first_day: dt.date
    last_day: dt.date
    current: bool
    n_missing: int | None


def part_statuses(config: AirCastConfig) -> list[PartStatus]:
    """Every part of the recipe's store, in order, and whether it is current.

    Raises
    ------
    StoreError
        When there is no store for ``config`` yet (run :func:`init_store` first), or it
        belongs to another recipe.
    NotIngestedError, GridError
        When the raw inputs of a loaded part are no longer in the cache.
    """
    layout = Layout.from_config(config)
    group = _open(layout, mode="r")
    stale = set(_stale_parts(layout, group, resume=True))
    out = []
    for index in range(layout.n_parts):
        first, last = layout.part_range(index)
        state = None if index in stale else _part_state(group, layout, index)
        n_missing = None if state is None else int(state["n_missing"])
        out.append(PartStatus(index, first, last, state is not None, n_missing))
    return out
