"""Passive SYN fingerprints: option walker, TTL rounding, the signature table, the crafted
capture through `medtap analyze`, the public captures, and tshark's view of the same SYNs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import tcp_fingerprint as tf
from parsers.base import TcpSyn
from parsers.registry import default_registry

HERE = Path(__file__).resolve().parents[1] / "pcaps" / "banners"
PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "public"

# Windows 10 SYN options, FoxIO JA4T.md example 64240_2-1-3-1-1-4_1460_8:
WIN10 = bytes.fromhex(
    "020405b4"  # MSS 1460
    "01"  # NOP
    "030308"  # window scale 8
    "0101"  # NOP NOP
    "0402"  # SACK permitted
)
# macOS, JA4T 65535_2-1-3-1-1-8-4-0-0_1460_6 (p0f: mss,nop,ws,nop,nop,ts,sok,eol+1):
MACOS = bytes.fromhex(
    "020405b4" "01" "030306" "0101"
    "080a00017b4e00000000"  # timestamps TSval 97102, TSecr 0
    "0402"  # SACK permitted
    "0000"  # EOL + one padding byte
)
# Linux (p0f 3: mss,sok,ts,nop,ws), window 29200 = 20 * 1460:
LINUX = bytes.fromhex("020405b4" "0402" "080a0001e24000000000" "01" "030307")


def syn(options: bytes, ttl: int = 64, window: int = 64240, version: int = 4) -> TcpSyn:
    return TcpSyn("10.1.2.3", 443, version, ttl, window, options, 1.0)


def facts(s: TcpSyn) -> dict[str, str]:
    return {o.kind: o.value for o in tf.observe(s)}


def test_registered_as_syn_observer() -> None:
    assert any(s.name == "tcp_syn" for s in default_registry().syn_specs)


@pytest.mark.parametrize(
    ("ttl", "expected"), [(1, 32), (32, 32), (33, 64), (64, 64), (65, 128), (128, 128),
                          (129, 255), (255, 255)]
)
def test_initial_ttl(ttl: int, expected: int) -> None:
    assert tf.initial_ttl(ttl) == expected


def test_windows10_matches_ja4t_example() -> None:
    got = facts(syn(WIN10, ttl=121, window=64240))
    assert got["tcp.ja4t"] == "64240_2-1-3-1-1-4_1460_8"
    assert got["tcp.syn_signature"] == "4:128:1460:mss*44,8:mss,nop,ws,nop,nop,sok"
    assert got["tcp.os_family"] == "Windows"
    assert got["tcp.os_label"] == "Windows 10"


def test_macos_eol_padding() -> None:
    got = facts(syn(MACOS, ttl=60, window=65535))
    assert got["tcp.ja4t"] == "65535_2-1-3-1-1-8-4-0-0_1460_6"
    assert got["tcp.syn_signature"].endswith(":mss,nop,ws,nop,nop,ts,sok,eol+1")
    assert got["tcp.os_family"] == "macOS/iOS"


def test_linux_mss_multiple() -> None:
    got = facts(syn(LINUX, ttl=64, window=29200))
    assert got["tcp.syn_signature"] == "4:64:1460:mss*20,7:mss,sok,ts,nop,ws"
    assert got["tcp.os_family"] == "Linux"


def test_ttl_decides_between_families() -> None:
    """The Linux layout with a Windows-like TTL is not Linux (p0f keys on the initial TTL)."""
    assert "tcp.os_family" not in facts(syn(LINUX, ttl=120, window=29200))


def test_ipv6_mtu_multiple() -> None:
    row = tf.SynRow("t", "T", "s", 64, ("*",), ("mtu*4",), ("*",), ("mss",), 0.3)
    v4 = tf.shape_of(syn(bytes.fromhex("020405a0"), window=4 * (1440 + 40)))
    v6 = tf.shape_of(syn(bytes.fromhex("020405a0"), window=4 * (1440 + 60), version=6))
    assert row.matches(v4) and row.matches(v6)


def test_no_options_and_unknown_stack() -> None:
    got = facts(syn(b"", ttl=200, window=4321))
    assert got == {"tcp.syn_signature": "4:255:*:4321,0:none", "tcp.ja4t": "4321_00_00_00"}


@pytest.mark.parametrize(
    "options",
    [b"\x02", b"\x02\x09\x05\xb4", b"\x03\x01", b"\x08\x0a\x00", b"\x02\x00\x05\xb4"],
)
def test_broken_options_are_marked_not_classified(options: bytes) -> None:
    got = facts(syn(options, ttl=64, window=1024))
    assert got["tcp.syn_signature"].endswith(",bad")
    assert "tcp.os_family" not in got


def test_every_row_has_a_source_and_parses() -> None:
    rows = tf.signatures()
    assert len(rows) >= 30
    families = {r.os_family for r in rows}
    assert {"Windows", "Linux", "macOS/iOS", "Windows CE", "QNX"} <= families
    assert all(0 < r.confidence <= 0.3 for r in rows)  # a SYN never says much
    specific_seen_after_generic = False
    generic = False
    for r in rows:
        generic = generic or r.specificity == "g"
        specific_seen_after_generic |= generic and r.specificity == "s"
    assert not specific_seen_after_generic  # catch-alls last: first match wins


def test_cache_gives_same_answer() -> None:
    first = facts(syn(WIN10, ttl=128))
    assert facts(syn(WIN10, ttl=125)) == first  # same initial TTL: same cached template


@settings(max_examples=400, deadline=None)
@given(
    options=st.binary(max_size=60),
    ttl=st.integers(0, 255),
    window=st.integers(0, 65535),
    version=st.sampled_from([4, 6]),
)
def test_arbitrary_syns_never_raise(options: bytes, ttl: int, window: int, version: int) -> None:
    out = tf.observe(TcpSyn("10.0.0.1", 80, version, ttl, window, options, 0.0))
    kinds = [o.kind for o in out]
    assert kinds[:2] == ["tcp.syn_signature", "tcp.ja4t"]
    assert all(o.host == "10.0.0.1" and o.port is None and o.confidence <= 0.3 for o in out)


# --- the crafted capture through the real pipeline -------------------------------------------
def analyze(path: Path) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run(
        ["medtap", "analyze", str(path), "--format", "json", "--no-progress"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def evidence_by_ip(report: dict) -> dict[str, set[tuple[str, str]]]:  # type: ignore[type-arg]
    out: dict[str, set[tuple[str, str]]] = {}
    for dev in report["devices"]:
        for ip in dev["ips"]:
            out.setdefault(ip, set()).update((e["kind"], e["value"]) for e in dev["evidence"])
    return out


needs_cli = pytest.mark.skipif(shutil.which("medtap") is None, reason="medtap CLI not installed")


@needs_cli
def test_crafted_syns_through_medtap_analyze() -> None:
    truth = json.loads((HERE / "tcp_syn_os.truth.json").read_text("utf-8"))
    report = analyze(HERE / "tcp_syn_os.pcap")
    got = evidence_by_ip(report)
    for want in truth["observations"]:
        assert (want["kind"], want["value"]) in got[want["host"]], want
    for ip in truth["no_os_family"]:
        assert not any(kind == "tcp.os_family" for kind, _ in got.get(ip, set())), ip
    macs = {d["mac"] for d in report["devices"]}
    assert {d["mac"] for d in truth["devices"]} <= macs


# --- public captures --------------------------------------------------------------------------
needs_public = pytest.mark.skipif(not PUBLIC.is_dir(), reason="public captures not present")


@needs_public
@needs_cli
def test_public_macos_and_linux_syns() -> None:
    """nDPI's mongodb capture: 10.10.10.x clients send macOS SYNs (65535, ws 5,
    mss,nop,ws,nop,nop,ts,sok,eol+1, TTL 58-63); the AJP capture's client a Linux SYN."""
    got = evidence_by_ip(analyze(PUBLIC / "ndpi__mongodb_multivlan.pcap"))
    for ip in ("10.10.10.10", "10.10.10.12", "10.10.10.14", "10.10.10.16"):
        assert ("tcp.os_family", "macOS/iOS") in got[ip], ip
    got = evidence_by_ip(analyze(PUBLIC / "ndpi__ajp_vlan7.pcap"))
    assert ("tcp.os_family", "Linux") in got["172.29.9.146"]


# --- tshark sees the same SYN fields -------------------------------------------------------------
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_agrees_on_syn_fields() -> None:
    proc = subprocess.run(
        ["tshark", "-r", str(HERE / "tcp_syn_os.pcap"), "-Y",
         "tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "fields", "-e", "ip.src", "-e",
         "ipv6.src", "-e", "tcp.window_size_value", "-e", "tcp.options.mss_val", "-e",
         "tcp.options.wscale.shift"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    truth = json.loads((HERE / "tcp_syn_os.truth.json").read_text("utf-8"))
    ja4t = {o["host"]: o["value"] for o in truth["observations"] if o["kind"] == "tcp.ja4t"}
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert len(rows) == 9
    for ip4, ip6, window, mss, scale in rows:
        host = ip4 or ip6
        if host in ja4t:
            want_window, _, want_mss, want_scale = ja4t[host].split("_")
            assert (window, mss, scale or "00") == (want_window, want_mss, want_scale)
