"""`medtap policy learn` / `check` end to end on the sample hospital capture, as a user runs
them: learn -> check -> analyze --policy finds nothing; take a rule out -> exactly its flows
come back as violations. Expectations come from the capture's ground-truth file, not from
medtap output.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.policy.learn import (
    MAX_RULE_HOSTS,
    LearnedZone,
    Usage,
    _cidrs,
    comment,
    render,
    rule_name,
)
from collector.policy import load_policy, parse_policy

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "pcaps" / "sample" / "hospital-sample.pcapng"
TRUTH = json.loads((REPO / "pcaps" / "sample" / "hospital-sample.truth.json").read_text())


def run(module: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )


def policy_cmd(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run("agent.cli_policy", *args)


def analyze(policy: Path, *extra: str | Path) -> tuple[int, dict[str, Any], str]:
    out = run("agent.cli", "analyze", SAMPLE, "--policy", policy, "-f", "json", *extra)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout), out.stderr


def cross_vlan_flows() -> set[tuple[str, str, str]]:
    """(client, server, service) of every flow between VLANs, from the ground truth."""
    flows = TRUTH["expected_cross_vlan_flows"] + [
        f for f in TRUTH["other_flows"] if f["client_vlan"] != f["server_vlan"]
    ]
    return {
        (
            f["client"],
            f["server"],
            f"{f['transport']}/{f['server_port']}" if f["server_port"] else f["transport"],
        )
        for f in flows
    }


def no_canaries(*texts: str) -> None:
    for text in texts:
        for canary in TRUTH["canaries"]:
            assert canary not in text


@pytest.fixture(scope="module", params=["vlan", "subnet"])
def learned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("learn") / f"policy-{request.param}.yaml"
    out = policy_cmd("learn", SAMPLE, "-o", path, "--zone-by", request.param, "--no-progress")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""  # the policy went to the file
    assert "4 zones, 6 allow rules" in out.stderr and "review before use" in out.stderr
    no_canaries(path.read_text(), out.stderr)
    return path


def test_learned_policy_loads_and_allows_exactly_the_cross_vlan_traffic(learned: Path) -> None:
    policy = load_policy(learned)
    assert policy.default == "deny"
    assert sorted(policy.zones) == ["vlan10", "vlan20", "vlan30", "vlan99"]
    if "subnet" in learned.name:
        for zone in policy.zones.values():
            assert not zone.vlans and zone.cidrs
        assert ipaddress.ip_address("10.30.0.10") in policy.zones["vlan30"].cidrs[0]
    else:
        assert [z.vlans for z in policy.zones.values()] == [(10,), (20,), (30,), (99,)]
    assert all(r.action == "allow" for r in policy.rules)
    covered = set()
    for rule in policy.rules:
        [service] = rule.services
        assert rule.dest.hosts, "servers are named: least privilege"
        for server in rule.dest.hosts:
            for pair in cross_vlan_flows():
                if ipaddress.ip_address(pair[1]) in server and pair[2] == service.name:
                    covered.add(pair)
    assert covered == cross_vlan_flows()
    types = {r.name: r.source.device_types for r in policy.rules}
    assert types["vlan30-ct-to-vlan10-tcp-11113"] == ("ct",)
    assert types["vlan20-medical-gateway-to-vlan10-tcp-2575"] == ("medical-gateway",)
    guest = next(r for r in policy.rules if r.source.zones == ("vlan99",))
    assert not guest.source.device_types  # the laptop says nothing about itself...
    assert [str(h) for h in guest.source.hosts] == ["10.99.0.57/32"]  # ...so: by address


def test_rules_carry_comments_with_counts_times_and_examples(learned: Path) -> None:
    text = learned.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# Segmentation policy proposed by `medtap policy learn`")
    i = lines.index("  - name: vlan20-medical-gateway-to-vlan10-tcp-2575")
    assert lines[i - 2].startswith("  # 2 flows, first seen 20") and "last seen" in lines[i - 2]
    assert lines[i - 1] == (
        "  # e.g. 10.20.1.10 (medical-gateway) -> 10.10.5.20 (his); "
        "10.20.2.20 (medical-gateway) -> 10.10.5.20 (his)"
    )
    assert lines[i + 1] == "    from: {zone: vlan20, device_type: medical-gateway}"
    assert lines[i + 2] == "    to: {zone: vlan10, hosts: [10.10.5.20]}"
    assert "  # review: client type unknown" in lines
    assert text.isascii()


def test_check_prints_the_normalised_policy_and_a_summary(learned: Path) -> None:
    out = policy_cmd("check", learned)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == (
        f"# {learned}: ok, 4 zones, 6 rules (6 allow, 0 deny), default deny"
    )
    assert parse_policy(out.stdout, "stdout") == load_policy(learned)  # normalised, same meaning


def test_analyze_with_the_learned_policy_reports_nothing(learned: Path) -> None:
    rc, report, _ = analyze(learned, "--fail-on-violation")
    assert rc == 0
    assert report["violations"] == []
    zones = {i["client"]: i["client_zone"] for i in report["flows"]["items"]}
    assert zones["10.99.0.57"] == "vlan99" and zones["10.30.1.11"] == "vlan30"


def test_a_rule_taken_out_comes_back_as_a_violation(learned: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(learned.read_text())
    data["rules"] = [r for r in data["rules"] if r["name"] != "vlan99-to-vlan30-tcp-104"]
    assert len(data["rules"]) == 5
    reduced = tmp_path / "reduced.yaml"
    reduced.write_text(yaml.safe_dump(data, sort_keys=False))
    alerts = tmp_path / "alerts.jsonl"
    rc, report, _ = analyze(reduced, "--fail-on-violation", "--alert", f"jsonl:{alerts}")
    assert rc == 3
    [v] = report["violations"]
    [truth] = TRUTH["segmentation_violations"]
    assert (v["client"]["ip"], v["server"]["ip"]) == (truth["client"], truth["server"])
    assert v["service"] == f"tcp/{truth['server_port']}" and v["rule"] == "default"
    assert (v["client"]["zone"], v["server"]["zone"]) == ("vlan99", "vlan30")
    assert [json.loads(line) for line in alerts.read_text().splitlines()] == [v]


def test_min_flows_leaves_rare_traffic_out_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    out = policy_cmd("learn", SAMPLE, "-o", path, "--min-flows", "2", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "1 allow rules" in out.stderr and "5 left out (fewer than 2 flows)" in out.stderr
    text = path.read_text()
    assert "# Seen across zones in fewer than 2 flows, so not allowed here;" in text
    assert "#   vlan99 -> vlan30 tcp/104: 1 flow" in text
    _, report, _ = analyze(path)
    found = {(v["client"]["ip"], v["server"]["ip"], v["service"]) for v in report["violations"]}
    gateways = {("10.20.1.10", "10.10.5.20", "tcp/2575"), ("10.20.2.20", "10.10.5.20", "tcp/2575")}
    assert found == cross_vlan_flows() - gateways


def test_learn_to_stdout(tmp_path: Path) -> None:
    out = policy_cmd("learn", SAMPLE, "--no-progress")
    assert out.returncode == 0, out.stderr
    assert parse_policy(out.stdout, "stdout").rules


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "zones:\n  a: {vlans: [10]}\nrules:\n  - name: r\n    to: {zone: imagin}\n"
            "    action: allow\n",
            ":5: rules[0].to.zone: unknown zone 'imagin'",
        ),
        ("zones: [\n", ":2: yaml: "),
        ("zones:\n  a: {vlans: [5000]}\n", ":2: zones.a.vlans[0]: VLAN 5000 out of range"),
    ],
)
def test_check_bad_policy_is_a_one_line_usage_error(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = policy_cmd("check", path)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.startswith(f"medtap: error: {path}{error}"), out.stderr
    assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr


def test_check_missing_file(tmp_path: Path) -> None:
    out = policy_cmd("check", tmp_path / "nope.yaml")
    assert out.returncode == 2
    assert (
        out.stderr == f"medtap: error: {tmp_path / 'nope.yaml'}: file: cannot read: "
        "No such file or directory\n"
    )


def test_learn_with_an_unreadable_input_fails_cleanly(tmp_path: Path) -> None:
    out = policy_cmd("learn", tmp_path / "missing.pcap", "-o", tmp_path / "p.yaml")
    assert out.returncode == 1
    assert out.stderr.startswith("medtap: error: ") and "Traceback" not in out.stderr
    assert not (tmp_path / "p.yaml").exists()


def test_importing_the_cli_module_has_no_side_effects() -> None:
    code = (
        "import sys, agent.cli_policy as m; "
        "print(type(m.policy_app).__name__, 'agent.cli' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "Typer False" and out.stderr == ""


# --- units: address blocks, names, hostile text -------------------------------------------


def test_subnets_narrow_where_vlans_share_address_space() -> None:
    nets = _cidrs(
        {
            10: ["10.0.0.1", "10.0.3.1"],
            20: ["10.0.1.5"],
            30: ["10.9.0.1"],
            40: ["10.9.0.2"],
            None: ["fd00::1", "fd00::2:1"],
        }
    )
    as_text = {k: [str(n) for n in v] for k, v in nets.items()}
    assert as_text == {
        10: ["10.0.0.0/24", "10.0.3.0/24"],  # a /22 would take in VLAN 20's host
        20: ["10.0.1.0/24"],
        30: ["10.9.0.1/32"],  # two VLANs in one /24: single hosts
        40: ["10.9.0.2/32"],
        None: ["fd00::/64"],
    }
    zones = [
        LearnedZone(f"vlan{k}" if k is not None else "untagged", k, cidrs=tuple(v))
        for k, v in nets.items()
    ]
    text = render(zones, [], [], zone_by="subnet", min_flows=1, sources=["x"])
    assert len(parse_policy(text).zones) == 5  # no overlaps: the loader accepts it


def test_hostile_text_cannot_escape_a_comment() -> None:
    sources = ["evil\nrules: [{name: x, action: deny}]\u2028#\x85.pcap"]
    text = render(
        [LearnedZone("vlan1", 1, vlans=(1,))], [], [], zone_by="vlan", min_flows=1, sources=sources
    )
    assert parse_policy(text).rules == ()
    assert comment("a\r\nb\u2028c") == "a??b?c"


def test_rule_names_are_valid_and_unique() -> None:
    taken: set[str] = set()
    long = Usage("z" * 100, "patient-monitor", "y" * 100, "tcp/65535")
    names = [
        rule_name(long, taken),
        rule_name(long, taken),
        rule_name(Usage("a", None, "b", "any"), taken),
    ]
    assert len(set(names)) == 3 and names[2] == "a-to-b-any"
    assert all(len(n) <= 128 for n in names)
    for name in names:
        text = f"zones:\n  a: {{vlans: [1]}}\nrules:\n  - name: {name}\n    action: allow\n"
        parse_policy(text)


def test_many_servers_give_a_zone_wide_rule() -> None:
    usage = Usage("a", "ct", "b", "tcp/104", flows=30, first_seen=0.0, last_seen=1.0)
    for i in range(MAX_RULE_HOSTS + 1):
        usage.servers[f"10.2.0.{i + 1}"] = "pacs"
        usage.pairs.append(("10.1.0.1", f"10.2.0.{i + 1}"))
    usage.clients["10.1.0.1"] = "ct"
    zones = [LearnedZone("a", 1, vlans=(1,)), LearnedZone("b", 2, vlans=(2,))]
    text = render(zones, [usage], [], zone_by="vlan", min_flows=1, sources=[])
    [rule] = parse_policy(text).rules
    assert rule.dest.zones == ("b",) and rule.dest.hosts == ()
    assert f"and {MAX_RULE_HOSTS + 1 - 3} more pairs" in text
