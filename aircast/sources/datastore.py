"""The one network seam: the only module that talks to the Copernicus data stores.

Two explicit clients, one per store (the Climate Data Store serves ERA5, the Atmosphere Data
Store serves CAMS): each built from its own URL and key, never from a process-wide
``~/.cdsapirc`` or environment, so that both can be used in one process. Tests point them at
the sandbox server on 127.0.0.1; nothing else in AirCast imports ``cdsapi``.

The key is held in a :class:`Secret` whose ``repr`` and ``str`` are masked, and a logging
filter masks it in every log record, so it cannot leak into logs, manifests, artifacts,
exceptions or flow parameters.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cdsapi
import requests
from ecmwf.datastores.processing import DownloadError, ProcessingFailedError

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
    """

    http_tries: int = 8
    sleep_max: float = 60.0
    download_tries: int = 4
    timeout: float = 60.0


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
        kwargs: dict[str, Any] = {}
        if session is not None:
            kwargs["session"] = session
        # url and key are explicit, so no ~/.cdsapirc and no CDSAPI_* variable is consulted;
        # quiet, because the client's debug line would print the key
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
            **kwargs,
        )
        self._jobs = self._client.client  # ecmwf.datastores.Client: jobs by request id

    def __repr__(self) -> str:
        return f"DataStoreClient({self.endpoint.store!r}, {self.endpoint.url!r})"

    def submit(self, dataset: str, request: Mapping[str, Any]) -> str:
        """Submit a request; return the store's request id without waiting for the job."""
        with _translated(self.endpoint, f"submitting a {dataset} request"):
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
def _translated(endpoint: Endpoint, doing: str) -> Iterator[None]:
    """Turns the client libraries' exceptions into AirCast's, without the key."""
    try:
        yield
    except AirCastError:
        raise
    except Exception as exc:
        translated = _translate(exc, endpoint, doing)
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


def _translate(exc: Exception, endpoint: Endpoint, doing: str) -> Exception:
    where = f"{endpoint.store.upper()} at {endpoint.url}"
    text = _mask(str(exc), endpoint.key)
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code in (401, 403):
            source = endpoint.key_source or f"the key of datastores.{endpoint.store}"
            return KeyRefusedError(
                f"{where} refused the key from {source} while {doing} ({code}): {text}; put "
                "a valid key there (it is on your profile page of the store's website) and "
                "check that the dataset's licence is accepted there"
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


def _store_words(text: str) -> str:
    """The store's message without the client's ``400 Client Error: … for url: …`` line."""
    first, sep, rest = text.partition("\n")
    return rest.strip() if sep and _HTTP_STATUS_LINE.match(first) else text


class JobNotFoundError(DataStoreError):
    """The store no longer knows a request id (expired or deleted job): submit again."""


class KeyRefusedError(DataStoreError):
    """The store refused the key: no request to that store can succeed until it is fixed."""


class StoreUnreachableError(TransientDataStoreError):
    """The store could not be reached at all (after the client's own retries)."""


def _mask(text: str, key: Secret) -> str:
    return text.replace(key.reveal(), "***") if key.reveal() else text
