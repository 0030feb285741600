"""The crafted discovery captures (pcaps/discovery) through the real pipeline
(``python -m agent.cli analyze FILE --format json``) against their truth files, canaries in
report and logs, tshark as a reference for the fields the parsers read, the make script's
determinism and the data files' sources."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app
from parsers.dns import data_rows

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "pcaps" / "discovery"
PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "public"
QINQ = PUBLIC / "ndpi__dns_mixed_qinq.pcap"
CAPTURES = sorted(p.stem for p in HERE.glob("*.pcap"))
FIELDS = ("device_type", "vendor", "model", "software_version", "serial")
DATA_FILES = (
    "dns_query_hints.csv",
    "mdns_services.csv",
    "mdns_models.csv",
    "netbios_suffixes.csv",
    "snmp_enterprises.csv",
    "snmp_sysdescr.csv",
    "ssdp_device_types.csv",
)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _run(path: Path) -> tuple[dict[str, Any], str]:
    """``medtap analyze PATH --format json`` in-process (the CLI command itself, without a
    new interpreter per capture), with every log record down to DEBUG collected."""
    root = logging.getLogger()
    collect, level = _Collect(), root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    try:
        run = CliRunner().invoke(app, ["analyze", str(path), "--format", "json", "--no-progress"])
    finally:
        root.removeHandler(collect)
        root.setLevel(level)
    assert run.exit_code == 0, run.output[-2000:]
    doc: dict[str, Any] = json.loads(run.stdout)
    return doc, str(run.output) + "\n".join(collect.lines)


@cache
def analyzed() -> dict[Path, tuple[dict[str, Any], str]]:
    """Every discovery capture (and the public QinQ one) analysed once."""
    paths = [HERE / f"{name}.pcap" for name in CAPTURES]
    if QINQ.exists():
        paths.append(QINQ)
    return {path: _run(path) for path in paths}


def report(path: Path) -> dict[str, Any]:
    return analyzed()[path][0]


def truth(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((HERE / f"{name}.truth.json").read_text("utf-8"))
    return doc


def device_of(doc: dict[str, Any], ip: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [d for d in doc["devices"] if ip in d["ips"]]
    assert len(found) == 1, (ip, [d["id"] for d in found])
    return found[0]


def evidence(doc: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(ip, kind, value) for every evidence row of every device and each of its IPs, and the
    hearsay about addresses no device owns (DNS answers for hosts never seen)."""
    rows = {
        (ip, e["kind"], e["value"])
        for d in doc["devices"]
        for ip in d["ips"]
        for e in d["evidence"]
    }
    return rows | {(e["host"], e["kind"], e["value"]) for e in doc["hearsay"]}


def devices_params() -> list[Any]:
    out = []
    for name in CAPTURES:
        for want in truth(name)["devices"]:
            out.append(pytest.param(name, want, id=f"{name}-{want['name']}"))
    return out


# --- truth ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", CAPTURES)
def test_capture_reads_cleanly(name: str) -> None:
    doc = report(HERE / f"{name}.pcap")
    stats = doc["stats"]
    assert stats["packets"] == truth(name)["packets"]
    assert stats["malformed"] == {}
    assert stats["parser_errors"] == {}
    assert stats["parser_rejects"] == {}
    assert set(doc["flows"]["by_app"]) <= {name, "llmnr", "dns"}


@pytest.mark.parametrize(("name", "want"), devices_params())
def test_devices_match_truth(name: str, want: dict[str, Any]) -> None:
    dev = device_of(report(HERE / f"{name}.pcap"), want["ip"])
    if "mac" in want:
        assert dev["mac"] == want["mac"]
    for field in FIELDS:
        if field in want:
            assert dev[field] == want[field], field
    if "hostname" in want:
        assert want["hostname"] in dev["hostnames"]


@pytest.mark.parametrize("name", CAPTURES)
def test_reviewed_observations_are_present(name: str) -> None:
    got = evidence(report(HERE / f"{name}.pcap"))
    for want in truth(name)["observations"]:
        assert (want["host"], want["kind"], want["value"]) in got, want


@pytest.mark.parametrize("name", CAPTURES)
def test_absent_facts_are_absent(name: str) -> None:
    got = evidence(report(HERE / f"{name}.pcap"))
    for absent in truth(name)["absent"]:
        hits = [g for g in got if g[0] == absent["host"] and g[1] == absent["kind"]]
        if "value" in absent:
            hits = [g for g in hits if g[2] == absent["value"]]
        assert not hits, absent


@pytest.mark.parametrize("name", CAPTURES)
def test_canaries_appear_nowhere(name: str) -> None:
    """Community strings, sysContact, user names in <03> names, TXT notes: not in the
    report and not in the debug log."""
    _, text = analyzed()[HERE / f"{name}.pcap"]
    for canary in truth(name)["canaries"]:
        assert canary not in text
        assert canary.lower() not in text.lower()


def test_the_command_line_itself_keeps_secrets_out_of_its_output() -> None:
    """``python -m agent.cli analyze`` with debug logging on the capture with secrets."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "analyze",
            str(HERE / "snmp.pcap"),
            "--format",
            "json",
            "--no-progress",
            "-vv",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["devices"]
    for canary in truth("snmp")["canaries"]:
        assert canary not in run.stdout + run.stderr


def test_claim_confidences_stay_in_range() -> None:
    for path in analyzed():
        for dev in report(path)["devices"]:
            for e in dev["evidence"]:
                assert 0.0 <= e["confidence"] <= 1.0


# --- tshark as the reference decoder --------------------------------------------------
def tshark(path: Path, display: str, *fields: str) -> list[list[str]]:
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    args = ["tshark", "-r", str(path), "-Y", display, "-T", "fields"]
    args += ["-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        args += ["-e", f]
    run = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return [line.split("\t") for line in run.stdout.splitlines()]


def test_mdns_txt_and_hosts_agree_with_tshark() -> None:
    path = HERE / "mdns.pcap"
    got = evidence(report(path))
    rows = tshark(path, "mdns && ip && dns.flags.response == 1", "ip.src", "dns.txt", "dns.a")
    for src, txt, addresses in rows:
        for item in txt.split("|"):
            if item.startswith(("usb_MDL=", "model=")):
                assert (src, "mdns.model", item.split("=", 1)[1]) in got
            if item.startswith("usb_MFG="):
                assert (src, "mdns.vendor", item.split("=", 1)[1]) in got
        assert src in addresses.split("|")  # each announcer names its own address
    targets = tshark(path, "mdns && ip && dns.flags.response == 1", "ip.src", "dns.srv.target")
    for src, target in targets:
        name = target.split("|")[0].removesuffix(".local")
        assert (src, "mdns.hostname", name) in got


def test_netbios_names_agree_with_tshark() -> None:
    path = HERE / "netbios.pcap"
    got = evidence(report(path))
    rows = tshark(path, "nbns.flags.opcode == 5", "nbns.addr", "nbns.name")
    for addr, names in rows:
        name = names.split("|")[0]  # "WARD3-PC01<00>"
        text, suffix = name[:-4], name[-3:-1].lower()
        if suffix in ("00", "20") and text != "HOSPITAL":
            assert (addr, "netbios.hostname", text) in got
        if suffix == "03":
            assert not [g for g in got if g[2] == text]


def test_snmp_values_agree_with_tshark() -> None:
    path = HERE / "snmp.pcap"
    got = evidence(report(path))
    rows = tshark(path, "snmp.get_response_element", "ip.src", "snmp.name", "snmp.value.octets")
    for src, names, values in rows:
        octets = [bytes.fromhex(v).decode() for v in values.split("|") if v]
        if "1.3.6.1.2.1.1.5.0" in names.split("|"):
            assert any((src, "snmp.hostname", v) in got for v in octets)
    oids = tshark(path, "snmp.get_response_element", "ip.src", "snmp.value.oid")
    for src, values in oids:
        for oid in values.split("|"):
            if oid.startswith("1.3.6.1.4.1."):
                assert (src, "snmp.sys_object_id", oid) in got


def test_ssdp_headers_agree_with_tshark() -> None:
    path = HERE / "ssdp.pcap"
    got = evidence(report(path))
    for src, server, location in tshark(
        path, "ssdp && http.server", "ip.src", "http.server", "http.location"
    ):
        assert (src, "ssdp.server", server) in got
        assert (src, "ssdp.location", location) in got


# --- the make script and the data files -----------------------------------------------
def test_make_script_is_deterministic(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(HERE / "make_discovery_pcaps.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    for name in CAPTURES:
        for suffix in (".pcap", ".truth.json"):
            assert (tmp_path / f"{name}{suffix}").read_bytes() == (
                HERE / f"{name}{suffix}"
            ).read_bytes(), f"{name}{suffix} differs from the committed file"


@pytest.mark.parametrize("name", DATA_FILES)
def test_every_data_row_has_a_source(name: str) -> None:
    rows = data_rows(name)  # raises on a row without a source
    assert rows and all(len(r["source"]) > 10 for r in rows)


def test_snmp_enterprises_are_checked_against_wiresharks_registry_copy() -> None:
    copy = Path("/usr/share/wireshark/enterprises.tsv")
    if not copy.exists():
        pytest.skip("Wireshark's enterprises.tsv not installed")
    registry: dict[int, str] = {}
    for line in copy.read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            number, _, name = line.partition("\t")
            registry[int(number)] = name.strip()
    for row in data_rows("snmp_enterprises.csv"):
        registered = row["registered_name"].split(" (")[0]
        assert registry[int(row["number"])].startswith(registered[:12]), row["number"]


def test_dns_answers_never_create_devices() -> None:
    """Addresses only named in DNS answers are hearsay: on a hospital network the resolver's
    answers would otherwise add hundreds of devices nobody has seen."""
    doc = report(HERE / "dns.pcap")
    ips = {ip for d in doc["devices"] for ip in d["ips"]}
    assert "10.30.0.10" not in ips and "fd00:20::51" not in ips
    assert ("10.30.0.10", "dns.hostname", "srv-pacs01.hospital.local") in {
        (e["host"], e["kind"], e["value"]) for e in doc["hearsay"]
    }
