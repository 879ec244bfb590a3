"""Seeded fault injection for the sandbox data store.

A :class:`FaultPlan` says which kinds of trouble the sandbox server causes and how often. It is
written as a spec string (the ``--faults`` option of ``aircast sandbox serve``)::

    throttle=0.2,server_error=0.1,queue=0.3,fail=0.05,reject=0.05,truncate=0.1,corrupt=0.1,
    missing=2019-01-03+2019-01-05,seed=7,queue_seconds=2,transient_attempts=1

Fault kinds (a probability in [0, 1] each, except ``missing``)
---------------------------------------------------------------
``queue``
    The job stays ``accepted`` for the first half of ``queue_seconds`` and ``running`` for the
    second half (and for as long as rendering takes), then ends normally.
``throttle``
    The submission (``POST …/execution``) is answered ``429 Too Many Requests`` with a
    ``Retry-After`` header of ``retry_after`` seconds; no job is created. ``cdsapi`` retries it
    on its own (after its ``sleep_max``).
``server_error``
    A ``500``, ``502`` or ``503`` answer (drawn per request), either to the submission or to a
    status poll (``GET …/jobs/{id}``), also drawn per request. ``cdsapi`` retries both.
``fail``
    The job ends ``failed``; fetching its results raises the store's ``The job has failed.``
    error with a MARS-like message.
``reject``
    The job ends ``rejected`` (queueing-system QoS message) without ever running.
``truncate``
    The download connection drops after half of the bytes while ``Content-Length`` announces
    the full size. The real client (``Results.download``) retries the broken transfer and resumes
    it with a ``Range`` request, so with ``retry_max >= 2`` the file arrives whole; with
    ``retry_max=1`` it raises ``requests.exceptions.ChunkedEncodingError`` and leaves the short
    file at the target path.
``corrupt``
    The job's file is damaged and its announced ``file:size`` is the damaged file's size, so
    the client's size check passes. Variant ``overwrite``: same size, bytes inverted inside the
    file (for GRIB the end marker ``7777`` of the middle message and the four bytes before it,
    which ecCodes reports as ``WrongLengthError``; for a zip the middle of the first member's
    data, a CRC error; for NetCDF bytes 4-20, the HDF5 signature or the classic header), so a
    structural check fails. Variant ``cut``: the file cut short inside a GRIB message (ecCodes:
    ``PrematureEndOfFileError``) or at 60 % of its length, and the shorter size announced.
    The variant is drawn per request. Fetching the same job again gives the same damaged file;
    a new submission of the same request gets a good one (when transient, see below).
``missing``
    Not a probability but dates (``+``-separated, ``YYYY-MM-DD`` or ``YYYY-MM-DD/YYYY-MM-DD``):
    every job whose dates (reanalysis valid dates, forecast run dates) touch one of them ends
    ``failed`` with ``no data available for <date>``. Persistent: retrying never helps.

The store's refusals (persistent, answered ``403`` on the submission with the real service's
words, no job created)
-------------------------------------------------------------------------------------------------
``licence``
    Datasets (``+``-separated ids) whose licence the key's account has not accepted: title
    ``required licences not accepted``, detail ``Not all the required licences have been
    accepted; please visit <root>/datasets/<id>?tab=download#manage-licences to accept the
    required licence(s).`` Other datasets are served.
``too_large``
    A number of fields: a request asking for more is answered title ``cost limits exceeded``,
    detail ``Your request is too large, please reduce your selection.``
``daily_cap``
    A number of requests: once that many jobs were created (over the server's lifetime, every
    dataset), each further submission is answered title ``Maximum number of daily requests
    reached`` (the ADS's quota), with the limit in the detail.

Options: ``seed`` (int, default 0), ``queue_seconds`` (default 2), ``transient_attempts``
(default 1), ``retry_after`` (the ``Retry-After`` of a 429 and of a 503, default 1).

Determinism and transience
--------------------------
Whether a request gets a fault of a kind is a pure function of ``(seed, request hash, kind)``
(:meth:`FaultPlan.selects`), where the request hash is :func:`request_hash` of the dataset and
the canonical request: the same seed faults the same requests on every run. Every kind but
``missing`` is *transient*: a selected kind strikes only the first ``transient_attempts`` times
the request reaches the point where that kind applies (submissions for throttle and submit
errors, status polls for poll errors, created jobs for queue/fail/reject/corrupt, file GETs for
truncate), counted per canonical request over the server's lifetime. A retry therefore succeeds
and its bytes equal those of a fault-free run. One job ends in at most one way: ``missing``
before ``reject`` before ``fail``; ``corrupt`` strikes only a job that would succeed (so a
request selected for both ``fail`` and ``corrupt`` fails once, then arrives damaged once).

Faults on demand
----------------
* Header ``X-AirCast-Fault: KIND[,KIND…]`` on a submission forces those kinds on that
  submission, regardless of probabilities and of the transient budget (``corrupt:cut`` or
  ``corrupt:overwrite`` pick the variant). Tests pass it through
  ``cdsapi.Client(session=s)`` with ``s.headers["X-AirCast-Fault"] = "corrupt"``. A session
  header rides on *every* submission, so ``throttle`` or ``server_error`` forced this way make
  the client give up after its retries; use the control endpoint for a one-off. ``truncate``
  forced on a submission truncates the first download of that job; the header on a download
  ``GET`` truncates that response (the client's own downloads go through ``multiurl`` without
  the session, so they never carry it). ``missing`` forced fails the job for its first date.
* ``POST {BASE}/sandbox/faults`` with JSON ``{"fault": KIND, "count": N, "dataset": ID}``
  (``dataset`` optional, ``count`` default 1) queues the fault for the next ``N`` matching
  submissions (each submission consumes one of each pending kind; a throttled or errored
  submission consumes only that). ``GET`` lists the plan and the pending faults, ``DELETE``
  clears the pending ones. The control endpoints need the API key (``PRIVATE-TOKEN``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aircast.errors import AirCastError

#: Every fault kind, in the order the server checks them.
FAULT_KINDS = (
    "throttle",
    "server_error",
    "queue",
    "reject",
    "fail",
    "corrupt",
    "truncate",
    "missing",
)
#: Kinds that strike only the first ``transient_attempts`` times.
TRANSIENT_KINDS = tuple(k for k in FAULT_KINDS if k != "missing")
#: Kinds answered on the submission itself (no job is created).
SUBMIT_KINDS = ("throttle", "server_error")
#: Options of a spec besides the kinds.
OPTIONS = ("seed", "queue_seconds", "transient_attempts", "retry_after")
#: The store's persistent refusals (403 answers): a dataset list or a number, not a probability.
REFUSALS = ("licence", "too_large", "daily_cap")
CORRUPT_VARIANTS = ("overwrite", "cut")
SERVER_ERROR_CODES = (500, 502, 503)
#: HTTP header that forces faults on one request.
FAULT_HEADER = "X-AirCast-Fault"

CorruptVariant = Literal["overwrite", "cut"]


class FaultSpecError(AirCastError, ValueError):
    """A fault spec (``--faults``), header or control request that cannot be parsed."""


def _valid_tokens() -> str:
    kinds = ", ".join(f"{k}=P" for k in TRANSIENT_KINDS)
    return (
        f"valid fault kinds: {kinds} (P a probability in [0, 1]), "
        "missing=YYYY-MM-DD[+YYYY-MM-DD…] (dates or YYYY-MM-DD/YYYY-MM-DD ranges); "
        "refusals: licence=DATASET[+DATASET…], too_large=N (fields), daily_cap=N (requests); "
        f"options: {', '.join(OPTIONS)}"
    )


# ---------------------------------------------------------------------------------------------
# request identity


def _canonical_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda i: str(i[0]))
        return {str(k): _canonical_value(v) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def canonical_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request with sorted keys, every scalar as a string and one-element lists unwrapped.

    ``{"year": 2019}``, ``{"year": "2019"}`` and ``{"year": ["2019"]}`` are the same request;
    the order of list values is kept (it may change the order of fields in the file).
    """
    out: dict[str, Any] = {}
    for key in sorted(request, key=str):
        value = _canonical_value(request[key])
        if isinstance(value, list) and len(value) == 1 and key != "area":
            value = value[0]
        out[str(key)] = value
    return out


def request_hash(dataset: str, request: Mapping[str, Any]) -> str:
    """sha256 (hex) of the dataset and the canonical request: the key of the server's stats."""
    payload = json.dumps(
        {"dataset": dataset, "request": canonical_request(request)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# the plan


def _parse_dates(token: str, value: str) -> tuple[dt.date, ...]:
    days: set[dt.date] = set()
    for part in value.split("+"):
        first, _, last = part.strip().partition("/")
        try:
            start = dt.date.fromisoformat(first)
            end = dt.date.fromisoformat(last) if last else start
        except ValueError:
            raise FaultSpecError(
                f"fault spec token {token!r}: {part!r} is not a date; write "
                f"missing=YYYY-MM-DD+YYYY-MM-DD or ranges YYYY-MM-DD/YYYY-MM-DD; {_valid_tokens()}"
            ) from None
        if end < start:
            raise FaultSpecError(
                f"fault spec token {token!r}: range {part!r} ends before it starts"
            )
        days.update(start + dt.timedelta(days=i) for i in range((end - start).days + 1))
    return tuple(sorted(days))


@dataclass(frozen=True)
class FaultPlan:
    """Which faults the sandbox injects, and how often (see the module docstring).

    Attributes
    ----------
    rates
        Probability per transient kind (kinds left out never happen).
    missing
        Dates without data (persistent).
    seed
        Seed of the per-request draws.
    queue_seconds
        How long a queued job waits (accepted for half of it, running for the other half).
    transient_attempts
        How many times a selected transient kind strikes one canonical request.
    retry_after
        ``Retry-After`` seconds announced by a throttled submission and by a 503.
    licence
        Datasets whose licence is not accepted (their submissions are refused).
    too_large
        Most fields a request may ask for (None: no cost limit).
    daily_cap
        Most jobs the server creates (None: no daily quota).
    """

    rates: Mapping[str, float] = field(default_factory=dict)
    missing: tuple[dt.date, ...] = ()
    seed: int = 0
    queue_seconds: float = 2.0
    transient_attempts: int = 1
    retry_after: float = 1.0
    licence: tuple[str, ...] = ()
    too_large: int | None = None
    daily_cap: int | None = None

    def __post_init__(self) -> None:
        for kind, p in self.rates.items():
            if kind not in TRANSIENT_KINDS:
                raise FaultSpecError(f"unknown fault kind {kind!r}; {_valid_tokens()}")
            if not 0.0 <= p <= 1.0:
                raise FaultSpecError(f"fault {kind}={p}: a probability must lie in [0, 1]")
        if self.transient_attempts < 1:
            raise FaultSpecError(
                f"transient_attempts={self.transient_attempts}: must be at least 1"
            )
        if self.queue_seconds < 0 or self.retry_after < 0:
            raise FaultSpecError("queue_seconds and retry_after must not be negative")
        for name in ("too_large", "daily_cap"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise FaultSpecError(f"{name}={value}: must be a number of at least 0")
        object.__setattr__(self, "licence", tuple(self.licence))
        object.__setattr__(self, "rates", {k: float(v) for k, v in self.rates.items() if v > 0})

    # ---- construction

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """Parse a spec string such as ``"throttle=0.2,missing=2019-01-03,seed=7"``.

        An empty string or ``none`` gives a plan without faults.

        Raises
        ------
        FaultSpecError
            A ``ValueError`` naming the bad token and listing the valid kinds and options.
        """
        rates: dict[str, float] = {}
        missing: tuple[dt.date, ...] = ()
        options: dict[str, Any] = {}
        refusals: dict[str, Any] = {}
        text = spec.strip()
        if text.lower() in ("", "none", "off"):
            return cls()
        for raw in text.split(","):
            token = raw.strip()
            if not token:
                continue
            name, sep, value = token.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or not value:
                raise FaultSpecError(
                    f"fault spec token {token!r} is not NAME=VALUE; {_valid_tokens()}"
                )
            if name == "missing":
                missing = _parse_dates(token, value)
            elif name == "licence":
                refusals[name] = tuple(d.strip() for d in value.split("+") if d.strip())
            elif name in REFUSALS:
                try:
                    refusals[name] = int(value)
                except ValueError:
                    raise FaultSpecError(
                        f"fault spec token {token!r}: {value!r} is not a whole number; "
                        f"{_valid_tokens()}"
                    ) from None
            elif name in TRANSIENT_KINDS:
                try:
                    rates[name] = float(value)
                except ValueError:
                    raise FaultSpecError(
                        f"fault spec token {token!r}: {value!r} is not a probability in [0, 1]; "
                        f"{_valid_tokens()}"
                    ) from None
                if not 0.0 <= rates[name] <= 1.0:
                    raise FaultSpecError(
                        f"fault spec token {token!r}: a probability must lie in [0, 1]"
                    )
            elif name in OPTIONS:
                convert = int if name in ("seed", "transient_attempts") else float
                try:
                    options[name] = convert(value)
                except ValueError:
                    raise FaultSpecError(
                        f"fault spec token {token!r}: {value!r} is not a valid "
                        f"{convert.__name__} for {name}"
                    ) from None
            else:
                raise FaultSpecError(
                    f"fault spec token {token!r}: unknown name {name!r}; {_valid_tokens()}"
                )
        return cls(rates=rates, missing=missing, **refusals, **options)

    @classmethod
    def coerce(cls, value: FaultPlan | str | None) -> FaultPlan:
        """A plan from a plan, a spec string, or None (no faults)."""
        if value is None:
            return cls()
        if isinstance(value, FaultPlan):
            return value
        return cls.parse(value)

    def to_spec(self) -> str:
        """The spec string that parses back to this plan."""
        parts = [f"{k}={self.rates[k]:g}" for k in TRANSIENT_KINDS if k in self.rates]
        if self.missing:
            parts.append("missing=" + "+".join(d.isoformat() for d in self.missing))
        if self.licence:
            parts.append("licence=" + "+".join(self.licence))
        if self.too_large is not None:
            parts.append(f"too_large={self.too_large}")
        if self.daily_cap is not None:
            parts.append(f"daily_cap={self.daily_cap}")
        parts += [
            f"seed={self.seed}",
            f"queue_seconds={self.queue_seconds:g}",
            f"transient_attempts={self.transient_attempts}",
            f"retry_after={self.retry_after:g}",
        ]
        return ",".join(parts)

    def __str__(self) -> str:
        return self.to_spec()

    @property
    def active(self) -> bool:
        """Whether any fault can happen at all."""
        return bool(
            self.rates
            or self.missing
            or self.licence
            or self.too_large is not None
            or self.daily_cap is not None
        )

    # ---- deterministic draws

    def draw(self, kind: str, rhash: str, salt: str = "") -> float:
        """A uniform number in [0, 1) fixed by the seed, the request hash and the kind."""
        digest = hashlib.sha256(f"{self.seed}:{rhash}:{kind}:{salt}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def selects(self, kind: str, rhash: str) -> bool:
        """Whether the request with hash ``rhash`` is given a fault of ``kind``."""
        return self.draw(kind, rhash) < self.rates.get(kind, 0.0)

    def selected_kinds(self, dataset: str, request: Mapping[str, Any]) -> tuple[str, ...]:
        """The transient kinds this plan gives a request (``missing`` not included)."""
        rhash = request_hash(dataset, request)
        return tuple(k for k in TRANSIENT_KINDS if self.selects(k, rhash))

    def corrupt_variant(self, rhash: str) -> CorruptVariant:
        """How a corrupt fault damages this request's file."""
        return "overwrite" if self.draw("corrupt", rhash, "variant") < 0.5 else "cut"

    def server_error_site(self, rhash: str) -> Literal["submit", "poll"]:
        """Where a server error strikes this request."""
        return "submit" if self.draw("server_error", rhash, "site") < 0.5 else "poll"

    def server_error_status(self, rhash: str) -> int:
        """The 5xx code of this request's server errors."""
        i = int(self.draw("server_error", rhash, "status") * len(SERVER_ERROR_CODES))
        return SERVER_ERROR_CODES[i]

    def missing_dates(self, days: Iterable[dt.date]) -> list[dt.date]:
        """Which of ``days`` have no data."""
        gone = set(self.missing)
        return sorted({d for d in days if d in gone})


def parse_fault_list(value: str, source: str) -> list[tuple[str, str | None]]:
    """Parse ``"corrupt:cut,queue"`` (header or control request) into (kind, variant) pairs."""
    out: list[tuple[str, str | None]] = []
    for raw in value.split(","):
        token = raw.strip()
        if not token:
            continue
        kind, _, variant = token.partition(":")
        kind = kind.strip()
        if kind not in FAULT_KINDS:
            raise FaultSpecError(
                f"{source}: unknown fault kind {kind!r}; valid kinds: {', '.join(FAULT_KINDS)}"
            )
        if variant and (kind != "corrupt" or variant not in CORRUPT_VARIANTS):
            raise FaultSpecError(
                f"{source}: {token!r} has no variant {variant!r}; only corrupt "
                f"has variants ({', '.join(CORRUPT_VARIANTS)})"
            )
        out.append((kind, variant or None))
    return out


# ---------------------------------------------------------------------------------------------
# damage


def grib_messages(data: bytes) -> list[tuple[int, int]]:
    """``(offset, length)`` of each GRIB message, or ``[]`` when ``data`` is not framed GRIB."""
    out: list[tuple[int, int]] = []
    pos = 0
    n = len(data)
    while pos < n:
        start = data.find(b"GRIB", pos)
        if start < 0 or start + 16 > n:
            break
        edition = data[start + 7]
        if edition == 1:
            length = int.from_bytes(data[start + 4 : start + 7], "big")
        elif edition == 2:
            length = int.from_bytes(data[start + 8 : start + 16], "big")
        else:
            return []
        end = start + length
        if length < 16 or end > n or data[end - 4 : end] != b"7777":
            return []
        out.append((start, length))
        pos = end
    return out


def _zip_first_member_data(data: bytes) -> tuple[int, int] | None:
    """``(offset, length)`` of the first zip member's stored bytes, or None if not a zip."""
    if not data.startswith(b"PK\x03\x04") or len(data) < 30:
        return None
    compressed = int.from_bytes(data[18:22], "little")
    start = 30 + int.from_bytes(data[26:28], "little") + int.from_bytes(data[28:30], "little")
    if compressed == 0 or start + compressed > len(data):
        return None
    return start, compressed


def damage(data: bytes, variant: CorruptVariant) -> bytes:
    """The bytes of a damaged file (see ``corrupt`` in the module docstring).

    ``overwrite`` keeps the size and inverts up to 16 bytes, so that every touched byte differs
    and a structural check fails: the end marker ``7777`` (and the 4 bytes before it) of the
    middle GRIB message; the middle of the first member's data of a zip (its CRC no longer
    matches); bytes 4-20 of anything else (the HDF5 signature or the classic NetCDF header).
    ``cut`` returns a strict, non-empty prefix: up to the middle of the middle GRIB message,
    else 60 % of the file (a zip loses its central directory).
    """
    if len(data) < 2:
        return bytes(b ^ 0xFF for b in data) if variant == "overwrite" else b""
    messages = grib_messages(data)
    if variant == "overwrite":
        member = _zip_first_member_data(data)
        if messages:
            offset, length = messages[len(messages) // 2]
            lo, hi = offset + length - 8, offset + length
        elif member is not None:
            lo = member[0] + member[1] // 2
            hi = min(lo + 16, member[0] + member[1])
        else:
            lo, hi = min(4, len(data) - 1), min(20, len(data))
        buf = bytearray(data)
        buf[lo:hi] = bytes(b ^ 0xFF for b in buf[lo:hi])
        return bytes(buf)
    if messages:
        offset, length = messages[len(messages) // 2]
        return data[: offset + length // 2]
    return data[: max(1, int(len(data) * 0.6))]


def truncated_length(size: int) -> int:
    """How many bytes a truncated download sends before the connection drops."""
    return size // 2
