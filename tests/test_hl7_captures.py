"""HL7 parser against real captures: our loopback recordings (pcaps/hl7, truth beside each),
the public captures (skipped when absent), tshark's HL7 dissector and hl7apy as references."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from parsers.base import Observation, ParserState
from parsers.hl7 import CutMessage, Hl7Parser, SignatureCache, load_knowledge
from parsers.hl7.signature import Entry, cutter_view, hl7apy_view
from tests.hl7_feed import FedFlow, feed_pcap

HERE = Path(__file__).resolve().parents[1] / "pcaps" / "hl7"
PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "public"
CAPTURES = sorted(p.stem for p in HERE.glob("*.pcap"))
KNOWLEDGE = load_knowledge()
CLAIMS = ("device_type", "vendor", "model", "serial")


class RecordingCache(SignatureCache):
    """Keeps every cut it is asked about, so tests can check each message.

    With ``fast=False`` every message is cut and looked up (the reference path); with
    the fast path, frames of a known shape are answered without a cut, so only the
    messages that were cut are recorded.
    """

    def __init__(self, fast: bool = False) -> None:
        super().__init__(KNOWLEDGE, fast=fast)
        self.cuts: list[CutMessage] = []

    def lookup(self, cut: CutMessage) -> Entry:
        self.cuts.append(cut)
        return super().lookup(cut)


def run_capture(path: Path, fast: bool = True) -> tuple[list[FedFlow], RecordingCache]:
    cache = RecordingCache(fast)
    return feed_pcap(path, lambda key: Hl7Parser(key, cache)), cache


def all_obs(flows: list[FedFlow]) -> list[Observation]:
    return [o for f in flows for o in f.observations]


def best(obs: list[Observation], host: str, field: str) -> str | None:
    claims = [o for o in obs if o.host == host and o.kind == f"hl7.{field}"]
    return max(claims, key=lambda o: o.confidence).value if claims else None


def check_canaries(obs: list[Observation], canaries: list[str]) -> None:
    for o in obs:
        text = f"{o.kind} {o.host} {o.value} {o.raw}"
        for canary in canaries:
            assert canary not in text, f"canary {canary!r} leaked into {o.kind}"


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_matches_truth(name: str) -> None:
    truth = json.loads((HERE / f"{name}.truth.json").read_text("utf-8"))
    flows, cache = run_capture(HERE / f"{name}.pcap")
    obs = all_obs(flows)
    got = {(o.kind, o.host, o.value) for o in obs}
    for want in truth["observations"]:
        assert (want["kind"], want["host"], want["value"]) in got, want
    for device in truth["devices"]:
        host = device.get("ip") or device["id"]
        for field in CLAIMS:
            if field in device:
                assert best(obs, host, field) == device[field], (host, field)
        if "reached_via" in device:
            assert ("hl7.reached_via", host, device["reached_via"]) in got
    check_canaries(obs, truth["canaries"])
    sent: dict[str, int] = {}
    for flow in flows:
        for direction, count in flow.parser._messages.items():  # type: ignore[attr-defined]
            sender = flow.key.client if direction.value == "to_server" else flow.key.server
            if count and flow.parser.pdus != 0:
                sent[sender] = sent.get(sender, 0) + count
    for host, count in truth.get("messages", {}).items():
        assert sent.get(host) == count, (host, sent)
    by_client = {f.key.client: f for f in flows}
    for host in truth.get("rejected", []):
        assert by_client[host].parser.state is ParserState.REJECTED
    for host in truth.get("silent", []):
        assert by_client[host].observations == []
    assert cache.hl7apy_errors == {}


def test_each_fact_once_per_flow() -> None:
    flows, cache = run_capture(HERE / "hl7_pcd01_gateway.pcap")
    for flow in flows:
        keys = [(o.kind, o.host, o.value) for o in flow.observations]
        assert len(keys) == len(set(keys))
    assert cache.hits >= 3  # four same-shape ORUs on one flow: one hl7apy parse


@pytest.mark.parametrize("name", CAPTURES)
def test_hl7apy_agrees_with_cutter_on_every_message(name: str) -> None:
    _, cache = run_capture(HERE / f"{name}.pcap", fast=False)
    assert cache.cuts
    for cut in cache.cuts:
        ref, _ = hl7apy_view(cut)
        assert _trim(ref) == _trim(cutter_view(cut)), cut.header


def _trim(view: object) -> object:
    out = []
    for name, fields in view:  # type: ignore[attr-defined]
        norm = {}
        for pos, reps in fields.items():
            r = [list(c) for c in reps]
            for c in r:
                while c and not c[-1]:
                    c.pop()
            norm[pos] = r
        out.append((name, norm))
    return out


# --- public captures -----------------------------------------------------------------
PUBLIC_HL7 = [
    "ndpi__hl7",
    "tapirx__HL7-ADT",
    "tapirx__HL7-ADT-UDI-OBX",
    "tapirx__HL7-ADT-UDI-PRT",
    "tapirx__HL7-ORM",
    "tapirx__HL7-ORU",
]
PUBLIC_CANARIES = [
    "MOUSE",
    "MICKEY",
    "MINNIE",
    "135769",
    "123 Main",
    "Lake Buena Vista",
    "939-5555",
    "ohtoodles",
    "notdisney",
    "Penicillin",
    "Cat dander",
    "MOUSETOWN",
    "DUCK",
    "DONALD",
    "GOOFY",
    "XYZ LAB",
    "MOUSEHOLE",
    "CREATININE",
    "Hazel",
    "test@email.com",
    "Selenium",
    "7.0",
    "221",
]
needs_public = pytest.mark.skipif(not PUBLIC.is_dir(), reason="public captures not present")


@needs_public
@pytest.mark.parametrize("name", PUBLIC_HL7)
def test_public_mllp_on_6661(name: str) -> None:
    flows, cache = run_capture(PUBLIC / f"{name}.pcap")
    assert len(flows) == 1
    flow = flows[0]
    assert flow.key.server_port == 6661 and flow.parser.state is ParserState.CONFIRMED
    obs = flow.observations
    got = {(o.kind, o.host, o.value) for o in obs}
    sender, receiver = "10.0.0.155", "10.0.0.126"
    assert ("hl7.version", sender, "2.3") in got
    assert ("hl7.ack_code", receiver, "AA") in got
    assert ("hl7.role", receiver, "ack-only-receiver") in got
    if "ADT" in name or name.startswith("ndpi"):
        assert ("hl7.sending_application", sender, "SENDING_APPLICATION") in got
        assert ("hl7.sending_facility", sender, "SENDING_FACILITY") in got
        assert ("hl7.message_type", sender, "ADT^A01") in got
        assert ("hl7.sending_application", receiver, "RECEIVING_APPLICATION") in got
    if "ORM" in name:
        assert ("hl7.role", sender, "order-placer") in got
    if "ORU" in name:
        assert ("hl7.role", sender, "result-sender") in got
    check_canaries(obs, PUBLIC_CANARIES)
    for o in obs:
        assert o.port == (6661 if o.host == receiver else None)
    assert not cache.hl7apy_errors


@needs_public
@pytest.mark.parametrize("name", ["tapirx__HL7-ADT-UDI-OBX", "tapirx__HL7-ADT-UDI-PRT"])
def test_public_hospira_pump_is_found(name: str) -> None:
    flows, _ = run_capture(PUBLIC / f"{name}.pcap")
    obs = all_obs(flows)
    kind = "hl7.equipment_id" if "OBX" in name else "hl7.prt_udi"
    assert (kind, "10.0.0.155", "Hospira Plum A+") in {(o.kind, o.host, o.value) for o in obs}
    assert best(obs, "10.0.0.155", "device_type") == "infusion-pump"
    assert best(obs, "10.0.0.155", "vendor") == "Hospira"
    assert best(obs, "10.0.0.155", "model") == "Plum A+"


@needs_public
@pytest.mark.parametrize("name", ["mpa__unencrypted_hl7", "mpa__all_alerts_hl7"])
def test_public_mpa_syn_payloads_do_not_crash(name: str) -> None:
    flows, _ = run_capture(PUBLIC / f"{name}.pcap")
    assert flows
    for flow in flows:  # no handshake, one direction only: never confirmed
        assert flow.parser.state is not ParserState.CONFIRMED
    obs = all_obs(flows)
    got = {(o.kind, o.host, o.value) for o in obs}
    assert (
        "hl7.sending_application",
        "192.168.1.6" if "unenc" in name else "192.168.1.20",
        "DEVICE" if "unenc" in name else "SYS",
    ) in got


# --- tshark cross-check --------------------------------------------------------------
MSH_CHECKED = (3, 4, 5, 6, 9, 12)
TSHARK_CASES = [(HERE / f"{n}.pcap", 2575) for n in ("hl7_pcd01_gateway", "hl7_robustness")]
TSHARK_CASES += [(HERE / "hl7_his_lis_ris.pcap", 2576), (HERE / "hl7_odd_framing.pcap", 6661)]
TSHARK_CASES += [(PUBLIC / f"{n}.pcap", 6661) for n in PUBLIC_HL7]


def tshark_msh(path: Path, port: int) -> list[dict[int, str]]:
    """MSH-n (raw, as Wireshark's HL7 dissector shows it) of every dissected message."""
    pdml = subprocess.run(
        ["tshark", "-r", str(path), "-d", f"tcp.port=={port},hl7", "-Y", "hl7", "-T", "pdml"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    out = []
    for seg in ET.fromstring(pdml).iter("field"):
        if seg.get("name") != "hl7.segment" or not (seg.get("show") or "").startswith("MSH"):
            continue
        fields = {}
        for f in seg.iter("field"):
            if f.get("name") == "hl7.field":
                head, _, _ = (f.get("showname") or "").partition(":")
                n = int(head.split()[-1])
                fields[n] = f.get("show") or ""
        out.append(fields)
    return out


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize(("path", "port"), TSHARK_CASES, ids=lambda v: getattr(v, "stem", v))
def test_msh_fields_match_tshark(path: Path, port: int) -> None:
    if not path.exists():
        pytest.skip("capture not present")
    flows, cache = run_capture(path, fast=False)
    mine = []
    for cut in cache.cuts:
        if cut.header != "MSH":
            continue
        msh = cut.segments[0]
        mine.append({n: msh.get(n).decode(cut.codec or "utf-8", "replace") for n in MSH_CHECKED})
    ports = {f.key.server_port for f in flows if f.parser.pdus}
    theirs = [{n: m.get(n, "") for n in MSH_CHECKED} for m in tshark_msh(path, port)]
    if ports != {port}:  # only compare the flows tshark was told about
        mine = [m for m in mine if m in theirs]
    assert theirs and sorted(map(str, mine)) == sorted(map(str, theirs))


# --- end to end through `medtap analyze` ---------------------------------------------
@pytest.mark.skipif(shutil.which("medtap") is None, reason="medtap CLI not installed")
@pytest.mark.parametrize("name", CAPTURES)
def test_medtap_analyze_reports_truth(name: str) -> None:
    truth = json.loads((HERE / f"{name}.truth.json").read_text("utf-8"))
    proc = subprocess.run(
        ["medtap", "analyze", str(HERE / f"{name}.pcap"), "--format", "json", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for canary in truth["canaries"]:
        assert canary not in proc.stdout and canary not in proc.stderr, canary
    devices = {d["id"]: d for d in json.loads(proc.stdout)["devices"]}
    # Loopback frames all carry MAC 00:00:00:00:00:00, so IP endpoints merge into one
    # device by MAC; named devices (behind gateways) are compared field by field.
    for want in truth["devices"]:
        if "id" not in want:
            continue
        got = devices[want["id"]]
        for field in CLAIMS:
            if field in want:
                assert got[field] == want[field], (want["id"], field)
        assert want["reached_via"] in got["reached_via"]
