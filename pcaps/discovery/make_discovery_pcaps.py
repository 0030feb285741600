"""Craft the UDP discovery/naming captures of pcaps/discovery with scapy, and their truth.

    python pcaps/discovery/make_discovery_pcaps.py            # all captures + truth
    python pcaps/discovery/make_discovery_pcaps.py --truth-only
    python pcaps/discovery/make_discovery_pcaps.py --out /tmp/x   # elsewhere (tests)

Deterministic: fixed timestamps, fixed IP ids and ports, no randomness; the same bytes on
every run. Message layouts follow the published specifications named in README.md (RFC
1035/6762/6763, the Bonjour Printing Specification, UPnP Device Architecture, RFC 1002,
RFC 1157/3416 with the MIB OIDs); the device strings are written to look like what such
devices send, they were not recorded from real devices. Truth is written from the tables
below (what each crafted device was made to say), not from parser output. Every capture
carries canaries (a user name in a NetBIOS <03> name, an SNMP community and sysContact, a
free-text TXT note) that must never appear in any observation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from scapy.asn1.asn1 import ASN1_INTEGER, ASN1_IPADDRESS, ASN1_OID, ASN1_STRING, ASN1_TIME_TICKS
from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRRHINFO, DNSRRSRV
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.snmp import (
    SNMP,
    SNMPbulk,
    SNMPget,
    SNMPnext,
    SNMPresponse,
    SNMPtrapv1,
    SNMPtrapv2,
    SNMPvarbind,
)
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

HERE = Path(__file__).resolve().parent
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z

MDNS4, MDNS6 = "224.0.0.251", "ff02::fb"
MDNS4_MAC, MDNS6_MAC = "01:00:5e:00:00:fb", "33:33:00:00:00:fb"
SSDP4, SSDP4_MAC = "239.255.255.250", "01:00:5e:7f:ff:fa"
LLMNR4, LLMNR4_MAC = "224.0.0.252", "01:00:5e:00:00:fc"
BCAST, BCAST_MAC = "10.20.0.255", "ff:ff:ff:ff:ff:ff"

# Hosts: name -> (MAC, IPv4, IPv6 link-local or None)
HOSTS: dict[str, tuple[str, str, str | None]] = {
    "printer_brother": ("3c:2a:f4:11:22:33", "10.20.0.50", "fe80::3e2a:f4ff:fe11:2233"),
    "printer_hp": ("3c:d9:2b:4f:2a:01", "10.20.0.51", None),
    "linux_ws": ("18:66:da:aa:bb:07", "10.20.0.60", "fe80::1a66:daff:feaa:bb07"),
    "windows_ws": ("18:66:da:33:44:55", "10.20.0.101", None),
    "windows_ws2": ("18:66:da:33:44:66", "10.20.0.102", None),
    "mac_horos": ("f0:18:98:01:02:03", "10.20.0.70", None),
    "apple_tv": ("f0:18:98:0a:0b:0c", "10.20.0.80", None),
    "media_sony": ("54:42:49:12:34:56", "10.20.0.90", None),
    "router_igd": ("50:c7:bf:01:02:03", "10.20.0.1", None),
    "dc01": ("d4:be:d9:10:10:10", "10.20.0.10", None),
    "nms": ("00:50:56:05:05:05", "10.20.0.5", None),
    "switch": ("f4:cf:e2:02:02:02", "10.20.0.2", None),
    "linux_srv": ("d4:be:d9:20:20:20", "10.20.0.20", None),
}

CANARY_NOTE = "Station 3B corridor CANARY-NOTE"
CANARY_USER = "NURSE.CANARY"
CANARY_COMMUNITY = "hospital-canary-ro"
CANARY_CONTACT = "Jane Canary x4711"


def mac(host: str) -> str:
    return HOSTS[host][0]


def ip(host: str) -> str:
    return HOSTS[host][1]


def ip6(host: str) -> str:
    value = HOSTS[host][2]
    assert value is not None
    return value


def udp4(
    src: str, dst: str, sport: int, dport: int, payload: bytes | Packet, dst_mac: str | None = None
) -> Packet:
    dst_mac = dst_mac or (mac(dst) if dst in HOSTS else BCAST_MAC)
    dst_ip = ip(dst) if dst in HOSTS else dst
    return (
        Ether(src=mac(src), dst=dst_mac)
        / IP(src=ip(src), dst=dst_ip, id=0x1000, ttl=255 if dport == 5353 else 64)
        / UDP(sport=sport, dport=dport)
        / (payload if isinstance(payload, Packet) else Raw(payload))
    )


def mdns4(src: str, payload: Packet) -> Packet:
    return udp4(src, MDNS4, 5353, 5353, payload, MDNS4_MAC)


def mdns6(src: str, payload: Packet) -> Packet:
    return (
        Ether(src=mac(src), dst=MDNS6_MAC)
        / IPv6(src=ip6(src), dst=MDNS6, hlim=255)
        / UDP(sport=5353, dport=5353)
        / payload
    )


def dns_bytes(msg: DNS) -> bytes:
    """Name-compressed wire bytes, as every mDNS responder and DNS server sends them."""
    return bytes(msg.compress())  # type: ignore[no-untyped-call]


def rr(name: str, rtype: str, rdata: Any, ttl: int = 120, flush: bool = True) -> DNSRR:
    return DNSRR(rrname=name, type=rtype, rdata=rdata, ttl=ttl, cacheflush=int(flush))


def srv(name: str, target: str, port: int) -> DNSRRSRV:
    return DNSRRSRV(rrname=name, target=target, port=port, ttl=120, cacheflush=1)


# --- mDNS ----------------------------------------------------------------------------
BROTHER_HOST = "BRN3C2AF4112233.local"
BROTHER_INSTANCE = "Brother HL-L2350DW series"
BROTHER_TXT = [
    b"txtvers=1",
    b"qtotal=1",
    b"pdl=application/octet-stream,image/urf,image/pwg-raster",
    b"rp=ipp/print",
    b"ty=Brother HL-L2350DW series",
    b"product=(Brother HL-L2350DW series)",
    b"adminurl=http://BRN3C2AF4112233.local./net/net/airprint.html",
    b"note=" + CANARY_NOTE.encode(),
    b"priority=25",
    b"usb_MFG=Brother",
    b"usb_MDL=HL-L2350DW series",
    b"usb_CMD=PJL,PCL,PCLXL,URF",
    b"Color=F",
    b"Duplex=T",
    b"UUID=e3248000-80ce-11db-8000-3c2af4112233",
    b"URF=W8,CP1,IS4-1,MT1-3-4-5-8,OB10,PQ4,RS300-600,V1.3,DM1",
]


def mdns_capture() -> list[Packet]:
    inst = f"{BROTHER_INSTANCE}._ipp._tcp.local"
    raw_inst = f"{BROTHER_INSTANCE}._pdl-datastream._tcp.local"
    pkts: list[Packet] = []
    # RFC 6762 §8.1 probe: the question with the proposed records in the authority section.
    probe = DNS(
        id=0,
        qr=0,
        qd=[DNSQR(qname=BROTHER_HOST, qtype="ALL", unicastresponse=1)],
        ns=[rr(BROTHER_HOST, "A", ip("printer_brother"), flush=False)],
    )
    pkts.append(mdns4("printer_brother", Raw(dns_bytes(probe))))
    announce = DNS(
        id=0,
        qr=1,
        aa=1,
        qd=[],
        an=[
            rr("_ipp._tcp.local", "PTR", inst, ttl=4500, flush=False),
            rr("_universal._sub._ipp._tcp.local", "PTR", inst, ttl=4500, flush=False),
            srv(inst, BROTHER_HOST, 631),
            rr(inst, "TXT", BROTHER_TXT, ttl=4500),
            rr("_pdl-datastream._tcp.local", "PTR", raw_inst, ttl=4500, flush=False),
            srv(raw_inst, BROTHER_HOST, 9100),
            rr(raw_inst, "TXT", [b"txtvers=1", b"ty=Brother HL-L2350DW series"], ttl=4500),
            rr("_services._dns-sd._udp.local", "PTR", "_ipp._tcp.local", 4500, flush=False),
            rr(BROTHER_HOST, "A", ip("printer_brother")),
            rr(BROTHER_HOST, "AAAA", ip6("printer_brother")),
            rr("50.0.20.10.in-addr.arpa", "PTR", BROTHER_HOST),
        ],
    )
    pkts.append(mdns4("printer_brother", Raw(dns_bytes(announce))))

    # Avahi on a Linux workstation (publish-workstation, publish-hinfo), over IPv4 and IPv6.
    ws_host = "radiology-ws7.local"
    ws_inst = f"radiology-ws7 [{mac('linux_ws')}]._workstation._tcp.local"
    ws = DNS(
        id=0,
        qr=1,
        aa=1,
        qd=[],
        an=[
            rr("_workstation._tcp.local", "PTR", ws_inst, ttl=4500, flush=False),
            srv(ws_inst, ws_host, 9),
            rr(ws_inst, "TXT", [b""], ttl=4500),
            rr(ws_host, "A", ip("linux_ws")),
            rr(ws_host, "AAAA", ip6("linux_ws")),
            DNSRRHINFO(rrname=ws_host, cpu="X86_64", os="LINUX", ttl=120, cacheflush=1),
        ],
    )
    pkts.append(mdns4("linux_ws", Raw(dns_bytes(ws))))
    pkts.append(mdns6("linux_ws", Raw(dns_bytes(ws))))

    # A Mac running Horos (DICOM viewer): device-info, the shared database and the DICOM
    # listener with its AE title (as OsiriX/Horos publish them).
    mac_host = "ReadingRoom-Mac.local"
    dev_inst = "ReadingRoom-Mac._device-info._tcp.local"
    db_inst = "Reading Room DB._osirixdb._tcp.local"
    dicom_inst = "HOROS_RR1._dicom._tcp.local"
    horos = DNS(
        id=0,
        qr=1,
        aa=1,
        qd=[],
        an=[
            rr(dev_inst, "TXT", [b"model=MacBookPro16,1", b"osxvers=21"], ttl=4500),
            rr("_osirixdb._tcp.local", "PTR", db_inst, ttl=4500, flush=False),
            srv(db_inst, mac_host, 8780),
            rr(db_inst, "TXT", [b""], ttl=4500),
            rr("_dicom._tcp.local", "PTR", dicom_inst, ttl=4500, flush=False),
            srv(dicom_inst, mac_host, 11112),
            rr(
                dicom_inst,
                "TXT",
                [b"AETitle=HOROS_RR1", b"CGET=YES", b"preferredSyntax=LittleEndianExplicit"],
                ttl=4500,
            ),
            rr(mac_host, "A", ip("mac_horos")),
        ],
    )
    pkts.append(mdns4("mac_horos", Raw(dns_bytes(horos))))

    # An Apple TV: AirPlay with its model identifier.
    atv_host = "Conference-AppleTV.local"
    atv_inst = "Conference Room._airplay._tcp.local"
    atv = DNS(
        id=0,
        qr=1,
        aa=1,
        qd=[],
        an=[
            rr("_airplay._tcp.local", "PTR", atv_inst, ttl=4500, flush=False),
            srv(atv_inst, atv_host, 7000),
            rr(atv_inst, "TXT", [b"deviceid=F0:18:98:0A:0B:0C", b"model=AppleTV5,3"], 4500),
            rr(atv_host, "A", ip("apple_tv")),
        ],
    )
    pkts.append(mdns4("apple_tv", Raw(dns_bytes(atv))))

    # The Linux workstation looks for printers and lists the one it knows (known-answer
    # suppression, RFC 6762 §7.1): those records are the printer's, never the asker's.
    browse = DNS(
        id=0,
        qr=0,
        qd=[DNSQR(qname="_ipp._tcp.local", qtype="PTR")],
        an=[
            rr("_ipp._tcp.local", "PTR", inst, ttl=4500, flush=False),
            rr(inst, "TXT", BROTHER_TXT),
        ],
    )
    pkts.append(mdns4("linux_ws", Raw(dns_bytes(browse))))
    return pkts


# --- SSDP ----------------------------------------------------------------------------
def http_lines(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


SONY_UUID = "00000000-0000-1010-8000-544249123456"


def ssdp_capture() -> list[Packet]:
    pkts: list[Packet] = []
    location = f"http://{ip('media_sony')}:52323/dmr.xml"
    server = "Linux/2.6 UPnP/1.0 Sony-BDP/2.0"
    for nt, usn in (
        ("upnp:rootdevice", f"uuid:{SONY_UUID}::upnp:rootdevice"),
        (f"uuid:{SONY_UUID}", f"uuid:{SONY_UUID}"),
        (
            "urn:schemas-upnp-org:device:MediaRenderer:1",
            f"uuid:{SONY_UUID}::urn:schemas-upnp-org:device:MediaRenderer:1",
        ),
        (
            "urn:schemas-upnp-org:service:AVTransport:1",
            f"uuid:{SONY_UUID}::urn:schemas-upnp-org:service:AVTransport:1",
        ),
    ):
        notify = http_lines(
            "NOTIFY * HTTP/1.1",
            "HOST: 239.255.255.250:1900",
            "CACHE-CONTROL: max-age=1800",
            f"LOCATION: {location}",
            f"NT: {nt}",
            "NTS: ssdp:alive",
            f"SERVER: {server}",
            f"USN: {usn}",
        )
        pkts.append(udp4("media_sony", SSDP4, 1900, 1900, notify, SSDP4_MAC))
    search = http_lines(
        "M-SEARCH * HTTP/1.1",
        "HOST: 239.255.255.250:1900",
        'MAN: "ssdp:discover"',
        "MX: 2",
        "ST: ssdp:all",
        "USER-AGENT: Linux/5.15 UPnP/2.0 GUPnP/1.4",
    )
    pkts.append(udp4("linux_ws", SSDP4, 50123, 1900, search, SSDP4_MAC))
    hp_uuid = "564e4238-4b33-3031-3630-3cd92b4f2a01"
    reply = http_lines(
        "HTTP/1.1 200 OK",
        "CACHE-CONTROL: max-age=1800",
        "EXT:",
        f"LOCATION: http://{ip('printer_hp')}:8080/DevMgmt/DiscoveryTree.xml",
        "SERVER: Linux/3.4 UPnP/1.0 HP-UPnP/1.0",
        "ST: urn:schemas-upnp-org:device:Printer:1",
        f"USN: uuid:{hp_uuid}::urn:schemas-upnp-org:device:Printer:1",
    )
    pkts.append(udp4("printer_hp", "linux_ws", 1900, 50123, reply))
    igd = http_lines(
        "NOTIFY * HTTP/1.1",
        "HOST: 239.255.255.250:1900",
        "CACHE-CONTROL: max-age=120",
        f"LOCATION: http://{ip('router_igd')}:1900/igd.xml",
        "NT: urn:schemas-upnp-org:device:InternetGatewayDevice:1",
        "NTS: ssdp:alive",
        "SERVER: Linux/4.14 UPnP/1.0 miniupnpd/2.1",
        "USN: uuid:9f0865b3-f5da-4ad5-85b7-50c7bf010203"
        "::urn:schemas-upnp-org:device:InternetGatewayDevice:1",
    )
    pkts.append(udp4("router_igd", SSDP4, 1900, 1900, igd, SSDP4_MAC))
    return pkts


# --- NetBIOS name service ------------------------------------------------------------
def nb_encode(name: str, suffix: int) -> bytes:
    """RFC 1002 §4.1 first-level encoding of a 15-character name + suffix, as one label."""
    raw = name.encode("ascii").ljust(15, b" ")[:15] + bytes([suffix])
    if name == "*":
        raw = b"*" + bytes(15)
    half = bytes(b for byte in raw for b in (0x41 + (byte >> 4), 0x41 + (byte & 0xF)))
    return bytes([32]) + half + b"\x00"


def nbns_registration(trn: int, name: str, suffix: int, group: bool, addr: str) -> bytes:
    """Broadcast name registration request (RFC 1002 §4.2.2): opcode 5, RD, B."""
    header = trn.to_bytes(2, "big") + b"\x29\x10" + b"\x00\x01\x00\x00\x00\x00\x00\x01"
    question = nb_encode(name, suffix) + b"\x00\x20\x00\x01"
    flags = 0x8000 if group else 0x0000
    additional = (
        b"\xc0\x0c\x00\x20\x00\x01"
        + (300000).to_bytes(4, "big")
        + b"\x00\x06"
        + flags.to_bytes(2, "big")
        + bytes(map(int, addr.split(".")))
    )
    return header + question + additional


def nbns_query(
    trn: int, name: str, suffix: int, qtype: int = 0x20, broadcast: bool = True
) -> bytes:
    flags = b"\x01\x10" if broadcast else b"\x00\x00"
    header = trn.to_bytes(2, "big") + flags + b"\x00\x01\x00\x00\x00\x00\x00\x00"
    return header + nb_encode(name, suffix) + qtype.to_bytes(2, "big") + b"\x00\x01"


def nbns_positive_response(trn: int, name: str, suffix: int, addr: str) -> bytes:
    """Positive name query response (RFC 1002 §4.2.13): opcode 0, AA, RD."""
    header = trn.to_bytes(2, "big") + b"\x85\x00" + b"\x00\x00\x00\x01\x00\x00\x00\x00"
    rdata = b"\x00\x00" + bytes(map(int, addr.split(".")))
    return (
        header
        + nb_encode(name, suffix)
        + b"\x00\x20\x00\x01"
        + (300000).to_bytes(4, "big")
        + len(rdata).to_bytes(2, "big")
        + rdata
    )


def nbns_node_status(trn: int, names: list[tuple[str, int, int]], unit: str) -> bytes:
    """Node status response (RFC 1002 §4.2.18): the name table, then the statistics."""
    header = trn.to_bytes(2, "big") + b"\x84\x00" + b"\x00\x00\x00\x01\x00\x00\x00\x00"
    table = bytes([len(names)])
    for name, suffix, flags in names:
        table += name.encode("ascii").ljust(15, b" ") + bytes([suffix]) + flags.to_bytes(2, "big")
    stats = bytes.fromhex(unit.replace(":", "")) + bytes(40)
    rdata = table + stats
    return (
        header
        + nb_encode("*", 0)
        + b"\x00\x21\x00\x01"
        + b"\x00\x00\x00\x00"
        + len(rdata).to_bytes(2, "big")
        + rdata
    )


def netbios_capture() -> list[Packet]:
    pkts: list[Packet] = []
    ws = "windows_ws"
    for trn, (name, suffix, group) in enumerate(
        [
            ("WARD3-PC01", 0x00, False),
            ("HOSPITAL", 0x00, True),
            ("WARD3-PC01", 0x20, False),
            ("HOSPITAL", 0x1E, True),
            (CANARY_USER, 0x03, False),  # the logged-on user's messenger name: never read
        ],
        start=0x8101,
    ):
        pkts.append(udp4(ws, BCAST, 137, 137, nbns_registration(trn, name, suffix, group, ip(ws))))
    for trn, (name, suffix, group) in enumerate(
        [("DC01", 0x00, False), ("HOSPITAL", 0x1C, True), ("HOSPITAL", 0x1B, False)], start=0x2201
    ):
        pkts.append(
            udp4("dc01", BCAST, 137, 137, nbns_registration(trn, name, suffix, group, ip("dc01")))
        )
    # Another workstation resolves WARD3-PC01<20>; the owner answers.
    pkts.append(udp4("windows_ws2", BCAST, 137, 137, nbns_query(0x4711, "WARD3-PC01", 0x20)))
    pkts.append(
        udp4(
            ws, "windows_ws2", 137, 137, nbns_positive_response(0x4711, "WARD3-PC01", 0x20, ip(ws))
        )
    )
    # An inventory tool asks the workstation for its name table (nbtstat -A).
    pkts.append(udp4("nms", ws, 40137, 137, nbns_query(0x0042, "*", 0x00, 0x21, broadcast=False)))
    table = [
        ("WARD3-PC01", 0x00, 0x0400),
        ("HOSPITAL", 0x00, 0x8400),
        ("WARD3-PC01", 0x20, 0x0400),
        ("HOSPITAL", 0x1E, 0x8400),
        (CANARY_USER, 0x03, 0x0400),
    ]
    pkts.append(udp4(ws, "nms", 137, 40137, nbns_node_status(0x0042, table, mac(ws))))
    return pkts


# --- SNMP ----------------------------------------------------------------------------
SYS_DESCR, SYS_OBJECT_ID, SYS_CONTACT, SYS_NAME, SYS_SERVICES = (
    f"1.3.6.1.2.1.1.{n}.0" for n in (1, 2, 4, 5, 7)
)
CISCO_DESCR = (
    "Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E4, RELEASE "
    "SOFTWARE (fc2)\r\nTechnical Support: http://www.cisco.com/techsupport\r\nCopyright (c) "
    "1986-2021 by Cisco Systems, Inc.\r\nCompiled Wed 03-Mar-21 05:10 by mcpre"
)
HP_DESCR = (
    "HP ETHERNET MULTI-ENVIRONMENT,ROM none,JETDIRECT,JD153,EEPROM JSI23900,CIDATE 02/16/2021"
)
LINUX_DESCR = (
    "Linux pacs-store 5.15.0-91-generic #101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023 x86_64"
)


def text(value: str) -> ASN1_STRING:
    return ASN1_STRING(value.encode())


def vb(oid: str, value: Any = None) -> SNMPvarbind:
    return SNMPvarbind(oid=ASN1_OID(oid), value=value if value is not None else ASN1_NULL_())


def ASN1_NULL_() -> Any:  # noqa: N802 - scapy's naming
    from scapy.asn1.asn1 import ASN1_NULL

    return ASN1_NULL(0)  # type: ignore[arg-type]


def snmp(pdu: Packet, version: int = 1) -> bytes:
    return bytes(SNMP(version=version, community=CANARY_COMMUNITY, PDU=pdu))


def snmp_capture() -> list[Packet]:
    pkts: list[Packet] = []
    nms, sw, prn, srv_ = "nms", "switch", "printer_hp", "linux_srv"
    system = [SYS_DESCR, SYS_OBJECT_ID, SYS_CONTACT, SYS_NAME, SYS_SERVICES]
    get = snmp(SNMPget(id=101, varbindlist=[vb(o) for o in system]))
    pkts.append(udp4(nms, sw, 50161, 161, get))
    answer = SNMPresponse(
        id=101,
        varbindlist=[
            vb(SYS_DESCR, text(CISCO_DESCR)),
            vb(SYS_OBJECT_ID, ASN1_OID("1.3.6.1.4.1.9.1.1208")),
            vb(SYS_CONTACT, text(CANARY_CONTACT)),  # a person: never read
            vb(SYS_NAME, text("sw-ward3-01.hospital.local")),
            vb(SYS_SERVICES, ASN1_INTEGER(6)),
        ],
    )
    pkts.append(udp4(sw, nms, 161, 50161, snmp(answer)))
    # ENTITY-MIB walk (GetBulk): the class column first, the other columns later, as a
    # walk returns them; index 1001 is the chassis, 1002 a module whose serial is not kept.
    ent = "1.3.6.1.2.1.47.1.1.1.1"
    bulk = snmp(SNMPbulk(id=102, non_repeaters=0, max_repetitions=10, varbindlist=[vb(ent)]))
    pkts.append(udp4(nms, sw, 50161, 161, bulk))
    pkts.append(
        udp4(
            sw,
            nms,
            161,
            50161,
            snmp(
                SNMPresponse(
                    id=102,
                    varbindlist=[
                        vb(f"{ent}.5.1001", ASN1_INTEGER(3)),
                        vb(f"{ent}.5.1002", ASN1_INTEGER(9)),
                    ],
                )
            ),
        )
    )
    nxt = snmp(SNMPnext(id=103, varbindlist=[vb(f"{ent}.10.1000")]))
    pkts.append(udp4(nms, sw, 50161, 161, nxt))
    pkts.append(
        udp4(
            sw,
            nms,
            161,
            50161,
            snmp(
                SNMPresponse(
                    id=103,
                    varbindlist=[
                        vb(f"{ent}.10.1001", text("15.2(7)E4")),
                        vb(f"{ent}.11.1001", text("FOC1234X0AB")),
                        vb(f"{ent}.11.1002", text("FOC9999Z9ZZ")),
                        vb(f"{ent}.12.1001", text("Cisco Systems Inc.")),
                        vb(f"{ent}.13.1001", text("WS-C2960X-48FPD-L")),
                    ],
                )
            ),
        )
    )
    # A v1 linkDown trap from the switch to the manager's trap port.
    trap = SNMPtrapv1(
        enterprise=ASN1_OID("1.3.6.1.4.1.9.1.1208"),
        agent_addr=ASN1_IPADDRESS(ip(sw)),
        generic_trap=ASN1_INTEGER(2),
        specific_trap=ASN1_INTEGER(0),
        time_stamp=ASN1_TIME_TICKS(123456),
        varbindlist=[vb("1.3.6.1.2.1.2.2.1.1.10101", ASN1_INTEGER(10101))],
    )
    pkts.append(udp4(sw, nms, 52001, 162, snmp(trap, version=0)))

    # The printer: system group, Host Resources device table, Printer-MIB serial number.
    hr = "1.3.6.1.2.1.25.3.2.1"
    oids = [
        SYS_DESCR,
        SYS_OBJECT_ID,
        SYS_NAME,
        f"{hr}.2.1",
        f"{hr}.3.1",
        "1.3.6.1.2.1.43.5.1.1.17.1",
    ]
    pkts.append(
        udp4(nms, prn, 50162, 161, snmp(SNMPget(id=201, varbindlist=[vb(o) for o in oids])))
    )
    answer = SNMPresponse(
        id=201,
        varbindlist=[
            vb(SYS_DESCR, text(HP_DESCR)),
            vb(SYS_OBJECT_ID, ASN1_OID("1.3.6.1.4.1.11.2.3.9.1")),
            vb(SYS_NAME, text("NPI3C4F2A")),
            vb(f"{hr}.2.1", ASN1_OID("1.3.6.1.2.1.25.3.1.5")),
            vb(f"{hr}.3.1", text("HP LaserJet M507")),
            vb("1.3.6.1.2.1.43.5.1.1.17.1", text("PHBQK12345")),
        ],
    )
    pkts.append(udp4(prn, nms, 161, 50162, snmp(answer)))

    # A Linux server with net-snmp: the agent software is not the vendor.
    pkts.append(
        udp4(
            nms,
            srv_,
            50163,
            161,
            snmp(SNMPget(id=301, varbindlist=[vb(SYS_DESCR), vb(SYS_OBJECT_ID)])),
        )
    )
    answer = SNMPresponse(
        id=301,
        varbindlist=[
            vb(SYS_DESCR, text(LINUX_DESCR)),
            vb(SYS_OBJECT_ID, ASN1_OID("1.3.6.1.4.1.8072.3.2.10")),
        ],
    )
    pkts.append(udp4(srv_, nms, 161, 50163, snmp(answer)))
    # A v2c linkUp trap from the Linux server (standard trap OID: no vendor in it).
    trap2 = SNMPtrapv2(
        id=302,
        varbindlist=[
            vb("1.3.6.1.2.1.1.3.0", ASN1_TIME_TICKS(4242)),
            vb("1.3.6.1.6.3.1.1.4.1.0", ASN1_OID("1.3.6.1.6.3.1.1.5.4")),
        ],
    )
    pkts.append(udp4(srv_, nms, 52002, 162, snmp(trap2)))
    return pkts


# --- DNS and LLMNR -------------------------------------------------------------------
def dns_capture() -> list[Packet]:
    pkts: list[Packet] = []
    client, server = "windows_ws", "dc01"
    exchanges: list[tuple[DNS, DNS]] = []
    q = DNSQR(qname="pacs.hospital.local", qtype="A")
    exchanges.append(
        (
            DNS(id=0x1A01, rd=1, qd=[q]),
            DNS(
                id=0x1A01,
                qr=1,
                aa=1,
                rd=1,
                ra=1,
                qd=[q],
                an=[
                    DNSRR(
                        rrname="pacs.hospital.local",
                        type="CNAME",
                        rdata="srv-pacs01.hospital.local",
                        ttl=3600,
                    ),
                    DNSRR(
                        rrname="srv-pacs01.hospital.local", type="A", rdata="10.30.0.10", ttl=3600
                    ),
                ],
            ),
        )
    )
    q = DNSQR(qname="10.0.30.10.in-addr.arpa", qtype="PTR")
    exchanges.append(
        (
            DNS(id=0x1A02, rd=1, qd=[q]),
            DNS(
                id=0x1A02,
                qr=1,
                aa=1,
                rd=1,
                ra=1,
                qd=[q],
                an=[
                    DNSRR(
                        rrname="10.0.30.10.in-addr.arpa",
                        type="PTR",
                        rdata="srv-pacs01.hospital.local",
                        ttl=3600,
                    )
                ],
            ),
        )
    )
    q = DNSQR(qname="www.msftconnecttest.com", qtype="A")
    exchanges.append(
        (
            DNS(id=0x1A03, rd=1, qd=[q]),
            DNS(
                id=0x1A03,
                qr=1,
                rd=1,
                ra=1,
                qd=[q],
                an=[
                    DNSRR(
                        rrname="www.msftconnecttest.com",
                        type="CNAME",
                        rdata="v4ncsi.msedge.net",
                        ttl=60,
                    ),
                    DNSRR(rrname="v4ncsi.msedge.net", type="A", rdata="13.107.4.52", ttl=60),
                ],
            ),
        )
    )
    q = DNSQR(qname="printer3b.hospital.local", qtype="AAAA")
    exchanges.append(
        (
            DNS(id=0x1A04, rd=1, qd=[q]),
            DNS(
                id=0x1A04,
                qr=1,
                aa=1,
                rd=1,
                ra=1,
                qd=[q],
                an=[
                    DNSRR(
                        rrname="printer3b.hospital.local",
                        type="AAAA",
                        rdata="fd00:20::51",
                        ttl=3600,
                    )
                ],
            ),
        )
    )
    q = DNSQR(qname="oldscanner.hospital.local", qtype="A")
    exchanges.append(
        (DNS(id=0x1A05, rd=1, qd=[q]), DNS(id=0x1A05, qr=1, aa=1, rd=1, ra=1, rcode=3, qd=[q]))
    )
    for t, (query, response) in enumerate(exchanges):
        sport = 49700 + t
        pkts.append(udp4(client, server, sport, 53, Raw(dns_bytes(query))))
        pkts.append(udp4(server, client, 53, sport, Raw(dns_bytes(response))))
    # A broken response on a confirmed flow: a compression pointer that points at itself.
    loop = bytes.fromhex("1a06 8180 0001 0000 0000 0000") + bytes.fromhex("c00c 0001 0001")
    pkts.append(
        udp4(
            client,
            server,
            49700,
            53,
            Raw(dns_bytes(DNS(id=0x1A06, rd=1, qd=[DNSQR(qname="loop.hospital.local")]))),
        )
    )
    pkts.append(udp4(server, client, 53, 49700, Raw(loop)))
    # LLMNR (RFC 4795): a workstation asks for WARD3-PC01, the owner answers unicast.
    q = DNSQR(qname="WARD3-PC01", qtype="A")
    pkts.append(
        udp4("windows_ws2", LLMNR4, 56001, 5355, Raw(dns_bytes(DNS(id=0x7A01, qd=[q]))), LLMNR4_MAC)
    )
    answer = DNS(
        id=0x7A01, qr=1, qd=[q], an=[DNSRR(rrname="WARD3-PC01", type="A", rdata=ip(client), ttl=30)]
    )
    pkts.append(udp4(client, "windows_ws2", 5355, 56001, Raw(dns_bytes(answer))))
    return pkts


# --- truth ---------------------------------------------------------------------------
def dev(host: str, **fields: str) -> dict[str, str]:
    return {"name": host, "mac": mac(host), "ip": ip(host), **fields}


def obs(kind: str, host: str, value: str) -> dict[str, str]:
    return {"kind": kind, "host": host, "value": value}


CAPTURES: dict[str, dict[str, Any]] = {
    "mdns": {
        "make": mdns_capture,
        "devices": [
            dev(
                "printer_brother",
                device_type="printer",
                vendor="Brother",
                model="HL-L2350DW series",
                hostname="BRN3C2AF4112233",
            ),
            dev("linux_ws", device_type="workstation", hostname="radiology-ws7"),
            dev(
                "mac_horos",
                device_type="dicom-workstation",
                vendor="Apple",
                model="MacBookPro16,1",
                hostname="ReadingRoom-Mac",
            ),
            dev("apple_tv", vendor="Apple", model="AppleTV5,3", hostname="Conference-AppleTV"),
        ],
        "observations": [
            obs("mdns.hostname", ip("printer_brother"), "BRN3C2AF4112233"),
            obs("mdns.service", ip("printer_brother"), "_ipp._tcp"),
            obs("mdns.service", ip("printer_brother"), "_pdl-datastream._tcp"),
            obs("mdns.device_type", ip("printer_brother"), "printer"),
            obs("mdns.vendor", ip("printer_brother"), "Brother"),
            obs("mdns.model", ip("printer_brother"), "HL-L2350DW series"),
            obs("mdns.hostname", ip("linux_ws"), "radiology-ws7"),
            obs("mdns.hostname", ip6("linux_ws"), "radiology-ws7"),
            obs("mdns.hinfo", ip("linux_ws"), "X86_64; LINUX"),
            obs("mdns.device_type", ip("linux_ws"), "workstation"),
            obs("mdns.browse", ip("linux_ws"), "_ipp._tcp"),
            obs("mdns.dicom_ae_title", ip("mac_horos"), "HOROS_RR1"),
            obs("mdns.device_type", ip("mac_horos"), "dicom-workstation"),
            obs("mdns.model", ip("mac_horos"), "MacBookPro16,1"),
            obs("mdns.model", ip("apple_tv"), "AppleTV5,3"),
        ],
        "absent": [
            {"host": ip("linux_ws"), "kind": "mdns.model"},
            {"host": ip("linux_ws"), "kind": "mdns.vendor"},
        ],
        "canaries": [CANARY_NOTE],
    },
    "ssdp": {
        "make": ssdp_capture,
        "devices": [
            dev("media_sony"),
            dev("printer_hp", device_type="printer"),
            dev("router_igd", device_type="network-infrastructure"),
        ],
        "observations": [
            obs("ssdp.server", ip("media_sony"), "Linux/2.6 UPnP/1.0 Sony-BDP/2.0"),
            obs("ssdp.uuid", ip("media_sony"), SONY_UUID),
            obs("ssdp.device_urn", ip("media_sony"), "urn:schemas-upnp-org:device:MediaRenderer:1"),
            obs("ssdp.service_urn", ip("media_sony"), "urn:schemas-upnp-org:service:AVTransport:1"),
            obs("ssdp.location", ip("media_sony"), f"http://{ip('media_sony')}:52323/dmr.xml"),
            obs("ssdp.user_agent", ip("linux_ws"), "Linux/5.15 UPnP/2.0 GUPnP/1.4"),
            obs("ssdp.device_type", ip("printer_hp"), "printer"),
            obs("ssdp.device_type", ip("router_igd"), "network-infrastructure"),
        ],
        "absent": [{"host": ip("media_sony"), "kind": "ssdp.device_type"}],
        "canaries": [],
    },
    "netbios": {
        "make": netbios_capture,
        "devices": [
            dev("windows_ws", hostname="WARD3-PC01"),
            dev("dc01", device_type="server", hostname="DC01"),
        ],
        "observations": [
            obs("netbios.hostname", ip("windows_ws"), "WARD3-PC01"),
            obs("netbios.workgroup", ip("windows_ws"), "HOSPITAL"),
            obs("netbios.role", ip("windows_ws"), "file-server"),
            obs("netbios.mac", ip("windows_ws"), mac("windows_ws")),
            obs("netbios.hostname", ip("dc01"), "DC01"),
            obs("netbios.role", ip("dc01"), "domain-controller"),
            obs("netbios.device_type", ip("dc01"), "server"),
        ],
        "absent": [{"host": ip("windows_ws2"), "kind": "netbios.hostname"}],
        "canaries": [CANARY_USER],
    },
    "snmp": {
        "make": snmp_capture,
        "devices": [
            dev(
                "switch",
                device_type="network-infrastructure",
                vendor="Cisco",
                model="WS-C2960X-48FPD-L",
                software_version="15.2(7)E4",
                serial="FOC1234X0AB",
                hostname="sw-ward3-01.hospital.local",
            ),
            dev(
                "printer_hp",
                device_type="printer",
                vendor="HP",
                model="LaserJet M507",
                serial="PHBQK12345",
                hostname="NPI3C4F2A",
            ),
            dev("linux_srv"),
        ],
        "observations": [
            obs("snmp.sys_object_id", ip("switch"), "1.3.6.1.4.1.9.1.1208"),
            obs("snmp.vendor", ip("switch"), "Cisco"),
            obs("snmp.hostname", ip("switch"), "sw-ward3-01.hospital.local"),
            obs("snmp.software_version", ip("switch"), "15.2(7)E4"),
            obs("snmp.model", ip("switch"), "WS-C2960X-48FPD-L"),
            obs("snmp.serial", ip("switch"), "FOC1234X0AB"),
            obs("snmp.role", ip("switch"), "agent"),
            obs("snmp.role", ip("nms"), "manager"),
            obs("snmp.vendor", ip("printer_hp"), "HP"),
            obs("snmp.device_type", ip("printer_hp"), "printer"),
            obs("snmp.model", ip("printer_hp"), "LaserJet M507"),
            obs("snmp.serial", ip("printer_hp"), "PHBQK12345"),
            obs("snmp.hostname", ip("printer_hp"), "NPI3C4F2A"),
            obs("snmp.agent_software", ip("linux_srv"), "Net-SNMP"),
            obs("snmp.os", ip("linux_srv"), "Linux 5.15.0-91-generic"),
        ],
        "absent": [
            {"host": ip("linux_srv"), "kind": "snmp.vendor"},
            {"host": ip("switch"), "kind": "snmp.serial", "value": "FOC9999Z9ZZ"},
        ],
        "canaries": [CANARY_COMMUNITY, CANARY_CONTACT],
    },
    "dns": {
        "make": dns_capture,
        # The PACS and the printer are only named in DNS answers, never seen on the wire:
        # hearsay in the report, not devices.
        "devices": [],
        "observations": [
            obs("dns.query", ip("windows_ws"), "pacs.hospital.local"),
            obs("dns.query", ip("windows_ws"), "www.msftconnecttest.com"),
            obs("dns.os_hint", ip("windows_ws"), "Windows"),
            obs("dns.hostname", "10.30.0.10", "srv-pacs01.hospital.local"),
            obs("dns.name", "10.30.0.10", "pacs.hospital.local"),
            obs("dns.hostname", "fd00:20::51", "printer3b.hospital.local"),
            obs("llmnr.hostname", ip("windows_ws"), "ward3-pc01"),
            obs("llmnr.query", ip("windows_ws2"), "ward3-pc01"),
        ],
        "absent": [{"host": "13.107.4.52", "kind": "dns.hostname"}],
        "canaries": [],
    },
}


def write(names: list[str], truth_only: bool, out: Path = HERE) -> None:
    for name in names:
        spec = CAPTURES[name]
        pkts = spec["make"]()
        for i, pkt in enumerate(pkts):
            pkt.time = T0 + 10 * list(CAPTURES).index(name) + i * 0.25
        if not truth_only:
            wrpcap(str(out / f"{name}.pcap"), pkts)
        truth = {
            "capture": f"{name}.pcap",
            "packets": len(pkts),
            "devices": spec["devices"],
            "observations": spec["observations"],
            "absent": spec["absent"],
            "canaries": spec["canaries"],
        }
        text = json.dumps(truth, indent=1, ensure_ascii=False) + "\n"
        (out / f"{name}.truth.json").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="*", help=f"some of {', '.join(CAPTURES)}")
    parser.add_argument("--truth-only", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE, help="directory (default: here)")
    args = parser.parse_args()
    unknown = set(args.captures) - set(CAPTURES)
    if unknown:
        parser.error(f"unknown capture(s): {', '.join(sorted(unknown))}")
    write(args.captures or list(CAPTURES), args.truth_only, args.out)


if __name__ == "__main__":
    main()
