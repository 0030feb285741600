"""Tiny frame builders for the decode / flow tests, byte for byte with ``struct``.

The annotated hex fixtures in ``test_decode.py`` are the reference; these builders
serve the property tests, which need many frames with random fields. Checksums are
left zero: the decoder never verifies them.
"""

from __future__ import annotations

import ipaddress
import struct

from agent.decode import PacketMeta


def hx(text: str) -> bytes:
    """Hex with any whitespace, as the annotated fixtures are written."""
    return bytes.fromhex(text)


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def eth(
    ethertype: int,
    dst: bytes = b"\x00\x1b\x21\x3a\x4f\x5e",
    src: bytes = b"\x00\x09\xfb\x12\x34\x56",
) -> bytes:
    return dst + src + struct.pack("!H", ethertype)


def tag(tpid: int, vid: int, pcp: int = 0) -> bytes:
    """The TPID of this tag followed by its TCI; the next ethertype follows separately."""
    return struct.pack("!HH", tpid, (pcp << 13) | vid)


def ipv4(
    src: bytes,
    dst: bytes,
    proto: int,
    payload: bytes,
    *,
    ttl: int = 64,
    ident: int = 0,
    flags_frag: int = 0x4000,
    options: bytes = b"",
    total_len: int | None = None,
) -> bytes:
    ihl = 5 + len(options) // 4
    length = total_len if total_len is not None else ihl * 4 + len(payload)
    head = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, flags_frag, ttl, proto, 0, src, dst
    )
    return head + options + payload


def ipv6(src: bytes, dst: bytes, next_header: int, payload: bytes, *, hlim: int = 64) -> bytes:
    return (
        struct.pack("!IHBB16s16s", 0x60000000, len(payload), next_header, hlim, src, dst) + payload
    )


def tcp(
    sport: int,
    dport: int,
    *,
    seq: int = 0,
    ack: int = 0,
    flags: int = 0x02,
    window: int = 65535,
    options: bytes = b"",
    payload: bytes = b"",
) -> bytes:
    data_off = (5 + len(options) // 4) << 4
    return (
        struct.pack("!HHIIBBHHH", sport, dport, seq, ack, data_off, flags, window, 0, 0)
        + options
        + payload
    )


def udp(sport: int, dport: int, payload: bytes = b"", *, length: int | None = None) -> bytes:
    return (
        struct.pack("!HHHH", sport, dport, 8 + len(payload) if length is None else length, 0)
        + payload
    )


def meta(
    src: str,
    sport: int,
    dst: str,
    dport: int,
    *,
    proto: int = 6,
    flags: int = 0x10,
    ts: float = 0.0,
    wirelen: int = 100,
    vlan: int | None = None,
    inner_vlan: int | None = None,
    src_mac: bytes | None = None,
    dst_mac: bytes | None = None,
) -> PacketMeta:
    """A decoded packet as the flow table sees it, without building the frame."""
    m = PacketMeta()
    m.src_ip, m.dst_ip, m.sport, m.dport = ip(src), ip(dst), sport, dport
    m.ip_version = 4 if len(m.src_ip) == 4 else 6
    m.proto, m.tcp_flags, m.ts, m.wirelen = proto, flags if proto == 6 else 0, ts, wirelen
    m.vlan, m.inner_vlan, m.src_mac, m.dst_mac = vlan, inner_vlan, src_mac, dst_mac
    return m
