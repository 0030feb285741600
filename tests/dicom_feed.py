"""A simple in-order TCP feeder for tests: pcap -> per-flow DicomParser observations.

Test code only (the agent has its own flow table and reassembly). Reads the capture with
scapy's ``rdpcap``, orients each flow by its SYN (else by its first packet), drops
retransmitted bytes by sequence number, and feeds payloads in capture order. Every flow
also goes through the DICOM probe, as app detection would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scapy.all import rdpcap
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from parsers.base import Direction, FlowKey, Observation
from parsers.dicom import DicomParser, probe
from parsers.registry import Probe


@dataclass
class FedFlow:
    key: FlowKey
    parser: DicomParser
    observations: list[Observation] = field(default_factory=list)
    probe: Probe = Probe.NEED_MORE
    first_segment_sizes: list[int] = field(default_factory=list)


def feed_pcap(path: Path) -> list[FedFlow]:
    flows: dict[tuple[str, int, str, int], FedFlow] = {}
    next_seq: dict[tuple[str, int, str, int], int] = {}
    probe_buf: dict[tuple[str, int, str, int], bytes] = {}
    for pkt in rdpcap(str(path)):
        ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
        tcp = pkt.getlayer(TCP)
        if ip is None or tcp is None:
            continue
        src, dst = str(ip.src), str(ip.dst)
        fwd = (src, int(tcp.sport), dst, int(tcp.dport))
        rev = (dst, int(tcp.dport), src, int(tcp.sport))
        flags = int(tcp.flags)
        if fwd not in flows and rev not in flows:
            if flags & 0x02 and flags & 0x10:  # SYN-ACK first: the sender is the server
                fwd, rev = rev, fwd
            key = FlowKey(fwd[0], fwd[1], fwd[2], fwd[3])
            flows[fwd] = FedFlow(key, DicomParser(key))
        this = fwd if fwd in flows else rev
        flow = flows[this]
        outbound = (src, int(tcp.sport)) == this[:2]
        direction = Direction.TO_SERVER if outbound else Direction.TO_CLIENT
        payload = bytes(tcp.payload)
        seq = int(tcp.seq) + (1 if flags & 0x02 else 0)
        dkey = (src, int(tcp.sport), dst, int(tcp.dport))
        if flags & 0x02:
            next_seq[dkey] = seq
        if not payload:
            continue
        expected = next_seq.get(dkey, seq)
        if seq < expected:  # retransmission: only bytes not fed yet
            payload = payload[expected - seq :]
        if not payload:
            continue
        next_seq[dkey] = max(expected, seq) + len(payload)
        if direction is Direction.TO_SERVER and flow.probe is Probe.NEED_MORE:
            flow.first_segment_sizes.append(len(payload))
            probe_buf[this] = probe_buf.get(this, b"") + payload
            flow.probe = probe(direction, probe_buf[this])
        flow.observations += flow.parser.feed(direction, payload, float(pkt.time))
    for flow in flows.values():
        for direction in Direction:
            flow.observations += flow.parser.eof(direction)
    return list(flows.values())
