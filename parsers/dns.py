"""DNS over UDP (RFC 1035, RFC 3596) and LLMNR (RFC 4795): names a client resolves, and the
names answers bind to addresses. Also the DNS message decoder that ``parsers.mdns`` and
``parsers.netbios`` build on.

Message format: RFC 1035 §4.1 (header, question, resource records), §4.1.4 (compression:
a pointer must point to a *prior* occurrence of a name). The decoder walks names with a
strictly decreasing pointer floor, so a pointer loop, a forward pointer or a pointer into
the middle of the current name is ``Malformed``; names are bounded to ``MAX_NAME_BYTES``
wire bytes and ``MAX_POINTER_HOPS`` jumps, messages to ``MAX_RECORDS`` records, and every
read is bounds-checked. Only A, AAAA, CNAME and PTR answers are interpreted here.

Observations (``dns.`` kinds; ``llmnr.`` for flows on UDP 5355):

- ``dns.query``: a name the *querier* asked for (from a query, or from the question echoed
  in a response), at most ``MAX_QUERY_NAMES_PER_FLOW`` per flow; reverse-lookup names
  (``in-addr.arpa``/``ip6.arpa``) are not kept. Plain evidence, never a claim.
- ``dns.os_hint``: the queried name is a well-known OS connectivity probe
  (``parsers/data/dns_query_hints.csv``). Plain evidence.
- ``dns.hostname`` (claim, 0.3): the owner name of an A/AAAA answer, on the answered address.
  A zone's answer is not the device's own word and may be stale, hence low.
- ``dns.name`` (plain, 0.3): an alias (CNAME owner) whose chain ends at that address.
- ``dns.hostname`` (claim, 0.5): the target of a PTR answer, on the address the reverse
  name encodes: the zone's canonical name for the address.
- ``llmnr.hostname`` (claim, 0.7): an LLMNR answer from the owner itself (answered address
  = responder), 0.4 when the answered address is another one.

Answers are kept only for addresses that are not globally routable (RFC 1918, shared,
link-local, ULA, documentation ranges): a hospital sensor sees answers for thousands of
Internet hosts that are not devices of the hospital (``ANSWER_GLOBAL_ADDRESSES``).

Never read: OPT/EDNS options, TXT/MX/SRV/SOA contents of unicast DNS, the authority and
additional sections of answers. DNS carries no patient data, but names are cleaned of
control characters and truncated (``MAX_VALUE_CHARS``).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from parsers.base import DatagramParser, Direction, FlowKey, Malformed, Observation, slot_init
from parsers.factlog import FactLog, sender_of
from parsers.knowledge import data_rows
from parsers.registry import ParserSpec, Probe

# --- limits --------------------------------------------------------------------------
MAX_NAME_BYTES = 255  # RFC 1035 §2.3.4: a name on the wire, length octets included
MAX_POINTER_HOPS = 64  # compression jumps followed in one name (each must go backwards)
MAX_RECORDS = 400  # questions + records in one message; more is not a real datagram
MAX_VALUE_CHARS = 200  # longest text value emitted
MAX_QUERY_NAMES_PER_FLOW = 32  # ``dns.query`` names kept per flow
ANSWER_GLOBAL_ADDRESSES = False  # name globally routable answered addresses too

# --- wire constants ------------------------------------------------------------------
HEADER_LEN = 12
QR = 0x8000
TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_PTR, TYPE_HINFO = 1, 2, 5, 12, 13
TYPE_TXT, TYPE_AAAA, TYPE_SRV, TYPE_OPT, TYPE_NSEC = 16, 28, 33, 41, 47
CLASS_MASK = 0x7FFF  # mDNS uses the top bit (cache-flush / unicast-response)
QUESTION, ANSWER, AUTHORITY, ADDITIONAL = 0, 1, 2, 3
DNS_PORT, LLMNR_PORT = 53, 5355
PORT_HINTS = frozenset({DNS_PORT, LLMNR_PORT})

Name = tuple[bytes, ...]  # labels as on the wire, without the root
_HEADER = struct.Struct("!6H")  # id, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
_QUESTION_TAIL = struct.Struct("!HH")  # QTYPE, QCLASS
_RECORD_HEADER = struct.Struct("!HHIH")  # TYPE, CLASS, TTL, RDLENGTH


@slot_init
@dataclass(frozen=True, slots=True)
class Question:
    name: Name
    qtype: int
    qclass: int  # as on the wire (mDNS QU bit kept)


@slot_init
@dataclass(frozen=True, slots=True)
class Record:
    section: int  # ANSWER, AUTHORITY or ADDITIONAL
    name: Name
    rtype: int
    rclass: int  # as on the wire (mDNS cache-flush bit kept)
    ttl: int
    offset: int  # of the RDATA in the message
    length: int  # RDLENGTH


@slot_init
@dataclass(frozen=True, slots=True)
class Message:
    data: bytes
    ident: int
    flags: int
    questions: tuple[Question, ...]
    records: tuple[Record, ...]

    @property
    def is_response(self) -> bool:
        return bool(self.flags & QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    def rdata(self, rec: Record) -> bytes:
        return self.data[rec.offset : rec.offset + rec.length]

    def rdata_name(self, rec: Record, skip: int = 0) -> Name:
        """A domain name in the RDATA (after ``skip`` bytes); it must end inside the RDATA."""
        name, end = read_name(self.data, rec.offset + skip)
        if end > rec.offset + rec.length:
            raise Malformed("name runs past its RDATA")
        return name

    def address(self, rec: Record) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The address of an A or AAAA record; None for other types or a wrong length."""
        if rec.rtype == TYPE_A and rec.length == 4:
            return ipaddress.IPv4Address(self.rdata(rec))
        if rec.rtype == TYPE_AAAA and rec.length == 16:
            return ipaddress.IPv6Address(self.rdata(rec))
        return None

    def txt(self, rec: Record) -> list[bytes]:
        """The character-strings of a TXT record (RFC 1035 §3.3.14)."""
        data, out, pos = self.rdata(rec), [], 0
        while pos < len(data):
            size = data[pos]
            if pos + 1 + size > len(data):
                raise Malformed("TXT string runs past its RDATA")
            out.append(data[pos + 1 : pos + 1 + size])
            pos += 1 + size
        return out

    def srv(self, rec: Record) -> tuple[int, Name]:
        """(port, target) of an SRV record (RFC 2782)."""
        if rec.length < 7:
            raise Malformed("short SRV RDATA")
        data = self.rdata(rec)
        return int.from_bytes(data[4:6], "big"), self.rdata_name(rec, skip=6)

    def character_strings(self, rec: Record, count: int) -> list[bytes]:
        """The first ``count`` character-strings of the RDATA (HINFO: CPU, OS)."""
        return self.txt(rec)[:count]


def read_name(data: bytes, pos: int) -> tuple[Name, int]:
    """The name at ``pos`` and the offset just after it in the message (RFC 1035 §4.1.4).

    Every pointer must point below the start of the stretch of labels it was read from,
    so the walk always moves backwards and terminates; anything else is Malformed.
    """
    labels: list[bytes] = []
    wire = 1  # the root's length octet
    end: int | None = None
    floor = pos
    hops = 0
    size = len(data)
    while True:
        if pos >= size:
            raise Malformed(f"name runs past the message at offset {pos}")
        length = data[pos]
        if length == 0:
            return tuple(labels), (pos + 1 if end is None else end)
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= size:
                raise Malformed(f"cut compression pointer at offset {pos}")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end is None:
                end = pos + 2
            if target >= floor:
                raise Malformed(f"compression pointer at offset {pos} does not point backwards")
            hops += 1
            if hops > MAX_POINTER_HOPS:
                raise Malformed("too many compression pointers in one name")
            floor = pos = target
            continue
        if kind:
            raise Malformed(f"label type {kind:#x} at offset {pos}")
        wire += length + 1
        if wire > MAX_NAME_BYTES:
            raise Malformed(f"name longer than {MAX_NAME_BYTES} bytes")
        if pos + 1 + length > size:
            raise Malformed(f"label runs past the message at offset {pos}")
        labels.append(data[pos + 1 : pos + 1 + length])
        pos += 1 + length


# The last parse_message result (or Malformed text) and the very bytes object it was for.
# One datagram is parsed by up to four callers in a row (the NetBIOS, mDNS and DNS probes,
# then the parser that matched); bytes are immutable, so the same object gives the same
# answer. A memo of a pure function, not parser state.
_last_parse: tuple[bytes, bool, Message | str] | None = None


def parse_message(data: bytes, exact: bool = True) -> Message:
    """Decode a whole DNS-format message; ``exact``: trailing bytes are Malformed."""
    global _last_parse
    last = _last_parse
    if last is not None and last[0] is data and last[1] == exact:
        if isinstance(last[2], str):
            raise Malformed(last[2])
        return last[2]
    try:
        msg = _parse_message(data, exact)
    except Malformed as exc:
        if type(data) is bytes:
            _last_parse = (data, exact, str(exc))
        raise
    if type(data) is bytes:
        _last_parse = (data, exact, msg)
    return msg


def _parse_message(data: bytes, exact: bool) -> Message:
    if len(data) < HEADER_LEN:
        raise Malformed(f"{len(data)} bytes: shorter than a DNS header")
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    total = qd + an + ns + ar
    if total > MAX_RECORDS:
        raise Malformed(f"{total} records in one message")
    if HEADER_LEN + qd * 5 + (an + ns + ar) * 11 > len(data):
        raise Malformed("record counts do not fit the message")
    pos = HEADER_LEN
    questions: list[Question] = []
    for _ in range(qd):
        name, pos = read_name(data, pos)
        if pos + 4 > len(data):
            raise Malformed("cut question")
        qtype, qclass = _QUESTION_TAIL.unpack_from(data, pos)
        questions.append(Question(name, qtype, qclass))
        pos += 4
    records: list[Record] = []
    for section, count in ((ANSWER, an), (AUTHORITY, ns), (ADDITIONAL, ar)):
        for _ in range(count):
            name, pos = read_name(data, pos)
            if pos + 10 > len(data):
                raise Malformed("cut resource record header")
            rtype, rclass, ttl, length = _RECORD_HEADER.unpack_from(data, pos)
            pos += 10
            if pos + length > len(data):
                raise Malformed("RDATA runs past the message")
            records.append(Record(section, name, rtype, rclass, ttl, pos, length))
            pos += length
    if exact and pos != len(data):
        raise Malformed(f"{len(data) - pos} bytes after the last record")
    return Message(data, ident, flags, tuple(questions), tuple(records))


# --- text ----------------------------------------------------------------------------
def clean_text(raw: bytes | str, limit: int = MAX_VALUE_CHARS, encoding: str = "utf-8") -> str:
    """Printable text: control characters dropped, whitespace collapsed, truncated."""
    text = raw.decode(encoding, errors="replace") if isinstance(raw, bytes) else raw
    if text.isprintable() and " " not in text:
        return text[:limit]  # the usual label: nothing to replace, the only printable space absent
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())[:limit]


def name_text(name: Name, lower: bool = True) -> str:
    """Dotted text of a name; a dot inside a label is escaped as in zone files."""
    labels = [clean_text(label, 63).replace(".", "\\.") for label in name]
    text = ".".join(labels)
    return (text.lower() if lower else text)[:MAX_VALUE_CHARS]


def reverse_address(name: Name) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a reverse-lookup name encodes (``4.3.2.1.in-addr.arpa``, ``ip6.arpa``)."""
    lower = [label.lower() for label in name]
    try:
        if lower[-2:] == [b"in-addr", b"arpa"] and len(lower) == 6:
            octets = [int(label) for label in reversed(lower[:4])]
            if all(0 <= o <= 255 and len(str(o)) <= 3 for o in octets):
                return ipaddress.IPv4Address(bytes(octets))
        if lower[-2:] == [b"ip6", b"arpa"] and len(lower) == 34:
            nibbles = [label.decode("ascii") for label in reversed(lower[:32])]
            if all(len(n) == 1 for n in nibbles):
                return ipaddress.IPv6Address(int("".join(nibbles), 16))
    except (ValueError, UnicodeDecodeError):
        return None
    return None


def is_reverse_name(name: Name) -> bool:
    lower = [label.lower() for label in name[-2:]]
    return lower in ([b"in-addr", b"arpa"], [b"ip6", b"arpa"])


def local_scope(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address a hospital device can hold: not global, not loopback/multicast/unspecified."""
    if ip.is_loopback or ip.is_multicast or ip.is_unspecified:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return local_scope(ip.ipv4_mapped)
    return ANSWER_GLOBAL_ADDRESSES or not ip.is_global


def host_text(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The endpoint text of an address; an IPv4-mapped IPv6 address is its IPv4 host."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@cache
def query_hints() -> tuple[tuple[str, str], ...]:
    """(name suffix, OS family) from ``dns_query_hints.csv``, longest suffix first."""
    rows = [(r["suffix"].lower(), r["os_hint"]) for r in data_rows("dns_query_hints.csv")]
    return tuple(sorted(rows, key=lambda r: len(r[0]), reverse=True))


@cache
def _hints_by_suffix() -> dict[str, str]:
    """``query_hints`` as a dict; the first row of a suffix listed twice wins, as there."""
    out: dict[str, str] = {}
    for suffix, hint in query_hints():
        out.setdefault(suffix, hint)
    return out


def os_hint(name: str) -> str | None:
    """The hint of the longest suffix in ``query_hints`` that is ``name`` or follows a dot
    in it: one dict lookup per dot instead of a scan of the table per query name."""
    hints = _hints_by_suffix()
    hint = hints.get(name)
    pos = name.find(".")
    while hint is None and pos >= 0:
        hint = hints.get(name[pos + 1 :])
        pos = name.find(".", pos + 1)
    return hint


# --- probe ---------------------------------------------------------------------------
def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH a whole, standard (opcode 0) DNS/LLMNR message with exactly one question.

    A query must carry no answers or authority records. The message must parse to its
    last byte. A datagram is complete, so a failure is NO, never NEED_MORE.
    """
    try:
        msg = parse_message(bytes(data))
    except Malformed:
        return Probe.NO
    if msg.opcode != 0 or len(msg.questions) != 1:
        return Probe.NO
    if not msg.is_response and any(r.section != ADDITIONAL for r in msg.records):
        return Probe.NO
    return Probe.MATCH


# --- parser --------------------------------------------------------------------------
A_CONFIDENCE = 0.3
ALIAS_CONFIDENCE = 0.3
PTR_CONFIDENCE = 0.5
LLMNR_OWNER_CONFIDENCE = 0.7
LLMNR_OTHER_CONFIDENCE = 0.4


class DnsParser(DatagramParser):
    """One UDP conversation of DNS (or LLMNR, on port 5355); see the module docstring."""

    name = "dns"

    def __init__(self, flow: FlowKey) -> None:
        super().__init__(flow)
        self.proto = "llmnr" if LLMNR_PORT in (flow.client_port, flow.server_port) else "dns"
        self.facts = FactLog()
        self.bad_messages = 0
        self._queries: set[str] = set()
        self.dropped_queries = 0

    def _decode(self, direction: Direction, data: bytes, ts: float) -> Iterable[Observation]:
        out: list[Observation] = []
        try:
            msg = parse_message(bytes(data))
            if msg.opcode != 0:
                return []
            sender, receiver = sender_of(self.flow, direction)
            querier = receiver if msg.is_response else sender
            for question in msg.questions:
                self._query(out, querier, question.name, ts)
            if msg.is_response and msg.rcode == 0:
                self._answers(out, msg, sender, ts)
        except Malformed:
            if not self.pdus:
                raise
            self.bad_messages += 1  # one broken datagram does not blind a confirmed flow
            return []
        return out

    def _query(self, out: list[Observation], querier: str, name: Name, ts: float) -> None:
        if not name or is_reverse_name(name):
            return
        text = name_text(name)
        if text not in self._queries:
            if len(self._queries) >= MAX_QUERY_NAMES_PER_FLOW:
                self.dropped_queries += 1
                return
            self._queries.add(text)
        self.facts.add(out, f"{self.proto}.query", querier, text, ts)
        hint = os_hint(text)
        if hint is not None:
            self.facts.add(out, f"{self.proto}.os_hint", querier, hint, ts, raw=text)

    def _answers(self, out: list[Observation], msg: Message, responder: str, ts: float) -> None:
        aliases: dict[Name, Name] = {}  # CNAME owner -> target
        for rec in msg.records:
            if rec.section != ANSWER or rec.rclass & CLASS_MASK != 1:
                continue
            if rec.rtype == TYPE_CNAME:
                aliases[_fold(rec.name)] = _fold(msg.rdata_name(rec))
            elif rec.rtype == TYPE_PTR:
                ip = reverse_address(rec.name)
                target = msg.rdata_name(rec)
                if ip is not None and target and local_scope(ip):
                    self.facts.add(
                        out,
                        f"{self.proto}.hostname",
                        host_text(ip),
                        name_text(target),
                        ts,
                        None,
                        PTR_CONFIDENCE,
                    )
        by_canonical = resolve_aliases(aliases)
        for rec in msg.records:
            if rec.section != ANSWER or rec.rclass & CLASS_MASK != 1 or not rec.name:
                continue
            ip = msg.address(rec)
            if ip is None or not local_scope(ip):
                continue
            host = host_text(ip)
            if self.proto == "llmnr":
                conf = LLMNR_OWNER_CONFIDENCE if host == responder else LLMNR_OTHER_CONFIDENCE
            else:
                conf = A_CONFIDENCE
            self.facts.add(out, f"{self.proto}.hostname", host, name_text(rec.name), ts, None, conf)
            for alias in by_canonical.get(_fold(rec.name), ()):
                self.facts.add(
                    out, f"{self.proto}.name", host, name_text(alias), ts, None, ALIAS_CONFIDENCE
                )


MAX_CNAME_CHAIN = 16  # CNAME links followed from one alias


def _fold(name: Name) -> Name:
    return tuple(label.lower() for label in name)


def resolve_aliases(aliases: dict[Name, Name]) -> dict[Name, list[Name]]:
    """Canonical name -> the CNAME owners whose chain ends there (loops end nowhere)."""
    out: dict[Name, list[Name]] = {}
    for owner in aliases:
        current = owner
        for _ in range(MAX_CNAME_CHAIN):
            nxt = aliases.get(current)
            if nxt is None:
                break
            current = nxt
        if current not in aliases and current != owner:
            out.setdefault(current, []).append(owner)
    return out


SPEC = ParserSpec(
    name="dns", transport="udp", probe=probe, factory=DnsParser, port_hints=PORT_HINTS
)

__all__ = [
    "SPEC",
    "DnsParser",
    "FactLog",
    "Message",
    "Question",
    "Record",
    "clean_text",
    "name_text",
    "parse_message",
    "probe",
    "read_name",
]
