"""agent.decode: annotated hex fixtures per layer, malformed accounting, fast/general agreement,
a scapy cross-check and no-crash properties.

Fixtures are written one hex string per layer with a comment per field (the Zeek/Suricata unit
test habit), so a reviewer can check every byte against the RFC without running anything.
Checksums are zero: the decoder never verifies them.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.capture import linktypes
from agent.decode import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    Decoder,
    PacketMeta,
    _fast_ethernet_ipv4,
)
from tests.frames import eth, hx, ip, ipv4, mac, tcp, udp

# --------------------------------------------------------------------------- layer 2
ETH_MACS = (
    "00 1b 21 3a 4f 5e"  # destination MAC
    "00 09 fb 12 34 56"  # source MAC (OUI 00:09:fb, Philips)
)
ETYPE_IPV4 = "08 00"  # ethertype IPv4
ETYPE_IPV6 = "86 dd"  # ethertype IPv6
ETYPE_ARP = "08 06"  # ethertype ARP
DOT1Q_VLAN10 = (
    "81 00"  # TPID 802.1Q
    "a0 0a"  # TCI: PCP 5, DEI 0, VID 10
)
ETH_PADDING = "00" * 14  # pads a 46-byte frame to the 60-byte Ethernet minimum (no FCS)

# --------------------------------------------------------------------------- IPv4
IPV4_TCP_HDR = (
    "45"  # version 4, IHL 5 (20 bytes)
    "00"  # DSCP 0, ECN 0
    "00 3c"  # total length 60 = 20 IP + 32 TCP + 8 payload
    "1c 46"  # identification
    "40 00"  # flags DF, fragment offset 0
    "40"  # TTL 64
    "06"  # protocol TCP
    "00 00"  # header checksum (not verified)
    "0a 01 14 0f"  # source 10.1.20.15
    "0a 01 1e 28"  # destination 10.1.30.40
)
TCP_OPTS_HDR = (
    "c0 00"  # source port 49152
    "00 68"  # destination port 104 (DICOM)
    "11 22 33 44"  # sequence number 0x11223344
    "55 66 77 88"  # acknowledgment number
    "80"  # data offset 8 (32 bytes), reserved 0
    "18"  # flags PSH|ACK
    "fa f0"  # window 64240
    "00 00"  # checksum (not verified)
    "00 00"  # urgent pointer
    "01"  # option NOP
    "01"  # option NOP
    "08 0a 00 01 e2 40 00 00 00 00"  # option timestamps: kind 8, len 10, TSval 123456, TSecr 0
)
TCP_PAYLOAD = (
    "01 00"  # DICOM A-ASSOCIATE-RQ: PDU type 1, reserved
    "00 00 00 cd"  # PDU length 205
    "00 01"  # protocol version 1
)
IPV4_UDP_HDR = (
    "45"  # version 4, IHL 5
    "00"  # DSCP/ECN
    "00 20"  # total length 32 = 20 IP + 8 UDP + 4 payload
    "00 01"  # identification
    "00 00"  # no flags, fragment offset 0
    "40"  # TTL 64
    "11"  # protocol UDP
    "00 00"  # header checksum
    "0a 01 14 0f"  # source 10.1.20.15
    "0a 01 1e 28"  # destination 10.1.30.40
)
UDP_HDR = (
    "c3 50"  # source port 50000
    "02 02"  # destination port 514 (syslog)
    "00 0c"  # length 12 = 8 header + 4 payload
    "00 00"  # checksum
)
UDP_PAYLOAD = "3c 31 33 3e"  # "<13>"
IPV4_OPTS_UDP_HDR = (
    "46"  # version 4, IHL 6 (24 bytes): one option word
    "00"  # DSCP/ECN
    "00 24"  # total length 36 = 24 IP + 8 UDP + 4 payload
    "00 02"  # identification
    "00 00"  # no flags
    "01"  # TTL 1
    "11"  # protocol UDP
    "00 00"  # header checksum
    "0a 01 14 0f"  # source 10.1.20.15
    "0a 01 1e 28"  # destination 10.1.30.40
    "94 04 00 00"  # option Router Alert (RFC 2113): type 148, length 4, value 0
)
IPV4_FRAG1_HDR = (
    "45"  # version 4, IHL 5
    "00"  # DSCP/ECN
    "00 2c"  # total length 44 = 20 IP + 8 UDP header + 16 data
    "ab cd"  # identification 0xabcd (shared by both fragments)
    "20 00"  # flags MF, fragment offset 0: first fragment
    "40"  # TTL
    "11"  # protocol UDP
    "00 00"  # header checksum
    "0a 01 14 0f"  # source 10.1.20.15
    "0a 01 1e 28"  # destination 10.1.30.40
)
FRAG1_UDP = (
    "c3 50"  # source port 50000
    "00 a1"  # destination port 161 (SNMP)
    "00 20"  # UDP length 32: the whole datagram, longer than this fragment
    "00 00"  # checksum
    "30 1e 02 01 01 04 06 70 75 62 6c 69 63 a0 11 02"  # first 16 bytes of data
)
IPV4_FRAG2_HDR = (
    "45"  # version 4, IHL 5
    "00"  # DSCP/ECN
    "00 1c"  # total length 28 = 20 IP + 8 data
    "ab cd"  # identification 0xabcd
    "00 03"  # no MF, fragment offset 3 (24 bytes): last fragment
    "40"  # TTL
    "11"  # protocol UDP (but no UDP header in this fragment)
    "00 00"  # header checksum
    "0a 01 14 0f"  # source 10.1.20.15
    "0a 01 1e 28"  # destination 10.1.30.40
)
FRAG2_DATA = "de ad be ef ca fe ba be"  # bytes 24..31 of the UDP datagram
IPV4_ICMP_HDR = (
    "45"  # version 4, IHL 5
    "00"  # DSCP/ECN
    "00 20"  # total length 32 = 20 IP + 8 ICMP + 4 data
    "00 03"  # identification
    "00 00"  # no flags
    "40"  # TTL
    "01"  # protocol ICMP
    "00 00"  # header checksum
    "0a 01 14 0f"  # source 10.1.20.15
    "0a 01 1e 28"  # destination 10.1.30.40
)
ICMP_ECHO = (
    "08"  # type 8 echo request
    "00"  # code 0
    "00 00"  # checksum
    "12 34"  # identifier
    "00 01"  # sequence number
    "61 62 63 64"  # data "abcd"
)

# --------------------------------------------------------------------------- IPv6
IPV6_SRC = "20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 15"  # 2001:db8:1::15
IPV6_DST = "20 01 0d b8 00 02 00 00 00 00 00 00 00 00 00 28"  # 2001:db8:2::28
IPV6_TCP_HDR = (
    "60 00 00 00"  # version 6, traffic class 0, flow label 0
    "00 18"  # payload length 24 = 20 TCP + 4 data
    "06"  # next header TCP
    "40" + IPV6_SRC + IPV6_DST  # hop limit 64
)
TCP6_HDR = (
    "c0 01"  # source port 49153
    "2b 68"  # destination port 11112 (DICOM)
    "00 00 00 01"  # sequence number 1
    "00 00 00 01"  # acknowledgment number 1
    "50"  # data offset 5 (20 bytes)
    "18"  # flags PSH|ACK
    "ff ff"  # window 65535
    "00 00"  # checksum
    "00 00"  # urgent pointer
)
TCP6_PAYLOAD = "02 00 00 00"  # DICOM A-ASSOCIATE-AC type, reserved
IPV6_EXT_HDR = (
    "60 00 00 00"  # version 6
    "00 24"  # payload length 36 = 8 HBH + 8 DstOpts + 8 Fragment + 8 UDP + 4 data
    "00"  # next header 0: hop-by-hop options
    "40" + IPV6_SRC + IPV6_DST  # hop limit
)
HBH = (
    "3c"  # next header 60: destination options
    "00"  # header extension length 0 (8 bytes)
    "05 02 00 00"  # option Router Alert: type 5, length 2, value 0
    "01 00"  # option PadN, length 0
)
DSTOPTS = (
    "2c"  # next header 44: fragment
    "00"  # header extension length 0 (8 bytes)
    "01 04 00 00 00 00"  # option PadN, length 4
)
FRAG6_FIRST = (
    "11"  # next header UDP
    "00"  # reserved
    "00 01"  # fragment offset 0, M=1: first fragment
    "00 00 30 39"  # identification 12345
)
FRAG6_UDP = (
    "c3 50"  # source port 50000
    "00 a1"  # destination port 161
    "00 30"  # UDP length 48: the whole datagram, longer than this fragment
    "00 00"  # checksum
    "30 82 00 10"  # data
)
IPV6_FRAG2_HDR = (
    "60 00 00 00"  # version 6
    "00 10"  # payload length 16 = 8 Fragment + 8 data
    "2c"  # next header 44: fragment
    "40" + IPV6_SRC + IPV6_DST  # hop limit
)
FRAG6_LATER = (
    "11"  # next header UDP
    "00"  # reserved
    "00 18"  # fragment offset 3 (24 bytes), M=0: last fragment
    "00 00 30 39"  # identification 12345
)
IPV6_ICMP_HDR = (
    "60 00 00 00"  # version 6
    "00 08"  # payload length 8
    "3a"  # next header 58: ICMPv6
    "ff" + IPV6_SRC + IPV6_DST  # hop limit 255
)
ICMP6_ECHO = (
    "80"  # type 128 echo request
    "00"  # code 0
    "00 00"  # checksum
    "12 34"  # identifier
    "00 01"  # sequence number
)

# --------------------------------------------------------------------------- ARP
ARP_REQUEST = (
    "ff ff ff ff ff ff"  # destination MAC broadcast
    "00 09 fb 12 34 56"  # source MAC
    "08 06"  # ethertype ARP
    "00 01"  # hardware type Ethernet
    "08 00"  # protocol type IPv4
    "06"  # hardware address length
    "04"  # protocol address length
    "00 01"  # opcode 1 request
    "00 09 fb 12 34 56"  # sender MAC
    "0a 01 14 0f"  # sender IP 10.1.20.15
    "00 00 00 00 00 00"  # target MAC unknown
    "0a 01 14 01" + "00" * 18  # target IP 10.1.20.1  # Ethernet padding to 60 bytes
)
ARP_REPLY = (
    "00 09 fb 12 34 56"  # destination MAC
    "00 00 0c 07 ac 01"  # source MAC (HSRP virtual MAC)
    "08 06"  # ethertype ARP
    "00 01"  # hardware type Ethernet
    "08 00"  # protocol type IPv4
    "06"  # hardware address length
    "04"  # protocol address length
    "00 02"  # opcode 2 reply
    "00 00 0c 07 ac 01"  # sender MAC
    "0a 01 14 01"  # sender IP 10.1.20.1
    "00 09 fb 12 34 56"  # target MAC
    "0a 01 14 0f"  # target IP 10.1.20.15
)

# --------------------------------------------------------------------------- other link types
SLL_HDR = (
    "00 00"  # packet type 0: unicast to us
    "00 01"  # ARPHRD_ETHER
    "00 06"  # link-layer address length 6
    "00 09 fb 12 34 56 00 00"  # source address, padded to 8
    "08 00"  # protocol IPv4
)
SLL2_HDR = (
    "86 dd"  # protocol IPv6
    "00 00"  # reserved
    "00 00 00 02"  # interface index 2
    "00 01"  # ARPHRD_ETHER
    "04"  # packet type 4: outgoing
    "06"  # link-layer address length 6
    "00 09 fb 12 34 56 00 00"  # source address, padded to 8
)

IPV4_TCP = IPV4_TCP_HDR + TCP_OPTS_HDR + TCP_PAYLOAD
IPV4_UDP = IPV4_UDP_HDR + UDP_HDR + UDP_PAYLOAD
IPV6_TCP = IPV6_TCP_HDR + TCP6_HDR + TCP6_PAYLOAD

SRC_MAC = mac("00:09:fb:12:34:56")
DST_MAC = mac("00:1b:21:3a:4f:5e")
IP_A, IP_B = ip("10.1.20.15"), ip("10.1.30.40")
IP6_A, IP6_B = ip("2001:db8:1::15"), ip("2001:db8:2::28")


def decode(linktype: int, frame: bytes, decoder: Decoder | None = None) -> PacketMeta | None:
    d = decoder if decoder is not None else Decoder()
    return d.decode(linktype, frame, 1.5, len(frame))


def ok(linktype: int, frame: bytes) -> PacketMeta:
    d = Decoder()
    m = decode(linktype, frame, d)
    assert m is not None, dict(d.malformed)
    assert not d.malformed
    return m


def slots(m: PacketMeta) -> dict[str, object]:
    return {name: getattr(m, name) for name in PacketMeta.__slots__}


# --------------------------------------------------------------------------- Ethernet / IPv4
def test_ethernet_ipv4_tcp_with_options_and_payload() -> None:
    m = ok(linktypes.ETHERNET, hx(ETH_MACS + ETYPE_IPV4 + IPV4_TCP))
    assert (m.dst_mac, m.src_mac, m.ethertype) == (DST_MAC, SRC_MAC, ETH_IPV4)
    assert (m.vlan, m.inner_vlan) == (None, None)
    assert (m.ip_version, m.src_ip, m.dst_ip, m.ttl, m.proto) == (4, IP_A, IP_B, 64, PROTO_TCP)
    assert (m.sport, m.dport, m.seq, m.tcp_flags, m.window) == (49152, 104, 0x11223344, 0x18, 64240)
    assert m.fragment is False and m.arp is None
    assert m.payload_offset == 14 + 20 + 32  # past the 12 bytes of TCP options
    assert m.payload == hx(TCP_PAYLOAD) and m.payload_len == 8
    assert (m.ts, m.wirelen) == (1.5, 74)


def test_udp_payload_excludes_ethernet_padding() -> None:
    frame = hx(ETH_MACS + ETYPE_IPV4 + IPV4_UDP + ETH_PADDING)
    assert len(frame) == 60
    m = ok(linktypes.ETHERNET, frame)
    assert (m.proto, m.sport, m.dport) == (PROTO_UDP, 50000, 514)
    assert m.payload == b"<13>"
    assert m.payload_end == 14 + 32


def test_tcp_payload_excludes_ethernet_padding() -> None:
    # a bare ACK: 40-byte IP datagram padded to 60 bytes on the wire
    frame = eth(ETH_IPV4) + ipv4(IP_A, IP_B, PROTO_TCP, tcp(1, 2, flags=0x10)) + bytes(6)
    m = ok(linktypes.ETHERNET, frame)
    assert m.payload == b"" and m.payload_offset == m.payload_end == 54


def test_udp_length_field_longer_than_datagram_keeps_captured_bytes() -> None:
    frame = eth(ETH_IPV4) + ipv4(IP_A, IP_B, PROTO_UDP, udp(1, 2, b"abcd", length=400))
    assert ok(linktypes.ETHERNET, frame).payload == b"abcd"


def test_ipv4_cut_by_snaplen_keeps_what_was_captured() -> None:
    frame = hx(ETH_MACS + ETYPE_IPV4 + IPV4_TCP)[:-3]  # total length says 3 bytes more
    m = ok(linktypes.ETHERNET, frame)
    assert m.payload == hx(TCP_PAYLOAD)[:5]


def test_8021q() -> None:
    m = ok(linktypes.ETHERNET, hx(ETH_MACS + DOT1Q_VLAN10 + ETYPE_IPV4 + IPV4_TCP))
    assert (m.vlan, m.inner_vlan, m.ethertype) == (10, None, ETH_IPV4)
    assert (m.sport, m.dport, m.payload) == (49152, 104, hx(TCP_PAYLOAD))


@pytest.mark.parametrize("outer_tpid", ["88 a8", "91 00", "81 00"])
def test_qinq_keeps_outer_and_inner_vlan(outer_tpid: str) -> None:
    tags = (
        outer_tpid  # outer TPID: 802.1ad S-tag, pre-standard 0x9100, or 802.1Q stacked
        + "00 64"  # outer TCI: VID 100
        + "81 00"  # inner TPID 802.1Q C-tag
        + "20 14"  # inner TCI: PCP 1, VID 20
    )
    m = ok(linktypes.ETHERNET, hx(ETH_MACS + tags + ETYPE_IPV4 + IPV4_UDP + ETH_PADDING))
    assert (m.vlan, m.inner_vlan) == (100, 20)
    assert (m.src_ip, m.dst_ip, m.sport, m.dport, m.payload) == (IP_A, IP_B, 50000, 514, b"<13>")


def test_vlan_id_masks_pcp_and_dei() -> None:
    tags = "81 00ff ff"  # TPID 802.1Q; TCI: PCP 7, DEI 1, VID 4095
    assert ok(linktypes.ETHERNET, hx(ETH_MACS + tags + ETYPE_IPV4 + IPV4_UDP)).vlan == 4095


def test_three_stacked_tags_are_malformed() -> None:
    tags = (
        "88 a8 00 64"  # S-tag VID 100
        "81 00 00 14"  # C-tag VID 20
        "81 00 00 1e"  # a third tag VID 30
    )
    d = Decoder()
    assert decode(linktypes.ETHERNET, hx(ETH_MACS + tags + ETYPE_IPV4 + IPV4_UDP), d) is None
    assert d.malformed == {"vlan: more than two tags": 1}


def test_non_ip_ethertype_is_counted_not_malformed() -> None:
    frame = hx(ETH_MACS + "88 cc" + "02 07 04 00 09 fb 12 34 56") + bytes(37)  # LLDP chassis id
    d = Decoder()
    m = decode(linktypes.ETHERNET, frame, d)
    assert m is not None and m.ip_version == 0 and m.ethertype == 0x88CC
    assert m.src_mac == SRC_MAC
    assert m.payload == frame[14:]  # the L2 payload, for frame parsers (LLDP here)
    assert d.non_ip == {0x88CC: 1} and not d.malformed


def test_8023_llc_payload_is_bounded_by_its_length() -> None:
    llc = bytes.fromhex("42 42 03") + bytes(35)  # STP BPDU: DSAP/SSAP 0x42, UI; 38 bytes
    frame = hx(ETH_MACS) + len(llc).to_bytes(2, "big") + llc + bytes(8)  # 8 bytes of padding
    m = decode(linktypes.ETHERNET, frame, Decoder())
    assert m is not None and m.ethertype == len(llc) and m.payload == llc


def test_arp_request_and_reply() -> None:
    req = ok(linktypes.ETHERNET, hx(ARP_REQUEST))
    assert (req.ethertype, req.ip_version, req.dst_mac) == (ETH_ARP, 0, b"\xff" * 6)
    assert req.arp == (1, SRC_MAC, ip("10.1.20.15"), bytes(6), ip("10.1.20.1"))
    rep = ok(linktypes.ETHERNET, hx(ARP_REPLY))
    hsrp = mac("00:00:0c:07:ac:01")
    assert rep.arp == (2, hsrp, ip("10.1.20.1"), SRC_MAC, ip("10.1.20.15"))
    assert rep.src_mac == hsrp


def test_arp_in_vlan() -> None:
    body = hx(ARP_REQUEST)[14:]
    m = ok(linktypes.ETHERNET, hx(ETH_MACS + DOT1Q_VLAN10 + ETYPE_ARP) + body)
    assert m.vlan == 10 and m.arp is not None and m.arp[0] == 1


def test_ipv4_fragments() -> None:
    d = Decoder()
    first = decode(linktypes.ETHERNET, hx(ETH_MACS + ETYPE_IPV4 + IPV4_FRAG1_HDR + FRAG1_UDP), d)
    later = decode(linktypes.ETHERNET, hx(ETH_MACS + ETYPE_IPV4 + IPV4_FRAG2_HDR + FRAG2_DATA), d)
    assert first is not None and later is not None and not d.malformed
    assert first.fragment and (first.proto, first.sport, first.dport) == (PROTO_UDP, 50000, 161)
    assert first.payload == hx(FRAG1_UDP)[8:]  # UDP length 32 overruns the fragment: keep 16
    assert later.fragment and later.proto == PROTO_UDP
    assert (later.sport, later.dport, later.payload_len) == (0, 0, 0)  # no transport header
    assert (later.src_ip, later.dst_ip) == (IP_A, IP_B)
    assert d.ip_fragments == 2


def test_dont_fragment_alone_is_not_a_fragment() -> None:
    d = Decoder()
    m = decode(linktypes.ETHERNET, hx(ETH_MACS + ETYPE_IPV4 + IPV4_TCP), d)  # flags DF
    assert m is not None and not m.fragment and d.ip_fragments == 0


def test_ipv4_with_options_takes_general_path() -> None:
    frame = hx(ETH_MACS + DOT1Q_VLAN10 + ETYPE_IPV4 + IPV4_OPTS_UDP_HDR + UDP_HDR + UDP_PAYLOAD)
    assert _fast_ethernet_ipv4(frame, 0.0, len(frame)) is None
    m = ok(linktypes.ETHERNET, frame)
    assert (m.vlan, m.ttl, m.sport, m.dport) == (10, 1, 50000, 514)
    assert m.payload_offset == 18 + 24 + 8 and m.payload == b"<13>"


def test_icmp() -> None:
    m = ok(linktypes.ETHERNET, hx(ETH_MACS + ETYPE_IPV4 + IPV4_ICMP_HDR + ICMP_ECHO))
    assert (m.proto, m.sport, m.dport) == (PROTO_ICMP, 8, 0)  # type, code in the port slots
    assert m.payload == hx(ICMP_ECHO)[4:]  # rest of header (id, seq) and data


# --------------------------------------------------------------------------- IPv6
def test_ipv6_tcp() -> None:
    m = ok(linktypes.ETHERNET, hx(ETH_MACS + ETYPE_IPV6 + IPV6_TCP))
    assert (m.ethertype, m.ip_version, m.src_ip, m.dst_ip) == (ETH_IPV6, 6, IP6_A, IP6_B)
    assert (m.ttl, m.proto, m.sport, m.dport, m.seq, m.tcp_flags) == (64, 6, 49153, 11112, 1, 0x18)
    assert m.payload == hx(TCP6_PAYLOAD) and not m.fragment


def test_ipv6_extension_headers_and_first_fragment() -> None:
    d = Decoder()
    frame = hx(ETH_MACS + ETYPE_IPV6 + IPV6_EXT_HDR + HBH + DSTOPTS + FRAG6_FIRST + FRAG6_UDP)
    m = decode(linktypes.ETHERNET, frame, d)
    assert m is not None and not d.malformed
    assert (m.proto, m.sport, m.dport, m.fragment) == (PROTO_UDP, 50000, 161, True)
    assert m.payload_offset == 14 + 40 + 24 + 8 and m.payload == hx("30 82 00 10")
    assert d.ip_fragments == 1


def test_ipv6_later_fragment_has_no_transport() -> None:
    d = Decoder()
    frame = hx(ETH_MACS + ETYPE_IPV6 + IPV6_FRAG2_HDR + FRAG6_LATER + FRAG2_DATA)
    m = decode(linktypes.ETHERNET, frame, d)
    assert m is not None and not d.malformed
    assert (m.fragment, m.proto, m.sport, m.dport, m.payload_len) == (True, PROTO_UDP, 0, 0, 0)
    assert d.ip_fragments == 1


def test_icmpv6() -> None:
    m = ok(linktypes.ETHERNET, hx(ETH_MACS + ETYPE_IPV6 + IPV6_ICMP_HDR + ICMP6_ECHO))
    assert (m.proto, m.sport, m.dport, m.ttl) == (PROTO_ICMPV6, 128, 0, 255)


# --------------------------------------------------------------------------- link types
def test_linux_sll() -> None:
    m = ok(linktypes.LINUX_SLL, hx(SLL_HDR + IPV4_UDP))
    assert (m.src_mac, m.dst_mac, m.vlan) == (SRC_MAC, None, None)
    assert (m.src_ip, m.sport, m.dport, m.payload) == (IP_A, 50000, 514, b"<13>")


def test_linux_sll_without_mac_address() -> None:
    hdr = "00 0003 0400 0000 00 00 00 00 00 00 0008 00"  # ARPHRD_LOOPBACK, no addr
    m = ok(linktypes.LINUX_SLL, hx(hdr + IPV4_UDP))
    assert m.src_mac is None and m.sport == 50000


def test_linux_sll2() -> None:
    m = ok(linktypes.LINUX_SLL2, hx(SLL2_HDR + IPV6_TCP))
    assert (m.src_mac, m.ip_version, m.src_ip, m.dport) == (SRC_MAC, 6, IP6_A, 11112)
    assert m.payload == hx(TCP6_PAYLOAD)


@pytest.mark.parametrize(
    "linktype",
    [linktypes.RAW, linktypes.RAW_OLD_12, linktypes.RAW_OLD_14, linktypes.IPV4],
)
def test_raw_ipv4(linktype: int) -> None:
    m = ok(linktype, hx(IPV4_TCP))
    assert (m.src_mac, m.ip_version, m.src_ip, m.dst_ip, m.dport) == (None, 4, IP_A, IP_B, 104)
    assert m.payload_offset == 52 and m.payload == hx(TCP_PAYLOAD)


@pytest.mark.parametrize("linktype", [linktypes.RAW, linktypes.IPV6])
def test_raw_ipv6(linktype: int) -> None:
    m = ok(linktype, hx(IPV6_TCP))
    assert (m.ip_version, m.src_ip, m.dport, m.payload) == (6, IP6_A, 11112, hx(TCP6_PAYLOAD))


@pytest.mark.parametrize(
    ("linktype", "family", "body"),
    [
        (linktypes.NULL, "02 00 00 00", IPV4_TCP),  # AF_INET, little-endian host
        (linktypes.NULL, "18 00 00 00", IPV6_TCP),  # AF_INET6 24 (NetBSD/OpenBSD), LE
        (linktypes.NULL, "1c 00 00 00", IPV6_TCP),  # AF_INET6 28 (FreeBSD), LE
        (linktypes.NULL, "1e 00 00 00", IPV6_TCP),  # AF_INET6 30 (macOS), LE
        (linktypes.NULL, "00 00 00 02", IPV4_TCP),  # AF_INET written by a big-endian host
        (linktypes.NULL, "00 00 00 1e", IPV6_TCP),  # AF_INET6 30 written big-endian
        (linktypes.LOOP, "00 00 00 02", IPV4_TCP),  # DLT_LOOP: network order AF_INET
        (linktypes.LOOP, "00 00 00 18", IPV6_TCP),  # network order AF_INET6 24
        (linktypes.LOOP, "00 00 00 1c", IPV6_TCP),  # 28
        (linktypes.LOOP, "00 00 00 1e", IPV6_TCP),  # 30
    ],
)
def test_bsd_loopback(linktype: int, family: str, body: str) -> None:
    m = ok(linktype, hx(family + body))
    v4 = body == IPV4_TCP
    assert (m.ip_version, m.src_mac) == (4 if v4 else 6, None)
    assert m.dport == (104 if v4 else 11112)
    assert m.payload_offset == (4 + 20 + 32 if v4 else 4 + 40 + 20)
    assert m.payload == hx(TCP_PAYLOAD if v4 else TCP6_PAYLOAD)


def test_unsupported_link_type() -> None:
    d = Decoder()
    assert decode(147, hx(IPV4_TCP), d) is None  # LINKTYPE_USER0
    assert d.malformed == {"unsupported link type 147": 1}


# --------------------------------------------------------------------------- malformed
ETH4 = ETH_MACS + ETYPE_IPV4
ETH6 = ETH_MACS + ETYPE_IPV6
E, R4, R6 = linktypes.ETHERNET, linktypes.IPV4, linktypes.IPV6


def patch(fixture: str, offset: int, new: str) -> bytes:
    """The fixture's bytes with the bytes at ``offset`` overwritten by ``new``."""
    b, n = bytearray(hx(fixture)), hx(new)
    b[offset : offset + len(n)] = n
    return bytes(b)


TRUNCATED: list[tuple[str, int, bytes, str]] = [
    # (id, link type, frame, reason): one for every reason the decoder counts
    ("eth-short", E, hx(ETH_MACS + "08"), "ethernet: short header"),
    ("eth-empty", E, b"", "ethernet: short header"),
    ("vlan-short", E, hx(ETH_MACS + "81 00 00"), "vlan: short tag"),
    ("qinq-inner-short", E, hx(ETH_MACS + "88 a8 00 64 81 00"), "vlan: short tag"),
    ("arp-short", E, hx(ARP_REQUEST)[: 14 + 27], "arp: short packet"),
    ("arp-not-ether", E, patch(ARP_REQUEST, 14, "00 06"), "arp: not Ethernet/IPv4"),  # IEEE 802
    ("arp-not-ipv4", E, patch(ARP_REQUEST, 16, "86 dd"), "arp: not Ethernet/IPv4"),
    ("ipv4-short", E, hx(ETH4 + IPV4_TCP)[: 14 + 19], "ipv4: short header"),
    ("ipv4-version", E, patch(ETH4 + IPV4_TCP, 14, "55"), "ipv4: bad version or header length"),
    ("ipv4-ihl-4", E, patch(ETH4 + IPV4_TCP, 14, "44"), "ipv4: bad version or header length"),
    (
        "ipv4-totlen",
        E,
        patch(ETH4 + IPV4_TCP, 16, "00 10"),
        "ipv4: total length below header length",
    ),
    ("ipv4-opts-cut", R4, hx(IPV4_OPTS_UDP_HDR)[:22], "ipv4: header cut by snaplen"),
    ("tcp-short", R4, hx(IPV4_TCP)[: 20 + 15], "tcp: short header"),
    ("tcp-doff-4", R4, patch(IPV4_TCP, 32, "40"), "tcp: header length below 20"),
    ("tcp-doff-overrun", R4, patch(IPV4_TCP, 32, "f0"), "tcp: header overruns packet"),
    ("udp-short", R4, hx(IPV4_UDP)[:25], "udp: short header"),
    ("icmp-short", R4, hx(IPV4_ICMP_HDR + ICMP_ECHO)[:22], "icmp: short header"),
    ("ipv6-short", E, hx(ETH6 + IPV6_TCP)[: 14 + 39], "ipv6: short header"),
    ("ipv6-version", R6, patch(IPV6_TCP, 0, "40"), "ipv6: bad version"),
    # payload length 1: the hop-by-hop header's two fixed bytes do not fit
    ("ipv6-ext-short", R6, patch(IPV6_EXT_HDR + HBH, 4, "00 01"), "ipv6: short extension header"),
    # payload length 4: the 8-byte fragment header does not fit
    (
        "ipv6-frag-short",
        R6,
        patch(IPV6_FRAG2_HDR + FRAG6_LATER, 4, "00 04"),
        "ipv6: short fragment header",
    ),
    # hop-by-hop says 16 bytes, next header TCP, but the payload length is 8
    (
        "ipv6-ext-overrun",
        R6,
        patch(IPV6_EXT_HDR + HBH, 4, "00 08")[:40] + hx("06 01") + hx(HBH)[2:],
        "ipv6: extension header overruns packet",
    ),
    # nine hop-by-hop headers chained: more than MAX_IPV6_EXT_HEADERS
    (
        "ipv6-ext-chain",
        R6,
        patch(IPV6_EXT_HDR, 4, "00 48") + (hx("00 00") + hx(HBH)[2:]) * 9,
        "ipv6: too many extension headers",
    ),
    ("raw-empty", linktypes.RAW, b"", "raw: empty frame"),
    ("raw-version", linktypes.RAW, patch(IPV4_TCP, 0, "55"), "raw: not IPv4/IPv6"),
    ("null-short", linktypes.NULL, hx("02 00 00"), "loopback: short header"),
    (
        "null-family",
        linktypes.NULL,
        hx("07 00 00 00" + IPV4_TCP),
        "loopback: unknown address family",
    ),
    (
        "loop-host-order",
        linktypes.LOOP,
        hx("02 00 00 00" + IPV4_TCP),
        "loopback: unknown address family",
    ),
    ("sll-short", linktypes.LINUX_SLL, hx(SLL_HDR)[:15], "sll: short header"),
    ("sll2-short", linktypes.LINUX_SLL2, hx(SLL2_HDR)[:19], "sll2: short header"),
    (
        "sll-ipv4-short",
        linktypes.LINUX_SLL,
        hx(SLL_HDR + IPV4_UDP)[: 16 + 10],
        "ipv4: short header",
    ),
    (
        "vlan-ipv4-short",
        E,
        hx(ETH_MACS + DOT1Q_VLAN10 + ETYPE_IPV4 + IPV4_UDP)[:28],
        "ipv4: short header",
    ),
    ("raw4-carries-ipv6", R4, hx(IPV6_TCP), "ipv4: bad version or header length"),
]


@pytest.mark.parametrize(
    ("linktype", "frame", "reason"), [t[1:] for t in TRUNCATED], ids=[t[0] for t in TRUNCATED]
)
def test_malformed_is_counted_by_reason(linktype: int, frame: bytes, reason: str) -> None:
    d = Decoder()
    assert decode(linktype, frame, d) is None
    assert d.malformed == {reason: 1}


def test_every_truncation_of_valid_frames_never_raises() -> None:
    """Every prefix of every fixture: a PacketMeta within bounds or a counted reason."""
    for linktype, frame in VALID_FRAMES:
        for cut in range(len(frame) + 1):
            d = Decoder()
            m = decode(linktype, frame[:cut], d)
            if m is None:
                assert sum(d.malformed.values()) == 1, (linktype, cut)
            else:
                assert 0 <= m.payload_offset <= m.payload_end <= cut


# --------------------------------------------------------------------------- fast path
def test_fast_path_takes_8021q_tcp() -> None:
    frame = hx(ETH_MACS + DOT1Q_VLAN10 + ETYPE_IPV4 + IPV4_TCP)
    fast = _fast_ethernet_ipv4(frame, 1.5, len(frame))
    assert fast is not None
    assert slots(fast) == slots(Decoder()._ethernet(frame, 1.5, len(frame)))  # type: ignore[arg-type]


def test_fast_path_takes_untagged_tcp() -> None:
    frame = hx(ETH_MACS + ETYPE_IPV4 + IPV4_TCP)
    assert _fast_ethernet_ipv4(frame, 1.5, len(frame)) is not None


@st.composite
def ethernet_ipv4_frames(draw: st.DrawFn, *, eligible: bool) -> bytes:
    """Valid Ethernet [/802.1Q] / IPv4 / TCP|UDP / payload [/ padding] frames.

    ``eligible``: only what the fast path is documented to take (at most one 0x8100 tag, IHL 5,
    no fragment bits, total length >= 40, consistent UDP length). Otherwise IPv4 options,
    fragment bits and odd UDP lengths are mixed in, and the fast path may decline.
    """
    vlan = draw(st.none() | st.integers(0, 0xFFFF))  # the whole TCI: PCP and DEI too
    head = eth(ETH_IPV4) if vlan is None else eth(0x8100) + _u16(vlan) + _u16(ETH_IPV4)
    payload = draw(st.binary(min_size=12 if eligible else 0, max_size=40))
    sport, dport = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
    if draw(st.booleans()):
        opts = draw(st.sampled_from([b"", b"\x02\x04\x05\xb4", b"\x01\x01\x08\x0a" + bytes(8)]))
        l4 = tcp(
            sport,
            dport,
            seq=draw(st.integers(0, 2**32 - 1)),
            flags=draw(st.integers(0, 255)),
            window=draw(st.integers(0, 65535)),
            options=opts,
            payload=payload,
        )
        proto = PROTO_TCP
    else:
        udp_len = None if eligible else draw(st.none() | st.integers(0, 80))
        l4, proto = udp(sport, dport, payload, length=udp_len), PROTO_UDP
    ip_opts, frag = b"", draw(st.sampled_from([0, 0x4000]))
    if not eligible:
        ip_opts = draw(st.sampled_from([b"", b"\x94\x04\x00\x00"]))
        frag = draw(st.sampled_from([0, 0x4000, 0x2000, 0x0003]))
    ttl = draw(st.integers(0, 255))
    pkt = ipv4(IP_A, IP_B, proto, l4, ttl=ttl, flags_frag=frag, options=ip_opts)
    return head + pkt + bytes(draw(st.integers(0, 20)))


def _u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def _agree(frame: bytes) -> bool:
    """Fast and general paths give identical slots; False when the fast path declined."""
    fast = _fast_ethernet_ipv4(frame, 2.0, len(frame) + 4)
    if fast is None:
        return False
    general = Decoder()._ethernet(frame, 2.0, len(frame) + 4)
    assert general is not None
    assert slots(fast) == slots(general)
    return True


@settings(max_examples=150, deadline=None)
@given(frame=ethernet_ipv4_frames(eligible=True))
def test_fast_path_takes_eligible_frames_and_agrees(frame: bytes) -> None:
    assert _agree(frame)


@settings(max_examples=150, deadline=None)
@given(frame=ethernet_ipv4_frames(eligible=False))
def test_fast_and_general_paths_agree(frame: bytes) -> None:
    _agree(frame)


# --------------------------------------------------------------------------- scapy cross-check
@st.composite
def scapy_frames(draw: st.DrawFn) -> bytes:
    from scapy.layers.inet import IP, TCP, UDP, IPOption_Router_Alert
    from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

    def addr() -> str:
        return ".".join(str(draw(st.integers(1, 254))) for _ in range(4))

    pkt = Ether(src="00:09:fb:12:34:56", dst="00:1b:21:3a:4f:5e")
    shape = draw(st.sampled_from(["none", "dot1q", "qinq"]))
    if shape == "dot1q":
        pkt = pkt / Dot1Q(vlan=draw(st.integers(0, 4095)), prio=draw(st.integers(0, 7)))
    elif shape == "qinq":
        pkt = pkt / Dot1AD(vlan=draw(st.integers(0, 4095))) / Dot1Q(vlan=draw(st.integers(0, 4095)))
    opts = [IPOption_Router_Alert()] if draw(st.booleans()) else []
    pkt = pkt / IP(src=addr(), dst=addr(), ttl=draw(st.integers(1, 255)), options=opts)
    ports = {"sport": draw(st.integers(0, 65535)), "dport": draw(st.integers(0, 65535))}
    if draw(st.booleans()):
        topts = draw(st.sampled_from([[], [("MSS", 1460)], [("NOP", None), ("SAckOK", b"")]]))
        l4 = TCP(
            **ports,
            seq=draw(st.integers(0, 2**32 - 1)),
            flags=draw(st.integers(0, 255)),
            window=draw(st.integers(0, 65535)),
            options=topts,
        )
    else:
        l4 = UDP(**ports)
    return bytes(pkt / l4 / draw(st.binary(max_size=64)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=scapy_frames())
def test_decode_agrees_with_scapy(frame: bytes) -> None:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

    ref = Ether(frame)
    m = ok(linktypes.ETHERNET, frame)
    tags = [ref[Dot1AD].vlan] if Dot1AD in ref else []
    tags += [ref[Dot1Q].vlan] if Dot1Q in ref else []
    if tags and tags[0] == 0:
        tags[0] = None  # an outer VID 0 is an 802.1p priority tag: no VLAN (IEEE 802.1Q 9.6)
    assert [m.vlan, m.inner_vlan] == tags + [None] * (2 - len(tags))
    assert (ip_text(m.src_ip), ip_text(m.dst_ip), m.ttl) == (ref[IP].src, ref[IP].dst, ref[IP].ttl)
    l4 = ref[TCP] if TCP in ref else ref[UDP]
    assert (m.sport, m.dport) == (l4.sport, l4.dport)
    if TCP in ref:
        assert (m.proto, m.tcp_flags, m.seq, m.window) == (
            6,
            int(l4.flags) & 0xFF,
            l4.seq,
            l4.window,
        )
    else:
        assert m.proto == 17
    assert m.payload == bytes(l4.payload)


def ip_text(b: bytes) -> str:
    return ".".join(str(x) for x in b)


# --------------------------------------------------------------------------- never raises
VALID_FRAMES: list[tuple[int, bytes]] = [
    (E, hx(ETH4 + IPV4_TCP)),
    (E, hx(ETH_MACS + DOT1Q_VLAN10 + ETYPE_IPV4 + IPV4_UDP + ETH_PADDING)),
    (E, hx(ETH_MACS + "88 a8 00 64 81 00 00 14" + ETYPE_IPV6 + IPV6_TCP)),
    (E, hx(ARP_REQUEST)),
    (E, hx(ETH4 + IPV4_FRAG1_HDR + FRAG1_UDP)),
    (E, hx(ETH4 + IPV4_OPTS_UDP_HDR + UDP_HDR + UDP_PAYLOAD)),
    (E, hx(ETH4 + IPV4_ICMP_HDR + ICMP_ECHO)),
    (E, hx(ETH6 + IPV6_EXT_HDR + HBH + DSTOPTS + FRAG6_FIRST + FRAG6_UDP)),
    (E, hx(ETH6 + IPV6_FRAG2_HDR + FRAG6_LATER + FRAG2_DATA)),
    (E, hx(ETH6 + IPV6_ICMP_HDR + ICMP6_ECHO)),
    (linktypes.LINUX_SLL, hx(SLL_HDR + IPV4_UDP)),
    (linktypes.LINUX_SLL2, hx(SLL2_HDR + IPV6_TCP)),
    (linktypes.RAW, hx(IPV4_TCP)),
    (linktypes.RAW_OLD_12, hx(IPV6_TCP)),
    (linktypes.RAW_OLD_14, hx(IPV4_UDP)),
    (R4, hx(IPV4_TCP)),
    (R6, hx(IPV6_EXT_HDR + HBH + DSTOPTS + FRAG6_FIRST + FRAG6_UDP)),
    (linktypes.NULL, hx("1e 00 00 00" + IPV6_TCP)),
    (linktypes.LOOP, hx("00 00 00 02" + IPV4_TCP)),
]


def _check_bounds(linktype: int, frame: bytes) -> None:
    d = Decoder()
    m = d.decode(linktype, frame, 0.0, len(frame))
    if m is None:
        assert sum(d.malformed.values()) == 1
        return
    assert m.frame is frame
    assert 0 <= m.payload_offset <= m.payload_end <= len(frame)
    assert len(m.payload) == m.payload_len


@settings(max_examples=300, deadline=None)
@given(linktype=st.sampled_from(sorted(linktypes.SUPPORTED)), frame=st.binary(max_size=160))
def test_arbitrary_bytes_never_raise(linktype: int, frame: bytes) -> None:
    _check_bounds(linktype, frame)


@st.composite
def mutated_frames(draw: st.DrawFn) -> tuple[int, bytes]:
    """A valid fixture with a few bytes overwritten and maybe cut: reaches the deep layers."""
    linktype, frame = draw(st.sampled_from(VALID_FRAMES))
    buf = bytearray(frame)
    for _ in range(draw(st.integers(1, 4))):
        buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
    return linktype, bytes(buf[: draw(st.integers(0, len(buf)))])


@settings(max_examples=300, deadline=None)
@given(case=mutated_frames())
def test_mutated_frames_never_raise(case: tuple[int, bytes]) -> None:
    _check_bounds(*case)
