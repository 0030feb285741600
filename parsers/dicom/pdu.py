"""DICOM Upper Layer PDUs (PS3.8 section 9.3): framing, the probe, and A-ASSOCIATE decoding.

Reads the PDU header (type, length) and the association PDUs in full: A-ASSOCIATE-RQ/-AC
(PS3.8 9.3.2/9.3.3 with items in 9.3.2.1-9.3.2.3 and sub-items in PS3.7 Annex D.3.3),
A-ASSOCIATE-RJ (9.3.4), A-RELEASE-RQ/-RP (9.3.6/9.3.7) and A-ABORT (9.3.8).
P-DATA-TF (9.3.5) is only split into PDV items here; what the PDVs carry is read by
``dimse`` and ``dataset``.

Never read: the user-identity primary and secondary fields (user name, password, Kerberos
ticket, SAML assertion, JWT) and the server response of the user-identity AC sub-item.
Every length is checked against the bytes present before it is used; nothing here raises
anything but ``Malformed``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from parsers.base import Malformed
from parsers.wire import Reader, printable

PDU_HEADER_LEN = 6
A_ASSOCIATE_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RJ, P_DATA_TF = 0x01, 0x02, 0x03, 0x04
A_RELEASE_RQ, A_RELEASE_RP, A_ABORT = 0x05, 0x06, 0x07
PDU_NAMES = {
    A_ASSOCIATE_RQ: "A-ASSOCIATE-RQ",
    A_ASSOCIATE_AC: "A-ASSOCIATE-AC",
    A_ASSOCIATE_RJ: "A-ASSOCIATE-RJ",
    P_DATA_TF: "P-DATA-TF",
    A_RELEASE_RQ: "A-RELEASE-RQ",
    A_RELEASE_RP: "A-RELEASE-RP",
    A_ABORT: "A-ABORT",
}
FIXED_LEN = {A_ASSOCIATE_RJ: 4, A_RELEASE_RQ: 4, A_RELEASE_RP: 4, A_ABORT: 4}

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
PROTOCOL_VERSION = 1
ASSOC_FIXED_LEN = 68  # version(2) reserved(2) called(16) calling(16) reserved(32)
MIN_ASSOCIATE_LEN = ASSOC_FIXED_LEN + 4 + len(APPLICATION_CONTEXT)
MAX_ASSOCIATE_LEN = 64 * 1024  # real RQ/AC PDUs are a few hundred bytes to a few KiB
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: odd ids 1..255
MAX_ROLE_ITEMS = 128
MAX_UID_LEN = 64  # PS3.5 9.1

ITEM_APPLICATION_CONTEXT = 0x10
ITEM_PRESENTATION_CONTEXT_RQ = 0x20
ITEM_PRESENTATION_CONTEXT_AC = 0x21
SUB_ABSTRACT_SYNTAX = 0x30
SUB_TRANSFER_SYNTAX = 0x40
ITEM_USER_INFORMATION = 0x50
SUB_MAX_LENGTH = 0x51
SUB_IMPLEMENTATION_CLASS_UID = 0x52
SUB_ASYNC_OPS = 0x53
SUB_ROLE_SELECTION = 0x54
SUB_IMPLEMENTATION_VERSION = 0x55
SUB_USER_IDENTITY_RQ = 0x58
SUB_USER_IDENTITY_AC = 0x59

# PS3.8 9.3.3.2 table 9-18: presentation context result in the AC.
PC_RESULTS = {
    0: "acceptance",
    1: "user-rejection",
    2: "no-reason",
    3: "abstract-syntax-not-supported",
    4: "transfer-syntaxes-not-supported",
}
# PS3.7 D.3.3.7.1: user identity type; the identity itself is never read.
USER_IDENTITY_TYPES = {
    1: "username",
    2: "username+passcode",
    3: "kerberos",
    4: "saml",
    5: "jwt",
}
# PS3.8 9.3.4 table 9-21: A-ASSOCIATE-RJ (source, reason) -> text.
RJ_RESULTS = {1: "rejected-permanent", 2: "rejected-transient"}
RJ_SOURCES = {1: "service-user", 2: "service-provider-acse", 3: "service-provider-presentation"}
RJ_REASONS = {
    (1, 1): "no-reason-given",
    (1, 2): "application-context-name-not-supported",
    (1, 3): "calling-ae-title-not-recognized",
    (1, 7): "called-ae-title-not-recognized",
    (2, 1): "no-reason-given",
    (2, 2): "protocol-version-not-supported",
    (3, 1): "temporary-congestion",
    (3, 2): "local-limit-exceeded",
}
# PS3.8 9.3.8 table 9-26: A-ABORT source and (provider) reason.
ABORT_SOURCES = {0: "service-user", 1: "reserved", 2: "service-provider"}
ABORT_REASONS = {
    0: "not-specified",
    1: "unrecognized-pdu",
    2: "unexpected-pdu",
    4: "unrecognized-pdu-parameter",
    5: "unexpected-pdu-parameter",
    6: "invalid-pdu-parameter-value",
}


@dataclass(slots=True)
class PresentationContext:
    """One proposed (RQ) or answered (AC) presentation context."""

    context_id: int
    abstract_syntax: str = ""  # RQ only; the AC does not repeat it
    transfer_syntaxes: list[str] = field(default_factory=list)
    result: int | None = None  # AC only, see PC_RESULTS


@dataclass(slots=True)
class RoleSelection:
    sop_class: str
    scu: bool
    scp: bool


@dataclass(slots=True)
class Associate:
    """What an A-ASSOCIATE-RQ or -AC says; secrets are never kept."""

    pdu_type: int
    protocol_version: int
    called_ae: str
    calling_ae: str
    application_context: str = ""
    contexts: list[PresentationContext] = field(default_factory=list)
    max_pdu_length: int | None = None
    implementation_class_uid: str = ""
    implementation_version_name: str = ""
    async_ops: tuple[int, int] | None = None
    roles: list[RoleSelection] = field(default_factory=list)
    user_identity_type: int | None = None
    user_identity_response_requested: bool = False
    user_identity_ac: bool = False


def frame_length(pdu_type: int, length: int, pdata_limit: int) -> int:
    """Check one PDU header; the whole PDU size, or Malformed."""
    if pdu_type in (A_ASSOCIATE_RQ, A_ASSOCIATE_AC):
        if not MIN_ASSOCIATE_LEN <= length <= MAX_ASSOCIATE_LEN:
            raise Malformed(f"{PDU_NAMES[pdu_type]} length {length}")
    elif pdu_type in FIXED_LEN:
        if length != FIXED_LEN[pdu_type]:
            raise Malformed(f"{PDU_NAMES[pdu_type]} length {length}")
    elif pdu_type == P_DATA_TF:
        if not 6 <= length <= pdata_limit:  # one PDV item is at least 4 + 2 bytes
            raise Malformed(f"P-DATA-TF length {length} (limit {pdata_limit})")
    else:
        raise Malformed(f"PDU type 0x{pdu_type:02x}")
    return PDU_HEADER_LEN + length


def uid(raw: bytes) -> str:
    """A UID as sent: ASCII, maybe null- or space-padded (PS3.8 Annex F allows both)."""
    text = raw.decode("ascii", errors="replace").rstrip("\x00 ")
    if len(text) > MAX_UID_LEN * 2:
        raise Malformed(f"UID of {len(text)} characters")
    return printable(text)


def items(r: Reader) -> Iterator[tuple[int, Reader]]:
    """Walk type(1) reserved(1) length(2) items until the reader is empty."""
    while r.remaining():
        item_type = r.u8()
        r.take(1)
        yield item_type, Reader(r.take(r.u16()))


def decode_associate(pdu: bytes) -> Associate:
    """Decode a whole A-ASSOCIATE-RQ or -AC PDU (header included)."""
    r = Reader(pdu, 1)
    r.take(1)
    if r.u32() != len(pdu) - PDU_HEADER_LEN:
        raise Malformed("A-ASSOCIATE length does not match the PDU")
    assoc = Associate(pdu[0], r.u16(), "", "")
    r.take(2)
    assoc.called_ae, assoc.calling_ae = r.text(16), r.text(16)
    r.take(32)
    for item_type, body in items(r):
        if item_type == ITEM_APPLICATION_CONTEXT:
            assoc.application_context = uid(body.take(body.remaining()))
        elif item_type in (ITEM_PRESENTATION_CONTEXT_RQ, ITEM_PRESENTATION_CONTEXT_AC):
            if len(assoc.contexts) >= MAX_CONTEXTS:
                raise Malformed("more than 128 presentation contexts")
            assoc.contexts.append(_presentation_context(item_type, body))
        elif item_type == ITEM_USER_INFORMATION:
            _user_information(assoc, body)
        # Unknown items are skipped by length (PS3.8 9.3.1: shall be ignored).
    if assoc.application_context != APPLICATION_CONTEXT:
        raise Malformed("no DICOM application context")
    return assoc


def _presentation_context(item_type: int, body: Reader) -> PresentationContext:
    pc = PresentationContext(body.u8())
    body.take(1)
    result = body.u8()
    body.take(1)
    if item_type == ITEM_PRESENTATION_CONTEXT_AC:
        pc.result = result
    for sub_type, sub in items(body):
        if sub_type == SUB_ABSTRACT_SYNTAX:
            pc.abstract_syntax = uid(sub.take(sub.remaining()))
        elif sub_type == SUB_TRANSFER_SYNTAX and len(pc.transfer_syntaxes) < MAX_CONTEXTS:
            pc.transfer_syntaxes.append(uid(sub.take(sub.remaining())))
    return pc


def _user_information(assoc: Associate, body: Reader) -> None:
    for sub_type, sub in items(body):
        if sub_type == SUB_MAX_LENGTH:
            assoc.max_pdu_length = sub.u32()
        elif sub_type == SUB_IMPLEMENTATION_CLASS_UID:
            assoc.implementation_class_uid = uid(sub.take(sub.remaining()))
        elif sub_type == SUB_IMPLEMENTATION_VERSION:
            assoc.implementation_version_name = sub.text(min(sub.remaining(), 16))
        elif sub_type == SUB_ASYNC_OPS:
            assoc.async_ops = (sub.u16(), sub.u16())
        elif sub_type == SUB_ROLE_SELECTION and len(assoc.roles) < MAX_ROLE_ITEMS:
            sop = uid(sub.take(sub.u16()))
            assoc.roles.append(RoleSelection(sop, bool(sub.u8()), bool(sub.u8())))
        elif sub_type == SUB_USER_IDENTITY_RQ:
            # Type and the response flag only; the primary/secondary fields hold secrets.
            assoc.user_identity_type = sub.u8()
            assoc.user_identity_response_requested = bool(sub.u8())
        elif sub_type == SUB_USER_IDENTITY_AC:
            assoc.user_identity_ac = True  # the server response (ticket, token) is not read


def decode_reject(pdu: bytes) -> tuple[int, int, int]:
    """A-ASSOCIATE-RJ: (result, source, reason)."""
    return pdu[7], pdu[8], pdu[9]


def reject_text(result: int, source: int, reason: int) -> str:
    return (
        f"{RJ_RESULTS.get(result, f'result-{result}')} "
        f"{RJ_SOURCES.get(source, f'source-{source}')} "
        f"{RJ_REASONS.get((source, reason), f'reason-{reason}')}"
    )


def abort_text(source: int, reason: int) -> str:
    why = ABORT_REASONS.get(reason, f"reason-{reason}") if source == 2 else "not-specified"
    return f"{ABORT_SOURCES.get(source, f'source-{source}')} {why}"


def pdv_items(pdu: bytes, end: int | None = None) -> Iterator[tuple[int, int, bytes, int]]:
    """PDV items of a P-DATA-TF PDU: (context id, message control header, fragment, stop).

    ``stop`` is the offset just past the item. With ``end`` (only a prefix of a bulk PDU is
    available) the last item may be cut short (``stop`` > ``end``, fragment shortened) and
    items that start past the prefix are not seen; the caller compares ``stop`` with the
    PDU size to know whether it saw all of them.
    """
    limit = len(pdu) if end is None else min(end, len(pdu))
    pos = PDU_HEADER_LEN
    while pos < limit:
        if pos + 6 > limit:
            if end is None:
                raise Malformed("PDV item header overruns the PDU")
            return
        length = int.from_bytes(pdu[pos : pos + 4], "big")
        if length < 2:
            raise Malformed(f"PDV item length {length}")
        ctx, header = pdu[pos + 4], pdu[pos + 5]
        if header & 0xFC:
            raise Malformed(f"PDV message control header 0x{header:02x}")
        stop = pos + 4 + length
        if stop > limit and end is None:
            raise Malformed("PDV item overruns the PDU")
        yield ctx, header, pdu[pos + 6 : min(stop, limit)], stop
        pos = stop


def probe_associate(data: bytes) -> bool | None:
    """True: an A-ASSOCIATE-RQ with the DICOM application context; False: not; None: need more.

    Checks, in the order the bytes arrive: type 0x01, reserved 0, a sane length, protocol
    version 1, then the first item being the application context 1.2.840.10008.3.1.1.1.
    """
    n = len(data)
    if n >= 1 and data[0] != A_ASSOCIATE_RQ:
        return False
    if n >= 2 and data[1] != 0:
        return False
    if n < PDU_HEADER_LEN:
        return None
    length = int.from_bytes(data[2:6], "big")
    if not MIN_ASSOCIATE_LEN <= length <= MAX_ASSOCIATE_LEN:
        return False
    if n >= 8 and int.from_bytes(data[6:8], "big") != PROTOCOL_VERSION:
        return False
    head = PDU_HEADER_LEN + ASSOC_FIXED_LEN  # first item
    if n < head + 4:
        return None
    item_len = int.from_bytes(data[head + 2 : head + 4], "big")
    if data[head] != ITEM_APPLICATION_CONTEXT or not 21 <= item_len <= 22:
        return False
    if n < head + 4 + item_len:
        return None
    return data[head + 4 : head + 4 + item_len].rstrip(b"\x00 ") == APPLICATION_CONTEXT.encode()
