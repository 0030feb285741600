"""Every input the fuzzers ever crashed on, and every seed, replayed through its target.

``tests/fuzz/regressions/<target>/`` holds the crash inputs (``python -m tests.fuzz promote``),
``tests/fuzz/corpus/<target>/`` the seeds made from ``pcaps/``. Each must pass its target in
process, with all of the target's invariants (docs/security-fuzzing.md lists what each
regression was). Below that: the bugs the fuzzers found, as plain unit tests, and proof that
each invariant the targets check can fail (a harness that cannot fail finds nothing).
"""

from __future__ import annotations

import gzip
import random
import struct
import subprocess
import sys
import traceback
import zlib
from pathlib import Path

import pytest

from agent.capture import CaptureError
from agent.capture.files import open_capture
from parsers.base import Direction, Observation
from parsers.http import probe as http_probe
from parsers.registry import Probe
from tests.capture_fixtures import pcap_bytes
from tests.fuzz import formats, invariants
from tests.fuzz import targets as fuzz_targets
from tests.fuzz.__main__ import CORPUS, REGRESSIONS
from tests.fuzz.targets import TARGETS, capture_file

TS, TC = Direction.TO_SERVER, Direction.TO_CLIENT


def _inputs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.is_file() and not p.name.endswith(".md"))


@pytest.mark.parametrize("name", list(TARGETS))
def test_seeds_and_regressions_pass_their_target(name: str) -> None:
    failures = []
    for path in _inputs(CORPUS / name) + _inputs(REGRESSIONS / name):
        try:
            TARGETS[name].fn(path.read_bytes())
        except Exception:  # noqa: BLE001 - report every failing input at once
            failures.append(f"{path.relative_to(REGRESSIONS.parent)}\n{traceback.format_exc()}")
    assert not failures, "\n".join(failures)


def test_every_target_has_seeds_and_every_regression_a_target() -> None:
    for name in TARGETS:
        assert _inputs(CORPUS / name), f"no seed corpus for {name}: python -m tests.fuzz corpus"
    for folder in (p for p in REGRESSIONS.iterdir() if p.is_dir()):
        assert folder.name in TARGETS, f"regressions for unknown target {folder.name}"
    corpus_bytes = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert corpus_bytes < 2 * 1024 * 1024, corpus_bytes


# --- the bugs, as unit tests ------------------------------------------------------------------


def _damaged_gzips() -> list[bytes]:
    """Gzip-compressed captures whose deflate data is damaged at various places: the inflater
    raises ``zlib.error`` (not an OSError or ValueError) on some of them."""
    rng = random.Random(7)
    frames = [(1_700_000_000.0 + i, bytes(rng.randrange(256) for _ in range(60)))
              for i in range(400)]
    packed = gzip.compress(pcap_bytes(1, frames), mtime=0)
    out = []
    for at in range(20, len(packed) - 20, max(1, len(packed) // 60)):
        damaged = bytearray(packed)
        damaged[at] ^= 0x5A
        damaged[at + 1] ^= 0xA5
        out.append(bytes(damaged))
    return out


def test_damaged_gzip_is_a_capture_error_not_a_crash(tmp_path: Path) -> None:
    """Found by the ``capture`` target (regressions/capture/9feba1977a0a6e4b): ``zlib.error``
    from a damaged deflate stream escaped ``open_capture`` and the record walkers, because
    it is neither OSError nor ValueError; ``medtap analyze`` died with a traceback."""
    zlib_errors = 0
    for i, data in enumerate(_damaged_gzips()):
        path = tmp_path / f"d{i}.pcap.gz"
        path.write_bytes(data)
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            d.decompress(data)
        except zlib.error:
            zlib_errors += 1
        try:
            source = open_capture(path)
            for _ in source.frames():
                pass
        except CaptureError as exc:
            assert "\n" not in str(exc)
    assert zlib_errors >= 3  # the corpus above really exercises the inflate-error path


def test_damaged_gzip_through_medtap_analyze(tmp_path: Path) -> None:
    """The same through the real CLI: one-line error, exit 1, no traceback."""
    path = tmp_path / "damaged.pcap.gz"
    path.write_bytes(capture_file((REGRESSIONS / "capture" / "9feba1977a0a6e4b").read_bytes()))
    run = subprocess.run([sys.executable, "-m", "agent.cli", "analyze", str(path), "-f", "json",
                          "--no-progress"], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 1 and "damaged gzip" in run.stderr


def test_http_probe_judges_a_cut_request_line_like_the_whole() -> None:
    """Found by the ``http`` target (regressions/http/1a47b3adeab469cf): a request target with
    control bytes was NO when the first segment ended inside the line but MATCH when the
    line arrived whole, so detection depended on segmentation."""
    line = b"GET /druglibra\x00\x00\x01\x1aurrent.xml HTTP/1.1\r\nHost: x\r\n\r\n"
    for cut in range(1, len(line) + 1):
        if http_probe(TS, line[:cut]) is Probe.NO:
            assert all(http_probe(TS, line[:n]) is Probe.NO for n in range(cut, len(line) + 1))
    assert http_probe(TS, line) is Probe.NO
    assert http_probe(TS, b"GET /ok.xml HTTP/1.1\r\n") is Probe.MATCH


def test_http_header_block_ends_at_its_first_empty_line_however_it_arrives() -> None:
    """Found by the ``http`` target (regressions/http/04b7639ad335e009): a bare-LF empty line
    ended the block only while no CRLFCRLF had arrived yet; in one segment the block ran on
    to the later CRLFCRLF and its headers (a User-Agent) were read, split they were not."""
    from parsers.base import FlowKey
    from parsers.http import HttpParser

    request = (b"GET / HTTP/1.1\r\n\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\n"
               b"\r\n")

    def kinds(chunks: list[bytes]) -> list[str]:
        parser = HttpParser(FlowKey("10.1.0.5", 40000, "10.2.0.9", 80))
        out = [o for c in chunks for o in parser.feed(TS, c, 1.0)]
        return sorted(o.kind for o in out)

    whole = kinds([request])
    assert whole == kinds([request[:17], request[17:]]) == kinds([bytes([b]) for b in request])
    assert "http.user_agent" not in whole  # after the empty line: not a header of this request


def test_hl7_two_encoding_characters_are_malformed_not_a_crash() -> None:
    """Found by the ``hl7`` target (regressions/hl7/2ae5f1a0918348d5): ``MSH\\^~\\&|`` has the
    field separator ``\\`` and so only two encoding characters; ``parse_encoding`` read a
    third and raised IndexError, which the agent counted as a parser bug."""
    from parsers.base import FlowKey, Malformed, ParserState
    from parsers.hl7.cutter import cut_frame
    from parsers.hl7.parser import Hl7Parser

    message = b"MSH\\^~\\&|ORBIS|KLINIKUM|PIIC|ICU|20240102||ADT^A08|1|P|2.5\r"
    with pytest.raises(Malformed, match="encoding characters"):
        cut_frame(message)
    parser = Hl7Parser(FlowKey("10.1.0.5", 40000, "10.2.0.9", 2575))
    assert parser.feed(TS, b"\x0b" + message + b"\x1c\r", 1.0) == []
    assert parser.state is ParserState.REJECTED


def test_sslv2_record_shorter_than_a_hello_is_malformed_not_a_crash() -> None:
    """Found by the ``tls`` target (regressions/tls/b2523aabebca1170): an SSL 2.0-format record
    of length 0 reached ``_sslv2_hello``, which read byte 2 before checking the length."""
    from parsers.base import FlowKey, ParserState
    from parsers.tls import TlsParser, probe

    for record in (b"\x80\x00", b"\x80\x01\x01", b"\x80\x05\x01\x03\x01\x00\x03"):
        parser = TlsParser(FlowKey("10.1.0.5", 40000, "10.2.0.9", 443))
        assert parser.feed(TS, record, 1.0) == []
        assert parser.state is ParserState.REJECTED
        assert probe(TS, record) in (Probe.NO, Probe.NEED_MORE)


# --- each invariant can fail ------------------------------------------------------------------


def _seed(name: str, needle: bytes) -> bytes:
    for path in _inputs(CORPUS / name):
        data = path.read_bytes()
        if needle in data:
            return data
    raise AssertionError(f"no {name} seed holds {needle!r}")


HL7_WITH_PID = formats.encode_stream(3, [
    formats.Op(formats.DATA, TS, b"\x0bMSH|^~\\&|MONITOR|ICU|HIS|HOSP|20240101||ORU^R01|1|P|2.6\r"
               b"PID|1||12345||DOE^JOHN\rOBX|1|NM|150456^X^MDC||98\x1c\r"),
    formats.Op(formats.DATA, TC, b"\x0bMSH|^~\\&|HIS|HOSP|MONITOR|ICU|20240101||ACK|2|P|2.6\r"
               b"MSA|AA|1\x1c\r"),
])


def test_hl7_target_catches_a_cutter_that_keeps_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    TARGETS["hl7"].fn(HL7_WITH_PID)  # sound code: the canaries the harness placed stay out
    from parsers.hl7 import cutter
    from parsers.hl7 import parser as hl7_parser

    real = cutter.cut_frame

    def leaky(body: bytes, codes: frozenset[str] = frozenset()) -> list:  # type: ignore[type-arg]
        return real(body.replace(b"\rPID|1||", b"\rSFT|"), codes)  # PID-3 read as SFT-1

    monkeypatch.setattr(hl7_parser, "cut_frame", leaky)
    with pytest.raises(invariants.InvariantError, match="canary"):
        TARGETS["hl7"].fn(HL7_WITH_PID)


def test_dicom_dataset_target_catches_a_patient_element_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from parsers.dicom import parser as dp

    seed = _seed("dicom_dataset", b"GE MEDICAL")
    TARGETS["dicom_dataset"].fn(seed)
    monkeypatch.setattr(dp, "DATA_SET_TAGS", dp.DATA_SET_TAGS | {0x00100010})
    monkeypatch.setattr(dp, "DEVICE_ELEMENTS", {**dp.DEVICE_ELEMENTS, 0x00100010: "model_name"})
    with pytest.raises(invariants.InvariantError, match="canary"):
        TARGETS["dicom_dataset"].fn(seed)


def test_stream_target_catches_segmentation_dependence(monkeypatch: pytest.MonkeyPatch) -> None:
    from parsers.tls import TlsParser

    seed = _seed("tls", b"\x16\x03")
    TARGETS["tls"].fn(seed)
    real = TlsParser.feed

    def chatty(self: TlsParser, direction: Direction, data: bytes, ts: float) -> list:  # type: ignore[type-arg]
        return [*real(self, direction, data, ts),
                Observation("tls.version", self.flow.server, f"{len(data)}", ts)]

    monkeypatch.setattr(TlsParser, "feed", chatty)
    with pytest.raises(invariants.InvariantError, match="segmentation"):
        TARGETS["tls"].fn(b"\x05" + seed[1:])


def test_targets_catch_kinds_buffers_and_contained_parser_bugs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(invariants.InvariantError, match="not allow-listed"):
        invariants.check_observations("dns", [Observation("dns.patient_name", "h", "v", 0.0)])
    seed = _seed("dicom", b"\x01\x00")
    monkeypatch.setattr(invariants, "MAX_BUFFERED", 8)
    with pytest.raises(invariants.InvariantError, match="buffer"):
        TARGETS["dicom"].fn(seed)
    monkeypatch.undo()

    from parsers.dns import DnsParser

    seed = next(p.read_bytes() for p in _inputs(CORPUS / "analyze")
                if b"\x00\x35" in p.read_bytes())  # a frame to or from port 53
    TARGETS["analyze"].fn(seed)

    def broken(self: DnsParser, direction: Direction, data: bytes, ts: float) -> list:  # type: ignore[type-arg]
        raise RuntimeError("a parser bug")

    monkeypatch.setattr(DnsParser, "_decode", broken)
    with pytest.raises(invariants.InvariantError, match="parser errors"):
        TARGETS["analyze"].fn(seed)


def test_reassembly_target_checks_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.reassembly import StreamChunk, TcpReassembler

    isn = struct.pack(">II", 0xFFFFFF00, 0x7FFFFFF0)
    seed = bytes([7]) + isn + b"".join(
        formats.record(0, struct.pack(">IH", start, 100)) for start in (300, 0, 100, 200))
    TARGETS["reassembly"].fn(seed)
    real = TcpReassembler.segment

    def off_by_one(self: TcpReassembler, *args: object) -> list[StreamChunk]:
        events = real(self, *args)  # type: ignore[arg-type]
        return [e._replace(data=e.data[1:] + b"?") if e.kind == "data" else e for e in events]

    monkeypatch.setattr(TcpReassembler, "segment", off_by_one)
    with pytest.raises(invariants.InvariantError, match="wrong bytes"):
        fuzz_targets.reassembly(seed)
