"""The fast lane: one packet of an established, uninteresting flow in one function call.

Most mirror-port packets are mid-connection segments of flows that no parser
wants (HTTPS, SMB, database traffic) or that a parser gave up on. For those,
all the sensor does is count: find the flow, add packets and bytes, move
last-seen. The layered path (``Decoder.decode`` building a ``PacketMeta``,
then ``FlowTable.update``) spends most of its time on objects and calls it
does not need for that. This function decodes Ethernet / one 802.1Q tag /
IPv4 without options or fragments / TCP or UDP with four ``unpack_from``
calls, looks the flow up, and updates it in place: measured in
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

from collections.abc import Callable

from agent.decode import _ETH_VLAN, _IPV4, _TCP, _UDP, ETH_8021Q, ETH_IPV4, PROTO_TCP, PROTO_UDP
from agent.flows import TCP_CLOSED_TIMEOUT, FlowTable, TcpState

TCP_CONTROL = 0x07  # FIN, SYN, RST: state changes belong to FlowTable

FastLane = Callable[[bytes, float, int], bool]


def fast_lane(table: FlowTable) -> FastLane:
    """A function ``(frame, ts, wirelen) -> handled`` for Ethernet frames of ``table``."""
    eth = _ETH_VLAN.unpack_from
    ipv4 = _IPV4.unpack_from
    tcp = _TCP.unpack_from
    udp = _UDP.unpack_from
    lookup = table._flows.get
    syn_sent = TcpState.SYN_SENT

    def handle(frame: bytes, ts: float, wirelen: int) -> bool:
        size = len(frame)
        if size < 42:
            return False
        _, _, ethertype, tci, inner = eth(frame)
        if ethertype == ETH_8021Q:
            vlan: int | None = (tci & 0x0FFF) or None
            ethertype, off = inner, 18
        else:
            vlan, off = None, 14
        if ethertype != ETH_IPV4:
            return False
        ver_ihl, total_len, frag, _, proto, src, dst = ipv4(frame, off)
        end = off + total_len
        if ver_ihl != 0x45 or frag & 0x3FFF or end > size:
            return False
        off += 20
        if proto == PROTO_TCP:
            if total_len < 40:
                return False
            sport, dport, _, _, data_off, flags, _ = tcp(frame, off)
            hlen = (data_off >> 4) * 4
            if flags & TCP_CONTROL or hlen < 20 or off + hlen > end:
                return False
        elif proto == PROTO_UDP:
            if total_len < 28:
                return False
            sport, dport, length = udp(frame, off)
            if length < 8 or off + length > end:
                return False
            flags = 0
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
