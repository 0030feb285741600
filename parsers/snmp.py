"""SNMP v1 / v2c (RFC 1157, RFC 1901, RFC 3416) on UDP 161/162: what an agent says it is.

BER (X.690) decoded by hand: definite lengths only, single-byte tags, every length checked
against its container, OIDs bounded to ``MAX_OID_ARCS`` arcs. Message: SEQUENCE { version
(0 = v1, 1 = v2c), community, PDU }. The **community string is skipped unread**: it is a
password and appears in no observation, log line or error text. SNMPv3 is not read.

Read from responses (GetResponse), traps (v1 Trap, v2 Trap) and informs, by OID only:
- sysDescr.0 (1.3.6.1.2.1.1.1.0) -> ``snmp.sys_descr`` (plain), and through
  ``parsers/data/snmp_sysdescr.csv`` a device type, vendor, software version, model, OS;
- sysObjectID.0 (1.3.6.1.2.1.1.2.0) -> ``snmp.sys_object_id`` (plain); its enterprise
  number (1.3.6.1.4.1.<n>) through ``snmp_enterprises.csv`` -> ``snmp.vendor`` (claim, 0.8),
  or ``snmp.os`` / ``snmp.agent_software`` when the number names an OS or agent software
  (Microsoft, net-snmp), never the hardware vendor;
- sysName.0 (1.3.6.1.2.1.1.5.0) -> ``snmp.hostname`` (claim, 0.8: set by the admin);
- sysServices.0 (1.3.6.1.2.1.1.7.0): layers 2/3 without layer 7 (RFC 3418) ->
  ``snmp.device_type`` = network-infrastructure (0.5);
- ENTITY-MIB entPhysicalTable (RFC 6933) columns class/softwareRev/serialNum/mfgName/
  modelName, only for rows whose class is chassis(3) -> software_version/serial/vendor/model
  claims (0.7-0.8);
- HOST-RESOURCES-MIB hrDeviceType/hrDeviceDescr (RFC 2790): a printer device ->
  ``snmp.device_type`` = printer (0.5) and its description as model (0.5);
- Printer-MIB (RFC 3805): any value under 1.3.6.1.2.1.43 -> printer (0.6);
  prtGeneralSerialNumber -> ``snmp.serial`` (0.7);
- v1 Trap enterprise / v2 snmpTrapOID.0 under 1.3.6.1.4.1.<n> -> vendor (0.5).
``snmp.role`` (plain): ``agent`` for the responder or trap sender, ``manager`` for the
requester or trap receiver.

Never read: the community, any other OID (sysContact names a person, sysLocation is free
text), request values (SetRequest), SNMPv3.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from parsers.base import DatagramParser, Direction, FlowKey, Malformed, Observation
from parsers.dns import (
    clean_text,
)
from parsers.factlog import FactLog, sender_of
from parsers.knowledge import data_rows
from parsers.registry import ParserSpec, Probe

PORT_HINTS = frozenset({161, 162})
MAX_OID_ARCS = 128
MAX_VARBINDS = 256  # per message
MAX_TABLE_ROWS = 64  # per table and flow: indices remembered while pairing columns
MAX_LENGTH_OCTETS = 3  # long-form length octets accepted (messages are < 64 KiB)

# --- BER tags ------------------------------------------------------------------------
SEQUENCE, INTEGER, OCTET_STRING, NULL, OID = 0x30, 0x02, 0x04, 0x05, 0x06
IP_ADDRESS, TIMETICKS = 0x40, 0x43
GET, GET_NEXT, RESPONSE, SET, TRAP_V1, GET_BULK, INFORM, TRAP_V2, REPORT = range(0xA0, 0xA9)
REQUESTS = frozenset({GET, GET_NEXT, SET, GET_BULK})
PDUS = frozenset(range(0xA0, 0xA9))

# --- OIDs ----------------------------------------------------------------------------
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_SERVICES = "1.3.6.1.2.1.1.7.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
ENTERPRISES = "1.3.6.1.4.1."
ENT_PHYSICAL = "1.3.6.1.2.1.47.1.1.1.1."  # + column.index
ENT_CLASS, ENT_SOFTWARE, ENT_SERIAL, ENT_MFG, ENT_MODEL = 5, 10, 11, 12, 13
ENT_CHASSIS = 3
HR_DEVICE = "1.3.6.1.2.1.25.3.2.1."  # + column.index
HR_TYPE, HR_DESCR = 2, 3
HR_PRINTER = "1.3.6.1.2.1.25.3.1.5"
PRINTER_MIB = "1.3.6.1.2.1.43."
PRT_SERIAL = "1.3.6.1.2.1.43.5.1.1.17."

SYS_NAME_CONFIDENCE = 0.8
ENTERPRISE_CONFIDENCE = 0.8
TRAP_ENTERPRISE_CONFIDENCE = 0.5
SERVICES_CONFIDENCE = 0.5
ENTITY_CONFIDENCE = {ENT_MODEL: 0.8, ENT_SERIAL: 0.8, ENT_SOFTWARE: 0.7, ENT_MFG: 0.7}
ENTITY_KINDS = {
    ENT_MODEL: "snmp.model",
    ENT_SERIAL: "snmp.serial",
    ENT_SOFTWARE: "snmp.software_version",
    ENT_MFG: "snmp.vendor",
}
HR_PRINTER_CONFIDENCE = 0.5
PRINTER_MIB_CONFIDENCE = 0.6
PRT_SERIAL_CONFIDENCE = 0.7


@dataclass(frozen=True, slots=True)
class Enterprise:
    name: str
    kind: str  # vendor, os, agent-software


@dataclass(frozen=True, slots=True)
class DescrRow:
    pattern: re.Pattern[str]
    device_type: str
    vendor: str
    confidence: float
    os: str


@cache
def enterprises() -> dict[int, Enterprise]:
    return {
        int(r["number"]): Enterprise(r["name"], r["kind"])
        for r in data_rows("snmp_enterprises.csv")
    }


@cache
def descr_rows() -> tuple[DescrRow, ...]:
    return tuple(
        DescrRow(
            re.compile(r["pattern"], re.DOTALL),
            r["device_type"],
            r["vendor"],
            float(r["confidence"] or 0),
            r["os"],
        )
        for r in data_rows("snmp_sysdescr.csv")
    )


def enterprise_of(oid: str) -> tuple[int, Enterprise | None] | None:
    """(number, table entry) for an OID under 1.3.6.1.4.1; None for other OIDs."""
    if not oid.startswith(ENTERPRISES):
        return None
    number = oid[len(ENTERPRISES) :].split(".", 1)[0]
    if not number.isdigit():
        return None
    return int(number), enterprises().get(int(number))


# --- BER -----------------------------------------------------------------------------
def read_tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the TLV at ``pos``; it must end by ``end``."""
    if pos + 2 > end:
        raise Malformed(f"cut TLV header at offset {pos}")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise Malformed(f"multi-byte tag at offset {pos}")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        octets = first & 0x7F
        if octets == 0 or octets > MAX_LENGTH_OCTETS:
            raise Malformed(f"length form {first:#x} at offset {pos - 1}")
        if pos + octets > end:
            raise Malformed(f"cut length at offset {pos}")
        length = int.from_bytes(data[pos : pos + octets], "big")
        pos += octets
    if pos + length > end:
        raise Malformed(f"value of {length} bytes at offset {pos} overruns its container")
    return tag, pos, pos + length


def expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = read_tlv(data, pos, end)
    if got != tag:
        raise Malformed(f"tag {got:#x} at offset {pos}, expected {tag:#x}")
    return start, stop


def decode_int(value: bytes) -> int:
    if not value or len(value) > 9:
        raise Malformed(f"INTEGER of {len(value)} bytes")
    return int.from_bytes(value, "big", signed=True)


def decode_oid(value: bytes) -> str:
    """Dotted OID (X.690 §8.19); bounded arcs, each below 2**64."""
    if not value or value[-1] & 0x80:
        raise Malformed("empty or cut OID")
    arcs: list[int] = []
    acc = 0
    for byte in value:
        acc = (acc << 7) | (byte & 0x7F)
        if acc >= 1 << 64:
            raise Malformed("OID arc too large")
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
            if len(arcs) > MAX_OID_ARCS:
                raise Malformed("OID with too many arcs")
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


@dataclass(slots=True)
class SnmpMessage:
    version: int  # 0 = v1, 1 = v2c
    pdu: int
    varbinds: list[tuple[str, int, bytes]] = field(default_factory=list)  # oid, tag, value
    enterprise: str | None = None  # v1 Trap


def parse_snmp(data: bytes) -> SnmpMessage:
    """Decode one v1/v2c message; the community is skipped without being looked at."""
    end = len(data)
    start, stop = expect(data, 0, end, SEQUENCE)
    if stop != end:
        raise Malformed("bytes after the SNMP message")
    v_start, v_stop = expect(data, start, stop, INTEGER)
    version = decode_int(data[v_start:v_stop])
    if version not in (0, 1):
        raise Malformed(f"SNMP version {version} not read")
    _, c_stop = expect(data, v_stop, stop, OCTET_STRING)  # the community: skipped, unread
    pdu, p_start, p_stop = read_tlv(data, c_stop, stop)
    if pdu not in PDUS or p_stop != stop:
        raise Malformed(f"PDU tag {pdu:#x}")
    msg = SnmpMessage(version, pdu)
    pos = p_start
    if pdu == TRAP_V1:
        o_start, pos = expect(data, pos, p_stop, OID)
        msg.enterprise = decode_oid(data[o_start:pos])
        for tag in (IP_ADDRESS, INTEGER, INTEGER, TIMETICKS):  # agent-addr .. time-stamp
            _, pos = expect(data, pos, p_stop, tag)
    else:
        for _ in range(3):  # request-id, error-status, error-index (non-repeaters...)
            i_start, pos = expect(data, pos, p_stop, INTEGER)
            decode_int(data[i_start:pos])
    l_start, l_stop = expect(data, pos, p_stop, SEQUENCE)
    if l_stop != p_stop:
        raise Malformed("bytes after the variable bindings")
    pos = l_start
    while pos < l_stop:
        if len(msg.varbinds) >= MAX_VARBINDS:
            raise Malformed(f"more than {MAX_VARBINDS} variable bindings")
        b_start, b_stop = expect(data, pos, l_stop, SEQUENCE)
        n_start, n_stop = expect(data, b_start, b_stop, OID)
        oid = decode_oid(data[n_start:n_stop])
        tag, val_start, val_stop = read_tlv(data, n_stop, b_stop)
        if val_stop != b_stop:
            raise Malformed("bytes after a variable binding's value")
        # Request values are never kept (a SetRequest may carry anything).
        value = b"" if pdu in REQUESTS else data[val_start:val_stop]
        msg.varbinds.append((oid, tag, value))
        pos = b_stop
    return msg


def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH a whole, well-formed SNMP v1/v2c message (the full BER structure is checked)."""
    if not data or data[0] != SEQUENCE:
        return Probe.NO
    try:
        parse_snmp(bytes(data))
    except Malformed:
        return Probe.NO
    return Probe.MATCH


# --- parser --------------------------------------------------------------------------
class SnmpParser(DatagramParser):
    """One UDP conversation of SNMP; see the module docstring."""

    name = "snmp"

    def __init__(self, flow: FlowKey) -> None:
        super().__init__(flow)
        self.facts = FactLog()
        self.bad_messages = 0
        self._entity: dict[int, dict[int, bytes]] = {}  # index -> column -> value
        self._hr: dict[int, dict[int, bytes]] = {}
        self._vendor: dict[str, str] = {}  # agent -> vendor from its enterprise number

    def _decode(self, direction: Direction, data: bytes, ts: float) -> Iterable[Observation]:
        out: list[Observation] = []
        try:
            msg = parse_snmp(bytes(data))
            sender, receiver = sender_of(self.flow, direction)
            if msg.pdu in REQUESTS:
                self.facts.add(out, "snmp.role", sender, "manager", ts)
            elif msg.pdu in (RESPONSE, TRAP_V1, TRAP_V2, INFORM):
                self._agent(out, msg, sender, ts)
                if msg.pdu != RESPONSE:
                    self.facts.add(out, "snmp.role", receiver, "manager", ts)
        except Malformed:
            if not self.pdus:
                raise
            self.bad_messages += 1  # one broken datagram does not blind a confirmed flow
            return []
        return out

    def _port(self, host: str) -> int | None:
        """The agent's port when it is this flow's server (161), else None."""
        return self.flow.server_port if host == self.flow.server else None

    def _agent(self, out: list[Observation], msg: SnmpMessage, agent: str, ts: float) -> None:
        add = self.facts.add
        port = self._port(agent)
        add(out, "snmp.role", agent, "agent", ts, port)
        if msg.enterprise is not None:
            self._enterprise(out, agent, msg.enterprise, TRAP_ENTERPRISE_CONFIDENCE, ts)
        for oid, tag, value in msg.varbinds:
            if oid == SYS_DESCR and tag == OCTET_STRING:
                self._sys_descr(out, agent, value, ts)
            elif oid == SYS_OBJECT_ID and tag == OID:
                text = decode_oid(value)
                add(out, "snmp.sys_object_id", agent, text, ts, port)
                self._enterprise(out, agent, text, ENTERPRISE_CONFIDENCE, ts)
            elif oid == SYS_NAME and tag == OCTET_STRING:
                name = clean_text(value, 255)
                add(out, "snmp.hostname", agent, name, ts, None, SYS_NAME_CONFIDENCE)
            elif oid == SYS_SERVICES and tag == INTEGER:
                services = decode_int(value)
                if services & 0x06 and not services & 0x40:
                    add(
                        out,
                        "snmp.device_type",
                        agent,
                        "network-infrastructure",
                        ts,
                        None,
                        SERVICES_CONFIDENCE,
                        raw=f"sysServices={services}",
                    )
            elif oid == SNMP_TRAP_OID and tag == OID:
                self._enterprise(out, agent, decode_oid(value), TRAP_ENTERPRISE_CONFIDENCE, ts)
            elif oid.startswith(ENT_PHYSICAL):
                self._entity_column(out, agent, oid, tag, value, ts)
            elif oid.startswith(HR_DEVICE):
                self._hr_column(out, agent, oid, tag, value, ts)
            elif oid.startswith(PRINTER_MIB) and tag not in (NULL, 0x80, 0x81, 0x82):
                add(
                    out,
                    "snmp.device_type",
                    agent,
                    "printer",
                    ts,
                    None,
                    PRINTER_MIB_CONFIDENCE,
                    raw="Printer-MIB",
                )
                if oid.startswith(PRT_SERIAL) and tag == OCTET_STRING:
                    serial = clean_text(value, 64)
                    add(out, "snmp.serial", agent, serial, ts, None, PRT_SERIAL_CONFIDENCE)

    def _enterprise(
        self, out: list[Observation], agent: str, oid: str, conf: float, ts: float
    ) -> None:
        found = enterprise_of(oid)
        if found is None:
            return
        number, entry = found
        if entry is None:
            self.facts.add(out, "snmp.enterprise", agent, str(number), ts)
        elif entry.kind == "vendor":
            self._vendor.setdefault(agent, entry.name)
            self.facts.add(out, "snmp.vendor", agent, entry.name, ts, None, conf, raw=oid)
        elif entry.kind == "os":
            self.facts.add(out, "snmp.os", agent, entry.name, ts, raw=oid)
        else:
            self.facts.add(out, "snmp.agent_software", agent, entry.name, ts, raw=oid)

    def _sys_descr(self, out: list[Observation], agent: str, value: bytes, ts: float) -> None:
        text = clean_text(value)
        add = self.facts.add
        add(out, "snmp.sys_descr", agent, text, ts, self._port(agent))
        full = value.decode("utf-8", errors="replace")[:1024]
        for row in descr_rows():
            match = row.pattern.search(full)
            if match is None:
                continue
            groups = match.groupdict()
            conf = row.confidence
            if row.device_type:
                add(out, "snmp.device_type", agent, row.device_type, ts, None, conf)
            if row.vendor:
                add(out, "snmp.vendor", agent, row.vendor, ts, None, conf)
            if groups.get("version"):
                add(
                    out,
                    "snmp.software_version",
                    agent,
                    clean_text(groups["version"], 64),
                    ts,
                    None,
                    conf,
                )
            if groups.get("model"):
                add(out, "snmp.model", agent, clean_text(groups["model"], 64), ts, None, conf)
            if row.os:
                osver = groups.get("osver")
                add(out, "snmp.os", agent, f"{row.os} {osver}" if osver else row.os, ts)
            return

    # --- tables: columns arrive in different responses during a walk -----------------
    def _entity_column(
        self, out: list[Observation], agent: str, oid: str, tag: int, value: bytes, ts: float
    ) -> None:
        column, index = _column_index(oid, ENT_PHYSICAL)
        if column not in (ENT_CLASS, *ENTITY_KINDS) or index is None:
            return
        if column == ENT_CLASS and tag != INTEGER or column != ENT_CLASS and tag != OCTET_STRING:
            return
        if column == ENT_CLASS:
            decode_int(value)  # a bad value is this datagram's fault, not the row's
        row = _table_row(self._entity, index)
        if row is None:
            return
        row[column] = value
        if ENT_CLASS in row and decode_int(row[ENT_CLASS]) == ENT_CHASSIS:
            for col, kind in ENTITY_KINDS.items():
                if col in row:
                    text = clean_text(row[col], 64)
                    self.facts.add(out, kind, agent, text, ts, None, ENTITY_CONFIDENCE[col])

    def _hr_column(
        self, out: list[Observation], agent: str, oid: str, tag: int, value: bytes, ts: float
    ) -> None:
        column, index = _column_index(oid, HR_DEVICE)
        if index is None:
            return
        if not (column == HR_TYPE and tag == OID or column == HR_DESCR and tag == OCTET_STRING):
            return
        if column == HR_TYPE:
            decode_oid(value)  # a bad value is this datagram's fault, not the row's
        row = _table_row(self._hr, index)
        if row is None:
            return
        row[column] = value
        if HR_TYPE in row and decode_oid(row[HR_TYPE]) == HR_PRINTER:
            self.facts.add(
                out,
                "snmp.device_type",
                agent,
                "printer",
                ts,
                None,
                HR_PRINTER_CONFIDENCE,
                raw="hrDevicePrinter",
            )
            if HR_DESCR in row:
                model = clean_text(row[HR_DESCR], 64)
                vendor = self._vendor.get(agent)
                if vendor and model.lower().startswith(vendor.lower() + " "):
                    model = model[len(vendor) + 1 :].strip()
                self.facts.add(out, "snmp.model", agent, model, ts, None, HR_PRINTER_CONFIDENCE)


def _column_index(oid: str, prefix: str) -> tuple[int, int | None]:
    """(column, single-arc index) of a table cell OID; index None for other shapes."""
    rest = oid[len(prefix) :].split(".")
    if len(rest) != 2 or not all(part.isdigit() for part in rest):
        return -1, None
    return int(rest[0]), int(rest[1])


def _table_row(table: dict[int, dict[int, bytes]], index: int) -> dict[int, bytes] | None:
    row = table.get(index)
    if row is None:
        if len(table) >= MAX_TABLE_ROWS:
            return None
        row = table[index] = {}
    return row


SPEC = ParserSpec(
    name="snmp", transport="udp", probe=probe, factory=SnmpParser, port_hints=PORT_HINTS
)

__all__ = ["SPEC", "SnmpParser", "decode_oid", "enterprises", "parse_snmp", "probe"]
