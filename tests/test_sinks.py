"""Alert sinks against real receivers on 127.0.0.1: UDP and TCP syslog listeners, a JSON-lines
file and http.server webhooks (accepting, failing then accepting, silent, refusing).

Every message is parsed back field by field (RFC 5424 header, RFC 6587 framing, CEF header
and extensions), with hostile strings in the violation: line breaks, CEF delimiters,
U+2028, NUL, bidi overrides and non-ASCII text must not break any framing.
"""

from __future__ import annotations

import http.server
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from collector.sinks import (
    BOM,
    CEF_SEVERITY,
    SYSLOG_SEVERITY,
    JsonlSink,
    SyslogTcpSink,
    WebhookSink,
    cef_ext_escape,
    cef_header_escape,
    open_sink,
    sanitize,
)

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "Evil\r\nCEF:0|x|y= z\\ \u2028<13>1 \x00\x1b[31m \u202eéü漢"
LOCAL0 = 16


def violation(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "rule": "default",
        "severity": "high",
        "reason": "no rule allows guest -> imaging tcp/104; the default action is deny",
        "service": "tcp/104",
        "app": "dicom",
        "client": {
            "ip": "10.99.0.57",
            "vlan": 99,
            "zone": "guest",
            "device_id": "mac:a0:02:a5:63:00:39",
            "device_type": "unknown",
            "vendor": None,
        },
        "server": {
            "ip": "10.30.0.10",
            "vlan": 30,
            "zone": "imaging",
            "device_id": "mac:b8:ca:3a:1e:00:0a",
            "device_type": "pacs",
            "vendor": "Dell Inc.",
        },
        "flows": 2,
        "packets": 24,
        "bytes": 3180,
        "first_seen": "2024-05-02T08:00:01.250000Z",
        "last_seen": "2024-05-02T08:00:09.500000Z",
    }
    record.update(overrides)
    return record


def hostile_violation() -> dict[str, Any]:
    v = violation(rule="rule|with\\pipes", reason=f"reason {HOSTILE}", severity="critical")
    v["client"] = {**v["client"], "vendor": HOSTILE, "zone": "gu|est"}
    v["server"] = {**v["server"], "device_type": "pacs=x y=z"}
    return v


# --- parsers for what the sinks wrote (independent of the code under test) -------------

RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) "
    rb"(?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) (?P<sd>-|\[.*?\]) (?P<msg>.*)\Z",
    re.S,
)


@dataclass
class Cef:
    header: list[str]
    ext: dict[str, str] = field(default_factory=dict)


def parse_syslog(data: bytes) -> tuple[dict[str, Any], Cef]:
    m = RFC5424.match(data)
    assert m, data[:200]
    msg = m["msg"]
    assert b"\n" not in data and b"\r" not in data, "a raw line break in a syslog message"
    text = msg.decode("utf-8")
    if not text.isascii():
        assert text.startswith(BOM), "RFC 5424 6.4: UTF-8 MSG starts with a BOM"
    text = text.removeprefix(BOM)
    ts = datetime.fromisoformat(m["ts"].decode())
    assert ts.tzinfo is not None
    head = {
        "pri": int(m["pri"]),
        "ts": ts,
        "host": m["host"].decode(),
        "app": m["app"].decode(),
        "procid": m["procid"].decode(),
        "msgid": m["msgid"].decode(),
        "sd": m["sd"].decode(),
    }
    return head, parse_cef(text)


def parse_cef(text: str) -> Cef:
    """CEF: 7 header fields split at unescaped '|', then key=value with escapes."""
    fields: list[str] = []
    buf: list[str] = []
    i = 0
    while len(fields) < 7:
        c = text[i]
        if c == "\\" and text[i + 1] in "\\|":
            buf.append(text[i + 1])
            i += 2
            continue
        assert c != "\\", f"bad header escape at {i}"
        if c == "|":
            fields.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    cef = Cef(fields)
    key: str | None = None
    buf = []
    for j, c in enumerate(_unescape_ext(text[i:])):
        if c == "\x00EQ":
            raw = "".join(buf)
            head, _, new_key = raw.rpartition(" ")
            assert re.fullmatch(r"[A-Za-z0-9]+", new_key), (new_key, j)
            if key is not None:
                cef.ext[key] = head
            key, buf = new_key, []
        else:
            buf.append(c)
    if key is not None:
        cef.ext[key] = "".join(buf)
    return cef


def _unescape_ext(text: str) -> Iterator[str]:
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            nxt = text[i + 1]
            assert nxt in "\\=nr", f"bad extension escape \\{nxt}"
            yield {"n": "\n", "r": "\r"}.get(nxt, nxt)
            i += 2
            continue
        yield "\x00EQ" if c == "=" else c
        i += 1


def check_cef(cef: Cef, v: dict[str, Any]) -> None:
    assert cef.header[:3] == ["CEF:0", "medtap", "medtap"]
    assert cef.header[3]  # version
    assert cef.header[4] == sanitize(v["rule"])
    assert cef.header[5] == "Segmentation violation"
    assert int(cef.header[6]) == CEF_SEVERITY[v["severity"]]
    e = cef.ext
    assert e["src"] == v["client"]["ip"] and e["dst"] == v["server"]["ip"]
    proto, _, port = v["service"].partition("/")
    assert e["proto"] == proto.upper()
    assert e.get("dpt") == (port or None)
    assert e["cnt"] == str(v["flows"])
    assert e["cs1"] == sanitize(v["rule"]) and e["cs1Label"] == "rule"
    zones = f"{v['client']['zone']}->{v['server']['zone']}"
    assert e["cs2"] == sanitize(zones) and e["cs2Label"] == "zones"
    assert e["msg"] == sanitize(v["reason"], keep_newlines=True)
    first = datetime.fromisoformat(v["first_seen"])
    last = datetime.fromisoformat(v["last_seen"])
    assert int(e["start"]) == int(first.timestamp() * 1000)
    assert int(e["end"]) == int(last.timestamp() * 1000)
    assert e["cs4"] == v["server"]["device_type"] and e["cs4Label"] == "dstDeviceType"
    if v["client"]["vendor"]:
        assert e["cs5"] == sanitize(v["client"]["vendor"], keep_newlines=True)
    else:
        assert "cs5" not in e and "cs5Label" not in e
    assert e["cn1"] == str(v["packets"]) and e["cn2"] == str(v["bytes"])
    assert e["cn3"] == str(v["client"]["vlan"])


# --- syslog over UDP -------------------------------------------------------------------


@pytest.fixture
def udp_listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


@pytest.mark.parametrize("severity", ["low", "medium", "high", "critical"])
def test_udp_syslog_rfc5424_and_cef_fields(udp_listener: socket.socket, severity: str) -> None:
    port = udp_listener.getsockname()[1]
    v = violation(severity=severity)
    before = datetime.now(UTC)
    with open_sink(f"syslog+udp://127.0.0.1:{port}") as sink:
        assert sink.emit(v) is True
        data, _ = udp_listener.recvfrom(65535)
    assert sink.sent == 1 and sink.failed == 0
    head, cef = parse_syslog(data)
    assert head["pri"] == LOCAL0 * 8 + SYSLOG_SEVERITY[severity]
    assert head["app"] == "medtap" and head["msgid"] == "violation" and head["sd"] == "-"
    assert head["host"] == "".join(c for c in socket.gethostname() if "!" <= c <= "~")
    assert int(head["procid"]) > 0
    assert abs((head["ts"] - before).total_seconds()) < 5
    assert data.isascii(), "plain ASCII needs no BOM"
    check_cef(cef, v)


def test_udp_syslog_hostile_strings_keep_one_message(udp_listener: socket.socket) -> None:
    port = udp_listener.getsockname()[1]
    v = hostile_violation()
    with open_sink(f"syslog+udp://127.0.0.1:{port}?facility=local5") as sink:
        sink.emit(v)
        sink.emit(violation())
        first, _ = udp_listener.recvfrom(65535)
        second, _ = udp_listener.recvfrom(65535)
    head, cef = parse_syslog(first)
    assert head["pri"] == 21 * 8 + SYSLOG_SEVERITY["critical"]
    check_cef(cef, v)
    assert "\x00" not in first.decode() and "\u2028" not in first.decode()
    assert "\u202e" not in first.decode() and "\x1b" not in first.decode()
    assert "漢" in cef.ext["cs5"]  # unicode survives, as UTF-8 behind a BOM
    assert cef.ext["cs4"] == "pacs=x y=z"
    assert cef.ext["cs2"] == "gu|est->imaging"
    check_cef(parse_syslog(second)[1], violation())


def test_ipv6_addresses_go_to_cef_ipv6_fields(udp_listener: socket.socket) -> None:
    port = udp_listener.getsockname()[1]
    v = violation(service="icmp")
    v["client"] = {**v["client"], "ip": "fd00::57"}
    with open_sink(f"syslog+udp://127.0.0.1:{port}") as sink:
        sink.emit(v)
        data, _ = udp_listener.recvfrom(65535)
    e = parse_syslog(data)[1].ext
    assert e["c6a2"] == "fd00::57" and e["c6a2Label"] == "Source IPv6"
    assert "src" not in e and e["dst"] == "10.30.0.10"
    assert e["proto"] == "ICMP" and "dpt" not in e


def test_udp_unresolvable_host_counts_failure_and_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = open_sink("syslog+udp://no-such-host.invalid:514")
    with caplog.at_level(logging.WARNING, logger="collector.sinks"):
        assert sink.emit(violation()) is False
    sink.close()
    assert sink.failed == 1 and sink.sent == 0
    assert "10.99.0.57" not in caplog.text and "resolve" in caplog.text


# --- syslog over TCP -------------------------------------------------------------------


class TcpSyslogServer:
    """Accepts connections one after another, reads RFC 6587 octet-counted frames."""

    def __init__(self, close_after: int | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.frames: list[bytes] = []
        self.connections = 0
        self.close_after = close_after  # close the first connection after this many frames
        self.closed = threading.Event()
        self.got = threading.Semaphore(0)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        try:
            while True:
                conn, _ = self.sock.accept()
                self.connections += 1
                with conn:
                    conn.settimeout(10)
                    self.read(conn)
        except OSError:
            return

    def read(self, conn: socket.socket) -> None:
        stream = conn.makefile("rb")
        while True:
            digits = b""
            while (c := stream.read(1)) != b" ":
                if not c:
                    return
                assert c.isdigit() and len(digits) < 8, f"bad frame length byte {c!r}"
                digits += c
            assert not digits.startswith(b"0")
            frame = stream.read(int(digits))
            assert len(frame) == int(digits)
            self.frames.append(frame)
            self.got.release()
            if self.close_after is not None and len(self.frames) == self.close_after:
                self.close_after = None
                self.closed.set()
                return

    def wait(self, n: int) -> None:
        for _ in range(n):
            assert self.got.acquire(timeout=10), f"only {len(self.frames)} frames arrived"

    def stop(self) -> None:
        self.sock.close()


def test_tcp_syslog_octet_counting_with_hostile_strings() -> None:
    server = TcpSyslogServer()
    records = [hostile_violation(), violation(), violation(severity="low", service="udp/53")]
    sink = open_sink(f"syslog+tcp://127.0.0.1:{server.port}")
    assert isinstance(sink, SyslogTcpSink)
    for v in records:
        assert sink.emit(v)
    server.wait(3)
    sink.close()
    server.stop()
    assert server.connections == 1 and len(server.frames) == 3
    for frame, v in zip(server.frames, records, strict=True):
        head, cef = parse_syslog(frame)  # the length counted bytes, not characters
        assert head["pri"] == LOCAL0 * 8 + SYSLOG_SEVERITY[v["severity"]]
        check_cef(cef, v)
    assert not server.frames[0].isascii()


def test_tcp_syslog_reconnects_after_the_receiver_closed() -> None:
    server = TcpSyslogServer(close_after=1)
    sink = open_sink(f"syslog+tcp://127.0.0.1:{server.port}")
    assert sink.emit(violation(rule="first"))
    server.wait(1)
    assert server.closed.wait(5)
    time.sleep(0.05)  # let the FIN arrive
    assert sink.emit(violation(rule="second"))  # must not vanish into the dead connection
    server.wait(1)
    sink.close()
    server.stop()
    assert [parse_syslog(f)[1].ext["cs1"] for f in server.frames] == ["first", "second"]
    assert server.connections == 2 and sink.failed == 0


def test_tcp_syslog_receiver_down_counts_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens here now: connection refused
    sink = open_sink(f"syslog+tcp://127.0.0.1:{port}", timeout=1)
    with caplog.at_level(logging.WARNING, logger="collector.sinks"):
        assert sink.emit(violation()) is False
        started = time.monotonic()
        for _ in range(50):
            assert sink.emit(violation()) is False
    assert time.monotonic() - started < 0.5  # backing off: no connect per alert
    assert sink.failed == 51 and sink.sent == 0
    assert "connect failed" in caplog.text
    assert len(caplog.records) == 1, "one log line per outage, not one per alert"
    assert "10.99.0.57" not in caplog.text
    sink.close()


# --- JSON lines ------------------------------------------------------------------------


def test_jsonl_one_object_per_line_even_with_hostile_strings(tmp_path: Path) -> None:
    path = tmp_path / "alerts" / "v.jsonl"
    path.parent.mkdir()
    records = [hostile_violation(), violation()]
    with open_sink(f"jsonl:{path}") as sink:
        for v in records:
            assert sink.emit(v)
    with open_sink(f"jsonl+fsync:{path}") as sink:  # appends, never truncates
        assert sink.emit(violation(rule="third"))
    raw = path.read_bytes()
    assert raw.isascii() and raw.endswith(b"\n")
    lines = raw.decode().splitlines()  # splitlines also splits at U+2028, \x1c...
    assert len(lines) == 3
    assert [json.loads(line) for line in lines] == [*records, violation(rule="third")]


def test_jsonl_accepts_pydantic_models_and_dataclasses(tmp_path: Path) -> None:
    from collector.schema import ViolationReport

    @dataclass
    class Plain:
        rule: str
        first_seen: datetime

    path = tmp_path / "v.jsonl"
    model = ViolationReport.model_validate(violation())
    with open_sink(f"jsonl:{path}") as sink:
        assert sink.emit(model)
        assert sink.emit(Plain("dc", datetime(2024, 5, 2, 8, 0, 1, tzinfo=UTC)))
        assert not sink.emit(["not", "a", "violation"])
        assert not sink.emit({"no": "rule"})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert ViolationReport.model_validate(lines[0]) == model
    assert lines[1] == {"rule": "dc", "first_seen": "2024-05-02T08:00:01Z"}
    assert sink.sent == 2 and sink.failed == 2


def test_jsonl_disk_full_counts_and_does_not_raise() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    sink = open_sink("jsonl:/dev/full")
    assert sink.emit(violation()) is False
    sink.close()
    sink.close()  # idempotent
    assert sink.failed == 1 and not sink.emit(violation())


# --- webhooks --------------------------------------------------------------------------


class Hook(http.server.BaseHTTPRequestHandler):
    statuses: list[int] = []  # popped per request; 200 when empty
    requests: list[tuple[float, dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 -- http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append((time.monotonic(), dict(self.headers), body))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[Hook]]]:
    handler = type("H", (Hook,), {"statuses": [], "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/SECRET-TOKEN?k=SECRET2", handler
    server.shutdown()
    server.server_close()


def test_webhook_posts_the_violation_as_json(hook: tuple[str, type[Hook]]) -> None:
    url, handler = hook
    v = hostile_violation()
    with open_sink(url) as sink:
        assert sink.emit(v)
    assert sink.sent == 1 and sink.failed == 0
    [(_, headers, body)] = handler.requests
    assert json.loads(body) == v
    assert body.isascii()
    assert headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["Idempotency-Key"])
    assert headers["User-Agent"].startswith("medtap/")
    assert "SECRET" not in sink.label and "SECRET" not in repr(sink)


def test_webhook_retries_5xx_with_backoff_then_delivers(
    hook: tuple[str, type[Hook]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = hook
    handler.statuses = [503, 502]
    sink = open_sink(url, retries=3, backoff=0.1)
    assert isinstance(sink, WebhookSink)
    with caplog.at_level(logging.WARNING, logger="collector.sinks"):
        assert sink.emit(violation()) is True
    sink.close()
    assert sink.sent == 1 and sink.failed == 0 and sink.stats()["attempts"] == 3
    times = [t for t, _, _ in handler.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.1 and times[2] - times[1] >= 0.2  # doubling
    keys = {h["Idempotency-Key"] for _, h, _ in handler.requests}
    assert len(keys) == 1, "a retry is the same event"
    assert caplog.text == ""


def test_webhook_gives_up_after_retries_and_counts(
    hook: tuple[str, type[Hook]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = hook
    handler.statuses = [500] * 10
    sink = open_sink(url, retries=2, backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="collector.sinks"):
        assert sink.emit(violation()) is False
    assert len(handler.requests) == 3 and sink.failed == 1 and sink.sent == 0
    assert "HTTP 500 after 3 attempts" in caplog.text
    assert "SECRET" not in caplog.text and "10.99.0.57" not in caplog.text
    handler.statuses = [400]
    assert sink.emit(violation()) is False  # a client error is final: no retry
    assert len(handler.requests) == 4 and sink.failed == 2
    sink.close()


def test_webhook_that_never_answers_times_out() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
    try:
        sink = open_sink(f"http://127.0.0.1:{silent.getsockname()[1]}/x", timeout=0.5, retries=3)
        started = time.monotonic()
        assert sink.emit(violation()) is False
        elapsed = time.monotonic() - started
        sink.close()
    finally:
        silent.close()
    assert 0.4 < elapsed < 3, elapsed
    assert sink.failed == 1 and sink.stats()["attempts"] == 1  # a read timeout is final


def test_webhook_connection_refused_retries_then_counts() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    sink = open_sink(f"http://127.0.0.1:{port}/x", retries=2, backoff=0.05)
    started = time.monotonic()
    assert sink.emit(violation()) is False
    assert time.monotonic() - started >= 0.15  # 0.05 + 0.1 between the three attempts
    assert sink.stats()["attempts"] == 3 and sink.failed == 1
    sink.close()


# --- specs, escaping, module boundaries ------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "expected jsonl:PATH"),
        ("syslog", "expected jsonl:PATH"),
        ("kafka://h:1", "unknown kind 'kafka'"),
        ("jsonl:", "expected jsonl:PATH"),
        ("jsonl:/nonexistent-dir/x.jsonl", "cannot open: No such file or directory"),
        ("syslog+udp://", "no host"),
        ("syslog+udp://h:99999", "port must be a number 1-65535"),
        ("syslog+tcp://h:abc", "port must be a number 1-65535"),
        ("syslog+tcp://h:514/path", "syslog takes no path"),
        ("syslog+udp://h?facility=local9", "unknown facility 'local9'"),
        ("syslog+udp://h?fac=local1", "unknown option 'fac'"),
        ("syslog+udp://u:pw@h", "no user, password"),
        ("http:///nohost", "no host in webhook URL"),
        ("https://h:99999/SECRET", "port must be a number"),
        ("https://h/SECRET x", "spaces or control characters"),
    ],
)
def test_bad_specs_raise_clear_value_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        open_sink(spec)
    assert "SECRET" not in str(info.value)


def test_good_specs() -> None:
    for spec, kind in [
        ("syslog+udp://127.0.0.1", "syslog+udp"),
        ("SYSLOG+TCP://[::1]:6514?facility=4", "syslog+tcp"),
        ("https://siem.example/hook", "webhook"),
    ]:
        sink = open_sink(spec)
        assert sink.kind == kind
        sink.close()
    assert open_sink("syslog+udp://[::1]:1").label == "syslog+udp://[::1]:1"


def test_cef_escaping_rules() -> None:
    assert cef_header_escape("a|b\\c\nd") == "a\\|b\\\\c?d"
    assert cef_ext_escape("a=b\\c\r\nd\ne\rf|g\th") == "a\\=b\\\\c\\r\\nd\\ne\\rf|g?h"
    assert sanitize("ok é 漢 \u00a0") == "ok é 漢 \u00a0"
    assert sanitize("a\x00b\u2028c\u2029d\x85e\u202ef\ufeffg") == "a?b?c?d?e?f?g"


def test_module_needs_no_server_stack_and_nothing_from_agent() -> None:
    code = (
        "import sys, collector.sinks; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('agent', 'fastapi', 'sqlalchemy', 'pydantic', 'starlette', 'uvicorn')); "
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "[]"


def test_jsonl_sink_is_a_sink_subclass(tmp_path: Path) -> None:
    sink = open_sink(f"jsonl:{tmp_path / 'x.jsonl'}")
    assert isinstance(sink, JsonlSink)
    assert sink.stats() == {"sink": f"jsonl:{tmp_path / 'x.jsonl'}", "sent": 0, "failed": 0}
    sink.close()


# --- end to end: `medtap analyze --policy --alert` to a real TCP syslog receiver ---------

EXAMPLE_POLICY = """\
zones:
  clinical: {vlans: [10], cidrs: [10.10.0.0/16], description: HIS, RIS, workstations}
  medical:  {vlans: [20], cidrs: [10.20.0.0/16], description: monitors, pumps, gateways}
  imaging:  {vlans: [30], cidrs: [10.30.0.0/16]}
  guest:    {vlans: [99], cidrs: [10.99.0.0/16]}
default: deny
rules:
  - name: modalities-to-worklist
    from: {zone: imaging}
    to: {zone: clinical, hosts: [10.10.5.40]}
    services: [tcp/11113]
    action: allow
"""


def test_analyze_sends_each_violation_once_to_syslog(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(EXAMPLE_POLICY)
    server = TcpSyslogServer()
    sample = REPO / "pcaps" / "sample" / "hospital-sample.pcapng"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "analyze",
            sample,
            "--policy",
            policy,
            "-f",
            "json",
            "--alert",
            f"syslog+tcp://127.0.0.1:{server.port}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    violations = json.loads(out.stdout)["violations"]
    server.wait(len(violations))
    time.sleep(0.2)  # nothing more may come
    server.stop()
    assert len(server.frames) == len(violations) == 5
    received = {}
    for frame in server.frames:
        head, cef = parse_syslog(frame)
        received[(cef.ext["src"], cef.ext["dst"], cef.ext.get("dpt"))] = (head, cef)
    for v in violations:
        head, cef = received[
            (v["client"]["ip"], v["server"]["ip"], v["service"].partition("/")[2] or None)
        ]
        check_cef(cef, v)
        assert head["pri"] == LOCAL0 * 8 + SYSLOG_SEVERITY[v["severity"]]
    guest = received[("10.99.0.57", "10.30.0.10", "104")][1]
    assert guest.ext["cs2"] == "guest->imaging" and guest.ext["app"] == "dicom"
    for canary in ("CANARY", "Kanarienweg", "19010101"):
        assert all(canary.encode() not in f for f in server.frames)
