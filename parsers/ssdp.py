"""SSDP (UPnP Device Architecture 2.0 §1 Discovery) on UDP 1900: NOTIFY and search responses.

HTTP-over-UDP messages, one per datagram: ``NOTIFY * HTTP/1.1`` (a device announces
itself: NT, NTS, USN, LOCATION, SERVER), ``M-SEARCH * HTTP/1.1`` (a control point
searches: ST, USER-AGENT) and ``HTTP/1.1 200 OK`` (a device answers a search: ST, USN,
LOCATION, SERVER). Only those allow-listed headers are read, the first occurrence of
each, from the first ``MAX_MESSAGE_BYTES`` bytes and ``MAX_HEADER_LINES`` lines. The
LOCATION URL is reported, **never fetched**: the sensor sends nothing.

Observations (host = the sender):
- ``ssdp.server`` (plain): SERVER ("OS/version UPnP/1.0 product/version"); it usually
  names the UPnP stack, so it is evidence for people, not a claim.
- ``ssdp.location`` (plain): the device description URL.
- ``ssdp.uuid`` (plain): the device UUID from USN (``uuid:<uuid>[::...]``).
- ``ssdp.device_urn`` / ``ssdp.service_urn`` (plain): NT/ST (or the USN suffix) types.
- ``ssdp.device_type`` (claim): the device URN through ``parsers/data/ssdp_device_types.csv``
  (Printer -> printer 0.6, InternetGatewayDevice -> network-infrastructure 0.6...).
- ``ssdp.user_agent`` (plain): USER-AGENT of an M-SEARCH (UDA 2.0 §1.3.2), on the searcher.

Never read: other headers (CACHE-CONTROL, DATE, BOOTID..., vendor X- headers), bodies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from parsers.base import DatagramParser, Direction, FlowKey, Malformed, Observation
from parsers.dns import (
    clean_text,
)
from parsers.factlog import FactLog, sender_of
from parsers.knowledge import data_rows
from parsers.registry import ParserSpec, Probe

PORT = 1900
PORT_HINTS = frozenset({PORT})
MAX_MESSAGE_BYTES = 8192  # of one datagram read
MAX_HEADER_LINES = 48
MAX_HEADER_VALUE = 256  # characters kept of one header value
HEADERS = frozenset({"server", "usn", "nt", "nts", "st", "location", "user-agent"})

NOTIFY, SEARCH, RESPONSE = "notify", "search", "response"
_START = re.compile(
    rb"^(?:(?P<method>NOTIFY|M-SEARCH) \* HTTP/1\.[01]|HTTP/1\.[01] (?P<status>200)\b.*)$"
)
_URN = re.compile(r"^urn:(?P<domain>[\w.-]+):(?P<kind>device|service):(?P<type>[\w.-]+)(?::\d+)?$")
_UUID = re.compile(r"^uuid:(?P<uuid>[\w-]{1,64})(?:::|$)")


@dataclass(frozen=True, slots=True)
class DeviceTypeRow:
    device_type: str
    confidence: float


@cache
def device_types() -> dict[str, DeviceTypeRow]:
    """``domain:device:type`` (lower case, no version) -> device type hint."""
    return {
        r["urn"].lower(): DeviceTypeRow(r["device_type"], float(r["confidence"] or 0))
        for r in data_rows("ssdp_device_types.csv")
    }


def parse_ssdp(data: bytes) -> tuple[str, dict[str, str]]:
    """(notify/search/response, allow-listed headers) of one datagram."""
    head = bytes(data[:MAX_MESSAGE_BYTES])
    end = head.find(b"\n")
    # The start line alone first: most datagrams probed are not SSDP, no need to split them.
    match = _START.match((head if end < 0 else head[:end]).rstrip(b"\r"))
    if match is None:
        raise Malformed("not an SSDP start line")
    lines = head.split(b"\n")
    method = match.group("method")
    kind = NOTIFY if method == b"NOTIFY" else SEARCH if method == b"M-SEARCH" else RESPONSE
    headers: dict[str, str] = {}
    for line in lines[1 : 1 + MAX_HEADER_LINES]:
        line = line.rstrip(b"\r")
        if not line:
            break
        name, sep, value = line.partition(b":")
        if not sep:
            raise Malformed("header line without a colon")
        key = name.strip().decode("ascii", errors="replace").lower()
        if key in HEADERS and key not in headers:
            headers[key] = clean_text(value.strip(), MAX_HEADER_VALUE)
    if kind == RESPONSE and not ("st" in headers or "usn" in headers):
        raise Malformed("an HTTP response without ST or USN is not SSDP")
    if kind == NOTIFY and not ("nt" in headers or "usn" in headers):
        raise Malformed("NOTIFY without NT or USN")
    return kind, headers


def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH an SSDP start line (and for a 200 response an ST or USN header)."""
    try:
        parse_ssdp(bytes(data))
    except Malformed:
        return Probe.NO
    return Probe.MATCH


class SsdpParser(DatagramParser):
    """One UDP conversation of SSDP; see the module docstring."""

    name = "ssdp"

    def __init__(self, flow: FlowKey) -> None:
        super().__init__(flow)
        self.facts = FactLog()
        self.bad_messages = 0

    def _decode(self, direction: Direction, data: bytes, ts: float) -> Iterable[Observation]:
        out: list[Observation] = []
        try:
            kind, headers = parse_ssdp(bytes(data))
        except Malformed:
            if not self.pdus:
                raise
            self.bad_messages += 1  # one broken datagram does not blind a confirmed flow
            return []
        sender, _ = sender_of(self.flow, direction)
        add = self.facts.add
        if kind == SEARCH:
            add(out, "ssdp.user_agent", sender, headers.get("user-agent", ""), ts)
            return out
        add(out, "ssdp.server", sender, headers.get("server", ""), ts)
        add(out, "ssdp.location", sender, headers.get("location", ""), ts)
        usn = headers.get("usn", "")
        found = _UUID.match(usn)
        if found:
            add(out, "ssdp.uuid", sender, found.group("uuid").lower(), ts)
        target = headers.get("nt" if kind == NOTIFY else "st", "")
        if not target.startswith("urn:") and "::urn:" in usn:
            target = usn.split("::", 1)[1]
        self._urn(out, sender, target, ts)
        return out

    def _urn(self, out: list[Observation], sender: str, target: str, ts: float) -> None:
        found = _URN.match(target)
        if found is None:
            return
        kind = found.group("kind")
        self.facts.add(out, f"ssdp.{kind}_urn", sender, target, ts)
        if kind != "device":
            return
        key = f"{found.group('domain')}:device:{found.group('type')}".lower()
        row = device_types().get(key)
        if row is not None and row.device_type:
            self.facts.add(
                out,
                "ssdp.device_type",
                sender,
                row.device_type,
                ts,
                None,
                row.confidence,
                raw=target,
            )


SPEC = ParserSpec(
    name="ssdp", transport="udp", probe=probe, factory=SsdpParser, port_hints=PORT_HINTS
)

__all__ = ["SPEC", "SsdpParser", "device_types", "parse_ssdp", "probe"]
