"""HTTP/1.x banners: probe, framing across keep-alive messages (Content-Length, chunked,
HEAD, 304, CONNECT, 101), what is and is never read, the knowledge table, the recorded
capture vs truth and tshark, and `medtap analyze`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import http
from parsers.base import Direction, FlowKey, Observation, ParserState
from parsers.registry import Probe, default_registry
from tests.hl7_feed import feed_pcap

HERE = Path(__file__).resolve().parents[1] / "pcaps" / "banners"
FLOW = FlowKey("10.1.1.5", 51000, "10.1.1.9", 8080)
C, S = Direction.TO_SERVER, Direction.TO_CLIENT

# A request whose target and other headers carry patient data (must never be read):
REQUEST = (
    b"GET /ehr/patient?mrn=CANARY-ID-4711&name=Vogel HTTP/1.1\r\n"  # method + target
    b"Host: monitor-12.icu.example:8080\r\n"  # read: the server's name
    b"User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\n"  # read
    b"Cookie: patient=CANARY\r\n"  # never read
    b"Referer: http://x/?q=CANARY\r\n"  # never read
    b"\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: Microsoft-IIS/6.0\r\n"  # read, and the table says Windows Server 2003
    b"X-Powered-By: ASP.NET\r\n"  # read
    b"Set-Cookie: s=CANARY\r\n"  # never read
    b"Content-Length: 24\r\n"  # framing
    b"\r\n"
    b"Patient CANARY-ID-4711 X"  # body: 24 bytes, skipped unread
)


def run(chunks: list[tuple[Direction, bytes]], flow: FlowKey = FLOW
        ) -> tuple[http.HttpParser, list[Observation]]:
    parser = http.HttpParser(flow)
    out: list[Observation] = []
    for direction, data in chunks:
        out += parser.feed(direction, data, 1.0)
    return parser, out


def kinds(obs: list[Observation]) -> set[tuple[str, str, str]]:
    return {(o.kind, o.host, o.value) for o in obs}


def no_canary(obs: list[Observation]) -> None:
    for o in obs:
        text = f"{o.kind} {o.host} {o.value} {o.raw}"
        assert "CANARY" not in text and "Vogel" not in text, text


# --- probe -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n", Probe.MATCH),
        (b"POST /a HTTP/1.0\r\n", Probe.MATCH),
        (b"HTTP/1.1 200 OK\r\n", Probe.MATCH),
        (b"HTTP/1.0 404 Not Found\r\n", Probe.MATCH),
        (b"GE", Probe.NEED_MORE),
        (b"GET /very/long/target", Probe.NEED_MORE),
        (b"GET /" + b"a" * 200, Probe.MATCH),  # a long URL still matches before its CRLF
        (b"HTTP/1.", Probe.NEED_MORE),
        (b"GET / HTTP/2\r\n", Probe.NO),
        (b"GET / RTSP/1.0\r\n", Probe.NO),
        (b"SIP/2.0 200 OK\r\n", Probe.NO),
        (b"HTTP/1.1 999 x\r\n", Probe.NO),
        (b"\x16\x03\x01\x00\xa5\x01", Probe.NO),
        (b"\x0bMSH|^~\\&|", Probe.NO),
        (b"\x01\x00\x00\x00\x00\xcd\x00\x01", Probe.NO),  # DICOM A-ASSOCIATE-RQ
        (b"FOO / HTTP/1.1\r\n", Probe.NO),
    ],
)
def test_probe(data: bytes, verdict: Probe) -> None:
    assert http.probe(C, data) is verdict


def test_registered() -> None:
    assert default_registry().get("http") is not None


# --- one exchange ----------------------------------------------------------------------------
def test_reads_only_allowed_fields() -> None:
    parser, out = run([(C, REQUEST), (S, RESPONSE)])
    assert parser.state is ParserState.CONFIRMED
    client, server = FLOW.client, FLOW.server
    assert kinds(out) == {
        ("http.user_agent", client, "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"),
        ("http.os", client, "Windows XP"),
        ("http.host", server, "monitor-12.icu.example:8080"),
        ("http.hostname", server, "monitor-12.icu.example"),
        ("http.server", server, "Microsoft-IIS/6.0"),
        ("http.os", server, "Windows Server 2003"),
        ("http.x_powered_by", server, "ASP.NET"),
    }
    no_canary(out)
    for o in out:
        assert o.port == (8080 if o.host == server else None)
    assert {o.kind: o.confidence for o in out}["http.hostname"] == http.CONF_HOSTNAME


def test_byte_by_byte_gives_the_same() -> None:
    _, whole = run([(C, REQUEST), (S, RESPONSE)])
    parts = [(C, REQUEST[i : i + 1]) for i in range(len(REQUEST))]
    parts += [(S, RESPONSE[i : i + 1]) for i in range(len(RESPONSE))]
    _, split = run(parts)
    assert kinds(split) == kinds(whole)


def test_each_fact_once_per_flow() -> None:
    _, out = run([(C, REQUEST * 3), (S, RESPONSE * 3)])
    keys = [(o.kind, o.host, o.value) for o in out]
    assert len(keys) == len(set(keys))


# --- framing ---------------------------------------------------------------------------------
def test_keep_alive_framing_reaches_later_messages() -> None:
    """HEAD (no body despite Content-Length), 304, 204, chunked with a trailer, then a
    response whose Server differs: only reachable if every body was framed right."""
    responses = (
        b"HTTP/1.1 200 OK\r\nServer: A\r\nContent-Length: 5000\r\n\r\n"  # to HEAD: no body
        + b"HTTP/1.1 100 Continue\r\n\r\n"
        + b"HTTP/1.1 204 No Content\r\nServer: A\r\n\r\n"
        + b"HTTP/1.1 200 OK\r\nServer: A\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"5;ext=CANARY\r\nCANAR\r\n3\r\nY-1\r\n0\r\nX-Trailer: CANARY\r\n\r\n"
        + b"HTTP/1.1 304 Not Modified\r\nServer: A\r\nContent-Length: 77\r\n\r\n"
        + b"HTTP/1.1 200 OK\r\nServer: B\r\nContent-Length: 6\r\n\r\nCANARY"
        + b"HTTP/1.1 200 OK\r\nServer: C\r\n\r\nCANARY until close, Server: D\r\n\r\n"
    )
    requests = (
        b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\nCANARY"
        b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /n HTTP/1.1\r\nHost: h\r\n\r\n"
        b"PUT /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\nCANARY\r\n0\r\n\r\n"
        b"GET /last HTTP/1.1\r\nHost: h\r\nUser-Agent: Later/1.0\r\n\r\n"
    )
    parser, out = run([(C, requests), (S, responses)])
    servers = [o.value for o in out if o.kind == "http.server"]
    assert servers == ["A", "B", "C"]  # "D" is inside a read-until-close body
    assert ("http.user_agent", FLOW.client, "Later/1.0") in kinds(out)
    assert parser.state is ParserState.CONFIRMED
    no_canary(out)


def test_connect_and_upgrade_stop_parsing() -> None:
    for request, response in [
        (b"CONNECT pacs.example:443 HTTP/1.1\r\nHost: pacs.example:443\r\n\r\n",
         b"HTTP/1.1 200 Connection established\r\n\r\n"),
        (b"GET /ws HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\n\r\n",
         b"HTTP/1.1 101 Switching Protocols\r\nServer: WS\r\n\r\n"),
    ]:
        tunnel = b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00GET /CANARY HTTP/1.1\r\n\r\n"
        parser, out = run([(C, request), (S, response), (C, tunnel), (S, tunnel)])
        assert parser.state is not ParserState.REJECTED
        got = kinds(out)
        assert not any(k == "http.hostname" and "pacs" in v for k, _, v in got)  # CONNECT target
        assert len([o for o in out if o.kind == "http.host"]) == 1


def test_absolute_form_host_is_not_the_servers_name() -> None:
    _, out = run([(C, b"GET http://far.example/ HTTP/1.1\r\nHost: far.example\r\n\r\n")])
    assert ("http.host", FLOW.server, "far.example") in kinds(out)
    assert not [o for o in out if o.kind == "http.hostname"]


def test_oversized_header_block_is_read_to_the_cap_then_skipped() -> None:
    big = (b"GET / HTTP/1.1\r\nUser-Agent: Big/1\r\nCookie: " + b"C" * 20000 + b"\r\n\r\n"
           b"GET / HTTP/1.1\r\nUser-Agent: Next/1\r\n\r\n")
    parser, out = run([(C, big)])
    assert ("http.user_agent", FLOW.client, "Big/1") in kinds(out)
    assert parser.stats["header_block_truncated"] == 1
    assert parser.state is not ParserState.REJECTED
    assert max(len(b) for b in parser._buf.values()) < http.MAX_HEADER_BLOCK + 4096


def test_message_cap() -> None:
    one = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    parser, _ = run([(C, one * (http.MAX_MESSAGES + 5))])
    assert parser.stats["messages_capped"] == 1


def test_garbage_after_a_good_message_stops_quietly() -> None:
    parser, out = run([(C, REQUEST + b"\x00\x01garbage\r\n\r\n")])
    assert parser.state is not ParserState.REJECTED and out


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", b"\x00\x01\x02\x03" * 10, b"HTTP/1.1 2xx\r\n\r\n"],
)
def test_bad_first_message_rejects(data: bytes) -> None:
    parser, out = run([(C, data)])
    assert parser.state is ParserState.REJECTED and not out


def test_bad_content_length_skips_rest() -> None:
    parser, out = run([(S, b"HTTP/1.1 200 OK\r\nServer: X\r\nContent-Length: 5, 6\r\n\r\n"
                          b"HTTP/1.1 200 OK\r\nServer: Y\r\n\r\n")])
    assert [o.value for o in out if o.kind == "http.server"] == ["X"]
    assert parser.stats["bad_content_length"] == 1


# --- knowledge -------------------------------------------------------------------------------
def test_every_row_has_a_source() -> None:
    rows = http.banner_rows()
    assert len(rows) >= 20
    assert {r.header for r in rows} <= {b"user-agent", b"server", b"x-powered-by"}


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        (b"user-agent", "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0)",
         [("os", "Windows 7", 0.5)]),
        (b"user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
         [("os", "Windows 10/11", 0.5)]),
        (b"server", "Microsoft-WinCE/6.00", [("os", "Windows CE", 0.5)]),
        (b"server", "HP HTTP Server; HP Color LaserJet MFP M477fdw - CF379A; Serial Number: X",
         [("device_type", "printer", 0.6), ("vendor", "HP", 0.6),
          ("model", "Color LaserJet MFP M477fdw", 0.6)]),
        (b"server", "snom embedded", [("device_type", "phone", 0.6), ("vendor", "Snom", 0.6)]),
        (b"server", "Apache/2.4.57 (Debian)", []),
        (b"user-agent", "Windows NT 5.10 lookalike", []),
    ],
)
def test_banner_facts(header: bytes, value: str, expected: list[tuple[str, str, float]]) -> None:
    assert http.banner_facts(header, value) == expected


@pytest.mark.parametrize(
    ("value", "name"),
    [("pacs.hospital.example:8080", "pacs.hospital.example"), ("10.1.2.3:80", None),
     ("[fe80::1]:80", None), ("localhost", None), ("Bad Host", None), ("MX800-12", "mx800-12")],
)
def test_host_name(value: str, name: str | None) -> None:
    assert http.host_name(value) == name


def test_clean_bounds_and_strips_controls() -> None:
    assert http.clean(b"a\x00b\tc  d") == "a b c d"
    assert len(http.clean(b"x" * 5000)) == http.MAX_VALUE


# --- robustness ------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=8))
def test_arbitrary_bytes_never_raise(chunks: list[tuple[bool, bytes]]) -> None:
    parser = http.HttpParser(FLOW)
    for to_server, data in chunks:
        parser.feed(C if to_server else S, data, 0.0)
    for d in Direction:
        parser.eof(d)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.integers(1, 40))
def test_http_prefix_then_noise_never_raises(noise: bytes, cut: int) -> None:
    data = REQUEST[:cut] + noise + RESPONSE
    http.probe(C, data[:512])
    parser = http.HttpParser(FLOW)
    parser.feed(C, data, 0.0)
    parser.feed(S, noise + RESPONSE, 0.0)


# --- the recorded capture --------------------------------------------------------------------
def capture_obs() -> tuple[list, list[Observation]]:  # type: ignore[type-arg]
    flows = feed_pcap(HERE / "http_banners.pcap", http.HttpParser)
    return flows, [o for f in flows for o in f.observations]


def test_capture_matches_truth() -> None:
    truth = json.loads((HERE / "http_banners.truth.json").read_text("utf-8"))
    flows, obs = capture_obs()
    got = kinds(obs)
    for want in truth["observations"]:
        assert (want["kind"], want["host"], want["value"]) in got, want
    for device in truth["devices"]:
        for field in ("device_type", "vendor", "model", "os", "hostname"):
            if field in device:
                claims = [o for o in obs if o.host == device["ip"] and o.kind == f"http.{field}"]
                assert max(claims, key=lambda o: o.confidence).value == device[field]
    messages: dict[str, int] = {}
    for f in flows:
        parser = f.parser
        assert parser.state is ParserState.CONFIRMED
        for d, side in parser._side.items():  # type: ignore[attr-defined]
            host = f.key.client if d is C else f.key.server
            messages[host] = messages.get(host, 0) + side.messages
    assert messages == truth["messages"]
    for o in obs:
        for canary in truth["canaries"]:
            assert canary not in f"{o.value} {o.raw}"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_agrees_on_user_agent_and_server() -> None:
    proc = subprocess.run(
        ["tshark", "-r", str(HERE / "http_banners.pcap"), "-d", "tcp.port==8081,http",
         "-Y", "http", "-T", "fields", "-e", "ip.src", "-e", "http.user_agent",
         "-e", "http.server", "-e", "http.host"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    theirs = set()
    for line in proc.stdout.splitlines():
        src, ua, server, host = line.split("\t")
        if ua:
            theirs.add(("http.user_agent", src, ua))
        if server:
            theirs.add(("http.server", src, server))
    _, obs = capture_obs()
    mine = {k for k in kinds(obs) if k[0] in ("http.user_agent", "http.server")}
    assert theirs and mine == theirs


@pytest.mark.skipif(shutil.which("medtap") is None, reason="medtap CLI not installed")
def test_medtap_analyze_reports_truth() -> None:
    truth = json.loads((HERE / "http_banners.truth.json").read_text("utf-8"))
    proc = subprocess.run(
        ["medtap", "analyze", str(HERE / "http_banners.pcap"), "--format", "json",
         "--no-progress"], capture_output=True, text=True, timeout=120, check=True,
    )
    for canary in truth["canaries"]:
        assert canary not in proc.stdout and canary not in proc.stderr
    report = json.loads(proc.stdout)
    devices = {ip: d for d in report["devices"] for ip in d["ips"]}
    for want in truth["devices"]:
        got = devices[want["ip"]]
        assert got["mac"] == want["mac"]
        for field in ("device_type", "vendor", "model"):
            if field in want:
                assert got[field] == want[field], (want["ip"], field)
        if "hostname" in want:
            assert want["hostname"] in got["hostnames"]
    assert report["stats"]["apps"].get("http") == 2
    assert not report["stats"]["parser_errors"]
