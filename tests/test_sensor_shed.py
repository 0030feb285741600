"""Load shedding of ``medtap sensor`` (docs/sensor.md, "Overload"): a worker behind its ring
gives new flows no parsers until it has caught up, so the kernel drops nothing.

A real capture ring on a veth pair: the sender lives in a network namespace the test makes,
the sensor captures on the root-namespace end. The worker is made to fall behind for real:
it is stopped (SIGSTOP) while ~75% of its ring fills with new DNS flows, then
continued: both steps of shedding run. Needs root; skips with the reason otherwise.

Sizes: 300-byte frames take ~400 bytes of ring each, so 7,800 of them fill ~12 of the 16
blocks of a 4 MiB ring. The worker's first look comes after 1,024 frames (~1.5 blocks), at
~65% waiting; the 4 spare blocks leave room for blocks the kernel hands over partly filled
(its 200 ms timer) if the sender is slow.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.test_sensor_live import free_port, sensor, sensor_cmd, sh

pytestmark = [pytest.mark.live, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
TAG = f"{os.getpid() % 100000}"
FRAMES = 7_800
RING_MB = "4"

# DNS queries from FRAMES different source ports: every frame starts a flow that the DNS
# parser would take. Sent in short bursts: a veth hands frames over in the sender's context.
SENDER = """
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
n = int(sys.argv[2])
eth = bytes.fromhex("00000c9f0001" "0009fb000001" "0800")
query = bytes.fromhex("abcd01000001000000000000") + b"\\x03pump\\x04ward\\x00\\x00\\x01\\x00\\x01"
for i in range(n):
    udp = struct.pack("!HHHH", 20000 + i % 40000, 53, 8 + len(query), 0) + query
    total = 20 + len(udp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, i & 0xFFFF, 0, 64, 17, 0,
                     bytes([10, 40, i >> 8 & 0xFF, i & 0xFF]), bytes([10, 0, 0, 53]))
    s.send(eth + ip + udp + bytes(240))  # Ethernet padding: a 300-byte frame
    if i % 200 == 199:
        time.sleep(0.001)
print(n)
"""


@contextmanager
def veth_pair() -> Iterator[tuple[str, str]]:
    """(root-namespace end, namespace of the other end); removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("load shedding is tested on a real ring: needs root (netns, AF_PACKET)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' is not installed")
    ns, link = f"medtap-shed-{TAG}", f"medtap-sh-{int(TAG) % 0xFFFF:04x}"
    try:
        sh("ip", "netns", "add", ns)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot create a network namespace here: {exc}")
    try:
        sh("ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
        disable = Path(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6")
        if disable.exists():
            disable.write_text("1")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "link", "set", link, "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        yield link, ns
    finally:
        sh("ip", "link", "del", link, check=False)
        sh("ip", "netns", "del", ns, check=False)


def metric(port: int, name: str) -> int | None:
    """A counter's total, None before the sensor's first counter update."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = re.search(rf"^{name} (\d+)", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def stopped_worker_run(tmp: Path, *options: str) -> dict[str, int | None]:
    """Stop the worker, fill its ring, continue it; the sensor's counters once it is done."""
    with veth_pair() as (link, ns):
        port = free_port()
        cmd = sensor_cmd(link, "--workers", "1", "--ring-mb", RING_MB, "--spool",
                         str(tmp / "spool"), "--metrics-port", str(port),
                         "--stats-interval", "0.5", *options)
        with sensor(cmd, tmp / "sensor.log") as s:
            (worker,) = s.pids()[1:]
            os.kill(worker, signal.SIGSTOP)
            try:
                sent = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER,
                                       "eth0", str(FRAMES)], capture_output=True, text=True,
                                      timeout=120, check=False)
                assert sent.returncode == 0, sent.stderr
            finally:
                os.kill(worker, signal.SIGCONT)
            deadline = time.monotonic() + 60
            while (metric(port, "medtap_sensor_packets_total") or 0) < FRAMES:
                assert time.monotonic() < deadline, "the worker did not catch up"
                time.sleep(0.3)
            if "--no-shed" not in options:  # an episode lasts SHED_MIN_SECONDS at least
                s.wait_log(lambda r: "every new flow is parsed again" in r.get("msg", ""))
            time.sleep(1)  # one more counter update after the last frame
            counts = {name: metric(port, f"medtap_sensor_{name}_total")
                      for name in ("packets", "kernel_drops", "flows", "flows_unparsed")}
            assert s.stop() == 0
        return counts


def test_worker_behind_its_ring_sheds_parsing_not_frames(tmp_path: Path) -> None:
    counts = stopped_worker_run(tmp_path)
    assert counts["packets"] == FRAMES  # every frame captured and counted
    assert counts["kernel_drops"] == 0
    assert counts["flows"] == FRAMES  # every flow in the table, parsed or not
    # The first look (after 1,024 frames) finds two thirds of the ring waiting: new flows
    # are not parsed from there on, and the next look, still over half, stops the parsers
    # of the flows that got one before. Counted together, never more than there were.
    unparsed = counts["flows_unparsed"]
    assert unparsed is not None and 6000 < unparsed <= FRAMES
    log = (tmp_path / "sensor.log").read_text()
    assert "new flows are parsed only in part until it catches up" in log
    assert "parsing stopped on the" in log
    assert "caught up; every new flow is parsed again" in log


def test_no_shed_parses_every_flow(tmp_path: Path) -> None:
    counts = stopped_worker_run(tmp_path, "--no-shed")
    assert counts["packets"] == FRAMES and counts["kernel_drops"] == 0
    assert counts["flows_unparsed"] == 0
