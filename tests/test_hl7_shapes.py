"""hl7apy once per message *shape*, not per signature: messages from many beds and devices
that differ only in identity values (MSH-4 facility, OBR-3/OBX-18/PRT ids, SFT version)
cost one hl7apy parse, and give exactly what hl7apy on every signature gave
(``SignatureCache(by_shape=False)``, the reference path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.base import Direction, FlowKey, Observation
from parsers.hl7 import Hl7Parser, SignatureCache, cut_frame, load_knowledge
from parsers.hl7 import signature as signature_module
from parsers.hl7.cutter import CutMessage
from parsers.hl7.facts import View
from parsers.hl7.signature import cutter_view, hl7apy_view, shape
from tests.hl7_feed import feed_pcap
from tests.hl7_fixtures import (
    ACK,
    ADT_A01,
    ALL_MESSAGES,
    BATCH,
    CANARIES,
    HL7_PCAPS,
    PCD01,
    PRT_ADT,
    PUMP,
    mllp,
)

PCAPS = HL7_PCAPS
KNOWLEDGE = load_knowledge()
DC = KNOWLEDGE.device_codes
FLOW = FlowKey("10.1.0.5", 40000, "10.2.0.9", 2575)
TS, TC = Direction.TO_SERVER, Direction.TO_CLIENT


def bed(message: bytes, i: int) -> bytes:
    """The same message from another bed's monitor: other facility, device ids, software."""
    return (
        message.replace(b"|ICU-WEST|", b"|BED%d|" % i)  # MSH-4
        .replace(b"0009FB0000000001", b"0009FB%010X" % i)  # MSH-3 universal id
        .replace(b"C.02.11", b"C.02.%d" % i)  # SFT-2
        .replace(b"MX800_DE12345678", b"MX800_DE%08d" % (10_000_000 + i))  # OBR-3/OBX-18
        .replace(b"0009FBFFFE0A1B2C", b"0009FBFFFE%06X" % i)  # EUI-64
        .replace(b"Plum 360_15550123", b"Plum 360_%08d" % (15_550_000 + i))  # pump serial
        .replace(b"15550999", b"%08d" % (16_000_000 + i))  # PRT serial
        .replace(b"|PUMPGW|", b"|PUMPGW%d|" % i)
        .replace(b"CTRL0001", b"CTRL%04d" % i)
        .replace(b"20240102030405", b"2025%010d" % i)
    )


def bench_oru(i: int) -> bytes:
    """Modelled on ``bench/make_hospital_pcap.py``'s hl7_oru: bed in MSH-4, monitor in OBX-18."""
    return b"\r".join(
        [
            b"MSH|^~\\&|PHILIPS_PIC_GW|ICU3^BED%02d|EPIC|GENERALHOSP|2025%010d||ORU^R01^ORU_R01"
            b"|C%d|P|2.6|||AL|NE||UNICODE UTF-8" % (i % 24 + 1, i, i),
            b"PID|||MRN0004711^^^MRN^MR||CANARY^PATIENT||19700101|F",
            b"PV1||I|ICU3^BED%02d^1" % (i % 24 + 1),
            b"OBR|1|C%d^PHILIPS_PIC_GW||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC" % i,
            b"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.1|98.6|262688^MDC_DIM_PERCENT^MDC"
            b"|||||R|||2025%010d||||MX800-%05d^PHILIPS^MX800" % (i, i),
            b"",
        ]
    )


class Counting:
    """Counts hl7apy_view calls (monkeypatched into ``signature``)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, cut: CutMessage, strict_msh: bool = True) -> tuple[View, bool]:
        self.calls += 1
        return hl7apy_view(cut, strict_msh)


def full(obs: list[Observation]) -> list[tuple[object, ...]]:
    return [(o.kind, o.host, o.value, o.ts, o.port, o.raw, o.confidence) for o in obs]


def cache_counters(cache: SignatureCache) -> tuple[object, ...]:
    return (cache.hits, cache.misses, cache.evictions, len(cache), cache.disagreements)


def conversation(
    chunks: list[tuple[Direction, bytes]], by_shape: bool, maxsize: int = 1024
) -> tuple[list[tuple[object, ...]], tuple[object, ...], SignatureCache]:
    cache = SignatureCache(KNOWLEDGE, maxsize=maxsize, by_shape=by_shape)
    out: list[Observation] = []
    parsers = [Hl7Parser(FLOW, cache), Hl7Parser(FLOW, cache)]  # two flows share the cache
    for parser in parsers:
        for n, (direction, data) in enumerate(chunks):
            out += parser.feed(direction, data, float(n))
        for direction in Direction:
            out += parser.eof(direction)
    counters = tuple(
        (p.pdus, dict(p._messages), p.bad_messages, p.truncated_messages, p.dropped_facts)
        for p in parsers
    )
    return full(out), counters, cache


def same_as_per_signature(chunks: list[tuple[Direction, bytes]], maxsize: int = 1024) -> None:
    obs, counters, cache = conversation(chunks, True, maxsize)
    ref_obs, ref_counters, ref = conversation(chunks, False, maxsize)
    assert obs == ref_obs
    assert counters == ref_counters
    assert cache_counters(cache) == cache_counters(ref)
    assert cache.hl7apy_errors == ref.hl7apy_errors == {}


# --- the point of it -------------------------------------------------------------------
def test_fifty_beds_of_one_shape_cost_one_hl7apy_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting()
    monkeypatch.setattr(signature_module, "hl7apy_view", counting)
    cache = SignatureCache(KNOWLEDGE)
    obs: list[Observation] = []
    for i in range(50):  # 50 beds, each its own monitor on its own connection
        flow = FlowKey(f"10.1.0.{i + 10}", 40000, "10.2.0.9", 2575)
        obs += Hl7Parser(flow, cache).feed(TS, mllp(bed(PCD01, i)), float(i))
    assert counting.calls == 1 and cache.hl7apy_runs == 1 and cache.shapes == 1
    assert cache.misses == 50  # 50 signatures, each interpreted once
    devices = {o.host for o in obs if o.kind == "hl7.eui64"}
    assert len(devices) == 50  # every bed's monitor is still named, with its own id
    facilities = {o.value for o in obs if o.kind == "hl7.sending_facility"}
    assert facilities == {f"BED{i}" for i in range(50)}
    assert all(o.confidence == 1.0 for o in obs if o.kind == "hl7.eui64")


def test_bench_monitors_of_one_shape_cost_one_hl7apy_parse() -> None:
    cache = SignatureCache(KNOWLEDGE)
    parser = Hl7Parser(FLOW, cache)
    for i in range(60):
        parser.feed(TS, mllp(bench_oru(i)), float(i))
    assert cache.hl7apy_runs == 1 and cache.misses == 60


@pytest.mark.parametrize("message", ALL_MESSAGES)
def test_cutter_agrees_with_hl7apy_on_every_bed(message: bytes) -> None:
    """What per-shape trust rests on: hl7apy's values are the cutter's for every bed."""
    for i in range(5):
        for cut in cut_frame(bed(message, i), DC):
            ref, _ = hl7apy_view(cut)
            assert signature_module._trailing_trimmed(ref) == signature_module._trailing_trimmed(
                cutter_view(cut)
            )


# A message with 15 identity values (MSH-3 universal id, MSH-4, MSH-6, SFT-1..4, OBR-3
# entity and namespace, OBX-18 entity and namespace, PRT-10 entity and namespace, PRT-16,
# PRT-20) and a charset (MSH-18, so the codec) to fill in.
TEMPLATE = b"\r".join(
    [
        b"MSH|^~\\&|GW^%s^EUI-64|%s|EMR|%s|20240102||ORU^R01^ORU_R01|C1|P|2.7||||||%s",
        b"SFT|%s|%s|%s|%s",
        b"OBR|1||%s^%s^0009FBFFFE0A1B2C^EUI-64",
        b"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||%s^%s",
        b"PRT|1|AD||EQUIP||||||%s^%s||||||%s||||%s||69985^X^MDC",
        b"",
    ]
)
IDENTITIES = 15
CHARSET = st.sampled_from([b"", b"8859/1", b"UNICODE UTF-8", b"ASCII"])


def from_template(values: list[bytes], charset: bytes = b"") -> CutMessage:
    msh_values, rest = values[:3], values[3:]
    (cut,) = cut_frame(TEMPLATE % (*msh_values, charset, *rest), DC)
    return cut


# Printable ASCII without delimiters, "#" or the escape character, not only spaces:
# what device ids, facility names, versions and dates look like. The shape never changes.
PLAIN = (
    st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters="|^~\\&#"),
        min_size=1,
        max_size=24,
    )
    .filter(str.strip)
    .map(str.encode)
)
# Anything a field can hold without ending it: delimiters, escapes, "#", whitespace, control
# characters, latin-1 and UTF-8 text, bytes the charset cannot decode. The shape may change;
# the result never differs from hl7apy's on every signature.
ANY = st.one_of(
    st.binary(max_size=12),
    st.text(max_size=12).map(str.encode),
    st.sampled_from([b" ", b"#", b"a#", b"\\F\\", b"\\X41\\", b"\\", b"\xa0", b"^", b"~ ", b"&"]),
).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"").replace(b"|", b""))
_BY_SHAPE = SignatureCache(KNOWLEDGE)  # shared by the examples: later ones hit earlier shapes


@settings(max_examples=40, deadline=None)
@given(values=st.lists(PLAIN, min_size=IDENTITIES, max_size=IDENTITIES), charset=CHARSET)
def test_identity_values_never_change_shape_or_result(values: list[bytes], charset: bytes) -> None:
    base = from_template([b"V"] * IDENTITIES, charset)
    cut = from_template(values, charset)
    assert shape(cut) == shape(base)
    _BY_SHAPE.lookup(base)
    runs = _BY_SHAPE.hl7apy_runs
    got = _BY_SHAPE.lookup(cut)
    assert _BY_SHAPE.hl7apy_runs == runs  # the cutter's values, trusted
    assert got == SignatureCache(KNOWLEDGE, by_shape=False).lookup(cut)  # as hl7apy says


@settings(max_examples=150, deadline=None)
@given(
    slot=st.integers(0, IDENTITIES - 1),
    value=ANY,
    other=ANY,
    charset=CHARSET,
)
def test_any_value_gives_what_hl7apy_per_signature_gives(
    slot: int, value: bytes, other: bytes, charset: bytes
) -> None:
    """Two messages that differ in one field: whichever shape they share, the second
    one's entry is what hl7apy on its own signature gives."""
    first = [b"V"] * IDENTITIES
    first[slot] = other
    second = [b"V"] * IDENTITIES
    second[slot] = value
    cache = SignatureCache(KNOWLEDGE)
    cache.lookup(from_template(first, charset))
    cut = from_template(second, charset)
    assert cache.lookup(cut) == SignatureCache(KNOWLEDGE, by_shape=False).lookup(cut)


def test_whitespace_only_field_is_its_own_shape() -> None:
    """hl7apy skips a whitespace-only OBX-18, the cutter keeps an empty one: the MDC code
    then names the OBR-3 device (hl7apy) or the sender (cutter). hl7apy decides."""
    obx = b"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1|||||||X|||||||%s"
    named, blank = (
        PCD01.replace(b"\rNTE|", b"\r" + obx % device + b"\rNTE|") for device in (b"MON1", b" ")
    )
    cache = SignatureCache(KNOWLEDGE)
    cache.lookup(cut_frame(named, DC)[0])
    (cut,) = cut_frame(blank, DC)
    assert cache.lookup(cut) == SignatureCache(KNOWLEDGE, by_shape=False).lookup(cut)
    assert cache.hl7apy_runs == 2


# --- same results as hl7apy per signature ----------------------------------------------
STREAMS = {
    "beds": [(TS, mllp(bed(m, i))) for i in range(6) for m in ALL_MESSAGES],
    "beds-interleaved": [
        (d, mllp(bed(m, i)))
        for i in range(6)
        for d, m in [(TS, PCD01), (TC, ACK), (TS, PUMP), (TS, PRT_ADT), (TS, BATCH)]
    ],
    "bench": [(TS, mllp(bench_oru(i))) for i in range(40)],
    "unframed": [(TS, b"".join(bed(m, i) for i in range(4) for m in (ADT_A01, PUMP, PCD01)))],
}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_by_shape_equals_per_signature(name: str) -> None:
    same_as_per_signature(STREAMS[name])


def test_by_shape_equals_per_signature_under_eviction() -> None:
    for maxsize in (1, 2, 5):
        same_as_per_signature(STREAMS["beds-interleaved"], maxsize)


@pytest.mark.parametrize("path", PCAPS, ids=lambda p: p.stem)
def test_by_shape_equals_per_signature_on_captures(path: Path) -> None:
    runs = []
    for by_shape in (True, False):
        cache = SignatureCache(KNOWLEDGE, by_shape=by_shape)
        flows = feed_pcap(path, lambda key, cache=cache: Hl7Parser(key, cache))  # type: ignore[misc]
        runs.append(
            (
                [(f.key, full(f.observations)) for f in flows],
                cache_counters(cache),
                dict(cache.hl7apy_errors),
            )
        )
    assert runs[0] == runs[1]


def test_entries_equal_per_signature_entries() -> None:
    """Interpretation, hl7apy verdict, MSH validity and agreement, message by message."""
    by_shape = SignatureCache(KNOWLEDGE)
    per_sig = SignatureCache(KNOWLEDGE, by_shape=False)
    for i in range(4):
        for message in ALL_MESSAGES:
            for cut in cut_frame(bed(message, i), DC):
                assert by_shape.lookup(cut) == per_sig.lookup(cut)
    assert by_shape.hl7apy_runs < per_sig.hl7apy_runs == per_sig.misses


# --- rejected and disagreeing shapes ---------------------------------------------------
def test_rejected_shape_keeps_reduced_confidence_without_rerunning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(cut: CutMessage, strict_msh: bool = True) -> tuple[View, bool]:
        raise ValueError("hl7apy says no")

    monkeypatch.setattr(signature_module, "hl7apy_view", failing)
    chunks = [(TS, mllp(bed(PCD01, i))) for i in range(10)]
    obs, _, cache = conversation(chunks, True)
    ref_obs, _, ref = conversation(chunks, False)
    assert obs == ref_obs  # the same reduced confidence for every bed
    assert any(o[-1] != 1.0 for o in obs)  # reduced confidence
    assert cache.hl7apy_runs == 1 and cache.hl7apy_errors == {"ValueError": 1}
    assert ref.hl7apy_runs == 10 and ref.hl7apy_errors == {"ValueError": 10}
    assert cache.misses == ref.misses == 10


def test_disagreeing_shape_runs_hl7apy_per_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    """hl7apy's values differed from the cutter's: the cutter is not trusted for the shape."""

    def other(cut: CutMessage, strict_msh: bool = True) -> tuple[View, bool]:
        view, valid = hl7apy_view(cut, strict_msh)
        (name, fields), *rest = view
        return ((name, {**fields, 6: [["ELSEWHERE"]]}), *rest), valid

    monkeypatch.setattr(signature_module, "hl7apy_view", other)
    chunks = [(TS, mllp(bed(PCD01, i))) for i in range(5)]
    obs, _, cache = conversation(chunks, True)
    ref_obs, _, ref = conversation(chunks, False)
    assert obs == ref_obs
    assert ("hl7.receiving_facility", FLOW.server, "ELSEWHERE") in {o[:3] for o in obs}
    assert cache.hl7apy_runs == ref.hl7apy_runs == 5
    assert cache.disagreements == ref.disagreements == 5


def test_shape_cache_is_bounded() -> None:
    cache = SignatureCache(KNOWLEDGE, max_shapes=2)
    parser = Hl7Parser(FLOW, cache)
    for i in range(5):  # MSH-3 namespace is part of the shape: five shapes
        parser.feed(TS, mllp(ADT_A01.replace(b"ORBIS", b"APP%d" % i)), 1.0)
    assert cache.shapes == 2 and cache.hl7apy_runs == 5
    parser.feed(TS, mllp(ADT_A01.replace(b"ORBIS", b"APP4").replace(b"KLINIKUM", b"K2")), 1.0)
    assert cache.hl7apy_runs == 5  # the newest shape is still cached
    parser.feed(TS, mllp(ADT_A01.replace(b"ORBIS", b"APP0").replace(b"KLINIKUM", b"K2")), 1.0)
    assert cache.hl7apy_runs == 6  # the oldest was evicted


# --- what a shape is -------------------------------------------------------------------
def one_shape(message: bytes) -> object:
    (cut,) = cut_frame(message, DC)
    return shape(cut)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"|ICU-WEST|", b"|PICU-EAST-17|"),  # MSH-4 facility
        (b"|EMR|HOSP|", b"|EMR|OTHERHOSP|"),  # MSH-6
        (b"PIIC^0009FB0000000001", b"PIIC^0009FB00000000FF"),  # MSH-3 universal id
        (b"C.02.11", b"D.01.00"),  # SFT-2
        (b"|Philips Medical Systems|", b"|Philips Healthcare|"),  # SFT-1
        (b"MX800_DE12345678", b"MX450_DE99"),  # OBR-3 / OBX-18 entity
        (b"0009FBFFFE0A1B2C", b"0009FBFFFE0A1B99"),  # EUI-64
        (b"|69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0", b"|69985^X^MDC|1.0"),  # OBX-3
        (b"CTRL0001", b"CTRL9999"),  # MSH-10: not even in the cut
    ],
)
def test_shape_ignores_identity_values(old: bytes, new: bytes) -> None:
    other = PCD01.replace(old, new)
    assert other != PCD01
    assert one_shape(other) == one_shape(PCD01)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"|PIIC^", b"|PIIX^"),  # MSH-3 namespace: sending application
        (b"|EMR|HOSP|", b"|LIS|HOSP|"),  # MSH-5: receiving application
        (b"ORU^R01^ORU_R01", b"ORU^R40^ORU_R01"),  # MSH-9
        (b"|2.6|", b"|2.5|"),  # MSH-12
        (b"UNICODE UTF-8", b"8859/1"),  # MSH-18
        (b"IHE_PCD_001^", b"IHE_PCD_002^"),  # MSH-21
        (b"|^~\\&|", b"|^~\\#|"),  # MSH-2
        (b"|ICU-WEST|", b"|ICU^WEST|"),  # MSH-4: one more component
        (b"|ICU-WEST|", b"|ICU\\T\\WEST|"),  # an escape sequence
        (b"|ICU-WEST|", "|ICU-WÖST|".encode()),  # non-ASCII bytes
        (b"|C.02.11|", b"||"),  # SFT-2 now empty
        (b"MX800_DE12345678^PHILIPS^0009", b"MX800_DE12345678^^0009"),  # OBX-18 comp 2 empty
        (b"||MX800_DE12345678^PHILIPS^0009FBFFFE0A1B2C^EUI-64\r", b"||X~Y\r"),  # repetitions
        (b"\rNTE|", b"\rEQU|E1\rNTE|"),  # one more kept segment
    ],
)
def test_shape_follows_structure(old: bytes, new: bytes) -> None:
    other = PCD01.replace(old, new)
    assert other != PCD01
    assert one_shape(other) != one_shape(PCD01)


def test_shape_holds_no_patient_data_and_no_identity() -> None:
    for message in ALL_MESSAGES:
        for cut in cut_frame(message, DC):
            text = repr(shape(cut))
            for canary in CANARIES:
                if canary != "CANARY" and "CANARY\\\\F\\\\HIS" not in text:
                    assert canary not in text, canary
    text = repr(one_shape(PCD01))
    for identity in ("ICU-WEST", "HOSP'", "0009FB", "MX800", "C.02.11", "Philips", "DE1234"):
        assert identity not in text, identity
