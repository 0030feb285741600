"""TCP reassembly: ordering, retransmissions, overlaps, gaps, limits, FIN/RST, wraparound."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent.reassembly import (
    DATA,
    EOF,
    GAP,
    MAX_WINDOW_LIMIT,
    OOW_RESYNC_SEGMENTS,
    SEQ_MOD,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    ReassemblyBudget,
    ReassemblyCounters,
    StreamChunk,
    TcpReassembler,
    dispatch,
)
from parsers.base import Direction, Observation

C2S, S2C = True, False
ACK = 0x10
PSH_ACK = 0x18

Seg = tuple[bool, int, int, bytes]  # (to_server, seq, flags, payload)


def feed(r: TcpReassembler, segs: list[Seg], *, flush: bool = True) -> list[StreamChunk]:
    out: list[StreamChunk] = []
    for i, (to_server, seq, flags, payload) in enumerate(segs):
        out += r.segment(to_server, seq, flags, payload, float(i))
    if flush:
        out += r.flush()
    return out


def shape(events: list[StreamChunk], to_server: bool = C2S) -> list[tuple[str, bytes | int]]:
    """One direction's events with adjacent data merged: [("data", b".."), ("gap", n), ...]."""
    out: list[tuple[str, bytes | int]] = []
    for ev in events:
        if ev.to_server != to_server:
            continue
        if ev.kind == DATA and out and out[-1][0] == DATA:
            prev = out[-1][1]
            assert isinstance(prev, bytes)
            out[-1] = (DATA, prev + ev.data)
        elif ev.kind == DATA:
            out.append((DATA, ev.data))
        elif ev.kind == GAP:
            out.append((GAP, ev.size))
        else:
            out.append((EOF, 0))
    return out


def data_of(events: list[StreamChunk], to_server: bool = C2S) -> bytes:
    return b"".join(ev.data for ev in events if ev.to_server == to_server and ev.kind == DATA)


def check_events(events: list[StreamChunk]) -> None:
    """Invariants every event list keeps: sizes match, gaps carry no bytes, eof is last."""
    ended: set[bool] = set()
    for ev in events:
        assert ev.to_server not in ended, "event after eof"
        if ev.kind == DATA:
            assert ev.size == len(ev.data) > 0
        elif ev.kind == GAP:
            assert ev.size > 0 and ev.data == b""
        else:
            assert ev.kind == EOF and ev.size == 0 and ev.data == b""
            ended.add(ev.to_server)


# --- in order, start of stream --------------------------------------------------------


def test_in_order_mid_stream_start() -> None:
    r = TcpReassembler()
    ev = feed(r, [(C2S, 5000, PSH_ACK, b"hello "), (C2S, 5006, PSH_ACK, b"world")], flush=False)
    assert [(e.kind, e.data, e.size, e.ts) for e in ev] == [
        (DATA, b"hello ", 6, 0.0),
        (DATA, b"world", 5, 1.0),
    ]
    assert r.delivered(C2S) == 11
    assert r.flush() == [StreamChunk(C2S, EOF, b"", 0, 1.0), StreamChunk(S2C, EOF, b"", 0, 1.0)]
    assert r.counters == ReassemblyCounters()


def test_syn_starts_at_isn_plus_one() -> None:
    r = TcpReassembler()
    isn_c, isn_s = 1000, 777_000
    ev = feed(
        r,
        [
            (C2S, isn_c, TCP_SYN, b""),
            (S2C, isn_s, TCP_SYN | ACK, b""),
            (C2S, isn_c + 1, PSH_ACK, b"A-ASSOCIATE"),
            (S2C, isn_s + 1, PSH_ACK, b"AC"),
        ],
    )
    check_events(ev)
    assert shape(ev, C2S) == [(DATA, b"A-ASSOCIATE"), (EOF, 0)]
    assert shape(ev, S2C) == [(DATA, b"AC"), (EOF, 0)]
    assert r.counters.gaps == 0


def test_syn_then_first_data_lost_is_a_gap() -> None:
    # Without the SYN we would start at the second segment and never notice the loss.
    r = TcpReassembler()
    ev = feed(r, [(C2S, 99, TCP_SYN, b""), (C2S, 110, PSH_ACK, b"later")])
    assert shape(ev) == [(GAP, 10), (DATA, b"later"), (EOF, 0)]


def test_syn_payload_and_retransmitted_syn() -> None:
    r = TcpReassembler()
    ev = feed(
        r,
        [
            (C2S, 41, TCP_SYN, b"tfo"),  # TCP Fast Open: data right after the SYN
            (C2S, 41, TCP_SYN, b"tfo"),  # SYN retransmitted
            (C2S, 45, PSH_ACK, b"-more"),
        ],
    )
    assert shape(ev) == [(DATA, b"tfo-more"), (EOF, 0)]
    assert r.counters.retransmitted_bytes == 3


def test_pure_ack_and_unknown_flags_deliver_nothing() -> None:
    r = TcpReassembler()
    assert r.segment(C2S, 1, ACK, b"", 0.0) == []
    assert r.segment(C2S, 1, ACK, b"", 0.0) == []  # now on the in-order path
    assert r.segment(C2S, 1, 0xC0 | ACK, b"x", 0.0) == [StreamChunk(C2S, DATA, b"x", 1, 0.0)]


# --- retransmissions and overlaps -----------------------------------------------------


def test_retransmission_dropped_and_counted() -> None:
    r = TcpReassembler()
    ev = feed(
        r,
        [(C2S, 10, PSH_ACK, b"abcd"), (C2S, 10, PSH_ACK, b"abcd"), (C2S, 14, PSH_ACK, b"ef")],
    )
    assert shape(ev) == [(DATA, b"abcdef"), (EOF, 0)]
    assert r.counters.retransmitted_bytes == 4
    assert r.counters.overlap_bytes == 0


def test_partial_overlap_keeps_first_copy() -> None:
    r = TcpReassembler()
    ev = feed(r, [(C2S, 0, PSH_ACK, b"abcdef"), (C2S, 4, PSH_ACK, b"EFgh")])
    assert shape(ev) == [(DATA, b"abcdefgh"), (EOF, 0)]
    assert r.counters.overlap_bytes == 2
    assert r.counters.retransmitted_bytes == 0


def test_overlap_with_held_data_keeps_first_copy() -> None:
    # WXYZ is held first (out of order); the later in-order segment disagrees about it.
    r = TcpReassembler()
    ev = feed(
        r,
        [
            (C2S, 100, PSH_ACK, b"ab"),
            (C2S, 110, PSH_ACK, b"WXYZ"),
            (C2S, 108, PSH_ACK, b"JK"),  # held too, adjoins WXYZ
            (C2S, 102, PSH_ACK, b"cdefghjkLMNOpq"),  # 102..116: fills 102..108, rest dup/new
        ],
    )
    assert shape(ev) == [(DATA, b"abcdefghJKWXYZpq"), (EOF, 0)]
    assert r.counters.overlap_bytes == 6
    assert r.counters.gaps == 0


def test_held_segment_overlapping_held_segments() -> None:
    r = TcpReassembler()
    ev = feed(
        r,
        [
            (C2S, 0, PSH_ACK, b"0"),
            (C2S, 3, PSH_ACK, b"34"),
            (C2S, 7, PSH_ACK, b"7"),
            (C2S, 2, PSH_ACK, b"2xx56x89"),  # 2..10: keeps 2, 5, 6, 8, 9; 3, 4, 7 held first
            (C2S, 1, PSH_ACK, b"1"),
        ],
    )
    assert shape(ev) == [(DATA, b"0123456789"), (EOF, 0)]
    assert r.counters.overlap_bytes == 3


# --- reordering -----------------------------------------------------------------------


def test_reordering_within_window_equals_in_order() -> None:
    payload = bytes(range(256)) * 4
    cuts = [0, 100, 101, 400, 512, 700, 1000, 1024]
    segs = [(C2S, 5_000 + a, PSH_ACK, payload[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    in_order = feed(TcpReassembler(), segs)
    reordered = feed(
        TcpReassembler(), [segs[0], segs[3], segs[1], segs[5], segs[4], segs[6]] + [segs[2]]
    )
    assert shape(in_order) == shape(reordered) == [(DATA, payload), (EOF, 0)]


def test_seq_wraparound() -> None:
    isn = SEQ_MOD - 3  # data starts at 2^32 - 2
    r = TcpReassembler()
    ev = feed(
        r,
        [
            (C2S, isn, TCP_SYN, b""),
            (C2S, 2, PSH_ACK, b"efg"),  # wrapped, out of order
            (C2S, SEQ_MOD - 2, PSH_ACK, b"abcd"),  # 2^32-2 .. 2^32+1
            (C2S, 5, PSH_ACK | TCP_FIN, b"h"),
            (C2S, SEQ_MOD - 1, PSH_ACK, b"bc"),  # retransmission from before the wrap
        ],
        flush=False,
    )
    assert shape(ev) == [(DATA, b"abcdefgh"), (EOF, 0)]
    assert r.counters.gaps == 0
    assert r.counters.late_segments == 1


def test_wraparound_gap() -> None:
    r = TcpReassembler()
    ev = feed(r, [(C2S, SEQ_MOD - 2, PSH_ACK, b"ab"), (C2S, 3, PSH_ACK, b"z")])
    assert shape(ev) == [(DATA, b"ab"), (GAP, 3), (DATA, b"z"), (EOF, 0)]


# --- gaps and limits ------------------------------------------------------------------


def test_gap_reported_with_size_never_zero_bytes() -> None:
    r = TcpReassembler()
    ev = feed(r, [(C2S, 0, PSH_ACK, b"abc"), (C2S, 8, PSH_ACK, b"ijk"), (C2S, 11, PSH_ACK, b"l")])
    assert shape(ev) == [(DATA, b"abc"), (GAP, 5), (DATA, b"ijkl"), (EOF, 0)]
    assert b"\x00" not in data_of(ev)
    assert (r.counters.gaps, r.counters.gap_bytes) == (1, 5)
    assert r.held_bytes == 0


def test_window_overflow_gives_up_the_hole() -> None:
    r = TcpReassembler(window=100)
    ev = feed(r, [(C2S, 0, PSH_ACK, b"a" * 10)], flush=False)
    for i in range(2):  # 20..80 held, 10..20 missing
        ev += r.segment(C2S, 20 + 30 * i, PSH_ACK, b"b" * 30, 1.0)
    assert r.held_bytes == 60 and r.counters.gaps == 0
    ev += r.segment(C2S, 80, PSH_ACK, b"c" * 50, 2.0)  # 110 held > 100: the hole goes
    assert shape(ev) == [(DATA, b"a" * 10), (GAP, 10), (DATA, b"b" * 60 + b"c" * 50)]
    assert r.held_bytes == 0
    assert r.counters.window_overflows == 1
    ev += r.segment(C2S, 10, PSH_ACK, b"x" * 10, 3.0)  # too late: already reported lost
    assert r.counters.retransmitted_bytes == 10


def test_segment_count_limit() -> None:
    r = TcpReassembler(max_segments=3)
    ev = feed(r, [(C2S, 0, PSH_ACK, b"a")], flush=False)
    for seq in (2, 4, 6):
        ev += r.segment(C2S, seq, PSH_ACK, b"x", 1.0)
    assert r.held_segments == 3
    ev += r.segment(C2S, 8, PSH_ACK, b"y", 2.0)
    assert shape(ev) == [(DATA, b"a"), (GAP, 1), (DATA, b"x")]
    assert r.held_segments == 3
    assert r.counters.window_overflows == 1


def test_far_ahead_segment_dropped_not_allocated_then_gap_on_flush() -> None:
    r = TcpReassembler(window=1000)
    ev = feed(r, [(C2S, 0, PSH_ACK, b"abc")], flush=False)
    ev += r.segment(C2S, 3 + 1000, PSH_ACK, b"far", 1.0)  # exactly window ahead: out
    ev += r.segment(C2S, 2**31 - 1, PSH_ACK, b"attacker", 1.0)  # the furthest "ahead" seq
    assert r.held_bytes == 0 and r.counters.out_of_window_segments == 2
    assert r.counters.gaps == 0
    ev += r.segment(C2S, 3, PSH_ACK, b"def", 2.0)  # the stream goes on
    assert shape(ev) == [(DATA, b"abcdef")]
    tail = r.flush()
    assert shape(tail) == [(GAP, 2**31 + 7 - 6), (EOF, 0)]


def test_far_ahead_alone_then_flush_reports_gap() -> None:
    r = TcpReassembler(window=1000)
    ev = feed(r, [(C2S, 0, TCP_SYN, b""), (C2S, 5001, PSH_ACK, b"xyz")])
    assert shape(ev) == [(GAP, 5003), (EOF, 0)]
    assert r.counters.out_of_window_segments == 1


def test_far_behind_is_a_retransmission() -> None:
    r = TcpReassembler(window=1000)
    ev = feed(r, [(C2S, 2**31, PSH_ACK, b"a"), (C2S, 5, PSH_ACK, b"old")])
    assert shape(ev) == [(DATA, b"a"), (EOF, 0)]
    assert r.counters.retransmitted_bytes == 3 and r.held_bytes == 0


def test_long_capture_loss_resyncs() -> None:
    r = TcpReassembler(window=100)
    segs: list[Seg] = [(C2S, 0, PSH_ACK, b"head")]
    base = 10_000  # 9996 bytes lost by the capture
    segs += [(C2S, base + 10 * i, PSH_ACK, bytes([65 + i]) * 10) for i in range(6)]
    ev = feed(r, segs)
    k = OOW_RESYNC_SEGMENTS
    resume = base + 10 * (k - 1)
    assert shape(ev) == [
        (DATA, b"head"),
        (GAP, resume - 4),
        (DATA, b"".join(bytes([65 + i]) * 10 for i in range(k - 1, 6))),
        (EOF, 0),
    ]
    assert r.counters.resyncs == 1
    assert r.counters.out_of_window_segments == k - 1


def test_scattered_far_segments_do_not_resync() -> None:
    r = TcpReassembler(window=100)
    segs: list[Seg] = [(C2S, 0, PSH_ACK, b"head")]
    segs += [(C2S, 10_000 + 1000 * i, PSH_ACK, b"x" * 10) for i in range(10)]
    segs += [(C2S, 4, PSH_ACK, b"tail")]
    ev = feed(r, segs, flush=False)
    assert shape(ev) == [(DATA, b"headtail")]
    assert r.counters.resyncs == 0 and r.counters.out_of_window_segments == 10


# --- budget ---------------------------------------------------------------------------


def test_budget_shared_and_exhausted() -> None:
    budget = ReassemblyBudget(100)
    r1 = TcpReassembler(budget=budget)
    r2 = TcpReassembler(budget=budget)
    feed(r1, [(C2S, 0, PSH_ACK, b"a"), (C2S, 2, PSH_ACK, b"h" * 80)], flush=False)
    assert budget.used == 80 and r1.held_bytes == 80
    ev = feed(
        r2,
        [(S2C, 0, PSH_ACK, b"b"), (S2C, 5, PSH_ACK, b"1" * 15), (S2C, 30, PSH_ACK, b"2" * 10)],
        flush=False,
    )
    # 15 fit; 10 more do not: r2 gives its held data up as gap + data, and keeps none.
    assert shape(ev, S2C) == [
        (DATA, b"b"),
        (GAP, 4),
        (DATA, b"1" * 15),
        (GAP, 10),
        (DATA, b"2" * 10),
    ]
    assert r2.counters.budget_exhausted == 1 and budget.exhausted == 1
    assert r2.held_bytes == 0 and budget.used == 80
    assert budget.used <= budget.max_bytes and budget.peak == 95
    r1.flush()
    r2.flush()
    assert budget.used == 0


def test_zero_budget_means_no_reordering() -> None:
    budget = ReassemblyBudget(0)
    r = TcpReassembler(budget=budget)
    ev = feed(r, [(C2S, 0, PSH_ACK, b"a"), (C2S, 2, PSH_ACK, b"c"), (C2S, 1, PSH_ACK, b"b")])
    assert shape(ev) == [(DATA, b"a"), (GAP, 1), (DATA, b"c"), (EOF, 0)]
    assert budget.used == 0 and r.counters.retransmitted_bytes == 1


def test_budget_released_by_delivery_fin_trim_and_flush() -> None:
    budget = ReassemblyBudget(1000)
    r = TcpReassembler(budget=budget)
    feed(r, [(C2S, 0, PSH_ACK, b"a"), (C2S, 5, PSH_ACK, b"fghij")], flush=False)
    assert budget.used == 5
    r.segment(C2S, 1, PSH_ACK | TCP_FIN, b"bcdefg", 1.0)  # FIN at 7: h..j can never count
    assert budget.used == 0 and r.ended(C2S)
    assert r.counters.beyond_fin_bytes == 3
    r.segment(S2C, 0, PSH_ACK, b"x", 2.0)
    r.segment(S2C, 9, PSH_ACK, b"y", 2.0)
    assert budget.used == 1
    r.flush()
    assert budget.used == 0


# --- FIN / RST ------------------------------------------------------------------------


def test_fin_waits_for_missing_data() -> None:
    r = TcpReassembler()
    ev = feed(
        r,
        [
            (C2S, 0, PSH_ACK, b"ab"),
            (C2S, 4, PSH_ACK | TCP_FIN, b"ef"),  # FIN arrives before "cd"
            (S2C, 50, PSH_ACK, b"reply"),
            (C2S, 2, PSH_ACK, b"cd"),
            (C2S, 7, ACK, b"zz"),  # after the FIN: ignored
        ],
        flush=False,
    )
    assert shape(ev, C2S) == [(DATA, b"abcdef"), (EOF, 0)]
    assert ev[-1] == StreamChunk(C2S, EOF, b"", 0, 3.0)
    assert r.counters.late_segments == 1
    assert not r.ended(S2C)
    assert shape(r.flush(), S2C) == [(EOF, 0)]


def test_fin_only_segment_and_fin_retransmission() -> None:
    r = TcpReassembler()
    ev = feed(
        r,
        [(C2S, 0, PSH_ACK, b"ab"), (C2S, 2, TCP_FIN | ACK, b""), (C2S, 2, TCP_FIN | ACK, b"")],
    )
    assert shape(ev) == [(DATA, b"ab"), (EOF, 0)]
    assert r.counters.late_segments == 1


def test_fin_with_missing_data_flushes_gap_to_fin() -> None:
    r = TcpReassembler()
    ev = feed(r, [(C2S, 0, PSH_ACK, b"ab"), (C2S, 9, TCP_FIN | ACK, b"")])
    assert shape(ev) == [(DATA, b"ab"), (GAP, 7), (EOF, 0)]


def test_data_beyond_fin_dropped() -> None:
    r = TcpReassembler()
    ev = feed(
        r,
        [(C2S, 0, PSH_ACK, b"ab"), (C2S, 5, TCP_FIN | ACK, b"f"), (C2S, 4, PSH_ACK, b"eFGH")],
    )
    # FIN sits at 6: F (a second copy) is old, G and H are beyond the FIN.
    assert shape(ev) == [(DATA, b"ab"), (GAP, 2), (DATA, b"ef"), (EOF, 0)]
    assert r.counters.beyond_fin_bytes == 2


def test_rst_ends_both_after_held_data() -> None:
    r = TcpReassembler()
    ev = feed(
        r,
        [
            (C2S, 0, PSH_ACK, b"ab"),
            (C2S, 5, PSH_ACK, b"fg"),
            (S2C, 100, PSH_ACK, b"srv"),
            (S2C, 103, TCP_RST | ACK, b"diagnostic text"),
            (C2S, 7, PSH_ACK, b"late"),
        ],
        flush=False,
    )
    check_events(ev)
    assert shape(ev, C2S) == [(DATA, b"ab"), (GAP, 3), (DATA, b"fg"), (EOF, 0)]
    assert shape(ev, S2C) == [(DATA, b"srv"), (EOF, 0)]
    assert r.counters.late_segments == 1
    assert r.flush() == []


def test_rst_before_anything() -> None:
    r = TcpReassembler()
    ev = r.segment(C2S, 123, TCP_RST, b"", 4.0)
    assert ev == [StreamChunk(C2S, EOF, b"", 0, 4.0), StreamChunk(S2C, EOF, b"", 0, 4.0)]


def test_flush_stamps_given_time() -> None:
    r = TcpReassembler()
    r.segment(C2S, 0, PSH_ACK, b"a", 1.0)
    r.segment(C2S, 3, PSH_ACK, b"c", 2.0)
    ev = r.flush(9.0)
    assert [(e.kind, e.ts) for e in ev] == [(GAP, 2.0), (DATA, 2.0), (EOF, 9.0), (EOF, 9.0)]


def test_bad_limits_refused() -> None:
    with pytest.raises(ValueError):
        TcpReassembler(window=0)
    with pytest.raises(ValueError):
        TcpReassembler(window=MAX_WINDOW_LIMIT + 1)
    with pytest.raises(ValueError):
        TcpReassembler(max_segments=0)
    with pytest.raises(ValueError):
        ReassemblyBudget(-1)


def test_counters_merge() -> None:
    a = ReassemblyCounters(gaps=1, gap_bytes=5)
    a.merge(ReassemblyCounters(gaps=2, retransmitted_bytes=3))
    assert a.as_dict()["gaps"] == 3 and a.retransmitted_bytes == 3 and a.gap_bytes == 5


@dataclass
class Recorder:
    """Duck-typed parser: records the calls dispatch makes."""

    calls: list[tuple[str, Direction, object]] = field(default_factory=list)

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[Observation]:
        self.calls.append(("feed", direction, data))
        return [Observation("t.len", "10.0.0.1", str(len(data)), ts)]

    def gap(self, direction: Direction, size: int) -> None:
        self.calls.append(("gap", direction, size))

    def eof(self, direction: Direction) -> list[Observation]:
        self.calls.append(("eof", direction, None))
        return []


def test_dispatch_maps_events_to_parser_calls() -> None:
    r = TcpReassembler()
    ev = feed(r, [(C2S, 0, PSH_ACK, b"ab"), (C2S, 4, PSH_ACK, b"e"), (S2C, 0, PSH_ACK, b"r")])
    rec = Recorder()
    obs = dispatch(ev, rec)  # type: ignore[arg-type]
    ts, tc = Direction.TO_SERVER, Direction.TO_CLIENT
    assert rec.calls == [
        ("feed", ts, b"ab"),
        ("feed", tc, b"r"),
        ("gap", ts, 2),
        ("feed", ts, b"e"),
        ("eof", ts, None),
        ("eof", tc, None),
    ]
    assert [o.value for o in obs] == ["2", "1", "1"]


# --- properties -----------------------------------------------------------------------


@st.composite
def cut_stream(draw: st.DrawFn, min_segments: int = 1) -> tuple[bytes, list[tuple[int, int]]]:
    data = draw(st.binary(min_size=min_segments, max_size=2000))
    n_cuts = draw(st.integers(0, min(40, len(data) - 1)))
    cuts = []
    if n_cuts:
        points = st.integers(1, len(data) - 1)
        cuts = sorted(draw(st.sets(points, min_size=n_cuts, max_size=n_cuts)))
    bounds = [0, *cuts, len(data)]
    spans = list(zip(bounds, bounds[1:], strict=False))
    assume(len(spans) >= min_segments)
    return data, spans


def shuffle_bounded(
    draw: Callable[[st.SearchStrategy[int]], int], items: list[int], max_shift: int
) -> list[int]:
    """Reorder so that no item moves more than about ``max_shift`` places early."""
    keys = [i + draw(st.integers(0, max_shift)) for i in range(len(items))]
    return [x for _, x in sorted(zip(keys, items, strict=True))]


ISNS = st.one_of(st.integers(0, SEQ_MOD - 1), st.integers(SEQ_MOD - 3000, SEQ_MOD - 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=cut_stream(), isn=ISNS, data=st.data())
def test_property_reorder_and_duplicates_reproduce_stream(
    stream: tuple[bytes, list[tuple[int, int]]], isn: int, data: st.DataObject
) -> None:
    payload, spans = stream
    order = shuffle_bounded(data.draw, list(range(len(spans))), data.draw(st.integers(0, 8)))
    # duplicates: exact copies and retransmissions cut differently, placed anywhere
    n_dup = data.draw(st.integers(0, 10))
    for _ in range(n_dup):
        a = data.draw(st.integers(0, len(payload) - 1))
        b = data.draw(st.integers(a + 1, len(payload)))
        at = data.draw(st.integers(0, len(order)))
        order.insert(at, -(a * (len(payload) + 1) + b) - 1)  # negative: encodes (a, b)
    segs: list[Seg] = [(C2S, isn, TCP_SYN, b"")]
    for k in order:
        if k >= 0:
            a, b = spans[k]
        else:
            a, b = divmod(-k - 1, len(payload) + 1)
        flags = PSH_ACK | (TCP_FIN if b == len(payload) else 0)
        segs.append((C2S, (isn + 1 + a) & (SEQ_MOD - 1), flags, payload[a:b]))
    r = TcpReassembler()
    ev = feed(r, segs, flush=False)
    check_events(ev)
    assert data_of(ev) == payload
    assert r.counters.gaps == 0
    assert r.ended(C2S)  # a FIN came and every byte before it was delivered
    assert r.held_bytes == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=cut_stream(min_segments=2), isn=ISNS, data=st.data())
def test_property_dropped_segment_is_one_exact_gap(
    stream: tuple[bytes, list[tuple[int, int]]], isn: int, data: st.DataObject
) -> None:
    payload, spans = stream
    lost = data.draw(st.integers(0, len(spans) - 2))  # the FIN-carrying last one stays
    order = shuffle_bounded(data.draw, [i for i in range(len(spans)) if i != lost], 5)
    dups = data.draw(st.lists(st.sampled_from(order), max_size=5))
    for k in dups:
        order.insert(data.draw(st.integers(0, len(order))), k)
    segs: list[Seg] = [(C2S, isn, TCP_SYN, b"")]
    for k in order:
        a, b = spans[k]
        flags = PSH_ACK | (TCP_FIN if b == len(payload) else 0)
        segs.append((C2S, (isn + 1 + a) & (SEQ_MOD - 1), flags, payload[a:b]))
    r = TcpReassembler()
    ev = feed(r, segs)
    check_events(ev)
    pos = 0
    gaps = []
    for e in ev:
        if e.kind == DATA:
            assert e.data == payload[pos : pos + e.size]  # exactly the original bytes
            pos += e.size
        elif e.kind == GAP:
            gaps.append((pos, pos + e.size))
            pos += e.size
    assert pos == len(payload)
    assert gaps == [spans[lost]]
    assert r.counters.gap_bytes == spans[lost][1] - spans[lost][0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=cut_stream(),
    isn=ISNS,
    window=st.integers(1, 3000),
    max_segments=st.integers(1, 20),
    budget_bytes=st.integers(0, 3000),
    data=st.data(),
)
def test_property_any_order_any_limits_never_invents_bytes(
    stream: tuple[bytes, list[tuple[int, int]]],
    isn: int,
    window: int,
    max_segments: int,
    budget_bytes: int,
    data: st.DataObject,
) -> None:
    """Whatever the order, drops and limits: data sits at its true place, gaps fill the rest."""
    payload, spans = stream
    order = data.draw(st.permutations(range(len(spans))))
    kept = [k for k in order if data.draw(st.booleans()) or spans[k][1] == len(payload)]
    budget = ReassemblyBudget(budget_bytes)
    r = TcpReassembler(window=window, max_segments=max_segments, budget=budget)
    segs: list[Seg] = [(C2S, isn, TCP_SYN, b"")]
    for k in kept:
        a, b = spans[k]
        flags = PSH_ACK | (TCP_FIN if b == len(payload) else 0)
        segs.append((C2S, (isn + 1 + a) & (SEQ_MOD - 1), flags, payload[a:b]))
    ev = feed(r, segs)
    check_events(ev)
    pos = 0
    for e in ev:
        if e.kind == DATA:
            assert e.data == payload[pos : pos + e.size]
        pos += e.size
    assert pos == len(payload)
    assert budget.used == 0


FLAGS = st.one_of(
    st.sampled_from([PSH_ACK] * 12 + [TCP_SYN, TCP_SYN | ACK, TCP_FIN | ACK, TCP_RST | ACK]),
    st.integers(0, 0xFF).map(lambda f: f & ~(TCP_FIN | TCP_RST)),  # ends come from the list
)
SEQS = st.one_of(
    st.integers(0, SEQ_MOD - 1),
    st.integers(0, 60),
    st.integers(0, 600),
    st.integers(2**31 - 5, 2**31 + 5),
    st.integers(SEQ_MOD - 60, SEQ_MOD - 1),
)
OPS = st.lists(st.tuples(st.booleans(), SEQS, FLAGS, st.binary(max_size=120)), max_size=80)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=OPS,
    window=st.integers(1, 500),
    max_segments=st.integers(1, 10),
    budget_bytes=st.integers(0, 600),
)
def test_property_arbitrary_segments_stay_bounded(
    ops: list[Seg], window: int, max_segments: int, budget_bytes: int
) -> None:
    budget = ReassemblyBudget(budget_bytes)
    flows = [TcpReassembler(window=window, max_segments=max_segments, budget=budget) for _ in "ab"]
    events: list[list[StreamChunk]] = [[], []]
    for i, (to_server, seq, flags, payload) in enumerate(ops):
        which = i % 2
        r = flows[which]
        events[which] += r.segment(to_server, seq, flags, payload, float(i))
        for half in (r._c2s, r._s2c):
            assert half.held_bytes <= window
            assert len(half.held) <= max_segments
            assert sum(b[1] - b[0] for b in half.held) == half.held_bytes
            starts = [b[0] for b in half.held]
            assert starts == sorted(starts)
            assert all(b[0] > half.off for b in half.held)
            assert all(x[1] <= y[0] for x, y in zip(half.held, half.held[1:], strict=False))
        assert 0 <= budget.used <= budget.max_bytes
        assert budget.used == sum(h.reserved for f in flows for h in (f._c2s, f._s2c))
    for which, r in enumerate(flows):
        events[which] += r.flush()
        check_events(events[which])
        assert r.held_bytes == 0 and r.ended(C2S) and r.ended(S2C)
    assert budget.used == 0


def test_mid_stream_start_cannot_see_earlier_bytes() -> None:
    # Known limit: with no SYN, the first segment seen is where the stream starts; an
    # earlier segment arriving after it is indistinguishable from a retransmission.
    r = TcpReassembler()
    ev = feed(r, [(C2S, 10, PSH_ACK, b"second"), (C2S, 4, PSH_ACK, b"first-")])
    assert shape(ev) == [(DATA, b"second"), (EOF, 0)]
    assert r.counters.retransmitted_bytes == 6 and r.counters.gaps == 0
