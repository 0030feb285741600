"""Differential test against Wireshark: medtap and tshark must agree on every capture.

For every capture in ``pcaps/`` and in the public third-party folder
``../shared/pcaps/public/`` (skipped when a clone lacks it) this runs
``medtap analyze FILE --format json`` and ``tshark -T fields`` and asserts that

* the packet counts agree (``stats.packets`` vs tshark's frames),
* the sets of VLAN ids agree (outer tags from every frame, inner QinQ tags from IP frames),
* the sets of TCP/UDP flows agree: every tshark 4-tuple (transport, outer VLAN, unordered
  endpoint pair) belongs to a medtap ``flows.items`` conversation and every conversation has
  one, with as many packets as tshark counts in those flows.

Failure messages name the tshark frame numbers involved.

tshark is the reference, but it dissects more than medtap is meant to. Each place where the two
differ on purpose is normalised below, next to a comment that says why; the rest must match.
Frames that tshark decodes through an encapsulation medtap does not read are *optional*: what
tshark reports for them may be missing from medtap's output, and may also be present (should
medtap learn the encapsulation later), but nothing medtap reports may come from nowhere.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "public"
TSHARK = shutil.which("tshark")

pytestmark = [
    pytest.mark.tshark,
    pytest.mark.skipif(TSHARK is None, reason="tshark is not installed"),
]

# Leading bytes of the files medtap reads: pcap (µs/ns, both byte orders), pcapng, gzip.
CAPTURE_MAGICS = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
    b"\x1f\x8b",
)

# What medtap decodes below IP (issue 2, "Decode" and "Packet sources"), as tshark names the
# layers in ``frame.protocols``: Ethernet II, 802.1Q / 802.1ad / 0x9100 tags, Linux cooked SLL
# and SLL2, raw IP and BSD/OpenBSD loopback. "ethertype" is tshark's pseudo-layer for the type
# field. A frame whose layers below IP include anything else (Cisco FabricPath "cfp", PPPoE
# "pppoes:ppp", MPLS, GRE, VXLAN ...) goes through an encapsulation medtap does not read, so what
# tshark finds inside it is optional for medtap (see module docstring).
MEDTAP_L2 = frozenset({"eth", "ethertype", "vlan", "ieee8021ad", "sll", "null", "loop", "raw"})
IP_LAYERS = frozenset({"ip", "ipv6"})

TSHARK_FIELDS = (
    "frame.number",
    "frame.protocols",
    "frame.cb_pen",
    "vlan.id",
    "ieee8021ad.id",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
)

Endpoint = tuple[str, int]
FlowKey = tuple[str, int | None, frozenset[Endpoint]]


def _is_capture(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(CAPTURE_MAGICS)


def _captures() -> list[Any]:
    # Captures are recognised by their magic number, not by name alone: pcaps/ keeps ground
    # truth beside each capture ("x.pcap.truth.json" matches *.pcap*), and the public folder
    # holds PROVENANCE.md and tshark_summary.txt.
    found = sorted(p for p in (REPO / "pcaps").glob("**/*.pcap*") if _is_capture(p))
    if PUBLIC.is_dir():
        found += sorted(p for p in PUBLIC.iterdir() if _is_capture(p))
    params = []
    for p in found:
        label = str(p.relative_to(REPO)) if p.is_relative_to(REPO) else f"public/{p.name}"
        params.append(pytest.param(p, id=label))
    return params


# ---------------------------------------------------------------- tshark side


@dataclass
class TsharkView:
    """What tshark says about one capture, split into required and optional facts."""

    frames: int = 0
    vlans: set[int] = field(default_factory=set)  # outer tags
    inner_vlans: set[int] = field(default_factory=set)  # second tags of QinQ stacks
    optional_vlans: set[int] = field(default_factory=set)  # either, past a layer medtap skips
    flows: dict[FlowKey, list[int]] = field(default_factory=dict)  # key -> frame numbers
    optional_flows: dict[FlowKey, list[int]] = field(default_factory=dict)


def _ip(text: str) -> str:
    return str(ipaddress.ip_address(text))


def _split(value: str) -> list[str]:
    return [v for v in value.split(",") if v] if value else []


def _run_tshark(path: Path) -> list[dict[str, str]]:
    assert TSHARK is not None
    cmd = [TSHARK, "-r", str(path), "-n"]
    # Reassembly off: medtap takes the transport header from the first fragment of a datagram
    # and from every TCP segment; with IP reassembly on, tshark would instead put the UDP header
    # on the frame that completes the datagram (same ports, but optional-vs-required frame
    # bookkeeping and packet numbers in failure messages would point at the wrong frame).
    cmd += ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]
    cmd += ["-o", "tcp.desegment_tcp_streams:FALSE"]
    cmd += ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=\t"]
    for name in TSHARK_FIELDS:
        cmd += ["-e", name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        # A truncated last record is an error for tshark (exit 2, "cut short in the middle of a
        # packet") but medtap keeps what comes before it, as the issue asks; tshark has printed
        # those frames already. Anything else is a broken test input.
        assert "cut short" in proc.stderr, f"tshark failed on {path}: {proc.stderr.strip()}"
    rows = []
    for line in proc.stdout.splitlines():
        if not line:
            continue
        values = line.split("\t")
        values += [""] * (len(TSHARK_FIELDS) - len(values))
        rows.append(dict(zip(TSHARK_FIELDS, values, strict=True)))
    return rows


def tshark_view(path: Path) -> TsharkView:
    view = TsharkView()
    for row in _run_tshark(path):
        if row["frame.cb_pen"]:
            # tshark 4.x lists a pcapng Custom Block (type 0xBAD / 0x40000BAD) as a record of
            # its own. It holds vendor data, not a packet; medtap's reader skips it, as pcapng
            # lets readers do with blocks they do not know.
            continue
        view.frames += 1
        number = int(row["frame.number"])
        layers = row["frame.protocols"].split(":")
        # The layers medtap reads end at the first one outside MEDTAP_L2. Tags up to there are
        # medtap's to report whatever follows (IP, ARP, LLC/STP, LLDP, even PPPoE); past an
        # encapsulation medtap does not open (FabricPath's inner Ethernet) they are optional.
        stop = next((i for i, name in enumerate(layers) if name not in MEDTAP_L2), len(layers))
        l3_at = next((i for i, name in enumerate(layers) if name in IP_LAYERS), len(layers))
        required = l3_at == stop  # IP reached through layers medtap decodes

        # VLAN tags in wire order. tshark puts 802.1ad (0x88a8) S-tags in ieee8021ad.id and
        # 802.1Q (and 0x9100) tags in vlan.id, each list in order; frame.protocols gives the
        # interleaving. medtap keeps the outer tag as "vlan" and the next one as "inner_vlan".
        vlan_ids = iter(_split(row["vlan.id"]))
        ad_ids = iter(_split(row["ieee8021ad.id"]))
        tags: list[int] = []
        for i, name in enumerate(layers[:l3_at]):
            source = ad_ids if name == "ieee8021ad" else vlan_ids if name == "vlan" else None
            tag = next(source, None) if source is not None else None
            if tag is None:
                continue
            # tshark lists every tag of a stack in one field; medtap reports the outer tag of
            # every frame in stats.vlans and the second one in stats.inner_vlans. Tags found
            # past an encapsulation medtap does not open are optional.
            if i >= stop:
                view.optional_vlans.add(int(tag))
            elif not tags:
                view.vlans.add(int(tag))
            else:
                view.inner_vlans.add(int(tag))
            tags.append(int(tag))

        if l3_at == len(layers):
            continue  # no IP: ARP, LLDP, CDP, STP ... no TCP/UDP flow
        # The transport medtap keys a flow on is the one directly inside the *outer* IP header
        # (IPv6 extension headers, named "ipv6.hopopts", "ipv6.fraghdr"... by tshark, skipped).
        # tshark also decodes headers further in, and with occurrence=a lists them after the
        # outer ones: the inner IP and UDP/TCP of IP-in-IP / 4in4 / 6in4 tunnels, and the
        # offending datagram's IP and UDP/TCP headers quoted inside ICMP errors. medtap does
        # not open tunnels or ICMP quotes (a flow there is IPIP or ICMP, not TCP/UDP), so only
        # the outermost IP header and a transport right after it make a TCP/UDP flow here.
        after = l3_at + 1
        while after < len(layers) and layers[after].startswith("ipv6."):
            after += 1
        transport = layers[after] if after < len(layers) else ""
        if transport not in ("tcp", "udp"):
            continue
        if layers[l3_at] == "ip":
            src, dst = _split(row["ip.src"])[0], _split(row["ip.dst"])[0]
        else:
            src, dst = _split(row["ipv6.src"])[0], _split(row["ipv6.dst"])[0]
        sports = _split(row[f"{transport}.srcport"])
        dports = _split(row[f"{transport}.dstport"])
        if not sports or not dports:
            continue  # header cut short by the snap length: tshark shows no ports either
        key: FlowKey = (
            transport,
            tags[0] if tags else None,
            frozenset({(_ip(src), int(sports[0])), (_ip(dst), int(dports[0]))}),
        )
        (view.flows if required else view.optional_flows).setdefault(key, []).append(number)
    return view


# ---------------------------------------------------------------- medtap side


def _medtap_cmd() -> list[str]:
    script = shutil.which("medtap", path=str(Path(sys.executable).parent)) or shutil.which("medtap")
    if script:
        return [script]
    return [sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main())"]


def run_medtap(path: Path, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "report.json"
    cmd = [*_medtap_cmd(), "analyze", str(path), "--format", "json", "--output", str(out)]
    cmd.append("--no-progress")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, f"medtap analyze failed (exit {proc.returncode}): {proc.stderr}"
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def medtap_vlans(report: dict[str, Any]) -> tuple[set[int], set[int]]:
    """(outer, inner) VLAN ids: every frame's tags in stats, plus those on flows and devices."""
    stats = report["stats"]
    outer = set(stats["vlans"])
    inner = set(stats["inner_vlans"])
    for flow in report["flows"]["items"]:
        if flow["vlan"] is not None:
            outer.add(flow["vlan"])
        if flow["inner_vlan"] is not None:
            inner.add(flow["inner_vlan"])
    for device in report["devices"]:
        outer.update(device["vlans"] or [])
    return outer, inner


@dataclass
class Conversation:
    """One ``flows.items`` entry of medtap's report (TCP/UDP only)."""

    transport: str
    vlan: int | None
    client: str
    client_port: int | None
    server: str
    server_port: int
    connections: int
    packets: int

    def matches(self, key: FlowKey) -> bool:
        """Whether a tshark 4-tuple (unordered endpoints) is one of this conversation's flows."""
        transport, vlan, ends = key
        if (transport, vlan) != (self.transport, self.vlan):
            return False
        server = (self.server, self.server_port)
        if server not in ends:
            return False
        others = ends - {server} or {server}  # a host talking to itself on one port
        (client,) = others
        return client[0] == self.client and self.client_port in (None, client[1])

    def __str__(self) -> str:
        port = "*" if self.client_port is None else self.client_port
        return (
            f"{self.transport} vlan={self.vlan} {self.client}:{port} -> "
            f"{self.server}:{self.server_port} ({self.connections} connections, "
            f"{self.packets} packets)"
        )


def medtap_conversations(report: dict[str, Any]) -> list[Conversation]:
    flows = report["flows"]
    items = flows["items"]
    # The comparison needs every conversation, not a top-N excerpt.
    assert len(items) == flows["conversations"], "flows.items is not the full list"
    convs = []
    for f in items:
        transport = str(f["transport"]).lower()
        # Only TCP and UDP: tshark's ports exist for those alone, and medtap's ICMP or other
        # IP-protocol flows (IPIP tunnels, ESP ...) have no counterpart in the fields above.
        if transport not in ("tcp", "udp"):
            continue
        convs.append(
            Conversation(
                transport=transport,
                vlan=f["vlan"],
                client=_ip(f["client"]),
                client_port=f["client_port"],
                server=_ip(f["server"]),
                server_port=int(f["server_port"]),
                connections=int(f["connections"]),
                packets=int(f["packets_to_server"]) + int(f["packets_to_client"]),
            )
        )
    return convs


# ---------------------------------------------------------------- the test


def _fmt(key: FlowKey) -> str:
    transport, vlan, ends = key
    a, b = sorted(ends) if len(ends) == 2 else (next(iter(ends)),) * 2
    return f"{transport} vlan={vlan} {a[0]}:{a[1]} <-> {b[0]}:{b[1]}"


@pytest.mark.parametrize("capture", _captures())
def test_medtap_agrees_with_tshark(capture: Path, tmp_path: Path) -> None:
    ts = tshark_view(capture)
    report = run_medtap(capture, tmp_path)
    problems: list[str] = []

    if report["stats"]["packets"] != ts.frames:
        problems.append(f"packets: medtap {report['stats']['packets']}, tshark {ts.frames}")

    outer, inner = medtap_vlans(report)
    for what, want, got in (("outer", ts.vlans, outer), ("inner", ts.inner_vlans, inner)):
        if want - got:
            problems.append(f"{what} VLAN ids tshark sees, medtap not: {sorted(want - got)}")
        if got - want - ts.optional_vlans:
            extra = sorted(got - want - ts.optional_vlans)
            problems.append(f"{what} VLAN ids medtap reports, tshark not: {extra}")

    # medtap reports conversations, not connections: flows that share VLAN, transport, client
    # IP, server IP and server port are one item with a ``connections`` count, and the client's
    # ephemeral port is kept only when there was a single connection (agent/conversations.py,
    # memory bounded by hosts and services). tshark's 4-tuples are matched to them on that key.
    convs = medtap_conversations(report)
    matched: dict[int, set[FlowKey]] = {i: set() for i in range(len(convs))}
    optional_frames: dict[int, int] = {i: 0 for i in range(len(convs))}
    for key, frames in ts.flows.items():
        hits = [i for i, c in enumerate(convs) if c.matches(key)]
        if not hits:
            problems.append(f"flow missing in medtap: {_fmt(key)} (tshark frames {frames[:8]})")
        for i in hits:
            matched[i].add(key)
    for key, frames in ts.optional_flows.items():
        for i, c in enumerate(convs):
            if c.matches(key):
                optional_frames[i] += len(frames)
    for i, conv in enumerate(convs):
        keys = matched[i]
        if not keys and not optional_frames[i]:
            problems.append(f"conversation in medtap only: {conv}")
            continue
        # Each distinct 4-tuple is at least one connection (more when a port pair is reused).
        if len(keys) > conv.connections:
            problems.append(f"{conv}: tshark sees {len(keys)} distinct 4-tuples")
        # Every frame tshark puts in these flows through layers medtap decodes must be counted;
        # frames inside encapsulations medtap does not open may be counted or not.
        required = sum(len(ts.flows[k]) for k in keys)
        if not required <= conv.packets <= required + optional_frames[i]:
            frames = sorted(n for k in keys for n in ts.flows[k])
            problems.append(
                f"{conv}: tshark counts {required} frames"
                + (f" (+{optional_frames[i]} optional)" if optional_frames[i] else "")
                + f", frames {frames[:8]}{' ...' if len(frames) > 8 else ''}"
            )

    assert not problems, f"{capture.name}:\n  " + "\n  ".join(problems)
