"""Allow-listed element reader for DICOM data sets and command sets (PS3.5 section 7).

A tag walker over the first bytes of one data set: implicit VR little endian, explicit VR
little endian and explicit VR big endian (PS3.5 7.1.2/7.1.3, annex A). It returns the raw
value bytes of the elements in an allow-list and nothing else; every other element -
group 0010 patient attributes, dates, pixel data - is stepped over by its length and its
value bytes are never looked at. Sequences are entered only when the allow-list names an
element nested in them (worklist items); other sequences of undefined length are walked
structurally (item and delimiter tags) to find their end.

The walk stops at the first top-level element whose tag is past the last allow-listed tag,
at the end of the bytes given (the caller caps them), or at the first inconsistency. It
never raises: a data set it cannot read yields what it found before that point.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
JPIP_DEFLATE = "1.2.840.10008.1.2.4.95"

ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                      b"UR", b"UT", b"UV"})
MAX_DEPTH = 6  # sequence nesting walked before giving up on a data set
MAX_VALUE_LEN = 256  # an allow-listed value longer than this is not a device string
MAX_ELEMENTS = 4096  # elements visited per data set, a bound on work per call

# Maximum value length per VR (PS3.5 table 6.2-1) for the string VRs of allow-listed
# elements, per value of a multi-valued element. A longer value, or one holding control
# bytes, means the length field is wrong (a damaged or hostile data set): its value would
# run into the next elements, which may be patient attributes, so the walk stops there.
VR_MAX_LEN = {b"AE": 16, b"CS": 16, b"SH": 16, b"LO": 64, b"UI": 64}
ESC = 0x1B  # ISO 2022 code extension: allowed inside LO/SH values
_CONTROL_BUT_ESC = bytes(b for b in range(0x20) if b != ESC)
TAG_VRS = {  # VRs of the string elements medtap reads (PS3.6), for implicit VR data sets
    0x00080016: b"UI",  # SOP Class UID
    0x00080060: b"CS",  # Modality
    0x00080070: b"LO",  # Manufacturer
    0x00081010: b"SH",  # Station Name
    0x00081090: b"LO",  # Manufacturer's Model Name
    0x00181000: b"LO",  # Device Serial Number
    0x00181020: b"LO",  # Software Versions
    0x00400001: b"AE",  # Scheduled Station AE Title
    0x00400241: b"AE",  # Performed Station AE Title
}


def plausible_string(raw: bytes, max_len: int) -> bool:
    """True when ``raw`` can be a string value of VR max length ``max_len``: no control
    byte but ESC, NUL only as trailing padding, each backslash-separated value in bounds."""
    body = raw.rstrip(b"\x00 ")
    if len(body.translate(None, _CONTROL_BUT_ESC)) != len(body):  # a control byte but ESC
        return False
    return all(len(part) <= max_len for part in body.split(b"\\"))


class Syntax(enum.Enum):
    IMPLICIT_LE = "implicit-le"
    EXPLICIT_LE = "explicit-le"
    EXPLICIT_BE = "explicit-be"
    DEFLATED = "deflated"  # not read: counted and skipped


def syntax_of(transfer_syntax: str | None) -> Syntax | None:
    """Encoding of a data set under ``transfer_syntax``; None when it is not known."""
    if transfer_syntax is None:
        return None
    if transfer_syntax == IMPLICIT_VR_LE:
        return Syntax.IMPLICIT_LE
    if transfer_syntax == EXPLICIT_VR_BE:
        return Syntax.EXPLICIT_BE
    if transfer_syntax in (DEFLATED_EXPLICIT_VR_LE, JPIP_DEFLATE):
        return Syntax.DEFLATED
    # Every other standard transfer syntax (JPEG, JPEG 2000, RLE, MPEG, ...) encodes the
    # data set in explicit VR little endian; only the pixel data is encapsulated.
    return Syntax.EXPLICIT_LE


def guess_syntax(data: bytes) -> Syntax:
    """Encoding guess when the A-ASSOCIATE-AC was not seen (capture began mid-association).

    Explicit VR puts two upper-case letters after the first tag; a big-endian first tag
    has its group in the high bytes.
    """
    if len(data) >= 6 and data[4:6].isalpha() and data[4:6].isupper():
        return Syntax.EXPLICIT_BE if data[0] == 0 and data[1] != 0 else Syntax.EXPLICIT_LE
    return Syntax.IMPLICIT_LE


@dataclass(slots=True)
class Elements:
    """What the walk found: allow-listed values, keyed by (parent sequence tag or 0, tag)."""

    values: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)
    complete: bool = False  # reached a tag past the allow-list, or the end of the data set
    error: str | None = None  # why the walk stopped early, when it did


# (u16, u32, (group, element)) readers per byte order
_LE = (
    struct.Struct("<H").unpack_from,
    struct.Struct("<I").unpack_from,
    struct.Struct("<HH").unpack_from,
)
_BE = (
    struct.Struct(">H").unpack_from,
    struct.Struct(">I").unpack_from,
    struct.Struct(">HH").unpack_from,
)


class _Stop(Exception):
    """Internal: end the walk (truncated bytes or an inconsistency)."""


class _Walker:
    __slots__ = (
        "data",
        "big",
        "explicit",
        "wanted",
        "nested",
        "out",
        "visited",
        "_u16",
        "_u32",
        "_tag",
    )

    def __init__(
        self,
        data: bytes,
        syntax: Syntax,
        wanted: frozenset[int],
        nested: Mapping[int, frozenset[int]],
        out: Elements,
    ) -> None:
        self.data = data
        self.big = syntax is Syntax.EXPLICIT_BE
        self.explicit = syntax is not Syntax.IMPLICIT_LE
        self.wanted = wanted
        self.nested = nested
        self.out = out
        self.visited = 0
        # Compiled structs read in place: the walk reads a few integers per element.
        self._u16, self._u32, self._tag = _BE if self.big else _LE

    def u16(self, pos: int) -> int:
        if pos + 2 > len(self.data):
            raise _Stop("truncated")
        value: int = self._u16(self.data, pos)[0]
        return value

    def u32(self, pos: int) -> int:
        if pos + 4 > len(self.data):
            raise _Stop("truncated")
        value: int = self._u32(self.data, pos)[0]
        return value

    def header(self, pos: int) -> tuple[int, bytes, int, int]:
        """(tag, VR or b'', value length, value offset) of the element at ``pos``."""
        # u16()/u32() inlined (same bounds checks): this runs once per element walked.
        data = self.data
        size = len(data)
        if pos + 4 > size:
            raise _Stop("truncated")
        group, element = self._tag(data, pos)
        tag = (group << 16) | element
        self.visited += 1
        if self.visited > MAX_ELEMENTS:
            raise _Stop("too many elements")
        if group == 0xFFFE or not self.explicit:
            if pos + 8 > size:
                raise _Stop("truncated")
            return tag, b"", self._u32(data, pos + 4)[0], pos + 8
        if pos + 6 > size:
            raise _Stop("truncated")
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            if pos + 12 > size:
                raise _Stop("truncated")
            return tag, vr, self._u32(data, pos + 8)[0], pos + 12
        if not vr.isalpha():
            raise _Stop("bad VR")
        if pos + 8 > size:
            raise _Stop("truncated")
        return tag, vr, self._u16(data, pos + 6)[0], pos + 8

    def walk(self, pos: int, end: int | None, parent: int, depth: int, stop_after: int) -> int:
        """Elements from ``pos`` to ``end`` (None: until an item delimiter); the end offset."""
        allowed = self.wanted if parent == 0 else self.nested.get(parent, frozenset())
        while end is None or pos < end:
            tag, vr, length, value = self.header(pos)
            if tag == ITEM_DELIMITER and end is None:
                return value
            if tag >> 16 == 0xFFFE:
                raise _Stop("item tag among elements")
            if parent == 0 and tag > stop_after:
                self.out.complete = True
                return pos
            if length == UNDEFINED:
                if vr not in (b"", b"SQ", b"UN", b"OB", b"OW"):
                    raise _Stop("undefined length on a short VR")
                pos = self.sequence(value, None, tag, depth)
                continue
            stop = value + length
            if stop > len(self.data):
                raise _Stop("truncated")  # also: a wanted value cut by the cap is dropped
            if tag in allowed and length <= MAX_VALUE_LEN:
                raw = self.data[value:stop]
                max_len = VR_MAX_LEN.get(vr) or VR_MAX_LEN.get(TAG_VRS.get(tag, b""))
                if max_len is not None and not plausible_string(raw, max_len):
                    raise _Stop(f"value of ({tag >> 16:04x},{tag & 0xFFFF:04x}) fails its VR")
                self.out.values.setdefault((parent, tag), []).append(raw)
            elif tag in self.nested and (vr in (b"", b"SQ")):
                self.sequence(value, stop, tag, depth)
            pos = stop  # every other value is stepped over, never read
        if end is not None and pos != end:
            raise _Stop("element overruns its item")
        return pos

    def sequence(self, pos: int, end: int | None, tag: int, depth: int) -> int:
        """Items of a sequence from ``pos`` to ``end`` (None: to the sequence delimiter)."""
        if depth >= MAX_DEPTH:
            raise _Stop("sequences nested too deep")
        enter = tag if tag in self.nested else -1
        while end is None or pos < end:
            item, _, length, value = self.header(pos)
            if item == SEQUENCE_DELIMITER and end is None:
                return value
            if item != ITEM:
                raise _Stop("no item tag in a sequence")
            if length == UNDEFINED:
                pos = self.walk(value, None, enter, depth + 1, 0xFFFFFFFF)
            elif enter >= 0:
                pos = self.walk(value, value + length, enter, depth + 1, 0xFFFFFFFF)
            else:
                pos = value + length  # an item nobody asked for (or a pixel fragment)
                if pos > len(self.data):
                    raise _Stop("truncated")
        return pos


def read_elements(
    data: bytes,
    syntax: Syntax,
    wanted: frozenset[int],
    nested: Mapping[int, frozenset[int]] | None = None,
    stop_after: int | None = None,
) -> Elements:
    """Raw values of the allow-listed elements in ``data`` (the first bytes of a data set).

    ``wanted`` are top-level tags as ``group << 16 | element``; ``nested`` maps a sequence
    tag to tags read inside its items. ``stop_after`` defaults to the largest tag named.
    """
    nested = nested or {}
    out = Elements()
    if syntax is Syntax.DEFLATED:
        out.error = "deflated"
        return out
    last = max([*wanted, *nested]) if stop_after is None else stop_after
    walker = _Walker(data, syntax, wanted, nested, out)
    try:
        walker.walk(0, len(data), 0, 0, last)
        out.complete = True
    except _Stop as why:
        out.error = str(why)
    return out


def text(raw: bytes) -> str:
    """A device string value (AE, CS, LO, SH, UI): printable text, padding stripped.

    Multi-valued strings keep DICOM's backslash separator.
    """
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        value = raw.decode("latin-1")
    stripped = value.strip(" \x00")
    if stripped.isprintable():  # usual: NUL/space padding only, nothing inside to replace
        return stripped
    value = "".join(ch if ch.isprintable() else " " for ch in value)
    return value.strip(" \x00")


def us(raw: bytes, big: bool = False) -> int | None:
    """An unsigned short value, or None when it is not two bytes."""
    if len(raw) != 2:
        return None
    return int.from_bytes(raw, "big" if big else "little")
