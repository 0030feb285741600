"""Issue 9: NIS2 evidence from traffic.

On pcaps/tls/tls-clinical.pcapng (real dcmtk, Python-ssl MLLP and HTTP peers, truth from
what they were told, pcaps/tls/README.md): the encryption numbers, the device-pair rows, the
violations of ``require: tls``, the compensating controls of the legacy gateway, the asset
register and the NetBox import records match the truth; no canary patient string reaches
any rendering; hostile host names are escaped. ``require: tls`` in the policy format and the
tracker is tested on its own, and ``medtap report --collector`` against a real collector.
"""

from __future__ import annotations

import csv
import functools
import io
import ipaddress
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from agent.nis2.document import nis2_document
from agent.nis2.netbox import netbox_document
from agent.nis2.observed import Observed, TlsSeen
from agent.nis2.register import register_rows, render_register_csv, render_register_json
from agent.nis2.render import render_html, render_json, render_markdown
from agent.nis2.sources import from_captures
from agent.policy.directory import Directory
from agent.policy.engine import EndpointFacts
from agent.policy.tracker import FlowEvent, ViolationTracker
from collector.policy import PolicyError, load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[1]
TLS_DIR = ROOT / "pcaps" / "tls"
CAPTURE = TLS_DIR / "tls-clinical.pcapng"
POLICY = TLS_DIR / "policy.yaml"
TRUTH = json.loads((TLS_DIR / "tls-clinical.truth.json").read_text("utf-8"))
SAMPLE = ROOT / "pcaps" / "sample" / "hospital-sample.pcapng"
SAMPLE_TRUTH = json.loads((ROOT / "pcaps/sample/hospital-sample.truth.json").read_text("utf-8"))
SAMPLE_POLICY = ROOT / "pcaps" / "policy" / "policy.yaml"


@functools.lru_cache(maxsize=2)
def observed(capture: Path = CAPTURE, policy: Path | None = POLICY) -> Observed:
    obs, inputs, _ = from_captures([capture], load_policy(policy) if policy else None, False)
    assert all(i.status == "ok" for i in inputs)
    return obs


@functools.lru_cache(maxsize=2)
def document(capture: Path = CAPTURE, policy: Path | None = POLICY) -> dict[str, Any]:
    return nis2_document(observed(capture, policy))


def renderings(capture: Path, policy: Path | None) -> dict[str, str]:
    obs, doc = observed(capture, policy), document(capture, policy)
    rows = register_rows(obs.devices)
    return {
        "md": render_markdown(doc),
        "html": render_html(doc),
        "json": render_json(doc),
        "register-csv": render_register_csv(rows),
        "register-json": render_register_json(rows),
        "netbox": json.dumps(netbox_document(obs.devices, "Klinikum", "medtap test")),
    }


# ---- 1. encryption in transit --------------------------------------------------------------------
def test_totals_per_protocol_match_truth() -> None:
    protocols = document()["encryption"]["protocols"]
    assert set(protocols) == set(TRUTH["summary"])
    for name, truth in TRUTH["summary"].items():
        got = protocols[name]
        assert got["connections"] == truth["connections"], name
        assert got["cleartext_connections"] == truth["cleartext"], name
        assert got["tls_connections"] == truth["tls"], name
        assert got["outdated_tls_connections"] == truth["outdated_tls"], name
        assert got["cleartext_share"] == round(100 * truth["cleartext"] / truth["connections"], 1)
        assert got["counted_by"] == "connections"
    hl7 = protocols["HL7"]
    assert (hl7["cleartext_messages"], hl7["cleartext_acks"]) == (
        TRUTH["summary"]["HL7"]["cleartext_messages"], TRUTH["summary"]["HL7"]["cleartext_acks"])
    assert "60% of HL7 connections travelled in cleartext" in hl7["sentence"]
    assert "6 HL7 messages and 6 ACKs" in hl7["sentence"]
    assert "messages inside TLS cannot be read" in hl7["sentence"]


def test_every_truth_flow_is_one_pair_row() -> None:
    pairs = document()["encryption"]["pairs"]
    assert len(pairs) == len(TRUTH["clinical_flows"])
    for t in TRUTH["clinical_flows"]:
        rows = [p for p in pairs if p["client"]["ip"] == t["client"]
                and p["server"]["ip"] == t["server"] and p["service"] == f"tcp/{t['server_port']}"]
        assert len(rows) == 1, t
        row = rows[0]
        assert row["protocol"] == t["protocol"], t
        assert row["connections"] == t["connections"], t
        if t["security"] == "cleartext":
            assert not row["encrypted"] and row["security"] == "cleartext", t
            assert row["tls_version"] is None
        else:
            assert row["encrypted"] and row["tls_version"] == t["security"], (t, row)
            assert row["outdated_tls"] == (t["security"] in ("TLS 1.0", "TLS 1.1")), t
        if t["inferred_from"] == "port":
            assert row["inferred"].startswith(f"inferred from port {t['server_port']}"), row
        elif t["inferred_from"] == "peer":
            assert row["inferred"].startswith("inferred from the"), row
        elif t["protocol"] != "FHIR":  # cleartext FHIR: HTTP, FHIR told by the banner
            assert row["inferred"] is None, row
        if t["messages"] is not None:
            assert (row["messages"], row["acks"]) == (t["messages"], t["acks"]), t
        assert row["bytes"] > 0 and row["first_seen"] <= row["last_seen"]


def test_outdated_tls_is_flagged_only_where_told() -> None:
    pairs = document()["encryption"]["pairs"]
    outdated = [(p["client"]["ip"], p["service"], p["tls_version"]) for p in pairs
                if p["outdated_tls"]]
    told = [(t["client"], f"tcp/{t['server_port']}", t["security"])
            for t in TRUTH["clinical_flows"] if t["security"] in ("TLS 1.0", "TLS 1.1")]
    assert outdated == told == [("10.20.2.20", "tcp/2575", "TLS 1.0")]


def test_require_tls_violations_match_truth() -> None:
    got = sorted((v["rule"], v["severity"], v["client"], v["server"], v["service"])
                 for v in document()["violations"])
    want = sorted((v["rule"], v["severity"], v["client"], v["server"], v["service"])
                  for v in TRUTH["violations"])
    assert got == want
    reasons = {v["rule"]: v["reason"] for v in document()["violations"]}
    assert "only over TLS; this hl7 flow was cleartext" in reasons["gateways-to-his"]
    assert "only over TLS; this dicom flow was cleartext" in reasons["images-to-pacs"]


# ---- 2. compensating controls --------------------------------------------------------------------
def control(doc: dict[str, Any], ip: str) -> dict[str, Any]:
    return next(c for c in doc["controls"] if ip in c["ips"])


def test_legacy_gateway_controls_match_truth() -> None:
    doc = document()
    for ip, truth in TRUTH["controls"].items():
        c = control(doc, ip)
        assert c["zone"] == truth["zone"]
        assert sorted({p["peer"] for p in c["peers"]}) == truth["peers"]
        assert c["services"] == truth["services"]
        assert len(c["violations"]) == truth["violations"]
        assert c["restricted_communication"] is False
        assert c["isolated_from_guest"] is truth["isolated_from_guest"]
        assert c["isolated_from_external"] is truth["isolated_from_external"]
        assert c["guest_peers"] == ["10.99.0.57"]
        products = " | ".join(f["product"] for f in c["outdated_findings"])
        assert c["outdated"] and "Windows CE" in products and "TLS" in products
        kinds = {f["evidence"].split(" = ")[0] for f in c["outdated_findings"]}
        assert {"http.os", "tls.client_versions"} <= kinds
        assert c["software_version"] == "012U000050"  # SFT-2, cleartext PCD-01


def test_devices_behind_a_gateway_share_its_controls() -> None:
    doc = document()
    gateway = control(doc, "10.20.2.20")
    pumps = [c for c in doc["controls"] if c["device_type"] == "infusion-pump"]
    assert len(pumps) == 2
    for pump in pumps:
        assert pump["behind_gateway"] == "mac:00:12:21:4a:00:10"
        assert pump["restricted_communication"] is False
        assert pump["isolated_from_guest"] is False
        assert pump["services"] == gateway["services"]


def test_clean_medical_devices_hold() -> None:
    doc = document()
    piic = control(doc, "10.20.1.10")  # TLS 1.3 out, cleartext ADT in, both allowed
    assert piic["restricted_communication"] is True and piic["isolated_from_guest"] is True
    assert not piic["outdated"]
    ct = control(doc, "10.30.1.11")
    assert [p["service"] for p in ct["peers"]] == ["tcp/11113", "tcp/2762"]


def test_without_a_policy_nothing_is_claimed_about_rules() -> None:
    doc = document(CAPTURE, None)
    c = control(doc, "10.20.2.20")
    assert c["restricted_communication"] is None and c["isolated_from_guest"] is None
    assert c["isolated_from_external"] is True  # no global addresses in the capture
    assert doc["policy"] is None and doc["violations"] == []


# ---- 3. asset register and NetBox ---------------------------------------------------------------
def test_register_groups_and_criticality() -> None:
    obs = observed()
    rows = register_rows(obs.devices)
    assert sum(r["count"] for r in rows) == len(obs.devices)
    by_label = {r["label"]: r for r in rows}
    pumps = by_label["2 infusion pumps (B. Braun Infusomat Space)"]
    assert pumps["criticality"] == "high" and pumps["zones"] == ["medical"]
    assert {d["serial"] for d in pumps["devices"]} == {"34300011", "34300012"}
    for row in rows:
        want = {"medical": "high", "clinical-it": "high", "infrastructure": "medium"}
        assert row["criticality"] == want.get(row["category"] or "", "low"), row["label"]
    table = list(csv.DictReader(io.StringIO(render_register_csv(rows))))
    assert [r["label"] for r in table] == [r["label"] for r in rows]
    spacecom = next(r for r in table if r["model"] == "SpaceCom")
    assert spacecom["software_versions"] == "012U000050" and spacecom["ips"] == "10.20.2.20"


def test_register_csv_defuses_formulas() -> None:
    rows = register_rows([{"id": "ip:1", "device_type": "unknown", "vendor": "=HYPERLINK(1)",
                           "ips": ["10.0.0.1"], "hostnames": ["@evil"]}])
    line = render_register_csv(rows).splitlines()[1]
    assert "'=HYPERLINK(1)" in line and "'@evil" in line


# What NetBox's bulk import forms require (netbox/dcim/forms/bulk_import.py and
# ipam/forms/bulk_import.py, NetBox 4.2+), written out here independently of agent.nis2.netbox.
NETBOX_REQUIRED = {
    "manufacturers": {"name", "slug"},
    "device_roles": {"name", "slug"},
    "device_types": {"manufacturer", "model", "slug"},
    "sites": {"name", "slug", "status"},
    "locations": {"site", "name", "slug", "status"},
    "devices": {"role", "manufacturer", "device_type", "status", "site"},
    "interfaces": {"device", "name", "type"},
    "mac_addresses": {"mac_address"},
    "ip_addresses": {"address", "status"},
}
DEVICE_STATUSES = {"offline", "active", "planned", "staged", "failed", "inventory",
                   "decommissioning"}  # dcim.choices.DeviceStatusChoices
SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


def test_netbox_records_have_what_the_import_needs() -> None:
    obs = observed()
    doc = netbox_document(obs.devices, "Klinikum Musterstadt", "medtap test")
    for section, fields in NETBOX_REQUIRED.items():
        assert doc[section], section
        for record in doc[section]:
            missing = {f for f in fields if record.get(f) in (None, "")}
            assert not missing, (section, record, missing)
            if "slug" in record:
                assert SLUG.match(record["slug"]) and len(record["slug"]) <= 100, record
    assert len(doc["devices"]) == len(obs.devices)
    assert {d["status"] for d in doc["devices"]} == {"staged"} <= DEVICE_STATUSES
    names = [d["name"] for d in doc["devices"]]
    assert len(set(names)) == len(names) and all(len(n) <= 64 for n in names)
    # every reference names a record of an earlier list
    makers = {m["name"] for m in doc["manufacturers"]}
    types = {(t["manufacturer"], t["model"]) for t in doc["device_types"]}
    roles = {r["name"] for r in doc["device_roles"]}
    sites = {s["name"] for s in doc["sites"]}
    locations = {(loc["site"], loc["name"]) for loc in doc["locations"]}
    for d in doc["devices"]:
        assert d["manufacturer"] in makers and (d["manufacturer"], d["device_type"]) in types
        assert d["role"] in roles and d["site"] in sites
        assert "location" not in d or (d["site"], d["location"]) in locations
    interfaces = {(i["device"], i["name"]) for i in doc["interfaces"]}
    for rec in doc["mac_addresses"] + doc["ip_addresses"]:
        assert (rec["device"], rec["interface"]) in interfaces, rec
    for mac in doc["mac_addresses"]:
        assert re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", mac["mac_address"])
    for ip in doc["ip_addresses"]:
        ipaddress.ip_interface(ip["address"])
        assert "/" in ip["address"]
    spacecom = next(d for d in doc["devices"] if d["device_type"] == "SpaceCom")
    assert (spacecom["manufacturer"], spacecom["role"], spacecom["location"]) == (
        "B. Braun", "medical gateway", "medical")
    assert doc["import_order"].index("devices") > doc["import_order"].index("device_types")


# ---- 4. renderings ------------------------------------------------------------------------------
@pytest.mark.parametrize("capture,policy,canaries", [
    (CAPTURE, POLICY, TRUTH["canaries"]),
    (SAMPLE, SAMPLE_POLICY, SAMPLE_TRUTH["canaries"]),
], ids=["tls", "sample"])
def test_no_canary_in_any_rendering(capture: Path, policy: Path, canaries: list[str]) -> None:
    for fmt, text in renderings(capture, policy).items():
        for canary in canaries:
            assert canary not in text, (fmt, canary)


def test_sample_capture_report_reads_cleartext_hl7_messages() -> None:
    protocols = document(SAMPLE, SAMPLE_POLICY)["encryption"]["protocols"]
    truth = SAMPLE_TRUTH["messages"]["hl7"]
    assert protocols["HL7"]["cleartext_share"] == 100.0
    assert protocols["HL7"]["cleartext_acks"] == truth["ACK"]
    assert protocols["HL7"]["cleartext_messages"] == sum(n for k, n in truth.items() if k != "ACK")
    assert protocols["DICOM"]["cleartext_connections"] == protocols["DICOM"]["connections"]


HOSTILE = '<script>alert(1)</script>|x"><img src=x onerror=alert(2)>'


def hostile_observed() -> Observed:
    dev = {"id": "mac:02:00:00:00:00:01", "mac": "02:00:00:00:00:01", "ips": ["10.20.9.9"],
           "vlans": [20], "hostnames": [HOSTILE], "category": "medical",
           "device_type": "patient-monitor", "vendor": HOSTILE, "model": "*bold* [x](y)",
           "software_version": "`1`\n# heading", "zone": "medical", "evidence": [
               {"kind": "http.x_powered_by", "value": f"FHIR {HOSTILE}"}],
           "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-01T00:01:00Z"}
    peer = {**dev, "id": "mac:02:00:00:00:00:02", "mac": "02:00:00:00:00:02",
            "ips": ["10.20.9.10"], "category": None, "device_type": "unknown", "evidence": []}
    flow = {"transport": "tcp", "vlan": 20, "client": "10.20.9.10", "server": "10.20.9.9",
            "server_port": 80, "app": "http", "connections": 1, "bytes_to_server": 10,
            "bytes_to_client": 10, "client_zone": HOSTILE, "server_zone": "medical",
            "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-01T00:01:00Z"}
    return Observed([dev, peer], [flow], [], TlsSeen(), None, None, [HOSTILE], "capture")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs


# Every element the report may contain: text structure, tables, the inline SVG picture.
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "p",
                "dl", "dt", "dd", "ul", "li", "table", "thead", "tbody", "tr", "th", "td",
                "figure", "figcaption", "svg", "defs", "marker", "path", "line", "text", "g",
                "rect"}


def test_html_escapes_hostile_names_and_loads_nothing() -> None:
    html = render_html(nis2_document(hostile_observed()))
    parsed = Tags()
    parsed.feed(html)
    assert parsed.tags <= ALLOWED_TAGS, parsed.tags - ALLOWED_TAGS  # no script, img, link
    names = {name for name, _ in parsed.attrs}
    assert not names & {"src", "href", "srcset", "action", "formaction", "style"}
    assert not any(name.startswith("on") for name in names)
    assert not any(v and re.search(r"url\((?!#)|javascript:", v) for _, v in parsed.attrs)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "<svg" in html  # the zone picture is drawn, its labels escaped too


def test_markdown_cells_cannot_break_tables_or_inject_html() -> None:
    md = render_markdown(nis2_document(hostile_observed()))
    assert "<script>" not in md and "&lt;script&gt;" in md
    columns = None
    for line in md.splitlines():  # every row of a table has its header's number of cells
        pipes = len(re.findall(r"(?<!\\)\|", line))
        if not line.startswith("|"):
            columns = None
        elif columns is None:
            columns = pipes
        else:
            assert pipes == columns, line
    assert HOSTILE.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")[:40] in md
    assert "\n# heading" not in md


# ---- policy: require: tls -----------------------------------------------------------------------
ZONES = """\
zones:
  clinical: {vlans: [10], cidrs: [10.10.0.0/16]}
  medical: {vlans: [20], cidrs: [10.20.0.0/16]}
rules:
"""
REQUIRE_RULE = """\
  - name: gw
    from: {zone: medical}
    to: {zone: clinical}
    services: [hl7]
    action: allow
    require: tls
"""


def test_require_tls_loads_and_round_trips() -> None:
    policy = parse_policy(ZONES + REQUIRE_RULE + "    severity: critical\n", "p.yaml")
    rule = policy.rules[0]
    assert (rule.require, rule.severity, rule.may_report) == ("tls", "critical", True)
    assert parse_policy(policy.to_yaml()) == policy
    plain = parse_policy(ZONES + REQUIRE_RULE, "p.yaml").rules[0]
    assert plain.severity == "high"  # the default severity, for the broken requirement


@pytest.mark.parametrize("extra,field,problem", [
    ("    require: ssl\n", "rules[0].require", "is not one of: tls"),
    ("    require: tls\n", "rules[0].require", "only allow rules have a requirement"),
])
def test_require_errors(extra: str, field: str, problem: str) -> None:
    text = ZONES + REQUIRE_RULE.replace("    action: allow\n    require: tls\n",
                                        "    action: " + ("deny" if "tls" in extra else "allow")
                                        + "\n" + extra)
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.yaml")
    assert info.value.field == field and problem in info.value.problem
    assert info.value.line is not None


def tracker() -> ViolationTracker:
    policy = parse_policy(ZONES + REQUIRE_RULE, "p.yaml")
    directory = Directory()
    directory.add(EndpointFacts("10.20.0.5", 20), 20)
    directory.add(EndpointFacts("10.10.0.9", 10), 10)
    return ViolationTracker(policy, directory)


def event(app: str | None, port: int = 2575) -> FlowEvent:
    return FlowEvent("10.20.0.5", "10.10.0.9", 20, "tcp", port, app, 1.0, 2.0, 1, 10, 1000)


def test_tracker_reports_cleartext_under_require_tls_only() -> None:
    t = tracker()
    t.observe(event("tls"), ended=True)
    assert t.finish() == []
    t = tracker()
    t.observe(event("hl7"), ended=True)
    (v,) = t.finish()
    assert (v.rule, v.severity, v.service, v.flows) == ("gw", "high", "tcp/2575", 1)
    t = tracker()  # another service: the require rule does not match, default deny does
    t.observe(event("hl7", 6661), ended=True)
    assert [v.rule for v in t.finish()] == ["default"]


def test_tracker_waits_for_the_app_of_a_live_flow() -> None:
    t = tracker()
    t.observe(event(None))  # flow start: nothing detected yet
    assert t.violations() == []
    t.observe(event("hl7"), ended=True)  # app detection spoke, then the flow ended
    assert [v.rule for v in t.finish()] == ["gw"]
    t = tracker()
    t.observe(event(None))
    t.observe(event(None), ended=True)  # never detected: cannot tell, counted
    assert t.finish() == [] and t.stats["tls_undetermined"] == 1


# ---- the command line and the collector ----------------------------------------------------------
def test_cli_writes_every_format(tmp_path: Path) -> None:
    for fmt in ("html", "json", "netbox"):  # the others: renderings() above, in-process
        out = tmp_path / f"report.{fmt}"
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli_report", str(CAPTURE), "--policy", str(POLICY),
             "--format", fmt, "-o", str(out), "--no-progress"],
            capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert done.returncode == 0, done.stderr
        assert out.stat().st_size > 500
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["encryption"]["protocols"]["HL7"]["cleartext_connections"] == 3
    bad = subprocess.run([sys.executable, "-m", "agent.cli_report", str(CAPTURE), "--policy",
                          str(ROOT / "README.md")], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("medtap: error:")
    neither = subprocess.run([sys.executable, "-m", "agent.cli_report"], capture_output=True,
                             text=True, cwd=ROOT, timeout=120)
    assert neither.returncode == 2


def test_report_from_a_real_collector(tmp_path: Path) -> None:
    """The TLS capture's report uploaded to a real collector (uvicorn on loopback) with the
    policy; ``medtap report --collector`` reads it back through the read API."""
    from tests.collector_fixtures import batch_from_report, medtap, run_server

    db = f"sqlite:///{tmp_path / 'c.db'}"
    medtap("collector", "migrate", "--database", db)
    sensor = medtap("collector", "add-sensor", "span-1", "--database", db).strip()
    for name, role in (("admin", "admin"), ("auditor", "viewer")):
        medtap("collector", "add-user", name, "--role", role, "--password-stdin",
               "--database", db, stdin="correct horse battery staple\n")
    _, _, rep = from_captures([CAPTURE], load_policy(POLICY), False)
    with run_server(db, tmp_path / "server.log") as server:
        tokens = {}
        for name in ("admin", "auditor"):
            with server.client() as c:
                r = c.post("/api/v1/login", json={"username": name,
                                                  "password": "correct horse battery staple"})
                assert r.status_code == 200, r.text
                tokens[name] = r.json()["access_token"]
        with server.client(sensor) as c:
            r = c.post("/api/v1/ingest", json=batch_from_report(rep, sensor="span-1"))
            assert r.status_code == 200, r.text
        with server.client(tokens["admin"]) as c:
            r = c.put("/api/v1/policy", content=POLICY.read_bytes(),
                      headers={"Content-Type": "application/yaml"})
            assert r.status_code in (200, 201), r.text
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli_report", "--collector", server.url,
             "--format", "json"], capture_output=True, text=True, cwd=ROOT, timeout=300,
            env={**os.environ, "MEDTAP_TOKEN": tokens["auditor"]})
        assert done.returncode == 0, done.stderr + server.log.read_text()[-2000:]
    assert tokens["auditor"] not in done.stdout + done.stderr
    doc = json.loads(done.stdout)
    local = document()
    assert doc["source"]["kind"] == "collector" and doc["policy"]["rules"] == 4
    for name, t in local["encryption"]["protocols"].items():
        remote = doc["encryption"]["protocols"][name]
        for key in ("connections", "cleartext_connections", "tls_connections"):
            assert remote[key] == t[key], (name, key)
    assert doc["encryption"]["messages_counted"] is False  # the collector keeps no counts
    assert sorted((v["rule"], v["client"], v["server"]) for v in doc["violations"]) == sorted(
        (v["rule"], v["client"], v["server"]) for v in local["violations"])
    c = control(doc, "10.20.2.20")
    assert c["isolated_from_guest"] is False and c["outdated"]
    for canary in TRUTH["canaries"]:
        assert canary not in done.stdout
