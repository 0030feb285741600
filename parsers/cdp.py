"""CDP (Cisco Discovery Protocol v1/v2) frame parser: switches, routers, IP phones name themselves.

One call per 802.3/LLC frame, no state. CDP rides LLC/SNAP (DSAP/SSAP 0xAA, UI, OUI
00-00-0C, PID 0x2000) to 01:00:0c:cc:cc:cc. Cisco has not published a specification; the
layout read here is the one implemented by Wireshark's dissector (epan/dissectors/packet-cdp.c)
and scapy (scapy/contrib/cdp.py): a 4-byte header (version, TTL, checksum), then TLVs of
type (2), length (2, header included), value.

Read: Device ID (0x0001), Addresses (0x0002) and Management Addresses (0x0016), Port ID
(0x0003), Capabilities (0x0004), Software Version (0x0005), Platform (0x0006), VTP
management domain (0x0009), Native VLAN (0x000A), VoIP VLAN reply (0x000E), System Name
(0x0014). Never read: physical location (0x0017: where, not what), power, trust, duplex, MTU,
cluster-management hello and unknown TLVs. Every other LLC frame (STP, DTP, VTP, PAgP, UDLD,
NetBIOS...) is dismissed by an 8-byte header comparison before anything else is done.

Facts are about the sender: host ``mac:<source MAC>``. Claims: ``cdp.hostname`` (System
Name, or Device ID), ``cdp.vendor`` / ``cdp.model`` (Platform), ``cdp.software_version``
(Software Version), ``cdp.device_type`` (capabilities; the Phone bit wins).
"""

from __future__ import annotations

import re

from parsers.base import L2Frame, Malformed, Observation
from parsers.lldp import Facts, add_system, address_text, clean_text, describe_system, first_line
from parsers.registry import LLC, FrameSpec
from parsers.vocabulary import MAC_HOST_PREFIX

SNAP_CDP = b"\xaa\xaa\x03\x00\x00\x0c\x20\x00"  # LLC DSAP/SSAP SNAP, UI; OUI Cisco; PID CDP
HEADER_LEN = 4  # version, TTL, checksum (2)
MAX_TLVS = 128
MAX_ADDRESSES = 16  # per Addresses TLV, and per frame

DEVICE_ID, ADDRESSES, PORT_ID, CAPABILITIES, SOFTWARE, PLATFORM = 1, 2, 3, 4, 5, 6
VTP_DOMAIN, NATIVE_VLAN, VOIP_VLAN_REPLY, SYSTEM_NAME, MGMT_ADDRESSES = 9, 10, 14, 20, 22

# Capabilities bits (packet-cdp.c, scapy CDPMsgCapabilities)
CAPABILITY_BITS = (
    (0x001, "router"), (0x002, "transparent-bridge"), (0x004, "source-route-bridge"),
    (0x008, "switch"), (0x010, "host"), (0x020, "igmp"), (0x040, "repeater"),
    (0x080, "phone"), (0x100, "remotely-managed"), (0x200, "cvta"),
    (0x400, "two-port-mac-relay"),
)
INFRASTRUCTURE = frozenset(
    {"router", "transparent-bridge", "source-route-bridge", "switch", "repeater"}
)
NLPID_IP = b"\xcc"
SNAP_IPV6 = b"\xaa\xaa\x03\x00\x00\x00\x86\xdd"

# Confidences (0..1) of claims, and why.
CONF_SYSTEM_NAME = 0.8  # the configured host name
CONF_DEVICE_ID = 0.6  # usually the host name; some devices send a serial or SEP<MAC> instead
CONF_PLATFORM = 0.7  # the platform string is the hardware model the device reports
CONF_PLATFORM_NO_VENDOR = 0.5  # a platform from a non-Cisco CDP speaker, maker unknown
CONF_PHONE = 0.7  # the Phone capability bit: Cisco IP phones set it
CONF_INFRA = 0.7  # router/switch/bridge bits: CDP is mostly spoken by Cisco network gear
CONF_SOFTWARE_LINE = 0.4  # first line of an unrecognised software version string

_CISCO_PLATFORM = re.compile(r"^cisco\s+(?P<model>\S.*)$", re.IGNORECASE)
MAX_VERSION_LINE = 64  # an unrecognised version line longer than this is no version


def _text(value: bytes) -> str | None:
    return clean_text(value) or None


def _addresses(value: bytes) -> list[str]:
    """Addresses TLV: count (4), then per address protocol type, length, protocol, length, addr."""
    if len(value) < 4:
        raise Malformed("Addresses TLV shorter than its count")
    count = int.from_bytes(value[:4], "big")
    pos, out = 4, []
    for _ in range(min(count, MAX_ADDRESSES)):
        if pos + 2 > len(value):
            raise Malformed("address entry cut")
        plen = value[pos + 1]
        proto = value[pos + 2 : pos + 2 + plen]
        pos += 2 + plen
        if pos + 2 > len(value):
            raise Malformed("address length cut")
        alen = int.from_bytes(value[pos : pos + 2], "big")
        addr = value[pos + 2 : pos + 2 + alen]
        pos += 2 + alen
        if pos > len(value):
            raise Malformed("address overruns its TLV")
        text = None
        if proto == NLPID_IP:
            text = address_text(1, addr)
        elif proto == SNAP_IPV6:
            text = address_text(2, addr)
        if text and text not in ("0.0.0.0", "::") and text not in out:
            out.append(text)
    return out


def _capabilities(value: bytes) -> list[str]:
    if len(value) != 4:
        raise Malformed(f"Capabilities TLV of {len(value)} bytes")
    bits = int.from_bytes(value, "big")
    return [name for bit, name in CAPABILITY_BITS if bits & bit]


def decode_cdp(payload: bytes, facts: Facts) -> None:
    """Add the facts of one CDP frame (``payload`` starts at the LLC header) to ``facts``.

    Raises Malformed when it is not CDP at all or the header is bad; a TLV that overruns stops
    decoding, keeping what came before it.
    """
    if payload[:8] != SNAP_CDP:
        raise Malformed("not LLC/SNAP Cisco CDP")
    data = payload[8:]
    if len(data) < HEADER_LEN or data[0] not in (1, 2):
        raise Malformed("CDP header")
    pos = HEADER_LEN
    device_id = system_name = None
    software: bytes | None = None
    platform: str | None = None
    caps: list[str] = []
    addresses = 0
    for _ in range(MAX_TLVS):
        if pos + 4 > len(data):
            break  # done (or trailing padding shorter than a TLV header)
        kind = int.from_bytes(data[pos : pos + 2], "big")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 4 or pos + length > len(data):
            break  # overrun: keep what came before
        value = data[pos + 4 : pos + length]
        pos += length
        if kind == DEVICE_ID:
            device_id = _text(value)
            facts.add("device_id", device_id)
        elif kind in (ADDRESSES, MGMT_ADDRESSES) and addresses < MAX_ADDRESSES:
            try:
                found = _addresses(value)[: MAX_ADDRESSES - addresses]
            except Malformed:
                continue  # one bad address list says nothing about the other TLVs
            addresses += len(found)
            for addr in found:
                facts.add("address" if kind == ADDRESSES else "management_address", addr)
        elif kind == PORT_ID:
            facts.add("port_id", _text(value))
        elif kind == CAPABILITIES:
            try:
                caps = _capabilities(value)
            except Malformed:
                continue
            facts.add("capabilities", ",".join(caps))
        elif kind == SOFTWARE:
            software = value
            facts.add("software_version_string", first_line(value), raw=_text(value))
        elif kind == PLATFORM:
            platform = _text(value)
            _platform(facts, platform)
        elif kind == VTP_DOMAIN:
            facts.add("vtp_domain", _text(value))
        elif kind == NATIVE_VLAN and len(value) == 2:
            facts.add("native_vlan", str(int.from_bytes(value, "big")))
        elif kind == VOIP_VLAN_REPLY and len(value) == 3:
            facts.add("voice_vlan", str(int.from_bytes(value[1:], "big")))
        elif kind == SYSTEM_NAME:
            system_name = _text(value)
            facts.add("system_name", system_name)
    facts.add("hostname", system_name, CONF_SYSTEM_NAME)
    if not system_name:
        facts.add("hostname", device_id, CONF_DEVICE_ID)
    if software is not None:
        described = describe_system(clean_text(software))
        if described is not None:
            add_system(facts, described, with_model=platform is None)
        else:
            line = first_line(software)
            if len(line) <= MAX_VERSION_LINE:
                facts.add("software_version", line, CONF_SOFTWARE_LINE)
    if "phone" in caps:
        facts.add("device_type", "phone", CONF_PHONE)
    elif INFRASTRUCTURE.intersection(caps):
        facts.add("device_type", "network-infrastructure", CONF_INFRA)


def _platform(facts: Facts, platform: str | None) -> None:
    if not platform:
        return
    facts.add("platform", platform)
    match = _CISCO_PLATFORM.match(platform)
    if match is not None:
        facts.add("vendor", "Cisco", CONF_PLATFORM)
        facts.add("model", match["model"], CONF_PLATFORM)
    else:
        facts.add("model", platform, CONF_PLATFORM_NO_VENDOR)


def parse_frame(frame: L2Frame) -> list[Observation]:
    """FrameSpec entry point for LLC frames: CDP facts about the sender, [] for anything else."""
    payload = frame.payload
    if payload[:8] != SNAP_CDP:
        return []  # STP, DTP, VTP...: the common case, one comparison
    facts = Facts("cdp", MAC_HOST_PREFIX + frame.src_mac.lower(), frame.ts)
    try:
        decode_cdp(payload, facts)
    except Malformed:
        return []
    return facts.out


SPEC = FrameSpec(name="cdp", ethertypes=frozenset({LLC}), parse=parse_frame)
