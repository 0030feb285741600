"""`medtap watch` on a real veth pair: frames sent from a network namespace this test makes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Dot1Q, Ether

from tests.test_capture_live import SENDER, veth  # noqa: F401 - the fixture

CLIENT, SERVER = "10.20.0.5", "10.10.5.20"


def handshake() -> list[bytes]:
    def frame(src: str, dst: str, sport: int, dport: int, flags: str) -> bytes:
        return bytes(
            Ether(
                src="00:09:fb:00:00:01" if src == CLIENT else "00:1b:2b:00:00:02",
                dst="02:00:00:00:00:02",
            )
            / Dot1Q(vlan=20)
            / IP(src=src, dst=dst)
            / TCP(sport=sport, dport=dport, flags=flags)
        )

    return [
        frame(CLIENT, SERVER, 40000, 2575, "S"),
        frame(SERVER, CLIENT, 2575, 40000, "SA"),
        frame(CLIENT, SERVER, 40000, 2575, "A"),
    ]


def test_watch_reports_a_live_vlan_flow(veth: tuple[str, str, str]) -> None:  # noqa: F811
    ns, host_if, ns_if = veth
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "watch",
            "-i",
            host_if,
            "--duration",
            "6",
            "--bpf",
            "tcp port 2575",
            "-f",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)  # interpreter start-up and socket open
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-c",
            SENDER,
            ns_if,
            *(f.hex() for f in handshake()),
        ],
        check=True,
        timeout=30,
    )
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    report = json.loads(out)
    flows = {
        (f["client"], f["server"], f["server_port"], f["vlan"]) for f in report["flows"]["items"]
    }
    assert flows == {(CLIENT, SERVER, 2575, 20)}
    assert report["stats"]["capture"]["received"] >= 3
    assert report["stats"]["capture"]["dropped"] == 0
