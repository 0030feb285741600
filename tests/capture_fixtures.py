"""Writers for pcap / pcapng test captures, byte for byte with ``struct`` (no libpcap).

Used by ``pcaps/linktypes/make_linktype_pcaps.py`` and the capture tests to build every
format variant the readers accept: µs/ns pcap in both byte orders, pcapng sections in both byte
orders with several interfaces, ``if_tsresol``/``if_tsoffset``, EPB/SPB/OPB and blocks to skip.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

Frame = tuple[float, bytes]  # (timestamp, frame bytes); wirelen = len(frame) unless given

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D


def pcap_bytes(
    linktype: int,
    frames: Iterable[Frame],
    *,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 65535,
    wirelens: Sequence[int] | None = None,
) -> bytes:
    """A classic pcap file. Timestamps are split exactly (integer arithmetic on round())."""
    o = ">" if big_endian else "<"
    magic = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
    units = 1_000_000_000 if nanosecond else 1_000_000
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for i, (ts, data) in enumerate(frames):
        ticks = round(ts * units)
        wl = wirelens[i] if wirelens is not None else len(data)
        out.append(struct.pack(o + "IIII", ticks // units, ticks % units, len(data), wl))
        out.append(data)
    return b"".join(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def ng_block(btype: int, body: bytes, o: str = "<") -> bytes:
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack(o + "II", btype, total) + body + struct.pack(o + "I", total)


def ng_option(code: int, value: bytes, o: str = "<") -> bytes:
    return struct.pack(o + "HH", code, len(value)) + _pad4(value)


def ng_shb(o: str = "<", options: bytes = b"") -> bytes:
    body = struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options
    return ng_block(0x0A0D0D0A, body, o)


def ng_idb(
    linktype: int,
    o: str = "<",
    *,
    snaplen: int = 65535,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    name: str | None = None,
) -> bytes:
    opts = b""
    if name is not None:
        opts += ng_option(2, name.encode(), o)
    if tsresol is not None:
        opts += ng_option(9, bytes([tsresol]), o)
    if tsoffset is not None:
        opts += ng_option(14, struct.pack(o + "q", tsoffset), o)
    if opts:
        opts += ng_option(0, b"", o)
    return ng_block(1, struct.pack(o + "HHI", linktype, 0, snaplen) + opts, o)


def units_of(tsresol: int | None) -> int:
    if tsresol is None:
        return 1_000_000
    return 2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10 ** (tsresol & 0x7F)


def ng_epb(
    iface: int, ts: float, data: bytes, o: str = "<", *, tsresol: int | None = None,
    tsoffset: int = 0, wirelen: int | None = None, comment: str | None = None,
) -> bytes:
    units = units_of(tsresol)
    if units % 1_000_000 == 0:  # exact for timestamps with at most 6 decimals
        ticks = (round(ts * 1_000_000) - tsoffset * 1_000_000) * (units // 1_000_000)
    else:
        ticks = round((ts - tsoffset) * units)
    wl = len(data) if wirelen is None else wirelen
    body = struct.pack(o + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wl)
    body += _pad4(data)
    if comment is not None:
        body += ng_option(1, comment.encode(), o) + ng_option(0, b"", o)
    return ng_block(6, body, o)


def ng_spb(data: bytes, o: str = "<", *, wirelen: int | None = None) -> bytes:
    wl = len(data) if wirelen is None else wirelen
    return ng_block(3, struct.pack(o + "I", wl) + data, o)


def ng_opb(iface: int, ts: float, data: bytes, o: str = "<") -> bytes:
    ticks = round(ts * 1_000_000)
    body = struct.pack(o + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data))
    return ng_block(2, body + data, o)


def ng_nrb(o: str = "<") -> bytes:
    rec = struct.pack(o + "HH", 1, 13) + _pad4(bytes([10, 0, 0, 1]) + b"host-a\x00\x00\x00")
    return ng_block(4, rec + struct.pack(o + "HH", 0, 0), o)


def ng_isb(iface: int, o: str = "<") -> bytes:
    return ng_block(5, struct.pack(o + "III", iface, 0, 0), o)


def ng_custom(o: str = "<") -> bytes:
    return ng_block(0x00000BAD, struct.pack(o + "I", 32473) + b"medtap-custom-data", o)
