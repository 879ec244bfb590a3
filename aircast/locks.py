"""Locks between processes: lock files created exclusively, and telling a live holder from a
killed one.

A holder is a process on a host: :func:`process_alive` says whether one on this host still
runs. The raw cache (:mod:`aircast.sources.cache`) names each partial download by the pid of
the process writing it and keeps the parts of live processes; the forecast store's writer
(:mod:`aircast.forecast.publish`) holds a :class:`LockFile` while it publishes, and breaks a
lock whose holder is gone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from contextlib import suppress
from pathlib import Path
from typing import Any


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (another user's process counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_record() -> bytes:
    """What a lock file holds: this host, this process and the time it took the lock (JSON)."""
    return json.dumps(
        {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    ).encode()


def lock_holder(content: bytes, since: float, *, stale_after: float) -> str | None:
    """Who holds a lock, or None when the lock is stale (its holder is gone).

    Parameters
    ----------
    content
        The lock file's bytes (:func:`holder_record`; anything else counts as a holder that
        cannot be identified).
    since
        When the lock file was written (epoch seconds), used when ``content`` does not say.
    stale_after
        Seconds after which a lock is taken to be a killed holder's, wherever it runs.
    """
    try:
        info = json.loads(content)
        host, pid, since = str(info["host"]), int(info["pid"]), float(info["since"])
    except (ValueError, KeyError, TypeError):
        host, pid = "?", -1
    age = time.time() - since
    if age > stale_after:
        return None
    if host == socket.gethostname() and pid > 0 and not process_alive(pid):
        return None
    return f"host {host}, pid {pid}, {age:.0f} s ago"


class LockHeldError(Exception):
    """The lock is held by a holder that is still there (``holder`` says who)."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        super().__init__(holder)


class LockContendedError(Exception):
    """Every attempt to take the lock met another holder's lock, gone by the time it was read."""


class LockFile(ABC):
    """A lock that is a file, created only where none exists.

    Subclasses give the three operations on the file; :meth:`acquire` and :meth:`release` are
    the same for all. ``where`` names the file as a person would find it (for messages).
    """

    where: str

    @abstractmethod
    def create(self, record: bytes) -> bool:
        """Create the lock holding ``record``; False when a lock exists already."""

    @abstractmethod
    def read(self) -> tuple[bytes | None, float]:
        """The lock's content (None when there is none) and when it was written."""

    @abstractmethod
    def remove(self) -> None:
        """Delete the lock (nothing when there is none)."""

    def acquire(self, *, stale_after: float, attempts: int = 3) -> None:
        """Take the lock, breaking a stale one (:func:`lock_holder`).

        Raises
        ------
        LockHeldError
            When a holder that is still there has it.
        LockContendedError
            When ``attempts`` tries all met a lock that was released before it could be read.
        """
        record = holder_record()
        for _attempt in range(attempts):
            if self.create(record):
                return
            content, since = self.read()
            if content is None:
                continue  # released between our attempt and the read: try again
            holder = lock_holder(content, since, stale_after=stale_after)
            if holder is not None:
                raise LockHeldError(holder)
            self.remove()  # a killed holder's lock
        raise LockContendedError(self.where)

    def release(self) -> None:
        """Give the lock up."""
        self.remove()


class LocalLockFile(LockFile):
    """A lock file on a local file system, at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)

    def create(self, record: bytes) -> bool:
        # A hard link of a complete temporary file: exclusive like O_CREAT|O_EXCL, and a lock
        # never exists half-written (a kill between create and write would leave an empty lock
        # that no one could tell from a live one).
        tmp = self.path.parent / f"{self.path.name}.{uuid.uuid4().hex}.partial"
        tmp.write_bytes(record)
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def read(self) -> tuple[bytes | None, float]:
        try:
            return self.path.read_bytes(), self.path.stat().st_mtime
        except FileNotFoundError:
            return None, time.time()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class FsspecLockFile(LockFile):
    """A lock file on an fsspec file system (object storage), at ``path`` of ``fs``."""

    def __init__(self, fs: Any, path: str, where: str) -> None:
        self.fs, self.path, self.where = fs, path, where

    def create(self, record: bytes) -> bool:
        try:
            with self.fs.open(self.path, "xb") as handle:  # s3fs: a put with If-None-Match: *
                handle.write(record)
            return True
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError):
            # no exclusive create on this file system: check, then put (not atomic; the
            # caller's serialisation of the lock's users is what protects them here)
            if self.fs.exists(self.path):
                return False
            self.fs.pipe_file(self.path, record)
            return True

    def read(self) -> tuple[bytes | None, float]:
        try:
            content = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None, time.time()
        try:
            modified = self.fs.info(self.path).get("LastModified")
        except FileNotFoundError:
            modified = None
        since = modified.timestamp() if isinstance(modified, dt.datetime) else time.time()
        return bytes(content), since

    def remove(self) -> None:
        with suppress(FileNotFoundError):
            self.fs.rm_file(self.path)
