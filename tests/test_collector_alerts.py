"""Violation alerts from the collector: a real ``medtap collector serve`` with a syslog (UDP)
sink on a real loopback socket and a JSON-lines sink; batches built from the sample capture
analysed with the sample policy. An alert goes out once per new violation key: not again for
a retried batch, not again when another batch brings more flows of a known key."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from tests.collector_fixtures import (
    CANARIES,
    batch_from_report,
    free_port,
    medtap,
    report,
    run_server,
)


def _ingest(server: Any, token: str, batch: dict[str, Any]) -> str:
    with server.client(token) as c:
        r = c.post("/api/v1/ingest", json=batch)
    assert r.status_code == 200, r.text
    status: str = r.json()["status"]
    return status


def _datagrams(sock: socket.socket, settle: float = 1.5) -> list[bytes]:
    """Everything that arrives until nothing has come for ``settle`` seconds."""
    got: list[bytes] = []
    sock.settimeout(settle)
    while True:
        try:
            got.append(sock.recv(65535))
        except TimeoutError:
            return got


def test_new_violations_alert_once_each(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'collector.db'}"
    medtap("collector", "migrate", "--database", db)
    token = medtap("collector", "add-sensor", "icu-span", "--database", db).strip()
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    jsonl = tmp_path / "alerts.jsonl"
    rep = report()
    expected = {(v["rule"], v["client"]["ip"], v["server"]["ip"], v["service"])
                for v in rep["violations"]}
    assert expected, "the sample with its policy must produce violations"
    extra = ("--alert", f"syslog+udp://127.0.0.1:{port}", "--alert", f"jsonl:{jsonl}")
    with listener, run_server(db, tmp_path / "server.log", extra=extra) as server:
        first = batch_from_report(rep, sensor="icu-span")
        assert _ingest(server, token, first) == "stored"
        messages = _datagrams(listener)
        assert len(messages) == len(expected)
        assert all(b"CEF:0|medtap|" in m for m in messages)

        assert _ingest(server, token, first) == "duplicate"  # a retry
        again = batch_from_report(rep, sensor="icu-span")  # same keys, more flows
        assert _ingest(server, token, again) == "stored"
        assert _datagrams(listener) == []
        with server.client(token) as c:  # sensor tokens cannot read; the counts still grew
            assert c.get("/api/v1/violations").status_code == 403
        deadline = time.monotonic() + 10
        while len(jsonl.read_text().splitlines()) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.1)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert {(r["rule"], r["client"]["ip"], r["server"]["ip"], r["service"])
            for r in records} == expected
    assert len(records) == len(expected)
    everything = b"".join(messages) + jsonl.read_bytes() + (tmp_path / "server.log").read_bytes()
    for canary in CANARIES:
        assert canary.encode() not in everything


def test_a_bad_alert_spec_stops_serve_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path / 'collector.db'}"
    medtap("collector", "migrate", "--database", db)
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "collector", "serve", "--database", db,
         "--port", str(free_port()), "--alert", "carrier-pigeon://loft"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "carrier-pigeon" in out.stderr and "Traceback" not in out.stderr
