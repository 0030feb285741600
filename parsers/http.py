"""HTTP/1.x banners (RFC 9112 message syntax, RFC 9110 semantics), on any port.

Detection by payload: a request line ``METHOD SP target ... HTTP/1.x`` or a status line
``HTTP/1.x NNN``. One ``HttpParser`` per TCP flow follows the message framing of
RFC 9112 section 6 in each direction, so it can find the start of later messages on a
keep-alive connection without ever buffering a body:

* a header block is read up to ``MAX_HEADER_BLOCK`` bytes (a longer one is read that far
  and the direction then stops);
* bodies are skipped unbuffered (``Frame(keep=False)``): ``Content-Length``, chunked
  (chunk-size lines are parsed, chunk data skipped; trailers skipped), none for requests
  without either, none for responses to HEAD and for 1xx/204/304, until the end of the
  connection otherwise; ``CONNECT`` and ``101 Switching Protocols`` end parsing (a tunnel
  or another protocol follows);
* after ``MAX_MESSAGES`` messages in a direction, or anything that does not frame as
  HTTP after the first message, the direction is skipped to its end.

Read from the request line: **only the method** (and whether the target starts with
``/``, which tells origin-form from proxy or CONNECT forms); the request target's path and
query are never decoded or kept (they can carry patient ids). Read from the headers,
compared by name only: ``Host``, ``User-Agent`` (requests), ``Server``, ``X-Powered-By``
(responses), and ``Content-Length``/``Transfer-Encoding`` for framing. No other header
value is decoded (no Cookie, Authorization, Referer, Location...), and no body byte is
ever looked at.

Observations (each once per flow): ``http.user_agent`` about the client;
``http.server``, ``http.x_powered_by``, ``http.host`` about the server (with its port);
``http.os`` about the sender when a row of ``parsers/data/http_user_agents.csv`` names
the operating system; claims ``http.device_type``/``http.vendor``/``http.model`` from the
same rows (printer and phone web servers known from nmap-service-probes) and
``http.hostname`` from an origin-form request's Host (a name, not an address).
"""

from __future__ import annotations

import ipaddress
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache

from parsers.base import (
    DIRECTIONS,
    TO_SERVER,
    Direction,
    FlowKey,
    Frame,
    Malformed,
    Observation,
    StreamParser,
)
from parsers.knowledge import data_rows
from parsers.registry import ParserSpec, Probe
from parsers.wire import CONTROL

MAX_HEADER_BLOCK = 8 * 1024  # bytes of one message's start line + headers read at most
MAX_LINE = 1024  # a chunk-size line longer than this is not HTTP framing
MAX_MESSAGES = 16  # messages framed per direction; then the direction is skipped
MAX_VALUE = 256  # characters kept of a header value
MAX_FACTS = 256  # distinct facts remembered per flow for de-duplication
MAX_PENDING = 32  # request methods remembered for matching responses (pipelining)
PORT_HINTS = frozenset({80, 8080, 8000, 8008, 8081})
PROBE_LONG_TARGET = 96
PROBE_WINDOW = 512  # bytes of a first message judged by the probe (registry.MAX_PROBE_BYTES)
TO_END = 1 << 62  # skip "to the end of the connection"

METHODS = frozenset(
    b"GET POST HEAD PUT DELETE OPTIONS PATCH CONNECT TRACE PROPFIND PROPPATCH MKCOL COPY "
    b"MOVE LOCK UNLOCK REPORT SEARCH".split()
)
_VERSIONS = (b"HTTP/1.0", b"HTTP/1.1")
_TARGET_START = frozenset(b"/*abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789[")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_TARGET_BYTES = bytes(range(0x20, 0x7F))  # what a request target may hold: printable or space
_STATUS = re.compile(rb"HTTP/1\.[01] [1-5][0-9][0-9](?: |\r?$)")
_STATUS_PREFIX = re.compile(rb"H(T(T(P(/(1(\.([01]( [1-5]?[0-9]{0,2})?)?)?)?)?)?)?)?\Z")
_CONTROL = CONTROL  # C1 too: header bytes are decoded as latin-1

# Confidences (0..1), and why.
CONF_HOSTNAME = 0.3  # Host names the server as the client addressed it; may be a vhost alias
READ_HEADERS = {b"host", b"user-agent", b"server", b"x-powered-by"}
FRAMING_HEADERS = {b"content-length", b"transfer-encoding"}


def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH on a request line with a known method or on an HTTP/1.x status line."""
    if len(data) < 12 and _STATUS_PREFIX.match(data):
        return Probe.NEED_MORE
    if data.startswith(b"HTTP/"):
        return Probe.MATCH if _STATUS.match(data[:13]) else Probe.NO
    space = data.find(b" ", 0, 12)
    if space < 0:
        if len(data) >= 12 or not data.isalpha():
            return Probe.NO
        return Probe.NEED_MORE if any(m.startswith(data) for m in METHODS) else Probe.NO
    if data[:space] not in METHODS:
        return Probe.NO
    if len(data) == space + 1:
        return Probe.NEED_MORE
    if data[space + 1] not in _TARGET_START:
        return Probe.NO
    end = data.find(b"\r\n")
    line = data if end < 0 else data[:end]
    # Judged the same whole or cut short (a NO on a prefix stays a NO): fuzzing found a
    # target with control bytes that was NO in a short first segment but MATCH in one piece.
    target = line[space + 1 :].rstrip(b"\r")
    if target.translate(None, _TARGET_BYTES):  # a byte outside 0x20-0x7E (C speed, no loop)
        return Probe.NO
    if end >= 0:
        return Probe.MATCH if line.endswith(_VERSIONS) and b" " in line[space + 1 :] else Probe.NO
    return Probe.MATCH if len(data) >= PROBE_LONG_TARGET else Probe.NEED_MORE


# ---- knowledge: User-Agent / Server strings ---------------------------------------------
@dataclass(frozen=True, slots=True)
class BannerRow:
    header: bytes  # lower-case header name
    pattern: re.Pattern[str]
    os: str
    device_type: str
    vendor: str
    model: str  # fixed model, or "" to take the pattern's (?P<model>...) group
    confidence: float


@cache
def banner_rows() -> tuple[BannerRow, ...]:
    rows = []
    for r in data_rows("http_user_agents.csv"):
        rows.append(
            BannerRow(
                header=r["header"].strip().lower().encode(),
                pattern=re.compile(r["pattern"], re.IGNORECASE),
                os=r["os"],
                device_type=r["device_type"],
                vendor=r["vendor"],
                model=r["model"],
                confidence=float(r["confidence"]),
            )
        )
    return tuple(rows)


def banner_facts(header: bytes, value: str) -> list[tuple[str, str, float]]:
    """(kind suffix, value, confidence) that the knowledge table derives from one header."""
    return list(_banner_facts(header, value))


@lru_cache(maxsize=4096)  # the same few User-Agent/Server strings, flow after flow
def _banner_facts(header: bytes, value: str) -> tuple[tuple[str, str, float], ...]:
    out: list[tuple[str, str, float]] = []
    have_os = False
    for row in banner_rows():
        if row.header != header:
            continue
        found = row.pattern.search(value)
        if found is None:
            continue
        if row.os and not have_os:
            out.append(("os", row.os, row.confidence))
            have_os = True
        if row.device_type:
            out.append(("device_type", row.device_type, row.confidence))
        if row.vendor:
            out.append(("vendor", row.vendor, row.confidence))
        model = row.model or (found.groupdict().get("model") or "")
        if model:
            out.append(("model", model.strip(), row.confidence))
        if row.device_type or row.vendor:
            break  # the first product row wins; OS rows may be followed by a product row
    return tuple(out)


def clean(raw: bytes) -> str:
    """A header value as evidence text: latin-1, control characters removed, bounded."""
    text = raw[: MAX_VALUE * 2].decode("latin-1")
    return " ".join(_CONTROL.sub(" ", text).split())[:MAX_VALUE]


def host_name(value: str) -> str | None:
    """The DNS name in a Host header value, or None for an address, localhost or junk."""
    host = value.strip().lower()
    if host.startswith("["):
        return None  # IPv6 literal
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    host = host.rstrip(".")
    if not host or host == "localhost" or len(host) > 253:
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host.split(".")
    if not all(re.fullmatch(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?", lab) for lab in labels):
        return None
    return host


# ---- the stream parser ------------------------------------------------------------------
_HEADERS, _CHUNK_LINE, _CHUNK_TRAILER, _SKIP = range(4)


@dataclass(slots=True)
class _Side:
    state: int = _HEADERS  # what comes after ``body`` bytes have been skipped
    body: int = 0  # bytes of body (or chunk data + CRLF) to skip unbuffered next
    messages: int = 0
    header_frame: bool = True  # the last keep=True frame was a header block (not a chunk line)


@dataclass(frozen=True, slots=True)
class _Head:
    first: bytes
    fields: dict[bytes, list[bytes]]
    truncated: bool


class HttpParser(StreamParser):
    """One TCP flow of HTTP/1.x (see module docstring)."""

    name = "http"

    def __init__(self, flow: FlowKey) -> None:
        super().__init__(flow)
        self._side = {d: _Side() for d in DIRECTIONS}
        self._methods: deque[bytes] = deque(maxlen=MAX_PENDING)
        self._facts: set[tuple[str, str, str]] = set()
        self.stats: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    # ---- framing ------------------------------------------------------------------------
    def _frame(self, direction: Direction, buf: bytearray) -> Frame | None:
        side = self._side[direction]
        if side.body:
            size, side.body = side.body, 0
            return Frame(size, keep=False)
        if side.state == _SKIP:
            return Frame(TO_END, keep=False)
        if side.state == _CHUNK_LINE:
            return self._chunk_line(side, buf)
        if side.state == _CHUNK_TRAILER:
            return self._trailer(side, buf)
        if not buf:
            return None
        if side.messages >= MAX_MESSAGES:
            self._count("messages_capped")
            return self._stop(side)
        if not side.messages:  # reject a first message that cannot be HTTP before buffering
            self._check_start(direction, bytes(buf[:PROBE_WINDOW]))
        # The block ends at its first empty line, CRLF or bare LF (RFC 9112 2.2): "\n\r\n"
        # also finds "\r\n\r\n". The first one, not the first CRLF one: fuzzing found a block
        # whose end depended on whether a later CRLFCRLF had arrived yet.
        crlf = buf.find(b"\n\r\n", 0, MAX_HEADER_BLOCK)
        lf = buf.find(b"\n\n", 0, crlf if crlf >= 0 else MAX_HEADER_BLOCK)
        if lf >= 0:
            size = lf + 2
        elif crlf >= 0:
            size = crlf + 3
        else:
            if len(buf) < MAX_HEADER_BLOCK:
                return None
            size = MAX_HEADER_BLOCK  # read what fits, then stop this direction
        side.header_frame = True
        return Frame(size)

    def _check_start(self, direction: Direction, head: bytes) -> None:
        if probe(direction, head) is Probe.NO:
            raise Malformed("not an HTTP/1.x message start")

    @property
    def finished(self) -> bool:
        """Both directions skip to their end (message budget spent, or not HTTP any more)."""
        return all(side.state == _SKIP for side in self._side.values())

    def _stop(self, side: _Side) -> Frame:
        side.state = _SKIP
        return Frame(TO_END, keep=False)

    def _chunk_line(self, side: _Side, buf: bytearray) -> Frame | None:
        end = buf.find(b"\n", 0, MAX_LINE)
        if end < 0:
            if len(buf) >= MAX_LINE:
                self._count("bad_chunk_line")
                return self._stop(side)
            return None
        digits = bytes(buf[:end]).split(b";", 1)[0].strip()
        if not digits or len(digits) > 15 or not all(c in _HEX for c in digits):
            self._count("bad_chunk_line")
            return self._stop(side)
        size = int(digits, 16)
        side.header_frame = False
        if size == 0:
            side.state = _CHUNK_TRAILER
        else:
            side.body = size + 2  # chunk data and its CRLF
        return Frame(end + 1)

    def _trailer(self, side: _Side, buf: bytearray) -> Frame | None:
        side.header_frame = False
        for ending in (b"\r\n", b"\n"):
            if buf.startswith(ending):
                side.state = _HEADERS
                return Frame(len(ending))
        if len(buf) < 2:
            return None
        end = buf.find(b"\r\n\r\n", 0, MAX_HEADER_BLOCK)
        if end < 0:
            return self._stop(side) if len(buf) >= MAX_HEADER_BLOCK else None
        side.state = _HEADERS
        return Frame(end + 4)

    # ---- decoding -----------------------------------------------------------------------
    def _decode(self, direction: Direction, pdu: bytes, ts: float) -> Iterable[Observation]:
        side = self._side[direction]
        if not side.header_frame:
            return ()  # a chunk-size line or trailers: framing only
        head = self._split(pdu, first=side.messages == 0)
        side.messages += 1
        if head is None:  # a later message that does not parse: stop quietly
            self._count("bad_message")
            side.state = _SKIP
            return ()
        out = list(self._facts_of(direction, head, ts))
        if head.truncated:
            self._count("header_block_truncated")
            side.state = _SKIP
            return out
        self._after_headers(direction, side, head)
        return out

    def _split(self, pdu: bytes, first: bool) -> _Head | None:
        lines = pdu.split(b"\n")
        start = lines[0].rstrip(b"\r")
        if not (start.startswith(b"HTTP/1.") or start.split(b" ", 1)[0] in METHODS):
            if first:
                raise Malformed("not an HTTP/1.x start line")
            return None
        truncated = not pdu.endswith(b"\n\n") and not pdu.endswith(b"\n\r\n")
        fields: dict[bytes, list[bytes]] = {}
        wanted = READ_HEADERS | FRAMING_HEADERS
        for raw in lines[1 : -1 if truncated else None]:
            line = raw.rstrip(b"\r")
            if not line or line[0] in b" \t":
                continue  # end of block, or obsolete line folding (never of a wanted field)
            colon = line.find(b":")
            if colon <= 0:
                if first:
                    raise Malformed("header line without a colon")
                return None
            name = line[:colon].strip().lower()
            if name in wanted:
                fields.setdefault(name, []).append(line[colon + 1 :].strip())
        return _Head(start, fields, truncated)

    def _facts_of(self, direction: Direction, head: _Head, ts: float) -> Iterator[Observation]:
        client, server = self.flow.client, self.flow.server
        sender = client if direction is TO_SERVER else server
        if head.first.startswith(b"HTTP/"):
            for name, kind in ((b"server", "server"), (b"x-powered-by", "x_powered_by")):
                for raw in head.fields.get(name, [])[:1]:
                    value = clean(raw)
                    yield from self._obs(kind, sender, value, ts, 1.0)
                    yield from self._knowledge(name, sender, value, ts)
            return
        receiver = server if sender == client else client
        method, _, rest = head.first.partition(b" ")
        for raw in head.fields.get(b"user-agent", [])[:1]:
            value = clean(raw)
            yield from self._obs("user_agent", sender, value, ts, 1.0)
            yield from self._knowledge(b"user-agent", sender, value, ts)
        for raw in head.fields.get(b"host", [])[:1]:
            value = clean(raw)
            yield from self._obs("host", receiver, value, ts, 1.0)
            hostname = host_name(value)
            if hostname and method != b"CONNECT" and rest.startswith(b"/"):
                yield from self._obs("hostname", receiver, hostname, ts, CONF_HOSTNAME)

    def _knowledge(self, header: bytes, host: str, value: str, ts: float) -> Iterator[Observation]:
        for suffix, fact, confidence in banner_facts(header, value):
            yield from self._obs(suffix, host, fact, ts, confidence)

    def _obs(
        self, suffix: str, host: str, value: str, ts: float, confidence: float
    ) -> Iterator[Observation]:
        if not value:
            return
        key = (suffix, host, value)
        if key in self._facts:
            return
        if len(self._facts) >= MAX_FACTS:
            self._count("facts_dropped")
            return
        self._facts.add(key)
        port = self.flow.server_port if host == self.flow.server else None
        yield Observation(f"http.{suffix}", host, value, ts, port, None, confidence)

    # ---- what follows a header block ----------------------------------------------------
    def _after_headers(self, direction: Direction, side: _Side, head: _Head) -> None:
        if head.first.startswith(b"HTTP/"):
            status = head.first[9:12]
            code = int(status) if status.isdigit() else 200
            if code < 200 and code != 101:
                return  # interim response; the final one follows
            method = self._methods.popleft() if self._methods else b"GET"
            if code == 101 or (method == b"CONNECT" and 200 <= code < 300):
                side.state = _SKIP  # another protocol or a tunnel follows
                self._side[Direction.TO_SERVER].state = _SKIP
            elif code in (204, 304) or method == b"HEAD":
                side.state = _HEADERS
            else:
                self._body(side, head.fields, until_close=True)
            return
        method = head.first.split(b" ", 1)[0]
        self._methods.append(method)
        if method == b"CONNECT":
            side.state = _SKIP
            return
        self._body(side, head.fields, until_close=False)

    def _body(self, side: _Side, fields: dict[bytes, list[bytes]], until_close: bool) -> None:
        """RFC 9112 6.3: the message body length, as the next state of ``side``."""
        codings = b",".join(fields.get(b"transfer-encoding", [])).strip().lower()
        if codings:
            side.state = _CHUNK_LINE if codings.endswith(b"chunked") else _SKIP
            return
        lengths = {v.strip() for raw in fields.get(b"content-length", []) for v in raw.split(b",")}
        if len(lengths) > 1 or any(not v.isdigit() or len(v) > 18 for v in lengths):
            self._count("bad_content_length")
            side.state = _SKIP
            return
        side.state = _HEADERS
        if lengths:
            side.body = int(next(iter(lengths)))
        elif until_close:
            side.state = _SKIP


def spec() -> ParserSpec:
    return ParserSpec(name="http", transport="tcp", probe=probe, factory=HttpParser,
                      port_hints=PORT_HINTS)


SPEC = spec()

__all__ = ["SPEC", "HttpParser", "banner_facts", "banner_rows", "clean", "host_name", "probe"]
