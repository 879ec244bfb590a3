"""The raw cache: one file per canonical request, and a manifest of every request.

Layout under the cache root::

    manifest.sqlite                       every request: status, request id, sha256, size, times
    files/<dataset>/<key[:2]>/<key>.grib  a request's result, named by the request's hash
    tmp/<key>.<pid>.part                  downloads in progress (removed on the next run)
    quarantine/<key>.<n>.<suffix>         downloads that failed verification, kept for a look

Why SQLite for the manifest: updates are transactions, so a kill at any moment leaves either
the old or the new row, never half a line; several threads and processes (parallel Prefect
tasks) can update it at once under its own locking; and "which days are done" is a query,
not a scan. The ``events`` table is the append-only history (submitted, retried,
quarantined, completed) that the flow summarises.

A file is written under a temporary name and renamed into place only after it was verified,
so a file at its final name is always whole; the manifest row is written after the rename, and
a file found at its final name without a ``complete`` row (a kill between the two) is
re-verified and adopted rather than fetched again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aircast.locks import process_alive
from aircast.sources.requests import SourceRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    key        TEXT PRIMARY KEY,
    dataset    TEXT NOT NULL,
    store      TEXT NOT NULL,
    request    TEXT NOT NULL,
    day        TEXT NOT NULL,
    grp        TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('submitted', 'complete', 'failed')),
    request_id TEXT,
    path       TEXT,
    sha256     TEXT,
    size       INTEGER,
    submissions INTEGER NOT NULL DEFAULT 0,
    downloads  INTEGER NOT NULL DEFAULT 0,
    error      TEXT,
    created    TEXT NOT NULL,
    updated    TEXT NOT NULL,
    completed  TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    key    TEXT NOT NULL,
    time   TEXT NOT NULL,
    event  TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_key ON events (key);
"""


#: Partial downloads being written by this process right now. ``clean_tmp`` removes parts of
#: dead processes and stale parts of this one (a pid can come back: containers often give
#: every run the same pid), but never one that another thread of this process is writing.
_WRITING: set[Path] = set()
_WRITING_LOCK = threading.Lock()


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


#: How a data store says that it holds no data for what was asked (a persistent answer, not
#: a failure to fetch): MARS's own words as the stores pass them on ("MARS returned no data,
#: please check your selection", then "no data available for <date>" per date), and the CDS's
#: answer for a subset outside a dataset's coverage. Only a request failed with one of these
#: becomes a missing time of the training store; any other failure is a hole that stops it.
NO_DATA_ANSWERS = re.compile(
    r"MARS returned no data|no data available for|no data is available within your requested",
    re.IGNORECASE,
)


def store_has_no_data(error: str | None) -> bool:
    """Whether a failed request's error is the data store saying it holds no such data."""
    return error is not None and NO_DATA_ANSWERS.search(error) is not None


@dataclass(frozen=True)
class ManifestEntry:
    """One row of the manifest."""

    key: str
    dataset: str
    store: str
    request: dict[str, Any]
    day: dt.date
    group: str
    status: str
    request_id: str | None
    path: str | None
    sha256: str | None
    size: int | None
    submissions: int
    downloads: int
    error: str | None
    created: str
    updated: str
    completed: str | None

    @property
    def no_data_at_store(self) -> bool:
        """A ``failed`` row whose store answered that it has no data (see
        :data:`NO_DATA_ANSWERS`), rather than one that could not be fetched."""
        return self.status == "failed" and store_has_no_data(self.error)

    def damage(self, path: Path) -> str | None:
        """Why the cached file at ``path`` is not the one this ``complete`` row recorded (its
        size or its sha256 differ: damaged on disk since it was fetched), or None when it is."""
        size = path.stat().st_size
        if self.size is not None and size != self.size:
            return f"{path.name} holds {size} bytes but the manifest recorded {self.size}"
        if self.sha256 is not None and sha256_of(path) != self.sha256:
            return (
                f"{path.name} has the manifest's size ({size} bytes) but not its sha256 "
                f"({self.sha256[:16]}…): its bytes changed on disk since it was fetched"
            )
        return None


class RawCache:
    """The raw cache under ``root`` (created on first use).

    Parameters
    ----------
    root
        Cache directory; the manifest and every file live below it.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for sub in ("files", "tmp", "quarantine"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.root / "manifest.sqlite"
        with self._connect() as db:
            db.executescript(_SCHEMA)

    # ---- the manifest

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.manifest_path, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a completed row survives a power cut
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def lookup(self, key: str) -> ManifestEntry | None:
        """The manifest row of request ``key``, if any."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM requests WHERE key = ?", (key,)).fetchone()
        return None if row is None else _entry(row)

    def entries(self, status: str | None = None) -> list[ManifestEntry]:
        """All manifest rows (optionally of one status), by dataset, day and group."""
        query = "SELECT * FROM requests"
        args: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(query + " ORDER BY dataset, day, grp", args).fetchall()
        return [_entry(r) for r in rows]

    def events(self, key: str | None = None) -> list[tuple[str, str, str, str]]:
        """(key, time, event, detail) rows, oldest first."""
        with self._connect() as db:
            if key is None:
                rows = db.execute("SELECT key, time, event, detail FROM events ORDER BY id")
            else:
                rows = db.execute(
                    "SELECT key, time, event, detail FROM events WHERE key = ? ORDER BY id", (key,)
                )
            return [tuple(r) for r in rows.fetchall()]  # type: ignore[misc]

    def record_event(self, key: str, event: str, detail: str = "") -> None:
        with self._transaction() as db:
            _insert_event(db, key, _now(), event, detail)

    def record_submitted(self, req: SourceRequest, request_id: str) -> None:
        """A job was accepted by the store: remember its id so a crash resumes it."""
        now = _now()
        with self._transaction() as db:
            db.execute(
                """INSERT INTO requests (key, dataset, store, request, day, grp, status,
                       request_id, submissions, created, updated)
                   VALUES (?, ?, ?, ?, ?, ?, 'submitted', ?, 1, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET status = 'submitted',
                       request_id = excluded.request_id, submissions = submissions + 1,
                       error = NULL, updated = excluded.updated""",
                (
                    *_identity(req),
                    request_id,
                    now,
                    now,
                ),
            )
            _insert_event(db, req.key, now, "submitted", request_id)

    def record_download(self, key: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE requests SET downloads = downloads + 1, updated = ? WHERE key = ?",
                (_now(), key),
            )

    def record_complete(
        self, req: SourceRequest, path: Path, sha256: str, size: int, request_id: str | None
    ) -> None:
        now = _now()
        with self._transaction() as db:
            db.execute(
                """INSERT INTO requests (key, dataset, store, request, day, grp, status,
                       request_id, path, sha256, size, created, updated, completed)
                   VALUES (?, ?, ?, ?, ?, ?, 'complete', ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET status = 'complete',
                       request_id = COALESCE(excluded.request_id, request_id),
                       path = excluded.path, sha256 = excluded.sha256, size = excluded.size,
                       error = NULL, updated = excluded.updated, completed = excluded.completed""",
                (
                    *_identity(req),
                    request_id,
                    str(path.relative_to(self.root)),
                    sha256,
                    size,
                    now,
                    now,
                    now,
                ),
            )
            _insert_event(db, req.key, now, "complete", f"{size} bytes sha256 {sha256[:16]}…")

    def record_failed(self, req: SourceRequest, error: str) -> None:
        now = _now()
        with self._transaction() as db:
            db.execute(
                """INSERT INTO requests (key, dataset, store, request, day, grp, status,
                       error, created, updated)
                   VALUES (?, ?, ?, ?, ?, ?, 'failed', ?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET status = 'failed', error = excluded.error,
                       updated = excluded.updated""",
                (
                    *_identity(req),
                    error,
                    now,
                    now,
                ),
            )
            _insert_event(db, req.key, now, "failed", error)

    # ---- files

    def path_for(self, req: SourceRequest, suffix: str | None = None) -> Path:
        """Final path of a request's file."""
        return self.root / "files" / req.dataset / req.key[:2] / f"{req.key}{suffix or req.suffix}"

    def existing_file(self, req: SourceRequest) -> Path | None:
        """The request's file at its final name, whatever its suffix (a NetCDF may be a zip)."""
        folder = self.root / "files" / req.dataset / req.key[:2]
        for suffix in (".grib", ".nc", ".zip"):
            path = folder / f"{req.key}{suffix}"
            if path.is_file():
                return path
        return None

    def tmp_path(self, req: SourceRequest) -> Path:
        return self.root / "tmp" / f"{req.key}.{os.getpid()}.part"

    @contextmanager
    def writing(self, req: SourceRequest) -> Iterator[Path]:
        """The request's partial-download path, kept from :meth:`clean_tmp` while in use and
        removed afterwards unless it was installed (so no half-written file outlives a call)."""
        tmp = self.tmp_path(req)
        with _WRITING_LOCK:
            _WRITING.add(tmp)
        try:
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)
            with _WRITING_LOCK:
                _WRITING.discard(tmp)

    def clean_tmp(self) -> int:
        """Remove partial downloads left by killed runs; return how many."""
        removed = 0
        for part in (self.root / "tmp").glob("*.part"):
            pid = part.suffixes[-2].lstrip(".") if len(part.suffixes) >= 2 else ""
            if pid.isdigit() and int(pid) != os.getpid() and process_alive(int(pid)):
                continue  # another live process is downloading it
            with _WRITING_LOCK:
                if part in _WRITING:
                    continue  # another thread of this process is downloading it
            part.unlink(missing_ok=True)
            removed += 1
        return removed

    def install(self, tmp: Path, final: Path) -> None:
        """Move a verified download into place atomically (same file system)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    def quarantine(self, req: SourceRequest, path: Path, reason: str) -> Path:
        """Move a damaged file aside (never into the pipeline) and record why.

        Raises FileNotFoundError when ``path`` is gone (see :meth:`quarantine_if_there`).
        """
        folder = self.root / "quarantine"
        n = len(list(folder.glob(f"{req.key}.*")))
        target = folder / f"{req.key}.{n}{path.suffix if path.suffix != '.part' else ''}"
        os.replace(path, target)
        self.record_event(req.key, "quarantined", f"{target.name}: {reason}")
        return target

    def quarantine_if_there(self, req: SourceRequest, path: Path, reason: str) -> Path | None:
        """:meth:`quarantine`, or None when ``path`` is already gone: parts of a build that
        run side by side read the same static file, and each may find it damaged."""
        try:
            return self.quarantine(req, path, reason)
        except FileNotFoundError:
            return None


def _identity(req: SourceRequest) -> tuple[str, str, str, str, str, str]:
    """The columns that say which request a row is (key, dataset, store, request, day, group)."""
    return (
        req.key,
        req.dataset,
        req.store,
        json.dumps(req.request, sort_keys=True),
        req.day.isoformat(),
        req.group,
    )


def _insert_event(db: sqlite3.Connection, key: str, time: str, event: str, detail: str) -> None:
    db.execute(
        "INSERT INTO events (key, time, event, detail) VALUES (?, ?, ?, ?)",
        (key, time, event, detail),
    )


def _entry(row: sqlite3.Row) -> ManifestEntry:
    return ManifestEntry(
        key=row["key"],
        dataset=row["dataset"],
        store=row["store"],
        request=json.loads(row["request"]),
        day=dt.date.fromisoformat(row["day"]),
        group=row["grp"],
        status=row["status"],
        request_id=row["request_id"],
        path=row["path"],
        sha256=row["sha256"],
        size=row["size"],
        submissions=row["submissions"],
        downloads=row["downloads"],
        error=row["error"],
        created=row["created"],
        updated=row["updated"],
        completed=row["completed"],
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
