"""The C ring walker (``agent._fastcore.RingWalker``) against ``RingSource``'s Python loop.

Synthetic TPACKET_V3 rings (Documentation/networking/packet_mmap.rst) are laid out in memory
as the kernel lays them out: a 48-byte block descriptor, then frames with a 48-byte
``tpacket3_hdr``, data at ``tp_mac``, ``tp_next_offset`` to the next (0 on the last), and
stripped 802.1Q tags in ``hv1``. ``FakeRing`` is a ``RingSource`` whose ``_open`` maps such
a ring instead of a socket's, so both paths run through the real ``frames()``: same frames,
timestamps, wire lengths, VLAN restoration, counters and released blocks, on partly filled
rings, wrap-around, hostile offsets and with the fast lane attached or not.
"""

from __future__ import annotations

import json
import mmap
import socket
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from agent import fastcore
from agent.capture import linktypes
from agent.flows import Flow
from agent.pipeline import TICK_EVERY, Analyzer
from agent.report import build_report
from agent.sensor import ring as ring_mod
from agent.sensor.ring import (
    BLOCK_SIZE,
    TP_STATUS_USER,
    TP_STATUS_VLAN_TPID_VALID,
    TP_STATUS_VLAN_VALID,
    RingFrames,
    RingSource,
)

_fastcore = pytest.importorskip("agent._fastcore", reason="C extension not built")

T0 = 1_700_000_000
MAC = 82  # where the kernel puts an Ethernet frame: TPACKET_ALIGN(68 + 16) - 14
HDR = struct.Struct("IIIIIIHH")  # tpacket3_hdr up to tp_net
HV1 = struct.Struct("IIH")  # rxhash, vlan_tci, vlan_tpid
VOLATILE = ("elapsed_seconds", "packets_per_second")

# (sec, nsec, data as stored, wirelen as the kernel reports it, tp_status, tci, tpid)
Entry = tuple[int, int, bytes, int, int, int, int]
Block = list[Entry] | None  # None: a block the kernel still owns
Buf = bytes | bytearray


def entry(frame: bytes, ts_ns: int, *, strip: bool = False, tpid_valid: bool = True) -> Entry:
    """A frame as the kernel stores it; ``strip`` moves its outer tag to hv1."""
    sec, nsec = divmod(ts_ns, 1_000_000_000)
    if strip and frame[12:14] in (b"\x81\x00", b"\x88\xa8"):
        tpid, tci = struct.unpack_from("!HH", frame, 12)
        data = frame[:12] + frame[16:]
        status = TP_STATUS_USER | TP_STATUS_VLAN_VALID
        if tpid_valid:
            status |= TP_STATUS_VLAN_TPID_VALID
        return (sec, nsec, data, len(data), status, tci, tpid)
    return (sec, nsec, frame, len(frame), TP_STATUS_USER, 0, 0)


def block_bytes(entries: list[Entry], status: int = TP_STATUS_USER) -> bytearray:
    """One block laid out as the kernel lays it out (frames 16-byte aligned)."""
    b = bytearray(BLOCK_SIZE)
    off = 48
    for i, (sec, nsec, data, wirelen, fstatus, tci, tpid) in enumerate(entries):
        size = (MAC + len(data) + 15) & ~15
        nxt = 0 if i == len(entries) - 1 else size
        HDR.pack_into(b, off, nxt, sec, nsec, len(data), wirelen, fstatus, MAC, MAC + 14)
        HV1.pack_into(b, off + 28, 0, tci, tpid)
        b[off + MAC : off + MAC + len(data)] = data
        off += size
    assert off <= BLOCK_SIZE
    struct.pack_into("IIIIII", b, 0, 3, 0, status, len(entries), 48, off)
    return b


def fill_blocks(entries: list[Entry]) -> list[list[Entry]]:
    """``entries`` packed into as few blocks as hold them."""
    blocks: list[list[Entry]] = [[]]
    used = 48
    for e in entries:
        size = (MAC + len(e[2]) + 15) & ~15
        if used + size > BLOCK_SIZE:
            blocks.append([])
            used = 48
        blocks[-1].append(e)
        used += size
    return blocks


def ring_bytes(blocks: list[Block], nblocks: int) -> bytearray:
    out = bytearray()
    for i in range(nblocks):
        block = blocks[i] if i < len(blocks) else None
        out += bytearray(BLOCK_SIZE) if block is None else block_bytes(block)
    return out


def statuses(buf: Any, nblocks: int) -> list[int]:
    return [struct.unpack_from("I", buf, i * BLOCK_SIZE + 8)[0] for i in range(nblocks)]


class FakeRing(RingSource):
    """A ``RingSource`` over a ring in anonymous memory; its socket is one end of a
    socketpair (never readable: ``poll`` times out and ``idle`` runs)."""

    def __init__(self, content: Buf, nblocks: int, linktype: int = linktypes.ETHERNET):
        self._content, self._nblocks, self._linktype = content, nblocks, linktype
        super().__init__("fake0", ring_mb=1)

    def _open(self) -> None:
        self._sock, self._peer = socket.socketpair()
        self._blocks = self._nblocks
        self._ring = mmap.mmap(-1, BLOCK_SIZE * self._nblocks)
        self._ring[: len(self._content)] = self._content
        self.linktype = self._linktype

    def close(self) -> None:
        super().close()
        self._peer.close()


@contextmanager
def mode(c: bool) -> Iterator[None]:
    """C walker (``c``) or the Python loop (``MEDTAP_NO_C=1``)."""
    with pytest.MonkeyPatch.context() as m:
        if c:
            m.delenv("MEDTAP_NO_C", raising=False)
        else:
            m.setenv("MEDTAP_NO_C", "1")
        yield


@pytest.fixture(autouse=True)
def no_poll_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ring_mod, "POLL_MS", 0)  # an empty ring ends a walk at once


Idle = Callable[[FakeRing], None]


def walk(content: Buf, nblocks: int, c: bool, *, linktype: int = linktypes.ETHERNET,
         idle: Callable[[], Idle] | None = None) -> dict[str, Any]:
    """Everything one path gives for ``content``: frames, counters, the ring afterwards.
    The walk ends at the first poll that times out, unless ``idle`` (a factory: one
    callback per walk) says otherwise."""
    with mode(c):
        src = FakeRing(content, nblocks, linktype)
        if idle is None:
            src.idle = src.stop
        else:
            on_idle = idle()
            src.idle = lambda: on_idle(src)
        frames = src.frames()
        assert isinstance(frames, RingFrames) is c
        got = list(frames)
        out = {"frames": got, "stats": src.stats(), "bad": src.bad_frames,
               "ring": bytes(src._ring or b""), "backlog": src.backlog()}
        src.close()
    return out


def same_walk(content: Buf, nblocks: int, **kw: Any) -> dict[str, Any]:
    c, py = walk(content, nblocks, True, **kw), walk(content, nblocks, False, **kw)
    assert c["frames"] == py["frames"]  # tuples of floats compare exactly: identical doubles
    assert c == py
    return c


# --- frames, timestamps, VLANs --------------------------------------------------------------

def _frames(n: int, size: int = 60) -> list[bytes]:
    base = bytes(Ether(src="00:09:fb:00:00:01", dst="00:1b:2b:00:00:02")
                 / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))
    return [base + bytes([i % 251]) * (size + i % 97) for i in range(n)]


def tagged(vlan: int, inner: int | None = None, outer_tpid: int = 0x8100) -> bytes:
    eth = Ether(src="00:09:fb:00:00:01", dst="00:1b:2b:00:00:02")
    l2 = eth / Dot1Q(vlan=vlan) if outer_tpid == 0x8100 else eth / Dot1AD(vlan=vlan)
    if inner is not None:
        l2 = l2 / Dot1Q(vlan=inner)
    return bytes(l2 / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / b"x")


def test_partly_filled_ring_same_frames_and_counters() -> None:
    frames = _frames(5000)
    entries = [entry(f, (T0 + i) * 10**9 + i * 7919) for i, f in enumerate(frames)]
    blocks: list[Block] = list(fill_blocks(entries))
    assert len(blocks) >= 3
    out = same_walk(ring_bytes(blocks, 8), 8)
    assert [f[2] for f in out["frames"]] == frames
    assert out["stats"]["frames"] == len(frames) and out["bad"] == 0
    assert out["stats"]["bytes"] == sum(len(f) for f in frames)
    assert statuses(out["ring"], 8) == [0] * 8  # every block walked went back to the kernel
    assert out["backlog"] == 0.0


def test_walk_stops_at_the_first_block_not_ready() -> None:
    one, two = _frames(3), _frames(4, 100)
    blocks: list[Block] = [[entry(f, T0 * 10**9) for f in one], None,
                           [entry(f, T0 * 10**9) for f in two]]
    out = same_walk(ring_bytes(blocks, 4), 4)
    assert [f[2] for f in out["frames"]] == one
    assert statuses(out["ring"], 4) == [0, 0, TP_STATUS_USER, 0]


def test_vlan_tags_put_back() -> None:
    frames = [tagged(20), tagged(30, 7), tagged(100, 5, outer_tpid=0x88A8), tagged(0)]
    entries = [entry(f, T0 * 10**9 + i, strip=True) for i, f in enumerate(frames)]
    entries.append(entry(frames[2], T0 * 10**9 + 9, strip=True, tpid_valid=False))
    short = entries[0][:2] + (entries[0][2][:11], 11) + entries[0][4:]  # < 12 bytes: kept
    entries.append(short)
    out = same_walk(ring_bytes([entries], 2), 2)
    got = out["frames"]
    assert [g[2] for g in got[:4]] == frames
    assert [g[3] for g in got[:4]] == [len(f) for f in frames]  # wirelen + 4
    assert got[4][2][12:14] == b"\x81\x00"  # no TPID from the kernel: 802.1Q assumed
    assert got[5][2] == short[2] and got[5][3] == 11
    assert out["stats"]["vlan_restored"] == 5


def test_vlan_not_restored_on_other_link_types() -> None:
    entries = [entry(tagged(20), T0 * 10**9, strip=True)]
    out = same_walk(ring_bytes([entries], 2), 2, linktype=linktypes.RAW)
    assert out["frames"][0][2] == entries[0][2] and out["frames"][0][1] == linktypes.RAW
    assert out["stats"]["vlan_restored"] == 0


def test_empty_blocks_and_wrap_around() -> None:
    """The walk goes on from where it stopped: blocks refilled while it waited (around the
    end of the ring) are read next, in ring order."""
    first = [[entry(f, T0 * 10**9 + i) for i, f in enumerate(_frames(5))], [], None]
    later = {0: _frames(2, 300), 1: _frames(3, 400), 2: _frames(1, 500)}

    def refiller() -> Idle:
        rounds = iter([[2, 0], [1]])

        def refill(src: FakeRing) -> None:
            blocks = next(rounds, None)
            if blocks is None:
                src.stop()
                return
            assert src._ring is not None
            for b in blocks:
                src._ring[b * BLOCK_SIZE : (b + 1) * BLOCK_SIZE] = block_bytes(
                    [entry(f, (T0 + b) * 10**9) for f in later[b]])

        return refill

    out = same_walk(ring_bytes(list(first), 3), 3, idle=refiller)
    datas = [f[2] for f in out["frames"]]
    assert datas == _frames(5) + later[2] + later[0] + later[1]
    assert statuses(out["ring"], 3) == [0, 0, 0]


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                             st.binary(max_size=120), st.integers(0, 2**32 - 1),
                             st.sampled_from([0, 0, TP_STATUS_VLAN_VALID,
                                              TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID]),
                             st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1)),
                   max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=4),
    ready=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_arbitrary_frames_same_on_both_paths(items: list[Any], cuts: list[int],
                                             ready: list[bool]) -> None:
    """Any timestamps (nsec beyond 1e9 too), lengths, tags (a tci beyond 16 bits too)."""
    entries = [(sec, nsec, data, wl, TP_STATUS_USER | st_, tci, tpid)
               for sec, nsec, data, wl, st_, tci, tpid in items]
    bounds = sorted({0, len(entries), *(min(c, len(entries)) for c in cuts)})
    blocks: list[Block] = [entries[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    blocks = [b if r else None for b, r in zip(blocks + [[]] * 4, ready, strict=False)]
    same_walk(ring_bytes(blocks, 4), 4)


# --- hostile offsets -------------------------------------------------------------------------

def _hostile(field: str, value: int, index: int) -> bytearray:
    """Three blocks of 4 frames; one field of frame ``index`` of block 1 (or of block 1's
    descriptor) overwritten."""
    blocks: list[Block] = [[entry(f, T0 * 10**9) for f in _frames(4, 80 * (b + 1))]
                           for b in range(3)]
    content = ring_bytes(blocks, 4)
    base = BLOCK_SIZE
    if field in ("num_pkts", "first"):
        struct.pack_into("I", content, base + (12 if field == "num_pkts" else 16), value)
        return content
    off = base + 48
    for _ in range(index):
        off += struct.unpack_from("I", content, off)[0]
    fmt, pos = {"next": ("I", 0), "snaplen": ("I", 12), "mac": ("H", 24)}[field]
    struct.pack_into(fmt, content, off + pos, value)
    return content


HOSTILE = [  # field, value, frame index, frames found outside their block
    ("next", 0, 1, 1), ("next", 1, 0, 1), ("next", 47, 2, 1), ("next", 2**32 - 1, 0, 1),
    ("next", BLOCK_SIZE, 1, 1), ("next", BLOCK_SIZE - 48 - 40, 0, 1),
    ("snaplen", 2**32 - 1, 0, 1), ("snaplen", BLOCK_SIZE, 3, 1),
    ("snaplen", BLOCK_SIZE - 48 - MAC, 0, 0),  # ends exactly at the block's end: in bounds
    ("snaplen", BLOCK_SIZE - 48 - MAC + 1, 0, 1),
    ("mac", 0xFFFF, 2, 0), ("mac", 0, 1, 0),  # in bounds: garbage, but inside the block
    ("num_pkts", 2**32 - 1, 0, 1), ("num_pkts", 0, 0, 0), ("num_pkts", 5, 0, 1),
    ("first", 0, 0, 1), ("first", 47, 0, 1), ("first", BLOCK_SIZE - 47, 0, 1),
    ("first", 2**32 - 1, 0, 1),
]


@pytest.mark.parametrize(("field", "value", "index", "bad"), HOSTILE,
                         ids=[f"{f}={v}@{i}" for f, v, i, _ in HOSTILE])
def test_hostile_offsets_counted_not_followed(field: str, value: int, index: int,
                                              bad: int) -> None:
    out = same_walk(_hostile(field, value, index), 4)
    assert statuses(out["ring"], 4) == [0, 0, 0, 0]  # a bad block still goes back
    assert out["stats"]["frames"] == len(out["frames"])
    assert out["bad"] == bad
    good = [f[2] for f in out["frames"]]
    assert good[:4] == _frames(4, 80) and good[-4:] == _frames(4, 240)  # blocks 0 and 2


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(["next", "snaplen", "mac", "num_pkts", "first"]),
       value=st.one_of(st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1)),
       index=st.integers(0, 3))
def test_arbitrary_hostile_offsets(field: str, value: int, index: int) -> None:
    if field == "mac":
        value &= 0xFFFF
    same_walk(_hostile(field, value, index), 4)


@settings(max_examples=150, deadline=None)
@given(junk=st.binary(min_size=20, max_size=700), at=st.integers(0, 400))
def test_random_bytes_over_a_block(junk: bytes, at: int) -> None:
    """Block 1's descriptor and first frames overwritten by anything (status kept ready)."""
    content = _hostile("num_pkts", 4, 0)
    content[BLOCK_SIZE + at : BLOCK_SIZE + at + len(junk)] = junk
    struct.pack_into("I", content, BLOCK_SIZE + 8, TP_STATUS_USER)
    out = same_walk(content, 4)
    assert out["stats"]["frames"] == len(out["frames"])


# --- the walker itself: position, StopIteration, ticks, lane ---------------------------------

def _walker(content: bytearray, nblocks: int) -> Any:
    return _fastcore.RingWalker(content, BLOCK_SIZE, nblocks, linktypes.ETHERNET)


def c_lane(analyzer: Analyzer) -> Any:
    """The C lane for ``analyzer``'s table, whatever MEDTAP_NO_C says."""
    with mode(True):
        return fastcore.fast_lane(analyzer.flows)


def test_walker_keeps_its_position_after_stop_iteration() -> None:
    content = ring_bytes([[entry(f, T0 * 10**9) for f in _frames(3)]], 2)
    w = _walker(content, 2)
    assert w.ready_blocks() == 1
    assert len(list(w)) == 3 and list(w) == []
    assert (w.block, w.frames, w.ready_blocks()) == (1, 3, 0)
    content[BLOCK_SIZE : 2 * BLOCK_SIZE] = block_bytes([entry(f, T0 * 10**9) for f in _frames(2)])
    content[:BLOCK_SIZE] = block_bytes([entry(f, T0 * 10**9) for f in _frames(1, 9)])
    assert w.ready_blocks() == 2
    assert [f[2] for f in w] == _frames(2) + _frames(1, 9)  # wrapped around, in ring order
    assert (w.block, w.frames, w.bytes) == (1, 6, sum(len(f) for f in _frames(3) + _frames(2)
                                                      + _frames(1, 9)))


def test_walker_stop_finishes_the_block() -> None:
    content = ring_bytes([[entry(f, T0 * 10**9) for f in _frames(4)]] * 2, 2)
    w = _walker(content, 2)
    next(w)
    w.stop()
    assert len(list(w)) == 3 and w.block == 1 and statuses(content, 2) == [0, TP_STATUS_USER]


def test_walker_refuses_bad_geometry() -> None:
    buf = bytearray(BLOCK_SIZE * 2)
    for args in ((buf, BLOCK_SIZE, 3, 1), (buf, 90, 2, 1), (buf, BLOCK_SIZE + 4, 1, 1),
                 (buf, BLOCK_SIZE, 0, 1), (buf, BLOCK_SIZE, 2, 1, 2)):
        with pytest.raises(ValueError):
            _fastcore.RingWalker(*args)
    with pytest.raises(BufferError):
        _fastcore.RingWalker(bytes(BLOCK_SIZE), BLOCK_SIZE, 1, 1)  # read-only


def _flows_frames(n_flows: int = 6) -> tuple[list[bytes], list[bytes]]:
    """Handshakes for ``n_flows`` TCP flows (some tagged, one QinQ) and UDP flows, then
    their data segments interleaved with frames of flows nobody has seen."""
    setup: list[bytes] = []
    data: list[bytes] = []
    for i in range(n_flows):
        eth = Ether(src="00:09:fb:00:00:01", dst="00:1b:2b:00:00:02")
        l2 = eth if i % 3 == 0 else eth / Dot1Q(vlan=20 + i) if i % 3 == 1 else (
            eth / Dot1AD(vlan=100) / Dot1Q(vlan=i))
        a, b = IP(src=f"10.0.{i}.1", dst="10.1.0.2"), IP(src="10.1.0.2", dst=f"10.0.{i}.1")
        setup += [bytes(l2 / a / TCP(sport=40000 + i, dport=443, flags="S")),
                  bytes(l2 / b / TCP(sport=443, dport=40000 + i, flags="SA")),
                  bytes(l2 / a / TCP(sport=40000 + i, dport=443, flags="A")),
                  bytes(l2 / a / UDP(sport=5000 + i, dport=6000) / b"u")]
        for k in range(50):
            data += [bytes(l2 / a / TCP(sport=40000 + i, dport=443, flags="PA") / (b"d" * k)),
                     bytes(l2 / b / TCP(sport=443, dport=40000 + i, flags="A")),
                     bytes(l2 / a / UDP(sport=5000 + i, dport=6000) / (b"u" * k))]
            if k % 10 == 0:
                data.append(bytes(l2 / IP(src="10.9.9.9", dst=f"10.8.{k}.{i}")
                                  / UDP(sport=k, dport=9) / b"new"))
    return setup, data


def _prefilled(setup: list[bytes]) -> Analyzer:
    analyzer = Analyzer(core_only=True)
    analyzer.run([(T0 + i * 1e-3, linktypes.ETHERNET, f, len(f)) for i, f in enumerate(setup)])
    return analyzer


def _data_entries(data: list[bytes]) -> list[Entry]:
    return [entry(f, (T0 + 1) * 10**9 + i * 100_000, strip=i % 2 == 0)
            for i, f in enumerate(data)]


def test_lane_counts_and_yielded_frames_add_up() -> None:
    setup, data = _flows_frames()
    entries = _data_entries(data)
    blocks: list[Block] = list(fill_blocks(entries))
    w = _walker(ring_bytes(blocks, len(blocks) + 1), len(blocks) + 1)
    analyzer = _prefilled(setup)
    w.attach(c_lane(analyzer), None, 1000)
    yielded = list(w)
    lane_packets, lane_bytes = w.detach()
    assert lane_packets > len(data) // 2 and yielded  # the lane took most, not all
    assert lane_packets + len(yielded) == len(data) == w.frames
    assert lane_packets == w.lane_packets and lane_bytes == w.lane_bytes
    assert lane_bytes + sum(f[3] for f in yielded) == w.bytes == sum(len(f) for f in data)
    assert all(f[2] in data for f in yielded)
    assert w.detach() == (0, 0) and w.lane_packets == lane_packets


def _report(analyzer: Analyzer) -> str:
    result = build_report(analyzer.finish(), [])
    for key in VOLATILE:
        result["stats"].pop(key)
    return json.dumps(result, sort_keys=True, default=str)


def _flow_state(analyzer: Analyzer) -> list[tuple[str, ...]]:
    return sorted(tuple(repr(getattr(f, s)) for s in Flow.__slots__ if s != "app_state")
                  for f in analyzer.flows.flows())


def run_ring(content: Buf, nblocks: int, c: bool, setup: list[bytes],
             tick: Callable[[FakeRing], None] | None = None) -> dict[str, Any]:
    """``Analyzer.run`` on the ring, after ``setup`` went through the same analyzer."""
    with mode(c):
        analyzer = _prefilled(setup)
        src = FakeRing(content, nblocks)
        src.idle = src.stop
        packets = analyzer.run(src.frames(), None if tick is None else lambda: tick(src))
        out = {"packets": packets, "flows": _flow_state(analyzer), "stats": src.stats(),
               "ring": bytes(src._ring or b""), "lane": src._walker and src._walker.lane_packets}
        out["report"] = _report(analyzer)
        src.close()
    return out


def test_analyzer_on_the_ring_same_with_c_walker_and_python_loop() -> None:
    setup, data = _flows_frames()
    blocks: list[Block] = list(fill_blocks(_data_entries(data)))
    content = ring_bytes(blocks, len(blocks) + 2)
    c = run_ring(content, len(blocks) + 2, True, setup)
    py = run_ring(content, len(blocks) + 2, False, setup)
    assert c.pop("lane") > 0 and py.pop("lane") is None
    assert c == py
    assert c["packets"] == len(data) == c["stats"]["frames"]


def test_tick_that_stops_loses_no_frame() -> None:
    """A tick (the worker answering "stop") calls stop(): the frame being handled and the
    rest of its block are still counted, once; no further block is read."""
    setup, data = _flows_frames(12)
    data = data * 10
    assert len(data) > 2 * TICK_EVERY
    blocks: list[Block] = list(fill_blocks(_data_entries(data)))
    content = ring_bytes(blocks, len(blocks))
    ticks: list[int] = []

    def tick(src: FakeRing) -> None:
        ticks.append(src.frames_read)
        src.stop()

    c = run_ring(content, len(blocks), True, setup, tick)
    py = run_ring(content, len(blocks), False, setup, tick)
    c.pop("lane"), py.pop("lane")
    assert c == py
    ends = [sum(len(b or []) for b in blocks[: k + 1]) for k in range(len(blocks))]
    stop_block_end = next(e for e in ends if e >= TICK_EVERY)  # the block of the tick
    assert TICK_EVERY < stop_block_end < len(data)
    assert c["packets"] == c["stats"]["frames"] == stop_block_end
    assert len(ticks) == 2  # one on each path; none after the stop


def test_tick_failure_keeps_the_frame() -> None:
    frames = _frames(10)
    content = ring_bytes([[entry(f, T0 * 10**9) for f in frames]], 2)
    w = _walker(content, 2)
    analyzer = Analyzer(core_only=True)  # empty table: the lane takes nothing
    calls: list[int] = []

    def tick() -> None:
        calls.append(w.frames)
        if len(calls) == 1:
            raise RuntimeError("tick")

    w.attach(c_lane(analyzer), tick, 4)
    got = [next(w) for _ in range(3)]
    with pytest.raises(RuntimeError):
        next(w)
    got += list(w)
    assert [g[2] for g in got] == frames and w.frames == 10
    assert calls == [3, 3, 7]  # the fourth frame's tick, again, then the eighth's


def test_tick_may_not_iterate_detach_or_close_safely() -> None:
    frames = _frames(10)
    content = ring_bytes([[entry(f, T0 * 10**9) for f in frames]], 2)
    lane = c_lane(Analyzer(core_only=True))

    w = _walker(bytearray(content), 2)
    w.attach(lane, lambda: next(w), 2)
    assert next(w)[2] == frames[0]
    with pytest.raises(ValueError, match="already executing"):
        next(w)  # the second frame's tick

    w = _walker(bytearray(content), 2)
    w.attach(lane, lambda: w.detach(), 2)
    assert [g[2] for g in w] == frames and w.detach() == (0, 0)

    buf = bytearray(content)
    w = _walker(buf, 2)
    w.attach(lane, w.close, 3)
    assert len(list(w)) == 2 and list(w) == []
    buf.extend(b"x")  # the buffer was released: it can be resized again


def test_close_releases_the_mmap() -> None:
    with mode(True):
        src = FakeRing(ring_bytes([[entry(f, T0 * 10**9) for f in _frames(3)]], 2), 2)
        ring = src._ring
        src.idle = src.stop
        assert len(list(src.frames())) == 3
        src.close()
        assert ring is not None and ring.closed


@pytest.mark.parametrize("c", [True, False], ids=["c", "python"])
def test_backlog(c: bool) -> None:
    blocks: list[Block] = [[entry(f, T0 * 10**9) for f in _frames(3)]] * 3
    with mode(c):
        src = FakeRing(ring_bytes(blocks, 8), 8)
        src.idle = src.stop
        assert src.backlog() == 3 / 8
        frames = iter(src.frames())
        next(frames)
        assert src.backlog() == 3 / 8  # the block being read is still waiting to be done
        assert len(list(frames)) == 8
        assert src.backlog() == 0.0
        src.close()


def test_attach_lane_takes_both_walkers_and_nothing_else() -> None:
    with mode(True):
        analyzer = Analyzer(core_only=True)
        lane = fastcore.fast_lane(analyzer.flows)
        content = ring_bytes([], 2)
        w = _walker(content, 2)
        reader: Any = fastcore.attach_lane(w, lane, None, 8)
        assert reader is w
        src = FakeRing(content, 2)
        frames = src.frames()
        reader = fastcore.attach_lane(frames, lane, None, 8)
        assert reader is frames and isinstance(frames, RingFrames)
        assert fastcore.attach_lane(iter([]), lane, None, 8) is None
        assert fastcore.attach_lane(frames, None, None, 8) is None
        src.close()
        with mode(False):
            assert fastcore.attach_lane(w, lane, None, 8) is None  # C switched off
