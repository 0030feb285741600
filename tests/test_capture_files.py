"""Offline capture readers: pcap (µs/ns, LE/BE), pcapng (sections, interfaces, tsresol,
EPB/SPB/OPB, skipped blocks), gzip, bad inputs, truncation, fuzz, and tshark as reference."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.capture import CaptureError, RawFrame
from agent.capture import linktypes as lt
from agent.capture.files import open_capture
from agent.capture.pcapng import PcapngSource
from tests.capture_fixtures import (
    ng_custom,
    ng_epb,
    ng_idb,
    ng_isb,
    ng_nrb,
    ng_opb,
    ng_shb,
    ng_spb,
    pcap_bytes,
)

REPO = Path(__file__).resolve().parents[1]
LINKTYPES = REPO / "pcaps" / "linktypes"
PUBLIC = Path(__file__).resolve().parents[1].parent / "shared" / "pcaps" / "public"
TSHARK = shutil.which("tshark")

T0 = 1_700_000_000.0
FRAMES = [(T0 + i * 0.25 + 0.000001 * i, bytes([i]) * (20 + i)) for i in range(6)]


def read_all(path: Path) -> tuple[list[RawFrame], list[str]]:
    src = open_capture(path)
    frames = list(src.frames())
    return frames, src.warnings


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# --- classic pcap ---------------------------------------------------------------------------

@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_variants(tmp_path: Path, nanosecond: bool, big_endian: bool) -> None:
    p = write(tmp_path, "x.pcap", pcap_bytes(lt.ETHERNET, FRAMES, nanosecond=nanosecond,
                                              big_endian=big_endian,
                                              wirelens=[100 + i for i in range(6)]))
    src = open_capture(p)
    assert src.size == p.stat().st_size
    frames = list(src.frames())
    assert [f[2] for f in frames] == [d for _, d in FRAMES]
    assert [f[3] for f in frames] == [100 + i for i in range(6)]
    assert all(f[1] == lt.ETHERNET for f in frames)
    for (ts, _), f in zip(FRAMES, frames, strict=True):
        assert f[0] == pytest.approx(ts, abs=1e-6)
    assert src.warnings == []
    assert src.bytes_read == src.size


def test_pcap_large_file_spans_chunks(tmp_path: Path) -> None:
    frames = [(T0 + i, os.urandom(1) * (1 + (i * 7919) % 1500)) for i in range(2000)]
    frames.append((T0 + 3000, b"\xab" * 200_000))  # bigger than one read chunk
    p = write(tmp_path, "big.pcap", pcap_bytes(1, frames, snaplen=262144))
    got, warnings = read_all(p)
    assert [g[2] for g in got] == [d for _, d in frames]
    assert warnings == []


def test_unsupported_linktype(tmp_path: Path) -> None:
    p = write(tmp_path, "x.pcap", pcap_bytes(147, FRAMES))
    with pytest.raises(CaptureError, match=r"unsupported link type 147"):
        open_capture(p)


def test_truncated_global_header(tmp_path: Path) -> None:
    p = write(tmp_path, "x.pcap", pcap_bytes(1, FRAMES)[:10])
    with pytest.raises(CaptureError, match=r"truncated pcap header: 10 of 24 bytes"):
        open_capture(p)


def test_truncated_last_record_keeps_frames(tmp_path: Path) -> None:
    data = pcap_bytes(1, FRAMES)
    cut = len(data) - 5
    p = write(tmp_path, "x.pcap", data[:cut])
    frames, warnings = read_all(p)
    assert len(frames) == len(FRAMES) - 1
    start = cut - (16 + len(FRAMES[-1][1]) - 5)
    assert warnings == [
        f"truncated record at byte {start}: {16 + len(FRAMES[-1][1]) - 5} of "
        f"{16 + len(FRAMES[-1][1])} bytes"
    ]


def test_truncated_record_header(tmp_path: Path) -> None:
    data = pcap_bytes(1, FRAMES)
    p = write(tmp_path, "x.pcap", data + b"\x00" * 7)
    frames, warnings = read_all(p)
    assert len(frames) == len(FRAMES)
    assert warnings == [f"truncated record header at byte {len(data)}: 7 of 16 bytes"]


def test_corrupt_record_header_mid_file(tmp_path: Path) -> None:
    data = pcap_bytes(1, FRAMES[:3])
    bad = struct.pack("<IIII", 1, 2, 0x7FFFFFFF, 60)
    p = write(tmp_path, "x.pcap", data + bad + pcap_bytes(1, FRAMES[3:])[24:])
    frames, warnings = read_all(p)
    assert len(frames) == 3
    assert len(warnings) == 1
    assert warnings[0].startswith(f"corrupt record header at byte {len(data)}: caplen 2147483647")


def test_corrupt_first_record_is_error(tmp_path: Path) -> None:
    data = pcap_bytes(1, []) + struct.pack("<IIII", 1, 2, 0x7FFFFFFF, 60) + b"x" * 100
    p = write(tmp_path, "x.pcap", data)
    with pytest.raises(CaptureError, match="corrupt record header at byte 24"):
        list(open_capture(p).frames())


def test_header_only_pcap_is_empty(tmp_path: Path) -> None:
    frames, warnings = read_all(write(tmp_path, "x.pcap", pcap_bytes(1, [])))
    assert frames == [] and warnings == []


# --- bad inputs -----------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"nope\.pcap: no such file"):
        open_capture(tmp_path / "nope.pcap")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="is a directory"):
        open_capture(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"empty file \(0 bytes\)"):
        open_capture(write(tmp_path, "x.pcap", b""))


def test_not_a_capture(tmp_path: Path) -> None:
    p = write(tmp_path, "x.pcap", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(CaptureError, match=r"not a pcap or pcapng file \(starts with 'GET / HT'\)"):
        open_capture(p)
    p = write(tmp_path, "y.pcap", b"\x00\x01\x02\x03\x04\x05\x06\x07\x08")
    with pytest.raises(CaptureError, match=r"starts with 00 01 02 03 04 05 06 07\)"):
        open_capture(p)
    p = write(tmp_path, "z.pcap", b"PK\x03\x04rest")
    with pytest.raises(CaptureError, match="zip archive"):
        open_capture(p)


def test_gzip_of_text_is_not_a_capture(tmp_path: Path) -> None:
    p = write(tmp_path, "x.pcap.gz", gzip.compress(b"hello world"))
    with pytest.raises(CaptureError, match=r"gzip-compressed starts with 'hello wo'"):
        open_capture(p)


def test_gzip_cut_short(tmp_path: Path) -> None:
    p = write(tmp_path, "x.gz", gzip.compress(b"x" * 10)[:6])
    with pytest.raises(CaptureError, match="gzip"):
        open_capture(p)


def test_permission_denied(tmp_path: Path) -> None:
    p = write(tmp_path, "x.pcap", pcap_bytes(1, FRAMES))
    p.chmod(0)
    tmp_path.chmod(0o755)
    code = (
        "import sys\nfrom agent.capture import CaptureError\n"
        "from agent.capture.files import open_capture\n"
        "try:\n    open_capture(sys.argv[1])\nexcept CaptureError as e:\n    print(e)\n"
    )
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("no 'nobody' user to drop root to")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        out = subprocess.run(["python3", "-c", code, str(p)], user="nobody", env=env,
                             capture_output=True, text=True, check=False, cwd="/")
        assert "permission denied" in out.stdout, out.stderr
    else:
        with pytest.raises(CaptureError, match="permission denied"):
            open_capture(p)


# --- gzip -----------------------------------------------------------------------------------

def test_gzip_pcap_and_progress(tmp_path: Path) -> None:
    frames = [(T0 + i, os.urandom(600)) for i in range(3000)]  # incompressible, > 1 chunk
    raw = pcap_bytes(1, frames)
    p = write(tmp_path, "noext", gzip.compress(raw))
    src = open_capture(p)
    seen = []
    for _f in src.frames():
        seen.append(src.bytes_read)
    assert len(seen) == 3000
    assert src.bytes_read == p.stat().st_size
    assert seen[0] < src.size  # type: ignore[operator]
    assert seen == sorted(seen)


def test_gzip_truncated_keeps_frames(tmp_path: Path) -> None:
    raw = pcap_bytes(1, [(T0 + i, bytes([i % 256]) * 300) for i in range(500)])
    comp = gzip.compress(raw, compresslevel=1)
    p = write(tmp_path, "x.pcap.gz", comp[: len(comp) * 2 // 3])
    frames, warnings = read_all(p)
    assert 0 < len(frames) < 500
    assert any("compressed stream ends early" in w for w in warnings)


# --- pcapng ---------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_sections_interfaces_tsresol(tmp_path: Path, order: str) -> None:
    o = order
    data = b"".join([
        ng_shb(o),
        ng_idb(lt.ETHERNET, o),
        ng_nrb(o),
        ng_idb(lt.LINUX_SLL, o, tsresol=9),
        ng_idb(lt.RAW, o, tsresol=0x80 | 20, tsoffset=100),  # 2^-20 s ticks, +100 s
        ng_epb(0, T0, b"eth-frame", o, comment="c"),
        ng_epb(1, T0 + 0.5, b"sll-frame", o, tsresol=9),
        ng_epb(2, T0 + 0.75, b"raw-frame", o, tsresol=0x80 | 20, tsoffset=100, wirelen=999),
        ng_custom(o),
        ng_isb(0, o),
        # second section, other byte order: interfaces reset
        ng_shb(">" if o == "<" else "<"),
        ng_idb(lt.IPV4, ">" if o == "<" else "<", snaplen=4),
        ng_spb(b"spb-frame", ">" if o == "<" else "<"),
        ng_opb(0, T0 + 2, b"opb-frame", ">" if o == "<" else "<"),
    ])
    p = write(tmp_path, "x.pcapng", data)
    frames, warnings = read_all(p)
    assert warnings == []
    assert [(f[1], f[2]) for f in frames] == [
        (lt.ETHERNET, b"eth-frame"), (lt.LINUX_SLL, b"sll-frame"), (lt.RAW, b"raw-frame"),
        (lt.IPV4, b"spb-"),  # SPB: caplen = min(wirelen, snaplen of interface 0)
        (lt.IPV4, b"opb-frame"),
    ]
    assert frames[0][0] == pytest.approx(T0, abs=1e-6)
    assert frames[1][0] == pytest.approx(T0 + 0.5, abs=1e-6)
    assert frames[2][0] == pytest.approx(T0 + 0.75, abs=1e-5)
    assert frames[2][3] == 999
    assert frames[3][0] == frames[2][0]  # SPB: previous frame's timestamp
    assert frames[3][3] == 9
    assert frames[4][0] == pytest.approx(T0 + 2, abs=1e-6)


def test_pcapng_spb_first_gets_zero(tmp_path: Path) -> None:
    p = write(tmp_path, "x.pcapng", ng_shb() + ng_idb(1) + ng_spb(b"abcdef"))
    frames, _ = read_all(p)
    assert frames == [(0.0, 1, b"abcdef", 6)]


def test_pcapng_absurd_block_length(tmp_path: Path) -> None:
    head = ng_shb() + ng_idb(1)
    bad = struct.pack("<II", 6, 0x7FFFFFF0) + b"\x00" * 64
    with pytest.raises(CaptureError, match=r"corrupt block at byte \d+: type 0x6, length"):
        read_all(write(tmp_path, "a.pcapng", head + bad))
    # after good frames: kept, with a warning
    good = head + ng_epb(0, T0, b"frame")
    frames, warnings = read_all(write(tmp_path, "b.pcapng", good + bad))
    assert len(frames) == 1
    assert warnings and warnings[0].startswith(f"corrupt block at byte {len(good)}")


def test_pcapng_truncated_last_block(tmp_path: Path) -> None:
    good = ng_shb() + ng_idb(1) + ng_epb(0, T0, b"a" * 40)
    last = ng_epb(0, T0 + 1, b"b" * 40)
    frames, warnings = read_all(write(tmp_path, "x.pcapng", good + last[:30]))
    assert len(frames) == 1
    assert warnings == [f"truncated record at byte {len(good)}: 30 of {len(last)} bytes"]


def test_pcapng_unsupported_linktype(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="unsupported link type 147"):
        open_capture(write(tmp_path, "x.pcapng", ng_shb() + ng_idb(147) + ng_epb(0, T0, b"x")))
    # one supported interface among others: frames of the other one skipped with a warning
    data = ng_shb() + ng_idb(1) + ng_idb(147) + ng_epb(0, T0, b"x") + ng_epb(1, T0, b"y")
    frames, warnings = read_all(write(tmp_path, "y.pcapng", data))
    assert [f[2] for f in frames] == [b"x"]
    assert warnings == ["interface 1: unsupported link type 147 (medtap reads link types "
                        "0, 1, 12, 14, 101, 108, 113, 228, 229, 276); its frames are skipped"]


def test_pcapng_bad_interface_id(tmp_path: Path) -> None:
    data = ng_shb() + ng_idb(1) + ng_epb(3, T0, b"x")
    with pytest.raises(CaptureError, match="names interface 3, section has 1"):
        read_all(write(tmp_path, "x.pcapng", data))


def test_pcapng_truncated_shb(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="truncated pcapng section header"):
        open_capture(write(tmp_path, "x.pcapng", ng_shb()[:20]))


def test_pcapng_source_type(tmp_path: Path) -> None:
    src = open_capture(write(tmp_path, "x", gzip.compress(ng_shb() + ng_idb(1))))
    assert isinstance(src, PcapngSource)
    assert list(src.frames()) == []


# --- fuzz: arbitrary bytes after a valid header ---------------------------------------------

FUZZ_SETTINGS = settings(max_examples=300, deadline=2000,
                         suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ_SETTINGS
@given(tail=st.binary(max_size=600), nanosecond=st.booleans(), big=st.booleans())
def test_fuzz_pcap_tail(tmp_path: Path, tail: bytes, nanosecond: bool, big: bool) -> None:
    p = write(tmp_path, "f.pcap", pcap_bytes(1, FRAMES[:2], nanosecond=nanosecond,
                                              big_endian=big) + tail)
    try:
        src = open_capture(p)
        for _ in src.frames():
            pass
    except CaptureError:
        pass


@FUZZ_SETTINGS
@given(tail=st.binary(max_size=600), big=st.booleans(), gz=st.booleans())
def test_fuzz_pcapng_tail(tmp_path: Path, tail: bytes, big: bool, gz: bool) -> None:
    o = ">" if big else "<"
    data = ng_shb(o) + ng_idb(1, o) + ng_epb(0, T0, b"abc", o) + tail
    p = write(tmp_path, "f.pcapng", gzip.compress(data) if gz else data)
    try:
        src = open_capture(p)
        for _ in src.frames():
            pass
    except CaptureError:
        pass


@FUZZ_SETTINGS
@given(blocks=st.lists(st.tuples(st.sampled_from([1, 2, 3, 5, 6, 0x0A0D0D0A, 99]),
                                 st.binary(max_size=60)), max_size=8))
def test_fuzz_pcapng_wellformed_blocks_with_garbage_bodies(
    tmp_path: Path, blocks: list[tuple[int, bytes]]
) -> None:
    data = ng_shb() + ng_idb(1)
    for btype, body in blocks:
        body = body + b"\x00" * (-len(body) % 4)
        data += struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    try:
        src = open_capture(write(tmp_path, "f.pcapng", data))
        for _ in src.frames():
            pass
    except CaptureError:
        pass


# --- committed link-type captures vs their truth and tshark ---------------------------------

LT_FILES = sorted(p for p in LINKTYPES.glob("*") if p.suffix in (".pcap", ".pcapng", ".gz"))


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    assert TSHARK
    args = [TSHARK, "-r", str(path), "-T", "fields"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def test_linktype_captures_exist() -> None:
    assert len(LT_FILES) >= 16
    for p in LT_FILES:
        assert p.stat().st_size < 20_000


@pytest.mark.parametrize("path", LT_FILES, ids=lambda p: p.name)
def test_linktype_capture_matches_truth(path: Path) -> None:
    truth = json.loads(path.with_name(path.name + ".truth.json").read_text())
    frames, warnings = read_all(path)
    assert len(frames) == truth["packets"]
    assert {f[1] for f in frames} == set(truth["linktypes"])
    assert frames[0][1] == truth["linktype"]
    if path.name == "truncated.pcap":
        assert warnings and warnings[0].startswith(f"truncated record at byte "
                                                   f"{truth['truncated_at']}:")
    else:
        assert warnings == []


@pytest.mark.tshark
@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
@pytest.mark.parametrize("path", LT_FILES, ids=lambda p: p.name)
def test_linktype_capture_matches_tshark(path: Path) -> None:
    frames, _ = read_all(path)
    rows = tshark_fields(path, "frame.time_epoch", "frame.len", "frame.cap_len")
    rows = [r for r in rows if r[0]]  # tshark 4.0 lists a pcapng custom block as a frame
    assert len(rows) == len(frames)
    for (ts, wirelen, caplen), f in zip(rows, frames, strict=True):
        assert float(ts) == pytest.approx(f[0], abs=1e-6)
        assert int(wirelen) == f[3]
        assert int(caplen) == len(f[2])


# --- public captures ------------------------------------------------------------------------

PUBLIC_FILES = sorted(PUBLIC.glob("*.pcap*")) if PUBLIC.is_dir() else []


@pytest.mark.tshark
@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_public_captures_frame_count() -> None:
    if not PUBLIC.is_dir():
        pytest.skip(f"{PUBLIC} not present")
    assert PUBLIC_FILES
    for path in PUBLIC_FILES:
        frames, warnings = read_all(path)
        expected = len(tshark_fields(path, "frame.number"))
        assert len(frames) == expected, (path.name, warnings)
        rows = tshark_fields(path, "frame.time_epoch", "frame.len")
        for (ts, wirelen), f in zip(rows, frames, strict=True):
            assert float(ts) == pytest.approx(f[0], abs=1e-6), path.name
            assert int(wirelen) == f[3], path.name
