"""SSDP parser (parsers/ssdp.py): NOTIFY, search responses and M-SEARCH per UPnP Device
Architecture 2.0 §1, allow-listed headers only, device type URNs, probe, robustness."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.base import Direction, FlowKey, Malformed, ParserState
from parsers.registry import Probe, default_registry
from parsers.ssdp import SsdpParser, device_types, parse_ssdp, probe

TV, CP, PRN = "10.20.0.90", "10.20.0.60", "10.20.0.51"
TO_S, TO_C = Direction.TO_SERVER, Direction.TO_CLIENT
UUID = "00000000-0000-1010-8000-544249123456"

NOTIFY = (
    "NOTIFY * HTTP/1.1\r\n"
    "HOST: 239.255.255.250:1900\r\n"
    "CACHE-CONTROL: max-age=1800\r\n"
    f"LOCATION: http://{TV}:52323/dmr.xml\r\n"
    "NT: urn:schemas-upnp-org:device:MediaRenderer:1\r\n"
    "NTS: ssdp:alive\r\n"
    "SERVER: Linux/2.6 UPnP/1.0 Sony-BDP/2.0\r\n"
    f"USN: uuid:{UUID}::urn:schemas-upnp-org:device:MediaRenderer:1\r\n"
    "X-Secret-Header: CANARY\r\n"
    "\r\n"
).encode()
REPLY = (
    "HTTP/1.1 200 OK\r\n"
    "CACHE-CONTROL: max-age=1800\r\n"
    "EXT:\r\n"
    f"LOCATION: http://{PRN}:8080/DevMgmt/DiscoveryTree.xml\r\n"
    "SERVER: Linux/3.4 UPnP/1.0 HP-UPnP/1.0\r\n"
    "st: urn:schemas-upnp-org:device:Printer:1\r\n"
    "USN: uuid:564E4238-4B33-3031-3630-3CD92B4F2A01::urn:schemas-upnp-org:device:Printer:1\r\n"
    "\r\n"
).encode()
SEARCH = (
    b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 2\r\n'
    b"ST: ssdp:all\r\nUSER-AGENT: Linux/5.15 UPnP/2.0 GUPnP/1.4\r\n\r\n"
)


def facts(flow: FlowKey, direction: Direction, data: bytes) -> set[tuple[str, str, str]]:
    return {(o.kind, o.host, o.value) for o in SsdpParser(flow).feed(direction, data, 1.0)}


def test_notify_from_a_media_renderer() -> None:
    got = facts(FlowKey(TV, 1900, "239.255.255.250", 1900, "udp"), TO_S, NOTIFY)
    assert got == {
        ("ssdp.server", TV, "Linux/2.6 UPnP/1.0 Sony-BDP/2.0"),
        ("ssdp.location", TV, f"http://{TV}:52323/dmr.xml"),
        ("ssdp.uuid", TV, UUID),
        ("ssdp.device_urn", TV, "urn:schemas-upnp-org:device:MediaRenderer:1"),
    }  # MediaRenderer has no type in the vocabulary; X- headers are never read


def test_search_response_from_a_printer() -> None:
    flow = FlowKey(CP, 50123, PRN, 1900, "udp")  # the response travels server -> client
    got = SsdpParser(flow).feed(TO_C, REPLY, 1.0)
    claims = {(o.kind, o.host, o.value, o.confidence) for o in got}
    assert ("ssdp.device_type", PRN, "printer", 0.6) in claims
    assert ("ssdp.uuid", PRN, "564e4238-4b33-3031-3630-3cd92b4f2a01", 1.0) in claims


def test_search_names_the_control_point() -> None:
    got = facts(FlowKey(CP, 50123, "239.255.255.250", 1900, "udp"), TO_S, SEARCH)
    assert got == {("ssdp.user_agent", CP, "Linux/5.15 UPnP/2.0 GUPnP/1.4")}


def test_the_usn_suffix_gives_the_type_when_nt_is_the_uuid() -> None:
    notify = NOTIFY.replace(
        b"NT: urn:schemas-upnp-org:device:MediaRenderer:1", f"NT: uuid:{UUID}".encode()
    ).replace(b"MediaRenderer", b"InternetGatewayDevice")
    got = facts(FlowKey(TV, 1900, "239.255.255.250", 1900, "udp"), TO_S, notify)
    assert ("ssdp.device_type", TV, "network-infrastructure") in got


def test_parse_rules() -> None:
    kind, headers = parse_ssdp(NOTIFY.replace(b"\r\n", b"\n"))  # bare LF is accepted
    assert kind == "notify" and headers["nts"] == "ssdp:alive"
    assert "x-secret-header" not in headers
    for bad in (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",  # plain HTTP, not SSDP
        b"NOTIFY * HTTP/1.1\r\nHOST: x\r\n\r\n",  # no NT, no USN
        b"NOTIFY * HTTP/1.1\r\nbroken header line\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"",
    ):
        try:
            parse_ssdp(bad)
        except Malformed:
            continue
        raise AssertionError(bad)


def test_device_type_table() -> None:
    table = device_types()
    assert table["schemas-upnp-org:device:printer"].device_type == "printer"
    assert table["schemas-upnp-org:device:mediarenderer"].device_type == ""


def test_probe_and_registry() -> None:
    for data in (NOTIFY, REPLY, SEARCH):
        assert probe(TO_S, data) is Probe.MATCH
    assert probe(TO_S, b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n") is Probe.NO
    registry = default_registry()
    spec, _ = registry.detect(registry.candidates("udp", (1900, 1900)), TO_S, NOTIFY)
    assert spec is not None and spec.name == "ssdp"


def test_values_are_bounded() -> None:
    long = NOTIFY.replace(b"Sony-BDP/2.0", b"x" * 5000)
    obs = SsdpParser(FlowKey(TV, 1900, "239.255.255.250", 1900, "udp")).feed(TO_S, long, 1.0)
    assert all(len(o.value) <= 256 for o in obs)


def test_a_broken_datagram_after_a_good_one_is_counted() -> None:
    parser = SsdpParser(FlowKey(TV, 1900, "239.255.255.250", 1900, "udp"))
    parser.feed(TO_S, NOTIFY, 1.0)
    assert parser.feed(TO_S, b"\x00garbage", 2.0) == []
    assert parser.state is ParserState.CONFIRMED and parser.bad_messages == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert probe(TO_S, data) in (Probe.MATCH, Probe.NO)
    parser = SsdpParser(FlowKey(TV, 1900, "239.255.255.250", 1900, "udp"))
    parser.feed(TO_S, data, 1.0)
    parser.feed(TO_S, b"NOTIFY * HTTP/1.1\r\n" + data, 2.0)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([NOTIFY, REPLY, SEARCH]), st.binary(max_size=40), st.integers(0, 400))
def test_spliced_messages_never_raise(base: bytes, junk: bytes, at: int) -> None:
    data = base[:at] + junk + base[at:]
    parser = SsdpParser(FlowKey(TV, 1900, "239.255.255.250", 1900, "udp"))
    for obs in parser.feed(TO_S, data, 1.0):
        assert obs.value and len(obs.value) <= 256
