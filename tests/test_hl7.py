"""HL7 v2 parser: framing, cut, facts, probe, canaries, hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.base import MAX_BUFFERED, Direction, FlowKey, Observation, ParserState
from parsers.hl7 import Hl7Parser, SignatureCache, cut_frame, load_knowledge, probe
from parsers.hl7.cutter import unescape
from parsers.hl7.framing import MAX_MESSAGE_LEN
from parsers.hl7.signature import cutter_view, hl7apy_view
from parsers.registry import Probe, default_registry
from tests.hl7_fixtures import (
    ACK,
    ADT_A01,
    ALL_MESSAGES,
    BATCH,
    CANARIES,
    LAB_ORU_LF,
    LATIN1,
    PCD01,
    PRT_ADT,
    PUMP,
    UTF8,
    mllp,
)

FLOW = FlowKey("10.1.0.5", 40000, "10.2.0.9", 2575)
TS, TC = Direction.TO_SERVER, Direction.TO_CLIENT
KNOWLEDGE = load_knowledge()
CACHE = SignatureCache(KNOWLEDGE)  # shared like the registry shares it


def run(
    chunks: list[tuple[Direction, bytes]], eof: bool = True
) -> tuple[Hl7Parser, list[Observation]]:
    parser = Hl7Parser(FLOW, CACHE)
    out: list[Observation] = []
    for direction, data in chunks:
        out += parser.feed(direction, data, ts=1.0)
    if eof:
        for direction in Direction:
            out += parser.eof(direction)
    return parser, out


def facts(obs: list[Observation]) -> set[tuple[str, str, str]]:
    return {(o.kind, o.host, o.value) for o in obs}


def assert_no_canary(obs: list[Observation]) -> None:
    for o in obs:
        text = f"{o.kind} {o.host} {o.value} {o.raw}"
        for canary in CANARIES:
            assert canary not in text, (canary, o)


# --- the PCD-01 gateway --------------------------------------------------------------
def test_pcd01_gateway_names_the_monitor_behind_it() -> None:
    parser, obs = run([(TS, mllp(PCD01)), (TC, mllp(ACK))])
    assert parser.state is ParserState.CONFIRMED
    f = facts(obs)
    gw, dev = "10.1.0.5", "device:eui64:0009FBFFFE0A1B2C"
    assert ("hl7.sending_application", gw, "PIIC") in f
    assert ("hl7.message_type", gw, "ORU^R01") in f
    assert ("hl7.version", gw, "2.6") in f
    assert ("hl7.charset", gw, "UNICODE UTF-8") in f
    assert ("hl7.message_profile", gw, "IHE_PCD_001") in f
    assert ("hl7.sft_vendor", gw, "Philips Medical Systems") in f
    assert ("hl7.sft_version", gw, "C.02.11") in f
    assert ("hl7.sft_product", gw, "IntelliVue Information Center") in f
    assert ("hl7.role", gw, "device-data-sender") in f
    assert ("hl7.device_type", gw, "medical-gateway") in f
    assert ("hl7.reached_via", dev, gw) in f
    assert ("hl7.device_type", dev, "patient-monitor") in f
    assert ("hl7.vendor", dev, "Philips") in f
    assert ("hl7.model", dev, "IntelliVue MX800") in f
    assert ("hl7.serial", dev, "DE12345678") in f
    assert ("hl7.mdc_code", dev, "69965") in f
    assert ("hl7.role", "10.2.0.9", "ack-only-receiver") in f
    # the metric code 150456 (SpO2) names no device kind and is not kept
    assert not any(o.value == "150456" for o in obs)
    assert_no_canary(obs)


def test_server_facts_carry_the_server_port() -> None:
    _, obs = run([(TS, mllp(PCD01)), (TC, mllp(ACK))])
    for o in obs:
        assert o.port == (2575 if o.host == "10.2.0.9" else None)


def test_pump_named_by_serial() -> None:
    _, obs = run([(TS, mllp(PUMP))])
    f = facts(obs)
    dev = "device:serial:ICU_Medical:15550123"
    assert ("hl7.device_type", dev, "infusion-pump") in f
    assert ("hl7.model", dev, "Plum 360") in f
    assert ("hl7.reached_via", dev, "10.1.0.5") in f
    assert ("hl7.mdc_code", dev, "69986") in f
    assert_no_canary(obs)


def test_adt_source_and_ack_only_receiver() -> None:
    _, obs = run([(TS, mllp(ADT_A01)), (TC, mllp(ACK)), (TS, mllp(ADT_A01)), (TC, mllp(ACK))])
    f = facts(obs)
    assert ("hl7.role", "10.1.0.5", "adt-source") in f
    assert ("hl7.device_type", "10.1.0.5", "his") in f
    assert ("hl7.vendor", "10.1.0.5", "Dedalus") in f  # MSH-3 ORBIS
    assert ("hl7.charset", "10.1.0.5", "8859/1") in f
    assert ("hl7.role", "10.2.0.9", "adt-receiver") in f
    assert ("hl7.role", "10.2.0.9", "ack-only-receiver") in f
    assert ("hl7.ack_code", "10.2.0.9", "AA") in f
    assert len(obs) == len(f)  # each fact once per flow
    assert_no_canary(obs)


def test_prt_device_escapes_and_no_person_fields() -> None:
    _, obs = run([(TS, mllp(PRT_ADT))])
    f = facts(obs)
    dev = "device:serial:ICU_Medical:15550999"
    assert ("hl7.prt_udi", dev, "(01)00643169007222") in f
    assert ("hl7.serial", dev, "15550999") in f
    assert ("hl7.mdc_code", dev, "69985") in f
    assert ("hl7.device_type", dev, "infusion-pump") in f
    # MSH-3 "CANARY\F\HIS" unescapes to "CANARY|HIS": allowed field, so it is shown —
    # that is the sending application, not patient data. Check the escape, then drop it.
    assert ("hl7.sending_application", "10.1.0.5", "CANARY|HIS") in f
    rest = [o for o in obs if o.kind != "hl7.sending_application"]
    assert_no_canary(rest)


def test_lf_separated_lab_result() -> None:
    _, obs = run([(TS, LAB_ORU_LF)])  # unframed and LF: completes at EOF
    f = facts(obs)
    assert ("hl7.role", "10.1.0.5", "result-sender") in f
    assert ("hl7.device_type", "10.1.0.5", "lis") in f
    assert_no_canary(obs)


@pytest.mark.parametrize(
    ("message", "expected"), [(LATIN1, "KÜCHE"), (UTF8, "KÜCHE")], ids=["latin-1", "utf-8"]
)
def test_charset_per_msh18(message: bytes, expected: str) -> None:
    _, obs = run([(TS, mllp(message))])
    assert ("hl7.sending_application", "10.1.0.5", expected) in facts(obs)
    assert ("hl7.sending_facility", "10.1.0.5", "STÄDTISCHES") in facts(obs)


def test_batch_in_one_frame() -> None:
    _, obs = run([(TS, mllp(BATCH))])
    f = facts(obs)
    assert ("hl7.role", "10.1.0.5", "batch-sender") in f
    assert ("hl7.sending_application", "10.1.0.5", "BATCHER") in f
    assert ("hl7.role", "10.1.0.5", "adt-source") in f
    assert ("hl7.reached_via", "device:eui64:0009FBFFFE0A1B2C", "10.1.0.5") in f
    assert_no_canary(obs)


def test_many_messages_in_one_segment_and_unframed_stream() -> None:
    whole = mllp(ADT_A01) + b"\r\n" + mllp(PCD01) + mllp(PUMP)
    parser, obs = run([(TS, whole)])
    assert parser.pdus >= 3 and parser.state is not ParserState.REJECTED
    unframed = ADT_A01 + PCD01 + PUMP  # gateways writing bare HL7: delimited by the next MSH
    parser2, obs2 = run([(TS, unframed)])
    assert facts(obs2) == facts(obs)
    assert parser2._messages[TS] == 3


# --- robustness ----------------------------------------------------------------------
def test_garbage_rejects_without_raising() -> None:
    parser, obs = run([(TS, b"GET / HTTP/1.1\r\n\r\n")])
    assert parser.state is ParserState.REJECTED and obs == []


def test_invalid_msh_first_rejects_later_skips() -> None:
    parser, obs = run([(TS, mllp(b"MSH1234567\rPID|x\r"))])
    assert parser.state is ParserState.REJECTED and obs == []
    parser, obs = run([(TS, mllp(ADT_A01) + mllp(b"MSHabcdefg\r") + mllp(PUMP))])
    assert parser.state is not ParserState.REJECTED
    assert parser.bad_messages == 1
    assert ("hl7.sending_application", "10.1.0.5", "MEDNET") in facts(obs)


def test_frame_without_end_marker_is_bounded() -> None:
    parser = Hl7Parser(FLOW, CACHE)
    parser.feed(TS, b"\x0bMSH|^~\\&|A|B", 1.0)
    chunk = b"OBX|1|NM|x||1\r" * 1000
    while parser.state is not ParserState.REJECTED:
        parser.feed(TS, chunk, 1.0)
        assert len(parser._buf[TS]) <= MAX_MESSAGE_LEN + len(chunk) + 16
    assert "no <FS>" in (parser.reject_reason or "")


def test_abandoned_frame_is_dropped_and_next_frame_read() -> None:
    parser, obs = run([(TS, b"\x0bMSH|^~\\&|HALF|X\rPID|CANARY" + mllp(ADT_A01))])
    assert parser.abandoned_frames == 1
    assert ("hl7.sending_application", "10.1.0.5", "ORBIS") in facts(obs)
    assert not any(o.value == "HALF" for o in obs)


def test_resync_after_gap() -> None:
    parser = Hl7Parser(FLOW, CACHE)
    out = parser.feed(TS, mllp(ADT_A01)[:40], 1.0)
    parser.gap(TS, 500)
    out += parser.feed(TS, b"ollowing bytes of a lost message\x1c\r" + mllp(PUMP), 1.0)
    assert ("hl7.sending_application", "10.1.0.5", "MEDNET") in facts(out)


def test_hl7apy_failure_never_raises() -> None:
    cache = SignatureCache(KNOWLEDGE)
    parser = Hl7Parser(FLOW, cache)
    weird = b"MSH|^~\\&|APP|FAC|||||ZZZ^Q99|1|P|9.9.9\rOBX|||69965^X^MDC\r"
    obs = parser.feed(TS, mllp(weird), 1.0)
    assert ("hl7.sending_application", "10.1.0.5", "APP") in facts(obs)


# --- probe and registry --------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (b"\x0bMSH|^~\\&|", Probe.MATCH),
        (b"MSH|^~\\&|APP", Probe.MATCH),
        (b"\x0bFHS|^~\\&|", Probe.MATCH),
        (b"BHS|^~\\&|", Probe.MATCH),
        (b"MSH|^~\\|", Probe.MATCH),  # v2.1 without subcomponent char... 3 chars
        (b"\x0b", Probe.NEED_MORE),
        (b"\x0bMS", Probe.NEED_MORE),
        (b"MSH|^~", Probe.NEED_MORE),
        (b"", Probe.NEED_MORE),
        (b"GET / HTTP/1.1", Probe.NO),
        (b"\x16\x03\x01\x02\x00", Probe.NO),
        (b"MSHA^~\\&", Probe.NO),
        (b"\x0bPID|", Probe.NO),
        (b"MSH|aaaa|", Probe.NO),
    ],
)
def test_probe(data: bytes, verdict: Probe) -> None:
    assert probe(TS, data) is verdict


def test_registry_entry() -> None:
    spec = default_registry().get("hl7")
    assert spec is not None and spec.transport == "tcp"
    assert spec.port_hints == frozenset({2575, 6661})
    a, b = spec.factory(FLOW), spec.factory(FLOW)
    assert isinstance(a, Hl7Parser) and a.cache is b.cache  # one cache per registry
    assert default_registry().get("hl7").factory(FLOW).cache is not a.cache  # type: ignore[union-attr]


# --- cutter vs hl7apy ----------------------------------------------------------------
@pytest.mark.parametrize("message", ALL_MESSAGES)
def test_cutter_agrees_with_hl7apy(message: bytes) -> None:
    for cut in cut_frame(message, KNOWLEDGE.device_codes):
        ref, _valid = hl7apy_view(cut)
        fast = cutter_view(cut)
        assert _trim(ref) == _trim(fast)


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


def test_cut_keeps_only_allow_listed_segments() -> None:
    for message in ALL_MESSAGES:
        for cut in cut_frame(message, KNOWLEDGE.device_codes):
            names = {seg.name for seg in cut.segments}
            assert names <= {"MSH", "FHS", "BHS", "SFT", "OBR", "OBX", "EQU", "PRT", "MSA"}
            for canary in CANARIES:
                if canary != "CANARY" and b"CANARY\\F\\HIS" not in cut.signature:
                    assert canary.encode() not in cut.signature


def test_signature_ignores_time_and_control_id() -> None:
    a = cut_frame(PCD01, KNOWLEDGE.device_codes)[0]
    other = PCD01.replace(b"20240102030405||ORU", b"20991231235959||ORU").replace(
        b"CTRL0001", b"CTRL9999"
    )
    b = cut_frame(other, KNOWLEDGE.device_codes)[0]
    assert a.signature == b.signature


def test_unescape() -> None:
    cut = cut_frame(b"MSH|^~\\&|A\r", frozenset())[0]
    enc = cut.encoding
    assert unescape(b"a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", enc) == b"a|b^c&d~e\\f"
    assert unescape(b"\\X48454C4C4F\\", enc) == b"HELLO"
    assert unescape(b"x\\.br\\y\\H\\z\\N\\", enc) == b"x yz"
    assert unescape(b"broken\\X4", enc) == b"broken\\X4"


def test_cache_is_bounded_and_hits() -> None:
    cache = SignatureCache(KNOWLEDGE, maxsize=4)
    parser = Hl7Parser(FLOW, cache)
    for i in range(10):
        msg = ADT_A01.replace(b"ORBIS", b"APP%d" % i)
        parser.feed(TS, mllp(msg) + mllp(msg), 1.0)
    assert len(cache) == 4 and cache.evictions == 6 and cache.hits == 10


# --- hypothesis ----------------------------------------------------------------------
CONVERSATION = [
    (TS, mllp(PCD01)),
    (TC, mllp(ACK)),
    (TS, mllp(ADT_A01) + mllp(PUMP)),
    (TC, mllp(ACK)),
    (TS, mllp(BATCH)),
]
UNFRAMED = [(TS, ADT_A01 + LAB_ORU_LF.replace(b"\n", b"\r") + PUMP)]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data(), convo=st.sampled_from([CONVERSATION, UNFRAMED]))
def test_observations_do_not_depend_on_segmentation(data: st.DataObject, convo: list) -> None:  # type: ignore[type-arg]
    split = []
    for direction, payload in convo:
        cuts = sorted(data.draw(st.sets(st.integers(1, len(payload) - 1), max_size=12)))
        split += [
            (direction, payload[a:b])
            for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)
        ]
    assert facts(run(split)[1]) == facts(run(convo)[1])
    assert [o.kind for o in run(split)[1]] == [o.kind for o in run(convo)[1]]


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.tuples(st.sampled_from(Direction), st.binary(max_size=300)), max_size=20))
def test_arbitrary_bytes_never_raise(chunks: list[tuple[Direction, bytes]]) -> None:
    parser, _ = run(chunks)
    assert all(len(b) <= MAX_BUFFERED for b in parser._buf.values())


HL7ISH = st.lists(
    st.sampled_from(
        [
            b"\x0b",
            b"\x1c",
            b"\r",
            b"\n",
            b"MSH",
            b"|^~\\&|",
            b"|",
            b"^",
            b"\\X41\\",
            b"\\F\\",
            b"OBX",
            b"PRT",
            b"OBR",
            b"FHS",
            b"BHS",
            b"MSA|AA",
            b"69965",
            b"EUI-64",
            b"\xff\xfe",
            b"2.5",
            b"ORU^R01",
            b"\x00",
        ]
    ),
    max_size=80,
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.sampled_from(Direction), st.one_of(HL7ISH, st.binary(max_size=50))),
        max_size=12,
    )
)
def test_hl7_shaped_noise_never_raises(chunks: list[tuple[Direction, bytes]]) -> None:
    parser = Hl7Parser(FLOW, CACHE)
    parser.feed(TS, b"\x0bMSH|^~\\&|X|Y\r\x1c\r", 1.0)
    for direction, data in chunks:
        parser.feed(direction, data, 1.0)
        assert all(len(b) <= MAX_BUFFERED for b in parser._buf.values())
    parser.eof(TS)
    parser.eof(TC)
    assert len(parser._seen) <= 2048


def test_memory_bounded_under_endless_unframed_input() -> None:
    parser = Hl7Parser(FLOW, CACHE)
    parser.feed(TS, b"MSH|^~\\&|A|B\r", 1.0)
    for _ in range(200):
        parser.feed(TS, b"OBX|1|ST|x||" + b"y" * 2000 + b"\r", 1.0)
        assert len(parser._buf[TS]) <= MAX_BUFFERED
    assert parser.state is ParserState.REJECTED
