"""Evidence store: parser observations folded per endpoint, deduplicated, bounded.

A gateway sends the same MSH fields thousands of times; the store keeps one
record per (VLAN, host, kind, value) with a count and first/last seen, and the
flow that first showed it as its source. Observations hold only allow-listed
device fields (the parsers' contract), so nothing here can carry patient data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.endpoints import ip_text
from agent.flows import Flow
from parsers.base import Observation

MAX_EVIDENCE = 200_000  # distinct facts held; beyond this new facts are counted, not kept


@dataclass(slots=True)
class Evidence:
    vlan: int | None
    host: str
    kind: str
    value: str
    source: str  # parser and flow that first showed it
    first_seen: float
    last_seen: float
    count: int
    confidence: float
    port: int | None


class EvidenceStore:
    def __init__(self, max_records: int = MAX_EVIDENCE) -> None:
        self._records: dict[tuple[int | None, str, str, str], Evidence] = {}
        self.max_records = max_records
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._records.values())

    def add_from_flow(self, flow: Flow, parser: str, observations: list[Observation]) -> None:
        self.add(flow.vlan, lambda: f"{parser} {flow_label(flow)}", observations)

    def add(
        self, vlan: int | None, source: str | Callable[[], str], observations: list[Observation]
    ) -> None:
        """``source`` names the parser and where it looked (a flow, a frame's sender); as a
        function it is called only when a new record needs it (most facts are repeats)."""
        for obs in observations:
            key = (vlan, obs.host, obs.kind, obs.value)
            rec = self._records.get(key)
            if rec is not None:
                # min()/max() as comparisons (same result, NaN included): most facts repeat
                rec.count += 1
                ts = obs.ts
                if ts < rec.first_seen:
                    rec.first_seen = ts
                if ts > rec.last_seen:
                    rec.last_seen = ts
                if obs.confidence > rec.confidence:
                    rec.confidence = obs.confidence
                continue
            if len(self._records) >= self.max_records:
                self.dropped += 1
                continue
            if not isinstance(source, str):
                source = source()
            self._records[key] = Evidence(
                vlan=vlan,
                host=obs.host,
                kind=obs.kind,
                value=obs.value,
                source=source,
                first_seen=obs.ts,
                last_seen=obs.ts,
                count=1,
                confidence=obs.confidence,
                port=obs.port,
            )


def flow_label(flow: Flow) -> str:
    transport = {6: "tcp", 17: "udp"}.get(flow.proto, str(flow.proto))
    client, server = ip_text(flow.client_ip), ip_text(flow.server_ip)
    if flow.ip_version == 6:
        client, server = f"[{client}]", f"[{server}]"
    vlan = f" vlan {flow.vlan}" if flow.vlan is not None else ""
    return f"{transport} {client}:{flow.client_port} -> {server}:{flow.server_port}{vlan}"
