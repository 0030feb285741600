"""Patient data never leaves a capture: every capture in pcaps/ goes through the real
``medtap analyze`` (with the policy.yaml beside it, where there is one) and ``--upload`` into
a real collector, and every output is searched for the captures' canary patient strings:

- stdout and stderr of every run (``-v``), the JSON reports, the sensor's alert file;
- the spool (every batch body decompressed, every table, and the raw SQLite and WAL bytes),
  taken while the collector is down, so every batch is still in it;
- after ``medtap uplink drain``: the collector's database (every row of every table, and the
  raw bytes of the SQLite file and its WAL), every API answer (devices and each device,
  groups, flows, zone flows, violations and each violation, sensors, exports, audit,
  policy), the web pages and exports, the collector's alert file and its log.

Canaries come from the truth files' ``canaries`` keys plus the sample's known list. Each
run's own report and logs are checked against its captures' canaries exactly; everything is
also checked against all canaries: distinctive ones as plain substrings (and ``canary`` in
any letter case), the two short numeric-looking ones (``98.6``, ``A.01``) as whole tokens,
since digits and dots occur in legitimate versions and counters around them.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from tests.collector_fixtures import free_port, medtap, run_server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"
SENSOR = "privacy-span"
PASSWORD = "correct horse battery staple"
KNOWN = (
    "CANARY^PATIENT",
    "CANARY-ID-4711",
    "CANARY^MOTHER",
    "CANARY^DOCTOR",
    "Vogel",
    "Kanarienweg 7",
    "Kanarienweg",
    "+49-30-555-0147",
    "555-0147",
    "19010101",
    "Allergie",
)
# Too short or too numeric to search as a bare substring: matched as whole tokens only.
TOKEN_CANARIES = ("98.6", "A.01")
# Canaries of one capture that another capture legitimately reports: allowed only in exactly
# that other context (the canary's own capture is still checked without exception).
# - "A.01", a bed label in vendor/intellivue, is the LLDP-MED hardware revision of the
#   Philips device 00:09:fb:3a:7c:21 in l2/lldp_med (whose truth expects it);
# - "Klinikum Musterstadt", the organization of tls13.pcap's *encrypted* certificate in
#   banners/, is the organization of the clear-text TLS 1.2 certificates of the servers in
#   tls/tls-clinical (evidence kinds tls.cert_*, with those flows as source; "->" is
#   "-&gt;" in HTML).
ELSEWHERE = {
    "A.01": re.compile(rb"A\.01.{0,120}?lldp from 00:09:fb:3a:7c:21", re.DOTALL),
    "Klinikum Musterstadt": re.compile(
        rb"Klinikum Musterstadt.{0,120}?tls tcp [0-9.]+:[0-9]+ (->|-&gt;) "
        rb"(10\.10\.5\.20:2575|10\.30\.0\.10:11112|10\.10\.5\.50:443) ",
        re.DOTALL,
    ),
}


def captures() -> list[Path]:
    found = [
        p
        for p in PCAPS.rglob("*")
        if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".pcap.gz"))
    ]
    return sorted(found)


def canaries_of(capture: Path) -> list[str]:
    name = capture.name
    for suffix in (".gz", ".pcapng", ".pcap"):
        name = name.removesuffix(suffix)
    for truth in (
        capture.parent / f"{capture.name}.truth.json",
        capture.with_name(f"{name}.truth.json"),
    ):
        if truth.exists():
            return list(json.loads(truth.read_text("utf-8")).get("canaries", []))
    return []


def all_canaries() -> list[str]:
    found = set(KNOWN)
    for capture in captures():
        found.update(canaries_of(capture))
    return sorted(found)


def token_pattern(canary: str) -> re.Pattern[bytes]:
    return re.compile(rb"(?<![0-9A-Za-z.])" + re.escape(canary.encode()) + rb"(?![0-9A-Za-z.])")


class Scanner:
    """Collects every output as bytes under a label, then reports every canary hit."""

    def __init__(self, canaries: list[str], *, exact: bool = False) -> None:
        """``exact``: every canary as a plain substring, and no case-insensitive search."""
        self.plain = [c.encode() for c in canaries if exact or c not in TOKEN_CANARIES]
        self.tokens = [] if exact else [token_pattern(c) for c in canaries if c in TOKEN_CANARIES]
        self.exact = exact
        self.any_case = not exact
        self.hits: list[str] = []
        self.scanned = 0

    def scan(self, label: str, data: bytes | str) -> None:
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        self.scanned += len(raw)
        # UTF-16 too: a Windows or DICOM/IntelliVue string copied raw would be wide
        for blob in (raw, raw.replace(b"\x00", b"")):
            lower = blob.lower()
            for canary in self.plain:
                at = blob.find(canary)
                while at >= 0:
                    if not self.legitimate(canary.decode(), blob, at):
                        near = blob[max(0, at - 40) : at + len(canary) + 40]
                        self.hits.append(f"{label}: {canary.decode()} near {near!r}")
                        break
                    at = blob.find(canary, at + 1)
            if self.any_case and b"canary" in lower:
                at = lower.index(b"canary")
                self.hits.append(f"{label}: 'canary' (any case) in {blob[at - 30 : at + 40]!r}")
            for pattern in self.tokens:
                for m in pattern.finditer(blob):
                    if not self.legitimate(m.group().decode(), blob, m.start()):
                        near = blob[max(0, m.start() - 40) : m.end() + 40]
                        self.hits.append(f"{label}: {m.group().decode()} near {near!r}")
                        break

    def legitimate(self, canary: str, blob: bytes, at: int) -> bool:
        context = None if self.exact else ELSEWHERE.get(canary)
        return context is not None and context.match(blob, at) is not None


def dump_sqlite(
    path: Path, scanner: Scanner, label: str, *, gunzip_column: str | None = None
) -> int:
    """Every row of every table; ``gunzip_column`` values are decompressed first."""
    rows = 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the file
            columns = [d[0] for d in cursor.description]
            for row in cursor:  # a row as one text, its columns in order (context)
                rows += 1
                cells = []
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, bytes) and column == gunzip_column:
                        value = gzip.decompress(value)
                    cells.append(value if isinstance(value, bytes) else str(value).encode())
                scanner.scan(f"{label} {table} row", b"\x1f".join(cells))
    for suffix in ("", "-wal"):  # the raw file: free pages and the WAL keep old rows too
        raw = path.with_name(path.name + suffix)
        if raw.exists():
            scanner.scan(f"{label} raw {raw.name}", raw.read_bytes())
    return rows


def test_no_patient_data_from_any_capture_reaches_any_output(tmp_path: Path) -> None:
    files = captures()
    assert len(files) >= 45, [str(f) for f in files]
    canaries = all_canaries()
    assert {"CANARY^PATIENT", "Vogel", "98.6", "A.01", "NURSE.CANARY"} <= set(canaries)
    scanner = Scanner(canaries)

    db_file = tmp_path / "collector.db"
    db = f"sqlite:///{db_file}"
    medtap("collector", "migrate", "--database", db)
    token = medtap("collector", "add-sensor", SENSOR, "--database", db).strip()
    medtap(
        "collector", "add-user", "admin", "--role", "admin", "--password-stdin",
        "--database", db, stdin=PASSWORD + "\n",
    )  # fmt: skip
    spool = tmp_path / "spool"
    env = {**os.environ, "MEDTAP_TOKEN": token}
    groups: dict[Path, list[Path]] = defaultdict(list)
    for capture in files:
        groups[capture.parent].append(capture)

    # 1. every capture through analyze --upload while the collector is down: all spooled
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the collector is down
    runs = 0
    for directory, members in sorted(groups.items()):
        policy = directory / "policy.yaml"
        report = tmp_path / f"report-{directory.name}.json"
        cmd = [sys.executable, "-m", "agent.cli", "analyze", *map(str, members), "-f", "json",
               "-o", str(report), "--no-progress", "-v", "--upload", url, "--sensor-name",
               SENSOR, "--spool", str(spool), "--upload-deadline", "0"]  # fmt: skip
        if policy.exists():
            cmd += ["--policy", str(policy), "--alert", f"jsonl:{tmp_path / 'sensor-alerts.jsonl'}"]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=600)
        assert out.returncode in (1, 4), out.stderr.decode()[-2000:]  # 1: truncated.pcap
        assert b"batches are spooled" in out.stderr, out.stderr.decode()[-2000:]
        runs += 1
        text = out.stdout + out.stderr + report.read_bytes()
        assert json.loads(report.read_bytes())["devices"] or directory.name == "linktypes"
        # this run's own canaries, exactly as the per-capture tests use them
        own = Scanner(sorted({c for m in members for c in canaries_of(m)}), exact=True)
        own.scan(directory.name, text)
        assert not own.hits, own.hits
        scanner.scan(f"analyze {directory.name} stdout", out.stdout)
        scanner.scan(f"analyze {directory.name} stderr", out.stderr)
        scanner.scan(f"report {directory.name}", report.read_bytes())
    assert runs == len(groups)
    alerts = tmp_path / "sensor-alerts.jsonl"
    assert alerts.exists() and alerts.stat().st_size > 0
    scanner.scan("sensor alerts", alerts.read_bytes())
    spooled = dump_sqlite(spool / "spool.sqlite3", scanner, "spool", gunzip_column="body")
    assert spooled >= len(groups)

    # 2. the collector up, the spool drained into it
    extra = ("-v", "--alert", f"jsonl:{tmp_path / 'collector-alerts.jsonl'}")
    with run_server(db, tmp_path / "server.log", extra=extra) as server:
        drained = subprocess.run(
            [sys.executable, "-m", "agent.cli", "uplink", "drain", "--spool", str(spool),
             "--url", server.url, "-v"],
            cwd=ROOT, env=env, capture_output=True, timeout=600,
        )  # fmt: skip
        assert drained.returncode == 0, drained.stderr.decode()[-2000:]
        scanner.scan("uplink drain", drained.stdout + drained.stderr)
        with server.client() as c:
            r = c.post("/api/v1/login", json={"username": "admin", "password": PASSWORD})
            admin = r.json()["access_token"]
        answers = crawl(server.url, admin)
    assert len(answers) > 100
    for label, body in answers.items():
        scanner.scan(label, body)
    rows = dump_sqlite(db_file, scanner, "collector db")
    assert rows > 1000
    scanner.scan("collector log", (tmp_path / "server.log").read_bytes())
    scanner.scan("collector alerts", (tmp_path / "collector-alerts.jsonl").read_bytes())
    assert scanner.scanned > 5_000_000  # the outputs really were read
    assert not scanner.hits, "\n".join(scanner.hits[:50])


def crawl(url: str, admin: str) -> dict[str, bytes]:
    """Every read answer of the API and every web page, by label."""
    out: dict[str, bytes] = {}
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=60)
    web = httpx.Client(base_url=url, cookies={"medtap_session": admin}, timeout=60)
    with api, web:

        def get(client: httpx.Client, path: str) -> httpx.Response:
            r = client.get(path)
            assert r.status_code == 200, (path, r.status_code)
            out[path] = r.content
            return r

        device_ids: list[int] = []
        skip = 0
        while True:
            page = get(api, f"/api/v1/devices?limit=500&skip={skip}").json()
            device_ids += [d["id"] for d in page["data"]]
            skip += 500
            if skip >= page["count"]:
                break
        violation_ids = [v["id"] for v in get(api, "/api/v1/violations?limit=500").json()["data"]]
        assert device_ids and violation_ids
        for path in (
            "/api/v1/inventory/groups",
            "/api/v1/flows?limit=500",
            "/api/v1/flows/zones?limit=500",
            "/api/v1/sensors",
            "/api/v1/exports/assets.csv",
            "/api/v1/exports/assets.json",
            "/api/v1/audit?limit=500",
            "/api/v1/me",
        ):
            get(api, path)
        for device_id in device_ids:
            get(api, f"/api/v1/devices/{device_id}")
            get(web, f"/device/{device_id}")
        for violation_id in violation_ids:
            get(api, f"/api/v1/violations/{violation_id}")
        for path in (
            "/",
            "/inventory/devices?per=200",
            "/segmentation?status=all",
            "/sensors",
            "/audit",
            "/export/inventory.csv",
            "/export/inventory.json",
            "/export/violations.csv",
            "/export/violations.json",
        ):
            get(web, path)
    return out
