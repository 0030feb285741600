"""Test helper: read a pcap with scapy and feed TCP payloads in order, per flow, to a parser.

Only for tests (the agent has its own reader and reassembly). Handles retransmissions
and out-of-order segments by sequence number; a hole becomes ``parser.gap``; FIN/RST
become ``parser.eof``. A flow's client is the SYN sender, else the first talker.
Packets that are SYN with payload (crafted captures) are fed as data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

from parsers.base import Direction, FlowKey, Observation, StreamParser


@dataclass
class _Dir:
    next_seq: int | None = None
    pending: dict[int, bytes] = field(default_factory=dict)
    done: bool = False


@dataclass
class FedFlow:
    key: FlowKey
    parser: StreamParser
    observations: list[Observation] = field(default_factory=list)
    dirs: dict[Direction, _Dir] = field(default_factory=lambda: {d: _Dir() for d in Direction})


def _endpoints(pkt: object) -> tuple[str, str] | None:
    for layer in (IP, IPv6):
        if pkt.haslayer(layer):  # type: ignore[attr-defined]
            ip = pkt[layer]  # type: ignore[index]
            return str(ip.src), str(ip.dst)
    return None


def _payload(pkt: object, tcp: TCP) -> bytes:
    """TCP payload without Ethernet trailer padding (scapy keeps it in the payload)."""
    data = bytes(tcp.payload)
    if pkt.haslayer(IP):  # type: ignore[attr-defined]
        ip = pkt[IP]  # type: ignore[index]
        size = int(ip.len) - int(ip.ihl) * 4 - int(tcp.dataofs) * 4
        return data[: max(size, 0)]
    if pkt.haslayer(IPv6):  # type: ignore[attr-defined]
        size = int(pkt[IPv6].plen) - int(tcp.dataofs) * 4  # type: ignore[index]
        return data[: max(size, 0)]
    return data


def feed_pcap(
    path: Path | str,
    factory: Callable[[FlowKey], StreamParser],
    only_port: int | None = None,
) -> list[FedFlow]:
    """Every TCP flow in ``path`` (optionally only those touching ``only_port``)."""
    flows: dict[tuple[tuple[str, int], tuple[str, int]], FedFlow] = {}
    for pkt in rdpcap(str(path)):
        if not pkt.haslayer(TCP):
            continue
        ends = _endpoints(pkt)
        if ends is None:
            continue
        tcp = pkt[TCP]
        src, dst = (ends[0], int(tcp.sport)), (ends[1], int(tcp.dport))
        if only_port is not None and only_port not in (src[1], dst[1]):
            continue
        flags = int(tcp.flags)
        syn, ack, fin, rst = flags & 0x02, flags & 0x10, flags & 0x01, flags & 0x04
        flow = flows.get((src, dst)) or flows.get((dst, src))
        if flow is None:
            client, server = (dst, src) if (syn and ack) else (src, dst)
            key = FlowKey(client[0], client[1], server[0], server[1])
            flow = FedFlow(key, factory(key))
            flows[(client, server)] = flow
        direction = (
            Direction.TO_SERVER
            if src == (flow.key.client, flow.key.client_port)
            else Direction.TO_CLIENT
        )
        state = flow.dirs[direction]
        payload = _payload(pkt, tcp)
        seq = int(tcp.seq) + (1 if syn and not payload else 0)
        ts = float(pkt.time)
        if state.next_seq is None:
            state.next_seq = seq
        if payload:
            state.pending.setdefault(seq, payload)
            while True:
                nxt = state.next_seq
                chunk = next(
                    (
                        (s, d)
                        for s, d in state.pending.items()
                        if s <= nxt < s + len(d)  # type: ignore[operator]
                    ),
                    None,
                )
                if chunk is None:
                    break
                s, d = chunk
                del state.pending[s]
                data = d[nxt - s :]  # type: ignore[operator]
                flow.observations += flow.parser.feed(direction, data, ts)
                state.next_seq = nxt + len(data)  # type: ignore[operator]
            state.pending = {s: d for s, d in state.pending.items() if s + len(d) > state.next_seq}
        if (fin or rst) and not state.done:
            state.done = True
            flow.observations += flow.parser.eof(direction)
    for flow in flows.values():
        for direction, state in flow.dirs.items():
            if state.pending and state.next_seq is not None:
                first = min(state.pending)
                flow.parser.gap(direction, first - state.next_seq)
                for s in sorted(state.pending):
                    flow.observations += flow.parser.feed(direction, state.pending[s], 0.0)
            if not state.done:
                flow.observations += flow.parser.eof(direction)
    return list(flows.values())
