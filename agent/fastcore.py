"""Chooses the C hot path (``agent._fastcore``) when it is built, pure Python otherwise.

The C extension is optional (``setup.py`` marks it so): without a compiler medtap installs and
runs on the Python code, which stays the definition of every behaviour. ``MEDTAP_NO_C=1`` in the
environment forces the Python path (read on every call, so tests can switch it).

Three pieces, each a drop-in for Python code with the same contract:

- ``fast_lane(table)``: ``agent._fastcore.Lane``, the fast lane of ``agent.fastlane`` in C
  (same decision, same flow updates; ``tests/test_fastcore.py`` compares them frame by frame).
- ``pcap_walker(...)``: ``agent._fastcore.PcapWalker``, the record loop of
  ``agent.capture.pcapfile`` in C. ``attach_lane`` lets it run the lane itself, so frames the
  lane counts never become Python objects and ``Analyzer.run`` sees only the others.
- ``ring_walker(...)``: ``agent._fastcore.RingWalker``, the per-frame loop of
  ``agent.sensor.ring.RingSource`` over a TPACKET_V3 ring in C; ``attach_lane`` works on it
  too (through the ``RingSource.frames()`` object that polls around it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from agent.capture import RawFrame
from agent.fastlane import FastLane
from agent.fastlane import fast_lane as py_fast_lane
from agent.flows import TCP_CLOSED_TIMEOUT, Flow, FlowTable, TcpState

try:
    from agent import _fastcore as _c

    _C: ModuleType | None = _c
except ImportError:  # not built (no compiler at install time): pure Python
    _C = None

Buffer = bytes | memoryview  # what the pcap record walkers read from
# refill(buf, pos, count) -> the next (buf, pos), or None at the end: agent.capture.pcapfile
Refill = Callable[[Buffer, int, int], "tuple[Buffer, int] | None"]


@runtime_checkable
class LaneReader(Protocol):
    """A frame source that runs a C fast lane itself: ``agent._fastcore.PcapWalker``, or
    ``agent._fastcore.RingWalker`` (directly or inside ``RingSource.frames()``).
    ``attach(lane, tick, every)`` only accepts an ``agent._fastcore.Lane``."""

    def attach(self, lane: Any, tick: Callable[[], None] | None, every: int) -> None: ...

    def detach(self) -> tuple[int, int]: ...


class RingReader(LaneReader, Protocol):
    """``agent._fastcore.RingWalker``: frames of a TPACKET_V3 ring; StopIteration when the
    next block is not ready (iterate again later: the position is kept)."""

    frames: int  # handed on: yielded or counted by the lane
    bytes: int  # their wire bytes, 802.1Q tags put back included
    vlan_restored: int
    lane_packets: int  # since the walker was made (detach() gives those since attach())
    lane_bytes: int
    bad_frames: int  # frames outside their block; each ended its block
    block: int  # the block being read, or the next one waited for
    blocks: int

    def __iter__(self) -> Iterator[RawFrame]: ...

    def __next__(self) -> RawFrame: ...

    def ready_blocks(self) -> int: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


def c_core() -> ModuleType | None:
    """The compiled module, or None when it is not built or ``MEDTAP_NO_C`` is set."""
    if _C is None or os.environ.get("MEDTAP_NO_C", "") not in ("", "0"):
        return None
    return _C


def fast_lane(table: FlowTable) -> FastLane:
    """The fast lane for ``table``: the C one when available, else ``agent.fastlane``'s."""
    c = c_core()
    if c is None:
        return py_fast_lane(table)
    lane: FastLane = c.Lane(table, Flow, TcpState.SYN_SENT, TCP_CLOSED_TIMEOUT)
    return lane


def pcap_walker(
    buf: Buffer,
    pos: int,
    big_endian: bool,
    scale: float,
    linktype: int,
    maxcap: int,
    refill: Refill,
) -> Iterator[RawFrame] | None:
    """A C iterator over the pcap records in ``buf`` from ``pos`` on, None without C."""
    c = c_core()
    if c is None:
        return None
    walker: Iterator[RawFrame] = c.PcapWalker(
        buf, pos, big_endian, scale, linktype, maxcap, refill
    )
    return walker


def ring_walker(ring: Any, block_size: int, blocks: int, linktype: int,
                block: int = 0) -> RingReader | None:
    """A C walker over the TPACKET_V3 ring ``ring`` (a writable buffer: the ring's mmap)
    from ``block`` on, None without C."""
    c = c_core()
    if c is None:
        return None
    walker: RingReader = c.RingWalker(ring, block_size, blocks, linktype, block)
    return walker


def attach_lane(
    frames: Iterable[RawFrame],
    lane: FastLane | None,
    tick: Callable[[], None] | None,
    every: int,
) -> LaneReader | None:
    """Let ``frames`` run ``lane`` itself if it can (a ``LaneReader`` with a C lane).

    Returns the reader, whose ``detach()`` gives the packets and bytes the lane counted;
    it calls ``tick`` every ``every`` records. None when ``frames`` is any other iterable:
    the caller runs the lane on each frame as before.
    """
    c = c_core()
    if c is None or lane is None or not isinstance(lane, c.Lane):
        return None
    if not isinstance(frames, LaneReader):  # a generator, a list...: the caller runs the lane
        return None
    frames.attach(lane, tick, every)
    return frames
