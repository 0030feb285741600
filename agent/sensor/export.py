"""What a capture worker hands the sensor process: its state since the last export.

A worker runs one ``Analyzer`` on its share of the traffic (docs/sensor.md, "Workers").
An export carries only what the pipeline already reduced to device fields and counters
(conversations, evidence records, endpoint bindings, live-flow counters); no frame, payload
or parser buffer crosses the process boundary.

*Deltas* for the tables that grow with time (conversations ended and evidence seen since
the previous export: the worker starts fresh tables after each export, so its memory does
not grow with the sensor's uptime), the *whole* endpoint table (bounded by the hosts on
the network; router detection needs every binding at once) and the *current* counters of
flows still open (a snapshot must show a two-hour MLLP link before it ends).
"""

from __future__ import annotations

import operator
import pickle
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from agent.conversations import Conversation, ConversationTable
from agent.endpoints import EndpointTable
from agent.evidence import Evidence
from agent.flows import Flow
from agent.pipeline import Analyzer


@dataclass
class Counters:
    """A worker's running totals since it started (heartbeat and metrics)."""

    packets: int = 0
    bytes: int = 0
    kernel_received: int = 0
    kernel_drops: int = 0
    vlan_restored: int = 0
    malformed: int = 0
    flows_created: int = 0
    flows_live: int = 0
    flows_evicted: int = 0
    parser_errors: int = 0
    ip_fragments: int = 0
    conversations_dropped_flows: int = 0
    evidence_dropped: int = 0
    bindings_dropped: int = 0
    flows_unparsed: int = 0  # new flows given no parsers: the worker was behind its ring

    def add(self, other: Counters) -> Counters:
        return Counters(**{k: v + getattr(other, k) for k, v in vars(self).items()})


@dataclass
class WorkerExport:
    """Pickled through the worker's pipe with its record lists as plain tuples
    (``__getstate__``): a ``slots`` dataclass pickles through a Python-level
    ``__getstate__`` per object, which made a worker stop reading its ring for over a
    second per snapshot at ~35k records (docs/sensor.md, "Kernel drops"); tuples pickle in C.
    The sensor process rebuilds the records (``__setstate__``), off the capture path."""

    worker: int
    seq: int
    final: bool
    counters: Counters
    conversations: list[Conversation] = field(default_factory=list)  # ended since last export
    evidence: list[Evidence] = field(default_factory=list)  # seen since last export
    endpoints: EndpointTable | None = None  # the whole table
    live: list[Conversation] = field(default_factory=list)  # open flows, current counters
    live_flows: list[int] = field(default_factory=list)  # flows in each ``live`` record
    vlans: set[tuple[int | None, int | None]] = field(default_factory=set)
    malformed: dict[str, int] = field(default_factory=dict)
    parser_errors: dict[str, int] = field(default_factory=dict)
    apps: dict[str, int] = field(default_factory=dict)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("conversations", "live"):
            state[name] = list(map(_CONVERSATION_ROW, state[name]))
        state["evidence"] = list(map(_EVIDENCE_ROW, state["evidence"]))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in ("conversations", "live"):
            state[name] = [Conversation(*row) for row in state[name]]
        state["evidence"] = [Evidence(*row) for row in state["evidence"]]
        self.__dict__.update(state)


# One C call per record: attrgetter with several names returns the tuple of their values,
# in the dataclass's field order (what its constructor takes positionally).
_CONVERSATION_ROW = operator.attrgetter(*(f.name for f in fields(Conversation)))
_EVIDENCE_ROW = operator.attrgetter(*(f.name for f in fields(Evidence)))


def dump_export(export: WorkerExport) -> bytes:
    return pickle.dumps(export, protocol=pickle.HIGHEST_PROTOCOL)


def load_export(blob: bytes) -> WorkerExport:
    export = pickle.loads(blob)
    if not isinstance(export, WorkerExport):
        raise TypeError(f"not a worker export: {type(export).__name__}")
    return export


def counters(analyzer: Analyzer, capture: dict[str, int]) -> Counters:
    """Running totals; packets and bytes come from the capture source, because
    ``Analyzer.run`` adds its own only when it returns."""
    det = analyzer.appdetect
    evicted = analyzer.flows.evicted
    return Counters(
        packets=capture.get("frames", 0),
        bytes=capture.get("bytes", 0),
        kernel_received=capture.get("received", 0),
        kernel_drops=capture.get("dropped", 0),
        vlan_restored=capture.get("vlan_restored", 0),
        malformed=sum(analyzer.decoder.malformed.values()),
        flows_created=analyzer.flows.created,
        flows_live=len(analyzer.flows),
        flows_evicted=evicted,
        parser_errors=sum(det.parser_errors.values()) + sum(analyzer.frame_parser_errors.values()),
        ip_fragments=analyzer.decoder.ip_fragments,
        conversations_dropped_flows=analyzer.conversations.dropped_flows,
        evidence_dropped=analyzer.evidence.dropped,
        bindings_dropped=analyzer.endpoints.bindings_dropped,
        flows_unparsed=analyzer.flows_unparsed,
    )


def live_record(flow: Flow) -> Conversation:
    """An open flow as a one-flow conversation with its counters so far. A flow that was
    already exported in an active-timeout slice is no new connection."""
    return Conversation.from_flow(flow, connections=0 if flow.exported else 1)


def live_records(flows: Iterable[Flow]) -> tuple[list[Conversation], list[int]]:
    """Open flows folded per conversation key and MAC pair, with how many flows each record
    holds (the endpoint view counts flows). A client's open DNS queries to one server are
    one record: on the reference mix 44k open flows make ~10k records, which is what a
    snapshot export pickles and the sensor process merges."""
    records: dict[tuple[Any, ...], Conversation] = {}
    counts: dict[tuple[Any, ...], int] = {}
    for f in flows:
        key = (f.vlan, f.inner_vlan, f.proto, f.client_ip, f.server_ip, f.server_port,
               f.client_mac, f.server_mac)
        rec = records.get(key)
        if rec is None:
            records[key] = live_record(f)
            counts[key] = 1
            continue
        counts[key] += 1
        rec.add(f, connections=0 if f.exported else 1)
    return list(records.values()), list(counts.values())


def take_export(
    analyzer: Analyzer, capture: dict[str, int], *, worker: int, seq: int, final: bool
) -> WorkerExport:
    """Export and reset the delta tables. Call between packets (the worker's own thread).
    The endpoint table is the analyzer's own object: send the export through a pipe (which
    pickles it) or copy it before the analyzer runs on."""
    conversations = analyzer.conversations
    dropped = conversations.dropped_flows
    analyzer.conversations = ConversationTable(conversations.max_records)
    analyzer.conversations.dropped_flows = dropped  # a running total, like the others
    store = analyzer.evidence
    # The app detector holds the store's bound ``add_from_flow``, so the store object must
    # stay; only its records move out (EvidenceStore has no public drain).
    evidence = list(store)
    store._records = {}
    det = analyzer.appdetect
    live, live_flows = live_records(analyzer.flows.flows())
    return WorkerExport(
        worker=worker,
        seq=seq,
        final=final,
        counters=counters(analyzer, capture),
        conversations=conversations.records(),
        evidence=evidence,
        endpoints=analyzer.endpoints,  # pickled on send: a copy as of now
        live=live,
        live_flows=live_flows,
        vlans=set(analyzer.vlans),
        malformed=dict(analyzer.decoder.malformed),
        parser_errors=dict(Counter(det.parser_errors) + Counter(analyzer.frame_parser_errors)),
        apps=dict(det.detected),
    )


__all__ = [
    "Counters", "WorkerExport", "counters", "dump_export", "live_record", "live_records",
    "load_export",
    "take_export",
]
