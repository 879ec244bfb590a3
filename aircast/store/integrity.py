"""Damaged Zarr chunks, found and named.

A chunk whose bytes are damaged (truncated, overwritten, a failed copy) makes its codec fail
with words such as ``error during blosc decompression: -1``, which name neither the file nor
the array. :func:`scan_chunks` reads every chunk of every array of a group, one at a time,
and names each one that fails (array, chunk key, path); after a failed read,
:func:`bad_chunks_among` reads the chunks of the failed selection one by one to find the bad
ones, and :func:`corrupt_chunks` makes the error naming the store, them and the fix. Chunks
never written (a missing time) read as their fill value and are not damage.

A compressed chunk can also be damaged so that it still decodes, into wrong values (the
codecs carry no checksum); such damage is found only where it makes values non-finite
(``verify_store(deep=True)`` checks that).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import zarr

from aircast.store.schema import StoreError

#: What a codec raises for bytes it cannot decode (blosc and zstd: RuntimeError; a chunk
#: that decodes to the wrong number of bytes: ValueError).
DECODE_ERRORS = (RuntimeError, ValueError)


@dataclass(frozen=True)
class BadChunk:
    """One chunk that cannot be decoded.

    Attributes
    ----------
    array
        The array's path in the store (``fields``).
    key
        The chunk's key (``fields/c/12/0/0/0``).
    path
        Where the chunk's bytes live: the store URL joined with the key.
    problem
        The decoder's own words.
    """

    array: str
    key: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.array} chunk {self.key} ({self.path}): {self.problem}"


class CorruptChunkError(StoreError):
    """A store holding chunks that cannot be decoded; ``bad`` lists them.

    Made by :func:`corrupt_chunks`. The message alone also makes one, as torch's DataLoader
    does when it re-raises a worker's error in the main process.
    """

    def __init__(self, message: str, bad: Sequence[BadChunk] = ()) -> None:
        super().__init__(message)
        self.bad = tuple(bad)


def corrupt_chunks(url: str, bad: Sequence[BadChunk], fix: str) -> CorruptChunkError:
    """The error naming the store at ``url``, its damaged chunks and the fix."""
    shown = "\n".join(f"  - {b}" for b in bad[:12])
    more = f"\n  … ({len(bad)} in all)" if len(bad) > 12 else ""
    return CorruptChunkError(
        f"the store at {url} holds {len(bad)} damaged chunk(s) that cannot be decoded:\n"
        f"{shown}{more}\n{fix}",
        bad,
    )


def chunk_key(array: zarr.Array, coords: Sequence[int]) -> str:
    """The store key of the chunk at grid position ``coords`` of ``array``."""
    return f"{array.path}/{array.metadata.encode_chunk_key(tuple(coords))}"


def chunk_path(url: str, key: str) -> str:
    """Where chunk ``key`` of the store at ``url`` lives."""
    return f"{url.rstrip('/')}/{key}"


def _region(array: zarr.Array, coords: Sequence[int]) -> tuple[slice, ...]:
    return tuple(
        slice(c * size, min((c + 1) * size, extent))
        for c, size, extent in zip(coords, array.chunks, array.shape, strict=True)
    )


def check_chunk(array: zarr.Array, coords: Sequence[int], url: str) -> BadChunk | None:
    """Read one chunk; a :class:`BadChunk` when it cannot be decoded, else None."""
    try:
        array[_region(array, coords)]
    except DECODE_ERRORS as exc:
        key = chunk_key(array, coords)
        return BadChunk(array.path, key, chunk_path(url, key), " ".join(str(exc).split()))
    return None


def all_chunk_coords(array: zarr.Array) -> Iterator[tuple[int, ...]]:
    """Every chunk position of ``array`` (C order)."""
    grid = array.cdata_shape
    return itertools.product(*(range(n) for n in grid))


def _arrays(group: zarr.Group) -> Iterator[zarr.Array]:
    for _, node in sorted(group.members(max_depth=None), key=lambda item: item[0]):
        if isinstance(node, zarr.Array):
            yield node


@dataclass(frozen=True)
class ChunkScan:
    """What :func:`scan_chunks` read: how many chunks of how many arrays, and the bad ones."""

    n_arrays: int
    n_chunks: int
    bad: tuple[BadChunk, ...]


def scan_chunks(group: zarr.Group, url: str) -> ChunkScan:
    """Read every chunk of every array of ``group``, naming the ones that cannot be decoded.

    Reads one chunk at a time, so memory stays that of the largest chunk.
    """
    bad = []
    n_arrays = n_chunks = 0
    for array in _arrays(group):
        n_arrays += 1
        for coords in all_chunk_coords(array):
            n_chunks += 1
            found = check_chunk(array, coords, url)
            if found is not None:
                bad.append(found)
    return ChunkScan(n_arrays, n_chunks, tuple(bad))


def chunks_of_first_axis(array: zarr.Array, indices: Iterable[int]) -> Iterator[tuple[int, ...]]:
    """The chunk positions holding the given positions along the first axis (every chunk
    of the other axes)."""
    size = array.chunks[0]
    rows = sorted({int(i) // size for i in indices})
    rest = [range(n) for n in array.cdata_shape[1:]]
    for row in rows:
        for others in itertools.product(*rest):
            yield (row, *others)


def bad_chunks_among(
    array: zarr.Array, coords: Iterable[Sequence[int]], url: str
) -> list[BadChunk]:
    """The chunks among ``coords`` that cannot be decoded (each read on its own)."""
    return [b for c in coords if (b := check_chunk(array, c, url)) is not None]


#: Arrays of the training store that ``aircast store build CONFIG --rebuild`` writes again:
#: the fields, each part's statistics, and what finalising writes from them.
_REBUILT_BY_PARTS = (
    "fields",
    "build/",
    "stat_",
    "hist_counts",
    "hist_edges_normalised",
    "missing_times",
)


def training_store_fix(bad: Sequence[BadChunk]) -> str:
    """How to repair the damaged chunks of a training store.

    Damaged fields or part statistics are written again by reloading the parts from the raw
    cache; any other array (coordinates, metadata) only by building the store again.
    """
    if all(b.array.startswith(_REBUILT_BY_PARTS) for b in bad):
        return (
            "rebuild them from the raw cache: `aircast store build CONFIG --rebuild` reloads "
            "every part (the raw files are kept and nothing is fetched again); then check with "
            "`aircast store verify CONFIG`"
        )
    return (
        "the store's coordinates or metadata are damaged, which a rebuild of its parts does not "
        "write: move the store away (or set store.url to a new location) and run `aircast store "
        "build CONFIG`, which builds it again from the raw cache without fetching anything"
    )
