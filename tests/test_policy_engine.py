"""agent/policy: zones of endpoints, verdicts on flows, and the streaming violation tracker
(pending flows, deduplication, routed copies counted once, the new-violation callback)."""

from __future__ import annotations

import pytest

from agent.inventory import Device
from agent.policy import (
    Directory,
    EndpointFacts,
    FlowEvent,
    Violation,
    ViolationTracker,
    ZoneResolver,
    evaluate,
    service_text,
)
from collector.policy import Policy, parse_policy
from collector.schema import ViolationReport
from tests.policy_fixtures import ISSUE_POLICY

ISSUE = parse_policy(ISSUE_POLICY)
PIIC, HIS, RIS, PACS, CT, LAPTOP = (
    "10.20.1.10",
    "10.10.5.20",
    "10.10.5.40",
    "10.30.0.10",
    "10.30.1.11",
    "10.99.0.57",
)


def verdict(
    policy: Policy,
    client: str,
    server: str,
    transport: str = "tcp",
    port: int | None = 104,
    *,
    client_type: str = "unknown",
    server_type: str = "unknown",
    client_vlan: int | None = None,
    server_vlan: int | None = None,
    final: bool = False,
) -> tuple[str, str, str | None]:
    """(outcome, rule name, severity) for one flow."""
    zones = ZoneResolver(policy)
    c = EndpointFacts(client, client_vlan, device_type=client_type)
    s = EndpointFacts(server, server_vlan, device_type=server_type)
    v = evaluate(
        policy,
        c,
        zones.zone_of(client, client_vlan),
        s,
        zones.zone_of(server, server_vlan),
        transport,
        port,
        final=final,
    )
    return v.outcome, v.rule_name, v.severity


# -- zones ------------------------------------------------------------------------------------


def test_zone_by_cidr_then_own_vlan_then_external() -> None:
    policy = parse_policy(
        """
zones:
  clinical: {vlans: [10], cidrs: [10.10.0.0/16, "fd00:10::/64"]}
  lab: {vlans: [40]}
"""
    )
    zones = ZoneResolver(policy)
    assert zones.zone_of("10.10.5.20", 10) == "clinical"
    assert zones.zone_of("10.10.5.20", 40) == "clinical"  # the address decides first
    assert zones.zone_of("10.10.5.20", None) == "clinical"
    assert zones.zone_of("fd00:10::5", None) == "clinical"
    assert zones.zone_of("192.168.40.7", 40) == "lab"  # a VLAN-only zone: its own VLAN
    assert zones.zone_of("192.168.40.7", 10) == "clinical"  # unlisted address on VLAN 10
    assert zones.zone_of("192.168.40.7", None) == "external"  # own VLAN unknown
    assert zones.zone_of("8.8.8.8", 77) == "external"
    assert zones.zone_of("not-an-ip", None) == "external"


def test_own_vlan_comes_from_the_device_not_the_routed_copy() -> None:
    """A host seen only behind the router (``ip:..@vlanN``) has no own VLAN: a VLAN-only
    zone cannot claim it from the router's copy of its frames."""
    policy = parse_policy("zones:\n  lab: {vlans: [40]}\n  office: {vlans: [50]}\n")
    devices = [
        Device(
            id="mac:00:00:00:00:00:01", mac="00:00:00:00:00:01", ips=["192.168.1.5"], vlans=[40]
        ),
        Device(id="ip:172.16.0.9@vlan40", mac=None, ips=["172.16.0.9"], vlans=[40]),
    ]
    tracker = ViolationTracker(policy, Directory.from_devices(devices))
    assert tracker.zone_of("192.168.1.5", 50) == "lab"  # its routed copy on VLAN 50
    assert tracker.zone_of("172.16.0.9", 40) == "external"
    assert tracker.zone_of("10.1.1.1", 40) == "external"  # nobody we know


def test_directory_matches_ip_and_vlan_then_ip() -> None:
    devices = [
        Device(
            id="mac:aa:00:00:00:00:01",
            mac="aa:00:00:00:00:01",
            ips=["10.0.0.5"],
            vlans=[10],
            device_type="ct",
            vendor="GE Healthcare",
        ),
        Device(id="ip:10.0.0.5@vlan20", mac=None, ips=["10.0.0.5"], vlans=[20]),
    ]
    directory = Directory.from_devices(devices)
    assert directory.lookup("10.0.0.5", 10).device_id == "mac:aa:00:00:00:00:01"
    assert directory.lookup("10.0.0.5", 20).device_id == "ip:10.0.0.5@vlan20"
    own = directory.lookup("10.0.0.5", 99)  # no device on VLAN 99: the host's own record
    assert (own.device_id, own.vlan, own.device_type) == ("mac:aa:00:00:00:00:01", 10, "ct")
    assert directory.lookup("10.0.0.6", 10) == EndpointFacts("10.0.0.6")
    hidden = Directory.from_devices(devices, with_types=False)
    assert hidden.lookup("10.0.0.5", 10).device_type == "unknown"
    hidden.set_device_types({"10.0.0.5": "mr", "10.0.0.7": "pacs"})
    assert hidden.lookup("10.0.0.5", 10).device_type == "mr"
    assert hidden.lookup("10.0.0.7", None).device_type == "pacs"


# -- verdicts ---------------------------------------------------------------------------------


def test_inside_one_zone_is_allowed() -> None:
    assert verdict(ISSUE, CT, PACS, port=104, final=True)[0] == "allow"
    assert verdict(ISSUE, CT, PACS, "udp", 9999, final=True)[0] == "allow"


def test_allow_rules_with_hosts_and_services() -> None:
    assert verdict(ISSUE, CT, RIS, port=11113)[:2] == ("allow", "modalities-to-worklist")
    # another clinical host, or another port: no rule allows it, the default denies
    assert verdict(ISSUE, CT, "10.10.5.41", port=11113, final=True) == ("deny", "default", "high")
    assert verdict(ISSUE, CT, RIS, port=11112, final=True) == ("deny", "default", "high")
    assert verdict(ISSUE, HIS, PACS, port=11112)[:2] == ("allow", "reading-rooms-query-pacs")
    assert verdict(ISSUE, HIS, PACS, port=22, final=True)[:2] == ("deny", "default")


def test_default_deny_between_zones_is_pending_while_a_pump_rule_could_match() -> None:
    """The guest laptop -> PACS: the pump rule needs the laptop's type. Known or final, the
    default decides; a pump would break the stricter rule."""
    assert verdict(ISSUE, LAPTOP, PACS)[0] == "pending"
    assert verdict(ISSUE, LAPTOP, PACS, final=True) == ("deny", "default", "high")
    assert verdict(ISSUE, LAPTOP, PACS, client_type="workstation") == ("deny", "default", "high")
    pump = verdict(ISSUE, LAPTOP, PACS, client_type="infusion-pump")
    assert pump == ("deny", "pumps-never-leave-medical", "critical")


def test_device_type_allow_rule() -> None:
    assert verdict(ISSUE, PIIC, HIS, port=2575)[0] == "pending"
    allowed = verdict(ISSUE, PIIC, HIS, port=2575, client_type="medical-gateway")
    assert allowed[:2] == ("allow", "monitor-gateway-to-engine")
    assert verdict(ISSUE, PIIC, HIS, port=2575, client_type="patient-monitor")[1] == "default"
    assert verdict(ISSUE, PIIC, HIS, port=2575, final=True) == ("deny", "default", "high")
    # the gateway rule names the HIS only
    assert verdict(ISSUE, PIIC, RIS, port=2575, client_type="medical-gateway")[0] == "deny"


def test_negated_zone_and_external() -> None:
    pump = "infusion-pump"
    assert verdict(ISSUE, "10.20.3.3", PIIC, port=2575, client_type=pump)[0] == "allow"  # same zone
    assert (
        verdict(ISSUE, "10.20.3.3", "8.8.8.8", "udp", 53, client_type=pump)[1]
        == "pumps-never-leave-medical"
    )
    assert verdict(ISSUE, "10.20.3.3", LAPTOP, "icmp", None, client_type=pump)[2] == "critical"
    # a pump outside the medical zone is still a pump: the rule has no source zone
    assert (
        verdict(ISSUE, LAPTOP, "8.8.8.8", "tcp", 443, client_type=pump)[1]
        == "pumps-never-leave-medical"
    )


def test_intra_zone_traffic_can_be_denied_and_first_match_wins() -> None:
    policy = parse_policy(
        """
zones:
  guest: {vlans: [99], cidrs: [10.99.0.0/16]}
  clinical: {vlans: [10], cidrs: [10.10.0.0/16]}
default: allow
default_severity: low
rules:
  - {name: portal, from: {zone: guest}, to: {hosts: [10.99.0.1]}, services: [http], action: allow}
  - name: no-guest-to-guest
    from: {zone: guest}
    to: {zone: guest}
    action: deny
    severity: medium
  - {name: no-telnet, services: [telnet, tcp/8000-8100], action: deny}
"""
    )
    assert verdict(policy, LAPTOP, "10.99.0.1", port=80)[:2] == ("allow", "portal")
    assert verdict(policy, LAPTOP, "10.99.0.1", port=22) == ("deny", "no-guest-to-guest", "medium")
    assert verdict(policy, LAPTOP, HIS, port=22)[:2] == ("allow", "default")  # default allow
    assert verdict(policy, LAPTOP, HIS, port=8050) == ("deny", "no-telnet", "low")
    assert verdict(policy, LAPTOP, HIS, port=8101)[0] == "allow"
    assert verdict(policy, LAPTOP, HIS, "47", None)[0] == "allow"


def test_undecided_allow_rules_before_an_allow_do_not_wait() -> None:
    policy = parse_policy(
        """
zones: {a: {cidrs: [10.1.0.0/16]}, b: {cidrs: [10.2.0.0/16]}}
default: deny
rules:
  - {name: gw, from: {device_type: medical-gateway}, to: {zone: b}, action: allow}
  - {name: any-to-b, to: {zone: b}, services: [tcp/80], action: allow}
"""
    )
    assert verdict(policy, "10.1.0.1", "10.2.0.1", port=80) == ("allow", "any-to-b", None)
    assert verdict(policy, "10.1.0.1", "10.2.0.1", port=81)[0] == "pending"


def test_hosts_on_from_and_other_protocols() -> None:
    policy = parse_policy(
        """
zones: {a: {cidrs: [10.1.0.0/16]}, b: {cidrs: [10.2.0.0/16]}}
rules:
  - {name: jump, from: {hosts: [10.1.9.0/24]}, to: {zone: b}, services: [ssh], action: allow}
  - {name: gre, from: {zone: a}, to: {zone: b}, action: allow}
"""
    )
    assert verdict(policy, "10.1.9.9", "10.2.0.1", port=22)[1] == "jump"
    assert verdict(policy, "10.1.8.9", "10.2.0.1", port=22)[1] == "gre"
    assert verdict(policy, "10.2.0.1", "10.1.8.9", "47", None)[1] == "default"


def test_service_text() -> None:
    assert service_text("tcp", 2575) == "tcp/2575"
    assert service_text("udp", 53) == "udp/53"
    assert service_text("icmp", None) == "icmp"
    assert service_text("47", None) == "ip/47"


# -- the tracker ------------------------------------------------------------------------------


def event(client: str, server: str, vlan: int, port: int | None = 104, **kw: object) -> FlowEvent:
    base: dict[str, object] = {
        "transport": "tcp" if port is not None else "icmp",
        "app": None,
        "first_seen": 1000.0,
        "last_seen": 1001.0,
        "connections": 1,
        "packets": 9,
        "bytes": 900,
    }
    base.update(kw)
    return FlowEvent(client, server, vlan, port=port, **base)  # type: ignore[arg-type]


def sample_directory(with_types: bool, laptop: str = "unknown") -> Directory:
    devices = [
        Device(id="mac:00:09:fb:1c:2d:3e", mac="00:09:fb:1c:2d:3e", ips=[PIIC], vlans=[20],
               device_type="medical-gateway", vendor="Philips"),
        Device(id="mac:3c:d9:2b:0a:05:14", mac="3c:d9:2b:0a:05:14", ips=[HIS], vlans=[10],
               device_type="his"),
        Device(id="mac:b8:ca:3a:1e:00:0a", mac="b8:ca:3a:1e:00:0a", ips=[PACS], vlans=[30],
               device_type="pacs"),
        Device(id="mac:a0:02:a5:63:00:39", mac="a0:02:a5:63:00:39", ips=[LAPTOP], vlans=[99],
               device_type=laptop),
    ]  # fmt: skip
    return Directory.from_devices(devices, with_types=with_types)


def test_routed_copies_count_once_and_the_callback_fires_once() -> None:
    seen: list[Violation] = []
    tracker = ViolationTracker(ISSUE, sample_directory(True), seen.append)
    tracker.observe(event(LAPTOP, PACS, 99, app="dicom"))
    tracker.observe(event(LAPTOP, PACS, 30, first_seen=1000.001, last_seen=1001.5))
    assert tracker.pending == 2 and not seen  # were the laptop a pump, a stricter rule
    (v,) = tracker.finish()
    assert len(seen) == 1
    assert v is seen[0]
    assert (v.rule, v.severity, v.service, v.app) == ("default", "high", "tcp/104", "dicom")
    assert (v.flows, v.packets, v.bytes) == (1, 9, 900)  # max over the two copies, not 2/18
    assert (v.first_seen, v.last_seen) == (1000.0, 1001.5)
    assert (v.client_zone, v.server_zone) == ("guest", "imaging")
    record = v.to_dict()
    assert record["client"] == {
        "ip": LAPTOP,
        "vlan": 99,
        "zone": "guest",
        "device_id": "mac:a0:02:a5:63:00:39",
        "device_type": "unknown",
        "vendor": None,
    }
    assert record["server"]["device_type"] == "pacs"
    ViolationReport.model_validate(record)


def test_more_connections_on_one_copy_add_up() -> None:
    tracker = ViolationTracker(ISSUE, sample_directory(True))
    for vlan in (99, 30):
        tracker.observe(event(LAPTOP, PACS, vlan))
        tracker.observe(event(LAPTOP, PACS, vlan, packets=3, bytes=30), ended=True)
        tracker.observe(event(LAPTOP, PACS, vlan, first_seen=2000.0, last_seen=2002.0))
    (v,) = tracker.finish()
    assert (v.flows, v.packets, v.bytes) == (3, 21, 1830)
    assert v.last_seen == 2002.0


def test_pending_flow_resolves_when_the_type_is_known() -> None:
    """PIIC -> HIS HL7 is allowed only because the PIIC is a medical gateway: until its type
    is known the flow waits; told the type, it is allowed and never reported."""
    seen: list[Violation] = []
    tracker = ViolationTracker(ISSUE, sample_directory(False), seen.append)
    tracker.observe(event(PIIC, HIS, 20, 2575))
    tracker.observe(event(PIIC, HIS, 10, 2575, packets=12))
    assert tracker.pending == 2 and not seen
    tracker.observe(event(PIIC, HIS, 20, 2575, connections=0, packets=5))  # counts while waiting
    tracker.set_device_types({PIIC: "medical-gateway"})
    assert tracker.pending == 0
    assert tracker.finish() == [] and not seen
    assert tracker.stats["flows_pending"] == 2 and tracker.stats["pending_forced"] == 0


def test_pending_flow_denied_when_the_type_does_not_allow_it() -> None:
    seen: list[Violation] = []
    tracker = ViolationTracker(ISSUE, sample_directory(False), seen.append)
    tracker.observe(event(PIIC, HIS, 20, 2575))
    tracker.observe(event(PIIC, HIS, 20, 2575, connections=0, packets=5, bytes=50))
    tracker.observe(event(PIIC, HIS, 10, 2575, packets=12))
    tracker.set_device_types({PIIC: "patient-monitor"})
    assert len(seen) == 1 and seen[0].rule == "default"
    (v,) = tracker.finish()
    assert (v.flows, v.packets, v.bytes) == (1, 14, 950)  # waiting counts kept; max of copies
    assert v.client.device_type == "patient-monitor"


def test_finish_decides_what_still_waits_and_without_types_it_is_denied() -> None:
    tracker = ViolationTracker(ISSUE, sample_directory(False))
    tracker.observe(event(PIIC, HIS, 20, 2575))
    (v,) = tracker.finish()
    assert (v.rule, v.service, v.client_zone, v.server_zone) == (
        "default", "tcp/2575", "medical", "clinical",
    )  # fmt: skip
    assert tracker.stats["pending_forced"] == 1


def test_expire_pending_after_max_age() -> None:
    tracker = ViolationTracker(ISSUE, sample_directory(False))
    tracker.observe(event(PIIC, HIS, 20, 2575, first_seen=100.0))
    tracker.observe(event(LAPTOP, PACS, 99, first_seen=500.0))
    tracker.expire_pending(now=700.0, max_age=300.0)
    assert tracker.pending == 1
    assert [v.client.ip for v in tracker.violations()] == [PIIC]


def test_same_key_never_announced_twice_even_untracked() -> None:
    seen: list[Violation] = []
    directory = sample_directory(True, laptop="workstation")
    tracker = ViolationTracker(ISSUE, directory, seen.append, max_flows=1)
    for port in (104, 104, 11112):
        tracker.observe(event(LAPTOP, PACS, 99, port))
        tracker.observe(event(LAPTOP, PACS, 30, port))
    assert [v.service for v in seen] == ["tcp/104", "tcp/11112"]
    assert tracker.stats["flows_untracked"] > 0


def test_pending_cap_decides_at_once() -> None:
    tracker = ViolationTracker(ISSUE, sample_directory(False), max_pending=1)
    tracker.observe(event(PIIC, HIS, 20, 2575))
    tracker.observe(event(LAPTOP, PACS, 99))
    assert tracker.pending == 1
    assert [v.client.ip for v in tracker.violations()] == [LAPTOP]


def test_callback_errors_do_not_stop_tracking() -> None:
    def broken(_: Violation) -> None:
        raise RuntimeError("sink down")

    tracker = ViolationTracker(ISSUE, sample_directory(True), broken)
    tracker.observe(event(LAPTOP, PACS, 99))
    assert len(tracker.finish()) == 1 and tracker.stats["callback_errors"] == 1


def test_most_severe_first() -> None:
    tracker = ViolationTracker(ISSUE, sample_directory(True))
    tracker.observe(event(LAPTOP, PACS, 99, first_seen=1.0))
    tracker.set_device_types({"10.20.9.9": "infusion-pump"})
    tracker.observe(event("10.20.9.9", "8.8.8.8", 20, 443, first_seen=2.0))
    violations = tracker.finish()
    assert [(v.rule, v.severity) for v in violations] == [
        ("pumps-never-leave-medical", "critical"),
        ("default", "high"),
    ]
    records = [ViolationReport.model_validate(v.to_dict()) for v in violations]
    assert records[0].server.zone == "external" and records[0].server.vlan is None


@pytest.mark.parametrize("outcome", ["allow", "deny"])
def test_decided_flows_are_not_reevaluated(outcome: str) -> None:
    """A verdict is given once per flow: a later type change does not report it again."""
    seen: list[Violation] = []
    tracker = ViolationTracker(ISSUE, sample_directory(True, laptop="workstation"), seen.append)
    client = PIIC if outcome == "allow" else LAPTOP
    port = 2575 if outcome == "allow" else 104
    server = HIS if outcome == "allow" else PACS
    tracker.observe(event(client, server, 20, port))
    evaluated = tracker.stats["flows_evaluated"]
    tracker.set_device_types({client: "infusion-pump"})
    tracker.observe(event(client, server, 20, port, connections=0))
    assert tracker.stats["flows_evaluated"] == evaluated
    assert len(seen) == (0 if outcome == "allow" else 1)
