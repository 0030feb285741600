"""Workers' exports merged into one sensor state; devices classified once, over all of it.

docs/sensor.md, "Workers". With PACKET_FANOUT each worker sees whole flows, but a device
talks in many flows, so its bindings, evidence and conversations are spread over the
workers. Merging *reports* would give one device per worker that saw it; so the raw tables
are merged instead and ``build_devices`` runs once on the merged tables — the same code
path ``Analyzer.finish`` takes offline, so ``--workers 2`` and ``--workers 1`` give the same
inventory (tests/test_sensor_merge.py compares them on the reference captures).

- conversations: summed per key (VLAN, inner VLAN, transport, client, server, port);
  bounded by ``MAX_CONVERSATIONS`` with a counter, like ``ConversationTable``.
- evidence: summed per (VLAN, host, kind, value): counts add, first/last seen widen, the
  highest confidence and the earliest sighting's source are kept; bounded by ``MAX_EVIDENCE``.
- endpoint bindings: every worker's whole table folded into a fresh table at each snapshot,
  so a MAC that looks like a host to each worker but routes for many IPs in all of them
  together is a router here (``EndpointTable``'s own rule).
- open flows: added to a *view* (never to the running totals) at each snapshot, as if they
  ended now; when they end, the worker's next export moves them into the totals.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from agent.conversations import MAX_CONVERSATIONS, Conversation, ConversationKey
from agent.endpoints import EndpointTable
from agent.evidence import MAX_EVIDENCE, Evidence
from agent.inventory import build_devices, build_groups
from agent.pipeline import Results
from agent.sensor.export import Counters, WorkerExport

EvidenceKey = tuple[int | None, str, str, str]


def conversation_key(c: Conversation) -> ConversationKey:
    return (c.vlan, c.inner_vlan, c.proto, c.client_ip, c.server_ip, c.server_port)


def add_conversation(into: Conversation, c: Conversation) -> None:
    into.add(c, connections=c.connections)


def merge_endpoints(dst: EndpointTable, src: EndpointTable) -> None:
    """Fold ``src``'s bindings into ``dst``. Reaches into EndpointTable's tables: it has no
    public merge, and replaying through ``see()`` would lose which IPs a worker had
    already moved behind a router."""
    dst._arp |= src._arp
    for mac in src.routers:
        dst._mark_router(mac)
    for mac, ips in src._by_mac.items():
        if mac in dst.routers:
            for (vlan, ip), (first, last, flows) in ips.items():
                if (mac, ip) in dst._arp:
                    table = dst._host_bindings(mac)
                    if table is not None:
                        dst._touch(table, (vlan, ip), first, last, int(flows))
                else:
                    dst._touch_router(mac, first, last, int(flows))
                    dst._touch(dst._by_ip, (vlan, ip), first, last, int(flows))
            continue
        table = dst._host_bindings(mac)
        if table is None:
            continue
        for key, (first, last, flows) in ips.items():
            dst._touch(table, key, first, last, int(flows))
        if len(table) > 5 and dst._looks_like_router(mac, table):
            dst._mark_router(mac)
    for ip_key, (first, last, flows) in src._by_ip.items():
        dst._touch(dst._by_ip, ip_key, first, last, int(flows))
    for mac, (first, last, flows) in src._router_traffic.items():
        dst._touch_router(mac, first, last, int(flows))
    for seen_key, (first, last, flows) in src._mac_seen.items():
        dst._touch(dst._mac_seen, seen_key, first, last, int(flows))
    dst.bindings_dropped += src.bindings_dropped


class SensorState:
    """Running totals over all workers (conversations, evidence) and each worker's latest
    endpoint table and counters."""

    def __init__(
        self,
        max_conversations: int = MAX_CONVERSATIONS,
        max_evidence: int = MAX_EVIDENCE,
    ) -> None:
        self.conversations: dict[ConversationKey, Conversation] = {}
        self.evidence: dict[EvidenceKey, Evidence] = {}
        self.endpoints: dict[int, EndpointTable] = {}
        self.live: dict[int, list[Conversation]] = {}  # each worker's latest, replaced
        self.live_flows: dict[int, list[int]] = {}
        self.counters: dict[int, Counters] = {}
        self.vlans: set[tuple[int | None, int | None]] = set()
        self.malformed: dict[int, dict[str, int]] = {}
        self.parser_errors: dict[int, dict[str, int]] = {}
        self.apps: dict[int, dict[str, int]] = {}
        self.max_conversations = max_conversations
        self.max_evidence = max_evidence
        self.conversations_dropped = 0
        self.evidence_dropped = 0
        self.started = time.time()

    def add(self, export: WorkerExport) -> None:
        """Take one worker's export (in any order relative to the others')."""
        w = export.worker
        for c in export.conversations:
            key = conversation_key(c)
            rec = self.conversations.get(key)
            if rec is not None:
                add_conversation(rec, c)
            elif len(self.conversations) < self.max_conversations:
                self.conversations[key] = dataclasses.replace(c)
            else:
                self.conversations_dropped += 1
        for ev in export.evidence:
            ekey = (ev.vlan, ev.host, ev.kind, ev.value)
            old = self.evidence.get(ekey)
            if old is None:
                if len(self.evidence) < self.max_evidence:
                    self.evidence[ekey] = dataclasses.replace(ev)
                else:
                    self.evidence_dropped += 1
                continue
            old.count += ev.count
            if ev.first_seen < old.first_seen:  # the earliest sighting names the source, as
                old.first_seen = ev.first_seen  # in one analyzer (later rounds are later)
                old.source = ev.source
            old.last_seen = max(old.last_seen, ev.last_seen)
            old.confidence = max(old.confidence, ev.confidence)
        if export.endpoints is not None:
            self.endpoints[w] = export.endpoints
        self.live[w] = export.live
        self.live_flows[w] = export.live_flows
        self.counters[w] = export.counters
        self.vlans |= export.vlans
        self.malformed[w] = export.malformed
        self.parser_errors[w] = export.parser_errors
        self.apps[w] = export.apps

    def totals(self) -> Counters:
        total = Counters()
        for c in self.counters.values():
            total = total.add(c)
        return total

    # -- the view ---------------------------------------------------------------------
    def conversation_view(self) -> list[Conversation]:
        """Totals plus the open flows' counters so far (the totals are not changed)."""
        view = dict(self.conversations)
        for records in self.live.values():
            for c in records:
                key = conversation_key(c)
                rec = view.get(key)
                if rec is None:
                    view[key] = dataclasses.replace(c)
                    continue
                if rec is self.conversations.get(key):
                    rec = view[key] = dataclasses.replace(rec)
                add_conversation(rec, c)
        return list(view.values())

    def endpoint_view(self) -> EndpointTable:
        table = EndpointTable()
        for w in sorted(self.endpoints):
            merge_endpoints(table, self.endpoints[w])
        for w, records in self.live.items():
            counts = self.live_flows.get(w) or [1] * len(records)
            for c, n in zip(records, counts, strict=True):
                table.see(c.client_mac, c.vlan, c.client_ip, c.first_seen, c.last_seen, n)
                table.see(c.server_mac, c.vlan, c.server_ip, c.first_seen, c.last_seen, n)
        return table

    def results(self) -> Results:
        """Devices, groups and conversations as ``Analyzer.finish`` would give them now."""
        conversations = self.conversation_view()
        hearsay: list[Evidence] = []
        devices = build_devices(
            self.endpoint_view().build(), list(self.evidence.values()), conversations, hearsay
        )
        return Results(devices, build_groups(devices), conversations, self.stats(), hearsay)

    def stats(self) -> dict[str, Any]:
        t = self.totals()
        return {
            "packets": t.packets,
            "bytes": t.bytes,
            "flows": t.flows_created,
            "flows_live": t.flows_live,
            "flows_evicted": t.flows_evicted,
            "flows_unparsed": t.flows_unparsed,
            "conversations": len(self.conversations),
            "conversations_dropped_flows": t.conversations_dropped_flows
            + self.conversations_dropped,
            "vlans": sorted({outer for outer, _ in self.vlans if outer is not None}),
            "inner_vlans": sorted({inner for _, inner in self.vlans if inner is not None}),
            "malformed": _sum_dicts(self.malformed.values()),
            "ip_fragments": t.ip_fragments,
            "apps": _sum_dicts(self.apps.values()),
            "parser_errors": _sum_dicts(self.parser_errors.values()),
            "evidence_records": len(self.evidence),
            "evidence_dropped": t.evidence_dropped + self.evidence_dropped,
            "endpoint_bindings_dropped": t.bindings_dropped,
            "capture": {
                "received": t.kernel_received,
                "dropped": t.kernel_drops,
                "frames": t.packets,
                "vlan_restored": t.vlan_restored,
                "workers": len(self.counters),
            },
            "uptime_seconds": round(time.time() - self.started, 1),
        }


def _sum_dicts(dicts: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


__all__ = ["SensorState", "conversation_key", "merge_endpoints"]
