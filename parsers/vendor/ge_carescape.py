"""GE CARESCAPE Network / Unity Network time synchronization broadcasts (UDP 2000).

Source: Vocera Carescape Adapter 1.3.0 reference, "Understanding GE Carescape
Networks" > Time Synchronization (UDP port 2000). What it says, and all we read:

- the network's master node (the central station) broadcasts a time message at least
  once a day and whenever the system time changes; a slave node where the time was
  changed sends a private message to the master first;
- the data is always 64 bytes (a 106-byte untagged frame);
- bytes 7-10 (1-based) hold the sending device's IPv4 address;
- bytes 25-37 hold the location identifier ``<unit>|<room>`` (unit up to 7, room up
  to 6 characters, trailing NULs), and it is the master node's location;
- bytes 61-64 hold seconds since 1900-01-01 (not read: a clock, not an identity).

Inferred, and marked so: the 13-byte location block cannot hold a 7-character unit
*and* a 6-character room (14 bytes): we read the documented 13. A datagram sent to a
broadcast address is taken to come from the master node, hence the central-station
claim; a unicast one (the slave's private message, whose layout the source does not
give) claims only the vendor. Every other byte is undocumented and never read.

Not parsed: the UDP 7000 discovery heartbeat (its purpose and port are public, its
layout is not) and Unity RWHAT broadcasts: see ``parsers/data/vendor_signatures.csv``.

Observations about the sender: claims ``carescape.vendor`` (GE Healthcare) and, for a
broadcast, ``carescape.device_type`` (central-station); evidence ``carescape.role``
(``time-master`` / ``time-sync-peer``), ``carescape.location`` (``unit|room``: a place,
never a hostname), ``carescape.announced_ip`` when the address inside differs from the
sender's.
"""

from __future__ import annotations

from parsers.base import Direction, Malformed, Observation
from parsers.registry import ParserSpec, Probe
from parsers.vendor import signatures
from parsers.vendor.base import VendorDatagramParser, printable, unicast_ipv4

FAMILY = "carescape."
PORT_TIME_SYNC = 2000
MESSAGE_SIZE = 64
IP_FIELD = slice(6, 10)  # bytes 7-10, 1-based
LOCATION_FIELD = slice(24, 37)  # bytes 25-37, 1-based

VENDOR = "GE Healthcare"
VENDOR_CONFIDENCE = 0.7  # layout documented by a third party (Vocera), GE-specific shape
CENTRAL_STATION_CONFIDENCE = 0.6  # "master node (the central station)": usually, not always
MISMATCH_PENALTY = 0.2  # the address inside is not the sender's: relayed or not this shape


def location(data: bytes) -> tuple[str, str] | None:
    """(unit, room) from the location block, None unless it is ``unit|room`` text."""
    text = printable(data[LOCATION_FIELD], limit=14)
    if text is None or text.count("|") != 1:
        return None
    unit, room = (part.strip() for part in text.split("|"))
    if not unit or len(unit) > 7 or len(room) > 6:
        return None
    return unit, room


def classify(data: bytes) -> str | None:
    for sig in signatures.matching(FAMILY, data):
        if location(data) is not None and unicast_ipv4(data[IP_FIELD]) is not None:
            return sig.id
    return None


def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH on a 64-byte datagram with a ``unit|room`` location block and a unicast
    IPv4 address where the source puts them."""
    try:
        return Probe.MATCH if classify(bytes(data)) else Probe.NO
    except (Malformed, ValueError):
        return Probe.NO


def _is_broadcast(ip: str) -> bool:
    return ip == "255.255.255.255" or ip.endswith(".255")


class CarescapeParser(VendorDatagramParser):
    """One UDP conversation of CARESCAPE time synchronization (see module docstring)."""

    name = "carescape"

    def decode_message(self, direction: Direction, data: bytes, ts: float) -> list[Observation]:
        if classify(data) is None:
            raise Malformed("not a CARESCAPE time synchronization message")
        place = location(data)
        announced = unicast_ipv4(data[IP_FIELD])
        if place is None or announced is None:  # classify checked both; keeps mypy honest
            raise Malformed("location or address field")
        sender = self.sender(direction)
        penalty = 0.0
        out: list[Observation] = []
        if announced != sender:
            penalty = MISMATCH_PENALTY
            self.emit(out, "carescape.announced_ip", sender, announced, ts)
        self.emit(out, "carescape.vendor", sender, VENDOR, ts, VENDOR_CONFIDENCE - penalty)
        if _is_broadcast(self.receiver(direction)):
            self.emit(out, "carescape.role", sender, "time-master", ts)
            conf = CENTRAL_STATION_CONFIDENCE - penalty
            self.emit(out, "carescape.device_type", sender, "central-station", ts, conf)
        else:
            self.emit(out, "carescape.role", sender, "time-sync-peer", ts)
        unit, room = place
        self.emit(out, "carescape.location", sender, f"{unit}|{room}", ts)
        return out


def spec() -> ParserSpec:
    return ParserSpec(
        name=CarescapeParser.name,
        transport="udp",
        probe=probe,
        factory=CarescapeParser,
        port_hints=signatures.port_hints(FAMILY),
    )


__all__ = ["PORT_TIME_SYNC", "CarescapeParser", "classify", "location", "probe", "spec"]
