"""Streaming violation tracking: flow starts in, deduplicated violations out.

``observe`` is called when a flow starts (and again with counters while or when it ends);
the flow is evaluated once, with what the ``Directory`` knows at that moment. A flow whose
verdict waits for a device type is kept *pending* and evaluated again whenever the
directory learns types (``set_device_types`` / ``set_directory``); ``finish`` (end of
capture) and ``expire_pending`` (a live sensor that cannot wait forever) decide what is
still pending with unknown types read as "not that type".

Violations are deduplicated per (rule, client IP, server IP, service) with first/last
seen, flows, packets and bytes; ``on_new_violation`` fires exactly once per key, which is
where alert sinks hook in. A routed flow mirrored on two VLANs arrives as two copies of
the same flow: counts are kept per copy (VLAN) and a violation reports the largest copy,
never the sum, so one connection counts once.

An allow rule with ``require: tls`` needs the flow's application: a flow that a cleartext
protocol was detected on breaks it (a violation of that rule, with its severity); a TLS
flow keeps it. Until app detection has spoken (a live flow at its start) the flow waits in
the same remembered state and is judged by the first event that carries its ``app``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.policy.directory import Directory
from agent.policy.engine import (
    EndpointFacts,
    Verdict,
    ZoneResolver,
    evaluate,
    service_text,
    tls_breach,
    tls_reason,
)
from collector.policy import SEVERITIES, Policy, Severity

log = logging.getLogger(__name__)

MAX_TRACKED_FLOWS = 262_144  # verdicts remembered per flow copy; beyond, flows are re-evaluated
MAX_PENDING = 65_536  # flows waiting for a device type; beyond, decided at once (final)
PENDING_MAX_AGE = 900.0  # seconds a live sensor lets a flow wait for a device type

FlowKey = tuple[int | None, str, str, str, int | None]  # vlan, transport, client, server, port
ViolationKey = tuple[str, str, str, str]  # rule, client IP, server IP, service
ALLOWED = "allow"
_Result = tuple[Verdict, EndpointFacts, str, EndpointFacts, str]  # with the facts it used


@dataclass(frozen=True, slots=True)
class _AwaitsApp:
    """Allowed only over TLS, protocol not detected yet: the verdict, kept for the app."""

    result: _Result


@dataclass(slots=True)
class FlowEvent:
    """One flow copy (one VLAN) client -> server, and counters to add for it."""

    client_ip: str
    server_ip: str
    vlan: int | None
    transport: str  # "tcp", "udp", "icmp", "icmpv6" or the IP protocol number
    port: int | None  # server port; None without ports
    app: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    connections: int = 1
    packets: int = 0
    bytes: int = 0

    @property
    def key(self) -> FlowKey:
        return (self.vlan, self.transport, self.client_ip, self.server_ip, self.port)


@dataclass(slots=True)
class Violation:
    rule: str
    severity: Severity
    reason: str
    service: str
    app: str | None
    client: EndpointFacts
    client_zone: str
    server: EndpointFacts
    server_zone: str
    first_seen: float
    last_seen: float
    copies: dict[int | None, list[int]] = field(default_factory=dict)  # vlan: [flows, pkts, bytes]

    @property
    def key(self) -> ViolationKey:
        return (self.rule, self.client.ip, self.server.ip, self.service)

    def _largest(self, i: int) -> int:
        return max((c[i] for c in self.copies.values()), default=0)

    @property
    def flows(self) -> int:
        return self._largest(0)

    @property
    def packets(self) -> int:
        return self._largest(1)

    @property
    def bytes(self) -> int:
        return self._largest(2)

    def add(self, event: FlowEvent) -> None:
        counts = self.copies.setdefault(event.vlan, [0, 0, 0])
        counts[0] += event.connections
        counts[1] += event.packets
        counts[2] += event.bytes
        self.first_seen = min(self.first_seen, event.first_seen)
        self.last_seen = max(self.last_seen, event.last_seen)
        self.app = self.app or event.app

    def to_dict(self) -> dict[str, Any]:
        """The report/wire record (``collector.schema.ViolationReport``)."""
        return {
            "rule": self.rule,
            "severity": self.severity,
            "reason": self.reason,
            "service": self.service,
            "app": self.app,
            "client": _endpoint(self.client, self.client_zone),
            "server": _endpoint(self.server, self.server_zone),
            "flows": self.flows,
            "packets": self.packets,
            "bytes": self.bytes,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
        }


@dataclass(slots=True)
class _Pending:
    event: FlowEvent  # the first event, counters summed over later ones
    since: float


class ViolationTracker:
    def __init__(
        self,
        policy: Policy,
        directory: Directory | None = None,
        on_new_violation: Callable[[Violation], None] | None = None,
        *,
        max_flows: int = MAX_TRACKED_FLOWS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.policy = policy
        self.directory = directory if directory is not None else Directory()
        self.zones = ZoneResolver(policy)
        self.on_new_violation = on_new_violation
        self.max_flows, self.max_pending = max_flows, max_pending
        self._flows: dict[FlowKey, str | ViolationKey | _AwaitsApp] = {}  # or a violation
        self._pending: dict[FlowKey, _Pending] = {}
        self._violations: dict[ViolationKey, Violation] = {}
        self.stats = {
            "flows_evaluated": 0,
            "flows_pending": 0,  # ever made to wait for a device type
            "pending_forced": 0,  # decided without the type (finish, expiry, cap)
            "flows_untracked": 0,  # verdicts not remembered: MAX_TRACKED_FLOWS reached
            "callback_errors": 0,
            "tls_undetermined": 0,  # required TLS, but no protocol was ever detected
        }

    # -- input --------------------------------------------------------------------------
    def observe(self, event: FlowEvent, *, ended: bool = False) -> None:
        """A flow copy started, or more counters for it; ``ended`` forgets a decided flow."""
        key = event.key
        state = self._flows.get(key)
        if state is None:
            pending = self._pending.get(key)
            if pending is not None:
                _merge(pending.event, event)
                return
            self._decide(event, self._evaluate(event, final=False), remember=not ended)
            return
        if isinstance(state, _AwaitsApp):
            if event.app is None:
                if ended:
                    self.stats["tls_undetermined"] += 1
                    del self._flows[key]
                return
            del self._flows[key]
            self._decide(event, state.result, remember=not ended)
            return
        if state != ALLOWED:
            self._violations[state].add(event)  # type: ignore[index]
        if ended:
            del self._flows[key]

    def set_device_types(self, types: Mapping[str, str]) -> None:
        """Device types by IP became known: decide the flows that waited for them."""
        self.directory.set_device_types(types)
        self._reevaluate(final=False)

    def set_directory(self, directory: Directory) -> None:
        self.directory = directory
        self._reevaluate(final=False)

    def expire_pending(self, now: float, max_age: float = PENDING_MAX_AGE) -> None:
        """Decide flows that have waited longer than ``max_age`` without their device type."""
        old = [k for k, p in self._pending.items() if now - p.since > max_age]
        self._reevaluate(final=True, keys=old)

    def finish(self) -> list[Violation]:
        """End of capture: decide everything still pending, return all violations."""
        self._reevaluate(final=True)
        return self.violations()

    # -- output -------------------------------------------------------------------------
    def violations(self) -> list[Violation]:
        """Most severe first; endpoint facts refreshed from what the directory knows now."""
        for v in self._violations.values():
            vlan = next(iter(v.copies), None)
            v.client = self.directory.lookup(v.client.ip, vlan)
            v.server = self.directory.lookup(v.server.ip, vlan)
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        return sorted(
            self._violations.values(),
            key=lambda v: (-rank[v.severity], v.first_seen, v.rule, v.client.ip, v.server.ip),
        )

    @property
    def pending(self) -> int:
        return len(self._pending)

    def zone_of(self, ip: str, vlan: int | None) -> str:
        """The zone of ``ip`` seen on ``vlan``, by the same lookup evaluation uses."""
        return self.zones.zone_of(ip, self.directory.lookup(ip, vlan).vlan)

    # -- internals ----------------------------------------------------------------------
    def _evaluate(self, event: FlowEvent, *, final: bool) -> _Result:
        self.stats["flows_evaluated"] += 1
        client = self.directory.lookup(event.client_ip, event.vlan)
        server = self.directory.lookup(event.server_ip, event.vlan)
        client_zone = self.zones.zone_of(client.ip, client.vlan)
        server_zone = self.zones.zone_of(server.ip, server.vlan)
        verdict = evaluate(
            self.policy,
            client,
            client_zone,
            server,
            server_zone,
            event.transport,
            event.port,
            final=final,
        )
        return verdict, client, client_zone, server, server_zone

    def _decide(
        self,
        event: FlowEvent,
        result: _Result,
        *,
        remember: bool,
    ) -> None:
        verdict, _, client_zone, _, server_zone = result
        key = event.key
        if verdict.outcome == "pending":
            if len(self._pending) >= self.max_pending:
                self.stats["pending_forced"] += 1
                self._decide(event, self._evaluate(event, final=True), remember=remember)
                return
            self.stats["flows_pending"] += 1
            self._pending[key] = _Pending(_copy(event), event.first_seen)
            return
        state: str | ViolationKey | _AwaitsApp = ALLOWED
        service = service_text(event.transport, event.port)
        breach = tls_breach(verdict, event.app)
        if verdict.outcome == "deny":
            state = self._violation(event, verdict, verdict.reason, result)
        elif breach:
            assert event.app is not None
            reason = tls_reason(verdict, client_zone, server_zone, service, event.app)
            state = self._violation(event, verdict, reason, result)
        elif breach is None:
            if not remember:  # ended without a detected protocol: cannot tell
                self.stats["tls_undetermined"] += 1
                return
            state = _AwaitsApp(result)
        if not remember:
            return
        if len(self._flows) >= self.max_flows:
            self.stats["flows_untracked"] += 1
            return
        self._flows[key] = state

    def _violation(
        self, event: FlowEvent, verdict: Verdict, reason: str, result: _Result
    ) -> ViolationKey:
        """Count ``event`` against its violation (made and announced when it is new)."""
        _, client, client_zone, server, server_zone = result
        assert verdict.severity is not None
        vkey = (
            verdict.rule_name,
            client.ip,
            server.ip,
            service_text(event.transport, event.port),
        )
        violation = self._violations.get(vkey)
        if violation is None:
            violation = Violation(
                rule=verdict.rule_name,
                severity=verdict.severity,
                reason=reason,
                service=vkey[3],
                app=event.app,
                client=client,
                client_zone=client_zone,
                server=server,
                server_zone=server_zone,
                first_seen=event.first_seen,
                last_seen=event.last_seen,
            )
            violation.add(event)
            self._violations[vkey] = violation
            self._announce(violation)
        else:
            violation.add(event)
        return vkey

    def _reevaluate(self, *, final: bool, keys: list[FlowKey] | None = None) -> None:
        for key in list(self._pending) if keys is None else keys:
            pending = self._pending.pop(key)
            result = self._evaluate(pending.event, final=final)
            if result[0].outcome == "pending":
                self._pending[key] = pending
                continue
            if final:
                self.stats["pending_forced"] += 1
            self._decide(pending.event, result, remember=True)

    def _announce(self, violation: Violation) -> None:
        if self.on_new_violation is None:
            return
        try:
            self.on_new_violation(violation)
        except Exception as exc:  # an alert sink's bug must not stop the analysis
            self.stats["callback_errors"] += 1
            log.warning("violation callback failed: %s", type(exc).__name__)


def _copy(event: FlowEvent) -> FlowEvent:
    return FlowEvent(
        event.client_ip,
        event.server_ip,
        event.vlan,
        event.transport,
        event.port,
        event.app,
        event.first_seen,
        event.last_seen,
        event.connections,
        event.packets,
        event.bytes,
    )


def _merge(into: FlowEvent, event: FlowEvent) -> None:
    into.connections += event.connections
    into.packets += event.packets
    into.bytes += event.bytes
    into.first_seen = min(into.first_seen, event.first_seen)
    into.last_seen = max(into.last_seen, event.last_seen)
    into.app = into.app or event.app


def _endpoint(facts: EndpointFacts, zone: str) -> dict[str, Any]:
    return {
        "ip": facts.ip,
        "vlan": facts.vlan,
        "zone": zone,
        "device_id": facts.device_id,
        "device_type": facts.device_type,
        "vendor": facts.vendor,
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
