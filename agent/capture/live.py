"""Live capture from a Linux interface through an AF_PACKET raw socket (packet(7)).

Sets up what libpcap's Linux backend does, in the same order: an unbound socket, the kernel BPF
filter (compiled by libpcap via ctypes: ``pcap_open_dead`` + ``pcap_compile``; fallback
``tcpdump -ddd``), ``PACKET_AUXDATA`` so the 802.1Q tag the kernel moved out of the frame can be
put back (``tpacket_auxdata.tp_vlan_tci``/``tp_vlan_tpid``), promiscuous membership, then bind
to the interface with ``ETH_P_ALL``. Timestamps come from ``SO_TIMESTAMPNS``.

Reads frames up to ``snaplen`` bytes and the auxdata/timestamp control messages; never reads or
logs frame content. Kernel counters (``PACKET_STATISTICS``, reset by the kernel on each read)
are accumulated in ``stats()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

from agent.capture import CaptureError, RawFrame
from agent.capture import linktypes as lt

log = logging.getLogger(__name__)

# linux/if_ether.h, linux/if_packet.h, asm-generic/socket.h
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_RCVBUFFORCE = 33
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 0xFFFE  # tun: raw IP

AUXDATA = struct.Struct("IIIHHHH")  # tpacket_auxdata
TIMESPEC = struct.Struct("qq")
RCVBUF_BYTES = 16 * 1024 * 1024  # kernel socket buffer: absorbs bursts between reads
POLL_SECONDS = 0.2  # how often frames() checks stop()


class _BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_BpfInsn))]


Insn = tuple[int, int, int, int]


def _compile_libpcap(expr: str, linktype: int, snaplen: int) -> list[Insn] | None:
    """Compile with libpcap through ctypes; None when libpcap is not loadable."""
    libname = ctypes.util.find_library("pcap")
    if libname is None:
        return None
    try:
        lib = ctypes.CDLL(libname)
    except OSError:
        return None
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    handle = lib.pcap_open_dead(linktype, snaplen)
    if not handle:
        raise CaptureError("libpcap: pcap_open_dead failed")
    prog = _BpfProgram()
    try:
        netmask_unknown = 0xFFFFFFFF  # PCAP_NETMASK_UNKNOWN
        if lib.pcap_compile(handle, ctypes.byref(prog), expr.encode(), 1, netmask_unknown) != 0:
            msg = (lib.pcap_geterr(handle) or b"unknown error").decode(errors="replace")
            raise CaptureError(f"bad capture filter {expr!r}: {msg}")
        insns = [(prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf,
                  prog.bf_insns[i].k) for i in range(prog.bf_len)]
        lib.pcap_freecode(ctypes.byref(prog))
        return insns
    finally:
        lib.pcap_close(handle)


def _compile_tcpdump(expr: str, linktype: int, snaplen: int) -> list[Insn]:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise CaptureError("cannot compile capture filter: neither libpcap nor tcpdump found")
    dlt = {lt.ETHERNET: "EN10MB", lt.RAW: "RAW"}.get(linktype, "EN10MB")
    out = subprocess.run([tcpdump, "-y", dlt, "-s", str(snaplen), "-ddd", expr],
                         capture_output=True, text=True, check=False, timeout=30)
    if out.returncode != 0:
        msg = (out.stderr.strip().splitlines() or ["tcpdump failed"])[-1]
        raise CaptureError(f"bad capture filter {expr!r}: {msg}")
    lines = out.stdout.split("\n")
    insns: list[Insn] = []
    for line in lines[1 : 1 + int(lines[0])]:
        code, jt, jf, k = (int(x) for x in line.split())
        insns.append((code, jt, jf, k))
    return insns


def compile_bpf(expr: str, linktype: int = lt.ETHERNET, snaplen: int = 65535) -> list[Insn]:
    """Compile a tcpdump filter expression to classic BPF (libpcap, else ``tcpdump -ddd``)."""
    insns = _compile_libpcap(expr, linktype, snaplen)
    if insns is None:
        log.info("libpcap not loadable through ctypes; compiling the filter with tcpdump")
        insns = _compile_tcpdump(expr, linktype, snaplen)
    return insns


def attach_bpf(sock: socket.socket, insns: list[Insn]) -> None:
    """SO_ATTACH_FILTER: the kernel copies the program during the call."""
    arr = (_BpfInsn * len(insns))(*(_BpfInsn(*i) for i in insns))
    fprog = _SockFprog(len(insns), ctypes.cast(arr, ctypes.POINTER(_BpfInsn)))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))


def open_packet_socket(iface: str) -> tuple[socket.socket, int]:
    """An AF_PACKET socket that receives nothing yet (protocol 0), and the interface index;
    one-line ``CaptureError``s for a missing interface or missing privileges."""
    try:
        ifindex = socket.if_nametoindex(iface)
    except OSError:
        raise CaptureError(f"{iface}: no such network interface") from None
    try:
        return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0), ifindex
    except PermissionError:
        raise CaptureError(f"{iface}: permission denied: live capture needs root or "
                           "CAP_NET_RAW") from None
    except OSError as exc:
        raise CaptureError(f"{iface}: cannot open packet socket: {exc.strerror}") from None


def bind_linktype(sock: socket.socket, iface: str) -> int:
    """Bind ``sock`` to ``iface`` (still receiving nothing) and return the link type its
    hardware type gives, so a BPF filter can be compiled for it before frames arrive."""
    try:
        sock.bind((iface, 0))
    except OSError as exc:
        raise CaptureError(f"{iface}: cannot bind: {exc.strerror}") from None
    hatype = sock.getsockname()[3]
    if hatype in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        return lt.ETHERNET
    if hatype == ARPHRD_NONE:
        return lt.RAW
    raise CaptureError(f"{iface}: unsupported interface hardware type {hatype}")


def enable_promisc(sock: socket.socket, ifindex: int) -> None:
    mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)


class LiveSource:
    """Frames from a live interface. ``stop()`` (from any thread) ends ``frames()``."""

    def __init__(self, interface: str, bpf: str | None = None, snaplen: int = 65535,
                 promisc: bool = True) -> None:
        self.name = interface
        self.interface = interface
        self.bpf = bpf
        self.snaplen = snaplen
        self.promisc = promisc
        self.warnings: list[str] = []
        self._stop = threading.Event()
        self._bytes = 0
        self._received = 0
        self._dropped = 0
        self._frames = 0
        self._vlan_restored = 0
        self._sock: socket.socket | None = None
        self.linktype = lt.ETHERNET
        self._open()

    # -- setup ---------------------------------------------------------------------------
    def _open(self) -> None:
        iface = self.interface
        sock, ifindex = open_packet_socket(iface)
        try:
            self.linktype = bind_linktype(sock, iface)
            if self.bpf:
                attach_bpf(sock, compile_bpf(self.bpf, self.linktype, self.snaplen))
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            if self.promisc:
                enable_promisc(sock, ifindex)
            sock.bind((iface, ETH_P_ALL))
            sock.settimeout(POLL_SECONDS)
        except CaptureError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise CaptureError(f"{iface}: no such network interface") from None
            raise CaptureError(f"{iface}: cannot set up capture: {exc.strerror or exc}") from None
        self._sock = sock
        self._read_kernel_stats()  # zero the kernel counters for this socket
        self._received = self._dropped = 0

    # -- PacketSource --------------------------------------------------------------------
    @property
    def bytes_read(self) -> int:
        return self._bytes

    @property
    def size(self) -> int | None:
        return None

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._read_kernel_stats()
            self._sock.close()
            self._sock = None

    def frames(self) -> Iterator[RawFrame]:
        sock = self._sock
        if sock is None:
            raise CaptureError(f"{self.name}: capture is closed")
        recvmsg = sock.recvmsg
        bufsize = self.snaplen
        ancsize = socket.CMSG_SPACE(AUXDATA.size) + socket.CMSG_SPACE(TIMESPEC.size)
        aux_unpack = AUXDATA.unpack_from
        ts_unpack = TIMESPEC.unpack_from
        stopped = self._stop.is_set
        linktype = self.linktype
        eth = linktype == lt.ETHERNET
        flags = socket.MSG_TRUNC
        try:
            while not stopped():
                try:
                    data, anc, _fl, _addr = recvmsg(bufsize, ancsize, flags)
                except TimeoutError:
                    continue
                except InterruptedError:
                    continue
                except OSError as exc:
                    if self._stop.is_set():
                        break
                    if exc.errno == errno.ENETDOWN:
                        raise CaptureError(f"{self.name}: interface went down") from None
                    raise CaptureError(f"{self.name}: capture failed: {exc.strerror}") from None
                ts = 0.0
                wirelen = len(data)
                for level, ctype, cdata in anc:
                    if level == SOL_PACKET and ctype == PACKET_AUXDATA:
                        status, tp_len, _snap, _mac, _net, tci, tpid = aux_unpack(cdata)
                        wirelen = tp_len
                        if eth and (status & TP_STATUS_VLAN_VALID or tci) and len(data) >= 12:
                            if not status & TP_STATUS_VLAN_TPID_VALID:
                                tpid = 0x8100
                            data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
                            wirelen += 4
                            self._vlan_restored += 1
                            if len(data) > bufsize:
                                data = data[:bufsize]
                    elif level == socket.SOL_SOCKET and ctype == SCM_TIMESTAMPNS:
                        sec, nsec = ts_unpack(cdata)
                        ts = sec + nsec / 1e9
                if not ts:
                    ts = time.time()
                self._bytes += wirelen
                self._frames += 1
                yield (ts, linktype, data, wirelen)
        finally:
            self._read_kernel_stats()

    # -- counters --------------------------------------------------------------------------
    def _read_kernel_stats(self) -> None:
        if self._sock is None:
            return
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except OSError:
            return
        packets, drops = struct.unpack("II", raw)
        self._received += packets  # tp_packets counts dropped packets too, like ps_recv
        self._dropped += drops

    def stats(self) -> dict[str, int]:
        """Accumulated counters: kernel ``received``/``dropped`` (``received`` includes the
        dropped, as libpcap's ``ps_recv``), ``frames`` yielded, and ``vlan_restored``: frames
        whose 802.1Q/802.1ad tag the kernel had stripped and this source put back."""
        self._read_kernel_stats()
        return {"received": self._received, "dropped": self._dropped, "frames": self._frames,
                "vlan_restored": self._vlan_restored}

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


__all__ = ["LiveSource", "attach_bpf", "compile_bpf"]
