"""The fast lane: one packet of an established, uninteresting flow in one function call.

Most mirror-port packets are mid-connection segments of flows that no parser
wants (HTTPS, SMB, database traffic) or that a parser gave up on. For those,
all the sensor does is count: find the flow, add packets and bytes, move
last-seen. A bare TCP ACK (no payload, no SYN/FIN/RST) is counted here even on a flow
that is still in detection or parsing: ``AppDetector.on_packet`` returns at once for it,
as it moves no stream (a quarter of those flows' packets on the reference capture).
The layered path (``Decoder.decode`` building a ``PacketMeta``, then ``FlowTable.update``)
spends most of its time on objects and calls it
does not need for that. This function decodes Ethernet / one 802.1Q tag /
IPv4 without options or fragments / TCP or UDP with one ``unpack_from``
call, looks the flow up, and updates it in place; QinQ, IPv6 without extension
headers and ICMP take a slower general parse (``other_key``). Measured in
docs/performance.md.

It handles a packet only when the layered path would do exactly the same
and nothing else; otherwise it returns False and the caller takes the layered
path, which stays the single source of truth for everything with state:
a new flow, SYN/FIN/RST, payload for a flow still in detection or parsing, a flow idle past
its timeout that must end first, a due idle sweep, and every frame that is not
one of the cases above. ``tests/test_fastlane.py`` checks that reports are
identical with and without it.

This module is also the specification of the C lane (``agent._fastcore.Lane``, chosen by
``agent.fastcore``): ``tests/test_fastcore.py`` requires both to take the same frames and
leave every flow in the same state.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from agent.decode import (
    ETH_IPV4,
    ETH_IPV6,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    VLAN_TPIDS,
)
from agent.flows import TCP_CLOSED_TIMEOUT, FlowTable, TcpState

TCP_CONTROL = 0x07  # FIN, SYN, RST: state changes belong to FlowTable
MIN_FRAME = 42  # Ethernet + IPv4 + UDP headers: nothing shorter is for the lane
ONE_UNPACK = 52  # bytes the one-unpack structs read; shorter frames take other_key

FastLane = Callable[[bytes, float, int], bool]
Key = tuple[Any, ...]

# Ethernet + IPv4 (no options) + the first 16 bytes of TCP in one unpack; UDP shares the
# port positions, and its length field sits where TCP's sequence number starts.
_UNTAGGED = struct.Struct("!12xH BxHxxHBB2x4s4s HHIIBB")
_TAGGED = struct.Struct("!12xHHH BxHxxHBB2x4s4s HHIIBB")
_U16 = struct.Struct("!H").unpack_from
_IPV4 = struct.Struct("!BxHxxHxB2x4s4s").unpack_from  # ver/ihl, total length, frag, proto, addrs
_IPV6 = struct.Struct("!4xHBx16s16s").unpack_from  # payload length, next header, addrs
_TCP = struct.Struct("!HH8xBB").unpack_from  # ports, data offset, flags
_UDP = struct.Struct("!HHH").unpack_from  # ports, length


def other_key(frame: bytes) -> tuple[Key, bytes, int, bool] | None:
    """The flow key, source address and port of a frame outside the one-unpack case, and
    whether it is a bare TCP ACK (no payload), or None.

    Covers up to two VLAN tags of any TPID the decoder knows, IPv4 without options or
    fragments, IPv6 without extension headers, and TCP (no SYN/FIN/RST), UDP, ICMP and
    ICMPv6, each only when ``Decoder.decode`` would decode it without complaint (every
    length inside the frame). Keys are built as ``FlowTable.update`` builds them: ports
    0/0 for ICMP.
    """
    size = len(frame)
    if size < MIN_FRAME:  # also keeps the two tags read below (bytes 12..21) inside
        return None
    vlan: int | None = None
    inner: int | None = None
    ethertype = _U16(frame, 12)[0]
    off = 14
    if ethertype in VLAN_TPIDS:
        vlan = (_U16(frame, 14)[0] & 0x0FFF) or None  # VID 0 is a priority tag: no VLAN
        ethertype = _U16(frame, 16)[0]
        off = 18
        if ethertype in VLAN_TPIDS:
            inner = _U16(frame, 18)[0] & 0x0FFF  # inner VID is kept as it is, 0 included
            ethertype = _U16(frame, 20)[0]
            off = 22
            if ethertype in VLAN_TPIDS:
                return None  # a third tag: the decoder counts it as malformed
    if ethertype == ETH_IPV4:
        if size < off + 20:
            return None
        ver_ihl, total_len, frag, proto, src, dst = _IPV4(frame, off)
        end = off + total_len
        if ver_ihl != 0x45 or frag & 0x3FFF or end > size:
            return None
        off += 20
    elif ethertype == ETH_IPV6:
        if size < off + 40 or frame[off] >> 4 != 6:
            return None
        payload_len, proto, src, dst = _IPV6(frame, off)
        off += 40
        end = off + payload_len
        if end > size:
            return None
    else:
        return None
    if proto == PROTO_TCP:
        if end - off < 20:
            return None
        sport, dport, data_off, flags = _TCP(frame, off)
        hlen = (data_off >> 4) * 4
        if flags & TCP_CONTROL or hlen < 20 or off + hlen > end:
            return None
        bare_ack = off + hlen == end
    elif proto == PROTO_UDP:
        if end - off < 8:
            return None
        sport, dport, length = _UDP(frame, off)
        if length < 8 or off + length > end:
            return None
        bare_ack = False
    elif proto in (PROTO_ICMP, PROTO_ICMPV6):
        if end - off < 4:
            return None
        sport = dport = 0  # FlowTable: one flow per host pair and protocol
        bare_ack = False
    else:
        return None
    return (vlan, inner, proto, src, sport, dst, dport), src, sport, bare_ack


def fast_lane(table: FlowTable) -> FastLane:
    """A function ``(frame, ts, wirelen) -> handled`` for Ethernet frames of ``table``."""
    untagged = _UNTAGGED.unpack_from
    tagged = _TAGGED.unpack_from
    lookup = table._flows.get
    idle_timeout = table._idle_timeout
    syn_sent = TcpState.SYN_SENT

    def handle(frame: bytes, ts: float, wirelen: int) -> bool:
        size = len(frame)
        if size < ONE_UNPACK:
            ethertype = proto = 0  # short: the general parse, which checks every length
        elif frame[12] == 0x81 and frame[13] == 0x00:
            _, tci, ethertype, ver_ihl, total_len, frag, _, proto, src, dst, sport, dport, seq, _, data_off, flags = tagged(frame)  # noqa: E501
            vlan: int | None = (tci & 0x0FFF) or None
            off = 18
        else:
            ethertype, ver_ihl, total_len, frag, _, proto, src, dst, sport, dport, seq, _, data_off, flags = untagged(frame)  # noqa: E501
            vlan, off = None, 14
        if ethertype == ETH_IPV4 and proto in (PROTO_TCP, PROTO_UDP):
            end = off + total_len
            if ver_ihl != 0x45 or frag & 0x3FFF or end > size:
                return False
            off += 20
            if proto == PROTO_TCP:
                hlen = (data_off >> 4) * 4
                if total_len < 40 or flags & TCP_CONTROL or hlen < 20 or off + hlen > end:
                    return False
                bare_ack = off + hlen == end
            else:
                length = seq >> 16
                if total_len < 28 or length < 8 or off + length > end:
                    return False
                bare_ack = False
            flow = lookup((vlan, None, proto, src, sport, dst, dport))
        else:  # QinQ, IPv6, ICMP: the general (slower) parse
            found = other_key(frame)
            if found is None:
                return False
            key, src, sport, bare_ack = found
            flow = lookup(key)
        if (
            flow is None
            or (flow.app_state is not None and not bare_ack)
            or ts >= table._next_sweep
            or flow.tcp_state == syn_sent
        ):
            return False
        if ts - flow.last_seen > TCP_CLOSED_TIMEOUT and ts - flow.last_seen > idle_timeout(flow):
            return False  # stale: FlowTable ends it before a new flow starts
        if flow.client_port == sport and flow.client_ip == src:
            if not flow.packets_c2s:
                flow.first_c2s = ts
            flow.packets_c2s += 1
            flow.bytes_c2s += wirelen
            flow.last_c2s = ts
        else:
            if not flow.packets_s2c:
                flow.first_s2c = ts
            flow.packets_s2c += 1
            flow.bytes_s2c += wirelen
            flow.last_s2c = ts
        if ts > flow.last_seen:
            flow.last_seen = ts
        return True

    return handle
