"""The one network seam: the only module that talks to the Copernicus data stores.

Two explicit clients, one per store (the Climate Data Store serves ERA5, the Atmosphere Data
Store serves CAMS): each built from its own URL and key, never from a process-wide
``~/.cdsapirc`` or environment, so that both can be used in one process. Tests point them at
the sandbox server on 127.0.0.1; nothing else in AirCast imports ``cdsapi``.

The key is held in a :class:`Secret` whose ``repr`` and ``str`` are masked, and a logging
filter masks it in every log record, so it cannot leak into logs, manifests, artifacts,
exceptions or flow parameters.

Every HTTP call of the client goes through one session of this module (:class:`_SeamSession`),
because the client library cannot be told two things a user needs: to wait as long as the
store's ``Retry-After`` asks (it waits ``sleep_max`` every time), and to give up on a store
that never answers within a bounded time (connection refused, DNS failure, a port that never
answers) while staying patient with one that answers but is busy. The store's ``403`` answers
are told apart by their words: a licence not accepted (:class:`LicenceError`), a request over
the cost limit (:class:`RequestTooLargeError`), the daily quota of requests
(:class:`DailyLimitError`); a ``401`` is a refused key (:class:`KeyRefusedError`).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cdsapi
import requests
from ecmwf.datastores.processing import (
    DownloadError,
    ProcessingFailedError,
    cads_raise_for_status,
)

from aircast.errors import AirCastError, DataStoreError, TransientDataStoreError

Store = Literal["cds", "ads"]

LOG = logging.getLogger(__name__)

#: The real stores' API URLs (the README says how to get a key and accept the licences).
REAL_URLS: Mapping[Store, str] = {
    "cds": "https://cds.climate.copernicus.eu/api",
    "ads": "https://ads.atmosphere.copernicus.eu/api",
}


class Secret:
    """A string that does not print itself.

    ``str()``/``repr()``/f-strings show ``'***'``; :meth:`reveal` is the one way to get the
    value, and it is called only where the key is handed to the client.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class _MaskSecrets(logging.Filter):
    """Replaces every known key in log messages and their arguments by ``***``."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if len(secret) >= 4:  # masking a one-letter "key" would garble every message
            with self._lock:
                self.secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, "***")
        if masked != message:
            record.msg, record.args = masked, None
        return True


_MASK = _MaskSecrets()


#: Loggers that records are created on. A logger's filters see only its own records, not its
#: children's, so the modules that actually log are named, not just their packages: the mask
#: then holds for handlers added after the endpoint was made (logging set up later, an
#: orchestrator's handlers). ``legacy_client`` logs the key itself at DEBUG when a client is
#: built; ``quiet=True`` keeps that line below WARNING, but only while no other thread restores
#: that logger's level at the same moment, which ``LoggingContext`` does.
_MASKED_LOGGERS = (
    "",
    "cdsapi",
    "cdsapi.api",
    "ecmwf",
    "ecmwf.datastores",
    "ecmwf.datastores.legacy_client",
    "ecmwf.datastores.processing",
    "ecmwf.datastores.client",
    "ecmwf.datastores.catalogue",
    "multiurl",
    "multiurl.base",
    "multiurl.http",
    "multiurl.retry",
    "urllib3",
    "urllib3.connectionpool",
    "aircast",
    "aircast.sources.datastore",
    "aircast.sources.fetch",
)


def _install_mask() -> None:
    """Attach the mask to the root handlers and to the client libraries' loggers."""
    for name in _MASKED_LOGGERS:
        logger = logging.getLogger(name)
        if _MASK not in logger.filters:
            logger.addFilter(_MASK)
        for handler in logger.handlers:
            if _MASK not in handler.filters:
                handler.addFilter(_MASK)


def mask_secrets_in(*logger_names: str) -> None:
    """Mask every data-store key in what these loggers (and their handlers) emit.

    The seam masks the root handlers and the client libraries' loggers; an orchestrator has
    handlers of its own (Prefect's ``prefect.flow_runs`` and ``prefect.task_runs`` send records
    to its API), which it adds here. Idempotent.
    """
    for name in logger_names:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if _MASK not in target.filters:
                target.addFilter(_MASK)


@dataclass(frozen=True)
class Endpoint:
    """Where one store lives and the key that opens it.

    ``key_source`` says where the key was found (``environment variable AIRCAST_CDS_KEY
    (datastores.cds.key_env)``), never what it is, so that a refused key is reported with the
    place to fix it.
    """

    store: Store
    url: str
    key: Secret = field(repr=False)
    key_source: str = ""

    def __post_init__(self) -> None:
        _MASK.add(self.key.reveal())
        _install_mask()


_KEY_LINE = re.compile(r"^\s*key\s*:\s*(?P<key>\S+)\s*$", re.MULTILINE)


def read_key_file(path: Path) -> Secret:
    """Read ``key: …`` from a file in the ``.cdsapirc`` format."""
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise DataStoreError(
            f"cannot read the key file {path}: {exc.strerror}; create it with one line "
            "'key: <your key>' or set key_env instead"
        ) from None
    match = _KEY_LINE.search(text)
    if match is None:
        raise DataStoreError(f"the key file {path} has no 'key: …' line; add one")
    return Secret(match.group("key"))


KeyResolver = Callable[[Store], Secret | None]


def resolve_endpoint(
    store: Store,
    url: str,
    *,
    key_env: str | None = None,
    key_file: Path | None = None,
    key_resolver: KeyResolver | None = None,
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """Build a store's endpoint from settings, looking for the key in a fixed order.

    The order is: ``key_resolver`` (the flows pass one that reads a Prefect Secret block),
    the environment variable ``key_env``, then ``key_file``.

    Raises
    ------
    DataStoreError
        When no key is found; the message says where it was looked for.
    """
    env = os.environ if environ is None else environ
    key: Secret | None = key_resolver(store) if key_resolver is not None else None
    source = "the key resolver (e.g. a Prefect Secret block)"
    looked = []
    if key is None and key_env:
        looked.append(f"environment variable {key_env}")
        source = f"the environment variable {key_env} (datastores.{store}.key_env)"
        if env.get(key_env):
            key = Secret(env[key_env])
    if key is None and key_file is not None:
        looked.append(f"key file {key_file}")
        source = f"the key file {key_file} (datastores.{store}.key_file)"
        key = read_key_file(key_file)
    if key is None:
        where = ", ".join(looked) or "nowhere (no key_env or key_file configured)"
        raise DataStoreError(
            f"no API key for the {store.upper()} at {url}: looked in {where}; set "
            f"datastores.{store}.key_env in the config and export that variable with your key "
            "from the store's profile page"
        )
    return Endpoint(store, url.rstrip("/"), key, key_source=source)


@dataclass(frozen=True)
class RetryPolicy:
    """How patiently to talk to a store.

    Attributes
    ----------
    http_tries
        Tries of each HTTP call on throttling (429), server errors (5xx) and dropped
        connections; the client library waits ``sleep_max`` seconds between them.
    sleep_max
        Longest wait between polls of a running job, and between HTTP retries.
    download_tries
        Tries of a result's download (truncated or corrupt files are refetched).
    timeout
        Seconds to wait for the server to answer one HTTP call.
    connect_timeout
        Seconds to wait for a connection to the store to open.
    unreachable_after
        Seconds without any answer from the store (refused or timed-out connections, DNS
        failures, calls never answered) after which it is given up as unreachable. A store
        that answers, even with 429 or 503, resets it: a busy store keeps the long patience of
        ``http_tries`` and ``sleep_max``.
    """

    http_tries: int = 8
    sleep_max: float = 60.0
    download_tries: int = 4
    timeout: float = 60.0
    connect_timeout: float = 10.0
    unreachable_after: float = 120.0


#: Answers worth asking again: the store is busy or its gateway had a hiccup.
_RETRIABLE = (408, 429, 500, 502, 503, 504)


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (None when absent or unreadable).

    The header is either a number of seconds or an HTTP date (RFC 9110, section 10.2.3).
    """
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


class _NoAnswer(Exception):
    """Raised inside the session when the store gave no answer for too long.

    Not a ``requests`` exception on purpose: the client library retries those on its own (with
    its own fixed sleep), and the point is that it must not.
    """


class _SeamSession(requests.Session):
    """The session every HTTP call of one client goes through (see the module docstring).

    It retries what the store answered with 408/429/5xx up to ``http_tries`` times, waiting
    what ``Retry-After`` asks (at most ``sleep_max``) or a doubling backoff, and connections
    that fail until the store has given no answer for ``unreachable_after`` seconds; then it
    raises (an ``HTTPError``, or :class:`_NoAnswer`) so that the library does not retry again.
    """

    def __init__(self, endpoint: Endpoint, retry: RetryPolicy, inner: requests.Session) -> None:
        super().__init__()
        self._endpoint = endpoint
        self._retry = retry
        self._inner = inner
        self.headers = inner.headers  # fault headers of the tests ride on every call
        self._silent_since: float | None = None
        self._given_up: str | None = None

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if self._given_up is not None:
            raise _NoAnswer(self._given_up)
        kwargs["timeout"] = (self._retry.connect_timeout, self._retry.timeout)
        where = f"{self._endpoint.store.upper()} at {self._endpoint.url}"
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._inner.request(method, url, *args, **kwargs)
            except requests.exceptions.SSLError:
                raise  # a certificate problem is not cured by waiting
            except (requests.ConnectionError, requests.Timeout) as exc:
                now = time.monotonic()
                if self._silent_since is None:
                    self._silent_since = now
                silent = now - self._silent_since
                budget = self._retry.unreachable_after
                if silent >= budget or attempt >= self._retry.http_tries:
                    self._given_up = (
                        f"no answer from {url!s} for {silent:.0f} s over {attempt} tries (last: "
                        f"{type(exc).__name__}: {_mask(str(exc), self._endpoint.key)})"
                    )
                    raise _NoAnswer(self._given_up) from None
                wait = min(self._retry.sleep_max, 0.5 * 2 ** (attempt - 1), budget - silent)
                LOG.warning(
                    "%s did not answer (%s); trying again in %.3g s",
                    where,
                    type(exc).__name__,
                    wait,
                )
                time.sleep(max(0.0, wait))
                continue
            self._silent_since = None  # it answered: whatever it said, it is reachable
            if response.status_code not in _RETRIABLE:
                return response
            if attempt >= self._retry.http_tries:
                cads_raise_for_status(response)  # always raises for these codes
                return response
            asked = retry_after_seconds(response.headers.get("Retry-After"))
            backoff = min(self._retry.sleep_max, float(2 ** (attempt - 1)))
            wait = backoff if asked is None else min(asked, self._retry.sleep_max)
            why = "no Retry-After" if asked is None else f"it asked for {asked:g} s"
            LOG.info(
                "%s answered %d; trying again in %.3g s (%s; at most ingest.sleep_max %g s)",
                where,
                response.status_code,
                wait,
                why,
                self._retry.sleep_max,
            )
            response.close()
            time.sleep(wait)

    def close(self) -> None:
        self._inner.close()
        super().close()


class DataStoreClient:
    """A client of one store: submit a request, resume a job by its id, download its result.

    Parameters
    ----------
    endpoint
        The store's URL and key.
    retry
        Retry and polling settings.
    session
        A ``requests.Session`` to reuse (tests pass one with fault headers).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.retry = retry or RetryPolicy()
        seam = _SeamSession(endpoint, self.retry, session or requests.Session())
        # url and key are explicit, so no ~/.cdsapirc and no CDSAPI_* variable is consulted;
        # quiet, because the client's debug line would print the key. Building the client asks
        # the store for its messages (and only warns if it cannot): that call too goes through the
        # seam's session, whose verdict on an unreachable store the later calls then share.
        self._client = cdsapi.Client(
            url=endpoint.url,
            key=endpoint.key.reveal(),
            quiet=True,
            progress=False,
            wait_until_complete=False,
            retry_max=self.retry.http_tries,
            sleep_max=self.retry.sleep_max,
            timeout=self.retry.timeout,
            delete=False,
            session=seam,
        )
        self._jobs = self._client.client  # ecmwf.datastores.Client: jobs by request id

    def __repr__(self) -> str:
        return f"DataStoreClient({self.endpoint.store!r}, {self.endpoint.url!r})"

    def submit(self, dataset: str, request: Mapping[str, Any]) -> str:
        """Submit a request; return the store's request id without waiting for the job."""
        with _translated(self.endpoint, f"submitting a {dataset} request", dataset):
            remote = self._client.retrieve(dataset, dict(request))
            return str(remote.request_id)

    def download(self, request_id: str, target: Path) -> Path:
        """Wait for job ``request_id`` and download its result to ``target``.

        A download that breaks off or arrives short raises
        :class:`TransientDataStoreError`; the caller retries it.
        """
        with _translated(self.endpoint, f"job {request_id}"):
            remote = self._jobs.get_remote(request_id)
            results = remote.get_results()
            results.download(str(target))
        return target

    def job_status(self, request_id: str) -> str:
        """The store's status of a job (accepted, running, successful, failed, rejected)."""
        with _translated(self.endpoint, f"job {request_id}"):
            return str(self._jobs.get_remote(request_id).status)


@contextmanager
def _translated(endpoint: Endpoint, doing: str, dataset: str | None = None) -> Iterator[None]:
    """Turns the client libraries' exceptions into AirCast's, without the key."""
    try:
        yield
    except AirCastError:
        raise
    except Exception as exc:
        translated = _translate(exc, endpoint, doing, dataset)
        if translated is exc:
            raise  # not a store's failure: a bug, keep its traceback
        raise translated from None


#: What to do about a job the store failed or rejected: its own message says which case it is.
_JOB_FAILED_FIX = (
    "the store's message says why: if it has no data for some dates, leave those dates out of "
    "the range; if it asks to retry or wait, run the ingestion again later (finished requests "
    "are kept)"
)
_HTTP_STATUS_LINE = re.compile(r"^\d{3} (Client|Server) Error: .*$")


def _translate(
    exc: Exception, endpoint: Endpoint, doing: str, dataset: str | None = None
) -> Exception:
    where = f"{endpoint.store.upper()} at {endpoint.url}"
    text = _mask(str(exc), endpoint.key)
    if isinstance(exc, _NoAnswer):
        return StoreUnreachableError(
            f"{where}: the store is unreachable while {doing}: {text}; check "
            f"datastores.{endpoint.store}.url and the network (AirCast gives up on a store that "
            "does not answer within ingest.unreachable_after seconds, each connection attempt "
            "waiting ingest.connect_timeout)"
        )
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        source = endpoint.key_source or f"the key of datastores.{endpoint.store}"
        if code == 403:
            refusal = _refusal(text, endpoint, where, source, doing, dataset)
            if refusal is not None:
                return refusal
        if code in (401, 403):
            return KeyRefusedError(
                f"{where} refused the key from {source} while {doing} ({code}): {text}; put "
                "a valid key there (it is on your profile page of the store's website)"
            )
        if code == 404 and doing.startswith("job"):
            return JobNotFoundError(f"{where} does not know {doing}: {text}")
        if code in (408, 429) or code >= 500:
            return TransientDataStoreError(f"{where} kept failing while {doing}: {text}")
        if code == 400 and doing.startswith("job"):
            # the results of a failed or rejected job are a 400 that carries the store's
            # message (the client raises it before its own ProcessingFailedError)
            return DataStoreError(
                f"{where}: {doing} failed on the store: {_store_words(text)}; {_JOB_FAILED_FIX}"
            )
        return DataStoreError(f"{where} rejected {doing} ({code}): {text}")
    if isinstance(exc, ProcessingFailedError):
        if "'dismissed'" in text or "'deleted'" in text:
            # deleted on the store's website while we were away: it is gone, ask again
            return JobNotFoundError(f"{where}: {doing} was deleted on the store: {text}")
        return DataStoreError(f"{where}: {doing} failed on the store: {text}; {_JOB_FAILED_FIX}")
    if isinstance(exc, requests.ConnectionError):
        return StoreUnreachableError(
            f"{where}: the store is unreachable while {doing}: {text}; check "
            f"datastores.{endpoint.store}.url and the network"
        )
    if isinstance(exc, (DownloadError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return TransientDataStoreError(f"{where}: the transfer broke off while {doing}: {text}")
    return exc


_LICENCE_PAGE = re.compile(r"https?://\S+?#manage-licences")


def next_utc_midnight(now: dt.datetime | None = None) -> dt.datetime:
    """When a daily quota of the stores starts again: the next midnight UTC (tz-aware)."""
    now = now or dt.datetime.now(dt.UTC)
    today = now.astimezone(dt.UTC).date()
    return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def _refusal(
    text: str, endpoint: Endpoint, where: str, source: str, doing: str, dataset: str | None
) -> DataStoreError | None:
    """The error of a 403 whose words say which refusal it is (None: not one of these)."""
    words = _store_words(text).replace("\n", ": ", 1).replace("\n", " ")
    lowered = text.lower()
    name = dataset or "the dataset"
    if "licence" in lowered or "license" in lowered:
        found = _LICENCE_PAGE.search(text)
        site = endpoint.url.removesuffix("/api")
        page = found.group(0) if found else f"{site}/datasets/{name}?tab=download#manage-licences"
        return LicenceError(
            dataset,
            page,
            f"{where} will not serve {name}: its licence is not accepted; accept it on {page} "
            f"while signed in with the account of the key from {source}, then run the ingestion "
            f"again (only {name} stops: the other datasets go on, and what arrived is kept; the "
            f"store said: {words})",
        )
    if "cost limit" in lowered or "too large" in lowered:
        return RequestTooLargeError(
            dataset,
            f"{where} refused {doing} as over its cost limit ({words}); ask for less in one "
            "request: fewer variables or levels per request, or fewer days",
        )
    if "daily requests" in lowered or "daily limit" in lowered:
        resume = next_utc_midnight()
        return DailyLimitError(
            resume,
            f"{where} has reached the maximum number of daily requests of the key from "
            f"{source} ({words}); run the ingestion again after {resume:%Y-%m-%d %H:%M} UTC "
            "(the next UTC midnight): what arrived is kept and not asked for again",
        )
    return None


def _store_words(text: str) -> str:
    """The store's message without the client's ``400 Client Error: … for url: …`` line."""
    first, sep, rest = text.partition("\n")
    return rest.strip() if sep and _HTTP_STATUS_LINE.match(first) else text


class JobNotFoundError(DataStoreError):
    """The store no longer knows a request id (expired or deleted job): submit again."""


class KeyRefusedError(DataStoreError):
    """The store refused the key: no request to that store can succeed until it is fixed."""


class StoreUnreachableError(TransientDataStoreError):
    """The store gave no answer for ``unreachable_after`` seconds (or ``http_tries`` tries):
    no request to that store can succeed until it is back."""


class LicenceError(DataStoreError):
    """The store will not serve a dataset until its licence is accepted on its website.

    Only that dataset's requests stop: the store serves its other datasets.

    Attributes
    ----------
    dataset
        The dataset refused (None when the call named none).
    page
        The page of the store's website where the licence is accepted.
    """

    def __init__(self, dataset: str | None, page: str, message: str) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.page = page


class RequestTooLargeError(DataStoreError):
    """The store refused a request as over its cost limit: it must ask for less.

    Attributes
    ----------
    dataset
        The dataset of the request (None when the call named none).
    """

    def __init__(self, dataset: str | None, message: str) -> None:
        super().__init__(message)
        self.dataset = dataset


class DailyLimitError(DataStoreError):
    """The store's daily quota of requests is spent: nothing more until it resets.

    Attributes
    ----------
    resume_at
        When the quota starts again (the next UTC midnight, tz-aware).
    """

    def __init__(self, resume_at: dt.datetime, message: str) -> None:
        super().__init__(message)
        self.resume_at = resume_at


def _mask(text: str, key: Secret) -> str:
    return text.replace(key.reveal(), "***") if key.reveal() else text
