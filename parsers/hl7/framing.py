"""HL7 v2 message framing on a TCP byte stream (HL7 v2.5.1 Appendix C.4, MLLP release 1).

Two framings are recognised, decided per PDU by its first byte:

* MLLP: ``<VT 0x0B> message <FS 0x1C><CR 0x0D>``. The frame ends at the first FS (FS
  may not occur inside HL7 text); a missing CR after FS is tolerated. A new VT before
  the FS means the sender abandoned the frame: the bytes before it become an
  *abandoned* PDU that is dropped unread.
* Unframed HL7 (some gateways write bare messages onto the socket): a message starts
  with ``MSH``/``FHS``/``BHS`` and ends just before the next segment that starts with
  one of those, or with a VT (a segment start is the byte after CR or LF). The last
  unframed message of a direction therefore completes only when the next one starts
  or at end of stream (``Hl7Parser.eof`` decodes it then).

Between PDUs, runs of CR/LF/space/tab/NUL (keep-alives, stray line ends) are consumed
as *filler* PDUs that carry nothing. Nothing here reads message content beyond the
three-byte segment name at a PDU start.
"""

from __future__ import annotations

import re
from enum import Enum

from parsers.base import Malformed

VT, FS, CR = 0x0B, 0x1C, 0x0D
HEADER_SEGMENTS = (b"MSH", b"FHS", b"BHS")
MAX_MESSAGE_LEN = 128 * 1024  # no end of message within this many bytes: not HL7 (reject)
FILLER = frozenset(b"\r\n \t\x00")

# Where an unframed message ends: a line end followed by a header or VT. Searched with
# bytes.find (memchr/two-way, ~10x faster than a regex character class on a 1 kB message).
_UNFRAMED_ENDS = tuple(eol + h for h in (*HEADER_SEGMENTS, b"\x0b") for eol in (b"\r", b"\n"))
_RESYNC = re.compile(rb"\x0b(?:MSH|FHS|BHS)|(?<=[\r\n])(?:MSH|FHS|BHS)[^A-Za-z0-9\r\n]")


class PduKind(Enum):
    MLLP = "mllp"  # VT ... FS [CR]
    ABANDONED = "abandoned"  # VT ... (next VT before any FS)
    UNFRAMED = "unframed"  # MSH ... up to the next header segment
    FILLER = "filler"  # whitespace between messages


def _is_header_prefix(data: bytes | bytearray) -> bool:
    return any(h.startswith(bytes(data)) for h in HEADER_SEGMENTS)


def classify(pdu: bytes) -> PduKind:
    """Kind of a PDU that ``find_pdu`` delimited."""
    first = pdu[0]
    if first == VT:
        return PduKind.MLLP if FS in pdu else PduKind.ABANDONED
    if first in FILLER:
        return PduKind.FILLER
    return PduKind.UNFRAMED


def mllp_body(pdu: bytes) -> bytes:
    """The HL7 text inside one MLLP PDU (VT and FS[CR] removed)."""
    end = pdu.find(FS)
    return pdu[1:end] if end >= 0 else pdu[1:]


class Deframer:
    """Delimits PDUs at the start of one direction's buffer.

    Keeps only a scan offset so a message arriving in many small segments is scanned
    once (linear, not quadratic); ``reset`` after a gap.
    """

    __slots__ = ("_scan",)

    def __init__(self) -> None:
        self._scan = 0

    def reset(self) -> None:
        self._scan = 0

    def find_pdu(self, buf: bytearray) -> int | None:
        """Size of the PDU at the start of ``buf``; None: need more bytes.

        Raises Malformed when the bytes cannot start an HL7 PDU, or when a message
        has no end within MAX_MESSAGE_LEN.
        """
        if not buf:
            return None
        first = buf[0]
        if first in FILLER:
            n = 1
            while n < len(buf) and buf[n] in FILLER:
                n += 1
            self._scan = 0
            return n
        if first == VT:
            return self._mllp(buf)
        if buf[:3] in HEADER_SEGMENTS or (len(buf) < 3 and _is_header_prefix(buf)):
            return self._unframed(buf)
        raise Malformed(f"PDU starts with byte 0x{first:02x}: neither MLLP nor HL7")

    def _mllp(self, buf: bytearray) -> int | None:
        head = buf[1:4]
        if len(head) < 3:
            if not _is_header_prefix(head):
                raise Malformed("MLLP frame does not start with MSH/FHS/BHS")
            return None
        if head not in HEADER_SEGMENTS:
            raise Malformed("MLLP frame does not start with MSH/FHS/BHS")
        start = max(self._scan, 1)
        # the first VT or FS in buf[start:MAX_MESSAGE_LEN + 2]; VT only sought before FS
        limit = min(len(buf), MAX_MESSAGE_LEN + 2)
        fs_at = buf.find(b"\x1c", start, limit)
        vt_at = buf.find(b"\x0b", start, fs_at if fs_at >= 0 else limit)
        at = vt_at if vt_at >= 0 else fs_at
        if at < 0:
            if len(buf) > MAX_MESSAGE_LEN + 1:
                raise Malformed(f"no <FS> within {MAX_MESSAGE_LEN} bytes")
            self._scan = len(buf)
            return None
        if buf[at] == VT:  # a new frame began: the open one was abandoned
            self._scan = 0
            return at
        if at + 1 == len(buf):  # need the byte after FS to know whether CR follows
            self._scan = at
            return None
        self._scan = 0
        return at + 2 if buf[at + 1] == CR else at + 1

    def _unframed(self, buf: bytearray) -> int | None:
        start = max(self._scan, 3)
        # the first line end followed by MSH/FHS/BHS/VT wholly inside buf[start:MAX + 1]
        limit = min(len(buf), MAX_MESSAGE_LEN + 1)
        at = -1
        for end in _UNFRAMED_ENDS:
            found = buf.find(end, start, at + len(end) if at >= 0 else limit)
            if found >= 0:
                at = found
        if at < 0:
            if len(buf) > MAX_MESSAGE_LEN:
                raise Malformed(f"unframed message longer than {MAX_MESSAGE_LEN} bytes")
            self._scan = max(3, len(buf) - 4)  # a boundary may straddle this feed
            return None
        self._scan = 0
        return at + 1


def resync_offset(buf: bytearray) -> int | None:
    """Offset of the next plausible message start after a gap (VT+header or header at BOL)."""
    match = _RESYNC.search(buf)
    return match.start() if match else None
