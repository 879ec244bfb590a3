"""The raw inputs of the training store: which requests a span of days needs, and their state.

A span's inputs are the requests its sources make for those days (ERA5 and EAC4, through
:func:`aircast.sources.registry.get_source`) plus the static fields, each with its state in the
raw cache's manifest: ``complete`` (the file is there), ``failed`` (the store did not deliver
it: its times become missing times) or ``absent`` (complete, but the file is gone). A request
that was never ingested, or is still being fetched, is an error that says what to run. The
digest of a part's inputs (:func:`inputs_digest`) is what makes a loaded part current: while it
holds, loading the part again would write the same bytes.
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


Lookup = Callable[[str], ManifestEntry | None]


@dataclass(frozen=True)
class RawInput:
    """One request the build reads: its file, or None when the store did not deliver it."""

    request: SourceRequest
    path: Path | None
    status: str
    sha256: str | None
    note: str = ""


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
            inputs.append(RawInput(request, None, "failed", None, entry.error or "failed"))
        else:
            path = cache.existing_file(request)
            note = "" if path else "manifest says complete but the file is gone"
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


def check_inputs(config: AirCastConfig) -> None:
    """Check that the raw cache holds (or the stores failed) every input of the recipe.

    Raises
    ------
    NotIngestedError, GridError
        Before any store is created or changed.
    """
    layout = Layout.from_config(config)
    cache = raw_cache(config)
    entries = {e.key: e for e in cache.entries()}
    # the whole span at once, so the error names every day that is not there
    raw_inputs(layout, cache, layout.first_day, layout.last_day, entries.get)
