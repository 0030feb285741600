"""Policy evaluation: the zone of an endpoint and the verdict on one client -> server flow.

Pure and stateless apart from caches: ``ZoneResolver.zone_of`` and ``evaluate`` are the one
code path that ``medtap analyze`` and the live sensor share (through ``ViolationTracker``).
Semantics (docs/policy.md): an address is in the zone whose CIDRs contain it; failing
that, in the zone listing the VLAN it sends its own frames on; failing that, ``external``.
Rules are tried in order and the first that matches decides; when none does, traffic
inside one zone is allowed and traffic between zones gets the policy's default.

A rule condition on a device type that is not known yet makes the verdict *pending* when
the answer could change what is reported; ``final=True`` (end of capture, or a pending
flow that waited too long) reads an unknown type as "not that type".

An allow rule with ``require: tls`` allows a flow only over TLS: its verdict is ``allow``
with ``requires`` set, and the tracker decides on the flow's detected application
(``tls_breach``) whether the flow kept the requirement.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from collector.policy import DEFAULT_RULE, EXTERNAL, EndpointMatch, Policy, Rule, Severity
from parsers.vocabulary import UNKNOWN

MAX_ZONE_CACHE = 65_536  # (ip, vlan) -> zone entries; cleared when full

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Outcome = Literal["allow", "deny", "pending"]


@lru_cache(maxsize=MAX_ZONE_CACHE)
def parse_ip(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class EndpointFacts:
    """What the sensor knows about one side of a flow, from the device that owns its IP."""

    ip: str
    vlan: int | None = None  # the VLAN it sends its own frames on; None when not known
    device_id: str | None = None
    device_type: str = UNKNOWN
    vendor: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    rule: Rule | None = None  # None: the default action or the same-zone allowance
    severity: Severity | None = None  # deny, and allow with a requirement (if it is broken)
    reason: str = ""

    @property
    def rule_name(self) -> str:
        return self.rule.name if self.rule is not None else DEFAULT_RULE

    @property
    def requires(self) -> str | None:
        """An allow verdict's condition on the flow itself (``"tls"``), None if there is none."""
        return self.rule.require if self.outcome == "allow" and self.rule is not None else None


TLS_APP = "tls"  # the application name app detection gives a TLS flow (parsers/tls.py)


def tls_breach(verdict: Verdict, app: str | None) -> bool | None:
    """Does a flow break its allow rule's ``require: tls``? True: a cleartext protocol was
    detected; False: TLS, or nothing required; None: required, but no protocol detected yet
    (no payload, or not recognised: medtap cannot tell cleartext from encrypted)."""
    if verdict.requires != "tls":
        return False
    if app is None:
        return None
    return app != TLS_APP


def tls_reason(verdict: Verdict, client_zone: str, server_zone: str, service: str,
               app: str) -> str:
    return (
        f"Rule {verdict.rule_name!r} allows {client_zone} to {server_zone} on {service} only "
        f"over TLS; this {app} flow was cleartext."
    )


class ZoneResolver:
    """Zone of an (IP, own VLAN); cached, because the same hosts come back all the time."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._by_vlan = {vlan: z.name for z in policy.zones.values() for vlan in z.vlans}
        self._cidrs = [(net, z.name) for z in policy.zones.values() for net in z.cidrs]
        self._cache: dict[tuple[str, int | None], str] = {}

    def zone_of(self, ip: str, vlan: int | None) -> str:
        key = (ip, vlan)
        zone = self._cache.get(key)
        if zone is None:
            zone = self._resolve(ip, vlan)
            if len(self._cache) >= MAX_ZONE_CACHE:
                self._cache.clear()
            self._cache[key] = zone
        return zone

    def _resolve(self, ip: str, vlan: int | None) -> str:
        addr = parse_ip(ip)
        if addr is not None:
            for net, name in self._cidrs:
                if addr in net:
                    return name
        if vlan is not None:
            return self._by_vlan.get(vlan, EXTERNAL)
        return EXTERNAL


def service_text(transport: str, port: int | None) -> str:
    """``tcp/2575``, ``udp/53``, ``icmp``; other IP protocols as ``ip/47``."""
    if transport in ("tcp", "udp"):
        return f"{transport}/{port}"
    if transport.isdigit():
        return f"ip/{transport}"
    return transport


def evaluate(
    policy: Policy,
    client: EndpointFacts,
    client_zone: str,
    server: EndpointFacts,
    server_zone: str,
    transport: str,
    port: int | None,
    *,
    final: bool = False,
) -> Verdict:
    """The verdict on one flow in the client -> server direction.

    A rule whose only open question is a device type not known yet is *undecided*. It makes
    the verdict pending unless every undecided rule before the deciding one allows and the
    deciding one allows too, none of them with a requirement (then nothing would be reported
    either way).
    """
    undecided: list[Rule] = []
    decided: Verdict | None = None
    for rule in policy.rules:
        if not rule.matches_service(transport, port):
            continue
        hit = _and(
            _side(rule.source, client, client_zone, final),
            _side(rule.dest, server, server_zone, final),
        )
        if hit is False:
            continue
        if hit is None:
            undecided.append(rule)
            continue
        decided = _rule_verdict(rule, client_zone, server_zone, transport, port)
        break
    if decided is None:
        decided = _default_verdict(policy, client_zone, server_zone, transport, port)
    may_report = decided.outcome == "deny" or decided.requires is not None
    if undecided and (may_report or any(r.may_report for r in undecided)):
        names = ", ".join(repr(r.name) for r in undecided)
        return Verdict("pending", reason=f"waits for device types that rules {names} need")
    return decided


def _side(match: EndpointMatch, facts: EndpointFacts, zone: str, final: bool) -> bool | None:
    """Does one endpoint fit a rule's ``from``/``to``? None: only its device type can tell."""
    if match.zones and (zone in match.zones) == match.negate:
        return False
    if match.hosts:
        addr = parse_ip(facts.ip)
        if addr is None or not any(addr in net for net in match.hosts):
            return False
    if match.device_types:
        if facts.device_type == UNKNOWN:
            return False if final else None
        return facts.device_type in match.device_types
    return True


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _rule_verdict(
    rule: Rule, client_zone: str, server_zone: str, transport: str, port: int | None
) -> Verdict:
    if rule.action == "allow":
        if rule.require is not None:
            reason = f"rule {rule.name!r} allows it over {rule.require.upper()} only"
            return Verdict("allow", rule, rule.severity, reason)
        return Verdict("allow", rule, reason=f"rule {rule.name!r} allows it")
    service = service_text(transport, port)
    reason = f"Rule {rule.name!r} denies {client_zone} to {server_zone} on {service}."
    if rule.description:
        reason = f"{reason[:-1]}: {rule.description}"
    return Verdict("deny", rule, rule.severity, reason)


def _default_verdict(
    policy: Policy, client_zone: str, server_zone: str, transport: str, port: int | None
) -> Verdict:
    if client_zone == server_zone:
        return Verdict("allow", reason=f"inside zone {client_zone}")
    if policy.default == "allow":
        return Verdict("allow", reason="the default between zones is allow")
    service = service_text(transport, port)
    return Verdict(
        "deny",
        None,
        policy.default_severity,
        f"No rule allows {client_zone} to {server_zone} on {service}; "
        "the default between zones is deny.",
    )
