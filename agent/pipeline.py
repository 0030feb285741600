"""The sensor pipeline: raw frames -> decode -> flow table -> app detection -> evidence.

One direction, no back and forth (docs/architecture.md). ``Analyzer.run`` is
the per-packet hot loop, shared by offline analysis and the live sensor: it
keeps its counters in locals and calls into app detection only for flows that
still have detection or parsing work (one attribute check otherwise).
Endpoint and conversation records are updated once per *flow end*, not per
packet.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.appdetect import AppDetector
from agent.capture import RawFrame, linktypes
from agent.conversations import ConversationTable
from agent.decode import TCP_ACK, TCP_SYN, Decoder, PacketMeta
from agent.endpoints import EndpointTable, ip_text, mac_text
from agent.evidence import Evidence, EvidenceStore
from agent.fastcore import attach_lane, fast_lane
from agent.flows import MAX_FLOWS, Flow, FlowTable
from agent.inventory import Device, build_devices, build_groups
from parsers.base import L2Frame, TcpSyn
from parsers.registry import LLC, FrameSpec, Registry, default_registry

log = logging.getLogger(__name__)

TICK_EVERY = 8192  # packets between progress callbacks
# A capture keeps millions of long-lived objects (flows, endpoints, evidence) and makes
# few reference cycles; CPython's default young-generation threshold (700 allocations)
# made the collector walk them ~1.8 s of a 20 s run of the 1M-packet reference capture.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Process-wide, for a process that runs one capture pipeline (``medtap analyze``, a
    sensor worker): what exists at start-up (modules, tables) is frozen out of collection,
    and collections run less often. Cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
ARP_REPLY, ARP_REQUEST = 2, 1


@dataclass
class Results:
    devices: list[Device]
    groups: list[dict[str, Any]]
    conversations: list[Any]
    stats: dict[str, Any] = field(default_factory=dict)
    hearsay: list[Evidence] = field(default_factory=list)  # names for addresses never seen


class Analyzer:
    def __init__(
        self,
        registry: Registry | None = None,
        *,
        max_flows: int = MAX_FLOWS,
        core_only: bool = False,
        use_fast_lane: bool = True,
    ) -> None:
        if core_only:
            registry = Registry()
        elif registry is None:
            registry = default_registry()
        self.use_fast_lane = use_fast_lane
        self.decoder = Decoder()
        self.endpoints = EndpointTable()
        self.conversations = ConversationTable()
        self.evidence = EvidenceStore()
        self.registry = registry
        self.appdetect = AppDetector(registry, self.evidence.add_from_flow)
        self.flows = FlowTable(self._flow_ended, max_flows=max_flows, on_new=self._flow_started)
        self.frame_parser_errors: Counter[str] = Counter()
        self.packets = 0
        self.bytes = 0
        self.non_first_fragments = 0
        # Load shedding (agent/sensor/workers.py): while a live worker is behind its ring,
        # only this share of new flows gets app detection; the others are counted, and
        # their packets take the fast lane, so frames are not dropped.
        self.parse_share = 1.0
        self._share_credit = 0.0  # spreads the parsed flows evenly: every 1/share-th one
        self.flows_unparsed = 0
        self.vlans: set[tuple[int | None, int | None]] = set()  # (outer, inner); at most 2^24
        self.started = time.monotonic()

    def run(
        self,
        frames: Iterable[RawFrame],
        tick: Callable[[], None] | None = None,
        tick_every: int = TICK_EVERY,
    ) -> int:
        """Process frames until the source ends; returns the number of frames read.
        ``tick`` is called every ``tick_every`` frames."""
        decode = self.decoder.decode
        update = self.flows.update
        on_packet = self.appdetect.on_packet
        fast = fast_lane(self.flows) if self.use_fast_lane else None
        # A C reader (pcap file or capture ring) runs the lane and the ticks itself: only
        # the other frames come here.
        reader = attach_lane(frames, fast, tick, tick_every)
        if reader is not None:
            fast = tick = None
        ethernet = linktypes.ETHERNET
        packets = nbytes = 0
        try:
            for ts, linktype, data, wirelen in frames:
                packets += 1
                nbytes += wirelen
                if tick is not None and not packets % tick_every:
                    tick()
                if fast is not None and linktype == ethernet and fast(data, ts, wirelen):
                    continue
                meta = decode(linktype, data, ts, wirelen)
                if meta is None:
                    continue
                if meta.ip_version:
                    if meta.fragment and meta.payload_offset == meta.payload_end:
                        self.non_first_fragments += 1  # no transport header to key on
                        continue
                    flow, to_server = update(meta)
                    if flow.app_state is not None:
                        on_packet(flow, to_server, meta)
                else:
                    self._layer2(meta)
        finally:
            if reader is not None:
                lane_packets, lane_bytes = reader.detach()
                packets += lane_packets
                nbytes += lane_bytes
            self.packets += packets
            self.bytes += nbytes
        return packets

    def stop_parsing(self) -> int:
        """Load shedding, second step: every flow still in detection or parsing loses its
        parser, so its packets take the fast lane from now on. What a parser already
        reported stays. Returns how many flows it cut (counted in ``flows_unparsed``)."""
        cut = 0
        for flow in self.flows.flows():
            if flow.app_state is not None:
                self.appdetect.stop(flow)
                cut += 1
        self.flows_unparsed += cut
        return cut

    def _layer2(self, meta: PacketMeta) -> None:
        self.vlans.add((meta.vlan, meta.inner_vlan))
        if meta.arp is not None:
            op, sha, spa, _, _ = meta.arp
            if op in (ARP_REQUEST, ARP_REPLY):
                self.endpoints.see_arp(sha, meta.vlan, spa, meta.ts)
            return
        if meta.src_mac is None:
            return
        self.endpoints.see_mac(meta.src_mac, meta.vlan, meta.ts)
        specs = self.registry.frame_specs.get(LLC if meta.ethertype < 0x0600 else meta.ethertype)
        if specs:
            self._parse_frame(meta, specs)

    def _parse_frame(self, meta: PacketMeta, specs: list[FrameSpec]) -> None:
        assert meta.src_mac is not None
        frame = L2Frame(
            src_mac=mac_text(meta.src_mac),
            dst_mac=mac_text(meta.dst_mac) if meta.dst_mac is not None else None,
            vlan=meta.vlan,
            ethertype=meta.ethertype,
            payload=meta.payload,
            ts=meta.ts,
        )
        for spec in specs:
            try:
                observations = spec.parse(frame)
            except Exception as exc:  # a parser bug must not stop the sensor
                self.frame_parser_errors[spec.name] += 1
                log.warning("frame parser %s failed: %s", spec.name, type(exc).__name__)
                continue
            if observations:
                self.evidence.add(meta.vlan, f"{spec.name} from {frame.src_mac}", observations)

    def _flow_started(self, flow: Flow, meta: PacketMeta) -> None:
        if self.parse_share < 1.0:  # shedding load: counted, no parser, no SYN observer
            self._share_credit += self.parse_share
            if self._share_credit < 1.0:
                self.flows_unparsed += 1
                return
            self._share_credit -= 1.0
        self.appdetect.on_new_flow(flow, meta)
        syn_specs = self.registry.syn_specs
        if syn_specs and meta.tcp_flags & TCP_SYN and not meta.tcp_flags & TCP_ACK:
            syn = TcpSyn(
                client=ip_text(meta.src_ip),
                server_port=meta.dport,
                ip_version=meta.ip_version,
                ttl=meta.ttl,
                window=meta.window,
                options=meta.frame[meta.l4_offset + 20 : meta.payload_offset],
                ts=meta.ts,
            )
            for spec in syn_specs:
                try:
                    observations = spec.observe(syn)
                except Exception as exc:  # a parser bug must not stop the sensor
                    self.frame_parser_errors[spec.name] += 1
                    log.warning("SYN observer %s failed: %s", spec.name, type(exc).__name__)
                    continue
                if observations:
                    self.evidence.add_from_flow(flow, spec.name, observations)

    def _flow_ended(self, flow: Flow, reason: str) -> None:
        self.appdetect.on_end(flow, reason)
        self.vlans.add((flow.vlan, flow.inner_vlan))
        self.conversations.add(flow, new_connection=not flow.exported)
        if reason == "active":
            flow.exported = True
        see = self.endpoints.see
        see(flow.client_mac, flow.vlan, flow.client_ip, flow.first_seen, flow.last_seen)
        see(flow.server_mac, flow.vlan, flow.server_ip, flow.first_seen, flow.last_seen)

    def finish(self) -> Results:
        """End every live flow and build the inventory. Call once, after the last run()."""
        self.flows.close_all()
        conversations = self.conversations.records()
        hearsay: list[Evidence] = []
        devices = build_devices(
            self.endpoints.build(), list(self.evidence), conversations, hearsay
        )
        groups = build_groups(devices)
        return Results(devices, groups, conversations, self.stats(), hearsay)

    def stats(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        det = self.appdetect
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "flows": self.flows.created,
            "flows_live": len(self.flows),
            "flows_peak": self.flows.peak,
            "flows_evicted": self.flows.evicted,
            "flows_timed_out": self.flows.timed_out,
            "conversations": len(self.conversations),
            "conversations_dropped_flows": self.conversations.dropped_flows,
            "vlans": sorted({outer for outer, _ in self.vlans if outer is not None}),
            "inner_vlans": sorted({inner for _, inner in self.vlans if inner is not None}),
            "malformed": dict(sorted(self.decoder.malformed.items())),
            "ip_fragments": self.decoder.ip_fragments,
            "non_first_fragments": self.non_first_fragments,
            "non_ip_ethertypes": _ethertype_counts(self.decoder.non_ip),
            "apps": dict(det.detected),
            "parser_errors": dict(det.parser_errors + self.frame_parser_errors),
            "parser_rejects": dict(det.parser_rejects),
            "parsers_finished": dict(det.parsers_finished),
            "reassembly": det.reassembly.as_dict(),
            "evidence_records": len(self.evidence),
            "evidence_dropped": self.evidence.dropped,
            "endpoint_bindings_dropped": self.endpoints.bindings_dropped,
            "elapsed_seconds": round(elapsed, 3),
            "packets_per_second": round(self.packets / elapsed) if elapsed > 0 else None,
        }


def _ethertype_counts(counts: Counter[int]) -> dict[str, int]:
    """Non-IP frames by EtherType; values below 0x0600 are 802.3 lengths (LLC: STP, CDP...)."""
    out: dict[str, int] = {}
    for ethertype, n in sorted(counts.items()):
        key = "802.3-llc" if ethertype < 0x0600 else f"0x{ethertype:04x}"
        out[key] = out.get(key, 0) + n
    return out
