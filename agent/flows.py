"""Bidirectional flow table: the second half of the per-packet hot path.

A flow is keyed by outer VLAN + inner VLAN + transport + both endpoints, so the
same 4-tuple in two VLANs is two flows. Each flow sits in the dict under both
directions' keys, so one lookup finds it whichever way a packet travels.

The client is the SYN sender; for a flow first seen mid-stream (or UDP) it is
the first sender, unless the first packet comes *from* a well-known port *to*
an ephemeral one, in which case it was the server's answer.

Bounded: idle timeouts end quiet flows, an active timeout exports long ones in
slices (NetFlow-style), and a hard cap evicts the least recently seen flows,
counting every eviction. Ended flows go to ``on_end`` and are forgotten here.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from typing import Any

from agent.decode import PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, PacketMeta

log = logging.getLogger(__name__)

MAX_FLOWS = 262_144  # live flows; beyond this the least recently seen are evicted
EVICT_FRACTION = 0.1  # evict this share of MAX_FLOWS at once so eviction stays amortised
TCP_IDLE_TIMEOUT = 300.0  # seconds without a packet before an open TCP flow ends
TCP_CLOSED_TIMEOUT = 15.0  # after FIN in both directions or RST
UDP_IDLE_TIMEOUT = 120.0
OTHER_IDLE_TIMEOUT = 60.0
ACTIVE_TIMEOUT = 1800.0  # a flow open longer than this is exported in slices
SWEEP_INTERVAL = 5.0  # capture seconds between idle sweeps

# Ports below this, and the well-known medical/clinical ones above it, are servers' ports.
WELL_KNOWN_LIMIT = 1024
WELL_KNOWN_HIGH = frozenset(
    {1433, 1521, 2575, 2762, 3306, 3389, 4242, 5432, 6661, 8080, 8443, 11112, 11113}
)


def is_service_port(port: int) -> bool:
    return port < WELL_KNOWN_LIMIT or port in WELL_KNOWN_HIGH


class TcpState:
    NEW = "new"
    SYN_SENT = "syn_sent"
    ESTABLISHED = "established"
    CLOSING = "closing"  # FIN seen in one direction
    CLOSED = "closed"  # FIN both ways
    RESET = "reset"
    MIDSTREAM = "midstream"  # first seen without a handshake


ENDED_STATES = (TcpState.CLOSED, TcpState.RESET)


class Flow:
    """One bidirectional conversation; ``c2s`` counters are client -> server."""

    __slots__ = (
        "key",
        "rkey",
        "proto",
        "vlan",
        "inner_vlan",
        "ip_version",
        "client_ip",
        "client_port",
        "server_ip",
        "server_port",
        "client_mac",
        "server_mac",
        "packets_c2s",
        "packets_s2c",
        "bytes_c2s",
        "bytes_s2c",
        "first_c2s",
        "last_c2s",
        "first_s2c",
        "last_s2c",
        "first_seen",
        "last_seen",
        "slice_start",
        "tcp_state",
        "fin_c2s",
        "fin_s2c",
        "saw_syn",
        "app",
        "app_state",
        "exported",
    )

    def __init__(self) -> None:
        self.key: tuple[Any, ...] = ()
        self.rkey: tuple[Any, ...] = ()
        self.proto = 0
        self.vlan: int | None = None
        self.inner_vlan: int | None = None
        self.ip_version = 0
        self.client_ip = b""
        self.client_port = 0
        self.server_ip = b""
        self.server_port = 0
        self.client_mac: bytes | None = None
        self.server_mac: bytes | None = None
        self.packets_c2s = 0
        self.packets_s2c = 0
        self.bytes_c2s = 0
        self.bytes_s2c = 0
        self.first_c2s: float | None = None
        self.last_c2s: float | None = None
        self.first_s2c: float | None = None
        self.last_s2c: float | None = None
        self.first_seen = 0.0
        self.last_seen = 0.0
        self.slice_start = 0.0
        self.tcp_state = TcpState.NEW
        self.fin_c2s = False
        self.fin_s2c = False
        self.saw_syn = False
        self.app: str | None = None  # parser name once app detection matched
        self.app_state: Any = None  # owned by app detection (agent.appdetect)
        self.exported = False  # an active-timeout slice of it was reported already

    @property
    def packets(self) -> int:
        return self.packets_c2s + self.packets_s2c

    @property
    def bytes(self) -> int:
        return self.bytes_c2s + self.bytes_s2c


EndReason = str  # "idle", "closed", "active", "evicted", "end_of_capture"
OnEnd = Callable[[Flow, EndReason], None]


def _last_seen(flow: Flow) -> float:
    return flow.last_seen


class FlowTable:
    """Finds or creates the flow of each packet and keeps the table bounded."""

    def __init__(
        self,
        on_end: OnEnd,
        *,
        max_flows: int = MAX_FLOWS,
        active_timeout: float = ACTIVE_TIMEOUT,
        on_new: Callable[[Flow, PacketMeta], None] | None = None,
    ) -> None:
        self._flows: dict[tuple[Any, ...], Flow] = {}
        self._on_end = on_end
        self._on_new = on_new
        self.max_flows = max_flows
        self.active_timeout = active_timeout
        self.live = 0
        self.created = 0
        self.evicted = 0
        self.timed_out = 0
        self.peak = 0
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return self.live

    def flows(self) -> list[Flow]:
        """Live flows, each once."""
        return [f for k, f in self._flows.items() if k is f.key]

    def update(self, meta: PacketMeta) -> tuple[Flow, bool]:
        """Account one IP packet; returns its flow and whether it went client -> server."""
        proto = meta.proto
        if proto in (PROTO_TCP, PROTO_UDP):
            sport, dport = meta.sport, meta.dport
        else:
            sport = dport = 0  # ICMP and others: one flow per host pair and protocol
        src, dst, ts = meta.src_ip, meta.dst_ip, meta.ts
        key = (meta.vlan, meta.inner_vlan, proto, src, sport, dst, dport)
        flow = self._flows.get(key)
        if flow is not None and (
            ts - flow.last_seen > TCP_CLOSED_TIMEOUT
            or meta.tcp_flags & TCP_SYN
            and flow.tcp_state in ENDED_STATES
        ):
            flow = self._end_if_stale(flow, ts, meta.tcp_flags)
        if flow is None:
            flow = self._create(meta, key, sport, dport)
        to_server = flow.client_port == sport and flow.client_ip == src
        if to_server:
            if not flow.packets_c2s:
                flow.first_c2s = ts
            flow.packets_c2s += 1
            flow.bytes_c2s += meta.wirelen
            flow.last_c2s = ts
        else:
            if not flow.packets_s2c:
                flow.first_s2c = ts
            flow.packets_s2c += 1
            flow.bytes_s2c += meta.wirelen
            flow.last_s2c = ts
        if ts > flow.last_seen:
            flow.last_seen = ts
        if proto == PROTO_TCP:
            flags = meta.tcp_flags
            if flags & (TCP_SYN | TCP_FIN | TCP_RST):
                self._tcp_flags(flow, flags, to_server)
            elif flow.tcp_state == TcpState.SYN_SENT and flags & TCP_ACK:
                flow.tcp_state = TcpState.ESTABLISHED
        if ts >= self._next_sweep:
            self._sweep(ts)
        return flow, to_server

    def _end_if_stale(self, flow: Flow, ts: float, flags: int) -> Flow | None:
        """End a flow a new packet must not join: idle past its timeout (the sweep has not
        run yet), or a fresh SYN on a closed connection (port reuse). None if it ended."""
        if ts - flow.last_seen > self._idle_timeout(flow):
            self._remove(flow, "closed" if flow.tcp_state in ENDED_STATES else "idle")
            self.timed_out += 1
            return None
        if flags & TCP_SYN and not flags & TCP_ACK and flow.tcp_state in ENDED_STATES:
            self._remove(flow, "closed")
            return None
        return flow

    def _create(self, meta: PacketMeta, key: tuple[Any, ...], sport: int, dport: int) -> Flow:
        if self.live >= self.max_flows:
            self._evict_oldest()
        flow = Flow()
        proto, flags = meta.proto, meta.tcp_flags
        src_is_client = True
        if proto == PROTO_TCP and flags & TCP_SYN:
            src_is_client = not flags & TCP_ACK  # a SYN-ACK comes from the server
        elif is_service_port(sport) and not is_service_port(dport):
            src_is_client = False
        if src_is_client:
            flow.key = key
            flow.client_ip, flow.client_port, flow.client_mac = meta.src_ip, sport, meta.src_mac
            flow.server_ip, flow.server_port, flow.server_mac = meta.dst_ip, dport, meta.dst_mac
            flow.rkey = (meta.vlan, meta.inner_vlan, proto, meta.dst_ip, dport, meta.src_ip, sport)
        else:
            flow.rkey = key
            flow.client_ip, flow.client_port, flow.client_mac = meta.dst_ip, dport, meta.dst_mac
            flow.server_ip, flow.server_port, flow.server_mac = meta.src_ip, sport, meta.src_mac
            flow.key = (meta.vlan, meta.inner_vlan, proto, meta.dst_ip, dport, meta.src_ip, sport)
        flow.proto, flow.vlan, flow.inner_vlan = proto, meta.vlan, meta.inner_vlan
        flow.ip_version = meta.ip_version
        flow.first_seen = flow.last_seen = flow.slice_start = meta.ts
        if proto == PROTO_TCP:
            if flags & TCP_SYN:
                flow.saw_syn = True
            else:
                flow.tcp_state = TcpState.MIDSTREAM
        self._flows[flow.key] = flow
        self._flows[flow.rkey] = flow
        self.live += 1
        self.created += 1
        if self.live > self.peak:
            self.peak = self.live
        if self._on_new is not None:
            self._on_new(flow, meta)
        return flow

    def _tcp_flags(self, flow: Flow, flags: int, to_server: bool) -> None:
        if flags & TCP_RST:
            flow.tcp_state = TcpState.RESET
            return
        if flags & TCP_SYN:
            flow.saw_syn = True
            if flow.tcp_state in (TcpState.NEW, TcpState.MIDSTREAM):
                flow.tcp_state = TcpState.SYN_SENT
            if flags & TCP_ACK and flow.tcp_state == TcpState.SYN_SENT:
                flow.tcp_state = TcpState.ESTABLISHED
        if flags & TCP_FIN:
            if to_server:
                flow.fin_c2s = True
            else:
                flow.fin_s2c = True
            both = flow.fin_c2s and flow.fin_s2c
            flow.tcp_state = TcpState.CLOSED if both else TcpState.CLOSING

    def _idle_timeout(self, flow: Flow) -> float:
        if flow.proto == PROTO_TCP:
            if flow.tcp_state in ENDED_STATES:
                return TCP_CLOSED_TIMEOUT
            return TCP_IDLE_TIMEOUT
        return UDP_IDLE_TIMEOUT if flow.proto == PROTO_UDP else OTHER_IDLE_TIMEOUT

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_INTERVAL
        for flow in self.flows():
            if now - flow.last_seen > self._idle_timeout(flow):
                reason = "closed" if flow.tcp_state in ENDED_STATES else "idle"
                self._remove(flow, reason)
                self.timed_out += 1
            elif self.active_timeout and now - flow.slice_start > self.active_timeout:
                self._on_end(flow, "active")  # export a slice; the flow lives on
                flow.slice_start = flow.first_seen = now
                flow.packets_c2s = flow.packets_s2c = flow.bytes_c2s = flow.bytes_s2c = 0
                flow.first_c2s = flow.last_c2s = flow.first_s2c = flow.last_s2c = None

    def _evict_oldest(self) -> None:
        count = max(1, int(self.max_flows * EVICT_FRACTION))
        for flow in heapq.nsmallest(count, self.flows(), key=_last_seen):
            self._remove(flow, "evicted")
            self.evicted += 1
        log.debug("flow table full at %d flows: evicted %d", self.max_flows, self.evicted)

    def _remove(self, flow: Flow, reason: EndReason) -> None:
        del self._flows[flow.key]
        if flow.rkey != flow.key:
            del self._flows[flow.rkey]
        self.live -= 1
        self._on_end(flow, reason)

    def close_all(self) -> None:
        """End of capture: every live flow ends."""
        for flow in self.flows():
            self._remove(flow, "end_of_capture")
