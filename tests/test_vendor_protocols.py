"""Vendor medical-device protocols (parsers/vendor): the signature table, annotated hex
fixtures for each message shape, the reference generator's placeholder chatter, property
tests (arbitrary bytes never raise), the public captures (nothing is claimed there), and
the crafted captures in pcaps/vendor through the real pipeline against their truth."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.base import Direction, FlowKey, Observation, ParserState
from parsers.registry import Probe, default_registry
from parsers.vendor import CARESCAPE_SPEC, INTELLIVUE_SPEC, signatures
from parsers.vendor.ge_carescape import CarescapeParser
from parsers.vendor.ge_carescape import classify as carescape_classify
from parsers.vendor.ge_carescape import probe as carescape_probe
from parsers.vendor.philips_intellivue import IntelliVueParser, normalise_model
from parsers.vendor.philips_intellivue import classify as intellivue_classify
from parsers.vendor.philips_intellivue import probe as intellivue_probe
from parsers.vocabulary import canonical_device_type

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "pcaps" / "vendor"
PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "public"
CANARY = "CANARY^PATIENT"


def h(annotated: str) -> bytes:
    """Hex from an annotated fixture: everything after '#' on a line is a comment."""
    return bytes.fromhex("".join(re.sub(r"#.*", "", line) for line in annotated.splitlines()))


# --- fixtures -----------------------------------------------------------------------------
# Connect Indication (PIPG ch. 3, ch. 5), broadcast by an MX800 at 10.20.1.21 to UDP 24005.
CONNECT_INDICATION = h("""
    00000100                  # Nomenclature (not checked)
    0001 004a                 # ROapdus: ro_type ROIV_APDU, length 74 = rest of datagram
    0000 0000 0044            # ROIVapdu: invoke_id 0, CMD_EVENT_REPORT, length 68
    0021 0000 0000            # EventReportArgument.managed_object: NOM_MOC_VMS_MDS, ctx 0, h 0
    0012d687                  #   event_time
    0d17 0036                 #   event_type NOM_NOTI_CONN_INDIC, length 54
    0003 0032                 # ConnectIndInfo AttributeList: 3 AVAs, 50 bytes
    0986 0004 0001 114d       # NOM_ATTR_SYS_TYPE: NOM_PART_OBJ, 4429 multi-parameter monitor MDS
    f101 0014 0002 0010       # NOM_ATTR_PCOL_SUPPORT: 2 entries, 16 bytes
      0001 0001 5e29 0000     #   AP_ID_ACSE, TP_ID_UDP, port 24105, no options
      0005 0001 5e29 0000     #   AP_ID_DATA_OUT, TP_ID_UDP, port 24105, no options
    f100 000e                 # NOM_ATTR_NET_ADDR_INFO, 14 bytes
      0009fb3a1201            #   MAC 00:09:fb:3a:12:01
      0a140115 ffffff00       #   IP 10.20.1.21, subnet 255.255.255.0
""")

# The PIPG's Association Request example (ch. 5), byte for byte as reproduced by
# finlaywashere/PyVSCapture: CN_SPDU_SI 0x0D, LI 0xEC = 236 bytes follow.
ASSOCIATION_REQUEST = h("""
    0d ec                            # Session header: CN_SPDU_SI, LI 236
    0508130100160102800014020002     # session data
    c1 dc                            # presentation header, LI 220
    3180a0808001010000a280a003000001a4803080020101060452010001308006025101000000003080020102
    060c 2a8648ce14 020100000001 01  # OID 1.2.840.10004.2.1.0.0.0.1.1 (IEEE 1073 arc)
    3080060c2a8648ce140201000000020100000000000061803080020101a0806080a180
    060c 2a8648ce14 020100000003 01  # application context 1.2.840.10004.2.1.0.0.0.3.1
    0000be802880060c2a8648ce14020100000001010201028148
    80000000 40000000 00000000 80000000 20000000  # MDSEUserInfoStd: MDDL v1, NOMEN, -, CLIENT, HOT
    0000000001002c0001002880000000000003e8000009c4000003e8ffffffff600000000001000cf00100088c
    000000000000000000000000000000000000000000000000  # trailer
""")

# MDS Create Event Report (PIPG ch. 5) from the monitor after association, UDP 24105.
MDS_CREATE = h("""
    e100 0002                 # SPpdu: session_id 0xE100, p_context_id 2
    0001 00c0                 # ROapdus: ROIV_APDU, length 192
    0001 0001 00ba            # ROIVapdu: invoke 1, CMD_CONFIRMED_EVENT_REPORT, length 186
    0021 0000 0000 0012d687   # EventReportArgument: NOM_MOC_VMS_MDS, event_time
    0d06 00ac                 #   event_type NOM_NOTI_MDS_CREAT, length 172
    0021 0000 0000            # MDSCreateInfo.managed_object
    0004 00a2                 # AttributeList: 4 AVAs, 162 bytes
    0928 0022                 # NOM_ATTR_ID_MODEL, 34 bytes
      0018 5068696c697073204d65646963616c2053797374656d7300  # 'Philips Medical Systems'
      0006 4d5838303000       #   model_number 'MX800' (NUL padded)
    092d 0038 0004 0034       # NOM_ATTR_ID_PROD_SPECN: 4 entries, 52 bytes
      0001 0008 000a 44453132333435363738   # SERIAL_NUMBER, ID_COMP_PRODUCT, 'DE12345678'
      0002 0008 0006 383635323430           # PART_NUMBER, ID_COMP_PRODUCT, '865240'
      0003 0050 0004 412e3031               # HW_REVISION, ID_COMP_MAIN_BD, 'A.01' (not read)
      0004 0058 0008 4d2e30302e303300       # SW_REVISION, ID_COMP_APPL_SW, 'M.00.03' NUL
    091e 0018 0016            # NOM_ATTR_ID_BED_LABEL: String of 22 bytes, UTF-16BE
      004900430055 0033002d 004200450044 00300037 0000   # 'ICU3-BED07' NUL
    f129 0020 001e            # NOM_ATTR_PT_NOTES1 (not allow-listed): never read
      0043 0041 004e 0041 0052 0059 005e 0050 0041 0054 0049 0045 004e 0054 0000  # canary
""")

# A poll result (RORS_APDU) whose body holds canary text: only its shape is recognised.
POLL_RESULT = h("""
    e100 0002 0002 0034       # SPpdu, ROapdus RORS_APDU, length 52
    0002 0007 002e            # RORSapdu: invoke 2, CMD_CONFIRMED_ACTION, length 46
    0000000000000000000000000000
    001e 0043004100 4e0041005200 59005e0050 0041005400 490045004e00 540000   # canary
""")

# CARESCAPE time sync (Vocera Carescape Adapter reference), 64 bytes, 1-based positions.
TIME_SYNC = h("""
    000000000000              # bytes 1-6: undocumented
    0a14020a                  # bytes 7-10: sender IPv4 10.20.2.10
    0000000000000000000000000000  # bytes 11-24: undocumented
    494355337c435331 0000000000   # bytes 25-37: 'ICU3|CS1' + NUL padding
    0000000000000000000000000000000000000000000000  # bytes 38-60: undocumented
    e9124c12                  # bytes 61-64: seconds since 1900 (not read)
""")

# What bench/make_hospital_pcap.py emits as "vendor chatter" (s_vendor): placeholder shapes
# that follow no published format, so none of them may be recognised.
GENERATOR_CONNECT = (
    b"\x0d\xec\x05\x08\x13\x00\x00\x00\x00\x01\x00\x40"
    + b"MX800\x00IntelliVue\x00SN00001234"
    + bytes(range(56))
)
GENERATOR_PUMP = (
    b'{"dev":"ALARIS-8015","sn":"524","seq":0,"state":"INFUSING","rate":12.5,"vtbi":300}'
)
GENERATOR_PUMP_ACK = b"\x06ACK\x00\x00\x00\x00"
GENERATOR_VENT = b"GEHC\x01\x02" + bytes(8) + bytes(88)

MONITOR, CLIENT = "10.20.1.21", "10.20.0.50"
BCAST_FLOW = FlowKey(MONITOR, 24005, "10.20.1.255", 24005, "udp", 20)
ASSOC_FLOW = FlowKey(CLIENT, 50123, MONITOR, 24105, "udp", 20)
CENTRAL = "10.20.2.10"


def facts(obs: list[Observation]) -> dict[tuple[str, str], tuple[str, float]]:
    return {(o.kind, o.host): (o.value, o.confidence) for o in obs}


# --- the signature table ---------------------------------------------------------------
def test_signature_table_rows_are_sourced_and_consistent() -> None:
    rows = signatures.load()
    assert {r.id for r in rows} >= {
        "intellivue.connect_indication",
        "intellivue.mds_create",
        "carescape.time_sync",
        "carescape.discovery",
        "navicare.vocera",
    }
    for row in rows:
        assert row.source.strip(), row.id
        assert row.meaning.strip(), row.id
        if row.device_type:
            assert canonical_device_type(row.device_type) == row.device_type, row.id
        if row.status == signatures.PARSED:
            assert row.terms and row.ports, row.id
        else:  # no public layout: never matches anything, ports alone decide nothing
            assert not row.terms and not row.matches(b"\x00" * 64), row.id


def test_signature_terms() -> None:
    sig = signatures.get("carescape.time_sync")
    assert sig.matches(TIME_SYNC)
    assert not sig.matches(TIME_SYNC + b"\x00")  # len=64
    assert signatures.get("intellivue.connect_indication").matches(CONNECT_INDICATION)
    with pytest.raises(ValueError):
        signatures._compile_term("bogus=1")


def test_registry_has_the_vendor_specs() -> None:
    registry = default_registry()
    assert registry.get("intellivue") is INTELLIVUE_SPEC
    assert registry.get("carescape") is CARESCAPE_SPEC
    assert INTELLIVUE_SPEC.port_hints == {24005, 24105}
    assert CARESCAPE_SPEC.port_hints == {2000}
    # documented-only ports are no hints: nothing would be listening for them
    assert not {7000, 12000} & (INTELLIVUE_SPEC.port_hints | CARESCAPE_SPEC.port_hints)


# --- IntelliVue --------------------------------------------------------------------------
def test_intellivue_classifies_each_shape() -> None:
    assert intellivue_classify(CONNECT_INDICATION) == "intellivue.connect_indication"
    assert intellivue_classify(ASSOCIATION_REQUEST) == "intellivue.association_request"
    assert intellivue_classify(MDS_CREATE) == "intellivue.mds_create"
    assert intellivue_classify(POLL_RESULT) == "intellivue.data_export"
    for data in (CONNECT_INDICATION, ASSOCIATION_REQUEST, MDS_CREATE, POLL_RESULT):
        assert intellivue_probe(Direction.TO_SERVER, data) is Probe.MATCH


@pytest.mark.parametrize(
    "data",
    [
        CONNECT_INDICATION[:-1],  # ROapdus length no longer matches
        CONNECT_INDICATION + b"\x00",
        b"\x0d\xed" + ASSOCIATION_REQUEST[2:],  # LI off by one
        ASSOCIATION_REQUEST.replace(bytes.fromhex("2a8648ce14"), bytes(5)),  # no 1073 OID
        MDS_CREATE[:4] + b"\x00\x04" + MDS_CREATE[6:],  # ro_type 4 does not exist
        b"",
        b"\xe1\x00",
    ],
)
def test_intellivue_rejects_broken_shapes(data: bytes) -> None:
    assert intellivue_classify(data) is None
    assert intellivue_probe(Direction.TO_SERVER, data) is Probe.NO


def test_connect_indication_facts() -> None:
    parser = IntelliVueParser(BCAST_FLOW)
    got = facts(parser.feed(Direction.TO_SERVER, CONNECT_INDICATION, 1.0))
    assert got[("intellivue.vendor", MONITOR)] == ("Philips", 0.8)  # the protocol is Philips'
    assert got[("intellivue.device_type", MONITOR)] == ("patient-monitor", 0.8)  # SYS_TYPE 4429
    assert got[("intellivue.role", MONITOR)][0] == "monitor"
    assert got[("intellivue.mac", MONITOR)][0] == "00:09:fb:3a:12:01"
    assert got[("intellivue.announced_ip", MONITOR)][0] == MONITOR
    assert got[("intellivue.data_export_port", MONITOR)][0] == "24105"
    assert ("intellivue.wireless", MONITOR) not in got
    assert parser.state is ParserState.CONFIRMED
    assert parser.feed(Direction.TO_SERVER, CONNECT_INDICATION, 2.0) == []  # said once per flow


def test_mds_create_reads_only_allow_listed_attributes() -> None:
    parser = IntelliVueParser(ASSOC_FLOW)
    obs = parser.feed(Direction.TO_CLIENT, MDS_CREATE, 1.0)
    got = facts(obs)
    assert got[("intellivue.vendor", MONITOR)] == ("Philips", 0.9)
    assert got[("intellivue.model", MONITOR)] == ("IntelliVue MX800", 0.9)
    assert got[("intellivue.serial", MONITOR)] == ("DE12345678", 0.9)
    assert got[("intellivue.software_version", MONITOR)] == ("M.00.03", 0.9)
    assert got[("intellivue.part_number", MONITOR)][0] == "865240"
    assert got[("intellivue.location", MONITOR)][0] == "ICU3-BED07"
    assert ("intellivue.hostname", MONITOR) not in got  # a bed label is a place
    raw = {o.raw for o in obs if o.kind == "intellivue.vendor"}
    assert raw == {"Philips Medical Systems"}
    text = " ".join(f"{o.kind} {o.value} {o.raw}" for o in obs)
    assert "CANARY" not in text and "A.01" not in text


def test_association_and_poll_results() -> None:
    parser = IntelliVueParser(ASSOC_FLOW)
    got = facts(parser.feed(Direction.TO_SERVER, ASSOCIATION_REQUEST, 1.0))
    assert got == {("intellivue.role", CLIENT): ("data-export-client", 1.0)}
    assert parser.feed(Direction.TO_CLIENT, POLL_RESULT, 1.1) == []  # shape known, never read
    assert parser.feed(Direction.TO_CLIENT, b"\x19\x2e" + bytes(46), 1.2) == []  # abort: skipped
    assert parser.skipped == 1 and parser.state is ParserState.CONFIRMED


def test_first_datagram_that_is_not_intellivue_rejects() -> None:
    parser = IntelliVueParser(ASSOC_FLOW)
    assert parser.feed(Direction.TO_SERVER, b"hello", 1.0) == []
    assert parser.state is ParserState.REJECTED


def test_model_names() -> None:
    assert normalise_model("MX800", "Philips") == "IntelliVue MX800"
    assert normalise_model("mp5sc", "Philips") == "IntelliVue MP5SC"
    assert normalise_model("M8007A", "Philips") == "M8007A"  # a product number stays as sent
    assert normalise_model("MX800", "MD PNP") == "MX800"


# --- CARESCAPE ---------------------------------------------------------------------------
def test_time_sync_broadcast_is_the_central_station() -> None:
    assert carescape_classify(TIME_SYNC) == "carescape.time_sync"
    flow = FlowKey(CENTRAL, 2000, "10.20.2.255", 2000, "udp", 20)
    got = facts(CarescapeParser(flow).feed(Direction.TO_SERVER, TIME_SYNC, 1.0))
    assert got[("carescape.vendor", CENTRAL)] == ("GE Healthcare", 0.7)
    assert got[("carescape.device_type", CENTRAL)] == ("central-station", 0.6)
    assert got[("carescape.role", CENTRAL)][0] == "time-master"
    assert got[("carescape.location", CENTRAL)][0] == "ICU3|CS1"
    assert ("carescape.hostname", CENTRAL) not in got


def test_time_sync_unicast_and_foreign_address() -> None:
    flow = FlowKey("10.20.2.41", 2000, CENTRAL, 2000, "udp", 20)
    got = facts(CarescapeParser(flow).feed(Direction.TO_SERVER, TIME_SYNC, 1.0))
    # the address inside (10.20.2.10) is not the sender's: said, and trusted less
    assert got[("carescape.announced_ip", "10.20.2.41")][0] == CENTRAL
    value, confidence = got[("carescape.vendor", "10.20.2.41")]
    assert value == "GE Healthcare" and confidence == pytest.approx(0.5)
    assert got[("carescape.role", "10.20.2.41")][0] == "time-sync-peer"
    assert ("carescape.device_type", "10.20.2.41") not in got


@pytest.mark.parametrize(
    "location",
    [b"ICU3CS1", b"|CS1", b"ICU3|CS1|X", b"ABCDEFGH|1", b"ICU3|1234567", b"IC\x01U|1"],
)
def test_time_sync_needs_a_unit_room_location(location: bytes) -> None:
    data = bytearray(TIME_SYNC)
    data[24:37] = location[:13].ljust(13, b"\x00")
    assert carescape_probe(Direction.TO_SERVER, bytes(data)) is Probe.NO


def test_time_sync_needs_a_unicast_address() -> None:
    for addr in (b"\x00\x00\x00\x00", b"\xe0\x00\x00\x01", b"\x7f\x00\x00\x01", b"\xff" * 4):
        data = TIME_SYNC[:6] + addr + TIME_SYNC[10:]
        assert carescape_probe(Direction.TO_SERVER, data) is Probe.NO


# --- the reference generator's placeholders ---------------------------------------------
@pytest.mark.parametrize(
    "data", [GENERATOR_CONNECT, GENERATOR_PUMP, GENERATOR_PUMP_ACK, GENERATOR_VENT]
)
def test_generator_placeholders_follow_no_published_shape(data: bytes) -> None:
    for spec in (INTELLIVUE_SPEC, CARESCAPE_SPEC):
        assert spec.probe(Direction.TO_SERVER, data) is Probe.NO


# --- properties --------------------------------------------------------------------------
FIXTURES = [CONNECT_INDICATION, ASSOCIATION_REQUEST, MDS_CREATE, POLL_RESULT, TIME_SYNC]


def _feed_all(data: bytes) -> None:
    for spec in (INTELLIVUE_SPEC, CARESCAPE_SPEC):
        assert spec.probe(Direction.TO_SERVER, data) in (Probe.MATCH, Probe.NO)
        for direction in Direction:
            parser = spec.factory(ASSOC_FLOW)
            out = parser.feed(direction, data, 0.0)
            assert isinstance(out, list)
            for o in out:
                assert CANARY not in o.value


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    _feed_all(data)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(FIXTURES),
    st.lists(st.tuples(st.integers(0, 299), st.integers(0, 255)), max_size=6),
    st.integers(0, 300),
)
def test_mutated_fixtures_never_raise(base: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(base)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    _feed_all(bytes(data[: max(cut, 1)]))
    _feed_all(bytes(data))


def test_a_confirmed_flow_survives_garbage() -> None:
    parser = IntelliVueParser(ASSOC_FLOW)
    parser.feed(Direction.TO_CLIENT, MDS_CREATE, 1.0)
    for junk in (b"", b"\x00", bytes(range(256)), MDS_CREATE[:40]):
        assert parser.feed(Direction.TO_CLIENT, junk, 2.0) == []
    assert parser.state is ParserState.CONFIRMED


# --- public captures: nothing of ours may fire ------------------------------------------
def _udp_payloads(path: Path) -> list[bytes]:
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    out: list[bytes] = []
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            if UDP in pkt:
                out.append(bytes(pkt[UDP].payload))
    return out


@pytest.mark.skipif(not PUBLIC.is_dir(), reason="shared public captures absent")
def test_public_captures_match_no_vendor_signature() -> None:
    checked = 0
    for path in sorted(PUBLIC.glob("*.pcap*")):
        for payload in _udp_payloads(path):
            checked += 1
            for spec in (INTELLIVUE_SPEC, CARESCAPE_SPEC):
                assert spec.probe(Direction.TO_SERVER, payload) is Probe.NO, path.name
    assert checked > 0


# --- crafted captures through the real pipeline ------------------------------------------
NAMES = sorted(p.stem for p in CAPTURES.glob("*.pcap"))
DEVICE_FIELDS = ("device_type", "vendor", "model", "software_version", "serial")


@cache
def analyze(name: str) -> tuple[dict[str, Any], str]:
    run = subprocess.run(
        [sys.executable, "-m", "agent.cli", "analyze", str(CAPTURES / f"{name}.pcap"),
         "--format", "json", "--no-progress"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    doc: dict[str, Any] = json.loads(run.stdout)
    return doc, run.stdout


def device_of(doc: dict[str, Any], ip: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [d for d in doc["devices"] if ip in d["ips"] and d["mac"]]
    assert len(found) == 1, (ip, [d["id"] for d in doc["devices"]])
    return found[0]


def test_every_capture_has_truth() -> None:
    assert NAMES == ["carescape", "intellivue", "navicare"]
    for name in NAMES:
        assert (CAPTURES / f"{name}.truth.json").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_capture_matches_truth(name: str) -> None:
    truth = json.loads((CAPTURES / f"{name}.truth.json").read_text("utf-8"))
    doc, text = analyze(name)
    assert not doc["stats"]["parser_errors"]
    for want in truth["devices"]:
        dev = device_of(doc, want["ip"])
        assert dev["mac"] == want["mac"]
        for field in DEVICE_FIELDS:
            if field in want:
                assert dev[field] == want[field], (want["ip"], field, dev[field])
    for want in truth["observations"]:
        dev = device_of(doc, want["host"])
        kinds = {(e["kind"], e["value"]) for e in dev["evidence"]}
        assert (want["kind"], want["value"]) in kinds, want
    for canary in truth["canaries"]:
        assert canary not in text
    for prefix in truth.get("absent_kind_prefixes", []):
        assert not [
            e for d in doc["devices"] for e in d["evidence"] if e["kind"].startswith(prefix)
        ]


def test_port_alone_claims_nothing() -> None:
    """Discovery heartbeats on 7000 and NaviCare on 12000 have no public layout: no claim."""
    doc, _ = analyze("carescape")
    assert doc["stats"]["apps"] == {"carescape": 2}  # two time-sync flows, no 7000 flow
    doc, _ = analyze("navicare")
    assert not doc["stats"]["apps"]
    dev = device_of(doc, "10.20.3.5")
    assert dev["device_type"] == "unknown"
    assert dev["vendor"] in (None, "Hill-Rom")  # the curated OUI table may suggest it


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_sees_the_same_datagrams() -> None:
    """tshark (no dissector for these protocols: it shows them as data) must see the same
    VLAN, ports and payload bytes that our classifier recognises."""
    rows = subprocess.run(
        ["tshark", "-r", str(CAPTURES / "intellivue.pcap"), "-T", "fields", "-E", "separator=|",
         "-e", "vlan.id", "-e", "ip.src", "-e", "udp.dstport", "-e", "data.data"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    shapes: dict[str, int] = {}
    for row in rows:
        vlan, src, dport, data = row.split("|")
        assert vlan == "20"
        shape = intellivue_classify(bytes.fromhex(data))
        if shape:
            shapes[shape] = shapes.get(shape, 0) + 1
        if dport == "24005":
            assert shape == "intellivue.connect_indication", src
    assert shapes["intellivue.connect_indication"] == 6
    assert shapes["intellivue.association_request"] == 1
    assert shapes["intellivue.association_response"] == 1
    assert shapes["intellivue.mds_create"] == 1
