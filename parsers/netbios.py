"""NetBIOS Name Service (RFC 1001 §15, RFC 1002 §4.2) on UDP 137: NetBIOS names and workgroups.

The packets are DNS-format (decoded by ``parsers.dns``, compression pointers included);
a NetBIOS name is one 32-byte label in first-level encoding (RFC 1002 §4.1: each byte as
two letters ``A``-``P``), 15 characters plus a suffix byte that says what the name is
(Microsoft KB 163409, ``parsers/data/netbios_suffixes.csv``).

Read:
- name registration, refresh and release requests (opcodes 5, 6, 8, 9, 15): the question
  name and the NB_ADDRESS of the additional record: that host's own name;
- positive name query responses (opcode 0, NB answer): the name -> address entries;
- positive registration responses (from a WINS server): the name -> registrant's address;
- node status responses (NBSTAT, RFC 1002 §4.2.18): the sender's whole name table and its
  unit ID (the MAC address, 00:00:00:00:00:00 from Samba: not kept).

Observations:
- ``netbios.hostname`` (claim): a unique ``<00>``/``<20>`` name; 0.7 from the owner itself
  (registration, node status), 0.6 from the owner's query response, 0.5 when a WINS server
  or another host says it (the address is not the sender's).
- ``netbios.workgroup`` (plain): a group ``<00>``/``<1E>`` name (domain or workgroup).
- ``netbios.role`` (plain): file-server, master-browser, domain-master-browser,
  domain-controller; ``netbios.device_type`` = server (claim, 0.5-0.6) for the last two.
- ``netbios.mac`` (plain): the unit ID of a node status response.

Never read: ``<03>`` names (Messenger service: may be the logged-on *user's* name), name
queries (the name asked for is someone else's), the statistics after the unit ID.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from parsers.base import DatagramParser, Direction, FlowKey, Malformed, Observation
from parsers.dns import (
    ADDITIONAL,
    ANSWER,
    Message,
    Name,
    Record,
    clean_text,
    parse_message,
)
from parsers.factlog import FactLog, sender_of
from parsers.knowledge import data_rows
from parsers.registry import ParserSpec, Probe

PORT = 137
PORT_HINTS = frozenset({PORT})
MAX_NAMES_PER_ENTRY = 64  # node status names or NB entries read from one record

TYPE_NB, TYPE_NBSTAT = 0x0020, 0x0021
OP_QUERY, OP_REGISTER, OP_RELEASE, OP_WACK, OP_REFRESH, OP_REFRESH_ALT, OP_MULTIHOMED = (
    0,
    5,
    6,
    7,
    8,
    9,
    15,
)
REGISTRATIONS = frozenset({OP_REGISTER, OP_RELEASE, OP_REFRESH, OP_REFRESH_ALT, OP_MULTIHOMED})
OPCODES = REGISTRATIONS | {OP_QUERY, OP_WACK}
GROUP = 0x8000  # NB_FLAGS / NAME_FLAGS G bit
NAME_BAD = 0x1800  # NAME_FLAGS DRG (deregistering) | CNF (in conflict)

OWNER_CONFIDENCE = 0.7  # registration or node status: the host names itself
ANSWER_CONFIDENCE = 0.6  # the owner answers a name query
THIRD_PARTY_CONFIDENCE = 0.5  # a WINS server (or another host) says whose name it is


@dataclass(frozen=True, slots=True)
class SuffixRow:
    fact: str  # hostname, workgroup, role, ignore
    role: str
    device_type: str
    confidence: float


@cache
def suffixes() -> dict[tuple[int, str], SuffixRow]:
    """(suffix byte, "unique"/"group"/"any") -> what such a name says."""
    return {
        (int(r["suffix"], 16), r["scope"]): SuffixRow(
            r["fact"], r["role"], r["device_type"], float(r["confidence"] or 0)
        )
        for r in data_rows("netbios_suffixes.csv")
    }


def suffix_row(suffix: int, group: bool) -> SuffixRow | None:
    table = suffixes()
    return table.get((suffix, "group" if group else "unique")) or table.get((suffix, "any"))


def decode_netbios_name(name: Name) -> tuple[bytes, int]:
    """(15 name bytes, suffix) of a first-level encoded name (RFC 1002 §4.1)."""
    if not name or len(name[0]) != 32:
        raise Malformed("not a NetBIOS first-level encoded name")
    label = name[0].upper()
    if any(c < 0x41 or c > 0x50 for c in label):
        raise Malformed("NetBIOS name half-byte outside A-P")
    raw = bytes(((label[i] - 0x41) << 4) | (label[i + 1] - 0x41) for i in range(0, 32, 2))
    return raw[:15], raw[15]


def name_value(raw: bytes) -> str:
    """Printable name: OEM bytes read as Latin-1, trailing spaces/NULs dropped."""
    return clean_text(raw.rstrip(b" \x00"), 15, encoding="latin-1")


def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH a whole NBNS packet: a known opcode and a 32-letter A-P encoded first name."""
    try:
        msg = parse_message(bytes(data))
        if msg.opcode not in OPCODES:
            return Probe.NO
        first = msg.questions[0].name if msg.questions else msg.records[0].name
        decode_netbios_name(first)
    except (Malformed, IndexError):
        return Probe.NO
    return Probe.MATCH


class NetbiosParser(DatagramParser):
    """One UDP conversation of NetBIOS name service; see the module docstring."""

    name = "netbios"

    def __init__(self, flow: FlowKey) -> None:
        super().__init__(flow)
        self.facts = FactLog()
        self.bad_messages = 0

    def _decode(self, direction: Direction, data: bytes, ts: float) -> Iterable[Observation]:
        out: list[Observation] = []
        try:
            msg = parse_message(bytes(data), exact=False)
            if msg.opcode not in OPCODES:
                raise Malformed(f"NBNS opcode {msg.opcode}")
            sender, _ = sender_of(self.flow, direction)
            if not msg.is_response and msg.opcode in REGISTRATIONS:
                self._registration(out, msg, sender, ts)
            elif msg.is_response and msg.rcode == 0:
                for rec in msg.records:
                    if rec.section != ANSWER:
                        continue
                    if rec.rtype == TYPE_NBSTAT:
                        self._node_status(out, msg, rec, sender, ts)
                    elif rec.rtype == TYPE_NB and msg.opcode in (OP_QUERY, OP_REGISTER):
                        self._nb_answer(out, msg, rec, sender, ts)
        except Malformed:
            if not self.pdus:
                raise
            self.bad_messages += 1  # one broken datagram does not blind a confirmed flow
            return []
        return out

    # --- the kinds of packet ---------------------------------------------------------
    def _registration(self, out: list[Observation], msg: Message, sender: str, ts: float) -> None:
        for rec in msg.records:
            if rec.section == ADDITIONAL and rec.rtype == TYPE_NB:
                for flags, address in nb_entries(msg, rec):
                    conf = OWNER_CONFIDENCE if address == sender else THIRD_PARTY_CONFIDENCE
                    self._name(out, rec.name, flags & GROUP != 0, address, conf, ts)

    def _nb_answer(
        self, out: list[Observation], msg: Message, rec: Record, sender: str, ts: float
    ) -> None:
        for flags, address in nb_entries(msg, rec):
            conf = ANSWER_CONFIDENCE if address == sender else THIRD_PARTY_CONFIDENCE
            if msg.opcode == OP_REGISTER:
                conf = THIRD_PARTY_CONFIDENCE  # a WINS server confirms a registration
            self._name(out, rec.name, flags & GROUP != 0, address, conf, ts)

    def _node_status(
        self, out: list[Observation], msg: Message, rec: Record, sender: str, ts: float
    ) -> None:
        data = msg.rdata(rec)
        if not data:
            raise Malformed("empty node status RDATA")
        count = data[0]
        if 1 + count * 18 > len(data):
            raise Malformed("node status names run past the RDATA")
        for i in range(min(count, MAX_NAMES_PER_ENTRY)):
            entry = data[1 + i * 18 : 1 + (i + 1) * 18]
            flags = int.from_bytes(entry[16:18], "big")
            if flags & NAME_BAD:
                continue
            self._fact(out, entry[:15], entry[15], flags & GROUP != 0, sender, OWNER_CONFIDENCE, ts)
        unit = data[1 + count * 18 : 1 + count * 18 + 6]
        if len(unit) == 6 and any(unit) and unit != b"\xff" * 6:
            self.facts.add(out, "netbios.mac", sender, ":".join(f"{b:02x}" for b in unit), ts)

    # --- facts -----------------------------------------------------------------------
    def _name(
        self, out: list[Observation], name: Name, group: bool, host: str, conf: float, ts: float
    ) -> None:
        raw, suffix = decode_netbios_name(name)
        self._fact(out, raw, suffix, group, host, conf, ts)

    def _fact(
        self,
        out: list[Observation],
        raw: bytes,
        suffix: int,
        group: bool,
        host: str,
        conf: float,
        ts: float,
    ) -> None:
        row = suffix_row(suffix, group)
        if row is None or row.fact == "ignore" or raw.startswith(b"*"):
            return
        value = name_value(raw)
        if not value:
            return
        if row.fact == "hostname":
            self.facts.add(out, "netbios.hostname", host, value, ts, None, conf)
        elif row.fact == "workgroup":
            self.facts.add(out, "netbios.workgroup", host, value, ts)
        if row.role:
            self.facts.add(out, "netbios.role", host, row.role, ts, raw=value)
        if row.device_type:
            self.facts.add(
                out, "netbios.device_type", host, row.device_type, ts, None, row.confidence
            )


def nb_entries(msg: Message, rec: Record) -> list[tuple[int, str]]:
    """(NB_FLAGS, NB_ADDRESS) pairs of an NB record's RDATA (RFC 1002 §4.2.2)."""
    data = msg.rdata(rec)
    if len(data) % 6:
        raise Malformed(f"NB RDATA of {len(data)} bytes")
    out = []
    for i in range(0, min(len(data), 6 * MAX_NAMES_PER_ENTRY), 6):
        flags = int.from_bytes(data[i : i + 2], "big")
        address = ipaddress.IPv4Address(data[i + 2 : i + 6])
        if not (
            address.is_unspecified
            or address.is_loopback
            or address.is_multicast
            or address.is_reserved
        ):
            out.append((flags, str(address)))
    return out


SPEC = ParserSpec(
    name="netbios", transport="udp", probe=probe, factory=NetbiosParser, port_hints=PORT_HINTS
)

__all__ = ["SPEC", "NetbiosParser", "decode_netbios_name", "probe", "suffixes"]
