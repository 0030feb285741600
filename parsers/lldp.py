"""LLDP (IEEE 802.1AB-2016) frame parser: what a switch, phone or device says about itself.

One call per frame (EtherType 0x88CC), no state. Reads the LLDPDU's TLVs (802.1AB-2016 8.4,
8.5): chassis ID (8.5.2, subtypes table 8-2), port ID (8.5.3, table 8-3), port description
(8.5.5), system name (8.5.6), system description (8.5.7), system capabilities (8.5.8,
table 8-4), management address (8.5.9); organisationally specific TLVs (8.6): IEEE 802.1
Port VLAN ID and VLAN Name (802.1Q-2014 Annex D.2.1 and D.2.3), ANSI/TIA-1057 LLDP-MED
(OUI 00-12-BB: capabilities with device class 10.2.2, network policy 10.2.3, inventory
10.2.6: hardware/firmware/software revision, serial number, manufacturer, model, asset ID)
and the IETF MUD URL (RFC 8520 section 10, OUI 00-00-5E subtype 1).

Every fact is about the sender: host ``mac:<source MAC>``. Claims: ``lldp.hostname`` (system
name), ``lldp.vendor`` / ``lldp.model`` / ``lldp.software_version`` / ``lldp.serial``
(LLDP-MED inventory, or a known system description pattern; a manufacturer name is
normalised with the shared manufacturer table ``dicom_manufacturers.csv`` when it is listed
there), ``lldp.device_type``
(capabilities, LLDP-MED device class, system description).

Never read: LLDP-MED location identification (civic address / coordinates / ELIN: where a
device is, not what it is), power-via-MDI, 802.3 MAC/PHY and link aggregation TLVs, unknown
organisationally specific TLVs (only their OUI is looked at). Bad input never raises:
a malformed LLDPDU yields the facts of the TLVs before the fault, and nothing after it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from parsers.base import L2Frame, Malformed, Observation
from parsers.dicom.fingerprints import vendor_of_manufacturer
from parsers.registry import FrameSpec
from parsers.vocabulary import MAC_HOST_PREFIX
from parsers.wire import CONTROL

ETHERTYPE_LLDP = 0x88CC
MAX_TLVS = 256  # an LLDPDU fits one frame (<= 1500 bytes); more TLVs than this is not LLDP
MAX_ADDRESSES = 8  # management addresses kept per LLDPDU
MAX_VALUE_CHARS = 256  # longest value emitted; sysName/sysDescr are at most 255 octets anyway

# TLV types (802.1AB-2016 table 8-1)
END, CHASSIS_ID, PORT_ID, TTL, PORT_DESC, SYS_NAME, SYS_DESC, SYS_CAPS, MGMT_ADDR = range(9)
ORG_SPECIFIC = 127

OUI_8021 = b"\x00\x80\xc2"  # IEEE 802.1
OUI_MED = b"\x00\x12\xbb"  # TIA TR-41 (LLDP-MED, ANSI/TIA-1057)
OUI_IANA = b"\x00\x00\x5e"  # IANA (MUD URL, RFC 8520)

# 802.1AB-2016 table 8-4 (system capabilities), bit 0 first
CAPABILITY_NAMES = (
    "other", "repeater", "bridge", "wlan-access-point", "router", "telephone",
    "docsis-cable-device", "station-only", "c-vlan-component", "s-vlan-component",
    "two-port-mac-relay",
)
INFRASTRUCTURE_CAPS = frozenset(
    {"repeater", "bridge", "wlan-access-point", "router", "docsis-cable-device",
     "c-vlan-component", "s-vlan-component", "two-port-mac-relay"}
)
# ANSI/TIA-1057 10.2.2.2 LLDP-MED device type
MED_DEVICE_CLASSES = {
    1: "endpoint class I",
    2: "endpoint class II",
    3: "endpoint class III",
    4: "network connectivity",
}
# ANSI/TIA-1057 10.2.3.2 network policy application types
MED_APPLICATIONS = {
    1: "voice", 2: "voice signaling", 3: "guest voice", 4: "guest voice signaling",
    5: "softphone voice", 6: "video conferencing", 7: "streaming video", 8: "video signaling",
}
MED_INVENTORY = {  # ANSI/TIA-1057 10.2.6 subtype -> evidence suffix
    5: "hardware_revision",
    6: "firmware_revision",
    7: "software_revision",
    8: "serial_number",
    9: "manufacturer",
    10: "model_name",
    11: "asset_id",
}
# IANA address family numbers (802.1AB-2016 8.5.9.3 refers to them)
AF_IPV4, AF_IPV6, AF_802 = 1, 2, 6

# Confidences (0..1) of claims, and why.
CONF_SYS_NAME = 0.8  # the name the device was configured with
CONF_MED_VENDOR = 0.7  # LLDP-MED inventory: the device names its maker, a field meant for this
CONF_MED_MODEL = 0.7  # ... and its model
CONF_MED_SERIAL = 0.7  # ... and its serial number
CONF_MED_SOFTWARE = 0.6  # software revision as the firmware reports it; format varies by vendor
CONF_MED_FIRMWARE = 0.4  # firmware revision, used only when no software revision is sent
CONF_MED_CLASS_NETWORK = 0.7  # LLDP-MED "network connectivity device": a switch or AP
CONF_MED_CLASS_PHONE = 0.5  # LLDP-MED class III is a communication endpoint: mostly IP phones
CONF_CAPS_PHONE = 0.6  # "telephone" enabled: IP phones (their PC port also makes them bridges)
CONF_CAPS_INFRA = 0.5  # bridge/router/AP enabled; lldpd on any Linux host offers these
#                        (lldpd_main: c_cap_available = BRIDGE | WLAN | ROUTER | STATION)
CONF_CAPS_INFRA_HOST_OS = 0.3  # ... and its system description names a general-purpose OS
CONF_SYSDESC = 0.6  # a known system description pattern (vendor, OS, version)
CONF_SYSDESC_MODEL = 0.4  # the platform family inside a system description, not the full model
CONF_SYSDESC_TYPE = 0.5  # a network OS named in the system description


@dataclass(frozen=True, slots=True)
class SystemDescription:
    """A recognised system description: who made the software, which OS, which version."""

    vendor: str | None
    os: str
    version: str | None
    model: str | None
    device_type: str | None


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    vendor: str | None
    os: str
    device_type: str | None
    source: str


# System description patterns (LLDP sysDescr, CDP software version). Named groups: version,
# model. Each has a source; a description that matches none yields no claim.
SYSTEM_DESCRIPTIONS = (
    _Pattern(
        re.compile(
            r"^Cisco IOS Software, (?P<model>[\w-]+) Software \([^)]*\), "
            r"Version (?P<version>[^,\s]+)"
        ),
        "Cisco", "Cisco IOS", "network-infrastructure",
        "tcpdump tests/LLDP_and_CDP.pcap (PacketLife): LLDP sysDescr and CDP software version "
        "'Cisco IOS Software, C3560 Software (C3560-ADVIPSERVICESK9-M), Version 12.2(44)SE, ...'",
    ),
    _Pattern(
        re.compile(r"\bLinux (?P<version>\d+\.\d+[\w.+-]*)"),
        None, "Linux", None,
        "lldpd src/daemon/lldpd.c builds sysDescr from /etc/os-release and uname: tcpdump "
        "tests/lldp_mudurl.pcap 'Ubuntu 14.04.5 LTS Linux 3.13.0-106-generic #153-Ubuntu SMP ...'",
    ),
)


def describe_system(text: str) -> SystemDescription | None:
    """Vendor, OS, version and platform family from a system description, if recognised."""
    for pattern in SYSTEM_DESCRIPTIONS:
        match = pattern.regex.search(text)
        if match is None:
            continue
        groups = match.groupdict()
        return SystemDescription(
            vendor=pattern.vendor,
            os=pattern.os,
            version=groups.get("version"),
            model=groups.get("model") if pattern.vendor else None,
            device_type=pattern.device_type,
        )
    return None


_CONTROL = CONTROL  # C1 and U+2028/9 too: utf-8 text can hold them


def clean_text(raw: bytes) -> str:
    """Printable text of a string field: control characters become spaces, bounded length."""
    text = raw.decode("utf-8", errors="replace")
    text = _CONTROL.sub(" ", text)
    return " ".join(text.split())[:MAX_VALUE_CHARS]


def first_line(raw: bytes) -> str:
    """The first non-empty line of a multi-line description (IOS versions span three)."""
    for line in raw.replace(b"\r", b"\n").split(b"\n"):
        text = clean_text(line)
        if text:
            return text
    return ""


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def address_text(family: int, raw: bytes) -> str | None:
    """An address by IANA address family number; None for families not shown."""
    if family == AF_IPV4 and len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if family == AF_IPV6 and len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    if family == AF_802 and len(raw) == 6:
        return mac_text(raw)
    return None


def tlvs(payload: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, value) of each TLV up to End of LLDPDU; Malformed when a TLV overruns."""
    pos = 0
    for _ in range(MAX_TLVS):
        if pos == len(payload):
            return  # no End TLV: tolerated (the mandatory TLVs were checked by the caller)
        if pos + 2 > len(payload):
            raise Malformed(f"TLV header cut at offset {pos}")
        head = int.from_bytes(payload[pos : pos + 2], "big")
        kind, length = head >> 9, head & 0x1FF
        pos += 2
        if pos + length > len(payload):
            raise Malformed(f"TLV type {kind} of {length} bytes overruns the frame")
        if kind == END:
            return  # what follows is Ethernet padding or an FCS trailer
        yield kind, payload[pos : pos + length]
        pos += length
    raise Malformed(f"more than {MAX_TLVS} TLVs")


def _id_text(subtype: int, value: bytes, mac_subtype: int, addr_subtype: int) -> str:
    if subtype == mac_subtype and len(value) == 6:
        return mac_text(value)
    if subtype == addr_subtype and value:
        return address_text(value[0], value[1:]) or value.hex()
    text = clean_text(value)
    if text and text.isprintable():
        return text
    return value.hex()[: MAX_VALUE_CHARS]


def _caps(bits: int) -> list[str]:
    return [name for i, name in enumerate(CAPABILITY_NAMES) if bits >> i & 1]


@dataclass(slots=True)
class LldpInfo:
    """The device-identifying content of one LLDPDU."""

    chassis_id: str | None = None
    port_id: str | None = None
    port_description: str | None = None
    system_name: str | None = None
    system_description: str | None = None
    system_description_full: str | None = None
    capabilities: list[str] = field(default_factory=list)  # supported
    enabled: list[str] = field(default_factory=list)
    management_addresses: list[str] = field(default_factory=list)
    native_vlan: int | None = None
    vlan_names: list[str] = field(default_factory=list)
    mud_url: str | None = None
    med_device_class: int | None = None
    med_policies: list[str] = field(default_factory=list)
    inventory: dict[str, str] = field(default_factory=dict)  # MED_INVENTORY suffix -> text
    error: str | None = None  # why decoding stopped early, when it did


def decode_lldpdu(payload: bytes) -> LldpInfo:
    """Decode an LLDPDU; raises Malformed only when it cannot be one (no chassis ID first).

    A TLV that overruns stops decoding: what came before it is kept, ``error`` says why.
    """
    if len(payload) < 2 or payload[0] >> 1 != CHASSIS_ID:
        raise Malformed("an LLDPDU starts with the Chassis ID TLV")
    info = LldpInfo()
    try:
        for kind, value in tlvs(payload):
            _apply(info, kind, value)
    except Malformed as exc:
        if info.chassis_id is None:
            raise
        info.error = str(exc)
    if info.chassis_id is None:
        raise Malformed("no Chassis ID")
    return info


def _apply(info: LldpInfo, kind: int, value: bytes) -> None:
    if kind == CHASSIS_ID and value:
        info.chassis_id = _id_text(value[0], value[1:], mac_subtype=4, addr_subtype=5)
    elif kind == PORT_ID and value:
        info.port_id = _id_text(value[0], value[1:], mac_subtype=3, addr_subtype=4)
    elif kind == PORT_DESC:
        info.port_description = clean_text(value) or None
    elif kind == SYS_NAME:
        info.system_name = clean_text(value) or None
    elif kind == SYS_DESC:
        info.system_description = first_line(value) or None
        info.system_description_full = clean_text(value) or None
    elif kind == SYS_CAPS and len(value) == 4:
        info.capabilities = _caps(int.from_bytes(value[:2], "big"))
        info.enabled = _caps(int.from_bytes(value[2:], "big"))
    elif kind == MGMT_ADDR and len(value) >= 2:
        length = value[0]  # address string length: subtype + address
        if 2 <= length <= 32 and len(value) >= 1 + length:
            addr = address_text(value[1], value[2 : 1 + length])
            known = info.management_addresses
            if addr is not None and addr not in known and len(known) < MAX_ADDRESSES:
                info.management_addresses.append(addr)
    elif kind == ORG_SPECIFIC and len(value) >= 4:
        _org_specific(info, value[:3], value[3], value[4:])


def _org_specific(info: LldpInfo, oui: bytes, subtype: int, data: bytes) -> None:
    if oui == OUI_8021:
        if subtype == 1 and len(data) == 2:  # Port VLAN ID
            vid = int.from_bytes(data, "big")
            info.native_vlan = vid or None  # 0: the port is not VLAN-aware
        elif subtype == 3 and len(data) >= 3:  # VLAN Name: VID, name length, name
            vid, length = int.from_bytes(data[:2], "big"), data[2]
            name = clean_text(data[3 : 3 + length])
            if name and len(info.vlan_names) < 16:
                info.vlan_names.append(f"{vid} {name}")
    elif oui == OUI_MED:
        if subtype == 1 and len(data) == 3:  # capabilities (2) + device type (1)
            info.med_device_class = data[2] or None
        elif subtype == 2 and len(data) == 4:  # network policy
            app = MED_APPLICATIONS.get(data[0])
            word = int.from_bytes(data[1:], "big")
            unknown, tagged, vid = word >> 23 & 1, word >> 22 & 1, word >> 9 & 0xFFF
            if app and not unknown and len(info.med_policies) < 8:
                info.med_policies.append(f"{app} vlan {vid}" if tagged else f"{app} untagged")
        elif subtype in MED_INVENTORY:
            text = clean_text(data)
            if text:
                info.inventory[MED_INVENTORY[subtype]] = text
    elif oui == OUI_IANA and subtype == 1:  # RFC 8520: MUD URL
        url = clean_text(data)
        if url:
            info.mud_url = url


class Facts:
    """Observations about one host, built up field by field.

    Empty values are skipped; a repeated (kind, value) is kept once, with the highest
    confidence any reason gave it.
    """

    __slots__ = ("_index", "host", "out", "prefix", "ts")

    def __init__(self, prefix: str, host: str, ts: float) -> None:
        self.prefix = prefix
        self.host = host
        self.ts = ts
        self.out: list[Observation] = []
        self._index: dict[tuple[str, str], int] = {}

    def add(
        self, kind: str, value: str | None, confidence: float = 1.0, raw: str | None = None
    ) -> None:
        if not value:
            return
        kind = f"{self.prefix}.{kind}"
        obs = Observation(kind, self.host, value, self.ts, None, raw, confidence)
        i = self._index.get((kind, value))
        if i is None:
            self._index[(kind, value)] = len(self.out)
            self.out.append(obs)
        elif confidence > self.out[i].confidence:
            self.out[i] = obs


def observations(info: LldpInfo, src_mac: str, ts: float) -> list[Observation]:
    """Evidence and claims about the sender of ``info``."""
    facts = Facts("lldp", MAC_HOST_PREFIX + src_mac.lower(), ts)
    add = facts.add
    add("chassis_id", info.chassis_id)
    add("port_id", info.port_id)
    add("port_description", info.port_description)
    add("system_name", info.system_name)
    add("hostname", info.system_name, CONF_SYS_NAME)
    full = info.system_description_full
    add("system_description", info.system_description,
        raw=full if full != info.system_description else None)
    add("capabilities", ",".join(info.enabled))
    if info.capabilities != info.enabled:
        add("capabilities_supported", ",".join(info.capabilities))
    for addr in info.management_addresses:
        add("management_address", addr)
    if info.native_vlan is not None:
        add("native_vlan", str(info.native_vlan))
    for name in info.vlan_names:
        add("vlan_name", name)
    add("mud_url", info.mud_url)
    if info.med_device_class is not None:
        add("med_device_class", MED_DEVICE_CLASSES.get(info.med_device_class,
                                                        f"reserved {info.med_device_class}"))
    for policy in info.med_policies:
        add("med_network_policy", policy)
    for suffix, text in info.inventory.items():
        add(suffix, text)
    _claims(info, facts)
    return facts.out


def _claims(info: LldpInfo, facts: Facts) -> None:
    add = facts.add
    inv = info.inventory
    maker = inv.get("manufacturer")
    if maker:
        vendor = vendor_of_manufacturer(maker) or maker
        add("vendor", vendor, CONF_MED_VENDOR, raw=maker if vendor != maker else None)
    add("model", inv.get("model_name"), CONF_MED_MODEL)
    add("serial", inv.get("serial_number"), CONF_MED_SERIAL)
    if "software_revision" in inv:
        add("software_version", inv["software_revision"], CONF_MED_SOFTWARE)
    else:
        add("software_version", inv.get("firmware_revision"), CONF_MED_FIRMWARE)
    described = describe_system(info.system_description_full or "")
    host_os = False
    if described is not None:
        add_system(facts, described)
        host_os = described.vendor is None
    enabled = set(info.enabled)
    if "telephone" in enabled:
        add("device_type", "phone", CONF_CAPS_PHONE)
    elif enabled & INFRASTRUCTURE_CAPS:
        add("device_type", "network-infrastructure",
            CONF_CAPS_INFRA_HOST_OS if host_os else CONF_CAPS_INFRA)
    if info.med_device_class == 4:
        add("device_type", "network-infrastructure", CONF_MED_CLASS_NETWORK)
    elif info.med_device_class == 3:
        add("device_type", "phone", CONF_MED_CLASS_PHONE)


def add_system(facts: Facts, described: SystemDescription, with_model: bool = True) -> None:
    """Claims from a recognised system description (LLDP sysDescr, CDP software version).

    A general-purpose OS (no vendor in the pattern) gives only ``<proto>.os`` with its
    version: a kernel version is not the device's software version.
    """
    if described.vendor is None:
        facts.add("os", f"{described.os} {described.version}" if described.version
                  else described.os)
        return
    facts.add("os", described.os)
    facts.add("vendor", described.vendor, CONF_SYSDESC)
    facts.add("software_version", described.version, CONF_SYSDESC)
    if with_model:  # CDP's Platform TLV names the model better than the image family
        facts.add("model", described.model, CONF_SYSDESC_MODEL)
    facts.add("device_type", described.device_type, CONF_SYSDESC_TYPE)


def parse_frame(frame: L2Frame) -> list[Observation]:
    """FrameSpec entry point: observations about the frame's sender; [] for a bad LLDPDU."""
    if frame.ethertype != ETHERTYPE_LLDP:
        return []
    try:
        info = decode_lldpdu(frame.payload)
    except Malformed:
        return []
    return observations(info, frame.src_mac, frame.ts)


SPEC = FrameSpec(name="lldp", ethertypes=frozenset({ETHERTYPE_LLDP}), parse=parse_frame)
