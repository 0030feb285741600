"""Unit tests of the DICOM parser on annotated hex fixtures (PS3.8 9.3, PS3.7 annex E)."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.base import MAX_BUFFERED, Direction, FlowKey, Observation, ParserState
from parsers.dicom import SPEC, DicomParser, probe
from parsers.dicom import parser as dp
from parsers.dicom.dataset import Syntax, read_elements
from parsers.registry import Probe, default_registry

FLOW = FlowKey("10.1.0.5", 40000, "10.2.0.9", 104)
TS, TC = Direction.TO_SERVER, Direction.TO_CLIENT
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CANARY = b"CANARY^PATIENT"
CANARY_ID = b"CANARY-ID-4711"


def h(text: str) -> bytes:
    """Hex with '#' comments and any whitespace."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


def item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def pdu(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBI", kind, 0, len(body)) + body


# A-ASSOCIATE-RQ (PS3.8 9.3.2), every field annotated.
ASSOC_RQ = h(
    """
01 00 0000010b                                  # PDU type 1, reserved, length 267
0001 0000                                       # protocol version 1, reserved
414e592d5343502020202020 20202020               # called AE  "ANY-SCP         "
43545f5343414e4e45525f33 20202020               # calling AE "CT_SCANNER_3    "
"""
    + "00" * 32
    + """                           # reserved (32)
10 00 0015 312e322e3834302e31303030382e332e312e312e31   # app context 1.2.840.10008.3.1.1.1
20 00 003a 01 00 00 00                          # presentation context id 1
  30 00 0019 312e322e3834302e31303030382e352e312e342e312e312e32   # abstract CT Image Storage
  40 00 0011 312e322e3834302e31303030382e312e32                   # transfer implicit VR LE
  40 00 0000                                                      # (empty transfer syntax)
50 00 006c                                      # user information, length 108
  51 00 0004 00004000                           # max PDU length 16384
  52 00 0019 312e322e3834302e3131333631392e362e3337342e31302e31   # impl class UID (GE root)
  55 00 000a 5245564f5f43545f3232                                 # impl version "REVO_CT_22"
  54 00 001d 0019 312e322e3834302e31303030382e352e312e342e312e312e32 01 00  # role: CT scu
  58 00 0014 02 01 0006 6a736d697468 0008 7365637265742121        # user identity: type 2,
                                                #   primary "jsmith", secondary "secret!!"
"""
)

# A-ASSOCIATE-AC (PS3.8 9.3.3): context 1 accepted with implicit VR LE.
ASSOC_AC = h(
    """
02 00 000000b8                                  # PDU type 2, length 184
0001 0000                                       # protocol version 1, reserved
414e592d5343502020202020 20202020               # called AE (echoed)
43545f5343414e4e45525f33 20202020               # calling AE (echoed)
"""
    + "00" * 32
    + """
10 00 0015 312e322e3834302e31303030382e332e312e312e31
21 00 0019 01 00 00 00                          # presentation context 1, result 0 (acceptance)
  40 00 0011 312e322e3834302e31303030382e312e32 # transfer syntax implicit VR LE
50 00 003a                                      # user information
  51 00 0004 00008000                           # max PDU length 32768
  52 00 001b 312e322e3237362e302e373233303031302e332e302e332e362e37   # DCMTK 3.6.7
  55 00 000f 4f464649535f44434d544b5f333637                           # "OFFIS_DCMTK_367"
"""
)

A_RELEASE_RQ = h("05 00 00000004 00000000")
A_RELEASE_RP = h("06 00 00000004 00000000")
A_ABORT = h("07 00 00000004 0000 02 06")  # provider abort, invalid PDU parameter value
A_ASSOCIATE_RJ = h("03 00 00000004 00 01 01 03")  # permanent, service user, calling AE


def element(tag: int, value: bytes, vr: bytes | None = None, big: bool = False) -> bytes:
    """One data element: implicit VR LE when ``vr`` is None, else explicit (LE or BE)."""
    if len(value) % 2:
        value += b" "
    end = ">" if big else "<"
    head = struct.pack(end + "HH", tag >> 16, tag & 0xFFFF)
    if vr is None:
        return head + struct.pack("<I", len(value)) + value
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return head + vr + b"\0\0" + struct.pack(end + "I", len(value)) + value
    return head + vr + struct.pack(end + "H", len(value)) + value


def command_set(
    field: int, sop: str, has_data: bool, status: int | None = None, move_originator: bytes = b""
) -> bytes:
    body = element(0x00000002, sop.encode() + b"\0" * (len(sop) % 2))
    body += element(0x00000100, struct.pack("<H", field))
    body += element(0x00000110, struct.pack("<H", 1))  # message id (not read)
    body += element(0x00000800, struct.pack("<H", 0x0000 if has_data else 0x0101))
    if status is not None:
        body += element(0x00000900, struct.pack("<H", status))
    if move_originator:
        body += element(0x00001030, move_originator)
    return element(0x00000000, struct.pack("<I", len(body))) + body


def image_data_set(vr: bool = False, big: bool = False, pixels: int = 0) -> bytes:
    """CT image attributes in tag order, with patient canaries and optional pixel data."""

    def e(tag: int, value: bytes, kind: bytes) -> bytes:
        return element(tag, value, kind if vr else None, big)

    return b"".join(
        [
            e(0x00080016, CT_STORAGE.encode(), b"UI"),
            e(0x00080060, b"CT", b"CS"),
            e(0x00080070, b"GE MEDICAL SYSTEMS", b"LO"),
            e(0x00080080, b"CANARY HOSPITAL", b"LO"),  # institution: not allow-listed
            e(0x00081010, b"CTSTATION01", b"SH"),
            e(0x00081090, b"Revolution CT", b"LO"),
            e(0x00100010, CANARY, b"PN"),
            e(0x00100020, CANARY_ID, b"LO"),
            e(0x00181000, b"CT-SN-0001", b"LO"),
            e(0x00181020, b"revo_ct_22.1", b"LO"),
            e(0x7FE00010, b"\x5a" * pixels, b"OW") if pixels else b"",
        ]
    )


def pdata(*pdvs: tuple[int, int, bytes]) -> bytes:
    return pdu(0x04, b"".join(struct.pack(">IBB", len(d) + 2, c, m) + d for c, m, d in pdvs))


C_STORE_CMD = pdata((1, 0x03, command_set(0x0001, CT_STORAGE, True)))
C_STORE_DATA = pdata((1, 0x02, image_data_set()))
C_STORE_RSP = pdata((1, 0x03, command_set(0x8001, CT_STORAGE, False, status=0)))
CONVERSATION = [
    (TS, ASSOC_RQ),
    (TC, ASSOC_AC),
    (TS, C_STORE_CMD),
    (TS, C_STORE_DATA),
    (TC, C_STORE_RSP),
    (TS, A_RELEASE_RQ),
    (TC, A_RELEASE_RP),
]


def run(
    chunks: list[tuple[Direction, bytes]], flow: FlowKey = FLOW
) -> tuple[DicomParser, list[Observation]]:
    parser = DicomParser(flow)
    out: list[Observation] = []
    for direction, data in chunks:
        out += parser.feed(direction, data, 1.0)
    for direction in Direction:
        out += parser.eof(direction)
    return parser, out


def facts(obs: list[Observation]) -> set[tuple[str, str, str]]:
    return {(o.kind, o.host, o.value) for o in obs}


def assert_no_phi(obs: list[Observation]) -> None:
    text = repr(obs).upper()
    for canary in ("CANARY", "JSMITH", "SECRET"):
        assert canary not in text


# ---- probe and registry ----------------------------------------------------------------------
def test_fixtures_are_consistent() -> None:
    assert len(ASSOC_RQ) == 6 + 267 and len(ASSOC_AC) == 6 + 184


@pytest.mark.parametrize("n", [1, 2, 5, 6, 8, 74, 80, 98])
def test_probe_needs_more_on_short_prefix(n: int) -> None:
    assert probe(TS, ASSOC_RQ[:n]) is Probe.NEED_MORE


def test_probe_matches_header_plus_application_context() -> None:
    assert probe(TS, ASSOC_RQ[:99]) is Probe.MATCH
    assert probe(TS, ASSOC_RQ) is Probe.MATCH


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        ASSOC_AC,  # an AC is not how a DICOM flow starts
        b"\x01\x01" + ASSOC_RQ[2:],  # reserved byte set
        ASSOC_RQ[:2] + b"\xff\xff\xff\xff" + ASSOC_RQ[6:],  # absurd length
        ASSOC_RQ[:6] + b"\x00\x02" + ASSOC_RQ[8:],  # protocol version 2
        ASSOC_RQ[:80] + b"9" + ASSOC_RQ[81:],  # another application context
        b"\x0b" + b"MSH|^~\\&|",  # HL7 over MLLP
    ],
)
def test_probe_says_no(data: bytes) -> None:
    assert probe(TS, data) is Probe.NO


def test_registry_entry() -> None:
    spec = default_registry().get("dicom")
    assert spec is SPEC and spec.transport == "tcp"
    assert spec.port_hints == frozenset({104, 11112, 4242})
    assert isinstance(spec.factory(FLOW), DicomParser)


# ---- association -----------------------------------------------------------------------------
def test_association_identity_and_roles() -> None:
    parser, obs = run([(TS, ASSOC_RQ), (TC, ASSOC_AC)])
    assert parser.state is ParserState.CONFIRMED
    client, server = FLOW.client, FLOW.server
    assert {
        ("dicom.calling_ae_title", client, "CT_SCANNER_3"),
        ("dicom.called_ae_title", server, "ANY-SCP"),
        ("dicom.implementation_class_uid", client, "1.2.840.113619.6.374.10.1"),
        ("dicom.implementation_version_name", client, "REVO_CT_22"),
        ("dicom.max_pdu_length", client, "16384"),
        ("dicom.abstract_syntax", client, CT_STORAGE),
        ("dicom.proposed_transfer_syntax", client, "1.2.840.10008.1.2"),
        ("dicom.role_selection", client, f"{CT_STORAGE} scu=1 scp=0"),
        ("dicom.user_identity_type", client, "username+passcode"),
        ("dicom.vendor", client, "GE Healthcare"),
        ("dicom.implementation_class_uid", server, "1.2.276.0.7230010.3.0.3.6.7"),
        ("dicom.implementation_version_name", server, "OFFIS_DCMTK_367"),
        ("dicom.max_pdu_length", server, "32768"),
        ("dicom.toolkit", server, "DCMTK"),
        ("dicom.accepted_abstract_syntax", server, CT_STORAGE),
        ("dicom.transfer_syntax", server, "1.2.840.10008.1.2"),
    } <= facts(obs)
    # A toolkit UID names the library, never the vendor.
    assert not [o for o in obs if o.kind == "dicom.vendor" and o.host == server]
    vendor = next(o for o in obs if o.kind == "dicom.vendor")
    assert vendor.confidence < 0.5 and vendor.raw == "1.2.840.113619.6.374.10.1"
    assert all(o.port == 104 for o in obs if o.host == server)
    assert all(o.port is None for o in obs if o.host == client)
    assert_no_phi(obs)  # user identity: the type only, never "jsmith" / "secret!!"


def test_reject_abort_release() -> None:
    _, obs = run([(TS, ASSOC_RQ), (TC, A_ASSOCIATE_RJ)])
    assert (
        "dicom.association_rejected",
        FLOW.server,
        "rejected-permanent service-user calling-ae-title-not-recognized",
    ) in facts(obs)
    _, obs = run([(TS, ASSOC_RQ), (TC, ASSOC_AC), (TC, A_ABORT)])
    abort = ("dicom.abort", FLOW.server, "service-provider invalid-pdu-parameter-value")
    assert abort in facts(obs)
    _, obs = run(CONVERSATION)
    assert ("dicom.release", FLOW.client, "A-RELEASE-RQ") in facts(obs)
    assert ("dicom.release", FLOW.server, "A-RELEASE-RP") in facts(obs)


def test_rq_seen_in_the_to_client_direction_keeps_roles_right() -> None:
    """A sensor that missed the SYN may orient the flow backwards."""
    _, obs = run([(TC, ASSOC_RQ), (TS, ASSOC_AC)])
    assert ("dicom.calling_ae_title", FLOW.server, "CT_SCANNER_3") in facts(obs)
    assert ("dicom.called_ae_title", FLOW.client, "ANY-SCP") in facts(obs)


# ---- DIMSE and data sets ---------------------------------------------------------------------
EXPECTED_STORE = {
    ("dicom.command", FLOW.client, f"C-STORE-RQ {CT_STORAGE}"),
    ("dicom.command", FLOW.server, f"C-STORE-RSP {CT_STORAGE}"),
    ("dicom.role", FLOW.client, "storage scu"),
    ("dicom.role", FLOW.server, "storage scp"),
    ("dicom.modality", FLOW.client, "CT"),
    ("dicom.manufacturer", FLOW.client, "GE MEDICAL SYSTEMS"),
    ("dicom.station_name", FLOW.client, "CTSTATION01"),
    ("dicom.model_name", FLOW.client, "Revolution CT"),
    ("dicom.serial_number", FLOW.client, "CT-SN-0001"),
    ("dicom.software_versions", FLOW.client, "revo_ct_22.1"),
    ("dicom.device_type", FLOW.client, "ct"),
    ("dicom.vendor", FLOW.client, "GE Healthcare"),
    ("dicom.model", FLOW.client, "Revolution CT"),
    ("dicom.serial", FLOW.client, "CT-SN-0001"),
    ("dicom.software_version", FLOW.client, "revo_ct_22.1"),
    ("dicom.hostname", FLOW.client, "CTSTATION01"),
    ("dicom.device_type", FLOW.server, "pacs"),
}


def test_c_store_reads_device_elements_only() -> None:
    _, obs = run(CONVERSATION)
    assert facts(obs) >= EXPECTED_STORE
    assert_no_phi(obs)
    vendor = [
        o
        for o in obs
        if o.kind == "dicom.vendor" and o.value == "GE Healthcare" and o.raw == "GE MEDICAL SYSTEMS"
    ]
    assert vendor and vendor[0].confidence >= 0.7
    assert all(0.0 <= o.confidence <= 1.0 for o in obs)


@pytest.mark.parametrize(
    ("ts_uid", "vr", "big"),
    [
        ("1.2.840.10008.1.2.1", True, False),  # explicit VR little endian
        ("1.2.840.10008.1.2.2", True, True),  # explicit VR big endian
        ("1.2.840.10008.1.2.4.50", True, False),  # JPEG baseline: data set is explicit LE
    ],
)
def test_explicit_vr_transfer_syntaxes(ts_uid: str, vr: bool, big: bool) -> None:
    ts_item = item(0x40, ts_uid.encode())
    ac = ASSOC_AC.replace(item(0x40, b"1.2.840.10008.1.2"), ts_item)
    ac = pdu(0x02, ac[6:]).replace(ac[6:8], ac[6:8])
    ac = struct.pack(">BBI", 2, 0, len(ac) - 6) + ac[6:]
    ac = _fix_pc_len(ac)
    data = pdata((1, 0x02, image_data_set(vr=vr, big=big)))
    _, obs = run([(TS, ASSOC_RQ), (TC, ac), (TS, C_STORE_CMD), (TS, data), (TC, C_STORE_RSP)])
    assert ("dicom.transfer_syntax", FLOW.server, ts_uid) in facts(obs)
    assert facts(obs) >= EXPECTED_STORE
    assert_no_phi(obs)


def _fix_pc_len(ac: bytes) -> bytes:
    """Re-encode the AC's presentation context item length after a transfer syntax swap."""
    pos = 6 + 68 + 4 + 21
    body_start = pos + 4
    end = ac.index(b"\x50\x00", body_start)
    return ac[:pos] + item(0x21, ac[body_start:end]) + ac[end:]


def test_data_set_without_seen_ac_is_guessed() -> None:
    """Capture began after the association: the encoding is guessed from the first element."""
    data = pdata((1, 0x02, image_data_set(vr=True)))
    _, obs = run([(TS, C_STORE_CMD), (TS, data)])
    assert ("dicom.manufacturer", FLOW.client, "GE MEDICAL SYSTEMS") in facts(obs)


def test_deflated_data_set_is_counted_and_skipped() -> None:
    ac = ASSOC_AC.replace(item(0x40, b"1.2.840.10008.1.2"), item(0x40, b"1.2.840.10008.1.2.1.99"))
    ac = _fix_pc_len(struct.pack(">BBI", 2, 0, len(ac) - 6) + ac[6:])
    parser, obs = run([(TS, ASSOC_RQ), (TC, ac), (TS, C_STORE_CMD), (TS, C_STORE_DATA)])
    assert parser.stats.get("dataset_deflated") == 1
    assert not [o for o in obs if o.kind == "dicom.manufacturer"]


def test_data_set_over_many_pdvs_and_pdus_equals_one() -> None:
    data = image_data_set()
    pieces = [data[i : i + 7] for i in range(0, len(data), 7)]
    pdus = [pdata((1, 0x02 if i == len(pieces) - 1 else 0x00, p)) for i, p in enumerate(pieces)]
    many_pdvs_one_pdu = pdata(
        *[(1, 0x02 if i == len(pieces) - 1 else 0x00, p) for i, p in enumerate(pieces)]
    )
    base = facts(run(CONVERSATION)[1])
    split = [
        (TS, ASSOC_RQ),
        (TC, ASSOC_AC),
        (TS, C_STORE_CMD),
        *[(TS, p) for p in pdus],
        (TC, C_STORE_RSP),
        (TS, A_RELEASE_RQ),
        (TC, A_RELEASE_RP),
    ]
    assert facts(run(split)[1]) == base
    packed = [
        (TS, ASSOC_RQ),
        (TC, ASSOC_AC),
        (TS, C_STORE_CMD + many_pdvs_one_pdu),
        (TC, C_STORE_RSP),
        (TS, A_RELEASE_RQ),
        (TC, A_RELEASE_RP),
    ]
    assert facts(run(packed)[1]) == base


def test_many_pdus_in_one_segment() -> None:
    _, obs = run(
        [
            (TS, ASSOC_RQ),
            (TC, ASSOC_AC),
            (TS, C_STORE_CMD + C_STORE_DATA + C_STORE_CMD + C_STORE_DATA + A_RELEASE_RQ),
            (TC, C_STORE_RSP + C_STORE_RSP + A_RELEASE_RP),
        ]
    )
    assert facts(obs) >= EXPECTED_STORE


def test_each_fact_once_per_flow() -> None:
    chunks = [(TS, ASSOC_RQ), (TC, ASSOC_AC)]
    for _ in range(200):
        chunks += [(TS, C_STORE_CMD), (TS, C_STORE_DATA), (TC, C_STORE_RSP)]
    _, obs = run(chunks)
    keys = [(o.kind, o.host, o.value, o.confidence) for o in obs]
    assert len(keys) == len(set(keys))
    assert len(obs) < 60


def test_big_pdu_is_skipped_after_a_bounded_prefix() -> None:
    """A P-DATA-TF larger than KEEP_PDATA_MAX: device elements read, pixel data never held."""
    big = pdata((1, 0x02, image_data_set(pixels=1_000_000)))
    assert len(big) > dp.KEEP_PDATA_MAX
    chunks = [(TS, ASSOC_RQ), (TC, ASSOC_AC), (TS, C_STORE_CMD)]
    chunks += [(TS, big[i : i + 1460]) for i in range(0, len(big), 1460)]
    chunks += [(TC, C_STORE_RSP), (TS, C_STORE_CMD + C_STORE_DATA)]
    parser = DicomParser(FLOW)
    obs: list[Observation] = []
    peak = 0
    for direction, data in chunks:
        obs += parser.feed(direction, data, 1.0)
        peak = max(peak, *(len(b) for b in parser._buf.values()))
    assert peak <= dp.PDATA_PREFIX + 1460
    assert parser.stats["pdata_skipped"] == 1
    assert facts(obs) >= EXPECTED_STORE
    assert parser.state is ParserState.CONFIRMED


def test_forwarded_store_makes_no_device_claims() -> None:
    """C-STORE sub-operations of a C-MOVE carry another device's images."""
    cmd = pdata((1, 0x03, command_set(0x0001, CT_STORAGE, True, move_originator=b"VIEWER")))
    _, obs = run([(TS, ASSOC_RQ), (TC, ASSOC_AC), (TS, cmd), (TS, C_STORE_DATA)])
    assert not [o for o in obs if o.kind in ("dicom.device_type", "dicom.manufacturer")]


def test_failed_status_is_reported_and_makes_no_pacs_claim() -> None:
    rsp = pdata((1, 0x03, command_set(0x8001, CT_STORAGE, False, status=0xA700)))
    _, obs = run([(TS, ASSOC_RQ), (TC, ASSOC_AC), (TS, C_STORE_CMD), (TS, C_STORE_DATA), (TC, rsp)])
    assert ("dicom.status", FLOW.server, "C-STORE-RSP 0xA700") in facts(obs)
    assert ("dicom.device_type", FLOW.server, "pacs") not in facts(obs)


def test_worklist_sequence_items_read_scheduled_station_only() -> None:
    step = (
        element(0x00080060, b"MR")
        + element(0x00321060, b"CANARY PROCEDURE")
        + element(0x00400001, b"MR_SCANNER_2")
        + element(0x00400006, CANARY)
    )
    undefined_item = (
        struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
        + step
        + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    )
    seq = (
        struct.pack("<HHI", 0x0040, 0x0100, 0xFFFFFFFF)
        + undefined_item
        + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    )
    data = element(0x00100010, CANARY) + element(0x00100020, CANARY_ID) + seq
    found = read_elements(data, Syntax.IMPLICIT_LE, dp.DATA_SET_TAGS, dp.NESTED_TAGS)
    assert found.values == {
        (0x00400100, 0x00400001): [b"MR_SCANNER_2"],
        (0x00400100, 0x00080060): [b"MR"],
    }
    mwl = "1.2.840.10008.5.1.4.31"
    rq = ASSOC_RQ.replace(CT_STORAGE.encode(), mwl.encode() + b"\0" * 3)
    rsp = pdata((1, 0x03, command_set(0x8020, mwl, True, status=0xFF00)), (1, 0x02, data))
    _, obs = run([(TS, rq), (TC, ASSOC_AC), (TC, rsp)])
    assert {
        ("dicom.scheduled_station_ae_title", FLOW.server, "MR_SCANNER_2"),
        ("dicom.device_type", FLOW.server, "ris"),
    } <= facts(obs)
    assert_no_phi(obs)


def test_walker_stops_after_last_allow_listed_tag() -> None:
    data = image_data_set(pixels=64) + b"\xff" * 9  # junk after pixel data is never reached
    found = read_elements(data, Syntax.IMPLICIT_LE, dp.DATA_SET_TAGS, dp.NESTED_TAGS)
    assert found.complete and found.error is None
    assert (0, 0x00100010) not in found.values


def test_nmap_dicom_ping_pattern() -> None:
    verification = "1.2.840.10008.1.1"
    rq = bytearray(ASSOC_RQ)
    rq[10:42] = b"ANY-SCP".ljust(16) + b"ECHOSCU".ljust(16)
    user = item(
        0x50,
        item(0x51, struct.pack(">I", 16384))
        + item(0x52, b"1.2.276.0.7230010.3.0.3.6.2")
        + item(0x55, b"OFFIS_DCMTK_362"),
    )
    pc = item(
        0x20, b"\x01\0\0\0" + item(0x30, verification.encode()) + item(0x40, b"1.2.840.10008.1.2")
    )
    app = item(0x10, b"1.2.840.10008.3.1.1.1")
    body = bytes(rq[6:74]) + app + pc + user
    _, obs = run([(TS, pdu(0x01, body)), (TC, ASSOC_AC)])
    scanner = [o for o in obs if o.kind == "dicom.device_type" and o.value == "dicom-scanner"]
    assert ("dicom.scan", FLOW.client, "nmap dicom-ping defaults") in facts(obs)
    assert max(o.confidence for o in scanner) == dp.CONF_SCAN_CONFIRMED


# ---- hostile input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "chunks"),
    [
        ("truncated RQ", [(TS, ASSOC_RQ[:150])]),
        ("garbage after a valid header", [(TS, ASSOC_RQ[:6] + b"\xde\xad" * 200)]),
        ("item overruns the PDU", [(TS, ASSOC_RQ[:74] + b"\x10\x00\xff\xff" + ASSOC_RQ[78:])]),
        (
            "PDU length 0xFFFFFFFF",
            [(TS, ASSOC_RQ), (TC, ASSOC_AC), (TS, b"\x04\x00\xff\xff\xff\xff" + b"\0" * 5000)],
        ),
        ("A-ASSOCIATE length 0xFFFFFFFF", [(TS, b"\x01\x00\xff\xff\xff\xff" + ASSOC_RQ[6:])]),
        ("PDV overruns its PDU", [(TS, ASSOC_RQ), (TS, h("04 00 00000008 0000ffff 01 02 0000"))]),
        ("bad PDV control header", [(TS, ASSOC_RQ), (TS, h("04 00 00000006 00000002 01 fc"))]),
        ("unknown PDU type", [(TS, ASSOC_RQ), (TS, h("09 00 00000004 00000000"))]),
        ("release of wrong length", [(TS, ASSOC_RQ), (TS, h("05 00 00000010") + b"\0" * 16)]),
    ],
)
def test_hostile_input_rejects_without_raising(
    name: str, chunks: list[tuple[Direction, bytes]]
) -> None:
    parser, _ = run(chunks)
    if name == "truncated RQ":
        assert parser.state is ParserState.PROBING and parser.pdus == 0
    else:
        assert parser.state is ParserState.REJECTED, name
    assert all(len(b) <= MAX_BUFFERED for b in parser._buf.values())


def test_garbage_data_set_never_raises_or_leaks() -> None:
    junk = pdata((1, 0x02, b"\x08\x00\x70\x00\xff\xff\xff\x7f" + CANARY * 10))
    parser, obs = run([(TS, ASSOC_RQ), (TC, ASSOC_AC), (TS, C_STORE_CMD), (TS, junk)])
    assert parser.state is ParserState.CONFIRMED
    assert_no_phi(obs)


def test_gap_inside_skipped_bulk_keeps_sync() -> None:
    big = pdata((1, 0x02, image_data_set(pixels=300_000)))
    parser = DicomParser(FLOW)
    for d, chunk in [(TS, ASSOC_RQ), (TC, ASSOC_AC), (TS, C_STORE_CMD), (TS, big[:40_000])]:
        parser.feed(d, chunk, 1.0)
    parser.gap(TS, 100_000)
    obs = parser.feed(TS, big[140_000:] + C_STORE_CMD + C_STORE_DATA, 2.0)
    assert parser.state is ParserState.CONFIRMED
    assert parser.pdus >= 3 and not parser._lost_sync[TS]
    assert obs == [] or all(o.kind.startswith("dicom.") for o in obs)


def test_gap_in_a_kept_pdu_resyncs_on_the_next_pdu() -> None:
    parser = DicomParser(FLOW)
    for d, chunk in [(TS, ASSOC_RQ), (TC, ASSOC_AC), (TS, C_STORE_CMD[:20])]:
        parser.feed(d, chunk, 1.0)
    parser.gap(TS, 10)
    obs = parser.feed(TS, C_STORE_CMD[30:] + C_STORE_CMD + C_STORE_DATA, 2.0)
    assert parser.state is not ParserState.REJECTED
    assert ("dicom.manufacturer", FLOW.client, "GE MEDICAL SYSTEMS") in facts(obs)


def test_memory_is_bounded_under_many_open_contexts() -> None:
    """Unfinished messages on every context id cannot hold more than MAX_REASSEMBLY."""
    parser = DicomParser(FLOW)
    parser.feed(TS, ASSOC_RQ, 1.0)
    chunk = b"\x08\x00\x70\x00" + b"A" * 16_000
    tracemalloc.start()
    for ctx in range(1, 256, 2):
        parser.feed(TS, pdata((ctx, 0x00, chunk)), 1.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert parser._held <= dp.MAX_REASSEMBLY
    assert sum(len(b) for b in parser._frag.values()) <= dp.MAX_REASSEMBLY
    assert peak < 2_000_000


# ---- hypothesis ------------------------------------------------------------------------------
def split_randomly(
    data: st.DataObject, chunks: list[tuple[Direction, bytes]]
) -> list[tuple[Direction, bytes]]:
    out = []
    for direction, payload in chunks:
        cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(payload) - 1)), max_size=8)))
        cuts = [c for c in cuts if c < len(payload)]
        out += [
            (direction, payload[a:b])
            for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)
        ]
    return out


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_observations_do_not_depend_on_segmentation(data: st.DataObject) -> None:
    whole = run(CONVERSATION)[1]
    assert run(split_randomly(data, CONVERSATION))[1] == whole
    # Everything in one segment per direction run:
    glued = [
        (TS, ASSOC_RQ),
        (TC, ASSOC_AC),
        (TS, C_STORE_CMD + C_STORE_DATA),
        (TC, C_STORE_RSP),
        (TS, A_RELEASE_RQ),
        (TC, A_RELEASE_RP),
    ]
    assert run(glued)[1] == whole


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_big_pdu_segmentation_independence(data: st.DataObject) -> None:
    big = pdata((1, 0x02, image_data_set(pixels=100_000)))
    chunks = [(TS, ASSOC_RQ), (TC, ASSOC_AC), (TS, C_STORE_CMD), (TS, big), (TC, C_STORE_RSP)]
    assert run(split_randomly(data, chunks))[1] == run(chunks)[1]


@settings(max_examples=300)
@given(chunks=st.lists(st.tuples(st.sampled_from(Direction), st.binary(max_size=300)), max_size=20))
def test_arbitrary_bytes_never_raise(chunks: list[tuple[Direction, bytes]]) -> None:
    parser, obs = run(chunks)
    assert all(len(b) <= MAX_BUFFERED for b in parser._buf.values())
    assert parser._held <= dp.MAX_REASSEMBLY


@settings(max_examples=300)
@given(prefix=st.sampled_from([b"", ASSOC_RQ, ASSOC_RQ + ASSOC_AC]), tail=st.binary(max_size=400))
def test_arbitrary_bytes_after_a_valid_association_never_raise(prefix: bytes, tail: bytes) -> None:
    parser, _ = run([(TS, prefix + tail), (TC, tail)])
    assert all(len(b) <= MAX_BUFFERED for b in parser._buf.values())


@settings(max_examples=300)
@given(data=st.data())
def test_mutated_conversations_never_raise_or_leak(data: st.DataObject) -> None:
    chunks = []
    for direction, payload in CONVERSATION:
        buf = bytearray(payload)
        for _ in range(data.draw(st.integers(0, 4))):
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        chunks.append((direction, bytes(buf)))
    parser, obs = run(chunks)
    assert_no_phi(obs)
    assert all(len(b) <= MAX_BUFFERED for b in parser._buf.values())


@settings(max_examples=200)
@given(body=st.binary(max_size=600), syntax=st.sampled_from(list(Syntax)))
def test_walker_never_raises(body: bytes, syntax: Syntax) -> None:
    found = read_elements(body, syntax, dp.DATA_SET_TAGS, dp.NESTED_TAGS)
    assert all(len(v) <= 256 for vs in found.values.values() for v in vs)


def test_overrunning_value_length_never_swallows_patient_elements() -> None:
    """Regression (found by hypothesis): a Manufacturer whose length field was raised ran on
    into Station Name, Model and Patient's Name, and the whole run was emitted as the value.
    A value longer than its VR allows, or holding control bytes (the next element's tag),
    now stops the walk."""
    manufacturer = b"GE MEDICAL SYSTEMS"

    def element(tag: int, value: bytes) -> bytes:
        group, elem = tag >> 16, tag & 0xFFFF
        return (
            group.to_bytes(2, "little")
            + elem.to_bytes(2, "little")
            + len(value).to_bytes(4, "little")
            + value
        )

    body = (
        element(0x00080070, manufacturer)
        + element(0x00081010, b"CTSTATION01 ")
        + element(0x00100010, b"CANARY^PATIENT")
    )
    overrun = bytearray(body)
    overrun[4:8] = (len(body) - 8).to_bytes(4, "little")  # Manufacturer now spans everything
    found = read_elements(bytes(overrun), Syntax.IMPLICIT_LE, dp.DATA_SET_TAGS, dp.NESTED_TAGS)
    assert not any(b"CANARY" in v for vs in found.values.values() for v in vs)
    assert found.error and "fails its VR" in found.error
    clean = read_elements(body, Syntax.IMPLICIT_LE, dp.DATA_SET_TAGS, dp.NESTED_TAGS)
    assert [v for vs in clean.values.values() for v in vs] == [manufacturer, b"CTSTATION01 "]
