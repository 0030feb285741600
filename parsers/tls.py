"""TLS handshake metadata (RFC 8446, RFC 5246; SSL 2.0-compatible ClientHello, RFC 6101 E.2),
on any port: who offers what, what was negotiated, and who the certificate names.

Detection by payload: a handshake record (``16 03 0x``) carrying a ClientHello or
ServerHello, or an SSL 2.0-format ClientHello (``80 LL 01 03 0x`` / ``00 02``). One
``TlsParser`` per TCP flow reads TLS records (RFC 8446 5.1) per direction, reassembles
handshake messages across records (at most ``MAX_HANDSHAKE`` bytes) and stops reading a
direction for good at its first ChangeCipherSpec or application-data record: everything
after that is encrypted and is skipped unbuffered. So each direction costs a few KiB.

Read, and emitted (each fact once per flow):

* ClientHello, about the client: ``tls.client_versions`` (offered, highest first: the
  supported_versions extension, else the legacy version), ``tls.alpn_offered``,
  ``tls.ja3`` (MD5) and ``tls.ja3_full`` (the JA3 string: version, ciphers, extensions,
  groups, point formats; GREASE removed), ``tls.ja4`` (see below); about the server:
  ``tls.sni`` and a ``tls.hostname`` claim (``CONF_SNI_HOSTNAME``).
* ServerHello, about the server: ``tls.version`` (negotiated: supported_versions, else the
  legacy version; ``SSL 3.0``/``TLS 1.0``/``TLS 1.1`` are what a later policy flags),
  ``tls.cipher`` (IANA name when known, else hex), ``tls.alpn``, ``tls.ja3s`` and
  ``tls.ja3s_full``.
* Certificate (TLS <= 1.2 only; 1.3 encrypts it), the first (leaf) certificate, about its
  sender (the server, or the client for mutual TLS): ``tls.cert_subject_cn``,
  ``tls.cert_subject_o``, ``tls.cert_subject_ou``, ``tls.cert_subject_serial``,
  ``tls.cert_issuer_cn``, ``tls.cert_issuer_o``, ``tls.cert_self_signed``; claims
  ``tls.vendor`` (subject/issuer organisation matched in ``parsers/data/tls_cert_subjects
  .csv``, or a self-signed certificate's own organisation), ``tls.model`` (table rows that
  name one) and ``tls.hostname`` (a subject CN that is a DNS name). The X.509 DER is read by
  a bounded walker in this module (RFC 5280 4.1: tbsCertificate -> issuer, subject; only
  the CN, O, OU and serialNumber attributes), not by a crypto library, so nothing but the
  standard library is needed.
* Plaintext alerts before encryption: ``tls.alert`` about the sender.
* SSL 2.0-format ClientHello: ``tls.client_hello_format`` = ``sslv2`` and
  ``tls.client_versions``.

Never read or kept: session ids, random values, key shares, session tickets, PSK
identities, certificate public keys and signatures, anything after ChangeCipherSpec, any
application data.

JA4 (FoxIO ``technical_details/JA4.md``): implemented is the whole ``JA4`` fingerprint
``a_b_c`` for TLS over TCP: ``t``, version (highest supported_versions value, else the
ClientHello version), ``d``/``i`` for SNI present, cipher and extension counts (GREASE
ignored, capped at 99), first and last character of the first ALPN value (hex rule for
non-alphanumerics, ``00`` when absent); ``b`` = first 12 hex of SHA-256 of the sorted
4-hex cipher list; ``c`` = the same of the sorted extension list without SNI (0000) and
ALPN (0010), ``_`` and the signature algorithms in offered order. Not implemented: the
QUIC (``q``) and DTLS (``d``) prefixes, the raw (``JA4_r``) and original-order
(``JA4_o``/``JA4_ro``) variants, JA4S/JA4X.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache

from parsers.base import (
    DIRECTIONS,
    TO_CLIENT,
    TO_SERVER,
    Direction,
    FlowKey,
    Frame,
    Malformed,
    Observation,
    StreamParser,
)
from parsers.knowledge import data_rows
from parsers.registry import ParserSpec, Probe
from parsers.wire import CONTROL, Reader, printable

RECORD_HEADER = 5
MAX_RECORD = (1 << 14) + 2048  # TLSCiphertext.length limit (RFC 8446 5.2)
MAX_HANDSHAKE = 64 * 1024  # handshake bytes reassembled per direction
MAX_CERT = 16 * 1024  # bytes of the leaf certificate read
MAX_FACTS = 256
MAX_NAME = 256  # characters kept of a name or attribute value
TO_END = 1 << 62

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT = 20, 21, 22, 23, 24
CLIENT_HELLO, SERVER_HELLO, CERTIFICATE = 1, 2, 11
EXT_SNI, EXT_GROUPS, EXT_POINT_FORMATS, EXT_SIG_ALGS, EXT_ALPN, EXT_VERSIONS = (
    0x0000, 0x000A, 0x000B, 0x000D, 0x0010, 0x002B
)
PORT_HINTS = frozenset({443, 2762, 8443, 6443, 993, 995, 636, 465, 3269})

VERSION_NAMES = {
    0x0002: "SSL 2.0", 0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1",
    0x0303: "TLS 1.2", 0x0304: "TLS 1.3",
}
JA4_VERSIONS = {
    0x0002: "s2", 0x0300: "s3", 0x0301: "10", 0x0302: "11", 0x0303: "12", 0x0304: "13",
    0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3",
}
CIPHER_NAMES = {  # IANA TLS Cipher Suites registry (common ones only)
    0x0004: "TLS_RSA_WITH_RC4_128_MD5",
    0x0005: "TLS_RSA_WITH_RC4_128_SHA",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}
ALERT_NAMES = {  # RFC 8446 6, RFC 5246 7.2
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
    40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate",
    44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
    47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
    51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security",
    80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
    109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
    116: "certificate_required", 120: "no_application_protocol",
}

# Confidences (0..1) of claims, and why.
CONF_SNI_HOSTNAME = 0.3  # the name the client asked for; a virtual host may have many
CONF_CN_HOSTNAME = 0.2  # certificate CNs are often, not always, the host's DNS name
CONF_SELF_SIGNED_VENDOR = 0.25  # a self-signed device certificate's own organisation


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values: 0x?A?A with both bytes equal."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def version_name(value: int) -> str:
    return VERSION_NAMES.get(value, f"0x{value:04x}")


def cipher_name(value: int) -> str:
    return CIPHER_NAMES.get(value, f"0x{value:04x}")


# ---- detection ---------------------------------------------------------------------------
def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH on a handshake record starting a Client/ServerHello, or an SSL 2.0 ClientHello."""
    if not data:
        return Probe.NEED_MORE
    if data[0] == HANDSHAKE:
        head = data[:6]
        if len(head) >= 2 and head[1] != 3:
            return Probe.NO
        if len(head) >= 3 and head[2] > 4:
            return Probe.NO
        if len(head) >= 5 and not 4 <= int.from_bytes(head[3:5], "big") <= MAX_RECORD:
            return Probe.NO
        if len(head) < 6:
            return Probe.NEED_MORE
        return Probe.MATCH if head[5] in (CLIENT_HELLO, SERVER_HELLO) else Probe.NO
    if data[0] & 0x80:
        if len(data) < 11:
            return Probe.NEED_MORE
        return Probe.MATCH if _sslv2_hello(data) is not None else Probe.NO
    return Probe.NO


def _sslv2_hello(data: bytes) -> int | None:
    """The version of an SSL 2.0-format CLIENT-HELLO (RFC 6101 E.2), None if it is not one."""
    if len(data) < 11 or data[2] != 1:  # length first: fuzzing sent a 2-byte SSL 2.0 record
        return None
    length = ((data[0] & 0x7F) << 8) | data[1]
    version = int.from_bytes(data[3:5], "big")
    if version != 0x0002 and not (data[3] == 3 and data[4] <= 4):
        return None
    ciphers = int.from_bytes(data[5:7], "big")
    session = int.from_bytes(data[7:9], "big")
    challenge = int.from_bytes(data[9:11], "big")
    if not ciphers or ciphers % 3 or session not in (0, 16) or not 16 <= challenge <= 32:
        return None
    return version if 9 + ciphers + session + challenge == length else None


# ---- ClientHello / ServerHello -----------------------------------------------------------
@dataclass(slots=True)
class Hello:
    version: int  # legacy_version
    ciphers: list[int] = field(default_factory=list)
    extensions: list[tuple[int, bytes]] = field(default_factory=list)

    def ext(self, kind: int) -> bytes | None:
        for k, body in self.extensions:
            if k == kind:
                return body
        return None


def parse_hello(body: bytes, client: bool) -> Hello:
    """A ClientHello or ServerHello body (after the 4-byte handshake header)."""
    r = Reader(body)
    hello = Hello(r.u16())
    r.take(32)  # random: never kept
    r.take(r.u8())  # session id: never kept
    if client:
        size = r.u16()
        if size % 2:
            raise Malformed("odd cipher_suites length")
        suites = r.take(size)
        hello.ciphers = [int.from_bytes(suites[i : i + 2], "big") for i in range(0, size, 2)]
        r.take(r.u8())  # compression methods
    else:
        hello.ciphers = [r.u16()]
        r.u8()  # compression method
    if r.remaining() == 0:
        return hello  # no extensions (SSL 3.0 / old TLS)
    ext_block = Reader(r.take(r.u16()))
    while ext_block.remaining():
        kind = ext_block.u16()
        hello.extensions.append((kind, ext_block.take(ext_block.u16())))
    return hello


def _u16_list(data: bytes, length_bytes: int = 2) -> list[int]:
    r = Reader(data)
    size = r.u16() if length_bytes == 2 else r.u8()
    items = r.take(size)
    if size % 2:
        raise Malformed("odd u16 list length")
    return [int.from_bytes(items[i : i + 2], "big") for i in range(0, size, 2)]


def offered_versions(hello: Hello) -> list[int]:
    body = hello.ext(EXT_VERSIONS)
    if body is None:
        return [hello.version]
    return [v for v in _u16_list(body, 1) if not is_grease(v)]


def server_name(hello: Hello) -> str | None:
    body = hello.ext(EXT_SNI)
    if body is None:
        return None
    r = Reader(body)
    names = Reader(r.take(r.u16()))
    while names.remaining():
        kind = names.u8()
        name = names.take(names.u16())
        if kind == 0:
            text = name[:MAX_NAME].decode("ascii", errors="replace").lower().rstrip(".")
            return printable(text).strip() or None
    return None


def alpn_list(body: bytes | None) -> list[bytes]:
    if body is None:
        return []
    r = Reader(body)
    protocols = Reader(r.take(r.u16()))
    out = []
    while protocols.remaining():
        out.append(protocols.take(protocols.u8()))
    return out


def ja3_string(hello: Hello) -> str:
    exts = [k for k, _ in hello.extensions if not is_grease(k)]
    groups_body = hello.ext(EXT_GROUPS)
    groups = [g for g in _u16_list(groups_body)] if groups_body is not None else []
    formats_body = hello.ext(EXT_POINT_FORMATS)
    formats: list[int] = []
    if formats_body:
        r = Reader(formats_body)
        formats = list(r.take(r.u8()))
    return ",".join(
        [
            str(hello.version),
            "-".join(str(c) for c in hello.ciphers if not is_grease(c)),
            "-".join(str(e) for e in exts),
            "-".join(str(g) for g in groups if not is_grease(g)),
            "-".join(str(f) for f in formats),
        ]
    )


def ja3s_string(hello: Hello) -> str:
    exts = "-".join(str(k) for k, _ in hello.extensions)
    return f"{hello.version},{hello.ciphers[0]},{exts}"


def _alpn_chars(first: bytes) -> str:
    if not first:
        return "00"
    a, z = first[0], first[-1]
    if chr(a).isascii() and chr(a).isalnum() and chr(z).isascii() and chr(z).isalnum():
        return chr(a) + chr(z)
    text = first.hex()
    return text[0] + text[-1]


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ja4(hello: Hello, transport: str = "t") -> str:
    ciphers = [c for c in hello.ciphers if not is_grease(c)]
    exts = [k for k, _ in hello.extensions if not is_grease(k)]
    versions = [v for v in offered_versions(hello) if not is_grease(v)]
    version = max(versions) if hello.ext(EXT_VERSIONS) is not None and versions else hello.version
    alpn = alpn_list(hello.ext(EXT_ALPN))
    part_a = (
        f"{transport}{JA4_VERSIONS.get(version, '00')}"
        f"{'d' if hello.ext(EXT_SNI) is not None else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}"
        f"{_alpn_chars(alpn[0] if alpn else b'')}"
    )
    part_b = _sha12(",".join(f"{c:04x}" for c in sorted(ciphers))) if ciphers else "0" * 12
    sorted_exts = sorted(e for e in exts if e not in (EXT_SNI, EXT_ALPN))
    if sorted_exts:
        text = ",".join(f"{e:04x}" for e in sorted_exts)
        sig_body = hello.ext(EXT_SIG_ALGS)
        sigs = [s for s in _u16_list(sig_body) if not is_grease(s)] if sig_body else []
        if sigs:
            text += "_" + ",".join(f"{s:04x}" for s in sigs)
        part_c = _sha12(text)
    else:
        part_c = "0" * 12
    return f"{part_a}_{part_b}_{part_c}"


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


# ---- X.509 (RFC 5280 4.1), bounded DER walk ---------------------------------------------
OID_NAMES = {  # id-at (RFC 5280 A.1)
    bytes.fromhex("550403"): "cn",
    bytes.fromhex("55040a"): "o",
    bytes.fromhex("55040b"): "ou",
    bytes.fromhex("550405"): "serial",
}
SEQUENCE, SET, OID = 0x30, 0x31, 0x06
_STRING_CODECS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1",
                  0x1E: "utf-16-be", 0x1C: "utf-32-be", 0x1A: "ascii"}


def der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER item at ``pos``."""
    if pos + 2 > len(data):
        raise Malformed("DER item header past the end")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4 or pos + count > len(data):
            raise Malformed("DER length form")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise Malformed("DER item past the end")
    return tag, pos, pos + length


def der_children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    pos = start
    while pos < end:
        tag, s, e = der_item(data[:end], pos)
        yield tag, s, e
        pos = e


def parse_name(data: bytes, start: int, end: int) -> dict[str, str]:
    """Name ::= SEQUENCE OF RelativeDistinguishedName; only the attributes in OID_NAMES."""
    out: dict[str, str] = {}
    for tag, s, e in der_children(data, start, end):
        if tag != SET:
            raise Malformed("RDN is not a SET")
        for atag, as_, ae in der_children(data, s, e):
            if atag != SEQUENCE:
                raise Malformed("AttributeTypeAndValue is not a SEQUENCE")
            parts = list(der_children(data, as_, ae))
            if len(parts) != 2 or parts[0][0] != OID:
                raise Malformed("AttributeTypeAndValue shape")
            name = OID_NAMES.get(data[parts[0][1] : parts[0][2]])
            vtag, vs, ve = parts[1]
            codec = _STRING_CODECS.get(vtag)
            if name is None or codec is None or name in out:
                continue
            text = data[vs:ve][: MAX_NAME * 4].decode(codec, errors="replace")
            out[name] = " ".join(_CONTROL.sub(" ", text).split())[:MAX_NAME]
    return out


@dataclass(frozen=True, slots=True)
class CertNames:
    subject: dict[str, str]
    issuer: dict[str, str]
    self_signed: bool  # issuer Name bytes equal subject Name bytes


def parse_certificate(der: bytes) -> CertNames:
    tag, s, e = der_item(der, 0)
    if tag != SEQUENCE:
        raise Malformed("Certificate is not a SEQUENCE")
    tag, ts, te = der_item(der, s)
    if tag != SEQUENCE:
        raise Malformed("tbsCertificate is not a SEQUENCE")
    fields = list(der_children(der, ts, te))
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject
    if len(fields) < 5 or fields[2][0] != SEQUENCE or fields[4][0] != SEQUENCE:
        raise Malformed("tbsCertificate shape")
    _, is_, ie = fields[2]
    _, ss, se = fields[4]
    return CertNames(
        subject=parse_name(der, ss, se),
        issuer=parse_name(der, is_, ie),
        self_signed=der[is_:ie] == der[ss:se],
    )


_CONTROL = CONTROL


# ---- knowledge: certificate subjects ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class SubjectRow:
    field: str  # "o" (subject or issuer organisation) or "cn" (subject common name)
    pattern: re.Pattern[str]
    kind: str  # "vendor" or "placeholder"
    vendor: str
    device_type: str
    model: str
    confidence: float


@cache
def subject_rows() -> tuple[SubjectRow, ...]:
    rows = []
    for r in data_rows("tls_cert_subjects.csv"):
        rows.append(
            SubjectRow(
                field=r["field"],
                pattern=re.compile(r["pattern"], re.IGNORECASE),
                kind=r["kind"],
                vendor=r["vendor"],
                device_type=r["device_type"],
                model=r["model"],
                confidence=float(r["confidence"]),
            )
        )
    return tuple(rows)


def _row_for(field_name: str, value: str | None) -> SubjectRow | None:
    if not value:
        return None
    for row in subject_rows():
        if row.field == field_name and row.pattern.search(value):
            return row
    return None


def certificate_claims(names: CertNames) -> list[tuple[str, str, float]]:
    """(claim suffix, value, confidence) from a leaf certificate's names."""
    out: list[tuple[str, str, float]] = []
    org = names.subject.get("o")
    subject_row = _row_for("o", org) or _row_for("cn", names.subject.get("cn"))
    issuer_row = _row_for("o", names.issuer.get("o"))
    row = subject_row if subject_row and subject_row.kind == "vendor" else None
    if row is None and issuer_row and issuer_row.kind == "vendor":
        row = issuer_row  # a vendor's device CA signed it
    if row is not None:
        confidence = row.confidence if row is subject_row else row.confidence - 0.1
        out.append(("vendor", row.vendor, confidence))
        if row.device_type:
            out.append(("device_type", row.device_type, confidence))
        if row.model:
            out.append(("model", row.model, confidence))
    elif names.self_signed and org and not (subject_row and subject_row.kind == "placeholder"):
        out.append(("vendor", org, CONF_SELF_SIGNED_VENDOR))
    cn = names.subject.get("cn")
    host = dns_name(cn) if cn else None
    if host:
        out.append(("hostname", host, CONF_CN_HOSTNAME))
    return out


def dns_name(value: str) -> str | None:
    """``value`` as a DNS host name (no wildcard, not an address, not localhost), else None."""
    name = value.strip().lower().rstrip(".")
    if not name or "." not in name and not re.fullmatch(r"[a-z0-9-]{1,63}", name):
        return None
    if name == "localhost" or name.startswith("*") or len(name) > 253:
        return None
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    label = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    return name if re.fullmatch(rf"{label}(\.{label})*", name) else None


# ---- the stream parser -------------------------------------------------------------------
@dataclass(slots=True)
class _Side:
    handshake: bytearray = field(default_factory=bytearray)
    done: bool = False
    records: int = 0
    sslv2_checked: bool = False


class TlsParser(StreamParser):
    """One TCP flow of TLS (see module docstring)."""

    name = "tls"

    def __init__(self, flow: FlowKey) -> None:
        super().__init__(flow)
        self._side = {d: _Side() for d in DIRECTIONS}
        self._facts: set[tuple[str, str, str]] = set()
        self.server_version: int | None = None
        self.stats: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    @property
    def buffered(self) -> int:
        return super().buffered + sum(len(side.handshake) for side in self._side.values())

    @property
    def finished(self) -> bool:
        """Both directions are past their handshake: the rest is encrypted."""
        return all(side.done for side in self._side.values())

    def _sender(self, direction: Direction) -> str:
        return self.flow.client if direction is TO_SERVER else self.flow.server

    def _peer(self, direction: Direction) -> str:
        return self.flow.server if direction is TO_SERVER else self.flow.client

    # ---- framing ----------------------------------------------------------------------------
    def _frame(self, direction: Direction, buf: bytearray) -> Frame | None:
        side = self._side[direction]
        if side.done:
            return Frame(TO_END, keep=False)
        if not buf:
            return None
        if not side.records and buf[0] & 0x80:  # SSL 2.0-format ClientHello
            if len(buf) < 2:
                return None
            size = (((buf[0] & 0x7F) << 8) | buf[1]) + 2
            return Frame(size)
        if len(buf) < RECORD_HEADER:
            return None
        kind, major, length = buf[0], buf[1], int.from_bytes(buf[3:5], "big")
        if kind not in (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT):
            raise Malformed(f"record type {kind}")
        if major != 3 or length > MAX_RECORD:
            raise Malformed("record version or length")
        if kind in (CHANGE_CIPHER_SPEC, APPLICATION_DATA):
            side.done = True  # encrypted from here on: skip the rest unread
            self._count("directions_done")
            return Frame(TO_END, keep=False)
        return Frame(RECORD_HEADER + length)

    def _decode(self, direction: Direction, pdu: bytes, ts: float) -> Iterable[Observation]:
        side = self._side[direction]
        first = side.records == 0
        side.records += 1
        if first and pdu[0] & 0x80:
            return list(self._sslv2(direction, pdu, ts))
        kind = pdu[0]
        body = pdu[RECORD_HEADER:]
        if first and kind != HANDSHAKE and kind != ALERT:
            raise Malformed("first record is not a handshake")
        if kind == ALERT:
            return list(self._alert(direction, body, ts))
        if kind == HEARTBEAT:
            return ()
        side.handshake += body
        out: list[Observation] = []
        while not side.done and len(side.handshake) >= 4:
            msg_type = side.handshake[0]
            size = int.from_bytes(side.handshake[1:4], "big")
            if msg_type == CERTIFICATE:
                out += self._leaf(direction, side, ts)
                break
            if 4 + size > MAX_HANDSHAKE:
                self._count("handshake_too_large")
                side.done = True
                break
            if len(side.handshake) < 4 + size:
                break
            message = bytes(side.handshake[4 : 4 + size])
            del side.handshake[: 4 + size]
            out += self._message(direction, msg_type, message, ts)
        if side.done:
            side.handshake.clear()
        return out

    def _leaf(self, direction: Direction, side: _Side, ts: float) -> list[Observation]:
        """A TLS <= 1.2 Certificate message (RFC 5246 7.4.2): read the first certificate
        as soon as it is buffered, then stop reading this direction (nothing after it in
        the flight names the sender)."""
        if len(side.handshake) < 10:
            return []
        leaf = int.from_bytes(side.handshake[7:10], "big")
        if leaf > MAX_CERT:
            self._count("certificate_too_large")
            side.done = True
            return []
        if len(side.handshake) < 10 + leaf:
            return []
        side.done = True
        return self._certificate(direction, bytes(side.handshake[10 : 10 + leaf]), ts)

    def _message(
        self, direction: Direction, msg_type: int, body: bytes, ts: float
    ) -> list[Observation]:
        if msg_type == CLIENT_HELLO and direction is TO_SERVER:
            return list(self._client_hello(direction, parse_hello(body, client=True), ts))
        if msg_type == SERVER_HELLO and direction is TO_CLIENT:
            out = list(self._server_hello(direction, parse_hello(body, client=False), ts))
            if self.server_version == 0x0304:
                self._side[direction].done = True  # TLS 1.3: the rest is encrypted
            return out
        return []  # ServerKeyExchange, CertificateRequest, ...: nothing device-identifying

    # ---- facts ------------------------------------------------------------------------------
    def _obs(self, kind: str, host: str, value: str, ts: float, confidence: float = 1.0,
             ) -> Iterator[Observation]:
        if not value:
            return
        key = (kind, host, value)
        if key in self._facts:
            return
        if len(self._facts) >= MAX_FACTS:
            self._count("facts_dropped")
            return
        self._facts.add(key)
        port = self.flow.server_port if host == self.flow.server else None
        yield Observation(f"tls.{kind}", host, value, ts, port, None, confidence)

    def _client_hello(self, direction: Direction, hello: Hello, ts: float
                      ) -> Iterator[Observation]:
        client, server = self._sender(direction), self._peer(direction)
        versions = sorted(set(offered_versions(hello)), reverse=True)
        yield from self._obs("client_versions", client, ",".join(map(version_name, versions)), ts)
        alpn = [printable(p[:64].decode("ascii", errors="replace"))
                for p in alpn_list(hello.ext(EXT_ALPN))]
        yield from self._obs("alpn_offered", client, ",".join(alpn), ts)
        ja3 = ja3_string(hello)
        yield from self._obs("ja3", client, md5(ja3), ts)
        yield from self._obs("ja3_full", client, ja3, ts)
        yield from self._obs("ja4", client, ja4(hello), ts)
        sni = server_name(hello)
        if sni:
            yield from self._obs("sni", server, sni, ts)
            host = dns_name(sni)
            if host:
                yield from self._obs("hostname", server, host, ts, CONF_SNI_HOSTNAME)

    def _server_hello(self, direction: Direction, hello: Hello, ts: float
                      ) -> Iterator[Observation]:
        server = self._sender(direction)
        chosen = hello.ext(EXT_VERSIONS)
        version = int.from_bytes(chosen[:2], "big") if chosen and len(chosen) >= 2 else None
        self.server_version = version or hello.version
        yield from self._obs("version", server, version_name(self.server_version), ts)
        yield from self._obs("cipher", server, cipher_name(hello.ciphers[0]), ts)
        alpn = alpn_list(hello.ext(EXT_ALPN))
        if alpn:
            yield from self._obs("alpn", server, printable(alpn[0][:64].decode("ascii", "replace")),
                                 ts)
        ja3s = ja3s_string(hello)
        yield from self._obs("ja3s", server, md5(ja3s), ts)
        yield from self._obs("ja3s_full", server, ja3s, ts)

    def _certificate(self, direction: Direction, der: bytes, ts: float) -> list[Observation]:
        sender = self._sender(direction)
        try:
            names = parse_certificate(der[:MAX_CERT])
        except Malformed:
            self._count("bad_certificate")  # a truncated or odd certificate is not fatal
            return []
        out: list[Observation] = []
        for part, attrs in (("subject", names.subject), ("issuer", names.issuer)):
            for attr in ("cn", "o", "ou", "serial") if part == "subject" else ("cn", "o"):
                if attrs.get(attr):
                    out += self._obs(f"cert_{part}_{attr}", sender, attrs[attr], ts)
        if names.self_signed:
            out += self._obs("cert_self_signed", sender, "true", ts)
        for suffix, value, confidence in certificate_claims(names):
            out += self._obs(suffix, sender, value, ts, confidence)
        return out

    def _alert(self, direction: Direction, body: bytes, ts: float) -> Iterator[Observation]:
        if len(body) != 2:  # an encrypted alert (after renegotiation) or garbage
            return
        level = {1: "warning", 2: "fatal"}.get(body[0], str(body[0]))
        name = ALERT_NAMES.get(body[1], str(body[1]))
        yield from self._obs("alert", self._sender(direction), f"{level} {name}", ts)

    def _sslv2(self, direction: Direction, pdu: bytes, ts: float) -> Iterator[Observation]:
        sender = self._sender(direction)
        if direction is TO_CLIENT and len(pdu) >= 7 and pdu[2] == 4:
            version = int.from_bytes(pdu[5:7], "big")  # SSL 2.0 SERVER-HELLO
            self._side[direction].done = True
            yield from self._obs("version", sender, version_name(version), ts)
            return
        offered = _sslv2_hello(pdu)
        if offered is None or direction is not TO_SERVER:
            raise Malformed("not an SSL 2.0 ClientHello")
        yield from self._obs("client_hello_format", sender, "sslv2", ts)
        yield from self._obs("client_versions", sender, version_name(offered), ts)


def spec() -> ParserSpec:
    return ParserSpec(name="tls", transport="tcp", probe=probe, factory=TlsParser,
                      port_hints=PORT_HINTS)


SPEC = spec()

__all__ = ["SPEC", "CertNames", "Hello", "TlsParser", "certificate_claims", "dns_name",
           "ja3_string", "ja3s_string", "ja4", "parse_certificate", "parse_hello", "probe"]
