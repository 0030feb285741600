"""DNS/LLMNR parser and the shared DNS message decoder (parsers/dns.py): annotated fixtures,
compression-pointer safety, answer scoping, hypothesis robustness, the public QinQ+PPPoE
capture through the real pipeline and tshark's DNS dissector as a reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.base import Direction, FlowKey, Malformed, ParserState
from parsers.dns import (
    MAX_QUERY_NAMES_PER_FLOW,
    DnsParser,
    clean_text,
    name_text,
    os_hint,
    parse_message,
    probe,
    read_name,
    reverse_address,
)
from parsers.registry import Probe, default_registry
from tests.test_discovery_captures import evidence, report, tshark

REPO = Path(__file__).resolve().parents[1]
PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "public"
QINQ = PUBLIC / "ndpi__dns_mixed_qinq.pcap"

CLIENT, SERVER = "10.20.0.101", "10.20.0.10"
FLOW = FlowKey(CLIENT, 49700, SERVER, 53, "udp")
TO_S, TO_C = Direction.TO_SERVER, Direction.TO_CLIENT


def hx(text: str) -> bytes:
    """Hex with ``#`` comments and ``'ascii'`` literals, for annotated fixtures."""
    out = b""
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        parts = line.split("'")
        for i, part in enumerate(parts):
            out += part.encode() if i % 2 else bytes.fromhex(part)
    return out


# A query for pacs.hospital.local (RFC 1035 §4.1.1-4.1.2).
QUERY = hx("""
    1a01 0100 0001 0000 0000 0000        # id, RD, 1 question
    04 'pacs' 08 'hospital' 05 'local' 00  # offset 12: pacs.hospital.local
    0001 0001                            # A, IN
""")
# Its answer: CNAME to srv-pacs01.hospital.local, then that name's A record 10.30.0.10.
RESPONSE = hx("""
    1a01 8580 0001 0002 0000 0000        # id, QR AA RD RA, 1 question, 2 answers
    04 'pacs' 08 'hospital' 05 'local' 00  # offset 12 (hospital at 17)
    0001 0001
    c00c 0005 0001 00000e10 000d         # offset 37: pacs.hospital.local CNAME, rdlength 13
    0a 'srv-pacs01' c011                 # offset 49: srv-pacs01 + pointer to hospital.local
    c031 0001 0001 00000e10 0004         # srv-pacs01.hospital.local A
    0a1e000a                             # 10.30.0.10
""")
# PTR answer: 10.0.30.10.in-addr.arpa -> srv-pacs01.hospital.local
PTR_RESPONSE = hx("""
    1a02 8580 0001 0001 0000 0000
    02 '10' 01 '0' 02 '30' 02 '10' 07 'in-addr' 04 'arpa' 00   # offset 12
    000c 0001
    c00c 000c 0001 00000e10 001b
    0a 'srv-pacs01' 08 'hospital' 05 'local' 00
""")


def feed(parser: DnsParser, *datagrams: tuple[Direction, bytes]) -> list[tuple[str, str, str]]:
    out = []
    for direction, data in datagrams:
        out += [(o.kind, o.host, o.value) for o in parser.feed(direction, data, 1.0)]
    return out


# --- decoder -------------------------------------------------------------------------
def test_fixture_decodes_to_the_annotated_fields() -> None:
    msg = parse_message(RESPONSE)
    assert (msg.ident, msg.is_response, msg.opcode, msg.rcode) == (0x1A01, True, 0, 0)
    [q] = msg.questions
    assert name_text(q.name) == "pacs.hospital.local" and (q.qtype, q.qclass) == (1, 1)
    cname, a = msg.records
    assert name_text(msg.rdata_name(cname)) == "srv-pacs01.hospital.local"
    assert name_text(a.name) == "srv-pacs01.hospital.local"
    assert str(msg.address(a)) == "10.30.0.10"


def test_pointer_to_itself_is_malformed() -> None:
    with pytest.raises(Malformed, match="backwards"):
        read_name(bytes(12) + b"\xc0\x0c", 12)


def test_forward_pointer_is_malformed() -> None:
    data = bytes(12) + b"\xc0\x10" + b"\x00\x00" + b"\x01a\x00"
    with pytest.raises(Malformed, match="backwards"):
        read_name(data, 12)


def test_pointer_loop_between_two_names_is_malformed() -> None:
    # offset 12: "a" + pointer to 16; offset 16: "b" + pointer to 12: a loop.
    data = bytes(12) + b"\x01a\xc0\x10" + b"\x01b\xc0\x0c"
    with pytest.raises(Malformed):
        read_name(data, 16)  # 16 -> 12 is backwards, 12 -> 16 is not
    with pytest.raises(Malformed):
        read_name(data, 12)


def test_pointer_into_the_middle_of_the_current_name_is_malformed() -> None:
    # "aa.bb" at 12 ending with a pointer back to 15 ("bb" of the same name): a loop.
    data = bytes(12) + b"\x02aa\x02bb\xc0\x0f"
    with pytest.raises(Malformed):
        read_name(data, 12)


def test_long_legal_pointer_chain_is_followed() -> None:
    data = bytearray(12) + b"\x01z\x00"
    prev = 12
    for i in range(40):
        here = len(data)
        data += bytes([1, ord("a") + i % 26]) + bytes([0xC0 | prev >> 8, prev & 0xFF])
        prev = here
    name, end = read_name(bytes(data), prev)
    assert len(name) == 41 and end == prev + 4


def test_name_longer_than_255_bytes_is_malformed() -> None:
    data = bytes(12) + (b"\x3f" + b"a" * 63) * 4 + b"\x00"
    with pytest.raises(Malformed, match="longer"):
        read_name(data, 12)


def test_extended_label_types_and_cut_names_are_malformed() -> None:
    for tail in (b"\x41abc\x00", b"\x05ab", b"\xc0"):
        with pytest.raises(Malformed):
            read_name(bytes(12) + tail, 12)


def test_counts_that_cannot_fit_and_trailing_bytes_are_malformed() -> None:
    with pytest.raises(Malformed):
        parse_message(hx("0000 0000 0001 ffff 0000 0000") + bytes(20))
    with pytest.raises(Malformed, match="after the last record"):
        parse_message(QUERY + b"\x00")
    assert parse_message(QUERY + b"\x00", exact=False).questions


def test_reverse_names() -> None:
    msg = parse_message(PTR_RESPONSE)
    assert str(reverse_address(msg.questions[0].name)) == "10.30.0.10"
    v6 = tuple(c.encode() for c in reversed("fd000020" + "0" * 22 + "51")) + (b"ip6", b"arpa")
    assert str(reverse_address(v6)) == "fd00:20::51"
    assert reverse_address((b"300", b"1", b"1", b"10", b"in-addr", b"arpa")) is None
    assert reverse_address((b"1", b"10", b"in-addr", b"arpa")) is None


def test_text_is_cleaned_and_bounded() -> None:
    assert clean_text(b"a\x00b\r\nc\x1b[31m", 50) == "a b c [31m"
    assert len(clean_text(b"x" * 1000)) == 200
    assert name_text((b"Dot.In", b"Label")) == "dot\\.in.label"


# --- probe ---------------------------------------------------------------------------
def test_probe() -> None:
    assert probe(TO_S, QUERY) is Probe.MATCH
    assert probe(TO_C, RESPONSE) is Probe.MATCH
    assert probe(TO_S, QUERY[:-1]) is Probe.NO
    assert probe(TO_S, b"GET / HTTP/1.1\r\n\r\n") is Probe.NO
    assert probe(TO_S, b"") is Probe.NO
    two_questions = hx("0001 0100 0002 0000 0000 0000") + QUERY[12:] + QUERY[12:]
    assert probe(TO_S, two_questions) is Probe.NO
    query_with_answer = hx("1a01 0100 0001 0001 0000 0000") + RESPONSE[12:62]
    assert probe(TO_S, query_with_answer[:62]) is Probe.NO


def test_registry_sends_port_53_to_dns() -> None:
    registry = default_registry()
    specs = registry.candidates("udp", (53, 49700))
    found, _ = registry.detect(specs, TO_S, QUERY)
    assert found is not None and found.name == "dns"


# --- parser --------------------------------------------------------------------------
def test_query_and_answer_facts() -> None:
    got = feed(DnsParser(FLOW), (TO_S, QUERY), (TO_C, RESPONSE))
    assert ("dns.query", CLIENT, "pacs.hospital.local") in got
    assert ("dns.hostname", "10.30.0.10", "srv-pacs01.hospital.local") in got
    assert ("dns.name", "10.30.0.10", "pacs.hospital.local") in got
    assert got.count(("dns.query", CLIENT, "pacs.hospital.local")) == 1  # once per flow


def test_answer_confidences_are_low() -> None:
    parser = DnsParser(FLOW)
    obs = parser.feed(TO_C, RESPONSE, 1.0) + parser.feed(TO_C, PTR_RESPONSE, 2.0)
    conf = {(o.kind, o.value): o.confidence for o in obs}
    assert conf[("dns.hostname", "srv-pacs01.hospital.local")] == 0.5  # PTR beat A (0.3)
    assert all(o.confidence <= 0.5 for o in obs if o.kind.endswith(".hostname"))


def test_ptr_answer_names_the_reversed_address() -> None:
    got = feed(DnsParser(FLOW), (TO_C, PTR_RESPONSE))
    assert got == [("dns.hostname", "10.30.0.10", "srv-pacs01.hospital.local")]


def test_global_addresses_are_not_named() -> None:
    public = RESPONSE[:-4] + bytes([13, 107, 4, 52])
    got = feed(DnsParser(FLOW), (TO_C, public))
    assert not [g for g in got if g[1] == "13.107.4.52"]
    assert ("dns.query", CLIENT, "pacs.hospital.local") in got  # the question still counts


def test_loopback_answers_are_not_named() -> None:
    local = RESPONSE[:-4] + bytes([127, 0, 0, 1])
    assert not [g for g in feed(DnsParser(FLOW), (TO_C, local)) if g[1] == "127.0.0.1"]


def test_ipv4_mapped_answers_name_the_ipv4_host() -> None:
    aaaa = hx("""
        1a07 8580 0001 0001 0000 0000
        04 'pacs' 00 001c 0001                         # offset 12: pacs AAAA
        c00c 001c 0001 00000e10 0010
        00000000000000000000ffff0a1e000a               # ::ffff:10.30.0.10
    """)
    assert ("dns.hostname", "10.30.0.10", "pacs") in feed(DnsParser(FLOW), (TO_C, aaaa))


def test_nxdomain_names_nothing() -> None:
    nx = bytearray(RESPONSE)
    nx[3] = 0x83  # rcode 3
    got = feed(DnsParser(FLOW), (TO_C, bytes(nx)))
    assert [g[0] for g in got] == ["dns.query"]


def test_os_hint_from_connectivity_probe_names() -> None:
    assert os_hint("www.msftconnecttest.com") == "Windows"
    assert os_hint("captive.apple.com") == "Apple"
    assert os_hint("notmsftconnecttest.com") is None


def test_query_names_are_bounded_per_flow() -> None:
    parser = DnsParser(FLOW)
    for i in range(MAX_QUERY_NAMES_PER_FLOW + 10):
        label = f"h{i:03d}".encode()
        query = hx("0001 0100 0001 0000 0000 0000") + b"\x04" + label + b"\x00\x00\x01\x00\x01"
        parser.feed(TO_S, query, float(i))
    assert parser.dropped_queries == 10


def test_reverse_queries_are_not_kept_as_names() -> None:
    query = hx("1a02 0100 0001 0000 0000 0000") + PTR_RESPONSE[12:49]
    assert feed(DnsParser(FLOW), (TO_S, query)) == []


def test_a_broken_datagram_after_a_good_one_does_not_reject_the_flow() -> None:
    parser = DnsParser(FLOW)
    feed(parser, (TO_S, QUERY))
    loop = hx("1a06 8180 0001 0000 0000 0000 c00c 0001 0001")
    assert parser.feed(TO_C, loop, 2.0) == []
    assert parser.state is ParserState.CONFIRMED and parser.bad_messages == 1
    assert feed(parser, (TO_C, RESPONSE))


def test_a_broken_first_datagram_rejects() -> None:
    parser = DnsParser(FLOW)
    assert parser.feed(TO_S, b"\x00\x01garbage", 1.0) == []
    assert parser.state is ParserState.REJECTED


def test_llmnr_answer_from_the_owner() -> None:
    flow = FlowKey("10.20.0.101", 5355, "10.20.0.102", 56001, "udp")
    answer = hx("""
        7a01 8000 0001 0001 0000 0000
        0a 'WARD3-PC01' 00 0001 0001          # offset 12
        c00c 0001 0001 0000001e 0004 0a140065 # A 10.20.0.101
    """)
    parser = DnsParser(flow)
    obs = parser.feed(TO_S, answer, 1.0)  # the owner is this flow's first sender
    got = {(o.kind, o.host, o.value, o.confidence) for o in obs}
    assert ("llmnr.hostname", "10.20.0.101", "ward3-pc01", 0.7) in got
    assert ("llmnr.query", "10.20.0.102", "ward3-pc01", 1.0) in got


# --- robustness ----------------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert probe(TO_S, data) in (Probe.MATCH, Probe.NO)
    parser = DnsParser(FLOW)
    for direction in (TO_S, TO_C, TO_S):
        parser.feed(direction, data, 1.0)
    assert parser.state in (ParserState.CONFIRMED, ParserState.REJECTED)


@settings(max_examples=250, deadline=None)
@given(
    st.sampled_from([QUERY, RESPONSE, PTR_RESPONSE]),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    st.integers(0, 200),
)
def test_mutated_messages_never_raise(base: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(base)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    data = data[: len(data) - cut % 8]
    parser = DnsParser(FLOW)
    parser.feed(TO_S, QUERY, 0.0)  # confirmed: later bad datagrams are counted, not raised
    for obs in parser.feed(TO_C, bytes(data), 1.0):
        assert obs.value and len(obs.value) <= 200


# --- public capture: DNS inside QinQ + PPPoE -----------------------------------------
@pytest.mark.skipif(not QINQ.exists(), reason="public captures not present")
def test_public_qinq_pppoe_capture_through_the_pipeline() -> None:
    doc = report(QINQ)
    assert doc["stats"]["parser_errors"] == {} and doc["stats"]["parser_rejects"] == {}
    assert doc["flows"]["by_app"].get("dns") == 2
    got = evidence(doc)
    assert ("82.178.113.245", "dns.query", "e7.whatsapp.net") in got  # inside QinQ+PPPoE
    assert ("192.168.170.8", "dns.query", "www.example.com") in got
    assert ("192.168.170.8", "dns.query", "www.l.google.com") in got  # seen only answered
    # e7.whatsapp.net resolves to global addresses: they are not hospital devices.
    assert not any(e[1] == "dns.hostname" for e in got)


@pytest.mark.parametrize("capture", [QINQ, REPO / "pcaps" / "discovery" / "dns.pcap"])
def test_query_names_agree_with_tshark(capture: Path) -> None:
    if not capture.exists():
        pytest.skip("capture not present")
    rows = tshark(capture, "dns", "dns.qry.name")
    names = [n for row in rows for n in row[0].split("|")]
    want = {n.lower() for n in names if n and " " not in n}  # not "<Name contains a pointer..>"
    want = {n for n in want if not n.endswith(".arpa")}
    got = {e[2] for e in evidence(report(capture)) if e[1] == "dns.query"}
    assert got == want
