"""Sensor uplink (issue 7, sensor side): batching, spool, client, drain, CLI.

Most tests talk to ``StandIn``: a real HTTP(S) server (``http.server`` on 127.0.0.1, real
sockets, real gzip, real TLS, the real ``collector.schema.Batch`` validation) that *stands in*
for the collector. Its idempotency by batch id is ten lines in this file, so these tests
check the sensor's side of "exactly once": which ids arrive, how often, in what order.
The end-to-end tests at the bottom run the real collector (``medtap collector serve``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import http.server
import json
import logging
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.uplink import batch as batching
from agent.uplink.batch import BatchLimits, BuildStats, batches_from_report, encode_batch
from agent.uplink.batch import heartbeat_from_report as heartbeat_of
from agent.uplink.client import (
    UplinkAuthError,
    UplinkClient,
    UplinkConfig,
    UplinkConfigError,
    UplinkTLSError,
    ingest_url,
)
from agent.uplink.drain import Backoff, drain
from agent.uplink.spool import Spool, SpoolItem
from collector.schema import Batch, IngestResult

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "pcaps" / "sample" / "hospital-sample.pcapng"
TOKEN = "test-token-0123456789"
SENSOR = "sensor-a"
# canary patient data recorded into the sample capture (pcaps/sample/README.md)
CANARIES = ("CANARY", "Vogel", "Kanarienweg", "555-0147", "19010101", "Allergie")
FAST = {"base": 0.02, "cap": 0.2}


# --- the stand-in collector ---------------------------------------------------------------


class StandIn:
    """Records every ingest POST; answers ``stored`` the first time an id arrives and
    ``duplicate`` after. ``script`` answers the next requests with given statuses first;
    ``reject`` ids get a FastAPI-like 422 that echoes the input; ``hook(batch_id, n)`` runs
    after an arrival is recorded and may return "drop" to close without answering."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.lock = threading.Lock()
        self.arrivals: list[str] = []
        self.times: list[float] = []
        self.bodies: list[bytes] = []
        self.requests = 0
        self.script: list[int] = []
        self.reject: set[str] = set()
        self.hook: Callable[[str, int], str | None] | None = None
        self.port = 0
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def stored(self) -> Counter[str]:
        """How often each id was answered ``stored`` (must be 1 for each)."""
        seen: set[str] = set()
        out: Counter[str] = Counter()
        for batch_id in self.arrivals:
            if batch_id not in seen:
                out[batch_id] += 1
                seen.add(batch_id)
        return out

    def first_arrival_order(self) -> list[str]:
        return list(dict.fromkeys(self.arrivals))

    def start(self) -> StandIn:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _answer(self, headers: Any, raw: bytes) -> tuple[int, dict[str, Any] | None, str | None]:
        with self.lock:
            self.requests += 1
            self.times.append(time.monotonic())
            if headers.get("Authorization") != f"Bearer {TOKEN}":
                return 401, {"detail": "bad token"}, None
            if self.script:
                return self.script.pop(0), {"detail": "scripted"}, None
        if headers.get("Content-Encoding") != "gzip":
            return 415, {"detail": "gzip expected"}, None
        try:
            body = gzip.decompress(raw)
            batch = Batch.model_validate_json(body)  # the real wire contract
        except (OSError, ValueError) as exc:  # ValidationError is a ValueError
            return 422, {"detail": [{"loc": ["body"], "type": type(exc).__name__}]}, None
        if batch.batch_id in self.reject:
            echo = json.loads(body)  # FastAPI echoes the input in its 422 detail
            return 422, {"detail": [{"loc": ["body", "devices"], "type": "x", "input": echo}]}, None
        with self.lock:
            status = "duplicate" if batch.batch_id in self.arrivals else "stored"
            self.arrivals.append(batch.batch_id)
            self.bodies.append(body)
            n = len(self.arrivals)
        action = self.hook(batch.batch_id, n) if self.hook else None
        result = IngestResult(batch_id=batch.batch_id, status=status)
        return 200, result.model_dump(), action

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/api/v1/ingest":
                    self.send_error(404)
                    return
                status, answer, action = standin._answer(self.headers, raw)
                if action == "drop":  # the collector took it, the answer never arrives
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "analyze", str(SAMPLE), "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=True,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def client_for(server: StandIn, **kw: Any) -> UplinkClient:
    return UplinkClient(UplinkConfig(url=server.url, token=kw.pop("token", TOKEN), **kw))


def spool_batches(spool: Spool, batches: list[Batch]) -> list[str]:
    spool.put([SpoolItem(b.batch_id, encode_batch(b)) for b in batches])
    return [b.batch_id for b in batches]


def small(report: dict[str, Any], n: int = 3) -> list[Batch]:
    limits = BatchLimits(devices=n, flows=n, violations=n)
    return batches_from_report(report, sensor=SENSOR, limits=limits, heartbeat=heartbeat_of(report))


# --- batching -------------------------------------------------------------------------------


def test_every_item_travels_once_with_schema_fields_only(report: dict[str, Any]) -> None:
    tainted = json.loads(json.dumps(report))
    dev = tainted["devices"][0]
    dev["patient_name"] = "CANARY^PATIENT"  # a key the schema does not name never travels
    dev["evidence"][0]["raw"] = "CANARY-ID-4711"
    next(iter(dev["classification"].values()))["evidence"][0]["payload"] = "CANARY^MOTHER"
    tainted["flows"]["items"][0]["payload"] = "Kanarienweg 7"
    batches = small(tainted)
    assert len(batches) > 5
    wire = [gzip.decompress(encode_batch(b)) for b in batches]
    for body in wire:
        Batch.model_validate_json(body)  # each one is a valid wire document
        assert not [c for c in CANARIES if c.encode() in body]
    devices = [d.id for b in batches for d in b.devices]
    flows = [(f.client, f.server, f.server_port, f.first_seen) for b in batches for f in b.flows]
    assert devices == [d["id"] for d in report["devices"]]
    assert len(flows) == len(set(flows)) == len(report["flows"]["items"])
    sent = json.loads(wire[0])["devices"][0]
    assert set(sent) <= set(batching.DeviceReport.model_fields)
    assert sent["hostnames"] == report["devices"][0]["hostnames"]


def test_split_respects_counts_and_byte_budget(report: dict[str, Any]) -> None:
    limits = BatchLimits(devices=4, flows=6, violations=5, max_bytes=24_000)
    batches = batches_from_report(report, sensor=SENSOR, limits=limits)
    assert len(batches) >= 5
    for b in batches:
        assert len(b.devices) <= 4 and len(b.flows) <= 6
        items = len(b.devices) + len(b.flows)
        assert items == 1 or len(b.model_dump_json()) <= limits.max_bytes
    one = batches_from_report(report, sensor=SENSOR)
    assert len(one) == 1  # the defaults fit the whole sample in one batch


def test_batch_ids_are_content_hashes_scoped_by_sensor(report: dict[str, Any]) -> None:
    first = small(report)
    time.sleep(0.01)
    again = small(report)  # a later run: fresh heartbeat time, same content
    assert first[-1].heartbeat and again[-1].heartbeat
    assert first[-1].heartbeat.at != again[-1].heartbeat.at
    assert [b.batch_id for b in first] == [b.batch_id for b in again]
    other = batches_from_report(report, sensor="sensor-b", limits=BatchLimits(3, 3, 3))
    assert not {b.batch_id for b in first} & {b.batch_id for b in other}
    changed = json.loads(json.dumps(report))
    changed["flows"]["items"][-1]["packets_to_server"] += 1
    ids = [b.batch_id for b in small(changed)]
    assert ids[:-1] == [b.batch_id for b in first][:-1] and ids[-1] != first[-1].batch_id


def test_heartbeat_from_stats_rides_on_the_last_batch(report: dict[str, Any]) -> None:
    fake = json.loads(json.dumps(report))
    fake["stats"].update(
        malformed={"short": 2, "bad_ip": 3},
        parser_errors={"hl7": 4},
        flows_evicted=5,
        capture={"dropped": 7},
    )
    hb = heartbeat_of(fake, spool_depth=9, spool_dropped=1, interface="eth1")
    assert (hb.packets, hb.bytes) == (report["stats"]["packets"], report["stats"]["bytes"])
    assert (hb.malformed, hb.parser_errors, hb.flows_evicted, hb.kernel_drops) == (5, 4, 5, 7)
    assert (hb.spool_depth, hb.spool_dropped, hb.interface) == (9, 1, "eth1")
    batches = small(fake)
    assert [b.heartbeat is not None for b in batches] == [False] * (len(batches) - 1) + [True]
    empty = {"devices": [], "flows": {"items": []}, "violations": [], "stats": {}}
    only = batches_from_report(empty, sensor=SENSOR, heartbeat=hb)
    assert len(only) == 1 and only[0].batch_id.startswith("h1-") and only[0].heartbeat == hb
    assert batches_from_report(empty, sensor=SENSOR) == []


def test_oversized_fields_are_clipped_and_bad_items_refused_without_logging_values(
    report: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    dev = json.loads(json.dumps(report["devices"][0]))
    dev["evidence"] = [
        {"kind": "k", "value": f"v{i}", "source": "s", "count": 1, "confidence": (i % 10) / 10}
        for i in range(300)
    ]
    dev["hostnames"] = ["H" * 300, "   ", "ok-host"]
    bad = dict(dev, id="mac:bad", mac="NOT-A-MAC-CANARY")
    stats = BuildStats()
    with caplog.at_level(logging.WARNING):
        out = batches_from_report(
            {"devices": [dev, bad], "flows": {"items": []}}, sensor=SENSOR, stats=stats
        )
    sent = out[0].devices
    assert [d.id for d in sent] == [dev["id"]]
    assert len(sent[0].evidence) == 200 and min(e.confidence for e in sent[0].evidence) == 0.3
    assert sent[0].hostnames == ["H" * 128, "ok-host"]
    assert (stats.items, stats.repaired, stats.rejected) == (2, 1, Counter(DeviceReport=1))
    assert "mac:string_pattern_mismatch" in caplog.text and "CANARY" not in caplog.text


# --- spool ------------------------------------------------------------------------------------


def items(n: int, size: int = 100, prefix: str = "batch") -> list[SpoolItem]:
    return [SpoolItem(f"{prefix}-{i:04d}", os.urandom(size)) for i in range(n)]


def test_spool_is_fifo_durable_and_idempotent_by_id(tmp_path: Path) -> None:
    with Spool(tmp_path / "s") as spool:
        assert spool.put(items(3)).added == 3
        assert spool.put(items(5)).added == 2  # the first three are still waiting
        head = spool.head()
        assert head is not None and head.batch_id == "batch-0000"
        spool.ack(head.seq)
    with Spool(tmp_path / "s") as spool:  # reopened: what was committed is there, in order
        assert spool.batch_ids() == [f"batch-{i:04d}" for i in range(1, 5)]
        mode = spool._db.execute("PRAGMA journal_mode").fetchone()[0]
        sync = spool._db.execute("PRAGMA synchronous").fetchone()[0]
        assert (mode, sync) == ("wal", 2)  # 2 = FULL
        assert spool.stats().counters["stored"] == 1
    assert oct((tmp_path / "s" / "spool.sqlite3").stat().st_mode & 0o777) == "0o600"


def test_spool_cap_drops_oldest_counts_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path / "s", max_bytes=1000) as spool:
        spool.put(items(8, size=100))
        with caplog.at_level(logging.WARNING, logger="agent.uplink.spool"):
            result = spool.put(items(5, size=100, prefix="new"))
            assert result.dropped == 3 and result.added == 5
            assert spool.put([SpoolItem("huge-batch", b"x" * 1001)]).refused == 1
        ids = spool.batch_ids()
        assert ids == [f"batch-{i:04d}" for i in range(3, 8)] + [f"new-{i:04d}" for i in range(5)]
        stats = spool.stats()
        assert stats.bytes <= 1000
        assert (stats.counters["dropped"], stats.counters["refused"]) == (3, 1)
    assert "reached its cap" in caplog.text and "dropped 3 oldest" in caplog.text


def test_heartbeat_only_batches_coalesce(tmp_path: Path) -> None:
    with Spool(tmp_path / "s") as spool:
        spool.put(items(1))
        for i in range(3):
            spool.put([SpoolItem(f"h1-beat-{i}", b"hb", heartbeat_only=True)])
        spool.put(items(1, prefix="later"))
        assert spool.batch_ids() == ["batch-0000", "h1-beat-2", "later-0000"]
        assert spool.stats().counters["coalesced"] == 2


BUILD = """
from datetime import UTC, datetime
from agent.uplink.batch import content_id, encode_batch
from agent.uplink.spool import SpoolItem
from collector.schema import Batch, FlowReport

def build(i, j):
    t = datetime(2026, 1, 1, tzinfo=UTC)
    flow = FlowReport(transport="tcp", client="10.0.0.1", server="10.0.0.2", server_port=104,
                      connections=3 * i + j, first_seen=t, last_seen=t)
    b = Batch(sensor="sensor-a", batch_id="pending-id", started=t, ended=t, flows=[flow])
    b.batch_id = content_id(b)
    return SpoolItem(b.batch_id, encode_batch(b))
"""
WRITER = (
    BUILD
    + """
import sys
from pathlib import Path
from agent.uplink.spool import Spool
spool = Spool(Path(sys.argv[1]))
for i in range(100000):
    spool.put([build(i, j) for j in range(3)])
    print(i, flush=True)
"""
)


def test_sigkill_mid_spool_loses_and_duplicates_nothing(tmp_path: Path, standin: StandIn) -> None:
    """A writer putting 3-batch transactions is killed with SIGKILL; every put that
    returned is on disk, no transaction is half there, and the drain sends each once."""
    directory = tmp_path / "s"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    confirmed = -1
    for line in proc.stdout:
        confirmed = int(line)
        if confirmed >= 40:
            break
    time.sleep(random.uniform(0.0, 0.05))  # land somewhere inside a later transaction
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Spool(directory) as spool:
        assert spool._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = spool.batch_ids()
        assert len(ids) % 3 == 0  # whole transactions only
        scope: dict[str, Any] = {}
        exec(BUILD, scope)  # the writer's own batch builder
        expected = [scope["build"](i, j).batch_id for i in range(len(ids) // 3) for j in range(3)]
        assert ids == expected and len(ids) >= 3 * (confirmed + 1)
        with client_for(standin) as client:
            result = drain(spool, client, idle_deadline=20, backoff=Backoff(**FAST))
    assert result.complete and result.stored == len(ids)
    assert standin.arrivals == ids  # in order, each exactly once


# --- client, backoff, drain -------------------------------------------------------------------


def test_backoff_is_exponential_jittered_and_capped() -> None:
    b = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    delays = [b.next() for _ in range(7)]
    for n, d in enumerate(delays):
        ceiling = min(8.0, 2.0**n)
        assert ceiling / 2 <= d <= ceiling
    assert len(set(delays)) == len(delays)  # jittered
    assert Backoff(base=1.0, cap=8.0).next(retry_after=5.0) >= 5.0
    assert Backoff(base=1.0, cap=8.0).next(retry_after=500.0) <= 8.0
    b.reset()
    assert b.next() <= 1.0


def test_transient_errors_back_off_then_deliver(
    tmp_path: Path, standin: StandIn, report: dict[str, Any]
) -> None:
    standin.script = [503, 429, 502, 500]
    with Spool(tmp_path / "s") as spool, client_for(standin) as client:
        ids = spool_batches(spool, small(report))
        result = drain(spool, client, idle_deadline=20, backoff=Backoff(base=0.05, cap=0.3))
    assert result.complete and result.retries == 4 and result.stored == len(ids)
    gaps = [b - a for a, b in zip(standin.times, standin.times[1:5], strict=False)]
    assert gaps[0] >= 0.025 and gaps[2] >= 0.1  # 0.05, 0.1, 0.2 with jitter in [d/2, d]
    assert max(gaps) <= 0.5
    assert standin.arrivals == ids


def test_collector_down_then_back_drains_in_order_exactly_once(
    tmp_path: Path, standin: StandIn, report: dict[str, Any]
) -> None:
    standin.stop()  # nothing listens on the port now: connection refused
    with Spool(tmp_path / "s") as spool, client_for(standin) as client:
        ids = spool_batches(spool, small(report))
        down = drain(spool, client, idle_deadline=0.5, backoff=Backoff(**FAST))
        assert down.timed_out and not down.complete and down.remaining == len(ids)
        assert "connect" in (down.last_failure or "")
        standin.start()
        up = drain(spool, client, idle_deadline=5, backoff=Backoff(**FAST))
    assert up.complete and up.stored == len(ids) and up.remaining == 0
    assert standin.arrivals == ids


def test_collector_stopped_and_restarted_mid_upload(
    tmp_path: Path, standin: StandIn, report: dict[str, Any]
) -> None:
    """After the 4th batch is recorded the collector dies before answering, comes back a
    moment later; the unanswered batch is re-sent (``duplicate``), none is lost."""

    def crash(batch_id: str, n: int) -> str | None:
        if n != 4:
            return None
        threading.Thread(target=standin.stop).start()
        threading.Timer(0.6, standin.start).start()
        return "drop"

    standin.hook = crash
    with Spool(tmp_path / "s") as spool, client_for(standin) as client:
        ids = spool_batches(spool, small(report))
        result = drain(spool, client, idle_deadline=10, backoff=Backoff(**FAST))
    assert result.complete and result.retries >= 1
    assert standin.first_arrival_order() == ids
    assert standin.stored() == Counter(dict.fromkeys(ids, 1))
    assert Counter(standin.arrivals)[ids[3]] == 2  # sent, unanswered, sent again
    assert (result.stored, result.duplicate) == (len(ids) - 1, 1)


def test_permanent_refusal_is_dead_lettered_and_never_logged(
    tmp_path: Path, standin: StandIn, report: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    batches = small(report)
    standin.reject = {batches[1].batch_id}
    with caplog.at_level(logging.DEBUG), Spool(tmp_path / "s") as spool:
        ids = spool_batches(spool, batches)
        with client_for(standin) as client:
            result = drain(spool, client, idle_deadline=20, backoff=Backoff(**FAST))
        dead = spool.dead_letters()
        assert spool.stats().counters["dead"] == 1
    assert result.complete and result.dead == 1
    assert dead == [(ids[1], "HTTP 422 (body.devices:x)")]
    assert standin.arrivals == ids[:1] + ids[2:]
    hostnames = [h for d in report["devices"] for h in d["hostnames"]]
    assert hostnames and not [h for h in hostnames if h in caplog.text]


def test_bad_token_stops_the_uplink_with_batches_kept(
    tmp_path: Path, standin: StandIn, report: dict[str, Any]
) -> None:
    with Spool(tmp_path / "s") as spool, client_for(standin, token="wrong") as client:
        ids = spool_batches(spool, small(report))
        result = drain(spool, client, idle_deadline=20, backoff=Backoff(**FAST))
        assert spool.batch_ids() == ids
    assert isinstance(result.fatal, UplinkAuthError) and "token" in str(result.fatal)
    assert standin.requests == 1 and result.remaining == len(ids)


@pytest.mark.parametrize(
    ("url", "insecure", "expected"),
    [
        ("https://collector.example:8443", False, "https://collector.example:8443/api/v1/ingest"),
        ("http://127.0.0.1:8000/", False, "http://127.0.0.1:8000/api/v1/ingest"),
        ("http://[::1]:8000", False, "http://[::1]:8000/api/v1/ingest"),
        ("http://localhost:8000/api/v1/ingest", False, "http://localhost:8000/api/v1/ingest"),
        ("https://proxy/medtap", False, "https://proxy/medtap/api/v1/ingest"),
        ("http://10.0.0.5:8000", True, "http://10.0.0.5:8000/api/v1/ingest"),
        ("http://10.0.0.5:8000", False, None),
        ("http://127.0.0.1.evil.example", False, None),
        ("ftp://127.0.0.1", False, None),
        ("https://user:pw@collector", False, None),
    ],
)
def test_plain_http_only_to_loopback(url: str, insecure: bool, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(UplinkConfigError):
            ingest_url(url, insecure_http=insecure)
    else:
        assert ingest_url(url, insecure_http=insecure) == expected


# --- TLS ------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "medtap test collector")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "collector.pem", directory / "collector.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_standin(tmp_path: Path) -> Iterator[tuple[StandIn, Path]]:
    cert, key = self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = StandIn(tls=ctx).start()
    yield server, cert
    server.stop()


def test_tls_is_verified_against_the_system_store_or_ca_file(
    tmp_path: Path, tls_standin: tuple[StandIn, Path], report: dict[str, Any]
) -> None:
    server, cert = tls_standin
    with Spool(tmp_path / "s") as spool:
        ids = spool_batches(spool, small(report, n=50))
        with client_for(server) as client:  # system store: the self-signed cert is unknown
            refused = drain(spool, client, idle_deadline=20, backoff=Backoff(**FAST))
        assert isinstance(refused.fatal, UplinkTLSError)
        assert "--ca-file" in str(refused.fatal) and refused.remaining == len(ids)
        assert server.arrivals == []
        with client_for(server, ca_file=cert) as client:
            result = drain(spool, client, idle_deadline=20, backoff=Backoff(**FAST))
    assert result.complete and server.arrivals == ids


def test_plain_http_against_a_tls_port_keeps_the_batch(
    tls_standin: tuple[StandIn, Path], tmp_path: Path, report: dict[str, Any]
) -> None:
    server, _ = tls_standin
    with Spool(tmp_path / "s") as spool:
        spool_batches(spool, small(report, n=50))
        url = server.url.replace("https://", "http://")
        with UplinkClient(UplinkConfig(url=url, token=TOKEN)) as client:
            result = drain(spool, client, idle_deadline=0.5, backoff=Backoff(**FAST))
    assert not result.complete and result.remaining == 1


# --- the CLI ------------------------------------------------------------------------------------


def medtap(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, "MEDTAP_TOKEN": TOKEN, **(env or {})},
    )


def upload_args(url: str, spool: Path, *extra: str | Path) -> list[str | Path]:
    """``medtap analyze SAMPLE --upload URL`` as sensor-a, JSON report to /dev/null."""
    report: list[str | Path] = ["analyze", SAMPLE, "-f", "json", "-o", os.devnull]
    return [*report, "--upload", url, "--sensor-name", SENSOR, "--spool", spool, "-v", *extra]


SMALL_BATCHES = {"MEDTAP_UPLINK_BATCH_ITEMS": "3"}


def test_cli_upload_refuses_bad_settings_before_analysis(tmp_path: Path) -> None:
    plain = medtap("analyze", SAMPLE, "--upload", "http://192.0.2.10:8000", "--spool", tmp_path)
    assert plain.returncode == 2 and "refusing plain http://" in plain.stderr
    no_token = medtap(
        "analyze", SAMPLE, "--upload", "https://127.0.0.1:1", env={"MEDTAP_TOKEN": ""}
    )
    assert no_token.returncode == 2 and "MEDTAP_TOKEN" in no_token.stderr
    assert not list(tmp_path.iterdir())  # nothing spooled, nothing analysed


def test_cli_upload_sigkill_mid_drain_then_rerun(
    tmp_path: Path, standin: StandIn, report: dict[str, Any]
) -> None:
    """``medtap analyze --upload`` is SIGKILLed while the collector holds the 5th batch;
    ``uplink drain`` and a second ``analyze --upload`` then leave every batch stored once."""
    spool = tmp_path / "spool"
    expected = [b.batch_id for b in small(report)]
    holding, release = threading.Event(), threading.Event()

    def hold(batch_id: str, n: int) -> str | None:
        if n == 5:
            holding.set()
            release.wait(30)
            return "drop"
        return None

    standin.hook = hold
    env = {**os.environ, "MEDTAP_TOKEN": TOKEN, **SMALL_BATCHES}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", *map(str, upload_args(standin.url, spool))],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holding.wait(60), "the upload never reached the 5th batch"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    release.set()
    standin.hook = None
    status = json.loads(medtap("uplink", "status", "--spool", spool, "--json").stdout)
    assert status["depth"] == len(expected) - 4 and status["counters"]["stored"] == 4

    drained = medtap("uplink", "drain", "--spool", spool)
    assert drained.returncode == 0, drained.stderr
    assert standin.first_arrival_order() == expected  # the ids of a fresh build, in order
    assert standin.stored() == Counter(dict.fromkeys(expected, 1))
    assert Counter(standin.arrivals)[expected[4]] == 2

    again = medtap(*upload_args(standin.url, spool), env=SMALL_BATCHES)
    assert again.returncode == 0, again.stderr
    assert f"0 stored, {len(expected)} already there" in again.stderr
    assert standin.stored() == Counter(dict.fromkeys(expected, 1))
    hostnames = [h for d in report["devices"] for h in d["hostnames"]]
    assert not [h for h in hostnames if h in again.stderr + drained.stderr]  # -v: no payloads


def test_cli_upload_collector_down_exits_4_then_drain(
    tmp_path: Path, standin: StandIn, report: dict[str, Any]
) -> None:
    spool = tmp_path / "spool"
    standin.stop()
    down = medtap(*upload_args(standin.url, spool, "--upload-deadline", "1"), env=SMALL_BATCHES)
    n = len(small(report))
    assert down.returncode == 4
    assert "unreachable for 1 s" in down.stderr
    assert f"{n} batches are spooled in {spool}" in down.stderr
    assert "medtap uplink drain" in down.stderr
    standin.start()
    drained = medtap("uplink", "drain", "--spool", spool)
    assert drained.returncode == 0, drained.stderr
    assert standin.arrivals == [b.batch_id for b in small(report)]
    status = json.loads(medtap("uplink", "status", "--spool", spool, "--json").stdout)
    assert status["depth"] == 0 and status["counters"]["stored"] == n


def test_cli_tls_needs_the_ca_file(tmp_path: Path, tls_standin: tuple[StandIn, Path]) -> None:
    server, cert = tls_standin
    spool = tmp_path / "spool"
    untrusted = medtap(*upload_args(server.url, spool))
    assert untrusted.returncode == 4 and "not trusted" in untrusted.stderr
    trusted = medtap(*upload_args(server.url, spool, "--ca-file", cert))
    assert trusted.returncode == 0, trusted.stderr
    assert len(server.arrivals) == 1


def test_cli_insecure_http_warns_on_every_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No connection is made here (network only on loopback): the option check alone."""
    from agent import cli_uplink

    for _ in range(2):
        up = cli_uplink.prepare(
            "http://192.0.2.10:8000", TOKEN, SENSOR, None, True, tmp_path / "spool"
        )
        assert up is not None and up.config.insecure_http
    assert capsys.readouterr().err.count("WITHOUT encryption") == 2
    loopback = cli_uplink.prepare("http://127.0.0.1:8000", TOKEN, SENSOR, None, False, tmp_path)
    assert loopback is not None and "WITHOUT" not in capsys.readouterr().err


# --- end to end against the real collector ------------------------------------------------------


def collector_missing() -> str | None:
    import importlib.util

    for module in ("collector.app", "collector.cli", "collector.migrate"):
        if importlib.util.find_spec(module) is None:
            return f"{module} does not exist yet (the collector is built concurrently)"
    return None


needs_collector = pytest.mark.skipif(
    collector_missing() is not None, reason=str(collector_missing())
)
PASSWORD = "uplink-test-password-1"


class Collector:
    """``medtap collector serve`` (uvicorn, SQLite file) on 127.0.0.1; restartable on the
    same port and database."""

    def __init__(self, tmp_path: Path) -> None:
        self.db_file = tmp_path / "collector.db"
        self.database = f"sqlite:///{self.db_file}"
        self.log = tmp_path / "collector.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.cli("collector", "migrate", "--database", self.database)
        self.token = self.cli("collector", "add-sensor", SENSOR, "--database", self.database)
        self.cli(
            "collector",
            "add-user",
            "reader",
            "--password-stdin",
            "--database",
            self.database,
            stdin=PASSWORD + "\n",
        )

    def cli(self, *args: str, stdin: str | None = None) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "agent.cli", *args],
            capture_output=True,
            text=True,
            input=stdin,
            cwd=REPO,
            timeout=120,
        )
        assert out.returncode == 0, f"medtap {' '.join(args)}: {out.stderr}"
        return out.stdout.strip()

    def start(self) -> None:
        cmd = [sys.executable, "-m", "agent.cli", "collector", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--database", self.database]
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO)
        end = time.monotonic() + 60
        import httpx

        while time.monotonic() < end:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"collector did not start: {self.log.read_text()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: an in-flight ingest gets no answer
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def get(self, path: str) -> Any:
        import httpx

        with httpx.Client(base_url=self.url, timeout=30) as c:
            login = c.post("/api/v1/login", json={"username": "reader", "password": PASSWORD})
            login.raise_for_status()
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            answer = c.get(path, headers=headers)
            answer.raise_for_status()
            return answer.json()

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        import sqlite3

        with sqlite3.connect(f"file:{self.db_file}?mode=ro", uri=True) as db:
            return list(db.execute(query))


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    server = Collector(tmp_path)
    server.start()
    yield server
    server.stop()


def device_view(d: dict[str, Any]) -> tuple[Any, ...]:
    fields = ("mac", "device_type", "vendor", "model", "software_version", "serial", "category")
    return (*(d.get(f) for f in fields), tuple(sorted(d["ips"])), tuple(sorted(d["vlans"])))


@needs_collector
@pytest.mark.slow
def test_e2e_analyze_upload_fills_the_real_collector(
    tmp_path: Path, collector: Collector, report: dict[str, Any]
) -> None:
    spool = tmp_path / "spool"
    args = upload_args(collector.url, spool)
    first = medtap(*args, env={"MEDTAP_TOKEN": collector.token})
    assert first.returncode == 0, first.stderr
    assert "1 stored, 0 already there" in first.stderr
    devices = collector.get("/api/v1/devices?limit=500")
    assert devices["count"] == len(report["devices"])
    got, want = map(device_view, devices["data"]), map(device_view, report["devices"])
    assert sorted(got, key=repr) == sorted(want, key=repr)
    assert all(d["sensors"] == [SENSOR] for d in devices["data"])

    again = medtap(*args, env={"MEDTAP_TOKEN": collector.token})  # same capture, same ids
    assert again.returncode == 0 and "0 stored, 1 already there" in again.stderr
    assert collector.get("/api/v1/devices?limit=500") == devices  # nothing counted twice
    wrong = medtap(*args, env={"MEDTAP_TOKEN": "not-the-token"})
    assert wrong.returncode == 4 and "refused the sensor token" in wrong.stderr


@needs_collector
@pytest.mark.slow
def test_e2e_collector_killed_and_restarted_mid_upload(
    tmp_path: Path, collector: Collector, report: dict[str, Any]
) -> None:
    """The collector is SIGKILLed while ``analyze --upload`` is sending 35 one-item batches
    and restarted on the same port and database; every batch is stored exactly once."""
    spool = tmp_path / "spool"
    expected = {
        b.batch_id for b in batches_from_report(report, sensor=SENSOR, limits=BatchLimits(1, 1, 1))
    }
    env = {**os.environ, "MEDTAP_TOKEN": collector.token, "MEDTAP_UPLINK_BATCH_ITEMS": "1"}
    args = upload_args(collector.url, spool)
    sensor = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def stored() -> int:
        try:
            rows = collector_sql(spool, "SELECT value FROM counters WHERE name = 'stored'")
        except Exception:  # the spool does not exist yet
            return 0
        return int(rows[0][0]) if rows else 0

    end = time.monotonic() + 120
    while stored() < 3:
        assert sensor.poll() is None and time.monotonic() < end, sensor.stderr
        time.sleep(0.005)
    sensor.send_signal(signal.SIGSTOP)  # hold the sensor still while the collector dies
    collector.kill()
    sensor.send_signal(signal.SIGCONT)
    left = collector_sql(spool, "SELECT COUNT(*) FROM batches")[0][0]
    assert 0 < left < len(expected), "the kill did not land mid-upload"
    time.sleep(1.5)
    collector.start()
    _, err = sensor.communicate(timeout=120)
    assert sensor.returncode == 0, err
    ingested = [r[0] for r in collector.sql("SELECT batch_id FROM ingested_batch")]
    assert len(ingested) == len(set(ingested)) and set(ingested) == expected
    connections = collector.sql("SELECT SUM(connections) FROM flow")[0][0]
    assert connections == report["flows"]["connections"]  # no batch counted twice
    assert collector.get("/api/v1/devices?limit=500")["count"] == len(report["devices"])


def collector_sql(spool: Path, query: str) -> list[tuple[Any, ...]]:
    import sqlite3

    with sqlite3.connect(f"file:{spool / 'spool.sqlite3'}?mode=ro", uri=True) as db:
        return list(db.execute(query))
