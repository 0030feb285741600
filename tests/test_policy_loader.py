"""collector/policy.py: the issue's format loads as written, and every mistake gets a
``file:line: field: problem`` error pointing at the offending node."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from collector.policy import (
    DEFAULT_SEVERITY,
    MAX_POLICY_BYTES,
    NAMED_SERVICES,
    EndpointMatch,
    Policy,
    PolicyError,
    Rule,
    SegmentationRule,
    Zone,
    load_policy,
    parse_policy,
    parse_service,
)
from tests.policy_fixtures import ISSUE_POLICY

ZONES = """\
zones:
  clinical: {vlans: [10], cidrs: [10.10.0.0/16]}
  medical: {vlans: [20], cidrs: [10.20.0.0/16]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error(tmp_path: Path, text: str) -> PolicyError:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    err = info.value
    assert err.path == str(path)
    where = f"{path}:{err.line}" if err.line is not None else str(path)
    assert str(err) == f"{where}: {err.field}: {err.problem}"
    assert "\n" not in str(err)
    return err


# -- the issue's example ------------------------------------------------------------------


def test_issue_example_loads(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, ISSUE_POLICY))
    assert list(policy.zones) == ["clinical", "medical", "imaging", "guest"]
    clinical = policy.zones["clinical"]
    assert clinical.vlans == (10,)
    assert clinical.cidrs == (ipaddress.ip_network("10.10.0.0/16"),)
    assert policy.zones["imaging"].description is None
    assert policy.default == "deny"
    assert policy.default_severity == DEFAULT_SEVERITY == "high"
    names = [r.name for r in policy.rules]
    assert names == [
        "modalities-to-worklist",
        "reading-rooms-query-pacs",
        "monitor-gateway-to-engine",
        "pumps-never-leave-medical",
    ]
    worklist, query, gateway, pumps = policy.rules
    assert worklist.dest.hosts == (ipaddress.ip_network("10.10.5.40/32"),)
    assert [s.name for s in query.services] == ["tcp/104", "tcp/11112"]
    assert gateway.source == EndpointMatch(zones=("medical",), device_types=("medical-gateway",))
    assert gateway.needs_device_type and not query.needs_device_type
    assert pumps.dest == EndpointMatch(zones=("medical",), negate=True)
    assert pumps.services == () and pumps.severity == "critical"
    assert worklist.severity is None  # allow rules have none
    assert worklist.line == 8 and pumps.line == 23
    assert SegmentationRule is Rule


def test_flow_mapping_description_with_commas() -> None:
    """YAML ends a plain scalar at ',' inside {...}: PyYAML reads the issue's
    ``description: HIS, RIS, workstations`` as description 'HIS' plus keys 'RIS' and
    'workstations' without values. The loader joins those back into the text."""
    raw = yaml.safe_load(ISSUE_POLICY)["zones"]["clinical"]
    assert raw == {
        "vlans": [10],
        "cidrs": ["10.10.0.0/16"],
        "description": "HIS",
        "RIS": None,
        "workstations": None,
    }
    policy = parse_policy(ISSUE_POLICY)
    assert policy.zones["clinical"].description == "HIS, RIS, workstations"
    assert policy.zones["medical"].description == "monitors, pumps, gateways"


def test_bare_words_elsewhere_are_still_unknown_keys(tmp_path: Path) -> None:
    err = error(tmp_path, "zones:\n  a: {vlans: [1], RIS}\n")
    assert (err.line, err.field) == (2, "zones.a.RIS")
    assert err.problem.startswith("unknown key")


def test_round_trip_through_normalised_yaml() -> None:
    policy = parse_policy(ISSUE_POLICY)
    again = parse_policy(policy.to_yaml(), "normalised")
    assert again == policy
    assert again.to_dict() == policy.to_dict()
    normal = policy.to_dict()
    assert normal["version"] == 1 and normal["default_severity"] == "high"
    assert normal["rules"][3]["to"] == {"zone": "!medical"}
    assert normal["rules"][3]["severity"] == "critical"
    assert "severity" not in normal["rules"][0]


def test_extensions_and_defaults() -> None:
    text = (
        ZONES
        + """\
  lab: {vlans: [40]}
default: allow
default_severity: medium
rules:
  - name: no-telnet
    description: cleartext admin access
    from: {hosts: [10.10.7.0/24, 10.10.8.8]}
    to: {zone: [medical, lab], device_type: [Infusion-Pump, infusion-pump, CR]}
    services: [telnet, tcp/8000-8100, udp, icmp]
    action: deny
  - name: everything
    services: [any, tcp/1]
    action: deny
"""
    )
    policy = parse_policy(text)
    assert policy.default == "allow" and policy.default_severity == "medium"
    telnet, everything = policy.rules
    assert telnet.severity == "medium"  # deny rules inherit default_severity
    assert telnet.source.hosts == (
        ipaddress.ip_network("10.10.7.0/24"),
        ipaddress.ip_network("10.10.8.8/32"),
    )
    assert telnet.dest.zones == ("medical", "lab")
    assert telnet.dest.device_types == ("infusion-pump", "x-ray")  # aliases, case, dedup
    assert telnet.description == "cleartext admin access"
    assert everything.services == ()  # "any" anywhere means every service
    assert everything.source == EndpointMatch() and everything.dest == EndpointMatch()


# -- services ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "transport", "port", "hit"),
    [
        ("tcp/104", "tcp", 104, True),
        ("tcp/104", "udp", 104, False),
        ("TCP/104", "tcp", 105, False),
        ("tcp/8000-8100", "tcp", 8000, True),
        ("tcp/8000-8100", "tcp", 8100, True),
        ("tcp/8000-8100", "tcp", 8101, False),
        ("udp", "udp", 5, True),
        ("icmp", "icmp", None, True),
        ("icmp", "icmpv6", None, True),
        ("icmpv6", "icmp", None, False),
        ("any", "47", None, True),
        ("dicom", "tcp", 11112, True),
        ("dicom", "tcp", 2762, False),
        ("dicom-tls", "tcp", 2762, True),
        ("hl7", "tcp", 2575, True),
        ("dns", "udp", 53, True),
        ("dns", "tcp", 53, True),
        ("ntp", "udp", 123, True),
        ("https", "tcp", 443, True),
        ("rdp", "tcp", 3389, True),
        ("snmp", "udp", 161, True),
        ("syslog", "udp", 514, True),
        ("ldap", "tcp", 389, True),
        ("smb", "tcp", 445, True),
        ("ssh", "tcp", 2222, False),
    ],
)
def test_service_matching(text: str, transport: str, port: int | None, hit: bool) -> None:
    assert parse_service(text).matches(transport, port) is hit


def test_every_named_service_has_ports_and_a_source() -> None:
    for name, (ports, source) in NAMED_SERVICES.items():
        assert ports and source.strip(), name
        for port in ports:
            parse_service(port)  # each expansion is itself valid


# -- errors: one test per class, with the exact line ------------------------------------------


def test_yaml_syntax_error(tmp_path: Path) -> None:
    err = error(tmp_path, ZONES + "rules:\n  - name: x\n    action: [allow\n")
    assert (err.line, err.field) == (7, "yaml")


def test_yaml_bad_indentation(tmp_path: Path) -> None:
    err = error(tmp_path, "zones:\n  a: {vlans: [1]}\n default: deny\n")
    assert (err.line, err.field) == (3, "yaml")


def test_aliases_are_refused(tmp_path: Path) -> None:
    text = ZONES + "rules:\n  - &r {name: x, action: deny}\n  - *r\n"
    err = error(tmp_path, text)
    assert (err.line, err.field) == (6, "yaml")
    assert "alias" in err.problem


def test_empty_and_non_mapping_documents(tmp_path: Path) -> None:
    assert error(tmp_path, "# nothing\n").field == "(document)"
    err = error(tmp_path, "- a\n- b\n")
    assert (err.line, err.field) == (1, "(document)")


def test_unknown_zone(tmp_path: Path) -> None:
    text = ZONES + "rules:\n  - name: x\n    from: {zone: clinical}\n    to: {zone: imagin}\n"
    text += "    action: deny\n"
    err = error(tmp_path, text)
    assert (err.line, err.field) == (7, "rules[0].to.zone")
    assert "unknown zone 'imagin'" in err.problem


def test_unknown_negated_zone(tmp_path: Path) -> None:
    text = ZONES + 'rules:\n  - name: x\n    to: {zone: "!medicl"}\n    action: deny\n'
    err = error(tmp_path, text)
    assert (err.line, err.field) == (6, "rules[0].to.zone")
    assert "did you mean 'medical'" in err.problem


def test_unquoted_negation_in_block_style_is_read_as_meant() -> None:
    text = ZONES + "rules:\n  - name: x\n    to:\n      zone: !medical\n    action: deny\n"
    rule = parse_policy(text).rules[0]
    assert rule.dest == EndpointMatch(zones=("medical",), negate=True)


@pytest.mark.parametrize(
    ("cidr", "problem"),
    [
        ("10.30.0.0/33", "is not an IP address or CIDR"),
        ("10.30.1.0/16", "has host bits set (did you mean 10.30.0.0/16?)"),
        ("imaging", "is not an IP address or CIDR"),
    ],
)
def test_bad_cidr(tmp_path: Path, cidr: str, problem: str) -> None:
    err = error(tmp_path, ZONES + f"  imaging:\n    cidrs:\n      - 10.31.0.0/16\n      - {cidr}\n")
    assert (err.line, err.field) == (7, "zones.imaging.cidrs[1]")
    assert problem in err.problem


def test_overlapping_cidrs(tmp_path: Path) -> None:
    err = error(tmp_path, ZONES + "  all-10:\n    cidrs: [10.0.0.0/8]\n")
    assert (err.line, err.field) == (5, "zones.all-10.cidrs[0]")
    assert "overlaps 10.10.0.0/16 of zone 'clinical' (line 2)" in err.problem


def test_same_vlan_in_two_zones(tmp_path: Path) -> None:
    err = error(tmp_path, ZONES + "  imaging:\n    vlans: [30, 20]\n")
    assert (err.line, err.field) == (5, "zones.imaging.vlans[1]")
    assert "VLAN 20 is already in zone 'medical' (line 3)" in err.problem


@pytest.mark.parametrize("vlan", ["0", "4095", "ten", "1.5"])
def test_bad_vlan(tmp_path: Path, vlan: str) -> None:
    err = error(tmp_path, f"zones:\n  a:\n    vlans: [{vlan}]\n")
    assert (err.line, err.field) == (3, "zones.a.vlans[0]")


def test_zone_needs_addresses_and_a_good_name(tmp_path: Path) -> None:
    err = error(tmp_path, "zones:\n  a: {description: nothing}\n")
    assert (err.line, err.field, err.problem) == (2, "zones.a", "a zone needs vlans or cidrs")
    err = error(tmp_path, "zones:\n  external: {vlans: [5]}\n")
    assert (err.line, err.field) == (2, "zones.external")
    err = error(tmp_path, "zones:\n  a: {vlans: [5]}\n  a: {vlans: [6]}\n")
    assert (err.line, err.field) == (3, "zones.a")


@pytest.mark.parametrize(
    ("service", "problem"),
    [
        ("tcp/70000", "port out of range"),
        ("tcp/0", "port out of range"),
        ("sctp/5", "unknown transport 'sctp'"),
        ("tcp/8100-8000", "range start above its end"),
        ("tcp/http", "ports must be numbers"),
        ("dicomm", "unknown service 'dicomm'"),
        ("104", "unknown service '104'"),
    ],
)
def test_bad_service(tmp_path: Path, service: str, problem: str) -> None:
    text = ZONES + f"rules:\n  - name: x\n    services:\n      - tcp/1\n      - {service}\n"
    text += "    action: deny\n"
    err = error(tmp_path, text)
    assert (err.line, err.field) == (8, "rules[0].services[1]")
    assert problem in err.problem


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("zones:\n  a: {vlans: [1], vlan: 2}\n", 2, "zones.a.vlan"),
        (ZONES + "rule:\n  - {name: x, action: deny}\n", 4, "rule"),
        (ZONES + "rules:\n  - name: x\n    acton: deny\n", 6, "rules[0].acton"),
        (
            ZONES + "rules:\n  - name: x\n    from: {zone: clinical, host: 1.2.3.4}\n",
            6,
            "rules[0].from.host",
        ),
        (ZONES + "default: deny\ndefault: allow\n", 5, "default"),
    ],
)
def test_unknown_and_duplicate_keys(tmp_path: Path, text: str, line: int, field: str) -> None:
    err = error(tmp_path, text)
    assert (err.line, err.field) == (line, field)


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    err = error(tmp_path, ZONES + "rules:\n  - name: x\n    acton: deny\n")
    assert "did you mean 'action'?" in err.problem


@pytest.mark.parametrize(
    ("rule", "field", "problem"),
    [
        ("{name: x, action: permit}", "rules[0].action", "'permit' is not one of: allow, deny"),
        ("{name: x, action: deny, severity: urgent}", "rules[0].severity", "'urgent'"),
        ("{name: x, action: allow, severity: low}", "rules[0].severity", "only deny rules"),
        ("{name: x}", "rules[0].action", "missing"),
        ("{action: deny}", "rules[0].name", "missing"),
        ("{name: default, action: deny}", "rules[0].name", "names the default action"),
        ("{name: 'a b', action: deny}", "rules[0].name", "letters, digits"),
    ],
)
def test_bad_action_severity_and_names(tmp_path: Path, rule: str, field: str, problem: str) -> None:
    err = error(tmp_path, ZONES + f"rules:\n  - {rule}\n")
    assert (err.line, err.field) == (5, field)
    assert problem in err.problem


def test_bad_default_and_default_severity(tmp_path: Path) -> None:
    err = error(tmp_path, ZONES + "default: block\n")
    assert (err.line, err.field) == (4, "default")
    err = error(tmp_path, ZONES + "default_severity: severe\n")
    assert (err.line, err.field) == (4, "default_severity")
    err = error(tmp_path, ZONES + "version: 2\n")
    assert (err.line, err.field) == (4, "version")


def test_unknown_device_type(tmp_path: Path) -> None:
    text = ZONES + "rules:\n  - name: x\n    from:\n      device_type: [ct, infusion-pmup]\n"
    text += "    action: deny\n"
    err = error(tmp_path, text)
    assert (err.line, err.field) == (7, "rules[0].from.device_type[1]")
    assert "unknown device type 'infusion-pmup'; did you mean 'infusion-pump'?" in err.problem
    err = error(
        tmp_path, ZONES + "rules:\n  - {name: x, action: deny, from: {device_type: pump}}\n"
    )
    assert (err.line, err.field) == (5, "rules[0].from.device_type")
    assert "did you mean 'infusion-pump'?" in err.problem


def test_duplicate_rule_names(tmp_path: Path) -> None:
    text = ZONES + "rules:\n  - {name: x, action: deny}\n  - {name: y, action: deny}\n"
    text += "  - {name: x, action: allow}\n"
    err = error(tmp_path, text)
    assert (err.line, err.field) == (7, "rules[2].name")
    assert "duplicate rule name 'x' (first at line 5)" in err.problem


def test_host_outside_its_zone(tmp_path: Path) -> None:
    text = ZONES + "rules:\n  - name: x\n    to: {zone: clinical, hosts: [10.20.1.10]}\n"
    text += "    action: allow\n"
    err = error(tmp_path, text)
    assert (err.line, err.field) == (6, "rules[0].to.hosts[0]")
    assert "is in zone 'medical'" in err.problem


def test_file_level_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy(missing)
    assert str(info.value).startswith(f"{missing}: file: cannot read")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"zones:\n  a: \xff\n")
    with pytest.raises(PolicyError) as info:
        load_policy(binary)
    assert (info.value.line, info.value.field) == (2, "file")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_POLICY_BYTES + 1))
    with pytest.raises(PolicyError, match="larger than"):
        load_policy(big)


def test_parse_policy_names_its_source() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("zones: 5\n")
    assert str(info.value).startswith("<policy>:1: zones:")
    with pytest.raises(PolicyError) as info:
        parse_policy("zones: 5\n", source="upload.yaml")
    assert str(info.value).startswith("upload.yaml:1: zones:")


def test_model_types_are_frozen() -> None:
    policy = parse_policy(ISSUE_POLICY)
    assert isinstance(policy, Policy) and isinstance(policy.zones["guest"], Zone)
    with pytest.raises(AttributeError):
        policy.default = "allow"  # type: ignore[misc]


def test_hostile_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(PolicyError, match="nested too deeply"):
        parse_policy("[" * 100_000)


def test_rule_description_with_commas_in_flow_style() -> None:
    text = ZONES + "rules:\n  - {name: x, description: no a, b or c, action: deny}\n"
    assert parse_policy(text).rules[0].description == "no a, b or c"
    with pytest.raises(PolicyError) as info:  # a known key is never swallowed
        parse_policy(ZONES + "rules:\n  - {name: x, description: a, action}\n")
    assert info.value.field == "rules[0].action"
