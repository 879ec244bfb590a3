"""The raw inputs of the training store: which requests a span of days needs, and their state.

A span's inputs are the requests its sources make for those days (ERA5 and EAC4, through
:func:`aircast.sources.registry.get_source`) plus the static fields, each with its state in the
raw cache's manifest:

``complete``
    The file is there.
``no-data``
    The data store answered that it has no data for it (MARS's "no data" answer,
    :func:`aircast.sources.cache.store_has_no_data`): its times become missing times.
``failed``
    It could not be fetched (a refused key, an unreachable store, retries exhausted, a job the
    store failed or rejected for another reason).
``absent``
    The manifest says complete but the file is gone (deleted, or quarantined as damaged).

A ``failed`` or ``absent`` input is a *hole*: the data exist at the store, AirCast just does
not have them, so the build stops (:func:`require_no_holes`) naming the requests and the
``aircast ingest`` command that fetches them again, unless holes are accepted explicitly
(``aircast store build --accept-holes``): then their times are missing too, with the reason.
A request that was never ingested, or is still being fetched, is an error that says what to
run. The digest of a part's inputs (:func:`inputs_digest`) is what makes a loaded part current:
while it holds, loading the part again would write the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aircast.align.grid import GridError
from aircast.config import AirCastConfig
from aircast.sources.base import Source
from aircast.sources.cache import ManifestEntry, RawCache
from aircast.sources.era5 import ERA5_SOURCE
from aircast.sources.ingest import raw_cache
from aircast.sources.registry import get_source
from aircast.sources.requests import SourceRequest
from aircast.store.layout import Layout
from aircast.store.schema import StoreError, recipe_differences

#: The sources of the training store's fields.
TRAINING_SOURCES: tuple[Source, ...] = ("era5", "eac4")


class NotIngestedError(StoreError):
    """Raw inputs that the build needs and that were never (or not yet) ingested."""


class HolesError(NotIngestedError):
    """Raw inputs that could not be fetched (or whose file is gone): holes, not missing data.

    Attributes
    ----------
    holes
        The inputs concerned (status ``failed`` or ``absent``).
    """

    def __init__(self, message: str, holes: Sequence[RawInput]) -> None:
        super().__init__(message)
        self.holes = tuple(holes)


class DamagedInputError(StoreError):
    """Cached raw files whose bytes are no longer those the manifest recorded."""


Lookup = Callable[[str], ManifestEntry | None]


#: The states of a raw input that leave its times without data (see the module docstring).
HOLE_STATES = ("failed", "absent")


@dataclass(frozen=True)
class RawInput:
    """One request the build reads: its file, or None when the store did not deliver it.

    Attributes
    ----------
    status
        ``complete``, ``no-data``, ``failed`` or ``absent`` (see the module docstring).
    note
        Why there is no file: the manifest's error, or what happened to the file.
    """

    request: SourceRequest
    path: Path | None
    status: str
    sha256: str | None
    note: str = ""

    @property
    def is_hole(self) -> bool:
        """Not delivered although the store has the data: it could not be fetched."""
        return self.status in HOLE_STATES

    @property
    def reason(self) -> str:
        """Why this input's times are missing, as ``missing_times`` records it."""
        if self.status == "no-data":
            return f"no data at the store: {self.request.label}"
        if self.status == "absent":
            return f"file gone from the raw cache: {self.request.label}"
        first_line = " ".join(self.note.split())
        if len(first_line) > 300:
            first_line = first_line[:299] + "…"
        return f"fetch failed: {self.request.label}: {first_line}"


def _span_requests(layout: Layout, first: dt.date, last: dt.date) -> list[SourceRequest]:
    """The raw requests behind days ``first``..``last``, static fields excepted."""
    out: list[SourceRequest] = []
    for name in TRAINING_SOURCES:
        requests = get_source(name).requests(layout.config, first, last)
        out.extend(r for r in requests if r.group != "static")
    return out


def _static_request(layout: Layout, cache: RawCache, lookup: Lookup) -> SourceRequest | None:
    """The request holding the static fields: the one for the recipe's first day, or else
    the earliest complete one for the same fields and area (ingested in another batch)."""
    wanted = [
        r
        for r in ERA5_SOURCE.requests(layout.config, layout.first_day, layout.first_day)
        if r.group == "static"
    ]
    if not wanted:
        return None
    request = wanted[0]
    entry = lookup(request.key)
    if entry is not None and entry.status == "complete" and cache.existing_file(request):
        return request
    undated = _undated(request.request)
    for other in cache.entries("complete"):
        if (
            other.dataset == request.dataset
            and other.group == "static"
            and _undated(other.request) == undated
        ):
            candidate = SourceRequest(other.dataset, other.request, other.day, other.group)
            if cache.existing_file(candidate):
                return candidate
    if entry is None:
        _explain_absent(layout, cache, [request])  # another area cached is a GridError
    raise NotIngestedError(
        f"the static fields ({', '.join(request.parsed().variables)}) are not in the raw cache "
        f"{cache.root}: ingest them with `aircast ingest CONFIG --start {layout.first_day} "
        f"--end {layout.first_day} --source era5`"
    )


def _undated(request: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k not in {"year", "month", "day", "date"}}


def raw_inputs(
    layout: Layout, cache: RawCache, first: dt.date, last: dt.date, lookup: Lookup | None = None
) -> list[RawInput]:
    """Every raw input of days ``first``..``last`` (static fields first) and its state.

    Raises
    ------
    GridError
        When the cache holds these days for another area (another region or grid).
    NotIngestedError
        When some were never ingested, or are still being fetched.
    """
    lookup = lookup or cache.lookup
    requests = _span_requests(layout, first, last)
    static = _static_request(layout, cache, lookup)
    if static is not None:
        requests.insert(0, static)
    inputs: list[RawInput] = []
    absent: list[SourceRequest] = []
    in_flight: list[SourceRequest] = []
    for request in requests:
        entry = lookup(request.key)
        if entry is None:
            absent.append(request)
        elif entry.status == "submitted":
            in_flight.append(request)
        elif entry.status == "failed":
            status = "no-data" if entry.no_data_at_store else "failed"
            inputs.append(RawInput(request, None, status, None, entry.error or "failed"))
        else:
            path = cache.existing_file(request)
            note = (
                ""
                if path
                else (
                    "the manifest says complete but the file is gone (deleted, or quarantined as "
                    "damaged)"
                )
            )
            status = "complete" if path else "absent"
            inputs.append(RawInput(request, path, status, entry.sha256 if path else None, note))
    if absent:
        _explain_absent(layout, cache, absent)
    if in_flight:
        raise NotIngestedError(
            f"{len(in_flight)} raw requests ({_labels(in_flight)}) were submitted but are not "
            "complete yet: let the running ingestion finish, or rerun `aircast ingest` for "
            "those days to resume them"
        )
    return inputs


def _labels(requests: Sequence[SourceRequest], limit: int = 4) -> str:
    shown = ", ".join(r.label for r in requests[:limit])
    return shown + (f" and {len(requests) - limit} more" if len(requests) > limit else "")


def _explain_absent(layout: Layout, cache: RawCache, absent: list[SourceRequest]) -> None:
    """Raise the clearest error for requests the manifest has never seen."""
    by_slot: dict[tuple[str, dt.date, str], ManifestEntry] = {}
    for entry in cache.entries():
        by_slot.setdefault((entry.dataset, entry.day, entry.group), entry)
    for request in absent:
        other = by_slot.get((request.dataset, request.day, request.group))
        if other is None:
            continue
        theirs, ours = other.request.get("area"), request.request.get("area")
        if theirs != ours:
            raise GridError(
                f"the raw cache {cache.root} holds {request.label} for area {theirs} "
                "(north, west, south, east), but this recipe's region "
                f"{layout.config.region.as_area()} at {layout.config.grid.resolution}° needs "
                f"area {ours}: the data were ingested for another region or grid; ingest again "
                "with this config (`aircast ingest`), or set paths.root to this recipe's cache"
            )
        diff = "; ".join(recipe_differences(_undated(other.request), _undated(request.request)))
        diff = diff.replace("the store has", "cached").replace("the config has", "needed")
        raise NotIngestedError(
            f"the raw cache {cache.root} holds {request.label} for another request ({diff}): "
            "the variables or format changed since ingestion; ingest again with this config"
        )
    days = sorted({r.day for r in absent})
    raise NotIngestedError(
        f"{len(absent)} raw requests ({_labels(absent)}) were never ingested into {cache.root}: "
        f"run `aircast ingest CONFIG --start {days[0]} --end {days[-1]}` first"
    )


def inputs_digest(inputs: Sequence[RawInput]) -> str:
    """sha256 over the inputs' keys, states and file hashes: a part is current while it holds."""
    text = "\n".join(
        f"{i.request.key} {i.status} {i.sha256 or '-'}"
        for i in sorted(inputs, key=lambda i: i.request.key)
    )
    return hashlib.sha256(text.encode()).hexdigest()


def require_no_holes(layout: Layout, cache: RawCache, inputs: Sequence[RawInput]) -> None:
    """Stop on inputs that could not be fetched (``failed``) or whose file is gone (``absent``).

    Raises
    ------
    HolesError
        Naming the requests, why each is not there, the ``aircast ingest`` command that
        fetches them again and the option that builds with the holes instead.
    """
    holes = [i for i in inputs if i.is_hole]
    if not holes:
        return
    days = sorted({i.request.day for i in holes})
    datasets = {i.request.dataset for i in holes}
    sources = [n for n in TRAINING_SOURCES if datasets & set(get_source(n).datasets)]
    only = f" --source {sources[0]}" if len(sources) == 1 else ""
    shown = "; ".join(f"{i.request.label}: {i.reason.split(': ', 1)[0]}" for i in holes[:4])
    more = f"; and {len(holes) - 4} more" if len(holes) > 4 else ""
    first_error = next((i.note for i in holes if i.status == "failed"), "")
    error = f" (first error: {' '.join(first_error.split())[:300]})" if first_error else ""
    raise HolesError(
        f"{len(holes)} raw requests of {days[0]}..{days[-1]} were not fetched into "
        f"{cache.root} ({shown}{more}){error}: the data store did not say it has no such data, "
        "so these would be holes in the training store, not missing days; fetch them again "
        "with `aircast ingest "
        f"CONFIG --start {days[0]} --end {days[-1]}{only}` (what is cached is kept and not "
        "asked for again), then build; or build with the holes, their times listed in "
        "missing_times with the reason: `aircast store build CONFIG --accept-holes`",
        holes,
    )


def check_inputs(config: AirCastConfig, *, accept_holes: bool = False) -> None:
    """Check that the raw cache holds (or the stores have no data for) every input of the
    recipe.

    Parameters
    ----------
    accept_holes
        Let inputs that could not be fetched become missing times instead of stopping.

    Raises
    ------
    NotIngestedError, GridError
        Before any store is created or changed (:class:`HolesError` for inputs that could
        not be fetched).
    """
    layout = Layout.from_config(config)
    cache = raw_cache(config)
    entries = {e.key: e for e in cache.entries()}
    # the whole span at once, so the error names every day that is not there
    inputs = raw_inputs(layout, cache, layout.first_day, layout.last_day, entries.get)
    if not accept_holes:
        require_no_holes(layout, cache, inputs)


def require_intact(cache: RawCache, inputs: Sequence[RawInput]) -> None:
    """Check that every delivered input's file still has the manifest's size and sha256.

    A damaged file is moved to the cache's quarantine (so the next ``aircast ingest`` fetches
    it again) before anything is read from it.

    Raises
    ------
    DamagedInputError
        Naming the files, where they now lie and the command that fetches them again.
    """
    damaged: list[tuple[RawInput, str]] = []
    for item in inputs:
        if item.path is None:
            continue
        entry = cache.lookup(item.request.key)
        problem = None if entry is None else entry.damage(item.path)
        if problem is not None:
            cache.quarantine_if_there(item.request, item.path, problem)
            damaged.append((item, problem))
    if not damaged:
        return
    days = sorted({i.request.day for i, _ in damaged})
    shown = "; ".join(f"{i.request.label}: {problem}" for i, problem in damaged[:4])
    more = f"; and {len(damaged) - 4} more" if len(damaged) > 4 else ""
    raise DamagedInputError(
        f"{len(damaged)} cached raw files are damaged ({shown}{more}); nothing was read from "
        f"them and they were moved to {cache.root / 'quarantine'}: fetch them again with "
        f"`aircast ingest CONFIG --start {days[0]} --end {days[-1]}`, then build again"
    )
