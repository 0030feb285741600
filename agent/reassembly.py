"""TCP stream reassembly for the flows a parser asked for.

Implements the receiver's view of RFC 9293 as a passive observer sees it: sequence
numbers compared modulo 2^32 (§3.4, serial-number arithmetic as in RFC 1982), the
SYN occupying one sequence number so data starts at ISN+1 (§3.4.1), FIN ending a
direction after every byte before it (§3.6) and RST ending the connection (§3.5.2).

What it reads: the sequence number, the SYN/FIN/RST flags and the payload of each
segment the pipeline hands in. It never reads or logs payload *content*: bytes are
only passed on, in order, per direction, as ``StreamChunk`` events:

* ``data``: bytes exactly as they were on the wire, never invented;
* ``gap``: ``size`` bytes were lost (never zero-filled -- scapy's ``TCPSession``
  fills holes with zeros, a parser must never see invented bytes);
* ``eof``: the direction ended (FIN reached, RST, or ``flush`` on eviction).

Policies (Zeek's defaults, Suricata's limits):

* first copy wins: bytes already delivered or already held are never replaced by a
  retransmission; retransmitted and overlapping bytes are dropped and counted;
* out-of-order segments are held per direction, bounded by ``window`` bytes and
  ``max_segments`` segments; when either is exceeded, the first hole is reported as
  a gap and the held data after it continues;
* a segment starting ``window`` bytes or more ahead of the next expected byte is
  dropped and counted, nothing is allocated for it (an attacker-chosen sequence
  number 2^31 ahead costs nothing); ``flush`` reports the range it proves lost.
  After ``OOW_RESYNC_SEGMENTS`` such segments that follow each other exactly (a
  capture drop longer than the window, not stray packets) the direction resyncs:
  gap, then data from there on;
* a ``ReassemblyBudget`` shared by all reassemblers of a sensor caps the bytes held
  in total; when it is exhausted, the flow direction that wanted more gives up its
  held data as gap + data and counts it.

The in-order path is one comparison and one list literal; sorting, bisecting and
trimming only happen for segments that are out of order, duplicated or carry flags.
Not thread-safe: one reassembler per flow, one budget per worker.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from operator import itemgetter
from typing import TYPE_CHECKING, Final, Literal, NamedTuple

# Imported once at module level: ``dispatch`` runs for every reassembled segment, and a
# function-level import there cost ~1.3 us per call.
from parsers.base import TO_CLIENT, TO_SERVER

if TYPE_CHECKING:
    from parsers.base import Observation, Parser

log = logging.getLogger(__name__)

TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
_CTRL: Final = TCP_FIN | TCP_SYN | TCP_RST

SEQ_MOD: Final = 1 << 32
_MASK: Final = SEQ_MOD - 1
_HALF: Final = 1 << 31

MAX_WINDOW_BYTES: Final = 256 * 1024  # per direction: out-of-order bytes held, and how far ahead
MAX_OOO_SEGMENTS: Final = 256  # per direction: out-of-order segments (pieces) held
MAX_WINDOW_LIMIT: Final = 1 << 30  # window must stay far below 2^31 for unambiguous seq math
OOW_RESYNC_SEGMENTS: Final = 4  # back-to-back out-of-window segments that prove a long loss
DEFAULT_BUDGET_BYTES: Final = 64 * 1024 * 1024  # per sensor worker: all held bytes together

ChunkKind = Literal["data", "gap", "eof"]
DATA: Final = "data"
GAP: Final = "gap"
EOF: Final = "eof"


class StreamChunk(NamedTuple):
    """One reassembly event for one direction, in stream order.

    ``data``: ``data`` holds ``size`` wire bytes. ``gap``: ``size`` bytes were lost,
    ``data`` is empty. ``eof``: the direction ended, ``size`` is 0.
    """

    to_server: bool
    kind: ChunkKind
    data: bytes
    size: int
    ts: float


@dataclass(slots=True)
class ReassemblyCounters:
    """Per-reassembler counters (both directions); add them up per sensor with ``merge``."""

    retransmitted_bytes: int = 0  # segments wholly delivered/held already: dropped
    overlap_bytes: int = 0  # the old part of segments that were partly new: dropped
    gaps: int = 0  # gap events emitted
    gap_bytes: int = 0  # bytes those gaps stand for
    out_of_window_segments: int = 0  # segments starting >= window ahead: dropped
    window_overflows: int = 0  # holes given up because window/segment limit was hit
    budget_exhausted: int = 0  # held data given up because the shared budget was empty
    resyncs: int = 0  # directions restarted after OOW_RESYNC_SEGMENTS back-to-back segments
    beyond_fin_bytes: int = 0  # bytes after an already seen FIN: dropped
    late_segments: int = 0  # segments after the direction ended (eof sent): ignored
    # flows whose parser was dropped because the shared parser budget was empty (counted by
    # agent.appdetect: a parser's buffers are the continuation of the reassembled stream)
    parser_budget_exhausted: int = 0

    def merge(self, other: ReassemblyCounters) -> None:
        # Runs once per ended TCP flow: plain attribute reads, not ``asdict`` (which deep-copies;
        # it was 40% of the time of a SYN flood, found by tests/test_floods.py).
        for name in _COUNTER_NAMES:
            value = getattr(other, name)
            if value:
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


_COUNTER_NAMES: Final = tuple(f.name for f in fields(ReassemblyCounters))


class ReassemblyBudget:
    """Byte budget shared by every reassembler of one sensor worker (not thread-safe)."""

    __slots__ = ("max_bytes", "used", "peak", "exhausted")

    def __init__(self, max_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"budget must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.used = 0  # bytes held right now, all flows
        self.peak = 0
        self.exhausted = 0  # refused reservations, all flows

    def reserve(self, size: int) -> bool:
        used = self.used + size
        if used > self.max_bytes:
            self.exhausted += 1
            return False
        self.used = used
        if used > self.peak:
            self.peak = used
        return True

    def release(self, size: int) -> None:
        self.used -= size


# A held out-of-order block: (start offset, end offset, bytes, ts). Offsets are stream
# offsets (unbounded ints from the direction's first byte), so wraparound is handled once,
# where a sequence number comes in.
_Block = tuple[int, int, bytes, float]
_new_chunk = tuple.__new__  # NamedTuple's own __new__ is a Python function: 0.35 vs 0.2 us
_start_of = itemgetter(0)


class _Half:
    """One direction's reassembly state."""

    __slots__ = (
        "to_server",
        "fast",
        "started",
        "closed",
        "base",
        "off",
        "held",
        "held_bytes",
        "reserved",
        "fin",
        "oow_end",
        "oow_run_end",
        "oow_run",
        "ts",
    )

    def __init__(self, to_server: bool) -> None:
        self.to_server = to_server
        self.fast = -1  # seq of the next byte when the plain in-order path applies, else -1
        self.started = False
        self.closed = False  # eof emitted
        self.base = 0  # sequence number of stream offset 0
        self.off = 0  # stream offset of the next byte to deliver
        self.held: list[_Block] = []  # sorted, non-overlapping, every start > off
        self.held_bytes = 0
        self.reserved = 0  # of held_bytes, what the budget granted
        self.fin: int | None = None  # stream offset the FIN sits at
        self.oow_end = 0  # furthest end of a dropped out-of-window segment
        self.oow_run_end = -1  # end of the last dropped out-of-window segment
        self.oow_run = 0  # back-to-back out-of-window segments so far
        self.ts = 0.0  # time of the last segment seen

    def refresh(self) -> None:
        if self.started and not self.closed and not self.held and self.fin is None:
            self.fast = (self.base + self.off) & _MASK
        else:
            self.fast = -1


class TcpReassembler:
    """Reassembles both directions of one TCP connection into ``StreamChunk`` events.

    Call ``segment`` for every segment with payload or SYN/FIN/RST, in capture order,
    and ``flush`` when the flow is evicted or ends -- always, or held bytes stay
    charged to the budget.
    """

    __slots__ = ("_c2s", "_s2c", "window", "max_segments", "budget", "counters")

    def __init__(
        self,
        *,
        window: int = MAX_WINDOW_BYTES,
        max_segments: int = MAX_OOO_SEGMENTS,
        budget: ReassemblyBudget | None = None,
    ) -> None:
        if not 1 <= window <= MAX_WINDOW_LIMIT:
            raise ValueError(f"window must be in 1..{MAX_WINDOW_LIMIT}, got {window}")
        if max_segments < 1:
            raise ValueError(f"max_segments must be >= 1, got {max_segments}")
        self._c2s = _Half(True)
        self._s2c = _Half(False)
        self.window = window
        self.max_segments = max_segments
        self.budget = budget
        self.counters = ReassemblyCounters()

    @property
    def held_bytes(self) -> int:
        """Out-of-order bytes held right now, both directions."""
        return self._c2s.held_bytes + self._s2c.held_bytes

    @property
    def held_segments(self) -> int:
        return len(self._c2s.held) + len(self._s2c.held)

    def delivered(self, to_server: bool) -> int:
        """Stream offset reached in a direction: bytes delivered plus bytes reported as gaps."""
        return (self._c2s if to_server else self._s2c).off

    def ended(self, to_server: bool) -> bool:
        """True once eof was emitted for the direction."""
        return (self._c2s if to_server else self._s2c).closed

    def segment(
        self, to_server: bool, seq: int, flags: int, payload: bytes, ts: float
    ) -> list[StreamChunk]:
        """Events this segment releases, in order; ``seq`` is the raw 32-bit number."""
        h = self._c2s if to_server else self._s2c
        if seq == h.fast and not flags & _CTRL:
            n = len(payload)
            if n:
                h.off += n
                h.fast = (seq + n) & _MASK
                h.ts = ts
                return [_new_chunk(StreamChunk, (to_server, DATA, payload, n, ts))]
            return []
        return self._segment(h, seq & _MASK, flags, payload, ts)

    def flush(self, ts: float | None = None) -> list[StreamChunk]:
        """End both directions: held data as gap + data, proven losses as gaps, then eof.

        ``ts`` (default: the flow's last segment time) stamps the eof events and a gap
        up to a FIN or a dropped far-ahead segment; a gap before held data carries the
        time of that data.
        Idempotent: a direction that ended already gets nothing more.
        """
        out: list[StreamChunk] = []
        when = max(self._c2s.ts, self._s2c.ts) if ts is None else ts
        for h in (self._c2s, self._s2c):
            if h.closed:
                continue
            while h.held:
                self._skip_hole(h, out)
            lost_to = h.oow_end if h.fin is None else h.fin  # a FIN bounds the stream
            if h.started and lost_to > h.off:
                self._gap(h, lost_to - h.off, when, out)
                h.off = lost_to
            self._end(h, when, out)
        return out

    # --- the slow path -------------------------------------------------------------

    def _segment(
        self, h: _Half, seq: int, flags: int, payload: bytes, ts: float
    ) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        if h.closed:
            self.counters.late_segments += 1
            return out
        h.ts = ts
        if flags & TCP_SYN:
            seq = (seq + 1) & _MASK  # the SYN takes one sequence number; data starts at ISN+1
            if not h.started:
                self._start(h, seq)
        elif not h.started:
            self._start(h, seq)  # first seen mid-stream: start where we came in
        if flags & TCP_RST:
            # RST ends both directions; its payload is diagnostic text, not stream data.
            return self.flush(ts)
        rel = ((seq - h.base - h.off + _HALF) & _MASK) - _HALF  # signed distance, mod 2^32
        s = h.off + rel
        n = len(payload)
        if h.fin is not None and s + n > h.fin:
            keep = max(0, h.fin - s)
            self.counters.beyond_fin_bytes += n - keep
            payload = payload[:keep]
            n = keep
            flags &= ~TCP_FIN  # a second FIN: the first one's position stands
        if n or flags & TCP_FIN:
            if rel >= self.window and not self._out_of_window(h, s, n, ts, out):
                h.refresh()
                return out
            if flags & TCP_FIN and h.fin is None:
                h.fin = max(s + n, h.off)  # a FIN behind what was delivered ends it there
                self._trim_held(h, h.fin)  # before delivery: nothing after a FIN is data
            if n:
                self._accept(h, s, payload, ts, out)
            if h.fin is not None and h.off >= h.fin:
                self._end(h, ts, out)
        h.refresh()
        return out

    def _start(self, h: _Half, seq: int) -> None:
        h.started = True
        h.base = seq
        h.off = 0

    def _out_of_window(self, h: _Half, s: int, n: int, ts: float, out: list[StreamChunk]) -> bool:
        """Drop a segment ``window`` or more ahead; True if it proved a long loss (resync)."""
        if n and s == h.oow_run_end:
            h.oow_run += 1
        else:
            h.oow_run = 1 if n else 0
        h.oow_run_end = s + n
        if h.oow_run < OOW_RESYNC_SEGMENTS:
            self.counters.out_of_window_segments += 1
            if s + n > h.oow_end:
                h.oow_end = s + n
            return False
        # Back-to-back segments far ahead: the capture lost more than the window.
        self.counters.resyncs += 1
        log.debug("reassembly resync: %d bytes ahead", s - h.off)
        h.oow_run = 0
        h.oow_run_end = -1
        while h.held:
            self._skip_hole(h, out)
        self._gap(h, s - h.off, ts, out)
        h.off = s
        return True

    def _accept(self, h: _Half, s: int, data: bytes, ts: float, out: list[StreamChunk]) -> None:
        """Deliver what is next in line, hold the rest; first copy wins everywhere."""
        n = len(data)
        end = s + n
        fresh = 0
        while s <= h.off < end:
            if s < h.off:
                data = data[h.off - s :]
                s = h.off
            stop = min(h.held[0][0], end) if h.held else end
            k = stop - s
            out.append(StreamChunk(h.to_server, DATA, data[:k] if k < len(data) else data, k, ts))
            fresh += k
            h.off = stop
            data = data[k:]
            s = stop
            self._drain(h, out)
        if s > h.off:
            fresh += self._hold(h, s, data, ts, out)
        if fresh:
            h.oow_run = 0
        dup = n - fresh
        if dup:
            if fresh:
                self.counters.overlap_bytes += dup
            else:
                self.counters.retransmitted_bytes += dup

    def _hold(self, h: _Half, s: int, data: bytes, ts: float, out: list[StreamChunk]) -> int:
        """Keep the parts of an early segment nobody holds yet; returns their size."""
        held = h.held
        end = s + len(data)
        i = bisect_left(held, s, key=_start_of)
        if i and held[i - 1][1] > s:
            i -= 1
        j = i
        cur = s
        new: list[_Block] = []
        while j < len(held) and held[j][0] < end:
            b_start, b_end = held[j][0], held[j][1]
            if b_start > cur:
                new.append((cur, b_start, data[cur - s : b_start - s], ts))
            cur = max(cur, b_end)
            j += 1
        if cur < end:
            new.append((cur, end, data[cur - s :] if cur > s else data, ts))
        size = sum(b[1] - b[0] for b in new)
        if not size:
            return 0
        budget = self.budget
        granted = budget is None or budget.reserve(size)
        if granted:
            h.reserved += size
        held[i:j] = sorted(held[i:j] + new, key=_start_of)
        h.held_bytes += size
        if not granted:
            # Shared budget empty: give this direction's held data up as gap + data.
            self.counters.budget_exhausted += 1
            log.debug("reassembly budget exhausted: %d bytes given up", h.held_bytes)
            while held:
                self._skip_hole(h, out)
            return size
        while held and (h.held_bytes > self.window or len(held) > self.max_segments):
            self.counters.window_overflows += 1
            self._skip_hole(h, out)
        return size

    def _trim_held(self, h: _Half, fin: int) -> None:
        """A FIN arrived: held bytes at or after it cannot be stream data."""
        held = h.held
        dropped = 0
        while held and held[-1][1] > fin:
            start, end, data, ts = held.pop()
            if start < fin:
                held.append((start, fin, data[: fin - start], ts))
                dropped += end - fin
            else:
                dropped += end - start
        if dropped:
            self.counters.beyond_fin_bytes += dropped
            h.held_bytes -= dropped
            give_back = min(dropped, h.reserved)
            h.reserved -= give_back
            if self.budget is not None and give_back:
                self.budget.release(give_back)

    def _drain(self, h: _Half, out: list[StreamChunk]) -> None:
        """Deliver held blocks that now start at the next expected byte."""
        held = h.held
        released = 0
        while held and held[0][0] == h.off:
            start, end, data, ts = held.pop(0)
            out.append(StreamChunk(h.to_server, DATA, data, end - start, ts))
            h.off = end
            released += end - start
        if released:
            h.held_bytes -= released
            give_back = min(released, h.reserved)
            h.reserved -= give_back
            if self.budget is not None and give_back:
                self.budget.release(give_back)

    def _skip_hole(self, h: _Half, out: list[StreamChunk]) -> None:
        """Report the hole before the first held block as a gap, then deliver on from it."""
        start, _, _, ts = h.held[0]
        self._gap(h, start - h.off, ts, out)
        h.off = start
        self._drain(h, out)

    def _gap(self, h: _Half, size: int, ts: float, out: list[StreamChunk]) -> None:
        if size <= 0:
            return
        self.counters.gaps += 1
        self.counters.gap_bytes += size
        out.append(StreamChunk(h.to_server, GAP, b"", size, ts))

    def _end(self, h: _Half, ts: float, out: list[StreamChunk]) -> None:
        if h.held:  # only data beyond the FIN could be here, and that is trimmed: be safe
            h.held.clear()
            h.held_bytes = 0
        if h.reserved and self.budget is not None:
            self.budget.release(h.reserved)
        h.reserved = 0
        h.closed = True
        h.fast = -1
        out.append(StreamChunk(h.to_server, EOF, b"", 0, ts))


def dispatch(events: Iterable[StreamChunk], parser: Parser) -> list[Observation]:
    """Hand reassembly events to a parser (``feed``/``gap``/``eof``); returns observations.

    Parser exceptions are not caught here: the pipeline owns that policy.
    """
    out: list[Observation] = []
    for to_server, kind, data, size, ts in events:  # tuple unpacking, not 4 field lookups
        direction = TO_SERVER if to_server else TO_CLIENT
        if kind == DATA:
            out += parser.feed(direction, data, ts)
        elif kind == GAP:
            parser.gap(direction, size)
        else:
            out += parser.eof(direction)
    return out
