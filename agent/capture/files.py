"""Open a capture file by what it contains, not by its name.

Detects classic pcap (all four magics), pcapng, and either of them gzip-compressed (magic
``1f 8b``; decompressed as a stream, never to disk). Every failure to open is a one-line
``CaptureError`` naming the file and the reason; nothing here reads past the file headers.
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
import zlib
from typing import IO, cast

from agent.capture import CaptureError, PacketSource
from agent.capture.pcapfile import MAGICS, MODIFIED_MAGICS, PcapFileSource
from agent.capture.pcapng import SHB_MAGIC, PcapngSource

GZIP_MAGIC = b"\x1f\x8b"

# other formats people hand us, named so the message says what the file is
_KNOWN_OTHER = (
    (b"snoop\x00\x00\x00", "a Solaris snoop file"),
    (b"PK\x03\x04", "a zip archive"),
    (b"BZh", "a bzip2 file"),
    (b"\xfd7zXZ\x00", "an xz file"),
    (b"\x28\xb5\x2f\xfd", "a zstd file"),
    (b"7z\xbc\xaf", "a 7z archive"),
    (b"XCP\x00", "a NetXray/Sniffer file"),
)


def describe_start(head: bytes) -> str:
    """How the first bytes of a file look, for "not a capture" messages."""
    sample = head[:8]
    if not sample:
        return "is empty"
    for magic, what in _KNOWN_OTHER:
        if head.startswith(magic):
            return f"looks like {what}"
    if all(32 <= b < 127 for b in sample[:4]):
        text = sample.decode("ascii", "replace")
        cut = len(text)
        for i, ch in enumerate(text):
            if not 32 <= ord(ch) < 127:
                cut = i
                break
        return f"starts with {text[:cut]!r}"
    return "starts with " + sample.hex(" ")


def open_capture(path: str | os.PathLike[str]) -> PacketSource:
    """Open a pcap / pcapng file, plain or gzip-compressed; raise CaptureError if it is not one.

    The returned source has checked the file's headers; ``frames()`` walks the records.
    """
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise CaptureError(f"{name}: no such file") from None
    except PermissionError:
        raise CaptureError(f"{name}: permission denied") from None
    except OSError as exc:
        raise CaptureError(f"{name}: cannot open: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CaptureError(f"{name}: is a directory, not a capture file")
    try:
        raw: IO[bytes] = open(name, "rb", buffering=0)  # noqa: SIM115 - owned by the source
    except PermissionError:
        raise CaptureError(f"{name}: permission denied") from None
    except IsADirectoryError:
        raise CaptureError(f"{name}: is a directory, not a capture file") from None
    except OSError as exc:
        raise CaptureError(f"{name}: cannot open: {exc.strerror or exc}") from None
    try:
        return _open(name, raw, st)
    except BaseException:
        raw.close()
        raise


def _open(name: str, raw: IO[bytes], st: os.stat_result) -> PacketSource:
    size = st.st_size if stat.S_ISREG(st.st_mode) else None
    try:
        head = raw.read(8)
        raw.seek(0)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise CaptureError(f"{name}: is a directory, not a capture file") from None
        raise CaptureError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if not head:
        raise CaptureError(f"{name}: empty file (0 bytes), not a capture")
    stream: IO[bytes] = raw
    what = ""
    if head[:2] == GZIP_MAGIC:
        gz = gzip.GzipFile(fileobj=raw, mode="rb")
        stream = cast(IO[bytes], gz)
        what = "gzip-compressed "
        try:
            head = gz.peek(8)[:8]
        except EOFError:
            raise CaptureError(f"{name}: gzip file cut short before any data") from None
        except (OSError, ValueError, zlib.error) as exc:  # zlib.error is neither
            raise CaptureError(f"{name}: damaged gzip file: {exc}") from None
        if not head:
            raise CaptureError(f"{name}: gzip file contains no data")
    source: PacketSource
    if head[:4] in MAGICS:
        source = PcapFileSource(name, stream, raw, size)
    elif head[:4] == SHB_MAGIC:
        source = PcapngSource(name, stream, raw, size)
    elif head[:4] in MODIFIED_MAGICS:
        raise CaptureError(f"{name}: 'modified pcap' (Kuznetsov) files are not supported; "
                           "convert with editcap -F pcap")
    else:
        raise CaptureError(
            f"{name}: not a pcap or pcapng file ({what}{describe_start(head)})"
        )
    return source
