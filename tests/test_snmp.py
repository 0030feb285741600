"""SNMP v1/v2c parser (parsers/snmp.py): hand-checked BER, the community never kept, the
system group, ENTITY-MIB and printer tables, traps, the probe, and robustness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.base import Direction, FlowKey, Malformed, ParserState
from parsers.registry import Probe, default_registry
from parsers.snmp import SnmpParser, decode_oid, enterprise_of, parse_snmp, probe
from tests.test_dns import hx

NMS, AGENT = "10.20.0.5", "10.20.0.2"
FLOW = FlowKey(NMS, 50161, AGENT, 161, "udp")
TRAP_FLOW = FlowKey(AGENT, 52001, NMS, 162, "udp")
TO_S, TO_C = Direction.TO_SERVER, Direction.TO_CLIENT
COMMUNITY = b"s3cret-CANARY"


def tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    length = (
        bytes([n])
        if n < 0x80
        else bytes([0x81, n])
        if n < 0x100
        else bytes([0x82, n >> 8, n & 0xFF])
    )
    return bytes([tag]) + length + value


def oid(text: str) -> bytes:
    arcs = [int(a) for a in text.split(".")]
    out = bytes([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, out)


def octets(text: str) -> bytes:
    return tlv(0x04, text.encode())


def integer(n: int) -> bytes:
    return tlv(0x02, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))


def varbinds(*pairs: tuple[str, bytes]) -> bytes:
    return tlv(0x30, b"".join(tlv(0x30, oid(o) + v) for o, v in pairs))


def message(pdu_tag: int, body: bytes, version: int = 1, community: bytes = COMMUNITY) -> bytes:
    return tlv(0x30, integer(version) + tlv(0x04, community) + tlv(pdu_tag, body))


def response(*pairs: tuple[str, bytes], request_id: int = 7) -> bytes:
    return message(0xA2, integer(request_id) + integer(0) + integer(0) + varbinds(*pairs))


# sysName.0 = "sw1" in a v2c GetResponse, byte by byte (RFC 3416 §3, X.690).
ANNOTATED = hx("""
    30 29                      # SEQUENCE, 41 bytes
      02 01 01                 # version 1 = v2c
      04 06 'public'           # community: skipped unread
      a2 1c                    # GetResponse PDU, 28 bytes
        02 01 07               # request-id 7
        02 01 00 02 01 00      # error-status, error-index
        30 11                  # varbind list
          30 0f                # varbind
            06 08 2b06010201010500   # 1.3.6.1.2.1.1.5.0 sysName
            04 03 'sw1'
""")
CISCO = (
    "Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E4, RELEASE"
    " SOFTWARE (fc2)\r\nTechnical Support: http://www.cisco.com/techsupport"
)
SYSTEM = response(
    ("1.3.6.1.2.1.1.1.0", octets(CISCO)),
    ("1.3.6.1.2.1.1.2.0", oid("1.3.6.1.4.1.9.1.1208")),
    ("1.3.6.1.2.1.1.4.0", octets("Jane CANARY x4711")),
    ("1.3.6.1.2.1.1.5.0", octets("sw-ward3-01")),
    ("1.3.6.1.2.1.1.6.0", octets("Ward 3 closet CANARY")),
    ("1.3.6.1.2.1.1.7.0", integer(6)),
)


def feed(flow: FlowKey, *datagrams: tuple[Direction, bytes]) -> list[tuple[str, str, str, float]]:
    parser = SnmpParser(flow)
    out = []
    for direction, data in datagrams:
        out += [(o.kind, o.host, o.value, o.confidence) for o in parser.feed(direction, data, 1.0)]
    return out


def test_annotated_response() -> None:
    msg = parse_snmp(ANNOTATED)
    assert (msg.version, msg.pdu) == (1, 0xA2)
    assert msg.varbinds == [("1.3.6.1.2.1.1.5.0", 0x04, b"sw1")]
    assert ("snmp.hostname", AGENT, "sw1", 0.8) in feed(FLOW, (TO_C, ANNOTATED))


def test_oids() -> None:
    assert decode_oid(bytes.fromhex("2b06010401090101")) == "1.3.6.1.4.1.9.1.1"
    assert decode_oid(bytes.fromhex("2b0601040182b92a")) == "1.3.6.1.4.1.40106"
    assert decode_oid(bytes.fromhex("88 37 03".replace(" ", ""))) == "2.999.3"
    for bad in (b"", b"\x2b\x86"):
        with pytest.raises(Malformed):
            decode_oid(bad)
    assert enterprise_of("1.3.6.1.4.1.9.1.1208") is not None
    assert enterprise_of("1.3.6.1.2.1.1.1.0") is None


def test_system_group_of_a_cisco_switch() -> None:
    got = feed(FLOW, (TO_C, SYSTEM))
    facts = {(k, h, v) for k, h, v, _ in got}
    conf = {(k, v): c for k, _, v, c in got}
    assert ("snmp.sys_object_id", AGENT, "1.3.6.1.4.1.9.1.1208") in facts
    assert conf[("snmp.vendor", "Cisco")] == 0.8
    assert conf[("snmp.hostname", "sw-ward3-01")] == 0.8
    assert conf[("snmp.software_version", "15.2(7)E4")] == 0.6
    assert conf[("snmp.device_type", "network-infrastructure")] == 0.6  # sysDescr beats 0.5
    assert ("snmp.role", AGENT, "agent") in facts
    assert all(h == AGENT for _, h, _, _ in got)


def test_community_contact_and_location_are_never_kept() -> None:
    parser = SnmpParser(FLOW)
    obs = parser.feed(TO_C, SYSTEM, 1.0)
    text = repr(obs) + repr(vars(parser))
    for secret in ("s3cret", "CANARY", "Jane", "Ward 3"):
        assert secret not in text
    broken = SnmpParser(FLOW)
    broken.feed(TO_C, SYSTEM[:-3], 1.0)
    assert broken.state is ParserState.REJECTED and "s3cret" not in (broken.reject_reason or "")


def test_request_marks_the_manager_and_reads_no_values() -> None:
    get = message(
        0xA3,
        integer(1)
        + integer(0)
        + integer(0)
        + varbinds(("1.3.6.1.2.1.1.5.0", octets("set-by-manager"))),
    )  # a SetRequest
    assert parse_snmp(get).varbinds == [("1.3.6.1.2.1.1.5.0", 0x04, b"")]
    assert feed(FLOW, (TO_S, get)) == [("snmp.role", NMS, "manager", 1.0)]


def test_entity_chassis_columns_pair_across_responses() -> None:
    ent = "1.3.6.1.2.1.47.1.1.1.1"
    first = response(
        (f"{ent}.13.1001", octets("WS-C2960X-48FPD-L")), (f"{ent}.11.1002", octets("FOC-MODULE"))
    )
    second = response(
        (f"{ent}.5.1001", integer(3)),
        (f"{ent}.5.1002", integer(9)),
        (f"{ent}.11.1001", octets("FOC1234X0AB")),
    )
    got = {(k, v) for k, _, v, _ in feed(FLOW, (TO_C, first), (TO_C, second))}
    assert ("snmp.model", "WS-C2960X-48FPD-L") in got  # emitted once the class is known
    assert ("snmp.serial", "FOC1234X0AB") in got
    assert ("snmp.serial", "FOC-MODULE") not in got  # a module, not the chassis


def test_printer_tables() -> None:
    hr = "1.3.6.1.2.1.25.3.2.1"
    data = response(
        ("1.3.6.1.2.1.1.2.0", oid("1.3.6.1.4.1.11.2.3.9.1")),
        (f"{hr}.2.1", oid("1.3.6.1.2.1.25.3.1.5")),
        (f"{hr}.3.1", octets("HP LaserJet M507")),
        ("1.3.6.1.2.1.43.5.1.1.17.1", octets("PHBQK12345")),
    )
    got = {(k, v, c) for k, _, v, c in feed(FLOW, (TO_C, data))}
    assert ("snmp.model", "LaserJet M507", 0.5) in got  # the vendor prefix trimmed
    assert ("snmp.serial", "PHBQK12345", 0.7) in got
    assert ("snmp.device_type", "printer", 0.6) in got


def test_net_snmp_and_windows_are_not_vendors() -> None:
    linux = response(
        ("1.3.6.1.2.1.1.2.0", oid("1.3.6.1.4.1.8072.3.2.10")),
        ("1.3.6.1.2.1.1.1.0", octets("Linux pacs 5.15.0-91-generic #101 x86_64")),
    )
    windows = response(("1.3.6.1.2.1.1.2.0", oid("1.3.6.1.4.1.311.1.1.3.1.2")))
    got = {(k, v) for k, _, v, _ in feed(FLOW, (TO_C, linux), (TO_C, windows))}
    assert ("snmp.agent_software", "Net-SNMP") in got
    assert ("snmp.os", "Linux 5.15.0-91-generic") in got
    assert ("snmp.os", "Windows") in got
    assert not [f for f in got if f[0] == "snmp.vendor"]


def test_unknown_enterprise_is_reported_as_a_number() -> None:
    got = feed(FLOW, (TO_C, response(("1.3.6.1.2.1.1.2.0", oid("1.3.6.1.4.1.99999.1")))))
    assert ("snmp.enterprise", AGENT, "99999", 1.0) in got


def test_v1_trap() -> None:
    body = (
        oid("1.3.6.1.4.1.9.1.1208")
        + tlv(0x40, bytes([10, 20, 0, 2]))
        + integer(2)
        + integer(0)
        + tlv(0x43, b"\x01\xe2\x40")
        + varbinds(("1.3.6.1.2.1.2.2.1.1.10101", integer(10101)))
    )
    trap = message(0xA4, body, version=0)
    got = {(k, h, v, c) for k, h, v, c in feed(TRAP_FLOW, (TO_S, trap))}
    assert ("snmp.vendor", AGENT, "Cisco", 0.5) in got
    assert ("snmp.role", NMS, "manager", 1.0) in got


def test_v3_and_bad_ber_are_rejected() -> None:
    v3 = tlv(0x30, integer(3) + tlv(0x30, b"") + octets("x") + octets("y"))
    indefinite = b"\x30\x80" + ANNOTATED[2:] + b"\x00\x00"
    for data in (v3, indefinite, ANNOTATED[:-1], ANNOTATED + b"\x00", b"\x30\x00"):
        assert probe(TO_C, data) is Probe.NO
        with pytest.raises(Malformed):
            parse_snmp(data)


def test_probe_and_registry() -> None:
    assert probe(TO_C, SYSTEM) is Probe.MATCH
    registry = default_registry()
    spec, _ = registry.detect(registry.candidates("udp", (50161, 161)), TO_C, SYSTEM)
    assert spec is not None and spec.name == "snmp"


def test_a_broken_datagram_after_a_good_one_is_counted() -> None:
    parser = SnmpParser(FLOW)
    parser.feed(TO_C, SYSTEM, 1.0)
    assert parser.feed(TO_C, SYSTEM[:-1], 2.0) == []
    assert parser.state is ParserState.CONFIRMED and parser.bad_messages == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert probe(TO_S, data) in (Probe.MATCH, Probe.NO)
    parser = SnmpParser(FLOW)
    parser.feed(TO_C, data, 1.0)
    parser.feed(TO_C, b"\x30" + data, 2.0)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([SYSTEM, ANNOTATED]),
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), max_size=6),
)
def test_mutated_messages_never_raise_or_leak(base: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(base)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    parser = SnmpParser(FLOW)
    parser.feed(TO_C, ANNOTATED, 0.0)
    for obs in parser.feed(TO_C, bytes(data), 1.0):
        assert "s3cret" not in obs.value  # the community; a flipped OID may name the contact
