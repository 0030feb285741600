"""Alert sinks: where segmentation violations go (JSON lines, syslog/CEF, webhook).

Used by both the sensor (``medtap analyze --alert SPEC``) and the collector, so this module
needs only the standard library and httpx: nothing from ``agent``, no pydantic, no server
stack. ``open_sink(spec)`` turns one ``--alert`` spec into a ``Sink``; ``emit(violation)``
delivers one violation record (docs/report-format.md, "Violation"; a mapping, a pydantic
model or a dataclass); ``close()`` at the end.

Specs (docs/policy.md, "Alert sinks"):

* ``jsonl:/path/file.jsonl`` -- append one JSON object per line (``jsonl+fsync:`` also fsyncs)
* ``syslog+udp://host[:port][?facility=local0]`` -- RFC 5424 over UDP (RFC 5426)
* ``syslog+tcp://host[:port][?facility=local0]`` -- RFC 5424 over TCP, RFC 6587 octet counting
* ``http://...`` / ``https://...`` -- JSON POST with timeout and retries (backoff)

Syslog messages carry a CEF:0 event (ArcSight "Implementing ArcSight CEF", rev. 25):
header fields escape ``\\`` and ``|``; extension values escape ``\\``, ``=`` and line
breaks; every other control or line-separator character is replaced by ``?`` so no
wire-derived string can end a syslog frame, a CEF field or a JSON line early.

A sink never raises on network or disk errors: it counts the failure (``failed``) and logs
the reason -- never the record, which names hosts. Only a bad spec raises, as ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import select
import socket
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import httpx

log = logging.getLogger(__name__)

SEVERITIES: Final = ("low", "medium", "high", "critical")
# RFC 5424 6.2.1 severities: notice, warning, error, critical.
SYSLOG_SEVERITY: Final = {"low": 5, "medium": 4, "high": 3, "critical": 2}
# CEF 0-10: 0-3 low, 4-6 medium, 7-8 high, 9-10 very high.
CEF_SEVERITY: Final = {"low": 3, "medium": 5, "high": 8, "critical": 10}
FACILITIES: Final = {
    name: code
    for code, name in enumerate(  # RFC 5424 table 1
        (
            "kern",
            "user",
            "mail",
            "daemon",
            "auth",
            "syslog",
            "lpr",
            "news",
            "uucp",
            "cron",
            "authpriv",
            "ftp",
            "ntp",
            "audit",
            "alert",
            "clock",
            "local0",
            "local1",
            "local2",
            "local3",
            "local4",
            "local5",
            "local6",
            "local7",
        )
    )
}
DEFAULT_FACILITY: Final = FACILITIES["local0"]
SYSLOG_PORT: Final = 514
APP_NAME: Final = "medtap"
MSGID: Final = "violation"
MAX_HEADER_FIELD: Final = 255  # CEF header fields and syslog HOSTNAME (RFC 5424: 255)
MAX_EXT_VALUE: Final = 1023  # CEF csN / msg limits
DEFAULT_TIMEOUT: Final = 5.0
DEFAULT_RETRIES: Final = 3  # retries after the first attempt
DEFAULT_BACKOFF: Final = 0.5  # seconds before the first retry; doubles each time
RECONNECT_MIN: Final = 1.0  # TCP syslog: seconds to wait after a failed connect...
RECONNECT_MAX: Final = 60.0  # ...doubling up to this, so an outage costs no time per alert
LOG_EVERY: Final = 100  # while failing, log the 1st, 101st, ... failure, not each one
BOM: Final = "\ufeff"

# Control characters, and line/paragraph separators some readers split on (str.splitlines,
# YAML 1.1). Surrogates cannot be encoded; format characters (bidi overrides) hide text.
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class Sink(ABC):
    """One alert destination. ``sent`` and ``failed`` count violations, not attempts."""

    kind: str = "sink"

    def __init__(self, label: str) -> None:
        self.label = label  # safe to log: no secrets, no path query
        self.sent = 0
        self.failed = 0
        self._failing_since_log = 0

    def emit(self, violation: Any) -> bool:
        """Deliver one violation; True when delivered. Never raises on delivery errors."""
        try:
            record = violation_dict(violation)
        except (TypeError, ValueError) as exc:
            self._failure(f"not a violation record ({type(exc).__name__})")
            return False
        try:
            reason = self._deliver(record)
        except Exception as exc:  # a sink bug must not stop analysis; type only, no payload
            reason = f"internal error ({type(exc).__name__})"
        if reason is None:
            self.sent += 1
            if self._failing_since_log:
                log.warning("%s sink %s: delivering again", self.kind, self.label)
            self._failing_since_log = 0
            return True
        self._failure(reason)
        return False

    @abstractmethod
    def _deliver(self, record: dict[str, Any]) -> str | None:
        """Send one record; None on success, else a short reason (no payload)."""

    def close(self) -> None:  # noqa: B027 -- sinks without resources need not override
        """Release sockets/files. Idempotent."""

    def stats(self) -> dict[str, Any]:
        return {"sink": self.label, "sent": self.sent, "failed": self.failed}

    def _failure(self, reason: str) -> None:
        self.failed += 1
        if self._failing_since_log % LOG_EVERY == 0:
            log.warning(
                "%s sink %s: violation not delivered: %s (%d failed so far)",
                self.kind,
                self.label,
                reason,
                self.failed,
            )
        self._failing_since_log += 1

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} sent={self.sent} failed={self.failed}>"


# --- spec parsing -----------------------------------------------------------------------


def open_sink(
    spec: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
) -> Sink:
    """Open the sink a ``--alert`` spec names. Raises ValueError (a usage error) on a bad spec.

    ``timeout`` bounds each network operation, ``retries``/``backoff`` apply to webhooks.
    """
    spec = spec.strip()
    scheme, sep, rest = spec.partition(":")
    scheme = scheme.lower()
    if not sep or not rest:
        raise ValueError(f"alert sink {_shown(spec)!r}: expected {_FORMS}")
    if timeout <= 0 or retries < 0 or backoff < 0:
        raise ValueError("alert sink: timeout must be > 0, retries and backoff >= 0")
    if scheme in ("jsonl", "jsonl+fsync"):
        return JsonlSink(rest, fsync=scheme == "jsonl+fsync")
    if scheme in ("syslog+udp", "syslog+tcp"):
        host, port, facility = _syslog_target(spec)
        if scheme == "syslog+udp":
            return SyslogUdpSink(host, port, facility=facility)
        return SyslogTcpSink(host, port, facility=facility, timeout=timeout)
    if scheme in ("http", "https"):
        return WebhookSink(_webhook_url(spec), timeout=timeout, retries=retries, backoff=backoff)
    raise ValueError(f"alert sink {_shown(spec)!r}: unknown kind {scheme!r}; expected {_FORMS}")


_FORMS = "jsonl:PATH, syslog+udp://HOST[:PORT], syslog+tcp://HOST[:PORT] or http(s)://URL"


def _shown(spec: str) -> str:
    """A spec as it may appear in an error message: bounded, printable, and for a webhook
    without path, query or credentials (they often hold tokens)."""
    if spec[:5].lower() == "http:" or spec[:6].lower() == "https:":
        return _redacted_url(spec)
    return sanitize(spec)[:200]


def _syslog_target(spec: str) -> tuple[str, int, int]:
    parts = urlsplit(spec)
    shown = _shown(spec)
    if parts.username or parts.password or parts.fragment:
        raise ValueError(f"alert sink {shown!r}: syslog takes no user, password or #fragment")
    if parts.path not in ("", "/"):
        raise ValueError(f"alert sink {shown!r}: syslog takes no path")
    host = parts.hostname
    if not host:
        raise ValueError(f"alert sink {shown!r}: no host (expected syslog+udp://HOST[:PORT])")
    try:
        port = parts.port or SYSLOG_PORT
    except ValueError:
        raise ValueError(f"alert sink {shown!r}: port must be a number 1-65535") from None
    facility = DEFAULT_FACILITY
    for key, value in parse_qsl(parts.query, keep_blank_values=True, max_num_fields=8):
        if key != "facility":
            raise ValueError(f"alert sink {shown!r}: unknown option {key!r} (only facility=)")
        facility = _facility(value, shown)
    return host, port, facility


def _facility(value: str, shown: str) -> int:
    if value.isdigit() and int(value) < 24:
        return int(value)
    if value.lower() in FACILITIES:
        return FACILITIES[value.lower()]
    raise ValueError(f"alert sink {shown!r}: unknown facility {value!r} (0-23, kern ... local7)")


def _webhook_url(spec: str) -> str:
    parts = urlsplit(spec)
    if not parts.hostname:
        raise ValueError(f"alert sink {_shown(spec)!r}: no host in webhook URL")
    try:
        parts.port  # noqa: B018 -- urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"alert sink {_shown(spec)!r}: port must be a number 1-65535") from None
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in spec):
        raise ValueError(f"alert sink {_shown(spec)!r}: spaces or control characters in URL")
    return spec


def _redacted_url(url: str) -> str:
    """scheme://host:port/… -- webhook paths and queries often hold tokens, never log them."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":?"
    tail = "/…" if parts.path.strip("/") or parts.query else ""
    return sanitize(f"{parts.scheme}://{host}{port}{tail}")


# --- records ----------------------------------------------------------------------------


def violation_dict(violation: Any) -> dict[str, Any]:
    """A violation as a JSON-ready dict, from a mapping, a pydantic model or a dataclass."""
    if isinstance(violation, Mapping):
        data: Any = dict(violation)
    elif callable(getattr(violation, "model_dump", None)):
        data = violation.model_dump(mode="json")
    elif dataclasses.is_dataclass(violation) and not isinstance(violation, type):
        data = dataclasses.asdict(violation)
    elif callable(getattr(violation, "to_dict", None)):
        data = violation.to_dict()
    else:
        raise TypeError(f"cannot turn {type(violation).__name__} into a violation record")
    if not isinstance(data, dict) or "rule" not in data:
        raise ValueError("violation record has no 'rule'")
    # One round trip through JSON: datetimes become ISO strings, everything else plain types.
    loaded: dict[str, Any] = json.loads(json.dumps(data, default=_json_default))
    return loaded


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
    return str(value)


def iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def epoch_ms(value: Any) -> int | None:
    """An ISO string, datetime or epoch seconds as CEF milliseconds since the epoch."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value * 1000)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    return None


def event_id(record: Mapping[str, Any]) -> str:
    """A stable id for one violation record, so a receiver can drop a retried delivery."""
    client, server = record.get("client") or {}, record.get("server") or {}
    key = "|".join(
        str(x)
        for x in (
            record.get("rule"),
            client.get("ip"),
            server.get("ip"),
            record.get("service"),
            record.get("first_seen"),
            record.get("last_seen"),
            record.get("flows"),
        )
    )
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]


def sanitize(value: Any, *, keep_newlines: bool = False) -> str:
    """Text with control, format and line-separator characters replaced by '?'."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(
        "?"
        if unicodedata.category(ch) in _UNSAFE_CATEGORIES and not (keep_newlines and ch in "\r\n")
        else ch
        for ch in text
    )


def severity_of(record: Mapping[str, Any]) -> str:
    severity = str(record.get("severity", "")).lower()
    return severity if severity in SEVERITIES else "medium"


# --- CEF and RFC 5424 ------------------------------------------------------------------


def cef_header_escape(value: Any) -> str:
    """CEF header field: backslash and pipe escaped, no line breaks (replaced, as controls)."""
    text = sanitize(value)[:MAX_HEADER_FIELD]
    return text.replace("\\", "\\\\").replace("|", "\\|")


def cef_ext_escape(value: Any) -> str:
    """CEF extension value: backslash, equals and line breaks escaped; other controls replaced."""
    text = sanitize(value, keep_newlines=True)[:MAX_EXT_VALUE]
    return text.replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n").replace("\r", "\\r")


def cef_message(
    record: Mapping[str, Any], *, version: str | None = None, now: float | None = None
) -> str:
    """``CEF:0|medtap|medtap|<version>|<rule>|Segmentation violation|<0-10>|<extensions>``."""
    client: Mapping[str, Any] = record.get("client") or {}
    server: Mapping[str, Any] = record.get("server") or {}
    service = str(record.get("service") or "")
    proto, _, port = service.partition("/")
    severity = severity_of(record)
    ext: list[tuple[str, Any]] = [("rt", int((time.time() if now is None else now) * 1000))]
    for key, v6key, label, ip in (
        ("src", "c6a2", "Source IPv6", client.get("ip")),
        ("dst", "c6a3", "Destination IPv6", server.get("ip")),
    ):
        if ip and ":" in str(ip):  # CEF src/dst are IPv4 only; IPv6 has its own fields
            ext += [(v6key, ip), (v6key + "Label", label)]
        elif ip:
            ext.append((key, ip))
    if port.isdigit():
        ext.append(("dpt", int(port)))
    if proto:
        ext.append(("proto", proto.upper()))
    ext += [
        ("app", record.get("app")),
        ("cnt", record.get("flows", 0)),
        ("start", epoch_ms(record.get("first_seen"))),
        ("end", epoch_ms(record.get("last_seen"))),
        ("act", "alert"),  # passive: medtap reports, it blocks nothing
        ("cat", "segmentation-violation"),
        ("msg", record.get("reason")),
        ("cs1", record.get("rule")),
        ("cs1Label", "rule"),
        ("cs2", f"{client.get('zone') or '?'}->{server.get('zone') or '?'}"),
        ("cs2Label", "zones"),
        ("cs3", client.get("device_type")),
        ("cs3Label", "srcDeviceType"),
        ("cs4", server.get("device_type")),
        ("cs4Label", "dstDeviceType"),
        ("cs5", client.get("vendor")),
        ("cs5Label", "srcVendor"),
        ("cs6", server.get("vendor")),
        ("cs6Label", "dstVendor"),
        ("cn1", record.get("packets")),
        ("cn1Label", "packets"),
        ("cn2", record.get("bytes")),
        ("cn2Label", "bytes"),
        ("cn3", client.get("vlan")),
        ("cn3Label", "srcVlan"),
    ]
    parts: list[str] = []
    for key, value in ext:
        if key.endswith("Label") and not parts[-1].startswith(key[: -len("Label")] + "="):
            continue  # a label only next to its value
        if value is None or value == "":
            continue
        parts.append(f"{key}={cef_ext_escape(value)}")
    header = [
        "CEF:0",
        "medtap",
        "medtap",
        cef_header_escape(version or medtap_version()),
        cef_header_escape(record.get("rule") or "default"),
        "Segmentation violation",
        str(CEF_SEVERITY[severity]),
    ]
    return "|".join(header) + "|" + " ".join(parts)


def syslog_message(
    record: Mapping[str, Any],
    *,
    facility: int = DEFAULT_FACILITY,
    hostname: str | None = None,
    now: float | None = None,
    version: str | None = None,
) -> bytes:
    """One RFC 5424 message: ``<PRI>1 TIMESTAMP HOST medtap PID violation - CEF:0|...``."""
    stamp = time.time() if now is None else now
    pri = facility * 8 + SYSLOG_SEVERITY[severity_of(record)]
    timestamp = datetime.fromtimestamp(stamp, UTC).isoformat(timespec="microseconds")
    header = " ".join(
        (
            f"<{pri}>1",
            timestamp.replace("+00:00", "Z"),
            _header_token(hostname if hostname is not None else socket.gethostname(), 255),
            APP_NAME,
            _header_token(str(os.getpid()), 128),
            MSGID,
            "-",  # no STRUCTURED-DATA: everything is in the CEF message
        )
    )
    msg = cef_message(record, version=version, now=stamp)
    # RFC 5424 6.4: UTF-8 text starts with a BOM; plain ASCII needs none.
    body = msg if msg.isascii() else BOM + msg
    return f"{header} {body}".encode()


def _header_token(value: str, limit: int) -> str:
    """RFC 5424 header fields are PRINTUSASCII (33-126), or '-' when empty."""
    token = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return token or "-"


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 3.4.1 octet counting: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode() + b" " + message


_VERSION: str | None = None


def medtap_version() -> str:
    global _VERSION
    if _VERSION is None:
        try:
            _VERSION = metadata.version("medtap")
        except metadata.PackageNotFoundError:
            _VERSION = "0+unknown"
    return _VERSION


# --- sinks ------------------------------------------------------------------------------


class JsonlSink(Sink):
    """Append one JSON object per line. ASCII-only JSON (``\\uXXXX``), so no character in a
    value -- not even U+2028 -- can split a line; one ``write`` per line, so several writers
    appending to the same file do not interleave records."""

    kind = "jsonl"

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        if not path or "\x00" in path:
            raise ValueError("alert sink jsonl: needs a file path (jsonl:/path/file.jsonl)")
        super().__init__(f"jsonl:{sanitize(path)[:200]}")
        self.path = path
        self.fsync = fsync
        try:
            self._fd: int | None = os.open(
                path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o640
            )
        except OSError as exc:
            raise ValueError(f"alert sink {self.label}: cannot open: {exc.strerror}") from None

    def _deliver(self, record: dict[str, Any]) -> str | None:
        if self._fd is None:
            return "closed"
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n"
        try:
            data = line.encode("ascii")
            written = os.write(self._fd, data)
            if written != len(data):
                return f"short write ({written} of {len(data)} bytes)"
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            return f"write error: {exc.strerror}"
        return None

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError as exc:
                log.warning("jsonl sink %s: close failed: %s", self.label, exc.strerror)


class _SyslogSink(Sink):
    def __init__(self, kind: str, host: str, port: int, *, facility: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        super().__init__(f"syslog+{kind}://{sanitize(shown)}:{port}")
        self.host, self.port, self.facility = host, port, facility
        self.hostname = socket.gethostname()

    def _message(self, record: Mapping[str, Any]) -> bytes:
        return syslog_message(record, facility=self.facility, hostname=self.hostname)

    def _resolve(self, socktype: int) -> tuple[int, Any] | str:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socktype)
        except OSError as exc:
            return f"cannot resolve host: {exc.strerror or type(exc).__name__}"
        family, _, _, _, address = infos[0]
        return family, address


class SyslogUdpSink(_SyslogSink):
    """RFC 5426: one message per datagram. Bounded fields keep a message far below 64 kB."""

    kind = "syslog+udp"

    def __init__(self, host: str, port: int, *, facility: int = DEFAULT_FACILITY) -> None:
        super().__init__("udp", host, port, facility=facility)
        self._sock: socket.socket | None = None
        self._address: Any = None

    def _deliver(self, record: dict[str, Any]) -> str | None:
        if self._sock is None:
            target = self._resolve(socket.SOCK_DGRAM)
            if isinstance(target, str):
                return target
            family, self._address = target
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.sendto(self._message(record), self._address)
        except OSError as exc:
            return f"send failed: {exc.strerror or type(exc).__name__}"
        return None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class SyslogTcpSink(_SyslogSink):
    """RFC 6587 octet-counted frames on one connection; reconnects once per message on a
    broken connection, and after a failed connect waits (doubling) before the next try, so
    an unreachable SIEM costs one timeout, not one per alert."""

    kind = "syslog+tcp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        facility: int = DEFAULT_FACILITY,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__("tcp", host, port, facility=facility)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._retry_at = 0.0
        self._retry_wait = RECONNECT_MIN

    def _connect(self) -> str | None:
        now = time.monotonic()
        if now < self._retry_at:
            return "not connected (waiting before reconnecting)"
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            self._retry_at = now + self._retry_wait
            self._retry_wait = min(self._retry_wait * 2, RECONNECT_MAX)
            return f"connect failed: {exc.strerror or type(exc).__name__}"
        self._retry_wait = RECONNECT_MIN
        return None

    def _deliver(self, record: dict[str, Any]) -> str | None:
        frame = octet_counted(self._message(record))
        reason: str | None = None
        if self._sock is not None and not self._alive(self._sock):
            self._drop()  # the peer closed it: a send would "succeed" into the void once
        for _ in range(2):  # a reset shows only on send: reconnect and retry once
            if self._sock is None:
                reason = self._connect()
                if reason is not None:
                    return reason
            assert self._sock is not None
            try:
                self._sock.sendall(frame)
                return None
            except OSError as exc:
                reason = f"send failed: {exc.strerror or type(exc).__name__}"
                self._drop()
        return reason

    @staticmethod
    def _alive(sock: socket.socket) -> bool:
        """False when the peer has closed: readable with nothing to read (a syslog receiver
        never sends, so readable means EOF or an error)."""
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return True
            return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except (OSError, ValueError):
            return False

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def close(self) -> None:
        self._drop()


class WebhookSink(Sink):
    """POST each violation as JSON. Retries connect errors, timeouts while connecting, 5xx,
    408 and 429 with exponential backoff; other 4xx are final. A read timeout is final too:
    the receiver may have acted on it, and the ``Idempotency-Key`` lets it drop a repeat."""

    kind = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        super().__init__(_redacted_url(url))
        self.url, self.retries, self.backoff = url, retries, backoff
        self.attempts = 0
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": f"medtap/{medtap_version()}"},
        )

    def _deliver(self, record: dict[str, Any]) -> str | None:
        body = json.dumps(record, ensure_ascii=True).encode("ascii")
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": event_id(record),
            "X-Medtap-Event": "violation",
        }
        reason = "not sent"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            self.attempts += 1
            try:
                response = self._client.post(self.url, content=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                reason = f"{type(exc).__name__} after {attempt + 1} attempts"
                continue
            except httpx.HTTPError as exc:  # read/write timeouts, protocol errors: final
                return f"{type(exc).__name__}"
            status = response.status_code
            if 200 <= status < 300:
                return None
            reason = f"HTTP {status} after {attempt + 1} attempts"
            if status < 500 and status not in (408, 429):
                return reason
        return reason

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "attempts": self.attempts}

    def close(self) -> None:
        self._client.close()
