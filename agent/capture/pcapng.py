"""pcapng capture files (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html).

Reads: Section Header Blocks (either byte order, several sections; each new section forgets
the interfaces of the one before), Interface Description Blocks (link type, snaplen and the
``if_tsresol`` (9) and ``if_tsoffset`` (14) options; decimal and power-of-two resolutions),
Enhanced Packet Blocks, Simple Packet Blocks and the obsolete Packet Block (type 2).

Never reads: Name Resolution, Interface Statistics, Decryption Secrets, custom or unknown
blocks (skipped by length), nor any option of a packet block (comments, flags, hashes).

Simple Packet Blocks carry no timestamp; they get the timestamp of the frame before them in the
file (0.0 if they come first), so time never runs backwards for flow timeouts.

Damage policy: before any frame, a bad block raises ``CaptureError``; after good frames it ends
the read with a warning. A block length outside ``12..MAX_BLOCK_LEN`` or not a multiple of 4, a
trailer length that differs from the header, or a packet length larger than its block is damage.
A file cut inside its last block keeps every frame before it and warns.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from agent.capture import CaptureError, RawFrame
from agent.capture import linktypes as lt
from agent.capture.pcapfile import (
    CHUNK_SIZE,
    _Progress,
    read_chunk,
    stream_dead,
    unsupported_linktype,
)

MAX_BLOCK_LEN = 256 * 1024 * 1024  # a longer block is damage, not data
SHB_MAGIC = b"\x0a\x0d\x0d\x0a"
BOM_LE = b"\x4d\x3c\x2b\x1a"
BOM_BE = b"\x1a\x2b\x3c\x4d"

BT_SHB = 0x0A0D0D0A
BT_IDB = 1
BT_OPB = 2  # obsolete Packet Block
BT_SPB = 3
BT_EPB = 6

OPT_END = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14

# smallest legal total length of each block type we read
MIN_LEN = {BT_SHB: 28, BT_IDB: 20, BT_OPB: 32, BT_SPB: 16, BT_EPB: 32}


@dataclass(slots=True)
class Interface:
    linktype: int
    snaplen: int
    units: int = 1_000_000  # timestamp ticks per second (if_tsresol)
    offset: int = 0  # seconds added to every timestamp (if_tsoffset)
    supported: bool = True
    warned: bool = False


class _Damage(Exception):
    pass


def parse_idb(block: bytes, start: int, blen: int, order: str) -> Interface:
    """Interface Description Block at ``block[start:start+blen]``."""
    linktype, _res, snaplen = struct.unpack_from(order + "HHI", block, start + 8)
    iface = Interface(linktype=linktype, snaplen=snaplen, supported=linktype in lt.SUPPORTED)
    p = start + 16
    end = start + blen - 4
    opt = struct.Struct(order + "HH").unpack_from
    while p + 4 <= end:
        code, olen = opt(block, p)
        if code == OPT_END:
            break
        vstart = p + 4
        if vstart + olen > end:
            raise _Damage(f"interface option {code} longer than its block")
        if code == OPT_IF_TSRESOL and olen >= 1:
            v = block[vstart]
            exp = v & 0x7F
            iface.units = 2**exp if v & 0x80 else 10**exp
        elif code == OPT_IF_TSOFFSET and olen >= 8:
            iface.offset = struct.unpack_from(order + "q", block, vstart)[0]
        p = vstart + ((olen + 3) & ~3)
    return iface


class PcapngSource:
    """Frames of a pcapng file; construction checks the first Section Header Block."""

    def __init__(self, name: str, stream: IO[bytes], raw: IO[bytes], size: int | None) -> None:
        self.name = name
        self.warnings: list[str] = []
        self._stream = stream
        self._progress = _Progress(raw, size)
        head = read_chunk(stream, CHUNK_SIZE, name, self.warnings)
        self._progress.update()
        if head[:4] != SHB_MAGIC:
            raise CaptureError(f"{name}: not a pcapng file")
        if len(head) < 28:
            raise CaptureError(f"{name}: truncated pcapng section header: {len(head)} of 28 bytes")
        bom = head[8:12]
        if bom not in (BOM_LE, BOM_BE):
            raise CaptureError(f"{name}: not a pcapng file (bad byte-order magic {bom.hex()})")
        order = "<" if bom == BOM_LE else ">"
        self.byte_order = "little" if order == "<" else "big"
        major, minor = struct.unpack_from(order + "HH", head, 12)
        if major != 1:
            raise CaptureError(f"{name}: unsupported pcapng version {major}.{minor}")
        self._head = head
        self._started = False
        self.linktypes: list[int] = []  # link types of the interfaces seen, in order
        self._precheck(order)

    @property
    def bytes_read(self) -> int:
        return self._progress.bytes_read

    @property
    def size(self) -> int | None:
        return self._progress.size

    def _precheck(self, order: str) -> None:
        """Fail early when every interface described at the start has an unsupported link type."""
        head = self._head
        pos = 0
        seen: list[int] = []
        while pos + 12 <= len(head):
            btype, blen = struct.unpack_from(order + "II", head, pos)
            if blen < 12 or blen % 4 or pos + blen > len(head):
                return
            if btype == BT_IDB and blen >= MIN_LEN[BT_IDB]:
                seen.append(struct.unpack_from(order + "H", head, pos + 8)[0])
            elif btype != BT_SHB and pos > 0:
                break
            pos += blen
        if seen and not any(v in lt.SUPPORTED for v in seen):
            raise CaptureError(f"{self.name}: {unsupported_linktype(seen[0])}")

    def close(self) -> None:
        """Close the file; ``frames()`` does this itself when it reaches the end."""
        self._stream.close()
        self._progress.raw.close()

    def frames(self) -> Iterator[RawFrame]:
        if self._started:
            raise CaptureError(f"{self.name}: frames() can be iterated only once")
        self._started = True
        count = 0
        try:
            for frame in self._walk():
                yield frame
                count += 1
        except _Damage as exc:
            if count == 0:
                raise CaptureError(f"{self.name}: {exc}") from None
            self.warnings.append(f"{exc}; stopped after {count} frames")
        finally:
            self.close()

    def _walk(self) -> Iterator[RawFrame]:  # noqa: C901 - one loop over block types
        name = self.name
        warnings = self.warnings
        stream = self._stream
        progress = self._progress
        buf = self._head
        self._head = b""
        pos = 0
        base = 0
        eof = False
        order = "<"
        hdr = struct.Struct("<II").unpack_from
        epb = struct.Struct("<IIIII").unpack_from
        opb = struct.Struct("<HHIIII").unpack_from
        u32 = struct.Struct("<I").unpack_from
        ifaces: list[Interface] = []
        last_ts = 0.0
        yielded = 0

        while True:
            n = len(buf)
            need = 12
            if n - pos >= 12:
                if buf[pos : pos + 4] == SHB_MAGIC:
                    bom = buf[pos + 8 : pos + 12]
                    if bom == BOM_LE:
                        order = "<"
                    elif bom == BOM_BE:
                        order = ">"
                    else:
                        raise _Damage(
                            f"bad byte-order magic in section header at byte {base + pos}"
                        )
                    hdr = struct.Struct(order + "II").unpack_from
                    epb = struct.Struct(order + "IIIII").unpack_from
                    opb = struct.Struct(order + "HHIIII").unpack_from
                    u32 = struct.Struct(order + "I").unpack_from
                btype, blen = hdr(buf, pos)
                if blen < 12 or blen & 3 or blen > MAX_BLOCK_LEN or blen < MIN_LEN.get(btype, 12):
                    raise _Damage(f"corrupt block at byte {base + pos}: type {btype:#x}, "
                                  f"length {blen}")
                need = blen
                if n - pos >= blen:
                    if u32(buf, pos + blen - 4)[0] != blen:
                        raise _Damage(f"corrupt block at byte {base + pos}: trailer length "
                                      "differs from header")
                    if btype in (BT_EPB, BT_OPB):  # enhanced, or legacy (with drops)
                        if btype == BT_EPB:
                            iid, hi, lo, caplen, wirelen = epb(buf, pos + 8)
                        else:
                            iid, _drops, hi, lo, caplen, wirelen = opb(buf, pos + 8)
                        if caplen > blen - 32:
                            raise _Damage(f"corrupt packet block at byte {base + pos}: "
                                          f"caplen {caplen} > block")
                        if iid >= len(ifaces):
                            raise _Damage(f"packet block at byte {base + pos} names interface "
                                          f"{iid}, section has {len(ifaces)}")
                        ifc = ifaces[iid]
                        if ifc.supported:
                            last_ts = ((hi << 32) | lo) / ifc.units + ifc.offset
                            yield (last_ts, ifc.linktype, buf[pos + 28 : pos + 28 + caplen],
                                   wirelen)
                            yielded += 1
                        else:
                            self._skip_unsupported(ifc, iid, yielded)
                    elif btype == BT_SPB:
                        if not ifaces:
                            raise _Damage(f"simple packet block at byte {base + pos} before "
                                          "any interface")
                        ifc = ifaces[0]
                        wirelen = u32(buf, pos + 8)[0]
                        caplen = min(wirelen, blen - 16)
                        if ifc.snaplen:
                            caplen = min(caplen, ifc.snaplen)
                        if ifc.supported:
                            yield (last_ts, ifc.linktype, buf[pos + 12 : pos + 12 + caplen],
                                   wirelen)
                            yielded += 1
                        else:
                            self._skip_unsupported(ifc, 0, yielded)
                    elif btype == BT_IDB:
                        ifc = parse_idb(buf, pos, blen, order)
                        ifaces.append(ifc)
                        self.linktypes.append(ifc.linktype)
                    elif btype == BT_SHB:
                        ifaces = []
                    # any other block type: skipped by length
                    pos += blen
                    continue
            # fewer than `need` bytes buffered at pos
            if eof:
                break
            want = max(CHUNK_SIZE, need - (n - pos))
            chunk = b"" if stream_dead(stream) else read_chunk(stream, want, name, warnings)
            progress.update()
            if not chunk:
                eof = True
                continue
            base += pos
            buf = buf[pos:] + chunk
            pos = 0
        left = len(buf) - pos
        if left:
            if left < 12:
                warnings.append(f"truncated block header at byte {base + pos}: {left} of 12 bytes")
            else:
                warnings.append(f"truncated record at byte {base + pos}: {left} of {need} bytes")

    def _skip_unsupported(self, ifc: Interface, iid: int, yielded: int) -> None:
        if not ifc.warned:
            ifc.warned = True
            if yielded == 0 and self._all_unsupported_so_far():
                raise _Damage(unsupported_linktype(ifc.linktype))
            self.warnings.append(
                f"interface {iid}: {unsupported_linktype(ifc.linktype)}; its frames are skipped"
            )

    def _all_unsupported_so_far(self) -> bool:
        return not any(v in lt.SUPPORTED for v in self.linktypes)
