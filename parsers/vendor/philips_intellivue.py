"""Philips IntelliVue LAN data export: connect indications (UDP 24005) and the data export
protocol (UDP 24105), read for the monitor's identity only.

Source: Philips *Data Export Interface Programming Guide*, IntelliVue X2, MP Series & MX
Series (4535 642 59271; "PIPG"). We did not have the guide's full text; structure and
constants below are the guide's as reproduced by public implementations that cite it
(mdpnp/mdpnp OpenICE ``org.mdpnp.devices.philips.intellivue``, xeonfusion/VSCaptureMP,
finlaywashere/PyVSCapture, the DICES IntelliVue driver headers). Each field names its
guide section.

Message shapes (all integers big-endian, PIPG ch. 5 "Byte Order"):

- **Connect Indication** (PIPG ch. 3 "Connect Indication", ch. 4 "UDP Port Number":
  broadcast by the monitor to UDP 24005 while it offers data export)::

    Nomenclature u32 | ROapdus {ro_type u16 = ROIV_APDU 1, length u16}
    | ROIVapdu {invoke_id u16, command_type u16 = CMD_EVENT_REPORT 0, length u16}
    | EventReportArgument {managed_object {m_obj_class u16, context_id u16, handle u16},
                           event_time u32, event_type u16 = NOM_NOTI_CONN_INDIC 0x0D17,
                           length u16}
    | ConnectIndInfo = AttributeList {count u16, length u16, AVAType[count]}

- **Association Request / Response / Refuse / Release / Abort** (PIPG ch. 5
  "Session Header"): a session type byte (CN_SPDU_SI 0x0D, AC 0x0E, RF 0x0C, FN 0x09,
  DN 0x0A, AB 0x19) and an LI length (one byte up to 254, else 0xFF + u16) of the rest;
  association request and response carry ASN.1 object identifiers under
  1.2.840.10004 (IEEE 1073).
- **Data export commands** (PIPG ch. 5 "SPpdu"): ``session_id u16 = 0xE100,
  p_context_id u16`` then ROapdus {ro_type, length of the rest}. Of these only the
  **MDS Create Event Report** (ROIV_APDU, CMD_CONFIRMED_EVENT_REPORT,
  event_type NOM_NOTI_MDS_CREAT 0x0D06) is read: its MDSCreateInfo is the managed
  object (6 bytes) and an AttributeList describing the monitor.

Attributes read (allow-list, PIPG ch. 7 "Attribute Data Types and Constants Used"):
NOM_ATTR_SYS_TYPE 0x0986 (TYPE {partition, code}), NOM_ATTR_SYS_ID 0x0984
(VariableLabel: the MAC), NOM_ATTR_ID_MODEL 0x0928 (SystemModel {manufacturer,
model_number} VariableLabels), NOM_ATTR_ID_PROD_SPECN 0x092D (ProductionSpec: entries
{spec_type, component_id, VariableLabel}), NOM_ATTR_NET_ADDR_INFO 0xF100
(IpAddressInfo {mac 6, ip 4, subnet 4}), NOM_ATTR_PCOL_SUPPORT 0xF101 (ProtoSupport:
entries {appl_proto, trans_proto, port, options}), NOM_ATTR_ID_BED_LABEL 0x091E
(String, UTF-16BE: a location, kept as ``intellivue.location``).

Never read: poll results, linked results and every other data export command
(measurements, alarms and the patient demographics object live there), and any
attribute not in the allow-list.

Observations (about the datagram's sender unless said): claims ``intellivue.vendor``,
``.model``, ``.device_type``, ``.serial``, ``.software_version``; evidence
``intellivue.role`` (``monitor`` / ``data-export-client``), ``.part_number``,
``.system_type``, ``.system_id``, ``.mac``, ``.announced_ip``, ``.data_export_port``,
``.wireless``, ``.location``.
"""

from __future__ import annotations

import re
import struct

from parsers.base import Direction, FlowKey, Malformed, Observation
from parsers.registry import ParserSpec, Probe
from parsers.vendor import signatures
from parsers.vendor.base import MAX_TEXT, VendorDatagramParser, printable, unicast_ipv4

FAMILY = "intellivue."
PORT_CONNECT_INDICATION = 24005  # PIPG ch. 4 "UDP Port Number"
PORT_PROTOCOL = 24105  # PIPG ch. 4 "UDP Port Number"

# PIPG ch. 5 "Session Header"
CN_SPDU_SI, AC_SPDU_SI, RF_SPDU_SI = 0x0D, 0x0E, 0x0C
FN_SPDU_SI, DN_SPDU_SI, AB_SPDU_SI = 0x09, 0x0A, 0x19
SESSION_TYPES = {
    CN_SPDU_SI: "association-request",
    AC_SPDU_SI: "association-response",
    RF_SPDU_SI: "association-refuse",
    FN_SPDU_SI: "release-request",
    DN_SPDU_SI: "release-response",
    AB_SPDU_SI: "abort",
}
IEEE_1073_OID_ARC = bytes.fromhex("2a8648ce14")  # BER of 1.2.840.10004

# PIPG ch. 5 "ROapdus", "ROIVapdu", "EventReportArgument"
SPPDU_SESSION_ID = 0xE100
RO_TYPES = frozenset({1, 2, 3, 5})  # ROIV, RORS, ROER, ROLRS
ROIV_APDU = 1
CMD_EVENT_REPORT, CMD_CONFIRMED_EVENT_REPORT = 0, 1
NOM_NOTI_CONN_INDIC = 0x0D17
NOM_NOTI_MDS_CREAT = 0x0D06
HEADER = struct.Struct("!4sHHHHHHHHIHH")  # up to and including EventReportArgument.length

# PIPG ch. 7 attribute IDs (partition NOM_PART_OBJ)
NOM_ATTR_ID_BED_LABEL = 0x091E
NOM_ATTR_ID_MODEL = 0x0928
NOM_ATTR_ID_PROD_SPECN = 0x092D
NOM_ATTR_SYS_ID = 0x0984
NOM_ATTR_SYS_TYPE = 0x0986
NOM_ATTR_NET_ADDR_INFO = 0xF100
NOM_ATTR_PCOL_SUPPORT = 0xF101

# ProductionSpec spec_type and component_id (PIPG ch. 7 "ProdSpecEntry")
SERIAL_NUMBER, PART_NUMBER, SW_REVISION = 1, 2, 4
ID_COMP_PRODUCT, ID_COMP_APPL_SW = 0x08, 0x58
# ProtoSupportEntry (PIPG ch. 7 "ProtoSupport")
AP_ID_DATA_OUT = 5
P_OPT_WIRELESS = 0x8000

# MDS system type codes in NOM_PART_OBJ (PIPG object classes, = ISO/IEEE 11073-10101
# partition 1 term codes) -> device type, confidence.
SYSTEM_TYPES: dict[int, tuple[str, str, float]] = {
    4429: ("NOM_DEV_MON_PHYSIO_MULTI_PARAM_MDS", "patient-monitor", 0.8),
    4449: ("NOM_DEV_PUMP_INFUS_MDS", "infusion-pump", 0.8),
    4465: ("NOM_DEV_SYS_PT_VENT_MDS", "ventilator", 0.8),
    4493: ("NOM_DEV_SYS_MULTI_MODAL_MDS", "patient-monitor", 0.6),
    5209: ("NOM_DEV_SYS_VS_CONFIG_MDS", "patient-monitor", 0.6),
    5213: ("NOM_DEV_SYS_VS_UNCONFIG_MDS", "patient-monitor", 0.6),
}

MAX_ATTRIBUTES = 64  # AVAs walked per message; a real MDS list has about 20
MAX_LIST_ENTRIES = 32  # ProdSpecEntry / ProtoSupportEntry walked per attribute

# Confidences (see docs/fingerprints.md): the protocol itself is Philips-only; a model or
# serial in the MDS attributes is the monitor describing itself.
PROTOCOL_VENDOR_CONFIDENCE = 0.8
ATTRIBUTE_CONFIDENCE = 0.9
MONITOR_BY_PROTOCOL_CONFIDENCE = 0.7  # sent a connect indication / accepted an association

# IntelliVue family names (public Philips product names: MP2, MP5(SC/T), MP20-MP90,
# MX40, MX400-MX850, X2, X3); a bare family name gets the "IntelliVue " prefix.
_INTELLIVUE_MODEL = re.compile(r"(MP\d{1,2}(SC|T)?|MX\d{2,3}|X[1-3])", re.IGNORECASE)


def _u16(data: bytes, offset: int) -> int:
    if offset + 2 > len(data):
        raise Malformed("truncated u16")
    value: int = struct.unpack_from("!H", data, offset)[0]
    return value


def _session_li(data: bytes) -> int | None:
    """Header size when the LI length matches the datagram exactly, else None."""
    if len(data) < 2:
        return None
    if data[1] != 0xFF:
        return 2 if data[1] + 2 == len(data) else None
    if len(data) < 4:
        return None
    return 4 if _u16(data, 2) + 4 == len(data) else None


def _ro_consistent(data: bytes) -> bool:
    """ROapdus at offset 4: a known ro_type and a length of exactly the rest."""
    if len(data) < 8 or data[4] != 0 or data[5] not in RO_TYPES:
        return False
    return _u16(data, 6) == len(data) - 8


def _event_report(data: bytes, event: int) -> bool:
    """An ROIV event report of ``event`` whose nested lengths fit the datagram."""
    if len(data) < HEADER.size + 4 or not _ro_consistent(data):
        return False
    _, ro_type, _, _, _, roiv_len, _, _, _, _, ev_type, ev_len = HEADER.unpack_from(data)
    return bool(
        ro_type == ROIV_APDU
        and ev_type == event
        and roiv_len <= len(data) - 14
        and ev_len <= len(data) - HEADER.size
    )


def _structure_ok(ident: str, data: bytes) -> bool:
    if ident == "intellivue.connect_indication":
        return _event_report(data, NOM_NOTI_CONN_INDIC)
    if ident in ("intellivue.association_request", "intellivue.association_response"):
        return _session_li(data) is not None
    if ident == "intellivue.mds_create":
        return _event_report(data, NOM_NOTI_MDS_CREAT)
    return _ro_consistent(data)  # intellivue.data_export


def classify(data: bytes) -> str | None:
    """The signature row id a datagram is, after its structure checks; None when it is
    not IntelliVue data export."""
    for sig in signatures.matching(FAMILY, data):
        if _structure_ok(sig.id, data):
            return sig.id
    return None


def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH on a connect indication, an association request/response with an IEEE 1073
    object identifier, or an SPpdu data export command with consistent lengths."""
    try:
        return Probe.MATCH if classify(bytes(data)) else Probe.NO
    except Malformed:
        return Probe.NO


# --- attribute decoding -------------------------------------------------------------
def _variable_label(value: bytes, offset: int) -> tuple[bytes, int]:
    """(bytes, next offset) of a VariableLabel {length u16, value[length]}."""
    size = _u16(value, offset)
    end = offset + 2 + size
    if end > len(value):
        raise Malformed("VariableLabel overruns its attribute")
    return value[offset + 2 : end], end


def _attributes(data: bytes, offset: int) -> list[tuple[int, bytes]]:
    """(attribute id, value) of an AttributeList at ``offset``; only allow-listed ids are
    returned, the others are stepped over without being kept."""
    count, size = _u16(data, offset), _u16(data, offset + 2)
    pos, end = offset + 4, offset + 4 + size
    if end > len(data):
        raise Malformed("AttributeList overruns the message")
    if count > MAX_ATTRIBUTES:
        raise Malformed(f"AttributeList of {count} attributes")
    out: list[tuple[int, bytes]] = []
    for _ in range(count):
        if pos + 4 > end:
            raise Malformed("AVAType header overruns the list")
        attr, length = _u16(data, pos), _u16(data, pos + 2)
        value_end = pos + 4 + length
        if value_end > end:
            raise Malformed("AVAType value overruns the list")
        if attr in READERS:
            out.append((attr, data[pos + 4 : value_end]))
        pos = value_end
    return out


def normalise_vendor(manufacturer: str) -> str:
    return "Philips" if "philips" in manufacturer.lower() else manufacturer


def normalise_model(model: str, vendor: str) -> str:
    if vendor == "Philips" and _INTELLIVUE_MODEL.fullmatch(model):
        return f"IntelliVue {model.upper()}"
    return model


class Facts:
    """What one message says about its sender, before dedupe."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, float, str | None]] = []  # kind, value, conf, raw
        self.device_type = False
        self.vendor = False

    def add(self, field: str, value: str | None, conf: float, raw: str | None = None) -> None:
        if value:
            self.items.append((f"intellivue.{field}", value, conf, raw))
            if field == "device_type":
                self.device_type = True
            elif field == "vendor":
                self.vendor = True


def _read_model(value: bytes, facts: Facts) -> None:
    manufacturer_raw, pos = _variable_label(value, 0)
    model_raw, _ = _variable_label(value, pos)
    manufacturer = printable(manufacturer_raw)
    vendor = normalise_vendor(manufacturer) if manufacturer else "Philips"
    if manufacturer:
        facts.add("vendor", vendor, ATTRIBUTE_CONFIDENCE, manufacturer)
    model = printable(model_raw)
    if model:
        normal = normalise_model(model, vendor)
        facts.add("model", normal, ATTRIBUTE_CONFIDENCE, model if normal != model else None)


def _read_production_spec(value: bytes, facts: Facts) -> None:
    count = min(_u16(value, 0), MAX_LIST_ENTRIES)
    pos = 4
    found: dict[tuple[int, int], str] = {}
    for _ in range(count):
        spec_type, component = _u16(value, pos), _u16(value, pos + 2)
        label, pos = _variable_label(value, pos + 4)
        text = printable(label)
        if text:
            found.setdefault((spec_type, component), text)

    def pick(spec_type: int, components: tuple[int, ...]) -> str | None:
        for component in components:
            if (spec_type, component) in found:
                return found[(spec_type, component)]
        return next((v for (s, _), v in found.items() if s == spec_type), None)

    facts.add("serial", pick(SERIAL_NUMBER, (ID_COMP_PRODUCT,)), ATTRIBUTE_CONFIDENCE)
    sw = pick(SW_REVISION, (ID_COMP_APPL_SW, ID_COMP_PRODUCT))
    facts.add("software_version", sw, ATTRIBUTE_CONFIDENCE)
    facts.add("part_number", pick(PART_NUMBER, (ID_COMP_PRODUCT,)), 1.0)


def _read_system_type(value: bytes, facts: Facts) -> None:
    partition, code = _u16(value, 0), _u16(value, 2)
    if partition != 1:  # NOM_PART_OBJ
        return
    known = SYSTEM_TYPES.get(code)
    if known is None:
        facts.add("system_type", str(code), 1.0)
        return
    name, device_type, conf = known
    facts.add("system_type", f"{name} ({code})", 1.0)
    facts.add("device_type", device_type, conf)


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _read_system_id(value: bytes, facts: Facts) -> None:
    label, _ = _variable_label(value, 0)
    if len(label) == 6:
        facts.add("system_id", _mac_text(label), 1.0)


def _read_net_addr(value: bytes, facts: Facts) -> None:
    if len(value) < 14:
        raise Malformed("IpAddressInfo shorter than 14 bytes")
    mac = value[:6]
    if any(mac) and not mac[0] & 0x01:
        facts.add("mac", _mac_text(mac), 1.0)
    facts.add("announced_ip", unicast_ipv4(value[6:10]), 1.0)


def _read_protocol_support(value: bytes, facts: Facts) -> None:
    count = min(_u16(value, 0), MAX_LIST_ENTRIES)
    for i in range(count):
        pos = 4 + 8 * i
        if pos + 8 > len(value):
            raise Malformed("ProtoSupportEntry overruns its attribute")
        appl, _, port, options = struct.unpack_from("!HHHH", value, pos)
        if appl == AP_ID_DATA_OUT:
            facts.add("data_export_port", str(port), 1.0)
        if options & P_OPT_WIRELESS:
            facts.add("wireless", "yes", 1.0)


def _read_bed_label(value: bytes, facts: Facts) -> None:
    """String {length u16, UTF-16BE value, NUL-terminated} (PIPG "String", STRFMT_UNICODE_NT).
    A bed label names a place, not a patient: evidence only, never a hostname claim."""
    size = _u16(value, 0)
    raw = value[2 : 2 + min(size, len(value) - 2)]
    try:
        text = raw[: len(raw) // 2 * 2].decode("utf-16-be").split("\x00", 1)[0].strip()
    except UnicodeDecodeError:
        return
    if text and len(text) <= MAX_TEXT and text.isprintable():
        facts.add("location", text, 1.0)


READERS = {
    NOM_ATTR_ID_MODEL: _read_model,
    NOM_ATTR_ID_PROD_SPECN: _read_production_spec,
    NOM_ATTR_SYS_TYPE: _read_system_type,
    NOM_ATTR_SYS_ID: _read_system_id,
    NOM_ATTR_NET_ADDR_INFO: _read_net_addr,
    NOM_ATTR_PCOL_SUPPORT: _read_protocol_support,
    NOM_ATTR_ID_BED_LABEL: _read_bed_label,
}


def read_attributes(data: bytes, offset: int) -> Facts:
    """Facts from the allow-listed attributes of the AttributeList at ``offset``. An
    attribute whose value does not parse is skipped; a list whose framing is broken is
    Malformed."""
    facts = Facts()
    for attr, value in _attributes(data, offset):
        try:
            READERS[attr](value, facts)
        except Malformed:
            continue
    return facts


class IntelliVueParser(VendorDatagramParser):
    """One UDP conversation of IntelliVue data export (see module docstring)."""

    name = "intellivue"

    def __init__(self, flow: FlowKey) -> None:
        super().__init__(flow)
        self.messages: dict[str, int] = {}

    def decode_message(self, direction: Direction, data: bytes, ts: float) -> list[Observation]:
        ident = classify(data)
        if ident is None:
            raise Malformed("not an IntelliVue data export message")
        shape = ident.removeprefix(FAMILY)
        self.messages[shape] = self.messages.get(shape, 0) + 1
        sender = self.sender(direction)
        out: list[Observation] = []
        if ident == "intellivue.connect_indication":
            facts = read_attributes(data, HEADER.size)
            self._monitor(out, sender, facts, ts)
        elif ident == "intellivue.mds_create":
            facts = read_attributes(data, HEADER.size + 6)
            self._monitor(out, sender, facts, ts)
        elif ident == "intellivue.association_response":
            self._monitor(out, sender, Facts(), ts)
            self.emit(out, "intellivue.role", self.receiver(direction), "data-export-client", ts)
        elif ident == "intellivue.association_request":
            self.emit(out, "intellivue.role", sender, "data-export-client", ts)
        return out

    def _monitor(self, out: list[Observation], host: str, facts: Facts, ts: float) -> None:
        self.emit(out, "intellivue.role", host, "monitor", ts)
        if not facts.vendor:
            self.emit(out, "intellivue.vendor", host, "Philips", ts, PROTOCOL_VENDOR_CONFIDENCE)
        if not facts.device_type:
            conf = MONITOR_BY_PROTOCOL_CONFIDENCE
            self.emit(out, "intellivue.device_type", host, "patient-monitor", ts, conf)
        for kind, value, conf, raw in facts.items:
            self.emit(out, kind, host, value, ts, conf, raw)


def spec() -> ParserSpec:
    return ParserSpec(
        name=IntelliVueParser.name,
        transport="udp",
        probe=probe,
        factory=IntelliVueParser,
        port_hints=signatures.port_hints(FAMILY),
    )


__all__ = [
    "PORT_CONNECT_INDICATION",
    "PORT_PROTOCOL",
    "IntelliVueParser",
    "classify",
    "probe",
    "read_attributes",
    "spec",
]
