"""HTTPS client for ``POST /api/v1/ingest``: one encoded batch in, one outcome out.

docs/uplink.md, "Transport" and "Failure modes". Sends the spooled gzip body as is
(``Content-Encoding: gzip``) with ``Authorization: Bearer``. TLS is verified against the
system store, or only against ``--ca-file`` when given. ``http://`` is refused unless the
host is loopback or ``insecure_http`` is set. Logs status codes, batch ids and error
classes; never a request or response body (a 422 echoes the input, so only the error
locations and types of its ``detail`` are kept).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import ssl
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType

import httpx
from pydantic import ValidationError

from collector.schema import IngestResult

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
RETRY_STATUSES = frozenset({408, 425, 429})  # plus every 5xx
AUTH_STATUSES = frozenset({401, 403})
MAX_RETRY_AFTER = 3600.0  # a server's Retry-After is believed up to an hour


class UplinkError(Exception):
    """The uplink cannot continue; batches stay spooled."""


class UplinkConfigError(UplinkError):
    """Bad URL, plain HTTP refused, unreadable CA file, a redirect."""


class UplinkAuthError(UplinkError):
    """401/403: the token is wrong or not issued to this sensor name."""


class UplinkTLSError(UplinkError):
    """The collector's certificate is not trusted, or TLS cannot be spoken with it."""


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    RETRY = "retry"  # transient: keep it, back off, send it again
    PERMANENT = "permanent"  # this batch will never be accepted: dead-letter it


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    reason: str = ""
    retry_after: float | None = None


@dataclass(frozen=True)
class UplinkConfig:
    url: str  # collector base URL (…/api/v1/ingest is added) or the full ingest URL
    token: str
    ca_file: Path | None = None
    insecure_http: bool = False
    timeout: float = 30.0


def is_loopback(host: str) -> bool:
    """Only literal loopback addresses and ``localhost`` count (no DNS lookup)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ingest_url(url: str, *, insecure_http: bool = False) -> str:
    """The ingest endpoint for a collector URL, or ``UplinkConfigError`` explaining why not."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UplinkConfigError(f"bad collector URL {url!r}: {exc}") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise UplinkConfigError(f"collector URL must be https://HOST[:PORT], got {url!r}")
    if parsed.userinfo:
        raise UplinkConfigError("collector URL must not carry credentials; use the token")
    if parsed.scheme == "http" and not is_loopback(parsed.host) and not insecure_http:
        raise UplinkConfigError(
            f"refusing plain http:// to {parsed.host}: the uplink must be encrypted; "
            "use https:// (with --ca-file for a private CA) or, knowingly, --insecure-http"
        )
    path = parsed.path.rstrip("/")
    if not path.endswith(INGEST_PATH):
        path += INGEST_PATH
    return str(parsed.copy_with(path=path, query=None, fragment=None))


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """System trust store, or only the given CA bundle (a private collector CA)."""
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise UplinkConfigError(f"cannot load CA file {ca_file}: {exc}") from None


class UplinkClient:
    """One collector connection (keep-alive). Not thread-safe: one drainer uses it."""

    def __init__(self, config: UplinkConfig) -> None:
        token = config.token.strip()
        if not token or any(c.isspace() for c in token):
            raise UplinkConfigError("the sensor token is empty or contains whitespace")
        self.url = ingest_url(config.url, insecure_http=config.insecure_http)
        self.host = httpx.URL(self.url).host
        self.plain_http = self.url.startswith("http://")
        self._http = httpx.Client(
            verify=tls_context(config.ca_file),
            timeout=httpx.Timeout(config.timeout, connect=min(10.0, config.timeout)),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "User-Agent": "medtap-sensor",
            },
            follow_redirects=False,  # a redirect could move the token to another host
            trust_env=False,  # no proxy or CA settings from the environment: explicit only
        )

    def send(self, batch_id: str, body: bytes) -> SendResult:
        """POST one gzip'd batch. Raises ``UplinkAuthError`` / ``UplinkTLSError`` /
        ``UplinkConfigError`` when no batch can get through; else an outcome for this one."""
        try:
            response = self._http.post(self.url, content=body)
        except httpx.ConnectError as exc:
            _raise_for_tls(exc, self.host)
            return SendResult(Outcome.RETRY, f"cannot connect: {_short(exc)}")
        except httpx.TimeoutException as exc:
            return SendResult(Outcome.RETRY, f"timeout ({type(exc).__name__})")
        except httpx.TransportError as exc:
            _raise_for_tls(exc, self.host)
            return SendResult(Outcome.RETRY, f"transport error: {_short(exc)}")
        status = response.status_code
        log.debug("batch %s: HTTP %d (%d bytes sent)", batch_id, status, len(body))
        if 200 <= status < 300:
            return _accepted(batch_id, response)
        if status in AUTH_STATUSES:
            raise UplinkAuthError(
                f"collector refused the sensor token (HTTP {status}): check --token or "
                "MEDTAP_TOKEN and that --sensor-name is the name the token was issued to"
            )
        if 300 <= status < 400:
            raise UplinkConfigError(
                f"collector answered HTTP {status} (redirect to "
                f"{response.headers.get('location', '?')}); give that URL to --upload"
            )
        if status in RETRY_STATUSES or status >= 500:
            return SendResult(Outcome.RETRY, f"HTTP {status}", _retry_after(response))
        return SendResult(Outcome.PERMANENT, f"HTTP {status}{_detail_summary(response)}")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> UplinkClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _accepted(batch_id: str, response: httpx.Response) -> SendResult:
    try:
        result = IngestResult.model_validate_json(response.content)
    except ValidationError:
        # 2xx means the collector took it; an odd answer body does not make it unsent
        log.warning(
            "batch %s: HTTP %d with an unexpected answer body", batch_id, response.status_code
        )
        return SendResult(Outcome.STORED, "accepted")
    if result.batch_id != batch_id:
        log.warning("batch %s: collector answered for batch id %s", batch_id, result.batch_id)
    if result.status == "duplicate":
        return SendResult(Outcome.DUPLICATE, "duplicate")
    return SendResult(Outcome.STORED, "stored")


def _raise_for_tls(exc: BaseException, host: str | None) -> None:
    """Certificate problems do not fix themselves: stop with advice instead of retrying.
    A handshake cut short (server restarting) stays a transient error."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            raise UplinkTLSError(
                f"TLS certificate of collector {host} not trusted "
                f"({cause.verify_message or cause.reason}); give its CA with --ca-file"
            ) from None
        if isinstance(cause, ssl.SSLError) and not isinstance(
            cause, ssl.SSLEOFError | ssl.SSLZeroReturnError
        ):
            raise UplinkTLSError(
                f"TLS with collector {host} failed ({cause.reason or cause}); "
                "is it serving https on that port?"
            ) from None
        cause = cause.__cause__ or cause.__context__


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None  # the HTTP-date form is rare from an API; plain backoff then
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _detail_summary(response: httpx.Response) -> str:
    """For a FastAPI 422: where and which kind of error, never the echoed input."""
    try:
        detail = json.loads(response.content).get("detail")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(detail, list):
        return ""
    where = []
    for err in detail[:5]:
        if isinstance(err, dict):
            loc = ".".join(str(p) for p in err.get("loc") or ())
            where.append(f"{loc}:{err.get('type', '?')}")
    more = f" (+{len(detail) - 5} more)" if len(detail) > 5 else ""
    return f" ({', '.join(where)}{more})" if where else ""


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:160]
