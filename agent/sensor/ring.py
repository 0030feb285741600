"""Live capture through a TPACKET_V3 memory-mapped ring, optionally in a PACKET_FANOUT group.

packet(7) and Documentation/networking/packet_mmap.rst. Why a ring and not
``agent.capture.live.LiveSource`` (one ``recvmsg`` per frame): the kernel fills blocks of
frames in shared memory and hands over a whole block at once, so a worker makes one
``poll`` per block instead of one system call per frame, and the ring (``ring_mb``, 64 MiB
by default) absorbs bursts and the pauses of a snapshot. Measured in docs/performance.md
("Live replay").

Set-up order, as libpcap's Linux backend: an unbound socket (receives nothing), the BPF
filter (``agent.capture.live.compile_bpf``), ``PACKET_VERSION`` = V3, ``PACKET_RX_RING``,
``mmap``, promiscuous membership, ``bind`` with ``ETH_P_ALL``, then ``PACKET_FANOUT``
(the kernel accepts it only on a bound socket).

Fanout: ``PACKET_FANOUT_HASH`` spreads frames over the group by the kernel's *symmetric*
flow hash (``__skb_get_hash_symmetric``: addresses and ports, sorted), so both directions
of a flow reach the same worker; the flow dissector walks in-band 802.1Q/802.1ad tags, so
tagged frames hash on their IP header too and both VLAN copies of a routed flow meet in
one worker. IP fragments carry no ports and would hash apart from their flow:
``PACKET_FANOUT_FLAG_DEFRAG`` makes the kernel reassemble IPv4 datagrams before hashing
(the worker then sees one whole datagram). IPv6 fragments are not reassembled by it
(docs/sensor.md, "Fanout").

The 802.1Q tag that the NIC or the kernel moved out of the frame is put back from
``tpacket3_hdr.hv1`` (``TP_STATUS_VLAN_VALID``). Never reads or logs frame content; the
frames go to the pipeline. Kernel counters (``PACKET_STATISTICS``, reset by each read) are
accumulated in ``stats()``.

The per-frame loop runs in C when the extension is built (``agent._fastcore.RingWalker``,
chosen by ``agent.fastcore``; ``MEDTAP_NO_C=1`` forces the Python loop below, which stays
its definition): ``frames()`` then returns a ``RingFrames``, which ``Analyzer.run`` hands
the fast lane to, so frames the lane counts never become Python objects. Both loops check
every offset the kernel wrote against the block; a frame outside it ends that block and is
counted in ``bad_frames``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import select
import socket
import struct
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any

from agent.capture import CaptureError, RawFrame
from agent.capture import linktypes as lt
from agent.capture.live import (
    attach_bpf,
    bind_linktype,
    compile_bpf,
    enable_promisc,
    open_packet_socket,
)
from agent.fastcore import RingReader, ring_walker

log = logging.getLogger(__name__)

# linux/if_ether.h, linux/if_packet.h
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_FANOUT = 18
TPACKET_V3 = 2
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40

# Ring geometry. The kernel hands a block over when it is full *or* after RETIRE_MS, so at
# a moderate rate most blocks leave partly filled and the ring holds ``blocks * RETIRE_MS``
# of traffic, not ``ring_mb`` of it: 32 blocks of 1 MiB retired every 50 ms held 1.6 s at
# 4k pkt/s per worker (blocks 13% full), and every longer pause dropped frames
# (docs/sensor.md, "Capture"). Small blocks and a longer timeout fill the memory instead:
# 256 blocks of 256 KiB retired after 200 ms hold >= 51 s at any rate the ring's bytes allow.
BLOCK_SIZE = 1 << 18  # 256 KiB: a 64 KiB GRO/GSO frame still fits; a power of two pages
FRAME_SIZE = 2048  # V3 packs frames by size; tp_frame_nr only has to be consistent
RETIRE_MS = 200  # a partly filled block is handed over after this long (low traffic)
DEFAULT_RING_MB = 64
POLL_MS = 100  # how often frames() checks stop() and calls idle()

REQ3 = struct.Struct("7I")  # tpacket_req3
BLOCK_HDR = struct.Struct("8xIII")  # (version, offset_to_priv) status, num_pkts, first
STATUS = struct.Struct("I")
BLOCK_STATUS_OFFSET = 8
BLOCK_DESC_LEN = 48  # sizeof(tpacket_block_desc): the first frame starts at or after it
FRAME_HDR_LEN = 48  # sizeof(tpacket3_hdr): every frame's header lies inside its block
# tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status, mac (then net and hv1: rxhash,
# tci, tpid, padding). Unpacked in two steps: the VLAN fields only for tagged frames.
FRAME_HDR = struct.Struct("IIIIIIH")
HV1_VLAN = struct.Struct("IH")  # tp_vlan_tci, tp_vlan_tpid
HV1_VLAN_OFFSET = 32
STATS_V3 = struct.Struct("III")  # tp_packets, tp_drops, tp_freeze_q_cnt
VLAN_TAG = struct.Struct("!HH")


class RingSource:
    """Frames from ``interface`` through a TPACKET_V3 ring. ``stop()`` from any thread (or a
    signal handler) ends ``frames()``; ``idle`` is called from inside ``frames()`` whenever
    a poll times out, between frames, so a single-threaded worker can answer requests."""

    def __init__(
        self,
        interface: str,
        bpf: str | None = None,
        *,
        ring_mb: int = DEFAULT_RING_MB,
        fanout_group: int | None = None,
        defrag: bool = True,
        promisc: bool = True,
    ) -> None:
        self.name = interface
        self.interface = interface
        self.bpf = bpf
        self.ring_mb = ring_mb
        self.fanout_group = fanout_group
        self.defrag = defrag
        self.promisc = promisc
        self.linktype = lt.ETHERNET
        self.idle: Callable[[], None] | None = None
        self.warnings: list[str] = []
        self._stop = threading.Event()
        self._frames = 0
        self._bytes = 0
        self._received = 0
        self._dropped = 0
        self._vlan_restored = 0
        self._sock: socket.socket | None = None
        self._ring: mmap.mmap | None = None
        self._blocks = max(2, ring_mb * (1 << 20) // BLOCK_SIZE)
        self._block = 0  # the Python loop's position (the C walker keeps its own)
        self._bad_frames = 0
        self._walker: RingReader | None = None
        self._open()

    # -- setup -------------------------------------------------------------------------
    def _open(self) -> None:
        iface = self.interface
        sock, ifindex = open_packet_socket(iface)
        try:
            self.linktype = bind_linktype(sock, iface)
            if self.bpf:
                attach_bpf(sock, compile_bpf(self.bpf, self.linktype, 65535))
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            frames_per_block = BLOCK_SIZE // FRAME_SIZE
            req = REQ3.pack(
                BLOCK_SIZE, self._blocks, FRAME_SIZE, frames_per_block * self._blocks,
                RETIRE_MS, 0, 0,
            )
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self._ring = mmap.mmap(
                sock.fileno(), BLOCK_SIZE * self._blocks, mmap.MAP_SHARED,
                mmap.PROT_READ | mmap.PROT_WRITE,
            )
            if self.promisc:
                enable_promisc(sock, ifindex)
            sock.bind((iface, ETH_P_ALL))
            if self.fanout_group is not None:
                mode = PACKET_FANOUT_HASH | (PACKET_FANOUT_FLAG_DEFRAG if self.defrag else 0)
                arg = (self.fanout_group & 0xFFFF) | mode << 16  # > INT_MAX with DEFRAG
                sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("I", arg))
        except CaptureError:
            self._close_quietly(sock)
            raise
        except OSError as exc:
            self._close_quietly(sock)
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise CaptureError(f"{iface}: no such network interface") from None
            if exc.errno == errno.EPERM:
                raise CaptureError(f"{iface}: permission denied: live capture needs root or "
                                   "CAP_NET_RAW (and CAP_NET_ADMIN for promiscuous mode)") from None
            raise CaptureError(f"{iface}: cannot set up capture ring: "
                               f"{exc.strerror or exc}") from None
        self._sock = sock
        self._read_kernel_stats()  # zero the counters: frames before the ring was ready
        self._received = self._dropped = 0

    def _close_quietly(self, sock: socket.socket) -> None:
        if self._walker is not None:
            self._walker.close()  # its buffer export would keep the mmap from closing
        if self._ring is not None:
            with contextlib.suppress(BufferError, ValueError):
                self._ring.close()
            self._ring = None
        sock.close()

    # -- PacketSource ------------------------------------------------------------------
    @property
    def bytes_read(self) -> int:
        walker = self._walker
        return self._bytes + (walker.bytes if walker is not None else 0)

    @property
    def size(self) -> int | None:
        return None

    @property
    def frames_read(self) -> int:
        walker = self._walker
        return self._frames + (walker.frames if walker is not None else 0)

    @property
    def bad_frames(self) -> int:
        """Frames whose offsets the kernel wrote pointed outside their block (each ended
        its block: the rest of it was skipped). Zero unless the ring is corrupt."""
        walker = self._walker
        return self._bad_frames + (walker.bad_frames if walker is not None else 0)

    def stop(self) -> None:
        self._stop.set()
        walker = self._walker
        if walker is not None:  # it ends at the next block boundary, as the Python loop
            walker.stop()

    def fileno(self) -> int:
        if self._sock is None:
            raise CaptureError(f"{self.name}: capture is closed")
        return self._sock.fileno()

    def close(self) -> None:
        self.stop()
        if self._sock is not None:
            self._read_kernel_stats()
            self._close_quietly(self._sock)
            self._sock = None

    def release(self) -> None:
        """Close this process's copy after a fork handed the ring to a worker: without
        reading the kernel counters, which are the socket's and would be reset for the
        worker."""
        if self._sock is not None:
            self._close_quietly(self._sock)
            self._sock = None

    def frames(self) -> Iterator[RawFrame]:
        """Frames in kernel order. One ``poll`` per block; a block goes back to the kernel
        once every frame in it has been handed on (each frame is copied out first). The C
        walker when built (a ``RingFrames``, which ``Analyzer.run`` can hand the fast lane
        to), else the Python loop."""
        sock, ring = self._sock, self._ring
        if sock is None or ring is None:
            raise CaptureError(f"{self.name}: capture is closed")
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLERR)
        walker = self._walker
        if walker is None:
            walker = ring_walker(ring, BLOCK_SIZE, self._blocks, self.linktype, self._block)
            self._walker = walker
        if walker is None:
            return self._walk(ring, poller)
        return RingFrames(self._walk_c(walker, poller), walker)

    def _walk_c(self, walker: RingReader, poller: select.poll) -> Generator[RawFrame, None, None]:
        """The C walker drains every ready block (StopIteration at the first one not ready,
        or at a block boundary after stop()); then one poll, as the Python loop makes."""
        stopped = self._stop.is_set
        try:
            while not stopped():
                yield from walker
                if not stopped() and not poller.poll(POLL_MS):
                    self._idle()
        finally:
            self._read_kernel_stats()

    def _walk(self, ring: mmap.mmap, poller: select.poll) -> Iterator[RawFrame]:
        """The Python loop: the definition of what the C walker yields and counts."""
        hdr_unpack = FRAME_HDR.unpack_from
        vlan_unpack = HV1_VLAN.unpack_from
        block_hdr = BLOCK_HDR.unpack_from
        release = STATUS.pack_into
        vlan_tag = VLAN_TAG.pack
        join = b"".join
        stopped = self._stop.is_set
        linktype = self.linktype
        eth = linktype == lt.ETHERNET
        nblocks = self._blocks
        hdr_len = FRAME_HDR_LEN
        try:
            while not stopped():
                base = self._block * BLOCK_SIZE
                status, count, first = block_hdr(ring, base)
                if not status & TP_STATUS_USER:
                    if poller.poll(POLL_MS):
                        continue
                    self._idle()
                    continue
                end = base + BLOCK_SIZE
                last = end - hdr_len  # the last offset a frame header fits at
                off = base + first
                low = base + BLOCK_DESC_LEN  # no frame before the block descriptor's end
                nbytes = 0
                vlans = 0
                for i in range(count):
                    # every offset the kernel wrote stays inside the block, else the rest
                    # of the block is skipped (and counted); a frame header at least 48
                    # bytes past the previous one also bounds the walk by the block size
                    if not low <= off <= last:
                        count = self._bad_frame(i)
                        break
                    nxt, sec, nsec, snaplen, wirelen, fstatus, mac = hdr_unpack(ring, off)
                    start = off + mac
                    if start + snaplen > end:
                        count = self._bad_frame(i)
                        break
                    if fstatus & TP_STATUS_VLAN_VALID and eth and snaplen >= 12:
                        tci, tpid = vlan_unpack(ring, off + HV1_VLAN_OFFSET)
                        if not fstatus & TP_STATUS_VLAN_TPID_VALID:
                            tpid = 0x8100
                        data = join((ring[start : start + 12], vlan_tag(tpid, tci & 0xFFFF),
                                     ring[start + 12 : start + snaplen]))
                        wirelen += 4
                        vlans += 1
                    else:
                        data = ring[start : start + snaplen]
                    nbytes += wirelen
                    low = off + hdr_len
                    off += nxt
                    yield (sec + nsec * 1e-9, linktype, data, wirelen)
                self._frames += count
                self._bytes += nbytes
                self._vlan_restored += vlans
                release(ring, base + BLOCK_STATUS_OFFSET, TP_STATUS_KERNEL)
                self._block = (self._block + 1) % nblocks
        finally:
            self._read_kernel_stats()

    def _bad_frame(self, index: int) -> int:
        """A frame outside its block: counted; returns the frames handed on before it."""
        self._bad_frames += 1
        return index

    def backlog(self) -> float:
        """The fraction of the ring's blocks filled and waiting for this worker (0.0..1.0),
        from the block being read on: how far behind the kernel it is."""
        walker, ring = self._walker, self._ring
        if walker is not None:
            return walker.ready_blocks() / self._blocks
        if ring is None:
            return 0.0
        ready = 0
        while ready < self._blocks:
            block = (self._block + ready) % self._blocks
            if not BLOCK_HDR.unpack_from(ring, block * BLOCK_SIZE)[0] & TP_STATUS_USER:
                break
            ready += 1
        return ready / self._blocks

    def _idle(self) -> None:
        if self.idle is not None:
            self.idle()

    # -- counters ----------------------------------------------------------------------
    def _read_kernel_stats(self) -> None:
        if self._sock is None:
            return
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, STATS_V3.size)
        except OSError:
            return
        packets, drops, _freeze = STATS_V3.unpack(raw)
        self._received += packets  # includes the dropped, like libpcap's ps_recv
        self._dropped += drops

    def stats(self) -> dict[str, int]:
        """Kernel ``received``/``dropped`` (accumulated), ``frames`` and ``bytes`` handed on,
        ``vlan_restored``: frames whose stripped 802.1Q tag was put back."""
        self._read_kernel_stats()
        walker = self._walker
        return {
            "received": self._received,
            "dropped": self._dropped,
            "frames": self.frames_read,
            "bytes": self.bytes_read,
            "vlan_restored": self._vlan_restored + (
                walker.vlan_restored if walker is not None else 0),
        }

    def __enter__(self) -> RingSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RingFrames(Iterator[RawFrame]):
    """What ``RingSource.frames()`` returns on the C path: the frames (the C walker drained
    between polls), and the walker's ``attach``/``detach`` for ``agent.fastcore.attach_lane``
    (``Analyzer.run`` hands it the fast lane). Iterating it is iterating the generator
    directly: no Python call per frame."""

    def __init__(self, frames: Generator[RawFrame, None, None], walker: RingReader) -> None:
        self._frames = frames
        self.walker = walker

    def __iter__(self) -> Iterator[RawFrame]:
        return self._frames

    def __next__(self) -> RawFrame:
        return next(self._frames)

    def attach(self, lane: Any, tick: Callable[[], None] | None, every: int) -> None:
        self.walker.attach(lane, tick, every)

    def detach(self) -> tuple[int, int]:
        return self.walker.detach()

    def close(self) -> None:
        """End the iteration early (the kernel counters are read one last time)."""
        self._frames.close()


__all__ = ["RingFrames", "RingSource"]
