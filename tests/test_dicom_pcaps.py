"""DICOM parser on real captures (pcaps/dicom, recorded by make_dicom_pcaps.py) vs ground truth,
Wireshark's DICOM dissector, and the public tapirx captures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from parsers.base import ParserState
from parsers.registry import Probe
from tests.dicom_feed import FedFlow, feed_pcap

PCAPS = Path(__file__).resolve().parents[1] / "pcaps" / "dicom"
PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "public"
CAPTURES = sorted(p.stem for p in PCAPS.glob("*.pcap"))


def truth(name: str) -> dict[str, list]:  # type: ignore[type-arg]
    return json.loads((PCAPS / f"{name}.truth.json").read_text())


def observed(name: str) -> list[FedFlow]:
    return feed_pcap(PCAPS / f"{name}.pcap")


def test_every_capture_has_truth_and_is_small() -> None:
    assert len(CAPTURES) >= 10
    for name in CAPTURES:
        assert (PCAPS / f"{name}.truth.json").exists()
        assert (PCAPS / f"{name}.pcap").stat().st_size < 300_000


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_matches_truth(name: str) -> None:
    expected = truth(name)
    flows = observed(name)
    assert flows
    obs = [o for f in flows for o in f.observations]
    for flow in flows:
        assert flow.probe is Probe.MATCH, flow.key  # payload detection, whatever the port
        assert flow.parser.state is ParserState.CONFIRMED, flow.parser.reject_reason
    got = {(o.kind, o.host, o.value) for o in obs}
    missing = [o for o in expected["observations"]
               if (o["kind"], o["host"], o["value"]) not in got]
    assert not missing
    for device in expected["devices"]:
        mine = [o for o in obs if o.host == device["ip"]]
        aes = {o.value for o in mine if o.kind in ("dicom.calling_ae_title",
                                                     "dicom.called_ae_title")}
        assert set(device["ae_titles"]) <= aes
        for field in ("device_type", "vendor", "model", "software_version"):
            if device[field] is None:
                continue
            claims = [o for o in mine if o.kind == f"dicom.{field}"]
            best = max(claims, key=lambda o: o.confidence)
            assert best.value == device[field], (device["ip"], field, claims)


@pytest.mark.parametrize("name", CAPTURES)
def test_canaries_never_in_output(name: str) -> None:
    canaries = truth(name)["canaries"]
    text = repr([f.observations for f in observed(name)])
    assert canaries and not [c for c in canaries if c in text]


def test_split_header_first_segment_is_six_bytes() -> None:
    (flow,) = observed("split_header")
    assert flow.first_segment_sizes[0] == 6 and flow.probe is Probe.MATCH


def test_small_pdu_capture_has_a_data_set_over_many_pdvs() -> None:
    (flow,) = observed("small_pdu")
    assert flow.parser.pdus > 12 and not flow.parser.stats.get("dataset_capped")


def test_big_pdu_of_the_cr_store_is_skipped_not_buffered() -> None:
    cr = [f for f in observed("store_modalities") if f.key.client == "127.0.0.24"]
    assert cr[0].parser.stats["pdata_skipped"] >= 1


# ---- Wireshark cross-check -------------------------------------------------------------------
UID_IN_PARENS = re.compile(r"\(([0-9.]+)\)\s*$")
COMMAND = re.compile(r"\b([CN]-[A-Z-]+?-(?:RQ|RSP))\b")


def tshark_facts(path: Path, port: int) -> set[tuple[str, str, str]]:
    fields = ["ip.src", "dicom.pdu.type", "dicom.assoc.ae.calling", "dicom.assoc.ae.called",
              "dicom.userinfo.uid", "dicom.userinfo.version", "dicom.pctx.abss.syntax",
              "_ws.col.Info"]
    cmd = ["tshark", "-r", str(path), "-d", f"tcp.port=={port},dicom", "-Y", "dicom",
           "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=;"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    facts: set[tuple[str, str, str]] = set()
    for line in out.splitlines():
        src, pdu_type, calling, called, uid, version, abstract, info = line.split("|")[:8]
        if pdu_type.startswith("0x01"):
            facts.add(("calling_ae_title", "", calling.strip()))
            facts.add(("called_ae_title", "", called.strip()))
            for a in filter(None, abstract.split(";")):
                m = UID_IN_PARENS.search(a)
                facts.add(("abstract_syntax", src, m.group(1) if m else a))
        if uid:
            facts.add(("implementation_class_uid", src, uid))
        if version:
            facts.add(("implementation_version_name", src, version))
        for command in COMMAND.findall(info):
            facts.add(("command", src, command))
    return facts


def our_facts(flows: list[FedFlow]) -> set[tuple[str, str, str]]:
    facts: set[tuple[str, str, str]] = set()
    for flow in flows:
        for o in flow.observations:
            kind = o.kind.removeprefix("dicom.")
            if kind in ("calling_ae_title", "called_ae_title"):
                facts.add((kind, "", o.value))
            elif kind in ("abstract_syntax", "implementation_class_uid",
                          "implementation_version_name"):
                facts.add((kind, o.host, o.value))
            elif kind == "command":
                facts.add((kind, o.host, o.value.split()[0]))
    return facts


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", CAPTURES)
def test_agrees_with_wireshark(name: str) -> None:
    flows = observed(name)
    port = flows[0].key.server_port
    theirs = tshark_facts(PCAPS / f"{name}.pcap", port)
    ours = our_facts(flows)
    assert theirs, "tshark decoded nothing"
    assert ours == theirs


# ---- public captures -------------------------------------------------------------------------
TAPIRX = {
    "tapirx__dicom_arq_1_find_testclient.pcap": "testclient",
    "tapirx__dicom_arq_2_get_testclient.pcap": "testclient",
    "tapirx__dicom_arq_3_find_bogus_local.pcap": "bogus_local",
    # Despite its name this file's A-ASSOCIATE-RQ says testclient -> testserver (tshark agrees).
    "tapirx__dicom_arq_4_get_bogus_local.pcap": "testclient",
}


@pytest.mark.skipif(not PUBLIC.is_dir(), reason="shared public captures not present")
@pytest.mark.parametrize("name", sorted(TAPIRX))
def test_public_tapirx_association_requests(name: str) -> None:
    flows = feed_pcap(PUBLIC / name)
    obs = [o for f in flows for o in f.observations]
    assert any(f.probe is Probe.MATCH for f in flows)
    assert all(f.parser.state is not ParserState.REJECTED for f in flows)
    calling = {o.value for o in obs if o.kind == "dicom.calling_ae_title"}
    assert calling == {TAPIRX[name]}
    kinds = {o.kind for o in obs}
    assert {"dicom.called_ae_title", "dicom.abstract_syntax",
            "dicom.implementation_class_uid"} <= kinds


# ---- end to end through `medtap analyze` -------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("medtap") is None, reason="medtap CLI not installed")
@pytest.mark.parametrize("name", ["store_modalities", "mwl", "find_study_root", "split_header"])
def test_medtap_analyze_carries_dicom_evidence(name: str) -> None:
    run = subprocess.run(["medtap", "analyze", str(PCAPS / f"{name}.pcap"), "--format", "json"],
                         capture_output=True, text=True, timeout=300)
    if run.returncode != 0 or not run.stdout.lstrip().startswith("{"):
        pytest.skip(f"medtap analyze not usable yet (rc={run.returncode})")
    report = json.loads(run.stdout)
    expected = truth(name)
    text = run.stdout + run.stderr
    assert not [c for c in expected["canaries"] if c in text]
    for device in expected["devices"]:
        (mine,) = [d for d in report["devices"] if device["ip"] in d.get("ips", [])]
        evidence = {(e["kind"], e["value"]) for e in mine["evidence"]}
        wanted = {(o["kind"], o["value"]) for o in expected["observations"]
                  if o["host"] == device["ip"]}
        assert wanted <= evidence, wanted - evidence
        if len(mine.get("ips", [])) > 1:
            continue  # loopback: every endpoint shares MAC 00:00:00:00:00:00 and merges
        for field in ("device_type", "vendor"):
            if device[field] is not None:
                assert mine[field] == device[field], (device["ip"], field)
