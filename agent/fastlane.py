"""The fast lane: one packet of an established, uninteresting flow in one function call.

Most mirror-port packets are mid-connection segments of flows that no parser
wants (HTTPS, SMB, database traffic) or that a parser gave up on. For those,
all the sensor does is count: find the flow, add packets and bytes, move
last-seen. The layered path (``Decoder.decode`` building a ``PacketMeta``,
then ``FlowTable.update``) spends most of its time on objects and calls it
does not need for that. This function decodes Ethernet / one 802.1Q tag /
IPv4 without options or fragments / TCP or UDP with one ``unpack_from``
call, looks the flow up, and updates it in place: measured in
docs/performance.md.

It handles a packet only when the layered path would do exactly the same
and nothing else; otherwise it returns False and the caller takes the layered
path, which stays the single source of truth for everything with state:
a new flow, SYN/FIN/RST, a flow still in detection or parsing, a stale flow
that must end first, a due idle sweep, and every frame that is not the common
case. ``tests/test_fastlane.py`` checks that reports are identical with and
without it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from agent.decode import ETH_IPV4, PROTO_TCP, PROTO_UDP
from agent.flows import TCP_CLOSED_TIMEOUT, FlowTable, TcpState

TCP_CONTROL = 0x07  # FIN, SYN, RST: state changes belong to FlowTable

FastLane = Callable[[bytes, float, int], bool]


# Ethernet + IPv4 (no options) + the first 16 bytes of TCP in one unpack; UDP shares the
# port positions, and its length field sits where TCP's sequence number starts.
_UNTAGGED = struct.Struct("!12xH BxHxxHBB2x4s4s HHIIBB")
_TAGGED = struct.Struct("!12xHHH BxHxxHBB2x4s4s HHIIBB")


def fast_lane(table: FlowTable) -> FastLane:
    """A function ``(frame, ts, wirelen) -> handled`` for Ethernet frames of ``table``."""
    untagged = _UNTAGGED.unpack_from
    tagged = _TAGGED.unpack_from
    lookup = table._flows.get
    syn_sent = TcpState.SYN_SENT

    def handle(frame: bytes, ts: float, wirelen: int) -> bool:
        size = len(frame)
        if frame[12] == 0x81 and frame[13] == 0x00:
            if size < 58:
                return False
            _, tci, ethertype, ver_ihl, total_len, frag, _, proto, src, dst, sport, dport, seq, _, data_off, flags = tagged(frame)  # noqa: E501
            vlan: int | None = (tci & 0x0FFF) or None
            off = 18
        else:
            if size < 54:
                return False
            ethertype, ver_ihl, total_len, frag, _, proto, src, dst, sport, dport, seq, _, data_off, flags = untagged(frame)  # noqa: E501
            vlan, off = None, 14
        end = off + total_len
        if ethertype != ETH_IPV4 or ver_ihl != 0x45 or frag & 0x3FFF or end > size:
            return False
        off += 20
        if proto == PROTO_TCP:
            hlen = (data_off >> 4) * 4
            if total_len < 40 or flags & TCP_CONTROL or hlen < 20 or off + hlen > end:
                return False
        elif proto == PROTO_UDP:
            length = seq >> 16
            if total_len < 28 or length < 8 or off + length > end:
                return False
        else:
            return False
        flow = lookup((vlan, None, proto, src, sport, dst, dport))
        if (
            flow is None
            or flow.app_state is not None
            or ts - flow.last_seen > TCP_CLOSED_TIMEOUT
            or ts >= table._next_sweep
            or flow.tcp_state == syn_sent
        ):
            return False
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
