"""Floods through the real ``medtap analyze``: the sensor keeps going and counts what it dropped.

Each test writes its capture into a temporary folder (raw bytes with ``struct``; nothing big
is committed), runs ``python -m agent.cli analyze FILE -f json`` as a subprocess, and reads
the report's ``stats``. Memory is the child's peak RSS (``ru_maxrss`` from ``os.wait4``);
"flat" means two flood sizes, one several times the other, peak within a few MB plus
per-host bookkeeping of each other. The numbers are in docs/security-fuzzing.md.

* SYN flood, random source ports and addresses: flow table at ``--max-flows``, evictions
  counted, RSS flat (a bounded address pool), RSS per spoofed source bounded (random ones);
* thousands of parallel DICOM associations, each holding an unfinished P-DATA-TF: parser
  memory capped by the shared parser budget, drops counted, RSS flat;
* an MLLP frame without end marker: the hl7 parser rejects it at MAX_MESSAGE_LEN, counted;
  hundreds of them in parallel hit the parser budget;
* DICOM PDU length 0xFFFFFFFF: a P-DATA-TF is rejected and counted, an A-ASSOCIATE-RQ is
  never detected as DICOM;
* an IP fragment storm: fragments counted, non-first ones skipped, flows capped, RSS flat;
* VLAN stacks deeper than two: counted as malformed (``vlan: more than two tags``) at any
  depth; two tags decode.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.frames import eth, ip, ipv4, tcp, udp
from tests.fuzz.targets import _associate

T0 = 1_700_000_000.0
SERVER = ip("10.10.0.20")
MAX_FLOWS = 2000


def write_pcap(path: Path, frames: Iterable[bytes], step: float = 1e-5) -> int:
    """Stream frames into a classic pcap (µs, Ethernet); returns how many were written."""
    n = 0
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        ts_us = round(T0 * 1e6)
        for frame in frames:
            ts_us += max(1, round(step * 1e6))
            out.write(struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(frame),
                                  len(frame)))
            out.write(frame)
            n += 1
    return n


@dataclass
class Run:
    stats: dict[str, Any]
    report: dict[str, Any]
    maxrss_kb: int
    stderr: str


# A small fresh interpreter starts medtap and reports its child's peak RSS. Measured from
# pytest directly, ru_maxrss would include pytest's own RSS: Linux carries the high-water mark
# of the memory a process had before exec (vfork shares the parent's) into the child's.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
sys.stderr.write(f"\\nmaxrss_kb={usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def analyze(path: Path, *args: str) -> Run:
    """``medtap analyze`` as a grandchild process, with its own peak RSS."""
    out = path.with_suffix(".json")
    run = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "agent.cli", "analyze",
         str(path), "-f", "json", "--no-progress", "-o", str(out), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=900,
    )
    text, _, rss = run.stderr.rpartition("maxrss_kb=")
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in text, text
    report = json.loads(out.read_text())
    return Run(report["stats"], report, int(rss), text.strip())


def tcp_frame(src: bytes, dst: bytes, sport: int, dport: int, *, seq: int = 0, ack: int = 0,
              flags: int = 0x10, payload: bytes = b"") -> bytes:
    return eth(0x0800) + ipv4(src, dst, 6, tcp(sport, dport, seq=seq & 0xFFFFFFFF,
                                               ack=ack & 0xFFFFFFFF, flags=flags,
                                               payload=payload))


# --- SYN flood ------------------------------------------------------------------------------


def syn_flood(n: int, seed: int, sources: int) -> Iterator[bytes]:
    """SYNs to the DICOM port from random source ports and ``sources`` random addresses."""
    rng = random.Random(seed)
    pool = [struct.pack(">I", (10 << 24) | rng.getrandbits(24)) for _ in range(sources)]
    for _ in range(n):
        yield tcp_frame(rng.choice(pool), SERVER, rng.randrange(1024, 65536), 104,
                        seq=rng.getrandbits(32), flags=0x02)


def test_syn_flood_keeps_the_flow_table_at_its_cap(tmp_path: Path) -> None:
    runs = {}
    for n in (20_000, 80_000):
        path = tmp_path / f"syn{n}.pcap"
        write_pcap(path, syn_flood(n, seed=n, sources=256))
        runs[n] = analyze(path, "--max-flows", str(MAX_FLOWS))
    for n, run in runs.items():
        s = run.stats
        assert s["packets"] == n
        assert s["flows"] >= 0.99 * n  # every SYN a new connection (a few port repeats)
        assert s["flows_peak"] <= MAX_FLOWS
        assert s["flows_evicted"] >= s["flows"] - MAX_FLOWS  # counted, not silently lost
        assert s["parser_errors"] == {}
    growth = runs[80_000].maxrss_kb - runs[20_000].maxrss_kb
    assert growth < 16 * 1024, f"peak RSS grew {growth} KiB for 60000 more SYNs"


def test_syn_flood_from_random_addresses_is_counted_and_bounded_per_host(tmp_path: Path) -> None:
    """Spoofed random sources: every address is a host the sensor has seen, so the
    conversation and endpoint tables (and the report) grow per distinct source up to their
    caps (MAX_CONVERSATIONS, MAX_BINDINGS); the flow table stays at its cap."""
    runs = {}
    for n in (5_000, 20_000):
        path = tmp_path / f"spoof{n}.pcap"
        write_pcap(path, syn_flood(n, seed=n, sources=n))
        runs[n] = analyze(path, "--max-flows", str(MAX_FLOWS))
    for run in runs.values():
        assert run.stats["flows_peak"] <= MAX_FLOWS
        assert run.stats["flows_evicted"] >= run.stats["flows"] - MAX_FLOWS
    per_source = (runs[20_000].maxrss_kb - runs[5_000].maxrss_kb) / 15_000
    assert per_source < 12, f"{per_source:.1f} KiB of peak RSS per spoofed source"


# --- parallel DICOM associations ------------------------------------------------------------


def dicom_associations(n: int, pdata_len: int, seg: int = 1400) -> Iterator[bytes]:
    """``n`` associations at once from 50 hosts: handshake, A-ASSOCIATE-RQ/AC, a P-DATA-TF of
    ``pdata_len`` bytes sent segment by segment, round robin, never finished."""
    rq, ac = _associate(1, "1.2.840.10008.1.2"), _associate(2, "1.2.840.10008.1.2")
    # 50 modalities, many associations each: per-host state (evidence, devices) stays small
    flows = [(struct.pack(">I", (10 << 24) | (20 << 16) | i % 50), 20000 + i // 50, i * 7919,
              i * 104729) for i in range(n)]
    for c, sp, cs, _ in flows:
        yield tcp_frame(c, SERVER, sp, 104, seq=cs, flags=0x02)
    for c, sp, cs, ss in flows:
        yield tcp_frame(SERVER, c, 104, sp, seq=ss, ack=cs + 1, flags=0x12)
    for c, sp, cs, ss in flows:
        yield tcp_frame(c, SERVER, sp, 104, seq=cs + 1, ack=ss + 1, flags=0x18, payload=rq)
    for c, sp, cs, ss in flows:
        yield tcp_frame(SERVER, c, 104, sp, seq=ss + 1, ack=cs + 1 + len(rq), flags=0x18,
                        payload=ac)
    body = struct.pack(">BBIIBB", 4, 0, pdata_len, pdata_len - 4, 1, 0)
    body += bytes(pdata_len + 6 - len(body) - 100)  # all but its last 100 bytes
    for off in range(0, len(body), seg):
        for c, sp, cs, ss in flows:
            yield tcp_frame(c, SERVER, sp, 104, seq=cs + 1 + len(rq) + off,
                            ack=ss + 1 + len(ac), payload=body[off : off + seg])


@pytest.mark.slow
def test_parallel_dicom_associations_share_one_parser_budget(tmp_path: Path) -> None:
    """3000 and 6000 associations each holding 30 KB of an unfinished PDU: 90 and 180 MB of
    would-be parser buffers. The parser budget (64 MiB) caps them: the peak RSS of the
    larger flood is within per-flow bookkeeping of the smaller one."""
    runs = {}
    for n in (3000, 6000):
        path = tmp_path / f"dicom{n}.pcap"
        write_pcap(path, dicom_associations(n, 30_000))
        runs[n] = analyze(path)
        path.unlink()
    for n, run in runs.items():
        s = run.stats
        assert s["apps"] == {"dicom": n}
        # 64 MiB holds ~2230 of them; some dropped flows had given back what they held
        assert s["reassembly"]["parser_budget_exhausted"] >= n - 64 * 1024 * 1024 // 30_000 - 100
        assert s["parser_errors"] == {}
    growth = runs[6000].maxrss_kb - runs[3000].maxrss_kb
    assert growth < 40 * 1024, f"peak RSS grew {growth} KiB for 3000 more associations"


def test_thousands_of_parallel_associations_are_all_parsed(tmp_path: Path) -> None:
    """2000 associations at once, each with a small unfinished PDU: all detected and their
    association facts read; nothing dropped while the budget has room."""
    path = tmp_path / "dicom2000.pcap"
    write_pcap(path, dicom_associations(2000, 4000))
    s = analyze(path).stats
    assert s["apps"] == {"dicom": 2000}
    assert s["reassembly"]["parser_budget_exhausted"] == 0
    assert s["parser_rejects"] == {} and s["parser_errors"] == {}


# --- MLLP without end marker ----------------------------------------------------------------

MSH = b"\x0bMSH|^~\\&|MONITOR|ICU|HIS|HOSP|20240101||ORU^R01|1|P|2.6\rOBX|1|NM|"


def mllp_endless(flows: int, size: int, seg: int = 1400) -> Iterator[bytes]:
    ends = [(struct.pack(">I", (10 << 24) | (30 << 16) | i), 41000 + i, i * 1000) for i in
            range(flows)]
    for c, sp, cs in ends:
        yield tcp_frame(c, SERVER, sp, 2575, seq=cs, flags=0x02)
    body = MSH + b"9" * (size - len(MSH))
    for off in range(0, size, seg):
        for c, sp, cs in ends:
            yield tcp_frame(c, SERVER, sp, 2575, seq=cs + 1 + off, payload=body[off : off + seg])


def test_mllp_frame_without_end_marker_is_dropped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "mllp.pcap"
    write_pcap(path, mllp_endless(1, 4 * 1024 * 1024))  # 4 MB, no <FS>
    run = analyze(path)
    assert run.stats["apps"] == {"hl7": 1}
    assert run.stats["parser_rejects"] == {"hl7": 1}  # MAX_MESSAGE_LEN hit: flow's parser gone
    assert run.maxrss_kb < 200 * 1024


@pytest.mark.slow
def test_parallel_unterminated_mllp_frames_hit_the_parser_budget(tmp_path: Path) -> None:
    path = tmp_path / "mllp600.pcap"
    write_pcap(path, mllp_endless(800, 120_000))  # 96 MB held at once without the budget
    s = analyze(path).stats
    assert s["apps"] == {"hl7": 800}
    assert s["reassembly"]["parser_budget_exhausted"] > 0
    assert s["parser_errors"] == {}


# --- DICOM PDU length 0xFFFFFFFF --------------------------------------------------------------


def test_dicom_pdu_length_ffffffff(tmp_path: Path) -> None:
    rq = _associate(1, "1.2.840.10008.1.2")
    c = ip("10.40.0.5")
    huge = struct.pack(">BBI", 4, 0, 0xFFFFFFFF) + bytes(1400)
    bad_rq = struct.pack(">BBI", 1, 0, 0xFFFFFFFF) + rq[6:]
    frames = [tcp_frame(c, SERVER, 40001, 104, seq=0, flags=0x02),
              tcp_frame(c, SERVER, 40001, 104, seq=1, payload=rq),
              tcp_frame(c, SERVER, 40002, 104, seq=0, flags=0x02),
              tcp_frame(c, SERVER, 40002, 104, seq=1, payload=bad_rq)]
    seq = 1 + len(rq)
    for _ in range(2000):  # 2.8 MB after the bad header: never buffered
        frames.append(tcp_frame(c, SERVER, 40001, 104, seq=seq, payload=huge))
        seq += len(huge)
    path = tmp_path / "ffff.pcap"
    write_pcap(path, frames)
    run = analyze(path)
    assert run.stats["apps"] == {"dicom": 1}  # the RQ of length 2^32-1 is not DICOM at all
    assert run.stats["parser_rejects"] == {"dicom": 1}
    assert run.maxrss_kb < 200 * 1024


# --- IP fragment storm ----------------------------------------------------------------------


def fragment_storm(n: int, seed: int) -> Iterator[bytes]:
    """First fragments (with a UDP header) and non-first ones, random ids, offsets, ports,
    overlapping and tiny; from 256 sources."""
    rng = random.Random(seed)
    pool = [ip(f"10.60.{i // 250}.{i % 250 + 1}") for i in range(256)]
    for i in range(n):
        src = rng.choice(pool)
        kind = i % 4
        if kind == 0:  # first fragment, more to come
            data = udp(rng.randrange(1024, 65536), 514, bytes(64))
            yield eth(0x0800) + ipv4(src, SERVER, 17, data, ident=rng.getrandbits(16),
                                     flags_frag=0x2000)
        elif kind == 1:  # a later fragment, random offset
            yield eth(0x0800) + ipv4(src, SERVER, 17, bytes(rng.randrange(8, 200)),
                                     ident=rng.getrandbits(16),
                                     flags_frag=rng.choice((0x2000, 0)) | rng.randrange(1, 8191))
        elif kind == 2:  # a first fragment too small for the TCP header
            yield eth(0x0800) + ipv4(src, SERVER, 6, bytes(8), ident=rng.getrandbits(16),
                                     flags_frag=0x2000)
        else:  # overlapping tiny fragment at offset 1 (the classic teardrop shape)
            yield eth(0x0800) + ipv4(src, SERVER, 17, bytes(8), ident=rng.getrandbits(16),
                                     flags_frag=0x2001)


def test_ip_fragment_storm_is_counted_and_flat(tmp_path: Path) -> None:
    runs = {}
    for n in (20_000, 80_000):
        path = tmp_path / f"frag{n}.pcap"
        write_pcap(path, fragment_storm(n, seed=n))
        runs[n] = analyze(path, "--max-flows", str(MAX_FLOWS))
    for n, run in runs.items():
        s = run.stats
        assert s["packets"] == n
        assert s["ip_fragments"] == n
        assert s["malformed"] == {"tcp: short header": n // 4}
        assert s["non_first_fragments"] == n // 2  # kinds 1 and 3
        assert s["flows_peak"] <= MAX_FLOWS
    growth = runs[80_000].maxrss_kb - runs[20_000].maxrss_kb
    assert growth < 16 * 1024, f"peak RSS grew {growth} KiB for 60000 more fragments"


# --- VLAN tag stacks --------------------------------------------------------------------------


def test_vlan_stacks_deeper_than_two_are_counted_as_malformed(tmp_path: Path) -> None:
    """Two tags (QinQ) decode; three or more are ``vlan: more than two tags``, one count per
    frame, whatever the depth (up to a frame full of tags) and whichever TPIDs."""
    c = ip("10.70.0.5")
    frames: list[bytes] = []
    deep = 0
    tpids = (0x88A8, 0x9100, 0x8100)
    for depth in (1, 2, 3, 4, 8, 100, 370):
        for i in range(50):
            # TPID + TCI per tag (the first TPID sits where the EtherType would), then IPv4
            stack = b"".join(struct.pack(">HH", tpids[k % 3] if k else 0x88A8, 100 + k)
                             for k in range(depth))
            frame = eth(0)[:-2] + stack + b"\x08\x00" + ipv4(c, SERVER, 17, udp(5000 + i, 53))
            frames.append(frame)
            deep += depth > 2
    path = tmp_path / "vlans.pcap"
    write_pcap(path, frames)
    s = analyze(path).stats
    assert s["malformed"] == {"vlan: more than two tags": deep}
    assert s["vlans"] == [100]
    assert s["inner_vlans"] == [101]
    assert s["packets"] == len(frames)


def test_parser_budget_is_shared_counted_and_released(monkeypatch: pytest.MonkeyPatch) -> None:
    """In process, with a 2 MiB budget: 300 associations each holding 30 KB. The budget is
    never exceeded, the flows that wanted more lose their parser (counted), and every byte is
    given back when the flows end."""
    from agent import appdetect
    from agent.capture import linktypes
    from agent.pipeline import Analyzer

    monkeypatch.setattr(appdetect, "PARSER_BUDGET_BYTES", 2 * 1024 * 1024)
    analyzer = Analyzer()
    budget = analyzer.appdetect.parser_budget
    peak = 0
    frames = ((T0 + i * 1e-5, linktypes.ETHERNET, f, len(f))
              for i, f in enumerate(dicom_associations(300, 30_000)))
    for frame in frames:
        analyzer.run([frame])
        peak = max(peak, budget.used)
    assert peak <= budget.max_bytes == 2 * 1024 * 1024
    stats = analyzer.finish().stats
    assert stats["apps"] == {"dicom": 300}
    dropped = stats["reassembly"]["parser_budget_exhausted"]
    assert 300 - 2 * 1024 * 1024 // 30_000 - 5 <= dropped < 300
    assert budget.used == 0 and budget.exhausted == dropped
