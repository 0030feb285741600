"""Periodic snapshots as *deltas*: what changed since the last snapshot, never a total twice.

docs/sensor.md, "Snapshots and the collector". The collector adds what a batch says:
flow, violation and evidence counts add, a device's flow count adds, first/last seen widen
(collector/store.py). A snapshot of the sensor's *running totals* sent every minute would
be counted every minute. So the ``Ledger`` remembers what it has handed to the uplink and a
snapshot carries, per record, only the increase since then:

- flows (report ``flows.items``, keyed by VLANs, transport, client, server, port):
  connections, packets and bytes since the last snapshot; a flow with no new traffic is
  left out;
- devices: sent when anything about them changed (a field, an address, ``last_seen``)
  or they have new flows or evidence; ``flows`` and each evidence row's ``count`` are the
  increase, evidence rows without new sightings are left out; the classification goes in
  whole (the collector keeps each sensor's latest claim per field);
- violations: flows, packets and bytes since the last snapshot.

A decrease (a record dropped by a table cap, a violation's largest VLAN copy switching)
sends nothing and is not taken back. Batch ids are ``s1-<run>-<snapshot>-<part>``: a
random id per sensor run, then the snapshot sequence, so a batch retried from the spool is
recognised as a duplicate by the collector while two snapshots with the same content (a
device flapping back to an earlier state) are both stored. A restarted sensor starts from
zero with a new run id: the traffic it reports after a restart is new traffic.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.uplink.batch import BatchLimits, BuildStats, batches_from_report
from collector.schema import Batch, Heartbeat

FLOW_COUNTS = (
    "connections",
    "packets_to_server",
    "packets_to_client",
    "bytes_to_server",
    "bytes_to_client",
)
VIOLATION_COUNTS = ("flows", "packets", "bytes")
DEVICE_VOLATILE = ("flows", "evidence", "first_seen")  # not part of "did it change"

FlowKey = tuple[Any, ...]
ViolationKey = tuple[str, str, str, str]
EvidenceKey = tuple[str, str, str]


@dataclass
class _SentDevice:
    fingerprint: str
    flows: int
    evidence: dict[EvidenceKey, int] = field(default_factory=dict)


def new_run_id() -> str:
    return secrets.token_hex(6)


def _flow_key(item: Mapping[str, Any]) -> FlowKey:
    return (
        item["transport"], item["vlan"], item["inner_vlan"], item["client"], item["server"],
        item["server_port"],
    )


def _violation_key(v: Mapping[str, Any]) -> ViolationKey:
    return (v["rule"], v["client"]["ip"], v["server"]["ip"], v["service"])


def _fingerprint(row: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if k not in DEVICE_VOLATILE},
                      sort_keys=True, default=str)


class Ledger:
    """What has been handed to the uplink so far, per record.

    ``flows_delta`` and ``devices_delta`` take the *whole* current report and forget the
    records it no longer has, so the ledger is bounded by the sensor's own tables, not by
    uptime: a flow item leaves the report only when it was an open flow whose conversation a
    cap turned away (if it comes back, it is new traffic: its counters restart), a device id
    when the endpoint it named is known by another id now (an IP-only endpoint whose MAC
    was learned), an evidence row when its source changed ("stores DICOM from 3 clients" ->
    4). Violations are kept across policy reloads (so a reload never re-sends a total).
    """

    def __init__(self) -> None:
        self.flows: dict[FlowKey, tuple[int, ...]] = {}
        self.devices: dict[str, _SentDevice] = {}
        self.violations: dict[ViolationKey, tuple[tuple[int, ...], str | None]] = {}

    def delta(self, report: Mapping[str, Any]) -> dict[str, Any]:
        """The part of ``report`` (running totals, ``build_report`` shape) not yet sent,
        with counts as increases; the ledger then counts it as sent."""
        return {
            "medtap_version": report.get("medtap_version"),
            "devices": self.devices_delta(report.get("devices") or []),
            "flows": {"items": self.flows_delta((report.get("flows") or {}).get("items") or [])},
            "violations": self.violations_delta(report.get("violations") or []),
            "stats": report.get("stats") or {},
        }

    def flows_delta(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            key = _flow_key(item)
            now = tuple(int(item[k] or 0) for k in FLOW_COUNTS)
            sent = self.flows.get(key)
            if sent is None:
                diff = now
            else:
                diff = tuple(max(0, a - b) for a, b in zip(now, sent, strict=True))
            if not any(diff):
                continue
            self.flows[key] = now if sent is None else tuple(map(max, now, sent))
            row = dict(item)
            row.update(zip(FLOW_COUNTS, diff, strict=True))
            out.append(row)
        if len(self.flows) > len(items):
            present = {_flow_key(item) for item in items}
            self.flows = {k: v for k, v in self.flows.items() if k in present}
        return out

    def devices_delta(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            fingerprint = _fingerprint(row)
            sent = self.devices.get(row["id"])
            flows = int(row.get("flows") or 0)
            evidence: dict[EvidenceKey, int] = {}
            for ev in row.get("evidence") or []:
                ekey = (ev["kind"], ev["value"], ev["source"])
                evidence[ekey] = evidence.get(ekey, 0) + int(ev.get("count") or 0)
            if sent is None:
                sent = _SentDevice("", 0)
            elif len(sent.evidence) > len(evidence):
                sent.evidence = {k: v for k, v in sent.evidence.items() if k in evidence}
            new_evidence = []
            for ev in row.get("evidence") or []:
                ekey = (ev["kind"], ev["value"], ev["source"])
                grew = evidence[ekey] - sent.evidence.get(ekey, 0)
                if grew > 0:
                    new_evidence.append({**ev, "count": grew})
                    sent.evidence[ekey] = evidence[ekey]
            more_flows = max(0, flows - sent.flows)
            if fingerprint == sent.fingerprint and not more_flows and not new_evidence:
                continue
            sent.fingerprint = fingerprint
            sent.flows = max(flows, sent.flows)
            self.devices[row["id"]] = sent
            out_row = copy.deepcopy(dict(row))
            out_row["flows"] = more_flows
            out_row["evidence"] = new_evidence
            out.append(out_row)
        if len(self.devices) > len(rows):
            present = {row["id"] for row in rows}
            self.devices = {k: v for k, v in self.devices.items() if k in present}
        return out

    def violations_delta(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for v in rows:
            key = _violation_key(v)
            now = tuple(int(v[k] or 0) for k in VIOLATION_COUNTS)
            sent_counts, sent_last = self.violations.get(key, ((0, 0, 0), None))
            diff = tuple(max(0, a - b) for a, b in zip(now, sent_counts, strict=True))
            if not any(diff) and v.get("last_seen") == sent_last:
                continue
            self.violations[key] = (tuple(map(max, now, sent_counts)), v.get("last_seen"))
            row = copy.deepcopy(dict(v))
            row.update(zip(VIOLATION_COUNTS, diff, strict=True))
            out.append(row)
        return out


def build_batches(
    delta: Mapping[str, Any],
    *,
    sensor: str,
    run_id: str,
    seq: int,
    heartbeat: Heartbeat | None,
    limits: BatchLimits | None = None,
    stats: BuildStats | None = None,
) -> list[Batch]:
    """Wire batches of one snapshot (``agent.uplink.batch`` splits and validates); the
    heartbeat rides on the last one, or alone when nothing changed."""
    batches = batches_from_report(
        delta, sensor=sensor, limits=limits, heartbeat=heartbeat, stats=stats
    )
    for part, batch in enumerate(batches):
        if batch.devices or batch.flows or batch.violations:
            batch.batch_id = f"s1-{run_id}-{seq:09d}-{part:03d}"
    return batches


def is_heartbeat_only(batch: Batch) -> bool:
    return not (batch.devices or batch.flows or batch.violations)


__all__ = ["Ledger", "build_batches", "is_heartbeat_only", "new_run_id"]
