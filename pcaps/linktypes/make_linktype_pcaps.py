"""Regenerate the link-type test captures in this folder and their ``*.truth.json``.

Deterministic: fixed timestamps, fixed addresses/ports/sequence numbers, scapy only to build
the IP/TCP/UDP/ICMP bytes (checksums), our own ``struct`` writers for the file formats, gzip
with mtime 0. Run from anywhere: ``python pcaps/linktypes/make_linktype_pcaps.py``.
"""

from __future__ import annotations

import gzip
import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6  # noqa: E402
from scapy.packet import Packet, Raw  # noqa: E402

from tests.capture_fixtures import (  # noqa: E402
    ng_custom,
    ng_epb,
    ng_idb,
    ng_isb,
    ng_nrb,
    ng_shb,
    pcap_bytes,
)

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
MAC_A = bytes.fromhex("0009fb112233")  # Philips OUI (monitor-ish)
MAC_B = bytes.fromhex("00000c445566")  # Cisco OUI (router-ish)


@dataclass
class Pkt:
    ts: float
    l3: bytes
    version: int
    vlans: list[tuple[int, int]] = field(default_factory=list)  # (tpid, vid), outer first


@dataclass
class Capture:
    pkts: list[Pkt]
    flows: list[dict[str, object]]


def _ep(ip: str, port: int | None, v6: bool) -> str:
    if port is None:
        return ip
    return f"[{ip}]:{port}" if v6 else f"{ip}:{port}"


def conversation(
    t: float, cli: str, srv: str, *, v6: bool = False, vlans: list[tuple[int, int]] | None = None,
    tcp_port: int = 104, udp_port: int = 2575, icmp: bool = True, tag: int = 0,
) -> Capture:
    """TCP handshake + one data segment each way + FIN, one UDP exchange, one ICMP echo."""
    vl = list(vlans or [])

    def ip(src: str, dst: str) -> Packet:
        return IPv6(src=src, dst=dst, hlim=64) if v6 else IP(src=src, dst=dst, id=tag, ttl=64)

    cport = 40000 + tag
    seq_c, seq_s = 1000 + tag, 5000 + tag
    raw: list[Packet] = [
        ip(cli, srv) / TCP(sport=cport, dport=tcp_port, flags="S", seq=seq_c, window=8192),
        ip(srv, cli) / TCP(sport=tcp_port, dport=cport, flags="SA", seq=seq_s, ack=seq_c + 1,
                           window=8192),
        ip(cli, srv) / TCP(sport=cport, dport=tcp_port, flags="A", seq=seq_c + 1,
                           ack=seq_s + 1, window=8192),
        ip(cli, srv) / TCP(sport=cport, dport=tcp_port, flags="PA", seq=seq_c + 1,
                           ack=seq_s + 1, window=8192) / Raw(b"hello medtap\r\n"),
        ip(srv, cli) / TCP(sport=tcp_port, dport=cport, flags="PA", seq=seq_s + 1,
                           ack=seq_c + 15, window=8192) / Raw(b"ok\r\n"),
        ip(cli, srv) / TCP(sport=cport, dport=tcp_port, flags="FA", seq=seq_c + 15,
                           ack=seq_s + 5, window=8192),
        ip(cli, srv) / UDP(sport=50000 + tag, dport=udp_port) / Raw(b"udp ping"),
        ip(srv, cli) / UDP(sport=udp_port, dport=50000 + tag) / Raw(b"udp pong"),
    ]
    vid = vl[0][1] if vl else None
    stack = [v for _, v in vl]
    flows: list[dict[str, object]] = [
        {"transport": "tcp", "a": _ep(cli, cport, v6), "b": _ep(srv, tcp_port, v6),
         "vlan": vid, "vlan_stack": stack},
        {"transport": "udp", "a": _ep(cli, 50000 + tag, v6), "b": _ep(srv, udp_port, v6),
         "vlan": vid, "vlan_stack": stack},
    ]
    if icmp:
        if v6:
            raw += [ip(cli, srv) / ICMPv6EchoRequest(id=7, seq=1, data=b"medtap"),
                    ip(srv, cli) / ICMPv6EchoReply(id=7, seq=1, data=b"medtap")]
        else:
            raw += [ip(cli, srv) / ICMP(type=8, id=7, seq=1) / Raw(b"medtap"),
                    ip(srv, cli) / ICMP(type=0, id=7, seq=1) / Raw(b"medtap")]
        flows.append({"transport": "icmpv6" if v6 else "icmp", "a": cli, "b": srv,
                      "vlan": vid, "vlan_stack": stack})
    pkts = [Pkt(round(t + i * 0.001_25, 6), bytes(p), 6 if v6 else 4, vl)
            for i, p in enumerate(raw)]
    return Capture(pkts, flows)


def merge(*caps: Capture) -> Capture:
    pkts = sorted((p for c in caps for p in c.pkts), key=lambda p: p.ts)
    return Capture(pkts, [f for c in caps for f in c.flows])


# --- link-layer wrappers -------------------------------------------------------------------

def eth(p: Pkt, src: bytes = MAC_A, dst: bytes = MAC_B) -> bytes:
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in p.vlans)
    etype = 0x86DD if p.version == 6 else 0x0800
    return dst + src + tags + struct.pack("!H", etype) + p.l3


def sll(p: Pkt) -> bytes:
    proto = 0x86DD if p.version == 6 else 0x0800
    return struct.pack("!HHH8sH", 0, 1, 6, MAC_A + b"\0\0", proto) + p.l3


def sll2(p: Pkt) -> bytes:
    proto = 0x86DD if p.version == 6 else 0x0800
    return struct.pack("!HHIHBB8s", proto, 0, 2, 1, 0, 6, MAC_A + b"\0\0") + p.l3


def null_le(af6: int):  # type: ignore[no-untyped-def]
    def wrap(p: Pkt) -> bytes:
        return struct.pack("<I", af6 if p.version == 6 else 2) + p.l3
    return wrap


def loop_be(p: Pkt) -> bytes:
    return struct.pack("!I", 24 if p.version == 6 else 2) + p.l3


def raw_ip(p: Pkt) -> bytes:
    return p.l3


# --- files -----------------------------------------------------------------------------------

def truth(cap: Capture, linktype: int | list[int], n: int | None = None) -> dict[str, object]:
    vlans = sorted({v for p in cap.pkts for _, v in p.vlans})
    lts = linktype if isinstance(linktype, list) else [linktype]
    return {"packets": len(cap.pkts) if n is None else n, "linktype": lts[0], "linktypes": lts,
            "vlans": vlans, "flows": cap.flows}


def write(name: str, data: bytes, t: dict[str, object]) -> None:
    (HERE / name).write_bytes(data)
    (HERE / f"{name}.truth.json").write_text(json.dumps(t, indent=1) + "\n")


def frames(cap: Capture, wrap) -> list[tuple[float, bytes]]:  # type: ignore[no-untyped-def]
    return [(p.ts, wrap(p)) for p in cap.pkts]


def main() -> None:
    v4 = conversation(T0, "10.1.0.10", "10.1.0.20", tag=1)
    v6 = conversation(T0 + 0.0005, "2001:db8:1::10", "2001:db8:1::20", v6=True, tag=2)
    mixed = merge(v4, v6)

    write("ethernet.pcap", pcap_bytes(1, frames(mixed, eth)), truth(mixed, 1))
    vlan = merge(
        conversation(T0, "10.10.0.5", "10.10.0.6", vlans=[(0x8100, 10)], tag=3),
        conversation(T0 + 0.0003, "10.20.0.5", "10.99.0.6", vlans=[(0x8100, 20)], tag=4,
                     icmp=False),
    )
    write("ethernet_vlan.pcap", pcap_bytes(1, frames(vlan, eth)), truth(vlan, 1))
    qinq = merge(
        conversation(T0, "10.30.0.5", "10.30.0.6", vlans=[(0x88A8, 100), (0x8100, 30)], tag=5),
        conversation(T0 + 0.0007, "2001:db8:30::5", "2001:db8:30::6", v6=True,
                     vlans=[(0x88A8, 100), (0x8100, 31)], tag=6, icmp=False),
    )
    write("ethernet_qinq_88a8.pcap", pcap_bytes(1, frames(qinq, eth)), truth(qinq, 1))
    q9100 = conversation(T0, "10.40.0.5", "10.40.0.6", vlans=[(0x9100, 200), (0x8100, 40)],
                         tag=7)
    write("ethernet_qinq_9100.pcap", pcap_bytes(1, frames(q9100, eth)), truth(q9100, 1))

    write("sll.pcap", pcap_bytes(113, frames(mixed, sll)), truth(mixed, 113))
    write("sll2.pcap", pcap_bytes(276, frames(mixed, sll2)), truth(mixed, 276))
    write("raw_101.pcap", pcap_bytes(101, frames(mixed, raw_ip)), truth(mixed, 101))
    write("raw_ipv4_228.pcap", pcap_bytes(228, frames(v4, raw_ip)), truth(v4, 228))
    write("raw_ipv6_229.pcap", pcap_bytes(229, frames(v6, raw_ip)), truth(v6, 229))

    # BSD null: AF_INET6 is 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS); host order = LE here
    n24 = conversation(T0 + 0.0005, "2001:db8:24::1", "2001:db8:24::2", v6=True, tag=8)
    n28 = conversation(T0 + 0.0006, "2001:db8:28::1", "2001:db8:28::2", v6=True, tag=9,
                       icmp=False)
    n30 = conversation(T0 + 0.0007, "2001:db8:30::1", "2001:db8:30::2", v6=True, tag=10,
                       icmp=False)
    fr = (frames(v4, null_le(24)) + frames(n24, null_le(24)) + frames(n28, null_le(28))
          + frames(n30, null_le(30)))
    fr.sort(key=lambda x: x[0])
    null_all = merge(v4, n24, n28, n30)
    write("null_loopback.pcap", pcap_bytes(0, fr), truth(null_all, 0))
    write("loop_108.pcap", pcap_bytes(108, frames(mixed, loop_be)), truth(mixed, 108))

    # pcapng: iface 0 Ethernet (µs), iface 1 Linux SLL with ns resolution and a 1 s offset,
    # plus blocks the reader must skip (NRB, ISB, custom).
    ng = [ng_shb(), ng_idb(1, name="eth0"), ng_nrb(),
          ng_idb(113, tsresol=9, tsoffset=1, name="any")]
    sll_cap = conversation(T0 + 0.0002, "10.50.0.5", "10.50.0.6", tag=11)
    items = [(p.ts, 0, eth(p)) for p in v4.pkts] + [(p.ts, 1, sll(p)) for p in sll_cap.pkts]
    items.sort(key=lambda x: x[0])
    for ts, iface, data in items:
        if iface == 0:
            ng.append(ng_epb(0, ts, data))
        else:
            ng.append(ng_epb(1, ts, data, tsresol=9, tsoffset=1))
    ng += [ng_isb(0), ng_custom()]
    two = merge(v4, sll_cap)
    write("pcapng_two_interfaces.pcapng", b"".join(ng), truth(two, [1, 113]))

    eth_pcap = pcap_bytes(1, frames(mixed, eth))
    write("ethernet.pcap.gz", gzip.compress(eth_pcap, mtime=0), truth(mixed, 1))
    write("ethernet_ns.pcap", pcap_bytes(1, frames(mixed, eth), nanosecond=True),
          truth(mixed, 1))
    write("ethernet_be.pcap", pcap_bytes(1, frames(mixed, eth), big_endian=True),
          truth(mixed, 1))
    # cut 10 bytes into the last record's data: every frame but the last survives
    last = len(frames(mixed, eth)[-1][1])
    cut = eth_pcap[: len(eth_pcap) - last + 10]
    t = truth(mixed, 1, n=len(mixed.pkts) - 1)
    t["truncated_at"] = len(eth_pcap) - last - 16
    t["note"] = "flows: all flows; the last packet (ICMPv6 echo reply) is cut"
    write("truncated.pcap", cut, t)


if __name__ == "__main__":
    main()
