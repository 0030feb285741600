"""Craft the L2-discovery and DHCP test captures of pcaps/l2 with scapy (deterministic).

    python pcaps/l2/make_l2_pcaps.py            # writes <name>.pcap and <name>.truth.json
    python pcaps/l2/make_l2_pcaps.py --truth-only

Every capture is crafted: no frame was recorded from a real device. Field layouts follow the
published descriptions named per capture in README.md; values that identify a product (model
names, firmware strings, vendor class strings) are illustrative unless the README says where
they come from. Timestamps are fixed and nothing is random, so a rerun gives identical bytes.
The truth files are written from the TRUTH table below (what the frames were made to say),
never from parser output.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

from scapy.contrib.cdp import (
    CDPAddrRecordIPv4,
    CDPMsgAddr,
    CDPMsgCapabilities,
    CDPMsgDeviceID,
    CDPMsgNativeVLAN,
    CDPMsgPlatform,
    CDPMsgPortID,
    CDPMsgSoftwareVersion,
    CDPMsgVoIPVLANReply,
    CDPv2_HDR,
)
from scapy.contrib.lldp import (
    LLDPDUChassisID,
    LLDPDUEndOfLLDPDU,
    LLDPDUGenericOrganisationSpecific,
    LLDPDUManagementAddress,
    LLDPDUPortDescription,
    LLDPDUPortID,
    LLDPDUSystemCapabilities,
    LLDPDUSystemDescription,
    LLDPDUSystemName,
    LLDPDUTimeToLive,
)
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dhcp6 import (
    DUID_LL,
    DUID_LLT,
    VENDOR_CLASS_DATA,
    DHCP6_Advertise,
    DHCP6_Reply,
    DHCP6_Request,
    DHCP6_Solicit,
    DHCP6OptClientFQDN,
    DHCP6OptClientId,
    DHCP6OptElapsedTime,
    DHCP6OptIA_NA,
    DHCP6OptIAAddress,
    DHCP6OptOptReq,
    DHCP6OptServerId,
    DHCP6OptVendorClass,
)
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import LLC, SNAP, STP, Dot1Q, Dot3, Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

HERE = Path(__file__).resolve().parent
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z, fixed
LLDP_MCAST = "01:80:c2:00:00:0e"
CDP_MCAST = "01:00:0c:cc:cc:cc"
STP_MCAST = "01:80:c2:00:00:00"

SWITCH_CHASSIS = "00:1e:7a:4c:11:00"  # Cisco OUI
SWITCH_PORT_MON = "00:1e:7a:4c:11:07"  # the access port facing the monitor
SWITCH_PORT_PHONE = "00:1e:7a:4c:11:08"
MONITOR = "00:09:fb:3a:7c:21"  # Philips OUI
PHONE = "00:1b:d4:6e:02:a1"  # Cisco OUI
WORKSTATION = "00:14:22:aa:bb:cc"  # Dell OUI
GE_DEVICE = "44:4b:5d:10:20:30"  # GE Healthcare OUI
ROUTER = "00:1e:7a:4c:11:40"  # DHCP relay (VLAN 20 gateway)
DHCP6_SERVER = "00:1e:7a:4c:11:41"

OUI_MED = 0x0012BB
OUI_8021 = 0x0080C2


def med(subtype: int, data: bytes) -> LLDPDUGenericOrganisationSpecific:
    return LLDPDUGenericOrganisationSpecific(org_code=OUI_MED, subtype=subtype, data=data)


def med_caps(caps: int, device_class: int) -> LLDPDUGenericOrganisationSpecific:
    """ANSI/TIA-1057 10.2.2: LLDP-MED capabilities (16 bits) and device type (8 bits)."""
    return med(1, struct.pack("!HB", caps, device_class))


def med_policy(app: int, vlan: int, priority: int = 5, dscp: int = 46) -> Packet:
    """ANSI/TIA-1057 10.2.3: app type, U=0, T=1, X=0, VLAN id (12), L2 prio (3), DSCP (6)."""
    word = (0 << 23) | (1 << 22) | (vlan << 9) | (priority << 6) | dscp
    return med(2, bytes([app]) + word.to_bytes(3, "big"))


def pvid(vid: int) -> LLDPDUGenericOrganisationSpecific:
    """IEEE 802.1Q-2014 D.2.1 Port VLAN ID TLV."""
    return LLDPDUGenericOrganisationSpecific(org_code=OUI_8021, subtype=1,
                                             data=vid.to_bytes(2, "big"))


def vlan_name(vid: int, name: bytes) -> LLDPDUGenericOrganisationSpecific:
    """IEEE 802.1Q-2014 D.2.3 VLAN Name TLV."""
    return LLDPDUGenericOrganisationSpecific(
        org_code=OUI_8021, subtype=3, data=vid.to_bytes(2, "big") + bytes([len(name)]) + name
    )


def lldp_frame(src: str, *tlvs: Packet, vlan: int | None = None) -> Packet:
    body: Packet = tlvs[0]
    for tlv in tlvs[1:]:
        body = body / tlv
    if vlan is not None:
        return Ether(src=src, dst=LLDP_MCAST) / Dot1Q(vlan=vlan, type=0x88CC) / body
    return Ether(src=src, dst=LLDP_MCAST, type=0x88CC) / body


def lldp_med_frames() -> list[Packet]:
    """Access switch port, patient monitor, IP phone; a malformed and a truncated LLDPDU."""
    switch = lldp_frame(
        SWITCH_PORT_MON,
        LLDPDUChassisID(subtype=4, id=SWITCH_CHASSIS),
        LLDPDUPortID(subtype=5, id=b"Gi1/0/7"),
        LLDPDUTimeToLive(ttl=120),
        LLDPDUPortDescription(description=b"ICU3 bed 7 monitor"),
        LLDPDUSystemName(system_name=b"icu3-access-sw1"),
        LLDPDUSystemDescription(
            description=b"Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), "
            b"Version 15.2(7)E4, RELEASE SOFTWARE (fc2)\nTechnical Support: "
            b"http://www.cisco.com/techsupport"
        ),
        LLDPDUSystemCapabilities(mac_bridge_available=1, router_available=1,
                                 mac_bridge_enabled=1),
        LLDPDUManagementAddress(management_address_subtype=1,
                                management_address=bytes([10, 20, 0, 2]),
                                interface_numbering_subtype=2, interface_number=1),
        pvid(20),
        vlan_name(20, b"ICU-MONITORS"),
        med_caps(0x000F, 4),
        LLDPDUEndOfLLDPDU(),
    )
    monitor = lldp_frame(
        MONITOR,
        LLDPDUChassisID(subtype=4, id=MONITOR),
        LLDPDUPortID(subtype=3, id=MONITOR),
        LLDPDUTimeToLive(ttl=120),
        LLDPDUSystemName(system_name=b"ICU3-BED07-MON"),
        LLDPDUSystemDescription(description=b"Philips IntelliVue MX800 patient monitor"),
        LLDPDUSystemCapabilities(station_only_available=1, station_only_enabled=1),
        med_caps(0x0021, 1),  # capabilities + inventory; Endpoint Class I
        med(5, b"A.01"),  # hardware revision
        med(6, b"M.00.03"),  # firmware revision
        med(7, b"M.00.03"),  # software revision
        med(8, b"DE71234567"),  # serial number
        med(9, b"Philips Medical Systems"),  # manufacturer
        med(10, b"IntelliVue MX800"),  # model name
        med(11, b"BME-004711"),  # asset ID
        LLDPDUEndOfLLDPDU(),
        vlan=20,
    )
    phone = lldp_frame(
        PHONE,
        LLDPDUChassisID(subtype=5, family=1, id="10.20.110.31"),  # network address, IPv4
        LLDPDUPortID(subtype=3, id=PHONE),
        LLDPDUTimeToLive(ttl=180),
        LLDPDUSystemName(system_name=b"SEP001BD46E02A1"),
        LLDPDUSystemCapabilities(mac_bridge_available=1, telephone_available=1,
                                 mac_bridge_enabled=1, telephone_enabled=1),
        med_caps(0x0033, 3),  # Endpoint Class III
        med_policy(1, 110),  # voice on VLAN 110
        med(9, b"Cisco Systems, Inc."),
        med(10, b"CP-8845"),
        LLDPDUEndOfLLDPDU(),
    )
    # A chassis ID, then a System Name TLV claiming 200 bytes in a 20-byte frame: decoding
    # keeps the chassis ID, drops the rest.
    broken = Ether(src="00:1e:7a:4c:11:09", dst=LLDP_MCAST, type=0x88CC) / Raw(
        bytes([CHASSIS_TLV_HEAD, 7, 4]) + mac_bytes("00:1e:7a:4c:11:09")
        + bytes([SYS_NAME_TLV_HEAD, 200]) + b"cut-short"
    )
    garbage = Ether(src="00:1e:7a:4c:11:0a", dst=LLDP_MCAST, type=0x88CC) / Raw(b"\xff" * 7)
    return [switch, monitor, phone, broken, garbage]


CHASSIS_TLV_HEAD = 1 << 1  # TLV type in the high 7 bits of the first byte (802.1AB 8.4.1)
SYS_NAME_TLV_HEAD = 5 << 1


def cdp_frame(src: str, *msgs: Packet) -> Packet:
    return (
        Dot3(src=src, dst=CDP_MCAST)
        / LLC(dsap=0xAA, ssap=0xAA, ctrl=3)
        / SNAP(OUI=0x00000C, code=0x2000)
        / CDPv2_HDR(vers=2, ttl=180, msg=list(msgs))
    )


def cdp_frames() -> list[Packet]:
    """A Cisco access switch and a Cisco IP phone; an STP BPDU that must be ignored."""
    switch = cdp_frame(
        SWITCH_PORT_PHONE,
        CDPMsgDeviceID(val=b"icu3-access-sw1.example.org"),
        CDPMsgSoftwareVersion(
            val=b"Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version "
            b"15.2(7)E4, RELEASE SOFTWARE (fc2)\nCopyright (c) 1986-2021 by Cisco Systems, Inc."
        ),
        CDPMsgPlatform(val=b"cisco WS-C2960X-48FPD-L"),
        CDPMsgAddr(naddr=1, addr=[CDPAddrRecordIPv4(addr="10.20.0.2")]),
        CDPMsgPortID(iface=b"GigabitEthernet1/0/8"),
        CDPMsgCapabilities(cap=0x28),  # Switch, IGMP
        CDPMsgNativeVLAN(vlan=20),
        CDPMsgVoIPVLANReply(status=1, vlan=110),
    )
    phone = cdp_frame(
        PHONE,
        CDPMsgDeviceID(val=b"SEP001BD46E02A1"),
        CDPMsgAddr(naddr=1, addr=[CDPAddrRecordIPv4(addr="10.20.110.31")]),
        CDPMsgPortID(iface=b"Port 1"),
        CDPMsgCapabilities(cap=0x490),  # Host, Phone, Two-port MAC relay
        CDPMsgSoftwareVersion(val=b"sip8845_65.12-8-1MN-12"),
        CDPMsgPlatform(val=b"Cisco IP Phone 8845"),
    )
    stp = Dot3(src=SWITCH_PORT_PHONE, dst=STP_MCAST) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / STP()
    return [switch, phone, stp]


def dhcp4(src_mac: str, src_ip: str, dst_ip: str, sport: int, dport: int, bootp: Packet,
          options: list[Any], vlan: int = 20) -> Packet:
    dst_mac = "ff:ff:ff:ff:ff:ff" if dst_ip == "255.255.255.255" else ROUTER
    return (
        Ether(src=src_mac, dst=dst_mac)
        / Dot1Q(vlan=vlan)
        / IP(src=src_ip, dst=dst_ip, id=0, ttl=64 if sport == 68 else 255)
        / UDP(sport=sport, dport=dport)
        / bootp
        / DHCP(options=[*options, "end"])
    )


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def dhcp_frames() -> list[Packet]:
    """Monitor DORA through a relay, a Windows workstation renewal, a DHCPv6 exchange."""
    mon_ch = mac_bytes(MONITOR)
    mon_req = [
        ("client_id", b"\x01" + mon_ch),
        ("hostname", b"ICU3-BED07-MON"),
        ("vendor_class_id", b"Philips IntelliVue MX800"),
        ("param_req_list", [1, 3, 6, 12, 15, 28, 42]),
    ]
    relay = dict(giaddr="10.20.30.1")
    frames = [
        dhcp4(MONITOR, "0.0.0.0", "255.255.255.255", 68, 67,
              BOOTP(op=1, chaddr=mon_ch, xid=0x4D4F4E31),
              [("message-type", "discover"), *mon_req]),
        dhcp4(ROUTER, "10.20.30.1", "255.255.255.255", 67, 68,
              BOOTP(op=2, chaddr=mon_ch, xid=0x4D4F4E31, yiaddr="10.20.30.41", **relay),
              [("message-type", "offer"), ("server_id", "10.0.0.5"),
               ("subnet_mask", "255.255.255.0"), ("router", "10.20.30.1"),
               ("lease_time", 86400)]),
        dhcp4(MONITOR, "0.0.0.0", "255.255.255.255", 68, 67,
              BOOTP(op=1, chaddr=mon_ch, xid=0x4D4F4E31),
              [("message-type", "request"), ("requested_addr", "10.20.30.41"),
               ("server_id", "10.0.0.5"), *mon_req]),
        dhcp4(ROUTER, "10.20.30.1", "255.255.255.255", 67, 68,
              BOOTP(op=2, chaddr=mon_ch, xid=0x4D4F4E31, yiaddr="10.20.30.41", **relay),
              [("message-type", "ack"), ("server_id", "10.0.0.5"),
               ("subnet_mask", "255.255.255.0"), ("router", "10.20.30.1"),
               ("lease_time", 86400)]),
        # Not DHCP, on the broadcast flow after it was confirmed: skipped, not fatal.
        Ether(src="00:14:22:00:00:99", dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=20)
        / IP(src="0.0.0.0", dst="255.255.255.255", id=0) / UDP(sport=68, dport=67)
        / Raw(b"\x01\x01\x06\x00" + b"\x00" * 40),
    ]
    ws_ch = mac_bytes(WORKSTATION)
    fqdn = b"\x00\x00\x00NURSE-WS-12.icu.example.org"  # RFC 4702: flags, rcodes, ASCII name
    frames += [
        dhcp4(WORKSTATION, "10.20.30.57", "10.0.0.5", 68, 67,
              BOOTP(op=1, chaddr=ws_ch, xid=0x57533132, ciaddr="10.20.30.57"),
              [("message-type", "request"), ("client_id", b"\x01" + ws_ch),
               ("hostname", b"NURSE-WS-12"), (81, fqdn),
               ("vendor_class_id", b"MSFT 5.0"),
               ("param_req_list", [1, 15, 3, 6, 44, 46, 47, 31, 33, 121, 249, 43, 252])]),
        dhcp4(ROUTER, "10.0.0.5", "10.20.30.57", 67, 68,
              BOOTP(op=2, chaddr=ws_ch, xid=0x57533132, ciaddr="10.20.30.57",
                    yiaddr="10.20.30.57"),
              [("message-type", "ack"), ("server_id", "10.0.0.5"), ("lease_time", 86400)]),
    ]
    frames += dhcp6_frames()
    return frames


def dhcp6_frames() -> list[Packet]:
    ge_ll = "fe80::464b:5dff:fe10:2030"
    srv_ll = "fe80::21e:7aff:fe4c:1141"
    client_id = DHCP6OptClientId(duid=DUID_LL(lladdr=GE_DEVICE))
    server_id = DHCP6OptServerId(duid=DUID_LLT(lladdr=DHCP6_SERVER, timeval=700_000_000))
    vendor = DHCP6OptVendorClass(
        enterprisenum=32473,  # RFC 5612: enterprise number reserved for documentation
        vcdata=[VENDOR_CLASS_DATA(data=b"GE Healthcare CARESCAPE B650")],
    )
    fqdn = DHCP6OptClientFQDN(flags=0x01, fqdn="carescape-b650-12.icu.example.org.")
    oro = DHCP6OptOptReq(reqopts=[23, 24, 39])
    ia = DHCP6OptIA_NA(iaid=0x0A0B0C0D, T1=0, T2=0)
    ia_reply = DHCP6OptIA_NA(iaid=0x0A0B0C0D, T1=3600, T2=5400, ianaopts=[
        DHCP6OptIAAddress(addr="2001:db8:20:30::41", preflft=7200, validlft=7200)])

    def to_server(msg: Packet) -> Packet:
        return (Ether(src=GE_DEVICE, dst="33:33:00:01:00:02") / Dot1Q(vlan=20)
                / IPv6(src=ge_ll, dst="ff02::1:2") / UDP(sport=546, dport=547) / msg)

    def to_client(msg: Packet) -> Packet:
        return (Ether(src=DHCP6_SERVER, dst=GE_DEVICE) / Dot1Q(vlan=20)
                / IPv6(src=srv_ll, dst=ge_ll) / UDP(sport=547, dport=546) / msg)

    return [
        to_server(DHCP6_Solicit(trid=0x11D6) / client_id / DHCP6OptElapsedTime() / ia
                  / fqdn / vendor / oro),
        to_client(DHCP6_Advertise(trid=0x11D6) / ia_reply / client_id / server_id),
        to_server(DHCP6_Request(trid=0x22D6) / client_id / server_id / DHCP6OptElapsedTime()
                  / ia / fqdn / vendor / oro),
        to_client(DHCP6_Reply(trid=0x22D6) / ia_reply / client_id / server_id),
    ]


CAPTURES = {
    "lldp_med": lldp_med_frames,
    "cdp_phone": cdp_frames,
    "dhcp_clinical": dhcp_frames,
}

TRUTH: dict[str, dict[str, Any]] = {
    "lldp_med": {
        "devices": [
            {"mac": SWITCH_PORT_MON, "device_type": "network-infrastructure",
             "vendor": "Cisco", "model": "C2960X", "software_version": "15.2(7)E4",
             "hostname": "icu3-access-sw1"},
            {"mac": MONITOR, "device_type": None, "vendor": "Philips",
             "model": "IntelliVue MX800", "software_version": "M.00.03", "serial": "DE71234567",
             "hostname": "ICU3-BED07-MON",
             "note": "a patient monitor; LLDP-MED names maker and model, not the device type"},
            {"mac": PHONE, "device_type": "phone", "vendor": "Cisco",
             "model": "CP-8845", "software_version": None, "hostname": "SEP001BD46E02A1"},
        ],
        "observations": [
            {"kind": "lldp.chassis_id", "host": f"mac:{SWITCH_PORT_MON}",
             "value": SWITCH_CHASSIS},
            {"kind": "lldp.port_id", "host": f"mac:{SWITCH_PORT_MON}", "value": "Gi1/0/7"},
            {"kind": "lldp.management_address", "host": f"mac:{SWITCH_PORT_MON}",
             "value": "10.20.0.2"},
            {"kind": "lldp.native_vlan", "host": f"mac:{SWITCH_PORT_MON}", "value": "20"},
            {"kind": "lldp.vlan_name", "host": f"mac:{SWITCH_PORT_MON}",
             "value": "20 ICU-MONITORS"},
            {"kind": "lldp.med_device_class", "host": f"mac:{SWITCH_PORT_MON}",
             "value": "network connectivity"},
            {"kind": "lldp.capabilities", "host": f"mac:{SWITCH_PORT_MON}", "value": "bridge"},
            {"kind": "lldp.os", "host": f"mac:{SWITCH_PORT_MON}", "value": "Cisco IOS"},
            {"kind": "lldp.hardware_revision", "host": f"mac:{MONITOR}", "value": "A.01"},
            {"kind": "lldp.firmware_revision", "host": f"mac:{MONITOR}", "value": "M.00.03"},
            {"kind": "lldp.software_revision", "host": f"mac:{MONITOR}", "value": "M.00.03"},
            {"kind": "lldp.serial_number", "host": f"mac:{MONITOR}", "value": "DE71234567"},
            {"kind": "lldp.manufacturer", "host": f"mac:{MONITOR}",
             "value": "Philips Medical Systems"},
            {"kind": "lldp.model_name", "host": f"mac:{MONITOR}", "value": "IntelliVue MX800"},
            {"kind": "lldp.asset_id", "host": f"mac:{MONITOR}", "value": "BME-004711"},
            {"kind": "lldp.vendor", "host": f"mac:{MONITOR}", "value": "Philips"},
            {"kind": "lldp.serial", "host": f"mac:{MONITOR}", "value": "DE71234567"},
            {"kind": "lldp.med_device_class", "host": f"mac:{MONITOR}",
             "value": "endpoint class I"},
            {"kind": "lldp.capabilities", "host": f"mac:{MONITOR}", "value": "station-only"},
            {"kind": "lldp.chassis_id", "host": f"mac:{PHONE}", "value": "10.20.110.31"},
            {"kind": "lldp.med_network_policy", "host": f"mac:{PHONE}",
             "value": "voice vlan 110"},
            {"kind": "lldp.med_device_class", "host": f"mac:{PHONE}",
             "value": "endpoint class III"},
            {"kind": "lldp.capabilities", "host": f"mac:{PHONE}", "value": "bridge,telephone"},
            {"kind": "lldp.chassis_id", "host": "mac:00:1e:7a:4c:11:09",
             "value": "00:1e:7a:4c:11:09"},
        ],
        "absent_hosts": ["mac:00:1e:7a:4c:11:0a"],
    },
    "cdp_phone": {
        "devices": [
            {"mac": SWITCH_PORT_PHONE, "device_type": "network-infrastructure",
             "vendor": "Cisco", "model": "WS-C2960X-48FPD-L", "software_version": "15.2(7)E4",
             "hostname": "icu3-access-sw1.example.org"},
            {"mac": PHONE, "device_type": "phone", "vendor": "Cisco",
             "model": "IP Phone 8845", "software_version": "sip8845_65.12-8-1MN-12",
             "hostname": "SEP001BD46E02A1"},
        ],
        "observations": [
            {"kind": "cdp.device_id", "host": f"mac:{SWITCH_PORT_PHONE}",
             "value": "icu3-access-sw1.example.org"},
            {"kind": "cdp.platform", "host": f"mac:{SWITCH_PORT_PHONE}",
             "value": "cisco WS-C2960X-48FPD-L"},
            {"kind": "cdp.address", "host": f"mac:{SWITCH_PORT_PHONE}", "value": "10.20.0.2"},
            {"kind": "cdp.port_id", "host": f"mac:{SWITCH_PORT_PHONE}",
             "value": "GigabitEthernet1/0/8"},
            {"kind": "cdp.native_vlan", "host": f"mac:{SWITCH_PORT_PHONE}", "value": "20"},
            {"kind": "cdp.voice_vlan", "host": f"mac:{SWITCH_PORT_PHONE}", "value": "110"},
            {"kind": "cdp.capabilities", "host": f"mac:{SWITCH_PORT_PHONE}",
             "value": "switch,igmp"},
            {"kind": "cdp.os", "host": f"mac:{SWITCH_PORT_PHONE}", "value": "Cisco IOS"},
            {"kind": "cdp.capabilities", "host": f"mac:{PHONE}",
             "value": "host,phone,two-port-mac-relay"},
            {"kind": "cdp.address", "host": f"mac:{PHONE}", "value": "10.20.110.31"},
            {"kind": "cdp.port_id", "host": f"mac:{PHONE}", "value": "Port 1"},
        ],
        "absent_kinds": ["stp"],
    },
    "dhcp_clinical": {
        "devices": [
            {"mac": MONITOR, "device_type": None, "vendor": "Philips", "model": None,
             "software_version": None, "hostname": "ICU3-BED07-MON",
             "assigned_ip": "10.20.30.41",
             "note": "vendor from the vendor class naming its maker (RFC 2132 9.13 heuristic)"},
            {"mac": WORKSTATION, "device_type": "workstation", "vendor": None, "model": None,
             "software_version": None, "hostname": "NURSE-WS-12",
             "assigned_ip": "10.20.30.57"},
            {"mac": GE_DEVICE, "device_type": None, "vendor": "GE Healthcare", "model": None,
             "software_version": None, "hostname": "carescape-b650-12.icu.example.org",
             "assigned_ip": "2001:db8:20:30::41"},
        ],
        "observations": [
            {"kind": "dhcp.vendor_class", "host": f"mac:{MONITOR}",
             "value": "Philips IntelliVue MX800"},
            {"kind": "dhcp.parameter_request_list", "host": f"mac:{MONITOR}",
             "value": "1,3,6,12,15,28,42"},
            {"kind": "dhcp.client_id", "host": f"mac:{MONITOR}",
             "value": f"01:{MONITOR}"},
            {"kind": "dhcp.requested_ip", "host": f"mac:{MONITOR}", "value": "10.20.30.41"},
            {"kind": "dhcp.offered_ip", "host": f"mac:{MONITOR}", "value": "10.20.30.41"},
            {"kind": "dhcp.assigned_ip", "host": f"mac:{MONITOR}", "value": "10.20.30.41"},
            {"kind": "dhcp.role", "host": "10.20.30.1", "value": "relay"},
            {"kind": "dhcp.role", "host": "10.0.0.5", "value": "server"},
            {"kind": "dhcp.vendor_class", "host": f"mac:{WORKSTATION}", "value": "MSFT 5.0"},
            {"kind": "dhcp.os", "host": f"mac:{WORKSTATION}",
             "value": "Windows Vista/7/Server 2008"},
            {"kind": "dhcp.os", "host": f"mac:{WORKSTATION}", "value": "Windows"},
            {"kind": "dhcp.fqdn", "host": f"mac:{WORKSTATION}",
             "value": "NURSE-WS-12.icu.example.org"},
            {"kind": "dhcp.client_ip", "host": f"mac:{WORKSTATION}", "value": "10.20.30.57"},
            {"kind": "dhcp.assigned_ip", "host": f"mac:{WORKSTATION}",
             "value": "10.20.30.57"},
            {"kind": "dhcp.duid", "host": f"mac:{GE_DEVICE}", "value": f"00:03:00:01:{GE_DEVICE}"},
            {"kind": "dhcp.vendor_enterprise", "host": f"mac:{GE_DEVICE}", "value": "32473"},
            {"kind": "dhcp.vendor_class", "host": f"mac:{GE_DEVICE}",
             "value": "GE Healthcare CARESCAPE B650"},
            {"kind": "dhcp.option_request", "host": f"mac:{GE_DEVICE}", "value": "23,24,39"},
            {"kind": "dhcp.fqdn", "host": f"mac:{GE_DEVICE}",
             "value": "carescape-b650-12.icu.example.org"},
            {"kind": "dhcp.offered_ip", "host": f"mac:{GE_DEVICE}",
             "value": "2001:db8:20:30::41"},
            {"kind": "dhcp.role", "host": "fe80::21e:7aff:fe4c:1141", "value": "server"},
        ],
    },
}


def write(name: str, truth_only: bool) -> None:
    if not truth_only:
        frames = CAPTURES[name]()
        for i, frame in enumerate(frames):
            frame.time = T0 + i
        wrpcap(str(HERE / f"{name}.pcap"), frames)
    (HERE / f"{name}.truth.json").write_text(json.dumps(TRUTH[name], indent=1) + "\n")


def main(argv: list[str]) -> None:
    truth_only = "--truth-only" in argv
    names = [a for a in argv if not a.startswith("--")] or list(CAPTURES)
    for name in names:
        write(name, truth_only)
        sys.stdout.write(f"wrote {name}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
