"""``medtap analyze --policy`` on the sample hospital capture with the issue's policy,
checked against the capture's ground truth (pcaps/sample/hospital-sample.truth.json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from agent.capture.files import open_capture
from agent.pipeline import Analyzer, Results
from agent.policy.apply import track_conversations
from collector.policy import parse_policy
from collector.schema import DeviceReport, FlowReport, ViolationReport
from tests.policy_fixtures import ISSUE_POLICY

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "pcaps" / "sample" / "hospital-sample.pcapng"
TRUTH: dict[str, Any] = json.loads(SAMPLE.with_suffix(".truth.json").read_text("utf-8"))
ZONE_OF_VLAN = {10: "clinical", 20: "medical", 30: "imaging", 99: "guest"}  # the issue's zones
HIS, PIIC = "10.10.5.20", "10.20.1.10"
Key = tuple[str, str, str, int | None]  # client, server, transport, server port


def key(flow: dict[str, Any]) -> Key:
    return (flow["client"], flow["server"], flow["transport"], flow["server_port"])


def vkey(violation: dict[str, Any]) -> Key:
    transport, _, port = violation["service"].partition("/")
    return (violation["client"]["ip"], violation["server"]["ip"], transport, int(port or 0) or None)


ALL_FLOWS = TRUTH["expected_flows"] + TRUTH["other_flows"]
# What the issue's policy denies in the sample: the truth's segmentation violations (guest
# laptop -> PACS DICOM), plus everything the HIS opens into the medical VLAN, because no
# rule allows clinical -> medical: its ADT push on tcp/2575 and its ping of the PIIC.
EXPECTED: set[Key] = {key(f) for f in TRUTH["segmentation_violations"]} | {
    key(f) for f in ALL_FLOWS if (f["client"], f["server"]) == (HIS, PIIC)
}


def medtap(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "analyze", *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "hospital.yaml"
    path.write_text(ISSUE_POLICY, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(policy_file: Path) -> subprocess.CompletedProcess[str]:
    return medtap(SAMPLE, "--policy", policy_file, "--format", "json")


@pytest.fixture(scope="module")
def report(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert run.returncode == 0, run.stderr
    doc: dict[str, Any] = json.loads(run.stdout)
    return doc


@cache
def analysed() -> Results:
    analyzer = Analyzer()
    analyzer.run(open_capture(SAMPLE).frames())
    return analyzer.finish()


def test_the_expected_violations_and_nothing_else(report: dict[str, Any]) -> None:
    assert {key(f) for f in TRUTH["segmentation_violations"]} < EXPECTED
    assert len(EXPECTED) == 3
    found = [vkey(v) for v in report["violations"]]
    assert len(found) == len(set(found)), "a violation was reported twice"
    assert set(found) == EXPECTED
    # every other flow of the truth, cross-VLAN ones included, is silent
    silent = {key(f) for f in ALL_FLOWS} - EXPECTED
    assert {key(f) for f in TRUTH["expected_cross_vlan_flows"]} & silent
    assert not silent & set(found)


def test_guest_laptop_to_pacs(report: dict[str, Any]) -> None:
    (truth,) = TRUTH["segmentation_violations"]
    (v,) = [v for v in report["violations"] if vkey(v) == key(truth)]
    assert (v["rule"], v["severity"], v["service"], v["app"]) == (
        "default", "high", "tcp/104", truth["app"],
    )  # fmt: skip
    assert v["client"]["zone"] == ZONE_OF_VLAN[truth["client_vlan"]] == "guest"
    assert v["server"]["zone"] == ZONE_OF_VLAN[truth["server_vlan"]] == "imaging"
    assert (v["client"]["vlan"], v["server"]["vlan"]) == (
        truth["client_vlan"],
        truth["server_vlan"],
    )
    assert v["server"]["device_type"] == "pacs"
    assert "guest" in v["reason"] and "imaging" in v["reason"] and "deny" in v["reason"]


def test_his_adt_push_into_the_medical_vlan(report: dict[str, Any]) -> None:
    (v,) = [v for v in report["violations"] if vkey(v) == (HIS, PIIC, "tcp", 2575)]
    assert (v["rule"], v["severity"], v["app"]) == ("default", "high", "hl7")
    assert (v["client"]["zone"], v["server"]["zone"]) == ("clinical", "medical")
    assert v["client"]["device_type"] == "his"
    assert v["server"]["device_type"] == "medical-gateway"


def test_a_routed_flow_counts_once(report: dict[str, Any]) -> None:
    """Each violating flow crossed the router, so the mirror saw it on both VLANs: the
    violation reports the larger copy, not the sum of the two."""
    for v in report["violations"]:
        copies = [
            f for f in report["flows"]["items"]
            if (f["client"], f["server"]) == (v["client"]["ip"], v["server"]["ip"])
            and vkey(v)[2:] == (f["transport"], f["server_port"])
        ]  # fmt: skip
        assert sorted(f["vlan"] for f in copies) == sorted(
            {v["client"]["vlan"], v["server"]["vlan"]}
        )
        packets = [f["packets_to_server"] + f["packets_to_client"] for f in copies]
        assert v["flows"] == max(f["connections"] for f in copies) == 1
        assert v["packets"] == max(packets) < sum(packets)
        assert v["bytes"] == max(f["bytes_to_server"] + f["bytes_to_client"] for f in copies)
        assert v["first_seen"] == min(f["first_seen"] for f in copies)


def test_gateways_to_his_allowed_only_by_their_device_type(report: dict[str, Any]) -> None:
    """PIIC and SpaceCom -> HIS tcp/2575 match ``monitor-gateway-to-engine`` only as
    medical gateways. Offline the types are known at the end: the flows wait (pending) and
    are allowed once the classified devices arrive. Without the types they are denied."""
    gateways = {f["client"] for f in TRUTH["expected_cross_vlan_flows"] if f["server"] == HIS}
    assert gateways == {PIIC, "10.20.2.20"}
    assert not [v for v in report["violations"] if v["client"]["ip"] in gateways]
    assert report["stats"]["policy"]["flows_pending"] >= 2 * len(gateways)  # both copies

    results = analysed()
    policy = parse_policy(ISSUE_POLICY)
    typed = track_conversations(policy, results.devices, results.conversations)
    assert not [v for v in typed.violations() if v.client.ip in gateways]

    for dev in results.devices:  # the same capture, had nothing been classified
        if set(dev.ips) & gateways:
            dev.device_type = "unknown"
    untyped = track_conversations(policy, results.devices, results.conversations)
    denied = {v.client.ip: v for v in untyped.violations() if v.client.ip in gateways}
    assert set(denied) == gateways
    assert all((v.rule, v.service) == ("default", "tcp/2575") for v in denied.values())


def test_records_validate_against_the_wire_contract(report: dict[str, Any]) -> None:
    assert report["violations"]
    for v in report["violations"]:
        ViolationReport.model_validate(v)
    for dev in report["devices"]:
        DeviceReport.model_validate(dev)
    for item in report["flows"]["items"]:
        FlowReport.model_validate(item)


def test_zones_on_devices_and_flows(report: dict[str, Any]) -> None:
    by_ip = {d["ips"][0]: d for d in report["devices"] if len(d["ips"]) == 1}
    for want in TRUTH["devices"]:
        if "ip" in want:
            assert by_ip[want["ip"]]["zone"] == ZONE_OF_VLAN[want["vlan"]], want["name"]
    router = next(d for d in report["devices"] if d["is_router"])
    assert set(router["zone"].split(",")) == set(ZONE_OF_VLAN.values())
    for dev in report["devices"]:
        if dev["id"].startswith("device:") and dev["reached_via"]:
            assert dev["zone"] == "medical"  # monitors and pumps behind the gateways
    items = {(key(f), f["vlan"]): f for f in report["flows"]["items"]}
    for f in ALL_FLOWS:
        for vlan in {f["client_vlan"], f["server_vlan"]}:
            item = items[(key(f), vlan)]
            assert item["client_zone"] == ZONE_OF_VLAN[f["client_vlan"]]
            assert item["server_zone"] == ZONE_OF_VLAN[f["server_vlan"]]


def test_table_lists_the_violations(policy_file: Path) -> None:
    run = medtap(SAMPLE, "--policy", policy_file)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("Violations")))
    rows = [line for line in lines[start:] if "default" in line]
    assert len(rows) == len(EXPECTED)
    row = next(r for r in rows if "10.99.0.57" in r)
    for word in ("high", "10.30.0.10 (pacs)", "tcp/104 (dicom)", "guest → imaging", "│ 1 "):
        assert word in row, (word, row)


def test_allow_all_policy(tmp_path: Path) -> None:
    path = tmp_path / "open.yaml"
    path.write_text("zones:\n  all: {cidrs: [10.0.0.0/8]}\ndefault: allow\n", encoding="utf-8")
    run = medtap(SAMPLE, "--policy", path, "--fail-on-violation")
    assert run.returncode == 0, run.stderr
    assert "No segmentation violations" in run.stdout


def test_without_policy_nothing_changes() -> None:
    run = medtap(SAMPLE, "--format", "json")
    doc = json.loads(run.stdout)
    assert doc["violations"] == [] and "policy" not in doc["stats"]
    assert all("zone" not in d for d in doc["devices"])
    assert all("client_zone" not in f for f in doc["flows"]["items"])


def test_fail_on_violation_exits_3(policy_file: Path, tmp_path: Path) -> None:
    run = medtap(SAMPLE, "--policy", policy_file, "--fail-on-violation", "-f", "json")
    assert run.returncode == 3, run.stderr
    assert len(json.loads(run.stdout)["violations"]) == len(EXPECTED)  # report still written
    missing = tmp_path / "gone.pcap"  # an input failed: that is exit 1, not 3
    run = medtap(SAMPLE, missing, "--policy", policy_file, "--fail-on-violation", "-f", "json")
    assert run.returncode == 1


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("zones:\n  a: {vlans: [1]}\nrules:\n  - {name: x, to: {zone: b}, action: deny}\n", ":4:"),
        ("zones:\n  a: {vlans: [1], cidrs: [10.0.0.0/33]}\n", ":2:"),
        ("zones: [\n", ":2:"),
    ],
)
def test_bad_policy_is_one_line_exit_2_and_nothing_is_read(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    run = medtap(SAMPLE, "--policy", path)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith(f"medtap: error: {path}{where}")


def test_usage_errors(tmp_path: Path) -> None:
    run = medtap(SAMPLE, "--policy", tmp_path / "absent.yaml")
    assert run.returncode == 2 and "cannot read" in run.stderr and run.stdout == ""
    run = medtap(SAMPLE, "--fail-on-violation")
    assert run.returncode == 2 and "needs --policy" in run.stderr


def test_alert_sink_gets_each_violation_once(policy_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("collector.sinks")
    out = tmp_path / "alerts.jsonl"
    run = medtap(
        SAMPLE, "--policy", policy_file, "--alert", f"jsonl:{out}", "-f", "json", "-o",
        tmp_path / "r.json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    alerts = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    report = json.loads((tmp_path / "r.json").read_text("utf-8"))
    assert sorted(map(vkey, alerts)) == sorted(map(vkey, report["violations"]))
    by_key = {vkey(v): v for v in report["violations"]}
    for alert in alerts:
        want = by_key[vkey(alert)]
        for field in ("rule", "severity", "service", "flows", "packets", "first_seen"):
            assert alert[field] == want[field], field
        assert alert["client"]["device_type"] == want["client"]["device_type"]
    bad = medtap(SAMPLE, "--policy", policy_file, "--alert", "carrier-pigeon:x")
    assert bad.returncode == 2 and bad.stdout == "" and "Traceback" not in bad.stderr


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_no_canary_in_policy_output(policy_file: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "alerts.jsonl"
    args: list[str | Path] = [SAMPLE, "--policy", policy_file, "-f", fmt]
    try:
        import collector.sinks  # noqa: F401

        args += ["--alert", f"jsonl:{out}"]
    except ImportError:
        pass
    run = medtap(*args)
    assert run.returncode == 0, run.stderr
    texts = [run.stdout, run.stderr, out.read_text("utf-8") if out.exists() else ""]
    for canary in TRUTH["canaries"]:
        for text in texts:
            assert canary not in text, canary
