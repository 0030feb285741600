"""Fast allow-listed field cut of HL7 v2 messages (HL7 v2.5.1 ch. 2.5-2.7, 2.14; v2.8.2 ch. 7.4.4).

The cut is the first and only thing that touches a message. It splits the message
into segments and keeps those named in ``ALLOWED`` by their three-letter id; every
other segment (PID, PD1, NK1, PV1, PV2, IN1, GT1, DG1, AL1, NTE, ORC, EVN, ...) is
skipped without being split, copied or decoded. Inside an allowed segment only the
allow-listed field positions are kept, never OBX-5 (the observation value), OBX-16
(responsible observer) nor PRT-5/8/9/14/15 (person, organisation, location, address,
phone). MSH-7 (time) and MSH-10 (control id) identify nothing and change with every
message, so they are not kept either: the cut of a message is its *signature*.

Reads:
  MSH-1/2 (encoding characters), MSH-3/4/5/6, MSH-9, MSH-12, MSH-18, MSH-21;
  FHS/BHS-3/4/5/6; SFT-1/2/3/4; OBR-3 only when it is an EUI-64 entity identifier;
  OBX-3 only when it is an MDC code the device table knows; OBX-18; EQU-1;
  PRT-4/10/16/20/22; MSA-1.
Text: escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh..\\; formatting and charset
escapes dropped) are resolved per component after splitting; bytes are decoded per
MSH-18 (table 0211), or as UTF-8 falling back to latin-1 when MSH-18 is empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter

from parsers.base import Malformed

ALLOWED: dict[bytes, frozenset[int]] = {
    b"MSH": frozenset({3, 4, 5, 6, 9, 12, 18, 21}),
    b"FHS": frozenset({3, 4, 5, 6}),
    b"BHS": frozenset({3, 4, 5, 6}),
    b"SFT": frozenset({1, 2, 3, 4}),
    b"OBR": frozenset({3}),
    b"OBX": frozenset({3, 18}),
    b"EQU": frozenset({1}),
    b"PRT": frozenset({4, 10, 16, 20, 22}),
    b"MSA": frozenset({1}),
}
HEADERS = frozenset({b"MSH", b"FHS", b"BHS"})
MAX_FIELD_LEN = 256  # bytes kept of one allow-listed field; longer ones are truncated
MAX_CUT_SEGMENTS = 48  # distinct allow-listed segments kept per message
MAX_VALUE_LEN = 128  # characters of one decoded component
DEVICE_ID_TYPES = frozenset({"EUI-64", "EUI64"})

_HEX = re.compile(rb"^[0-9A-Fa-f]+$")

# HL7 table 0211 (alternate character sets) -> Python codec. UTF-16/32 cannot be cut
# bytewise with ASCII delimiters; they fall back to latin-1 (values only look wrong).
CHARSETS = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "ISO IR100": "latin-1",
    "ISO IR101": "iso8859-2",
    "ISO IR144": "iso8859-5",
    "ISO IR127": "iso8859-6",
    "ISO IR126": "iso8859-7",
    "ISO IR138": "iso8859-8",
    "ISO IR148": "iso8859-9",
    "ISO IR192": "utf-8",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_2",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
    "CNS 11643-1992": "big5",
}
for _n in range(1, 16):
    CHARSETS[f"8859/{_n}"] = f"iso8859-{_n}" if _n != 12 else "latin-1"


@dataclass(frozen=True, slots=True)
class Encoding:
    """MSH-1 field separator and MSH-2 component/repetition/escape/subcomponent chars."""

    field: int
    component: int = ord("^")
    repetition: int = ord("~")
    escape: int | None = ord("\\")
    subcomponent: int = ord("&")

    def msh2(self) -> bytes:
        out = bytes([self.component, self.repetition])
        out += bytes([self.escape]) if self.escape is not None else b""
        return out + bytes([self.subcomponent])


@dataclass(frozen=True, slots=True)
class CutSegment:
    name: str
    fields: tuple[tuple[int, bytes], ...]  # (HL7 position, raw escaped bytes), non-empty only

    def get(self, position: int) -> bytes:
        for pos, raw in self.fields:
            if pos == position:
                return raw
        return b""


@dataclass(frozen=True, slots=True)
class CutMessage:
    """One message reduced to its allow-listed fields. Holds no patient data."""

    header: str  # MSH, FHS or BHS
    encoding: Encoding
    codec: str | None  # Python codec from MSH-18; None: UTF-8, else latin-1
    segments: tuple[CutSegment, ...]  # header first; duplicates removed
    truncated: bool = False  # a field or the segment list hit a MAX_* limit
    signature: bytes = field(default=b"", compare=False)

    def first(self, name: str) -> CutSegment | None:
        for seg in self.segments:
            if seg.name == name:
                return seg
        return None

    def all(self, name: str) -> Iterator[CutSegment]:
        return (seg for seg in self.segments if seg.name == name)

    def components(self, raw: bytes) -> list[list[str]]:
        """Repetitions of one raw field, each a list of decoded, unescaped components."""
        return [
            [self.text(c) for c in rep.split(bytes([self.encoding.component]))]
            for rep in raw.split(bytes([self.encoding.repetition]))
        ]

    def text(self, raw: bytes) -> str:
        """One component: subcomponents joined by space, unescaped and decoded."""
        enc = self.encoding
        if enc.subcomponent not in raw and (enc.escape is None or enc.escape not in raw):
            return clean(decode(raw, self.codec))  # the usual plain component: same result
        parts = [unescape(p, enc) for p in raw.split(bytes([enc.subcomponent]))]
        return clean(decode(b" ".join(p for p in parts if p), self.codec))

    def er7(self) -> str:
        """The cut as ER7 text (CR-separated), escapes kept, for hl7apy."""
        return self.signature.decode(self.codec or "utf-8", errors="replace")


def decode(raw: bytes, codec: str | None) -> str:
    if codec is None:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return raw.decode(codec, errors="replace")


def clean(text: str) -> str:
    """Collapse whitespace, drop control characters, bound the length."""
    text = text[: MAX_VALUE_LEN * 2]
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:MAX_VALUE_LEN]


def unescape(raw: bytes, enc: Encoding) -> bytes:
    """Resolve HL7 escape sequences in one component (v2.5.1 section 2.7)."""
    esc = enc.escape
    if esc is None or esc not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != esc:
            out.append(ch)
            i += 1
            continue
        end = raw.find(bytes([esc]), i + 1)
        if end < 0:  # unterminated: keep literally
            out += raw[i:]
            break
        seq = raw[i + 1 : end]
        i = end + 1
        if seq == b"F":
            out.append(enc.field)
        elif seq == b"S":
            out.append(enc.component)
        elif seq == b"T":
            out.append(enc.subcomponent)
        elif seq == b"R":
            out.append(enc.repetition)
        elif seq == b"E":
            out.append(esc)
        elif seq[:1] == b"X" and len(seq) % 2 == 1 and _HEX.match(seq[1:]):
            out += bytes.fromhex(seq[1:].decode("ascii"))
        elif seq in (b".br", b".sp"):
            out.append(0x20)
        # \H\ \N\ \Cxxyy\ \Mxxyyzz\ \Zxx\ and formatting commands carry no identity: dropped
    return bytes(out)


def parse_encoding(segment: bytes) -> Encoding:
    """Encoding characters from an MSH/FHS/BHS segment; Malformed when implausible."""
    if len(segment) < 5:
        raise Malformed("header segment too short")
    fs = segment[3]
    if chr(fs).isalnum() or fs in b"\r\n \x00":
        raise Malformed("implausible field separator")
    end = segment.find(bytes([fs]), 4)
    msh2 = segment[4:end] if end >= 0 else segment[4:]
    # At least component, repetition and subcomponent (v2.1 may omit the escape); fuzzing
    # found "MSH\^~\&": field separator backslash, two characters, an IndexError.
    if not 3 <= len(msh2) <= 5 or len(set(msh2)) != len(msh2) or fs in msh2:
        raise Malformed("implausible encoding characters")
    if any(chr(c).isalnum() or c in b"\r\n \x00" for c in msh2):
        raise Malformed("implausible encoding characters")
    # v2.7+ may add a truncation character as 5th; v2.1 senders may omit the escape.
    return Encoding(
        field=fs,
        component=msh2[0],
        repetition=msh2[1],
        escape=msh2[2] if len(msh2) >= 4 else None,
        subcomponent=msh2[3] if len(msh2) >= 4 else msh2[2],
    )


def _charset(msh18: bytes) -> str | None:
    if not msh18:
        return None
    name = msh18.split(b"~", 1)[0].decode("ascii", errors="replace").strip().upper()
    return CHARSETS.get(name, "latin-1")


def _keep_obr3(raw: bytes, comp: bytes) -> bool:
    """OBR-3 is kept only when it is an entity identifier typed EUI-64 (component 4)."""
    parts = raw.split(comp)
    return len(parts) >= 4 and parts[3].strip().upper().decode("latin-1") in DEVICE_ID_TYPES


def _keep_obx3(raw: bytes, comp: bytes, device_codes: frozenset[str]) -> bool:
    """OBX-3 is kept only when it is an MDC code (component 3 or 6) the device table knows."""
    code = raw.partition(comp)[0]  # the identifier; most OBX-3 stop here
    if code.decode("latin-1").strip() not in device_codes:
        return False
    parts = raw.split(comp)
    systems = {parts[i].strip().upper() for i in (2, 5) if len(parts) > i}
    return b"MDC" in systems


def _cut_segment(
    name: bytes, seg: bytes, enc: Encoding, device_codes: frozenset[str]
) -> tuple[CutSegment | None, bool]:
    wanted = ALLOWED[name]
    offset = 1 if name in HEADERS else 0  # MSH-1 is the separator: MSH-n is values[n-1]
    # Split no further than the last wanted field; the tail stays one unread chunk.
    values = seg.split(bytes([enc.field]), max(wanted) - offset + 1)
    kept: list[tuple[int, bytes]] = []
    truncated = False
    comp = bytes([enc.component])
    for pos in sorted(wanted):
        index = pos - offset
        if index >= len(values) or not values[index]:
            continue
        raw = values[index]
        if len(raw) > MAX_FIELD_LEN:
            raw, truncated = raw[:MAX_FIELD_LEN], True
        if name == b"OBR" and not _keep_obr3(raw, comp):
            continue
        if name == b"OBX" and pos == 3 and not _keep_obx3(raw, comp, device_codes):
            continue
        kept.append((pos, raw))
    if not kept and name not in HEADERS:
        return None, truncated
    return CutSegment(name.decode("ascii"), tuple(kept)), truncated


def _serialise(header: bytes, enc: Encoding, segments: list[CutSegment]) -> bytes:
    fs = bytes([enc.field])
    lines = []
    for seg in segments:
        offset = 1 if seg.name.encode() in HEADERS else 0
        top = max((p for p, _ in seg.fields), default=2)
        slots = [b""] * (top - offset + 1)
        slots[0] = seg.name.encode()
        if offset:
            slots[1] = enc.msh2()
        for pos, raw in seg.fields:
            slots[pos - offset] = raw
        lines.append(fs.join(slots))
    return b"\r".join(lines)


def cut_frame(body: bytes, device_codes: frozenset[str] = frozenset()) -> list[CutMessage]:
    """Cut every message in one frame (a single message or a FHS/BHS batch).

    ``body`` is the HL7 text without MLLP framing. Raises Malformed when it does not
    start with a plausible MSH/FHS/BHS. Segments before the first header are ignored.
    """
    body = body.lstrip(b"\r\n \t\x00")
    if body[:3] not in HEADERS:
        raise Malformed("message does not start with MSH/FHS/BHS")
    messages: list[CutMessage] = []
    header = b""
    enc: Encoding | None = None
    segs: list[CutSegment] = []
    seen: set[CutSegment] = set()
    truncated = False

    def close() -> None:
        if enc is None:
            return
        msh = segs[0] if segs else None
        codec = _charset(msh.get(18)) if msh and header == b"MSH" else None
        messages.append(
            CutMessage(
                header=header.decode("ascii"),
                encoding=enc,
                codec=codec,
                segments=tuple(segs),
                truncated=truncated,
                signature=_serialise(header, enc, segs),
            )
        )

    # bytes.split is C-speed; non-allowed segments are sliced out but never split into
    # fields, decoded or kept (profiled: a regex scan for allowed segments was 20x slower).
    for seg in body.replace(b"\n", b"\r").split(b"\r"):
        name = seg[:3]
        if name not in ALLOWED:
            continue
        if name in HEADERS:
            new_enc = parse_encoding(seg)
            close()
            header, enc, segs, seen, truncated = name, new_enc, [], set(), False
        elif enc is None or len(seg) < 4 or seg[3] != enc.field:
            continue  # not a segment of the current message (e.g. "OBXY..." or no header yet)
        cut, was_truncated = _cut_segment(name, seg, enc, device_codes)
        truncated |= was_truncated
        if cut is None or cut in seen:
            continue
        if len(segs) >= MAX_CUT_SEGMENTS:
            truncated = True
            continue
        seen.add(cut)
        segs.append(cut)
    close()
    return messages


# What ``frame_key`` reads of each allowed segment: ``itemgetter`` of the field indexes
# in ``seg.split(fs, limit)`` (index 0 is the segment id; header positions are shifted
# by one, index 1 = MSH-2), using the split limit of ``_cut_segment`` so both see the very
# same field bytes; the highest index (shorter splits are padded with empty fields); the
# key length when every field is empty; and whether the segment is a header.
_KEY_PICKS: dict[bytes, tuple[Callable[[list[bytes]], tuple[bytes, ...]], int, int, int, bool]] = {}
for _name, _wanted in ALLOWED.items():
    _off = 1 if _name in HEADERS else 0
    _indexes = ((1,) if _off else ()) + tuple(sorted(p - _off for p in _wanted))
    _KEY_PICKS[_name] = (
        itemgetter(0, *_indexes),
        max(_wanted) - _off + 1,
        _indexes[-1],
        3 + len(_indexes),
        bool(_off),
    )
_PAD = [b""] * 32


def frame_key(body: bytes, device_codes: frozenset[str] = frozenset()) -> bytes | None:
    """A cache key for ``cut_frame(body, device_codes)``, built from bytes only.

    Equal keys mean equal cuts: the key is the allow-listed field bytes that the cut
    keeps (OBR-3/OBX-3 only where the cut keeps them, never MSH-7/MSH-10, never a
    field of any other segment), with segment ids, MSH-1/MSH-2 and empty slots kept,
    per message, duplicates dropped, as the cut does. It holds nothing the cut does
    not. None when the fast path does not apply (no header first, a field longer
    than MAX_FIELD_LEN, more than MAX_CUT_SEGMENTS segments, a header too short to
    carry encoding characters): ``cut_frame`` decides those. The key is only ever
    looked up among keys of frames that ``cut_frame`` accepted, so it need not
    validate anything itself.
    """
    body = body.lstrip(b"\r\n \t\x00")
    if body[:3] not in HEADERS:
        return None
    if b"\n" in body:
        body = body.replace(b"\n", b"\r")
    out: list[bytes] = []
    fs = comp = b""
    seen: set[bytes] = set()
    picks = _KEY_PICKS
    for seg in body.split(b"\r"):
        pick = picks.get(seg[:3])
        if pick is None:
            continue
        getter, limit, last, empty_len, header = pick
        if header:
            fs, comp = seg[3:4], seg[4:5]
            if not comp or comp == fs:
                return None  # no encoding characters: cut_frame rejects or decides
            seen = set()
        elif not fs or seg[3:4] != fs:
            continue  # not a segment of the current message, as in cut_frame
        values = seg.split(fs, limit)
        if len(values) <= last:
            values += _PAD[: last + 1 - len(values)]
        fields = getter(values)  # (segment id, field, field, ...)
        if len(seg) > MAX_FIELD_LEN and max(map(len, fields)) > MAX_FIELD_LEN:
            return None  # truncated field: cut_frame counts it
        if header:
            key = fs.join(fields)
        elif seg[:3] == b"OBX":
            name, obx3, obx18 = fields
            if obx3 and not _keep_obx3(obx3, comp, device_codes):
                obx3 = b""
            if not obx3 and not obx18:
                continue
            key = fs.join((name, obx3, obx18))
        elif seg[:3] == b"OBR":
            if not fields[1] or not _keep_obr3(fields[1], comp):
                continue
            key = fs.join(fields)
        else:
            key = fs.join(fields)
            if len(key) == empty_len:
                continue  # no field kept: cut_frame drops the segment
        if key in seen:
            continue
        if len(seen) >= MAX_CUT_SEGMENTS:
            return None  # cut_frame marks the message truncated
        seen.add(key)
        out.append(key)
    return b"\r".join(out)
