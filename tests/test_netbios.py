"""NetBIOS name service parser (parsers/netbios.py): RFC 1002 packets annotated byte by byte,
suffix meanings, the user-name <03> rule, node status, the probe and robustness."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.base import Direction, FlowKey, Malformed, ParserState
from parsers.netbios import NetbiosParser, decode_netbios_name, probe, suffixes
from parsers.registry import Probe, default_registry
from tests.test_dns import hx

WS, PEER, NMS = "10.20.0.101", "10.20.0.102", "10.20.0.5"
TO_S, TO_C = Direction.TO_SERVER, Direction.TO_CLIENT
BCAST = FlowKey(WS, 137, "10.20.0.255", 137, "udp")


def encoded(name: str, suffix: int) -> str:
    raw = name.encode().ljust(15, b" ") + bytes([suffix])
    return "".join(chr(0x41 + (b >> 4)) + chr(0x41 + (b & 0xF)) for b in raw)


# Broadcast registration of WARD3-PC01<00> (RFC 1002 §4.2.2).
REGISTRATION = hx(f"""
    8101 2910 0001 0000 0000 0001            # trn id; opcode 5 (registration), RD, B; QD 1, AR 1
    20 '{encoded("WARD3-PC01", 0)}' 00       # offset 12: the encoded name, 32 letters A-P
    0020 0001                                # NB, IN
    c00c 0020 0001 000493e0 0006             # additional: the same name, TTL 300000, RDLENGTH 6
    0000 0a140065                            # NB_FLAGS (unique, B node), NB_ADDRESS 10.20.0.101
""")


def registration(name: str, suffix: int, flags: int, addr: bytes = b"\x0a\x14\x00\x65") -> bytes:
    return (
        REGISTRATION[:13]
        + encoded(name, suffix).encode()
        + REGISTRATION[45:-6]
        + bytes([flags >> 8, flags & 0xFF])
        + addr
    )


def facts(flow: FlowKey, *datagrams: tuple[Direction, bytes]) -> set[tuple[str, str, str]]:
    parser = NetbiosParser(flow)
    out = set()
    for direction, data in datagrams:
        out |= {(o.kind, o.host, o.value) for o in parser.feed(direction, data, 1.0)}
    return out


def test_name_decoding() -> None:
    assert decode_netbios_name((encoded("WARD3-PC01", 0x20).encode(),)) == (
        b"WARD3-PC01     ",
        0x20,
    )
    for bad in ((b"A" * 31,), (b"Q" * 32,), ()):
        try:
            decode_netbios_name(bad)
        except Malformed:
            continue
        raise AssertionError(bad)


def test_workstation_registration() -> None:
    parser = NetbiosParser(BCAST)
    [obs] = parser.feed(TO_S, REGISTRATION, 1.0)
    assert (obs.kind, obs.host, obs.value, obs.confidence) == (
        "netbios.hostname",
        WS,
        "WARD3-PC01",
        0.7,
    )


def test_suffixes_say_what_a_name_is() -> None:
    got = facts(
        BCAST,
        (TO_S, registration("HOSPITAL", 0x00, 0x8000)),
        (TO_S, registration("WARD3-PC01", 0x20, 0x0000)),
        (TO_S, registration("HOSPITAL", 0x1E, 0x8000)),
    )
    assert got == {
        ("netbios.workgroup", WS, "HOSPITAL"),
        ("netbios.hostname", WS, "WARD3-PC01"),
        ("netbios.role", WS, "file-server"),
    }


def test_domain_controller_is_a_server() -> None:
    got = facts(BCAST, (TO_S, registration("HOSPITAL", 0x1C, 0x8000)))
    assert ("netbios.device_type", WS, "server") in got
    assert ("netbios.role", WS, "domain-controller") in got


def test_messenger_names_are_never_read() -> None:
    """<03> may be the logged-on user's name."""
    assert facts(BCAST, (TO_S, registration("NURSE.CANARY", 0x03, 0x0000))) == set()


def test_registration_for_another_address_is_third_party() -> None:
    parser = NetbiosParser(BCAST)
    [obs] = parser.feed(TO_S, registration("OTHER", 0x00, 0, b"\x0a\x14\x00\x66"), 1.0)
    assert (obs.host, obs.confidence) == ("10.20.0.102", 0.5)


def test_query_names_someone_else() -> None:
    query = hx(f"4711 0110 0001 0000 0000 0000 20 '{encoded('WARD3-PC01', 0x20)}' 00 0020 0001")
    assert facts(FlowKey(PEER, 137, "10.20.0.255", 137, "udp"), (TO_S, query)) == set()


def test_positive_query_response() -> None:
    response = hx(f"""
        4711 8500 0000 0001 0000 0000                  # response, opcode 0, AA RD; 1 answer
        20 '{encoded("WARD3-PC01", 0x20)}' 00 0020 0001 000493e0 0006
        0000 0a140065                                  # NB_FLAGS, 10.20.0.101
    """)
    flow = FlowKey(PEER, 137, WS, 137, "udp")
    parser = NetbiosParser(flow)
    obs = parser.feed(TO_C, response, 1.0)  # sent by the owner, the flow's server
    assert {(o.kind, o.host, o.value, o.confidence) for o in obs} == {
        ("netbios.hostname", WS, "WARD3-PC01", 0.6),
        ("netbios.role", WS, "file-server", 1.0),
    }


NODE_STATUS = hx(f"""
    0042 8400 0000 0001 0000 0000                  # response, AA; 1 answer
    20 '{"CK" + "AA" * 15}' 00                     # the wildcard name "*"
    0021 0001 00000000 0066                        # NBSTAT, IN, TTL 0, RDLENGTH 102
    05                                             # 5 names
    'WARD3-PC01     ' 00 0400                      # unique, active
    'HOSPITAL       ' 00 8400                      # group, active
    'WARD3-PC01     ' 20 0400
    'NURSE.CANARY   ' 03 0400                      # the user: never read
    'OLDNAME        ' 00 1400                      # deregistering: not read
    1866da334455                                   # unit ID (MAC)
    {"00" * 5}
""")


def test_node_status_response() -> None:
    flow = FlowKey(NMS, 40137, WS, 137, "udp")
    got = facts(flow, (TO_C, NODE_STATUS))
    assert got == {
        ("netbios.hostname", WS, "WARD3-PC01"),
        ("netbios.workgroup", WS, "HOSPITAL"),
        ("netbios.role", WS, "file-server"),
        ("netbios.mac", WS, "18:66:da:33:44:55"),
    }


def test_node_status_with_too_many_names_is_malformed() -> None:
    bad = bytearray(NODE_STATUS)
    bad[12 + 34 + 10] = 0xFF  # NUM_NAMES 255: runs past the RDATA
    parser = NetbiosParser(FlowKey(NMS, 40137, WS, 137, "udp"))
    assert parser.feed(TO_C, bytes(bad), 1.0) == []
    assert parser.state is ParserState.REJECTED


def test_suffix_table_has_a_source_per_row() -> None:
    assert (0x00, "unique") in suffixes() and (0x03, "any") in suffixes()


def test_probe() -> None:
    assert probe(TO_S, REGISTRATION) is Probe.MATCH
    assert probe(TO_C, NODE_STATUS) is Probe.MATCH
    dns_query = hx("0001 0100 0001 0000 0000 0000 04 'pacs' 00 0001 0001")
    assert probe(TO_S, dns_query) is Probe.NO
    assert probe(TO_S, REGISTRATION[:-1]) is Probe.NO


def test_registry_sends_port_137_to_netbios() -> None:
    registry = default_registry()
    spec, _ = registry.detect(registry.candidates("udp", (137, 137)), TO_S, REGISTRATION)
    assert spec is not None and spec.name == "netbios"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert probe(TO_S, data) in (Probe.MATCH, Probe.NO)
    parser = NetbiosParser(BCAST)
    parser.feed(TO_S, data, 1.0)
    parser.feed(TO_C, data, 2.0)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([REGISTRATION, NODE_STATUS]),
    st.lists(st.tuples(st.integers(0, 160), st.integers(0, 255)), max_size=6),
)
def test_mutated_packets_never_raise(base: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(base)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    parser = NetbiosParser(BCAST)
    parser.feed(TO_S, REGISTRATION, 0.0)
    for obs in parser.feed(TO_C, bytes(data), 1.0):
        assert obs.value and len(obs.value) <= 200 and 0 < obs.confidence <= 1
