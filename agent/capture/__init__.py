"""Packet sources: capture files (pcap, pcapng, gzip) and live interfaces.

Every source yields raw frames as ``(ts, linktype, data, wirelen)`` tuples and
never dissects them: decoding is ``agent.decode``'s job. A source that hits bad
input raises ``CaptureError`` with a one-line message meant for a person, or,
for damage after good records (a truncated last record), keeps what it read and
adds a line to ``warnings``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

# (timestamp in seconds, DLT link type, captured bytes, original length on the wire)
RawFrame = tuple[float, int, bytes, int]


class CaptureError(Exception):
    """A capture cannot be read. ``str(exc)`` is one line for the user, no traceback."""


class PacketSource(Protocol):
    name: str  # file path or interface, for messages
    warnings: list[str]  # damage found and survived, e.g. "truncated last record at byte N"

    def frames(self) -> Iterator[RawFrame]:
        """Raw frames in capture order. May raise CaptureError before the first frame."""
        ...

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far (compressed bytes for gzip), for progress bars."""
        ...

    @property
    def size(self) -> int | None:
        """Total bytes to read, None when unknown (live capture)."""
        ...
