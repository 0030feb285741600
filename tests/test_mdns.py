"""mDNS / DNS-SD parser (parsers/mdns.py): whose records are whose, TXT model strings, service
type hints, the probe, and robustness against arbitrary and mutated datagrams."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.base import Direction, FlowKey, ParserState
from parsers.mdns import MdnsParser, model_value, probe, services, split_service, txt_pairs
from parsers.registry import Probe, default_registry
from tests.test_dns import hx

PRINTER, WS, PROXY = "10.20.0.50", "10.20.0.60", "10.20.0.80"
TO_S = Direction.TO_SERVER


def flow(sender: str) -> FlowKey:
    return FlowKey(sender, 5353, "224.0.0.251", 5353, "udp")


def name(text: str) -> bytes:
    out = b""
    for label in text.split("."):
        out += bytes([len(label.encode())]) + label.encode()
    return out + b"\x00"


def rr(owner: str, rtype: int, rdata: bytes, rclass: int = 0x8001) -> bytes:
    return name(owner) + struct.pack("!HHIH", rtype, rclass, 120, len(rdata)) + rdata


def a(owner: str, ip: str) -> bytes:
    return rr(owner, 1, bytes(map(int, ip.split("."))))


def ptr(owner: str, target: str) -> bytes:
    return rr(owner, 12, name(target), rclass=1)


def srv(owner: str, target: str, port: int) -> bytes:
    return rr(owner, 33, struct.pack("!HHH", 0, 0, port) + name(target))


def txt(owner: str, *items: bytes) -> bytes:
    return rr(owner, 16, b"".join(bytes([len(i)]) + i for i in items))


def message(
    *answers: bytes,
    qr: bool = True,
    questions: tuple[bytes, ...] = (),
    authority: tuple[bytes, ...] = (),
    additional: tuple[bytes, ...] = (),
    ident: int = 0,
) -> bytes:
    flags = 0x8400 if qr else 0
    head = struct.pack(
        "!6H", ident, flags, len(questions), len(answers), len(authority), len(additional)
    )
    return (
        head + b"".join(questions) + b"".join(answers) + b"".join(authority) + b"".join(additional)
    )


def facts(sender: str, *datagrams: bytes) -> set[tuple[str, str, str]]:
    parser = MdnsParser(flow(sender))
    out = set()
    for data in datagrams:
        out |= {(o.kind, o.host, o.value) for o in parser.feed(TO_S, data, 1.0)}
    return out


def confidences(sender: str, data: bytes) -> dict[tuple[str, str, str], float]:
    return {
        (o.kind, o.host, o.value): o.confidence
        for o in MdnsParser(flow(sender)).feed(TO_S, data, 1.0)
    }


INSTANCE = "Brother HL-L2350DW series._ipp._tcp.local"
HOST = "BRN3C2AF4112233.local"
ANNOUNCE = message(
    ptr("_ipp._tcp.local", INSTANCE),
    srv(INSTANCE, HOST, 631),
    txt(
        INSTANCE,
        b"txtvers=1",
        b"ty=Brother HL-L2350DW series",
        b"usb_MFG=Brother",
        b"usb_MDL=HL-L2350DW series",
        b"note=Ward 3B CANARY",
        b"adminurl=http://x/",
    ),
    a(HOST, PRINTER),
)

# The same kind of announcement annotated byte by byte (compressed, as responders send it).
ANNOTATED = hx("""
    0000 8400 0000 0003 0000 0000          # id 0, QR AA, 3 answers
    04 '_ipp' 04 '_tcp' 05 'local' 00      # offset 12: _ipp._tcp.local (_tcp at 17)
    000c 0001 00001194 0007                # PTR IN, ttl 4500, rdlength 7
    04 'HL-1' c00c                         # offset 39: HL-1._ipp._tcp.local
    c027 0010 8001 00001194 0011           # TXT of HL-1, cache-flush, rdlength 17
    10 'usb_MDL=HL-L2350'                  # one string of 16 bytes
    c027 0021 8001 00000078 000c           # SRV of HL-1, rdlength 12
    0000 0000 0277                         # priority 0, weight 0, port 631
    03 'BRN' c016                          # target BRN + pointer to local (offset 22)
""")


def test_annotated_announcement() -> None:
    got = facts(PRINTER, ANNOTATED)
    assert ("mdns.service", PRINTER, "_ipp._tcp") in got
    assert ("mdns.model", PRINTER, "HL-L2350") in got
    assert ("mdns.device_type", PRINTER, "printer") in got


def test_printer_announcement() -> None:
    got = confidences(PRINTER, ANNOUNCE)
    assert got[("mdns.hostname", PRINTER, "BRN3C2AF4112233")] == 0.8
    assert got[("mdns.vendor", PRINTER, "Brother")] == 0.7
    assert got[("mdns.model", PRINTER, "HL-L2350DW series")] == 0.7
    assert got[("mdns.device_type", PRINTER, "printer")] == 0.6
    assert ("mdns.service", PRINTER, "_ipp._tcp") in got
    assert not [k for k in got if "CANARY" in k[2] or "http://x/" in k[2]]  # note, adminurl


def test_service_port_is_the_srv_port() -> None:
    obs = MdnsParser(flow(PRINTER)).feed(TO_S, ANNOUNCE, 1.0)
    [service] = [o for o in obs if o.kind == "mdns.service"]
    assert service.port == 631


def test_ty_loses_the_vendor_announced_elsewhere() -> None:
    raw = "Brother HL-L2350DW series._pdl-datastream._tcp.local"
    data = message(
        ptr("_pdl-datastream._tcp.local", raw),
        srv(raw, HOST, 9100),
        txt(raw, b"ty=Brother HL-L2350DW series"),
        a(HOST, PRINTER),
    )
    parser = MdnsParser(flow(PRINTER))
    parser.feed(TO_S, ANNOUNCE, 1.0)
    models = {o.value for o in parser.feed(TO_S, data, 2.0) if o.kind == "mdns.model"}
    assert models == set()  # the same model, already reported
    fresh = {
        o.value for o in MdnsParser(flow(PRINTER)).feed(TO_S, data, 2.0) if o.kind == "mdns.model"
    }
    assert fresh == {"Brother HL-L2350DW series"}  # no vendor known: kept whole


def test_model_values() -> None:
    assert model_value("product", b"(Brother HL-L2350DW series)", None) == (
        "Brother HL-L2350DW series"
    )
    assert model_value("ty", b"HP LaserJet M507", "HP") == "LaserJet M507"
    assert model_value("ty", b"HPX 1", "HP") == "HPX 1"


def test_txt_keys_are_case_insensitive_and_the_first_wins() -> None:
    assert txt_pairs([b"USB_MDL=a", b"usb_mdl=b", b"flag", b"=x", b"k="]) == {
        "usb_mdl": b"a",
        "k": b"",
    }


def test_split_service() -> None:
    assert split_service((b"Brother HL", b"_ipp", b"_tcp", b"local")) == (
        "_ipp._tcp",
        (b"Brother HL",),
    )
    assert split_service((b"_universal", b"_sub", b"_ipp", b"_tcp", b"local")) == ("_ipp._tcp", ())
    assert split_service((b"host", b"local")) is None


def test_apple_model_identifiers() -> None:
    inst = "Anna's iPhone._device-info._tcp.local"
    got = facts("10.20.0.90", message(txt(inst, b"model=iPhone12,1")))
    assert ("mdns.device_type", "10.20.0.90", "phone") in got
    assert ("mdns.vendor", "10.20.0.90", "Apple") in got
    assert not [f for f in got if "Anna" in f[2]]  # instance names are not reported


def test_samba_fake_mac_model_is_not_apple() -> None:
    inst = "fileserver._device-info._tcp.local"
    got = facts("10.20.0.91", message(txt(inst, b"model=MacSamba")))
    assert ("mdns.model", "10.20.0.91", "MacSamba") in got
    assert not [f for f in got if f[0] in ("mdns.vendor", "mdns.device_type")]


def test_dicom_ae_title() -> None:
    inst = "HOROS_RR1._dicom._tcp.local"
    data = message(
        ptr("_dicom._tcp.local", inst),
        srv(inst, "mac.local", 11112),
        txt(inst, b"AETitle=HOROS_RR1"),
        a("mac.local", "10.20.0.70"),
    )
    got = facts("10.20.0.70", data)
    assert ("mdns.dicom_ae_title", "10.20.0.70", "HOROS_RR1") in got
    assert ("mdns.device_type", "10.20.0.70", "dicom-workstation") in got


def test_known_answers_in_a_query_are_not_the_askers() -> None:
    query = message(
        ptr("_ipp._tcp.local", INSTANCE),
        txt(INSTANCE, b"ty=Brother HL-L2350DW series", b"usb_MFG=Brother"),
        a(HOST, PRINTER),
        qr=False,
        questions=(name("_ipp._tcp.local") + b"\x00\x0c\x00\x01",),
    )
    got = facts(WS, query)
    assert got == {("mdns.browse", WS, "_ipp._tcp")}


def test_probing_records_in_the_authority_section_are_the_senders() -> None:
    probe_msg = message(
        qr=False,
        questions=(name(HOST) + b"\x00\xff\x80\x01",),
        authority=(a(HOST, PRINTER),),
    )
    assert facts(PRINTER, probe_msg) == {("mdns.hostname", PRINTER, "BRN3C2AF4112233")}


def test_sleep_proxy_records_go_to_the_sleeping_host() -> None:
    """A Bonjour Sleep Proxy (here an Apple TV) answers for a sleeping printer."""
    got = confidences(PROXY, ANNOUNCE)
    assert got[("mdns.hostname", PRINTER, "BRN3C2AF4112233")] == 0.5
    assert got[("mdns.model", PRINTER, "HL-L2350DW series")] == 0.49  # 0.7 x 0.7
    assert not [k for k in got if k[1] == PROXY]


def test_host_address_of_another_family_stays_with_the_sender() -> None:
    data = message(rr(HOST, 28, bytes.fromhex("fe80" + "00" * 12 + "0001")))
    assert facts(PRINTER, data) == set()  # an IPv6 address of an IPv4 sender: not a host


def test_services_table_has_documented_rows() -> None:
    table = services()
    assert table["_ipp._tcp"].device_type == "printer"
    assert table["_http._tcp"].device_type == ""  # known, and deliberately no type


# --- probe ---------------------------------------------------------------------------
def test_probe() -> None:
    assert probe(TO_S, ANNOUNCE) is Probe.MATCH
    unicast = message(
        qr=False, ident=0x1234, questions=(name("printer.local") + b"\x00\x01\x00\x01",)
    )
    assert probe(TO_S, unicast) is Probe.MATCH  # legacy unicast query: an ID, a .local name
    dns = message(qr=False, ident=0x1234, questions=(name("pacs.example") + b"\x00\x01\x00\x01",))
    assert probe(TO_S, dns) is Probe.NO
    assert probe(TO_S, ANNOUNCE[:-1]) is Probe.NO
    assert probe(TO_S, b"NOTIFY * HTTP/1.1\r\n") is Probe.NO


def test_registry_sends_port_5353_to_mdns() -> None:
    registry = default_registry()
    spec, _ = registry.detect(registry.candidates("udp", (5353, 5353)), TO_S, ANNOUNCE)
    assert spec is not None and spec.name == "mdns"


def test_a_broken_datagram_after_a_good_one_is_counted() -> None:
    parser = MdnsParser(flow(PRINTER))
    parser.feed(TO_S, ANNOUNCE, 1.0)
    assert parser.feed(TO_S, ANNOUNCE[:40], 2.0) == []
    assert parser.state is ParserState.CONFIRMED and parser.bad_messages == 1


# --- robustness ----------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert probe(TO_S, data) in (Probe.MATCH, Probe.NO)
    parser = MdnsParser(flow(PRINTER))
    parser.feed(TO_S, data, 1.0)
    parser.feed(TO_S, data, 2.0)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([ANNOUNCE, ANNOTATED]),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    st.integers(0, 40),
)
def test_mutated_announcements_never_raise(
    base: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(base)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    parser = MdnsParser(flow(PRINTER))
    parser.feed(TO_S, ANNOUNCE, 0.0)
    for obs in parser.feed(TO_S, bytes(data[: len(data) - cut]), 1.0):
        assert obs.value and len(obs.value) <= 200 and 0 < obs.confidence <= 1
