"""TLS handshake metadata: probe, hello parsing, JA3/JA3S (against tshark), JA4 (against the
FoxIO spec example), the X.509 name walker (against `cryptography` when installed), framing
that stops at encryption, robustness, the recorded captures vs truth and `medtap analyze`."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import tls
from parsers.base import Direction, FlowKey, Malformed, Observation, ParserState
from parsers.registry import Probe, default_registry
from tests.hl7_feed import feed_pcap

HERE = Path(__file__).resolve().parents[1] / "pcaps" / "banners"
FLOW = FlowKey("10.1.1.5", 51000, "10.1.1.9", 443)
C, S = Direction.TO_SERVER, Direction.TO_CLIENT
CAPTURES = ["tls12_device_cert", "tls13"]


# --- building blocks for annotated fixtures --------------------------------------------------
def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def vec16(data: bytes) -> bytes:
    return u16(len(data)) + data


def ext(kind: int, body: bytes) -> bytes:
    return u16(kind) + vec16(body)


def record(content_type: int, body: bytes, version: int = 0x0301) -> bytes:
    return bytes([content_type]) + u16(version) + u16(len(body)) + body


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


# FoxIO JA4.md example: 15 ciphers, 16 extensions (SNI, ALPN h2), TLS 1.3, sig algs.
SPEC_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
                0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
SPEC_EXTS = [0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023,
             0x0012, 0x002B, 0xFF01, 0x000B, 0x000A, 0x0015]
SPEC_SIGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def ext_body(kind: int, sni: str = "pacs.hospital.example") -> bytes:
    if kind == tls.EXT_SNI:  # server_name_list: host_name(0) + name
        name = sni.encode()
        return vec16(b"\x00" + vec16(name))
    if kind == tls.EXT_ALPN:  # protocol_name_list
        return vec16(b"\x02h2\x08http/1.1")
    if kind == tls.EXT_VERSIONS:  # ClientHello form: u8 length + versions
        return b"\x04\x03\x04\x03\x03"
    if kind == tls.EXT_SIG_ALGS:
        return vec16(b"".join(u16(s) for s in SPEC_SIGS))
    if kind == tls.EXT_GROUPS:  # x25519, secp256r1, secp384r1
        return vec16(u16(29) + u16(23) + u16(24))
    if kind == tls.EXT_POINT_FORMATS:  # uncompressed
        return b"\x01\x00"
    return b""


def client_hello(ciphers: list[int] = SPEC_CIPHERS, exts: list[int] = SPEC_EXTS,
                 version: int = 0x0303, sni: str = "pacs.hospital.example") -> bytes:
    body = (
        u16(version)  # legacy_version
        + bytes(range(32))  # random (never kept)
        + b"\x20" + b"\xee" * 32  # session id (never kept)
        + vec16(b"".join(u16(c) for c in ciphers))
        + b"\x01\x00"  # compression: null
        + vec16(b"".join(ext(k, ext_body(k, sni)) for k in exts))
    )
    return handshake(tls.CLIENT_HELLO, body)


def server_hello(version: int = 0x0303, cipher: int = 0xC02F, exts: bytes | None = None) -> bytes:
    if exts is None:
        exts = ext(0xFF01, b"\x00") + ext(tls.EXT_ALPN, vec16(b"\x08http/1.1"))
    body = u16(version) + bytes(32) + b"\x00" + u16(cipher) + b"\x00" + vec16(exts)
    return handshake(tls.SERVER_HELLO, body)


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    length = bytes([n]) if n < 0x80 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + content


def name(*attrs: tuple[str, int, bytes]) -> bytes:
    oids = {"cn": "550403", "o": "55040a", "ou": "55040b", "serial": "550405", "c": "550406"}
    return der(0x30, b"".join(
        der(0x31, der(0x30, der(0x06, bytes.fromhex(oids[a])) + der(tag, value)))
        for a, tag, value in attrs
    ))


def certificate(subject: bytes, issuer: bytes) -> bytes:
    """A structurally valid X.509 v3 certificate (signature bytes are junk: never checked)."""
    alg = der(0x30, der(0x06, bytes.fromhex("2a8648ce3d040302")))  # ecdsa-with-SHA256
    validity = der(0x30, der(0x17, b"240101000000Z") + der(0x17, b"340101000000Z"))
    ec_key = der(0x30, der(0x06, bytes.fromhex("2a8648ce3d0201")))  # id-ecPublicKey
    spki = der(0x30, ec_key + der(0x03, b"\x00" + b"\x04" * 65))
    tbs = der(0x30, der(0xA0, der(0x02, b"\x02")) + der(0x02, b"\x5e\xed") + alg + issuer
              + validity + subject + spki)
    return der(0x30, tbs + alg + der(0x03, b"\x00" + b"\x30" * 70))


DEVICE = name(("c", 0x13, b"DE"), ("o", 0x0C, "Drägerwerk AG & Co. KGaA".encode()),
              ("ou", 0x13, b"Anesthesia"), ("cn", 0x0C, b"Perseus A500"),
              ("serial", 0x13, b"ASFD-0042"))
VENDOR_CA = name(("o", 0x13, b"Draeger Medical Device CA"),
                 ("cn", 0x1E, "Dräger CA 1".encode("utf-16-be")))  # BMPString


def certificate_msg(*certs: bytes) -> bytes:
    entries = b"".join(len(c).to_bytes(3, "big") + c for c in certs)
    return handshake(tls.CERTIFICATE, len(entries).to_bytes(3, "big") + entries)


def run(chunks: list[tuple[Direction, bytes]]) -> tuple[tls.TlsParser, list[Observation]]:
    parser = tls.TlsParser(FLOW)
    out: list[Observation] = []
    for direction, data in chunks:
        out += parser.feed(direction, data, 1.0)
    return parser, out


def facts(obs: list[Observation]) -> set[tuple[str, str, str]]:
    return {(o.kind, o.host, o.value) for o in obs}


# --- probe -----------------------------------------------------------------------------------
SSLV2_HELLO = bytes.fromhex(
    "802e"  # 2-byte header, length 46
    "01"  # CLIENT-HELLO
    "0301"  # version TLS 1.0 (SSL 2.0-compatible hello of a TLS 1.0 client)
    "0015" "0000" "0010"  # cipher specs 21 bytes, session id 0, challenge 16
    "010080" "0700c0" "030080" "000005" "00000a" "00002f" "000035"  # 7 cipher specs
    + "11" * 16  # challenge
)


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (record(22, client_hello())[:6], Probe.MATCH),
        (record(22, server_hello(), 0x0303)[:6], Probe.MATCH),
        (b"\x16\x03", Probe.NEED_MORE),
        (b"\x16\x03\x01\x00\x05", Probe.NEED_MORE),
        (b"\x16\x03\x01\x00\x05\x0b", Probe.NO),  # a Certificate first: not a hello
        (b"\x16\x02\x00", Probe.NO),
        (b"\x16\x03\x09", Probe.NO),
        (b"\x17\x03\x03\x00\x20", Probe.NO),  # application data: nothing to read
        (b"GET / HTTP/1.1\r\n", Probe.NO),
        (SSLV2_HELLO, Probe.MATCH),
        (b"\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x11", Probe.NO),  # bad challenge size
        (b"\x0bMSH|", Probe.NO),
    ],
)
def test_probe(data: bytes, verdict: Probe) -> None:
    assert tls.probe(C, data) is verdict


def test_registered() -> None:
    assert default_registry().get("tls") is not None


# --- JA4 / JA3 -------------------------------------------------------------------------------
def test_ja4_matches_the_spec_example() -> None:
    hello = tls.parse_hello(client_hello()[4:], client=True)
    assert tls.ja4(hello) == "t13d1516h2_8daaf6152771_e5627efa2ab1"


def test_grease_is_ignored_everywhere() -> None:
    plain = tls.parse_hello(client_hello()[4:], client=True)
    greased = tls.parse_hello(
        client_hello([0x2A2A, *SPEC_CIPHERS], [0x0A0A, *SPEC_EXTS, 0xFAFA])[4:], client=True
    )
    assert tls.ja4(greased) == tls.ja4(plain)
    assert tls.ja3_string(greased) == tls.ja3_string(plain)


def test_ja3_string_layout() -> None:
    hello = tls.parse_hello(client_hello(exts=[0x0000, 0x000A, 0x000B, 0x000D])[4:], client=True)
    assert tls.ja3_string(hello) == (
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
        "0-10-11-13,29-23-24,0"
    )


@pytest.mark.parametrize(
    ("alpn", "chars"),
    [(b"h2", "h2"), (b"http/1.1", "h1"), (b"\xab", "ab"), (b"\xab\xcd", "ad"), (b"\x30\xab", "3b"),
     (b"\x30\x31\xab\xcd", "3d"), (b"\x30\xab\xcd\x31", "01"), (b"h", "hh"), (b"", "00")],
)
def test_ja4_alpn_characters(alpn: bytes, chars: str) -> None:
    assert tls._alpn_chars(alpn) == chars  # FoxIO JA4.md "ALPN Extension Value" examples


def test_ja4_without_extensions_or_ciphers() -> None:
    hello = tls.Hello(0x0301)
    assert tls.ja4(hello) == "t10i0000" + "00" + "_000000000000_000000000000"


# --- the stream parser -----------------------------------------------------------------------
def test_tls12_handshake_with_certificate() -> None:
    leaf = certificate(DEVICE, VENDOR_CA)
    chello = record(22, client_hello(version=0x0303, exts=[0x0000, 0x000A, 0x000B, 0x0010]))
    flight = record(22, server_hello() + certificate_msg(leaf, b"\x30\x00" * 300), 0x0303)
    after = record(20, b"\x01", 0x0303) + record(23, b"CANARY" * 1000, 0x0303)
    parser, out = run([(C, chello), (S, flight), (C, after), (S, after)])
    client, server = FLOW.client, FLOW.server
    got = facts(out)
    assert {
        ("tls.sni", server, "pacs.hospital.example"),
        ("tls.hostname", server, "pacs.hospital.example"),
        ("tls.client_versions", client, "TLS 1.2"),
        ("tls.alpn_offered", client, "h2,http/1.1"),
        ("tls.version", server, "TLS 1.2"),
        ("tls.cipher", server, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        ("tls.alpn", server, "http/1.1"),
        ("tls.ja3s_full", server, "771,49199,65281-16"),
        ("tls.cert_subject_cn", server, "Perseus A500"),
        ("tls.cert_subject_o", server, "Drägerwerk AG & Co. KGaA"),
        ("tls.cert_subject_ou", server, "Anesthesia"),
        ("tls.cert_subject_serial", server, "ASFD-0042"),
        ("tls.cert_issuer_o", server, "Draeger Medical Device CA"),
        ("tls.cert_issuer_cn", server, "Dräger CA 1"),
        ("tls.vendor", server, "Draeger"),
    } <= got
    assert not any(k == "tls.cert_self_signed" for k, _, _ in got)
    assert not any("CANARY" in v for _, _, v in got)
    assert parser.state is ParserState.CONFIRMED
    assert all(len(b) == 0 for b in parser._buf.values())  # the encrypted rest is not held
    by_kind = {o.kind: o for o in out}
    assert by_kind["tls.vendor"].confidence == 0.5 and by_kind["tls.sni"].port == 443


def test_split_into_single_bytes_gives_the_same() -> None:
    chello = record(22, client_hello())
    flight = record(22, server_hello(), 0x0303) + record(
        22, certificate_msg(certificate(DEVICE, DEVICE)), 0x0303)
    _, whole = run([(C, chello), (S, flight)])
    parts = [(C, chello[i : i + 1]) for i in range(len(chello))]
    parts += [(S, flight[i : i + 1]) for i in range(len(flight))]
    _, split = run(parts)
    assert facts(split) == facts(whole)
    assert ("tls.cert_self_signed", FLOW.server, "true") in facts(whole)


def test_hello_spread_over_records() -> None:
    hello = client_hello()
    chunks = record(22, hello[:50]) + record(22, hello[50:120]) + record(22, hello[120:])
    _, out = run([(C, chunks)])
    assert ("tls.ja4", FLOW.client, "t13d1516h2_8daaf6152771_e5627efa2ab1") in facts(out)


def test_tls13_server_stops_after_server_hello() -> None:
    exts = ext(tls.EXT_VERSIONS, u16(0x0304)) + ext(0x0033, b"\x00\x1d" + vec16(b"\x01" * 32))
    flight = record(22, server_hello(0x0303, 0x1302, exts), 0x0303) + record(20, b"\x01", 0x0303)
    flight += record(23, b"encrypted certificate CANARY", 0x0303)
    parser, out = run([(S, flight)])
    kinds = {o.kind for o in out}
    assert ("tls.version", FLOW.server, "TLS 1.3") in facts(out)
    assert ("tls.cipher", FLOW.server, "TLS_AES_256_GCM_SHA384") in facts(out)
    assert not any(k.startswith("tls.cert") for k in kinds)


def test_alert_before_encryption() -> None:
    _, out = run([(C, record(22, client_hello())), (S, record(21, b"\x02\x46", 0x0303))])
    assert ("tls.alert", FLOW.server, "fatal protocol_version") in facts(out)


def test_sslv2_client_hello() -> None:
    parser, out = run([(C, SSLV2_HELLO)])
    assert facts(out) == {
        ("tls.client_hello_format", FLOW.client, "sslv2"),
        ("tls.client_versions", FLOW.client, "TLS 1.0"),
    }
    assert parser.state is not ParserState.REJECTED


def test_oversized_leaf_is_not_buffered() -> None:
    huge = der(0x30, b"\x00" * (tls.MAX_CERT + 10))
    flight = record(22, server_hello(), 0x0303)
    msg = certificate_msg(huge)
    flight += b"".join(record(22, msg[i : i + 16000], 0x0303) for i in range(0, len(msg), 16000))
    parser, _ = run([(S, flight)])
    assert parser.stats["certificate_too_large"] == 1
    assert parser.state is not ParserState.REJECTED


@pytest.mark.parametrize(
    "data",
    [b"\x16\x03\x01\x00\x04\x01\x00\x00\x00", b"\x15\x03\x03\x00\x02\x02\x28" + b"\x99" * 10,
     b"\x16\x04\x01\x00\x01\x01", b"\x16\x03\x01\xff\xff\x01"],
)
def test_bad_records_reject_without_raising(data: bytes) -> None:
    parser, _ = run([(C, data)])
    assert parser.state in (ParserState.REJECTED, ParserState.PROBING)


# --- certificate names -----------------------------------------------------------------------
def test_certificate_walker() -> None:
    names = tls.parse_certificate(certificate(DEVICE, VENDOR_CA))
    assert names.subject == {"o": "Drägerwerk AG & Co. KGaA", "ou": "Anesthesia",
                             "cn": "Perseus A500", "serial": "ASFD-0042"}
    assert names.issuer == {"o": "Draeger Medical Device CA", "cn": "Dräger CA 1"}
    assert not names.self_signed


@pytest.mark.parametrize(
    ("subject", "claims"),
    [
        ({"o": "Internet Widgits Pty Ltd", "cn": "10.1.2.3"}, []),  # placeholder O, IP CN
        ({"o": "Klinikum Nord", "cn": "*.klinikum.example"}, [("vendor", "Klinikum Nord", 0.25)]),
        ({"o": "Philips Medical Systems", "cn": "PIIC iX"}, [("vendor", "Philips", 0.5)]),
        ({"cn": "mx800-0042.icu.example"}, [("hostname", "mx800-0042.icu.example", 0.2)]),
    ],
)
def test_certificate_claims_self_signed(subject: dict[str, str],
                                        claims: list[tuple[str, str, float]]) -> None:
    assert tls.certificate_claims(tls.CertNames(subject, subject, True)) == claims


def test_ca_issued_organisation_is_not_a_vendor() -> None:
    """A hospital-PKI certificate's O is the hospital, not the device's maker."""
    names = tls.CertNames({"o": "Klinikum Nord", "cn": "Monitor 7"}, {"o": "Klinikum Nord CA"},
                          False)
    assert tls.certificate_claims(names) == []


def test_every_subject_row_has_a_source() -> None:
    rows = tls.subject_rows()
    assert len(rows) >= 15 and {r.kind for r in rows} == {"vendor", "placeholder"}


def test_walker_agrees_with_cryptography_on_the_capture() -> None:
    x509 = pytest.importorskip("cryptography.x509")  # not a medtap dependency: skip without it
    NameOID = pytest.importorskip("cryptography.x509.oid").NameOID  # noqa: N806

    leaves = captured_leaves(HERE / "tls12_device_cert.pcap")
    assert len(leaves) == 2
    oids = {"cn": NameOID.COMMON_NAME, "o": NameOID.ORGANIZATION_NAME,
            "ou": NameOID.ORGANIZATIONAL_UNIT_NAME, "serial": NameOID.SERIAL_NUMBER}
    for der_bytes in leaves:
        ref = x509.load_der_x509_certificate(der_bytes)
        mine = tls.parse_certificate(der_bytes)
        for attrs, ref_name in ((mine.subject, ref.subject), (mine.issuer, ref.issuer)):
            theirs = {k: a[0].value for k, oid in oids.items()
                      if (a := ref_name.get_attributes_for_oid(oid))}
            assert attrs == theirs
        assert mine.self_signed == (ref.subject == ref.issuer)


def captured_leaves(path: Path) -> list[bytes]:
    """Leaf certificates as the parser's ``_certificate`` receives them."""
    seen: list[bytes] = []

    class Spy(tls.TlsParser):
        def _certificate(self, direction: Direction, der_bytes: bytes, ts: float
                         ) -> list[Observation]:
            seen.append(der_bytes)
            return super()._certificate(direction, der_bytes, ts)

    feed_pcap(path, Spy)
    return seen


# --- robustness ------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=8))
def test_arbitrary_bytes_never_raise(chunks: list[tuple[bool, bytes]]) -> None:
    parser = tls.TlsParser(FLOW)
    for to_server, data in chunks:
        parser.feed(C if to_server else S, data, 0.0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 300))
def test_mutated_hello_never_raises(noise: bytes, at: int) -> None:
    hello = bytearray(record(22, client_hello()))
    hello[5 + at : 5 + at + len(noise)] = noise[: max(0, len(hello) - 5 - at)]
    parser = tls.TlsParser(FLOW)
    parser.feed(C, bytes(hello), 0.0)
    parser.feed(S, bytes(hello), 0.0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_der_walker_only_raises_malformed(data: bytes) -> None:
    with contextlib.suppress(Malformed):
        tls.parse_certificate(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.binary(min_size=1, max_size=8))
def test_mutated_certificate_only_raises_malformed(at: int, noise: bytes) -> None:
    cert = bytearray(certificate(DEVICE, VENDOR_CA))
    cert[at % len(cert) : at % len(cert) + len(noise)] = noise
    with contextlib.suppress(Malformed):
        tls.parse_certificate(bytes(cert))


# --- the recorded captures -------------------------------------------------------------------
def capture_obs(name: str) -> list[Observation]:
    return [o for f in feed_pcap(HERE / f"{name}.pcap", tls.TlsParser) for o in f.observations]


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_matches_truth(name: str) -> None:
    truth = json.loads((HERE / f"{name}.truth.json").read_text("utf-8"))
    obs = capture_obs(name)
    got = facts(obs)
    for want in truth["observations"]:
        assert (want["kind"], want["host"], want["value"]) in got, want
    for kind in truth.get("no_kinds", []):
        assert not any(k == kind for k, _, _ in got), kind
    for o in obs:
        for canary in truth["canaries"]:
            assert canary not in o.value


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    args = ["tshark", "-r", str(path), "-d", "tcp.port==2762,tls", "-Y", "tls.handshake.type==1"
            " or tls.handshake.type==2", "-T", "fields", "-e", "ip.src"]
    for f in fields:
        args += ["-e", f]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in proc.stdout.splitlines()]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", CAPTURES)
def test_tshark_agrees(name: str) -> None:
    rows = tshark_fields(HERE / f"{name}.pcap", "tls.handshake.type",
                         "tls.handshake.extensions_server_name", "tls.handshake.ja3",
                         "tls.handshake.ja3_full", "tls.handshake.ja3s",
                         "tls.handshake.ja3s_full")
    theirs: set[tuple[str, str, str]] = set()
    for src, kind, sni, ja3, ja3_full, ja3s, ja3s_full in rows:
        if kind == "1":
            theirs |= {("tls.ja3", src, ja3), ("tls.ja3_full", src, ja3_full)}
            if sni:
                theirs.add(("tls.sni", "?", sni))
        elif kind.startswith("2"):
            theirs |= {("tls.ja3s", src, ja3s), ("tls.ja3s_full", src, ja3s_full)}
    mine = {(k, "?" if k == "tls.sni" else h, v) for k, h, v in facts(capture_obs(name))
            if k in ("tls.ja3", "tls.ja3_full", "tls.ja3s", "tls.ja3s_full", "tls.sni")}
    assert theirs and mine == theirs


@pytest.mark.skipif(shutil.which("medtap") is None, reason="medtap CLI not installed")
@pytest.mark.parametrize("name", CAPTURES)
def test_medtap_analyze_reports_truth(name: str) -> None:
    truth = json.loads((HERE / f"{name}.truth.json").read_text("utf-8"))
    proc = subprocess.run(
        ["medtap", "analyze", str(HERE / f"{name}.pcap"), "--format", "json", "--no-progress"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    report = json.loads(proc.stdout)
    devices = {ip: d for d in report["devices"] for ip in d["ips"]}
    for want in truth["devices"]:
        got = devices[want["ip"]]
        assert got["mac"] == want["mac"]
        for field in ("device_type", "vendor", "model"):
            if field in want:
                assert got[field] == want[field], (want["ip"], field)
        if "hostname" in want:
            assert want["hostname"] in got["hostnames"]
    assert report["stats"]["apps"] == {"tls": 1}
    assert not report["stats"]["parser_errors"] and not report["stats"]["parser_rejects"]
