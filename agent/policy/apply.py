"""``medtap analyze --policy``: run a capture's flows through the violation tracker.

Offline, device types exist only once the whole capture is classified
(``Analyzer.finish``). So the conversations are replayed through the same
``ViolationTracker`` the live sensor feeds at flow start, in the order they began, with
addressing known and types not yet; then the final devices are handed over, which
decides the flows that waited for a type, exactly as a live sensor's classifier would.
The report gets ``violations``, a ``zone`` per device and ``client_zone`` /
``server_zone`` per flow item (docs/report-format.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from agent.conversations import Conversation
from agent.decode import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from agent.endpoints import ip_text
from agent.inventory import Device
from agent.policy.directory import Directory
from agent.policy.tracker import FlowEvent, Violation, ViolationTracker
from collector.policy import Policy

TRANSPORT_NAMES = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp", PROTO_ICMPV6: "icmpv6"}


def flow_event(conv: Conversation) -> FlowEvent:
    ported = conv.proto in (PROTO_TCP, PROTO_UDP)
    return FlowEvent(
        client_ip=ip_text(conv.client_ip),
        server_ip=ip_text(conv.server_ip),
        vlan=conv.vlan,
        transport=TRANSPORT_NAMES.get(conv.proto, str(conv.proto)),
        port=conv.server_port if ported else None,
        app=conv.app,
        first_seen=conv.first_seen,
        last_seen=conv.last_seen,
        connections=conv.connections,
        packets=conv.packets_c2s + conv.packets_s2c,
        bytes=conv.bytes_c2s + conv.bytes_s2c,
    )


def track_conversations(
    policy: Policy,
    devices: list[Device],
    conversations: Iterable[Conversation],
    on_new_violation: Callable[[Violation], None] | None = None,
) -> ViolationTracker:
    """Flows in start order with types unknown, then the final devices; then finish."""
    tracker = ViolationTracker(
        policy, Directory.from_devices(devices, with_types=False), on_new_violation
    )
    for conv in sorted(conversations, key=lambda c: c.first_seen):
        tracker.observe(flow_event(conv), ended=True)
    tracker.set_directory(Directory.from_devices(devices))
    tracker.finish()
    return tracker


def apply_policy(
    report: dict[str, Any],
    policy: Policy,
    devices: list[Device],
    conversations: Iterable[Conversation],
    on_new_violation: Callable[[Violation], None] | None = None,
) -> ViolationTracker:
    """Fill ``report`` (from ``build_report``) with violations and zones."""
    tracker = track_conversations(policy, devices, conversations, on_new_violation)
    report["violations"] = [v.to_dict() for v in tracker.violations()]
    for row in report["devices"]:
        row["zone"] = device_zone(tracker, row)
    for item in report["flows"]["items"]:
        item["client_zone"] = tracker.zone_of(item["client"], item["vlan"])
        item["server_zone"] = tracker.zone_of(item["server"], item["vlan"])
    report["stats"]["policy"] = {
        "source": policy.source,
        "zones": len(policy.zones),
        "rules": len(policy.rules),
        "violations": len(report["violations"]),
        **tracker.stats,
    }
    return tracker


def device_zone(tracker: ViolationTracker, device: dict[str, Any]) -> str | None:
    """The zone of a device's addresses; a named device behind a gateway is in the
    gateway's zone. A router with addresses in several zones lists them, comma-separated."""
    ips: list[str] = device["ips"] or device["reached_via"]
    vlan = device["vlans"][0] if len(device["vlans"]) == 1 else None
    zones: list[str] = []
    for ip in ips:
        zone = tracker.zone_of(ip, vlan)
        if zone not in zones:
            zones.append(zone)
    return ",".join(zones) if zones else None
