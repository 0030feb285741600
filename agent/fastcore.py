"""Chooses the C hot path (``agent._fastcore``) when it is built, pure Python otherwise.

The C extension is optional (``setup.py`` marks it so): without a compiler medtap installs and
runs on the Python code, which stays the definition of every behaviour. ``MEDTAP_NO_C=1`` in the
environment forces the Python path (read on every call, so tests can switch it).

Two pieces, each a drop-in for Python code with the same contract:

- ``fast_lane(table)``: ``agent._fastcore.Lane``, the fast lane of ``agent.fastlane`` in C
  (same decision, same flow updates; ``tests/test_fastcore.py`` compares them frame by frame).
- ``pcap_walker(...)``: ``agent._fastcore.PcapWalker``, the record loop of
  ``agent.capture.pcapfile`` in C. ``attach_lane`` lets it run the lane itself, so frames the
  lane counts never become Python objects and ``Analyzer.run`` sees only the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any, Protocol

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


class LaneReader(Protocol):
    """A frame source that runs a fast lane itself (``agent._fastcore.PcapWalker``)."""

    def attach(self, lane: Any, tick: Callable[[], None] | None, every: int) -> None: ...

    def detach(self) -> tuple[int, int]: ...


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


def attach_lane(
    frames: Iterable[RawFrame],
    lane: FastLane | None,
    tick: Callable[[], None] | None,
    every: int,
) -> LaneReader | None:
    """Let ``frames`` run ``lane`` itself if it can (a C walker with a C lane).

    Returns the reader, whose ``detach()`` gives the packets and bytes the lane counted;
    it calls ``tick`` every ``every`` records. None when ``frames`` is any other iterable:
    the caller runs the lane on each frame as before.
    """
    c = c_core()
    if c is None or lane is None:
        return None
    if not isinstance(frames, c.PcapWalker) or not isinstance(lane, c.Lane):
        return None
    reader: LaneReader = frames
    reader.attach(lane, tick, every)
    return reader
