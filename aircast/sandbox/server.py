"""The sandbox data store: a local HTTP server that the real ``cdsapi`` client talks to unchanged.

It speaks the API of the Copernicus data stores (CDS/ADS) as used by ``cdsapi`` >= 0.7 through
``ecmwf-datastores-client``: only the URL and the key differ from the real stores::

    with SandboxServer() as server:
        client = cdsapi.Client(url=server.url, key=server.key)
        client.retrieve("reanalysis-era5-single-levels", request, "out.grib")

Endpoints (``BASE`` is :attr:`SandboxServer.url`, ``http://HOST:PORT/api``)
--------------------------------------------------------------------------
==========================================================  ==================================
``GET  BASE/catalogue/v1/messages``                          store messages (public, empty)
``GET  BASE/catalogue/v1/datasets``, ``…/collections/{id}``  catalogue entries (public)
``GET  BASE/retrieve/v1/processes``, ``…/processes/{id}``    process descriptions (public)
``POST BASE/retrieve/v1/processes/{id}/execution``           submit ``{"inputs": request}``: 201
``GET  BASE/retrieve/v1/jobs``                               list (``limit``, ``sortby``,
                                                             ``status``, ``processID``,
                                                             ``request=true``, ``offset``)
``GET  BASE/retrieve/v1/jobs/{id}``                          status (``log``, ``request``,
                                                             ``logStartTime``)
``GET  BASE/retrieve/v1/jobs/{id}/results``                  the asset, or the failure (400)
``DELETE BASE/retrieve/v1/jobs/{id}``                        dismiss (file deleted)
``POST BASE/retrieve/v1/jobs/delete``                        ``{"job_ids": [...]}``
``POST BASE/profiles/v1/account/verification/pat``           key check
``GET|HEAD http://HOST:PORT/download/{job}.{ext}``           the file (public like a presigned
                                                             URL; ``Range``, ``Accept-Ranges``)
``GET|POST|DELETE BASE/sandbox/faults``                      faults on demand (see ``faults``)
``GET  BASE/sandbox/stats``                                  :attr:`SandboxServer.stats` as JSON
==========================================================  ==================================

Everything under ``retrieve/v1/jobs``, the execution and ``sandbox/`` needs the header
``PRIVATE-TOKEN: <key>``, else ``401`` ``Authentication failed`` / ``operation not allowed``.
Errors are problem JSON (``title``, ``detail``, ``traceback``, ``status``) so that the client's
``HTTPError`` carries the store's message: an invalid request is ``400 invalid request`` with
the :class:`~aircast.errors.RequestError` text as detail; an unknown dataset ``404``; a failed
or rejected job's results ``400 The job has failed.`` / ``The job has been rejected.`` with the
store's message as traceback; the store's refusals (a licence not accepted, a request over the
cost limit, the daily quota of requests: see :mod:`~aircast.sandbox.faults`) ``403`` with the
real service's title and detail.

Jobs are rendered on a pool of two worker threads into :attr:`SandboxServer.data_dir`: one
file per job, ``{job id}.{grib|nc|zip}`` after the renderer's MIME type, hard-linked from a
cache of renderings keyed by the parsed request, so identical requests are rendered once. All
state lives in memory behind one lock: jobs survive a client's crash (it may come back with the
request id) but not a server restart.
A status poll of a job that is about to finish waits up to half a second for it, so that a
local run does not pay the client's first one-second poll interval.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from aircast.catalogue import DATASETS, ParsedRequest, dataset, validate_request
from aircast.errors import RequestError
from aircast.sandbox.faults import (
    FAULT_HEADER,
    SUBMIT_KINDS,
    CorruptVariant,
    FaultPlan,
    FaultSpecError,
    canonical_request,
    damage,
    parse_fault_list,
    request_hash,
    truncated_length,
)
from aircast.vocab import ERA5_PRESSURE

LOG = logging.getLogger(__name__)

#: Renders a parsed request into a file and returns its MIME type.
Renderer = Callable[[ParsedRequest, Path], str]

#: File extension per MIME type (a NetCDF product split into several files is a zip).
_EXTENSIONS = {
    "application/x-grib": "grib",
    "application/grib": "grib",
    "application/netcdf": "nc",
    "application/x-netcdf": "nc",
    "application/zip": "zip",
}
_FORMAT_EXTENSIONS = {"grib": "grib", "netcdf": "nc"}
_TERMINAL = ("successful", "failed", "rejected")
_LONG_POLL_SECONDS = 0.5


class _DefaultRenderer:
    """Builds the toy atmosphere on first use and renders with ``products.write_product``.

    Rendering is serialised on the shared atmosphere: its caches are not promised to be
    thread-safe, and the bytes must not depend on which worker renders.
    """

    def __init__(self, seed: int, grib_editions: Mapping[str, int] | None = None) -> None:
        self.seed = seed
        self.grib_editions = dict(grib_editions or {})
        self._lock = threading.Lock()
        self._atmosphere: Any = None

    def __call__(self, request: ParsedRequest, target: Path) -> str:
        from aircast.sandbox.atmosphere import ToyAtmosphere
        from aircast.sandbox.products import write_product

        with self._lock:
            if self._atmosphere is None:
                self._atmosphere = ToyAtmosphere(self.seed)
            return str(write_product(request, target, self._atmosphere, self.grib_editions))


def default_renderer(seed: int = 0, grib_editions: Mapping[str, int] | None = None) -> Renderer:
    """The renderer the server uses unless told otherwise (toy atmosphere + products)."""
    return _DefaultRenderer(seed, grib_editions)


def _render_key(parsed: ParsedRequest, grib_edition: int = 1) -> str:
    """What decides a rendering's bytes: the parsed request, not its spelling, and for GRIB
    the edition (so that a cache shared by servers of different editions stays right)."""
    payload = json.dumps(
        {
            "dataset": parsed.dataset,
            "variables": list(parsed.variables),
            "levels": list(parsed.levels),
            "times": [str(t) for t in np.asarray(parsed.times, dtype="datetime64[s]")],
            "lead_hours": list(parsed.lead_hours),
            "area": list(parsed.area) if parsed.area is not None else None,
            "format": parsed.data_format,
            **({"grib_edition": grib_edition} if grib_edition != 1 else {}),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="microseconds")


def _request_days(parsed: ParsedRequest) -> list[dt.date]:
    days = np.unique(np.asarray(parsed.times, dtype="datetime64[D]"))
    return [dt.date.fromisoformat(str(d)) for d in days]


# ---------------------------------------------------------------------------------------------
# state


@dataclass
class RequestStats:
    """What happened to one canonical request (key: :func:`~aircast.sandbox.faults.request_hash`).

    Attributes
    ----------
    dataset, request
        The dataset and the canonical request.
    submissions
        Valid ``POST …/execution`` calls, throttled and errored ones included.
    jobs
        Jobs created.
    polls
        ``GET …/jobs/{id}`` calls on its jobs.
    downloads
        File ``GET`` calls (a resumed ``Range`` request counts again).
    faults
        Faults injected, per kind (every injection counts, forced ones included).
    """

    dataset: str
    request: dict[str, Any]
    submissions: int = 0
    jobs: int = 0
    polls: int = 0
    downloads: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Job:
    id: str
    dataset: str
    inputs: dict[str, Any]
    rhash: str
    parsed: ParsedRequest
    created: float
    accepted_until: float
    queue_until: float
    ext: str
    outcome: str | None = None  # planned: "reject" | "fail" | None (render)
    message: str = ""
    corrupt: CorruptVariant | None = None
    truncate_downloads: int = 0
    worker_started: float | None = None
    final: str | None = None
    finished: float | None = None
    title: str = ""
    traceback: str = ""
    path: Path | None = None
    size: int = 0
    mime: str = "application/octet-stream"
    dismissed: bool = False
    log: list[tuple[float, str]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


class _Reply(Exception):
    """A problem answer, raised from deep inside a handler."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        tb: str | None = None,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.traceback = tb


_UNAUTHORISED = (
    "operation not allowed: the PRIVATE-TOKEN header (the key given to cdsapi.Client(key=...) "
    "or set in ~/.cdsapirc / CDSAPI_KEY) does not match this sandbox's key; use the key that "
    "`aircast sandbox serve` prints (default 'aircast-sandbox')"
)


# ---------------------------------------------------------------------------------------------
# the server


class SandboxServer:
    """A local data store speaking the CDS/ADS API, with seeded fault injection.

    Parameters
    ----------
    host, port
        Where to listen; port 0 picks a free port (read :attr:`url` after :meth:`start`).
    key
        The API key clients must send (``cdsapi.Client(key=...)``); it must not contain ':'
        (such keys make ``cdsapi`` use its retired pre-2024 protocol).
    faults
        A :class:`~aircast.sandbox.faults.FaultPlan`, a spec string, or None (no faults).
    data_dir
        Where rendered files go; a temporary directory (removed on :meth:`stop`) by default.
    renderer
        ``renderer(parsed_request, target_path) -> mime_type``; by default the toy atmosphere
        with ``aircast.sandbox.products.write_product``, built on first use.
    seed
        Seed of the toy atmosphere of the default renderer.
    grib_editions
        ``{dataset id: 1 or 2}``: the GRIB edition of the default renderer's GRIB products
        (``aircast.sandbox.products.write_product``); 1 for a dataset not named. A ``renderer``
        passed in chooses its own.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        key: str = "aircast-sandbox",
        faults: FaultPlan | str | None = None,
        data_dir: Path | None = None,
        renderer: Renderer | None = None,
        seed: int = 0,
        grib_editions: Mapping[str, int] | None = None,
    ) -> None:
        if not key or ":" in key:
            raise ValueError(
                f"sandbox key {key!r} must be non-empty and contain no ':' (cdsapi treats "
                "'UID:KEY' keys as the retired legacy API); choose e.g. 'aircast-sandbox'"
            )
        self.host = host
        self.port = port
        self.key = key
        self.faults = FaultPlan.coerce(faults)
        unknown = [d for d in self.faults.licence if d not in DATASETS]
        if unknown:
            raise FaultSpecError(
                f"fault licence={'+'.join(unknown)}: not a dataset of the sandbox; choose "
                f"among {', '.join(DATASETS)}"
            )
        self.seed = seed
        self.grib_editions: dict[str, int] = {}
        if grib_editions:  # products (ecCodes, netCDF-C) load only when a product is rendered
            from aircast.sandbox.products import check_grib_editions

            self.grib_editions = check_grib_editions(grib_editions)
        self.renderer: Renderer = (
            renderer if renderer is not None else default_renderer(seed, self.grib_editions)
        )
        self._own_data_dir = data_dir is None
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._stats: dict[str, RequestStats] = {}
        self._struck: dict[tuple[str, str], int] = {}
        self._pending: list[dict[str, Any]] = []
        self._renders: dict[str, Future[tuple[Path, str]]] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # ---- lifecycle

    def start(self) -> SandboxServer:
        """Bind, start serving on a background thread, and return self."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self.host, self.port), _Handler)  # first: it may fail (port busy)
        httpd.sandbox = self
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="aircast-sandbox-"))
        (self._data_dir / "cache").mkdir(parents=True, exist_ok=True)
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aircast-sandbox-job")
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="aircast-sandbox-http",
            daemon=True,
        )
        self._thread.start()
        LOG.info("sandbox data store listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, drop queued work, and remove the temporary data directory."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._own_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- public views

    @property
    def url(self) -> str:
        """The API root to give ``cdsapi.Client(url=...)``: ``http://HOST:PORT/api``."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/api"

    @property
    def data_dir(self) -> Path:
        """Where rendered files live (set once started)."""
        if self._data_dir is None:
            raise RuntimeError("the sandbox server has not been started")
        return self._data_dir

    @property
    def stats(self) -> dict[str, RequestStats]:
        """A snapshot of what happened per canonical request (see :class:`RequestStats`)."""
        with self._lock:
            return copy.deepcopy(self._stats)

    def job_ids(self) -> list[str]:
        """Ids of the jobs the server knows, oldest first."""
        with self._lock:
            return list(self._jobs)

    def queue_fault(self, kind: str, count: int = 1, dataset_id: str | None = None) -> None:
        """Force ``kind`` (``corrupt:cut`` style variants allowed) on the next ``count``
        matching submissions; the same as ``POST BASE/sandbox/faults``."""
        kinds = parse_fault_list(kind, "queued fault")
        if len(kinds) != 1:
            raise FaultSpecError(f"queued fault: give exactly one fault kind, got {kind!r}")
        ((name, variant),) = kinds
        if count < 1:
            raise FaultSpecError(f"queued fault: count must be at least 1, got {count}")
        if dataset_id is not None and dataset_id not in DATASETS:
            dataset(dataset_id)  # raises with the known datasets
        with self._lock:
            self._pending.append(
                {"fault": name, "variant": variant, "dataset": dataset_id, "remaining": count}
            )

    # ---- internals used by the handler

    def _stat(self, rhash: str, dataset_id: str, inputs: Mapping[str, Any]) -> RequestStats:
        st = self._stats.get(rhash)
        if st is None:
            st = self._stats[rhash] = RequestStats(dataset_id, canonical_request(inputs))
        return st

    def _count_fault(self, st: RequestStats, kind: str) -> None:
        st.faults[kind] = st.faults.get(kind, 0) + 1

    def _strikes(self, kind: str, rhash: str) -> bool:
        """Whether a probabilistic transient fault of ``kind`` strikes now (uses its budget)."""
        if not self.faults.selects(kind, rhash):
            return False
        n = self._struck.get((rhash, kind), 0)
        if n >= self.faults.transient_attempts:
            return False
        self._struck[(rhash, kind)] = n + 1
        return True

    def _take_pending(self, dataset_id: str, kinds: tuple[str, ...]) -> dict[str, str | None]:
        taken: dict[str, str | None] = {}
        for entry in self._pending:
            if (
                entry["fault"] in kinds
                and entry["fault"] not in taken
                and entry["dataset"] in (None, dataset_id)
                and entry["remaining"] > 0
            ):
                taken[entry["fault"]] = entry["variant"]
                entry["remaining"] -= 1
                if kinds == SUBMIT_KINDS:
                    break
        self._pending = [e for e in self._pending if e["remaining"] > 0]
        return taken

    def _refusal(self, dataset_id: str, parsed: ParsedRequest, root: str) -> _Reply | None:
        """The store's 403 for this submission, worded as the real service words it, or None.

        Checked in the real service's order: the licences, then the cost of the request, then
        the user's quota of requests (held under the lock).
        """
        plan = self.faults
        if dataset_id in plan.licence:
            page = f"{root}/datasets/{dataset_id}?tab=download#manage-licences"
            return _Reply(
                403,
                "required licences not accepted",
                "Not all the required licences have been accepted; please visit "
                f"{page} to accept the required licence(s).",
            )
        if plan.too_large is not None and parsed.n_fields > plan.too_large:
            return _Reply(
                403,
                "cost limits exceeded",
                "Your request is too large, please reduce your selection.",
            )
        created = sum(st.jobs for st in self._stats.values())
        if plan.daily_cap is not None and created >= plan.daily_cap:
            return _Reply(
                403,
                "Maximum number of daily requests reached",
                f"The maximum number of daily requests ({plan.daily_cap}) has been reached for "
                "this user; please try again tomorrow.",
            )
        return None

    def _submit(
        self,
        dataset_id: str,
        inputs: dict[str, Any],
        forced: list[tuple[str, str | None]],
        root: str = "",
    ) -> _Job:
        """Validate, apply submission faults, create and schedule a job (raises _Reply)."""
        try:
            parsed = validate_request(dataset_id, inputs)
        except RequestError as exc:
            raise _Reply(400, "invalid request", str(exc)) from None
        rhash = request_hash(dataset_id, inputs)
        plan = self.faults
        now = time.time()
        with self._lock:
            st = self._stat(rhash, dataset_id, inputs)
            st.submissions += 1
            refusal = self._refusal(dataset_id, parsed, root or f"http://{self.host}:{self.port}")
            if refusal is not None:
                self._count_fault(st, _REFUSAL_KIND[refusal.title])
                raise refusal
            forced_kinds = dict(forced)
            # ---- faults answered on the submission itself
            submit_fault: str | None = None
            for kind in SUBMIT_KINDS:
                if kind in forced_kinds:
                    submit_fault = kind
                    break
            if submit_fault is None:
                pending = self._take_pending(dataset_id, SUBMIT_KINDS)
                submit_fault = next(iter(pending), None)
            if submit_fault is None and self._strikes("throttle", rhash):
                submit_fault = "throttle"
            if (
                submit_fault is None
                and plan.server_error_site(rhash) == "submit"
                and self._strikes("server_error", rhash)
            ):
                submit_fault = "server_error"
            if submit_fault is not None:
                self._count_fault(st, submit_fault)
                if submit_fault == "throttle":
                    raise _Reply(
                        429,
                        "Too many requests",
                        "the AirCast sandbox is throttling submissions (injected fault); "
                        f"retry after {plan.retry_after:g} seconds",
                        headers={"Retry-After": f"{plan.retry_after:g}"},
                    )
                status = plan.server_error_status(rhash)
                # a gateway's 503 says when to come back; a 500 or 502 does not
                retry = {"Retry-After": f"{plan.retry_after:g}"} if status == 503 else None
                raise _Reply(status, "server error", headers=retry)
            # ---- a job
            job_kinds = ("queue", "reject", "fail", "corrupt", "truncate", "missing")
            forced_kinds.update(
                {
                    k: v
                    for k, v in self._take_pending(dataset_id, job_kinds).items()
                    if k not in forced_kinds
                }
            )
            job_id = str(uuid.uuid4())
            queued = "queue" in forced_kinds or self._strikes("queue", rhash)
            wait = plan.queue_seconds if queued else 0.0
            job = _Job(
                id=job_id,
                dataset=dataset_id,
                inputs=inputs,
                rhash=rhash,
                parsed=parsed,
                created=now,
                accepted_until=now + wait / 2,
                queue_until=now + wait,
                ext=_FORMAT_EXTENSIONS.get(parsed.data_format, "bin"),
            )
            if queued:
                self._count_fault(st, "queue")
            missing = plan.missing_dates(_request_days(parsed))
            if not missing and "missing" in forced_kinds:
                missing = _request_days(parsed)[:1]
            if missing:
                self._count_fault(st, "missing")
                job.outcome = "fail"
                job.message = _no_data_message(dataset_id, missing)
            elif "reject" in forced_kinds or self._strikes("reject", rhash):
                self._count_fault(st, "reject")
                job.outcome = "reject"
                job.message = _reject_message()
            elif "fail" in forced_kinds or self._strikes("fail", rhash):
                self._count_fault(st, "fail")
                job.outcome = "fail"
                job.message = _mars_failure_message(dataset_id, inputs)
            else:
                if "corrupt" in forced_kinds or self._strikes("corrupt", rhash):
                    self._count_fault(st, "corrupt")
                    variant = forced_kinds.get("corrupt") or plan.corrupt_variant(rhash)
                    job.corrupt = variant  # type: ignore[assignment]
                if "truncate" in forced_kinds:
                    job.truncate_downloads = 1
            st.jobs += 1
            job.log.append((now, f"INFO: request accepted by the AirCast sandbox (job {job_id})"))
            self._jobs[job_id] = job
            pool = self._pool
        if pool is None:
            raise _Reply(503, "service unavailable", "the sandbox server is stopping")
        pool.submit(self._run, job)
        return job

    def _run(self, job: _Job) -> None:
        """Worker: produce the job's file or its failure."""
        with self._lock:
            if job.dismissed:
                job.done.set()
                return
            job.worker_started = time.time()
            outcome = job.outcome
            if outcome != "reject":
                job.log.append(
                    (
                        max(job.worker_started, job.accepted_until),
                        f"INFO: processing {job.parsed.n_fields} field(s)",
                    )
                )
        final, title, tb = "successful", "", ""
        path: Path | None = None
        size, mime = 0, "application/octet-stream"
        if outcome == "reject":
            final, title, tb = "rejected", "The job has been rejected.", job.message
        elif outcome == "fail":
            final, title, tb = "failed", "The job has failed.", job.message
        else:
            try:
                cached, mime = self._render_cached(job.parsed, job.ext)
                job.ext = cached.suffix.lstrip(".")
                path = self.data_dir / f"{job.id}.{job.ext}"
                if job.corrupt is not None:
                    path.write_bytes(damage(cached.read_bytes(), job.corrupt))
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    try:
                        os.link(cached, path)
                    except OSError:
                        shutil.copyfile(cached, path)
                size = path.stat().st_size
            except RequestError as exc:  # e.g. an area that holds no grid point
                final, title, tb = "failed", "The job has failed.", str(exc)
                path = None
            except Exception as exc:  # a renderer bug must surface as a failed job
                LOG.exception("sandbox job %s failed while rendering", job.id)
                final, title = "failed", "The job has failed."
                tb = (
                    f"An error occurred while producing the file: {exc!r}\n"
                    + traceback.format_exc()
                )
                path = None
        now = time.time()
        shown = max(now, job.queue_until)  # log lines appear when the status changes
        with self._lock:
            if job.dismissed and path is not None:  # deleted while it was being produced
                with contextlib.suppress(OSError):
                    path.unlink()
                path = None
            job.final, job.title, job.traceback = final, title, tb
            job.path, job.size, job.mime = path, size, mime
            job.finished = now
            if final == "successful":
                job.log.append((shown, f"INFO: the file is ready ({size} bytes)"))
            else:
                first = tb.splitlines()[0] if tb else ""
                job.log.append((shown, f"ERROR: {title} {first}"))
        job.done.set()

    def _render_cached(self, parsed: ParsedRequest, ext: str) -> tuple[Path, str]:
        key = _render_key(parsed, self.grib_editions.get(parsed.dataset, 1))
        with self._lock:
            fut = self._renders.get(key)
            owner = fut is None
            if fut is None:
                fut = self._renders[key] = Future()
        if not owner:
            return fut.result()
        cache = self.data_dir / "cache"
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=cache))
        try:
            target = tmp / f"{key}.{ext}"
            mime = self.renderer(parsed, target)
            final = cache / f"{key}.{_EXTENSIONS.get(mime, ext)}"
            os.replace(target, final)
        except BaseException as exc:
            with self._lock:
                self._renders.pop(key, None)
            fut.set_exception(exc)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        fut.set_result((final, mime))
        return final, mime

    def _status(self, job: _Job, now: float) -> str:
        if job.dismissed:
            return "dismissed"
        if now < job.accepted_until:
            return "accepted"
        if job.final is not None and now >= job.queue_until:
            return job.final
        if job.outcome == "reject":
            return "accepted"
        if job.worker_started is not None or job.queue_until > job.created:
            return "running"
        return "accepted"

    def _job_json(
        self,
        job: _Job,
        root: str,
        *,
        log: bool = False,
        request: bool = False,
        log_start: str | None = None,
        monitor: bool = False,
    ) -> dict[str, Any]:
        now = time.time()
        status = self._status(job, now)
        started: float | None = None
        finished: float | None = None
        if status in ("running", "successful", "failed"):
            started = max(job.worker_started or job.accepted_until, job.accepted_until)
        if status in _TERMINAL:
            finished = max(job.finished or now, job.queue_until)
        updated = max(t for t in (job.created, started, finished) if t is not None)
        href = f"{root}/api/retrieve/v1/jobs/{job.id}"
        links = [{"href": href, "rel": "self", "type": "application/json"}]
        if monitor:
            links.append(
                {
                    "href": href,
                    "rel": "monitor",
                    "type": "application/json",
                    "title": "job status info",
                }
            )
        if status in _TERMINAL:
            links.append({"href": f"{href}/results", "rel": "results"})
        out: dict[str, Any] = {
            "processID": job.dataset,
            "type": "process",
            "jobID": job.id,
            "status": status,
            "created": _iso(job.created),
            "started": _iso(started),
            "finished": _iso(finished),
            "updated": _iso(updated),
            "links": links,
        }
        metadata: dict[str, Any] = {"origin": "api"}
        if request:
            metadata["request"] = {"ids": job.inputs}
        if log:
            visible = [(_iso(t), m) for t, m in job.log if t <= now]
            if log_start:
                visible = [(ts, m) for ts, m in visible if ts is not None and ts > log_start]
            metadata["log"] = [[ts, m] for ts, m in visible]
        out["metadata"] = metadata
        return out


#: The fault kind counted for each refusal (by the title of its answer).
_REFUSAL_KIND = {
    "required licences not accepted": "licence",
    "cost limits exceeded": "too_large",
    "Maximum number of daily requests reached": "daily_cap",
}


def _no_data_message(dataset_id: str, days: list[dt.date]) -> str:
    lines = ["MARS returned no data, please check your selection."]
    lines += [f"no data available for {d.isoformat()}" for d in days]
    lines.append(
        f"(dataset {dataset_id}; these dates are missing from the sandbox archive, "
        "a retry will not help)"
    )
    return "\n".join(lines)


def _reject_message() -> str:
    return (
        "Your request has been rejected by the queueing system: the number of queued "
        "requests for this user exceeds the limit (QoS rule 'Limit of queued requests per "
        "user'). Wait for some of your requests to finish, then submit again."
    )


def _mars_failure_message(dataset_id: str, inputs: Mapping[str, Any]) -> str:
    return (
        "The job failed with: MarsRequestError\n"
        "mars - ERROR - Error code is -2: Connection to the MARS data server lost while "
        "reading from tape; request failed, please retry later.\n"
        f"Request submitted to the MARS server ({dataset_id}):\n"
        + json.dumps(canonical_request(inputs), sort_keys=True)
    )


# ---------------------------------------------------------------------------------------------
# HTTP


_JOB = re.compile(r"^/api/retrieve/v1/jobs/(?P<id>[^/]+)$")
_RESULTS = re.compile(r"^/api/retrieve/v1/jobs/(?P<id>[^/]+)/results$")
_PROCESS = re.compile(r"^/api/retrieve/v1/processes/(?P<id>[^/]+)$")
_EXECUTE = re.compile(r"^/api/retrieve/v1/processes/(?P<id>[^/]+)/execution$")
_COLLECTION = re.compile(r"^/api/catalogue/v1/collections/(?P<id>[^/]+)$")
_DOWNLOAD = re.compile(r"^/download/(?P<id>[0-9a-f-]+)\.(?P<ext>[a-z]+)$")
_RANGE = re.compile(r"^bytes=(?P<a>\d*)-(?P<b>\d*)$")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: SandboxServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AirCastSandbox/1.0"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    # ---- plumbing

    @property
    def sandbox(self) -> SandboxServer:
        server = self.server
        assert isinstance(server, _HTTPServer)
        return server.sandbox

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s - %s", self.address_string(), format % args)

    def _root(self) -> str:
        host = self.headers.get("Host") or f"127.0.0.1:{self.sandbox.port}"
        return f"http://{host}"

    def _split(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return parts.path.rstrip("/") or "/", parse_qs(parts.query)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def _problem(self, reply: _Reply) -> None:
        if reply.status in (502, 503):  # what a gateway in front of the store answers
            phrase = HTTPStatus(reply.status).phrase
            html = (
                f"<html><head><title>{reply.status} {phrase}</title></head><body>"
                f"<center><h1>{reply.status} {phrase}</h1></center></body></html>"
            )
            self._send(reply.status, html.encode(), "text/html", reply.headers)
            return
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": reply.title,
            "status": reply.status,
            "instance": self._split()[0],
        }
        if reply.traceback:
            body["traceback"] = reply.traceback
        if reply.detail:
            body["detail"] = reply.detail
        self._json(reply.status, body, reply.headers)

    def _authorise(self) -> None:
        token = self.headers.get("PRIVATE-TOKEN") or ""
        if not hmac.compare_digest(token.encode(), self.sandbox.key.encode()):
            raise _Reply(401, "Authentication failed", _UNAUTHORISED)

    def _dispatch(self) -> None:
        try:
            self._route()
        except _Reply as reply:
            self._problem(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # never leave the client without an answer
            LOG.exception("sandbox server error on %s %s", self.command, self.path)
            self._problem(
                _Reply(500, "internal server error", repr(exc), tb=traceback.format_exc())
            )

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    # ---- routing

    def _route(self) -> None:
        path, query = self._split()
        method = self.command
        body = self._body() if method in ("POST", "PUT", "DELETE") else b""
        sb = self.sandbox
        if (m := _DOWNLOAD.match(path)) and method in ("GET", "HEAD"):
            self._download(m["id"])
        elif path in ("/", "/api") and method == "GET":
            self._json(
                200,
                {
                    "service": "AirCast sandbox data store",
                    "url": sb.url,
                    "datasets": list(DATASETS),
                },
            )
        elif path == "/api/catalogue/v1/messages" and method == "GET":
            self._json(200, {"messages": []})
        elif path == "/api/catalogue/v1/datasets" and method == "GET":
            self._json(200, {"collections": [self._collection(d) for d in DATASETS], "links": []})
        elif (m := _COLLECTION.match(path)) and method == "GET":
            self._known_dataset(m["id"])
            self._json(200, self._collection(m["id"]))
        elif path == "/api/retrieve/v1/processes" and method == "GET":
            self._json(200, {"processes": [self._process(d) for d in DATASETS], "links": []})
        elif (m := _PROCESS.match(path)) and method == "GET":
            self._known_dataset(m["id"])
            self._json(200, self._process(m["id"]))
        elif path == "/api/profiles/v1/account/verification/pat" and method == "POST":
            self._authorise()
            self._json(
                200, {"id": "aircast-sandbox-user", "role": "user", "sub": "aircast-sandbox-user"}
            )
        elif (m := _EXECUTE.match(path)) and method == "POST":
            self._authorise()
            self._known_dataset(m["id"])
            self._execute(m["id"], body)
        elif path == "/api/retrieve/v1/jobs" and method == "GET":
            self._authorise()
            self._list_jobs(query)
        elif path == "/api/retrieve/v1/jobs/delete" and method == "POST":
            self._authorise()
            ids = self._json_body(body).get("job_ids", [])
            self._json(200, {"jobs": [self._dismiss(str(i)) for i in ids]})
        elif (m := _RESULTS.match(path)) and method == "GET":
            self._authorise()
            self._results(m["id"])
        elif (m := _JOB.match(path)) and method == "GET":
            self._authorise()
            self._job(m["id"], query)
        elif (m := _JOB.match(path)) and method == "DELETE":
            self._authorise()
            self._json(200, self._dismiss(m["id"]))
        elif path == "/api/sandbox/faults":
            self._authorise()
            self._faults(method, body)
        elif path == "/api/sandbox/stats" and method == "GET":
            self._authorise()
            self._json(200, {h: s.to_dict() for h, s in sb.stats.items()})
        else:
            raise _Reply(
                404,
                "not found",
                f"{method} {path} is not an endpoint of the AirCast sandbox data store",
            )

    # ---- endpoints

    def _json_body(self, body: bytes) -> dict[str, Any]:
        try:
            obj = json.loads(body or b"{}")
        except ValueError:
            raise _Reply(400, "invalid request", "the request body is not valid JSON") from None
        if not isinstance(obj, dict):
            raise _Reply(400, "invalid request", "the request body must be a JSON object")
        return obj

    def _known_dataset(self, dataset_id: str) -> None:
        if dataset_id not in DATASETS:
            try:
                dataset(dataset_id)
            except RequestError as exc:
                raise _Reply(
                    404, "process not found", f"process {dataset_id!r} has not been found: {exc}"
                ) from None

    def _collection(self, dataset_id: str) -> dict[str, Any]:
        spec = DATASETS[dataset_id]
        end = spec.last_day().isoformat() + "T23:59:59Z"  # a rolling end: as of today
        root = self._root()
        return {
            "type": "Collection",
            "id": dataset_id,
            "title": spec.title,
            "description": f"{spec.title}, served by the AirCast sandbox (toy atmosphere)",
            "published": "2024-09-26T00:00:00Z",
            "updated": "2024-09-26T00:00:00Z",
            "extent": {
                "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
                "temporal": {"interval": [[spec.first_date.isoformat() + "T00:00:00Z", end]]},
            },
            "links": [
                {"href": f"{root}/api/retrieve/v1/processes/{dataset_id}", "rel": "retrieve"}
            ],
        }

    def _process(self, dataset_id: str) -> dict[str, Any]:
        spec = DATASETS[dataset_id]
        root = self._root()
        inputs: dict[str, Any] = {
            "variable": {
                "schema": {
                    "type": "array",
                    "items": {
                        "enum": sorted(v.request_names[dataset_id] for v in spec.variables())
                    },
                }
            },
            "time": {
                "schema": {"type": "array", "items": {"enum": [f"{h:02d}:00" for h in spec.hours]}}
            },
        }
        if spec.levels:
            suffix = "_hpa" if dataset_id == ERA5_PRESSURE else ""
            inputs["pressure_level"] = {
                "schema": {
                    "type": "array",
                    "items": {"enum": [f"{p}{suffix}" for p in spec.levels]},
                }
            }
        return {
            "id": dataset_id,
            "title": spec.title,
            "version": "1.0.0",
            "jobControlOptions": ["async-execute"],
            "outputTransmission": ["reference"],
            "inputs": inputs,
            "outputs": {"asset": {"schema": {"type": "object"}}},
            "links": [
                {
                    "href": f"{root}/api/retrieve/v1/processes/{dataset_id}/execution",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
                }
            ],
            "metadata": {"datasetMetadata": {"messages": []}},
        }

    def _execute(self, dataset_id: str, body: bytes) -> None:
        payload = self._json_body(body)
        inputs = payload.get("inputs")
        if not isinstance(inputs, dict):
            raise _Reply(
                400, "invalid request", 'the request body must be {"inputs": {...the request...}}'
            )
        header = self.headers.get(FAULT_HEADER)
        try:
            forced = parse_fault_list(header, f"{FAULT_HEADER} header") if header else []
        except FaultSpecError as exc:
            raise _Reply(400, "invalid request", str(exc)) from None
        job = self.sandbox._submit(dataset_id, inputs, forced, root=self._root())
        with self.sandbox._lock:
            reply = self.sandbox._job_json(job, self._root(), monitor=True)
        self._json(201, reply)

    def _get_job(self, job_id: str) -> _Job:
        job = self.sandbox._jobs.get(job_id)
        if job is None:
            raise _Reply(
                404,
                "job not found",
                f"job {job_id} not found: it was never submitted to this sandbox, or "
                "the sandbox was restarted since (it keeps jobs in memory only); "
                "submit the request again",
            )
        return job

    def _job(self, job_id: str, query: dict[str, list[str]]) -> None:
        sb = self.sandbox
        with sb._lock:
            job = self._get_job(job_id)
            st = sb._stats[job.rhash]
            st.polls += 1
            if sb.faults.server_error_site(job.rhash) == "poll" and sb._strikes(
                "server_error", job.rhash
            ):
                sb._count_fault(st, "server_error")
                status = sb.faults.server_error_status(job.rhash)
                retry = {"Retry-After": f"{sb.faults.retry_after:g}"} if status == 503 else None
                raise _Reply(status, "server error", headers=retry)
        if job.final is None and time.time() >= job.queue_until:
            job.done.wait(_LONG_POLL_SECONDS)

        def flag(name: str) -> bool:
            return query.get(name, ["false"])[-1].lower() in ("true", "1", "yes")

        with sb._lock:
            reply = sb._job_json(
                job,
                self._root(),
                log=flag("log"),
                request=flag("request"),
                log_start=query.get("logStartTime", [None])[-1],
            )
        self._json(200, reply)

    def _list_jobs(self, query: dict[str, list[str]]) -> None:
        sb = self.sandbox
        statuses = {s for v in query.get("status", []) for s in v.split(",") if s}
        processes = set(query.get("processID", []))
        sortby = query.get("sortby", ["-created"])[-1]
        try:
            limit = int(query.get("limit", ["50"])[-1])
            offset = int(query.get("offset", ["0"])[-1])
        except ValueError:
            raise _Reply(400, "invalid request", "limit and offset must be integers") from None
        with_request = query.get("request", ["false"])[-1].lower() == "true"
        now = time.time()
        with sb._lock:
            jobs = [
                j
                for j in sb._jobs.values()
                if not j.dismissed
                and (not statuses or sb._status(j, now) in statuses)
                and (not processes or j.dataset in processes)
            ]
            jobs.sort(key=lambda j: j.created, reverse=sortby != "created")
            page = jobs[offset : offset + limit]
            root = self._root()
            out = [sb._job_json(j, root, request=with_request) for j in page]
        links: list[dict[str, str]] = []
        if offset + limit < len(jobs):
            nxt = (
                f"{root}/api/retrieve/v1/jobs?limit={limit}&offset={offset + limit}"
                f"&sortby={sortby}"
                + "".join(f"&status={s}" for s in sorted(statuses))
                + "".join(f"&processID={p}" for p in sorted(processes))
                + ("&request=true" if with_request else "")
            )
            links.append({"href": nxt, "rel": "next"})
        self._json(200, {"jobs": out, "links": links})

    def _results(self, job_id: str) -> None:
        sb = self.sandbox
        with sb._lock:
            job = self._get_job(job_id)
            status = sb._status(job, time.time())
            if status == "dismissed":
                raise _Reply(404, "job not found", f"job {job_id} has been dismissed (deleted)")
            if status not in _TERMINAL:
                raise _Reply(404, "results not ready", f"job {job_id} is {status}")
            if status != "successful":
                raise _Reply(400, job.title, tb=job.traceback)
            href = f"{self._root()}/download/{job.id}.{job.ext}"
            asset = {"type": job.mime, "href": href, "file:size": job.size, "file:local_path": href}
        self._json(200, {"asset": {"value": asset}})

    def _dismiss(self, job_id: str) -> dict[str, Any]:
        sb = self.sandbox
        with sb._lock:
            job = self._get_job(job_id)
            job.dismissed = True
            path, job.path = job.path, None
            reply = sb._job_json(job, self._root())
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
        return reply

    def _faults(self, method: str, body: bytes) -> None:
        sb = self.sandbox
        if method == "POST":
            payload = self._json_body(body)
            kind = payload.get("fault")
            count = payload.get("count", 1)
            ds = payload.get("dataset")
            if (
                not isinstance(kind, str)
                or not isinstance(count, int)
                or (ds is not None and not isinstance(ds, str))
            ):
                raise _Reply(
                    400,
                    "invalid request",
                    'expected {"fault": KIND, "count": N, "dataset": optional ID}',
                )
            try:
                sb.queue_fault(kind, count, ds)
            except (FaultSpecError, RequestError) as exc:
                raise _Reply(400, "invalid request", str(exc)) from None
        elif method == "DELETE":
            with sb._lock:
                sb._pending.clear()
        elif method != "GET":
            raise _Reply(405, "method not allowed", f"{method} {self.path}")
        with sb._lock:
            pending = copy.deepcopy(sb._pending)
        self._json(200, {"plan": sb.faults.to_spec(), "pending": pending})

    def _download(self, job_id: str) -> None:
        sb = self.sandbox
        head = self.command == "HEAD"
        with sb._lock:
            job = sb._jobs.get(job_id)
            if (
                job is None
                or job.dismissed
                or job.path is None
                or sb._status(job, time.time()) != "successful"
            ):
                raise _Reply(404, "not found", f"no file for job {job_id}")
            path, mime = job.path, job.mime
            truncate = False
            if not head:
                st = sb._stats[job.rhash]
                st.downloads += 1
                forced = FAULT_HEADER in self.headers and "truncate" in (
                    self.headers.get(FAULT_HEADER) or ""
                )
                if job.truncate_downloads > 0:
                    job.truncate_downloads -= 1
                    truncate = True
                elif forced or sb._strikes("truncate", job.rhash):
                    truncate = True
                if truncate:
                    sb._count_fault(st, "truncate")
        size = path.stat().st_size
        start, end, status = 0, size, 200
        headers = {
            "Accept-Ranges": "bytes",
            "Last-Modified": self.date_time_string(int(path.stat().st_mtime)),
            "ETag": f'"{job_id}-{size}"',
            "Content-Disposition": f'attachment; filename="{path.name}"',
        }
        rng = self.headers.get("Range")
        if rng and (m := _RANGE.match(rng.strip())):
            a, b = m["a"], m["b"]
            if a:
                start, end = int(a), (min(int(b) + 1, size) if b else size)
            elif b:
                start, end = max(0, size - int(b)), size
            if (not a and not b) or start >= size or start >= end:
                raise _Reply(
                    416,
                    "range not satisfiable",
                    f"{rng} for a file of {size} bytes",
                    headers={"Content-Range": f"bytes */{size}"},
                )
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        length = end - start
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        send = truncated_length(length) if truncate else length
        with path.open("rb") as f:
            f.seek(start)
            remaining = send
            while remaining > 0:
                chunk = f.read(min(1 << 20, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
        if truncate:
            self.wfile.flush()
            self.close_connection = True
