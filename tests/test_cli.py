"""`medtap analyze` end to end, as a user runs it: real files, real process, real exit codes."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PUBLIC = REPO.parent / "shared" / "pcaps" / "public"
DEVICE_KEYS = {
    "id",
    "mac",
    "ips",
    "vlans",
    "hostnames",
    "category",
    "device_type",
    "vendor",
    "model",
    "software_version",
    "confidence",
    "evidence",
    "first_seen",
    "last_seen",
}
STATS_KEYS = {"packets", "bytes", "flows", "malformed", "elapsed_seconds"}


def medtap(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def pcap_bytes(frames: list[bytes], linktype: int = 1) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i, frame in enumerate(frames):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame
    return out


def tcp_frame(
    src: str, dst: str, sport: int, dport: int, flags: str, vlan: int | None = None
) -> bytes:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Dot1Q, Ether

    l2 = Ether(src="00:09:fb:00:00:01", dst="00:1b:2b:00:00:02")
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan)
    return bytes(l2 / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags))


@pytest.fixture
def small_pcap(tmp_path: Path) -> Path:
    frames = [
        tcp_frame("10.20.0.5", "10.10.5.20", 40000, 2575, "S", vlan=20),
        tcp_frame("10.10.5.20", "10.20.0.5", 2575, 40000, "SA", vlan=20),
        tcp_frame("10.20.0.5", "10.10.5.20", 40000, 2575, "A", vlan=20),
    ]
    path = tmp_path / "small.pcap"
    path.write_bytes(pcap_bytes(frames))
    return path


def test_json_report_contract(small_pcap: Path) -> None:
    run = medtap("analyze", small_pcap, "--format", "json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert {"devices", "groups", "flows", "violations", "stats"} <= report.keys()
    assert report["stats"].keys() >= STATS_KEYS
    assert report["stats"]["packets"] == 3
    assert report["stats"]["flows"] == 1
    for device in report["devices"]:
        assert device.keys() >= DEVICE_KEYS
        assert device["device_type"] == "unknown"
    by_ip = {ip: d for d in report["devices"] for ip in d["ips"]}
    assert by_ip["10.20.0.5"]["mac"] == "00:09:fb:00:00:01"
    assert by_ip["10.20.0.5"]["vlans"] == [20]
    assert "Philips" in by_ip["10.20.0.5"]["oui_vendor"]
    (flow,) = report["flows"]["items"]
    assert (flow["client"], flow["server"], flow["server_port"], flow["vlan"]) == (
        "10.20.0.5",
        "10.10.5.20",
        2575,
        20,
    )
    assert flow["packets_to_server"] == 2 and flow["packets_to_client"] == 1


def test_csv_and_table_formats(small_pcap: Path, tmp_path: Path) -> None:
    out = tmp_path / "devices.csv"
    run = medtap("analyze", small_pcap, "--format", "csv", "--output", out)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["ips"] for r in rows} == {"10.20.0.5", "10.10.5.20"}
    table = medtap("analyze", small_pcap)
    assert table.returncode == 0
    assert (
        "Inventory" in table.stdout
        and "unidentified device" in table.stdout
        and "3 packets" in table.stdout
    )


def test_gzip_and_several_files_in_one_run(small_pcap: Path, tmp_path: Path) -> None:
    gz = tmp_path / "again.pcap.gz"
    gz.write_bytes(gzip.compress(small_pcap.read_bytes()))
    report = json.loads(medtap("analyze", small_pcap, gz, "--format", "json").stdout)
    assert [i["packets"] for i in report["inputs"]] == [3, 3]
    assert report["stats"]["packets"] == 6


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.pcap", None, "no such file"),
        ("empty.pcap", b"", "empty file"),
        ("notes.txt", b"GET / HTTP/1.1\r\n", "not a pcap or pcapng file"),
        ("header.pcap", b"\xd4\xc3\xb2\xa1\x02\x00", "truncated"),
        ("user0.pcap", pcap_bytes([], linktype=147), "link type 147"),
    ],
)
def test_bad_input_gives_one_line_error(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    run = medtap("analyze", path)
    assert run.returncode == 1
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) <= 2


def test_directory_is_refused(tmp_path: Path) -> None:
    run = medtap("analyze", tmp_path)
    assert run.returncode == 1 and "is a directory" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(small_pcap: Path) -> None:
    small_pcap.chmod(0)
    run = medtap("analyze", small_pcap)
    assert run.returncode == 1 and "permission denied" in run.stderr


def test_truncated_last_record_keeps_the_rest(small_pcap: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(small_pcap.read_bytes()[:-10])
    run = medtap("analyze", cut, "--format", "json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["stats"]["packets"] == 2
    assert any("truncated" in w for w in report["inputs"][0]["warnings"])


def test_one_bad_file_does_not_stop_the_others(small_pcap: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    run = medtap("analyze", bad, small_pcap, "--format", "json")
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert [i["status"] for i in report["inputs"]] == ["failed", "ok"]
    assert report["stats"]["packets"] == 3
    assert "1 of 2 inputs failed" in run.stderr


@pytest.mark.skipif(not PUBLIC.is_dir(), reason="shared public captures not present")
def test_public_hl7_capture_on_port_6661() -> None:
    report = json.loads(medtap("analyze", PUBLIC / "ndpi__hl7.pcap", "--format", "json").stdout)
    assert report["stats"]["packets"] == 9
    (flow,) = report["flows"]["items"]
    assert (flow["client"], flow["server"], flow["server_port"]) == (
        "10.0.0.155",
        "10.0.0.126",
        6661,
    )
    assert "MOUSE" not in json.dumps(report)  # the PID segment's canary


@pytest.mark.skipif(not PUBLIC.is_dir(), reason="shared public captures not present")
def test_public_qinq_keeps_both_tags() -> None:
    report = json.loads(
        medtap("analyze", PUBLIC / "ndpi__dns_mixed_qinq.pcap", "--format", "json").stdout
    )
    pairs = {(f["vlan"], f["inner_vlan"]) for f in report["flows"]["items"]}
    assert any(inner is not None for _, inner in pairs)
