"""Shared helpers for the collector tests: batches built from a real ``medtap analyze``
report of pcaps/sample/hospital-sample.pcapng, databases, and a real uvicorn server.

A batch is built the way a sensor's uplink builds one (report devices -> DeviceReport,
``flows.items`` -> FlowReport, violations -> ViolationReport, stats -> Heartbeat), but here,
from the report JSON, so these tests do not depend on agent/uplink.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, inspect, text

from collector.db import make_engine
from collector.migrate import upgrade
from collector.models import Base
from collector.schema import Batch, DeviceReport, FlowReport, Heartbeat, ViolationReport

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "pcaps" / "sample" / "hospital-sample.pcapng"
POLICY = ROOT / "pcaps" / "policy" / "policy.yaml"  # zones and rules for the sample's VLANs
POSTGRES_ENV = "MEDTAP_TEST_POSTGRES_URL"
# Patient data the sample capture carries (pcaps/sample/README.md); none may reach the store.
CANARIES = (
    "CANARY",
    "CANARY^PATIENT",
    "CANARY-ID-4711",
    "CANARY^MOTHER",
    "CANARY^DOCTOR",
    "Vogel",
    "Kanarienweg",
    "555-0147",
    "19010101",
    "Allergie",
)


@functools.lru_cache(maxsize=1)
def sample_report() -> dict[str, Any]:
    """The JSON report of the sample capture with the sample policy (zones, violations),
    from the real CLI, once per test session."""
    cmd = [sys.executable, "-m", "agent.cli", "analyze", str(SAMPLE), "--policy", str(POLICY)]
    out = subprocess.run(
        [*cmd, "-f", "json", "--no-progress"],
        capture_output=True,
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def report() -> dict[str, Any]:
    return copy.deepcopy(sample_report())


def batch_from_report(
    rep: dict[str, Any],
    *,
    sensor: str,
    batch_id: str | None = None,
    heartbeat: bool = True,
) -> dict[str, Any]:
    """A wire ``Batch`` (as JSON-ready dict), validated against collector/schema.py."""
    devices = [DeviceReport.model_validate(d) for d in rep["devices"]]
    flows = [FlowReport.model_validate(f) for f in rep["flows"]["items"]]
    viols = [ViolationReport.model_validate(v) for v in rep["violations"]]
    times = [f.first_seen for f in flows] + [f.last_seen for f in flows]
    stats = rep["stats"]
    hb = None
    if heartbeat:
        hb = Heartbeat(
            at=max(times),
            version=rep["medtap_version"],
            packets=stats["packets"],
            bytes=stats["bytes"],
            malformed=sum(stats["malformed"].values()),
            flows_evicted=stats["flows_evicted"],
            parser_errors=sum(stats["parser_errors"].values()),
        )
    batch = Batch(
        sensor=sensor,
        batch_id=batch_id or f"b-{uuid.uuid4().hex}",
        started=min(times),
        ended=max(times),
        devices=devices,
        flows=flows,
        violations=viols,
        heartbeat=hb,
    )
    return batch.model_dump(mode="json")


T0 = "2026-01-05T08:00:00Z"
T1 = "2026-01-05T09:00:00Z"


def device(id_: str, **fields: Any) -> dict[str, Any]:
    """A hand-made DeviceReport dict (defaults: one evidence row, seen T0..T1)."""
    base: dict[str, Any] = {
        "id": id_,
        "evidence": [
            {"kind": "test.kind", "value": "v1", "source": "unit", "count": 1, "confidence": 0.5}
        ],
        "first_seen": T0,
        "last_seen": T1,
        "flows": 1,
    }
    base.update(fields)
    return base


def violation(rule: str = "guest-to-imaging", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "rule": rule,
        "severity": "high",
        "reason": "No rule allows guest to imaging on tcp/104.",
        "service": "tcp/104",
        "app": "dicom",
        "client": {"ip": "10.99.0.57", "vlan": 99, "zone": "guest"},
        "server": {"ip": "10.30.0.10", "vlan": 30, "zone": "imaging", "device_type": "pacs"},
        "flows": 1,
        "packets": 10,
        "bytes": 1000,
        "first_seen": T0,
        "last_seen": T1,
    }
    base.update(fields)
    return base


def small_batch(
    sensor: str,
    *,
    batch_id: str | None = None,
    devices: list[dict[str, Any]] | None = None,
    flows: list[dict[str, Any]] | None = None,
    violations: list[dict[str, Any]] | None = None,
    heartbeat: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A hand-made batch, validated against the wire contract."""
    batch = Batch.model_validate(
        {
            "sensor": sensor,
            "batch_id": batch_id or f"b-{uuid.uuid4().hex}",
            "started": T0,
            "ended": T1,
            "devices": devices or [],
            "flows": flows or [],
            "violations": violations or [],
            "heartbeat": heartbeat,
        }
    )
    return batch.model_dump(mode="json")


# --- databases ---------------------------------------------------------------------------


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def reset_database(engine: Engine) -> None:
    """Drop every collector table and the Alembic version table (PostgreSQL reuse)."""
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        if inspect(conn).has_table("alembic_version"):
            conn.execute(text("DROP TABLE alembic_version"))


def database_kinds() -> list[Any]:
    """SQLite file, and PostgreSQL when MEDTAP_TEST_POSTGRES_URL is set (else skipped)."""
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param(
            "postgresql",
            id="postgresql",
            marks=pytest.mark.skipif(
                postgres_url() is None,
                reason=f"{POSTGRES_ENV} is not set (.ci/run starts PostgreSQL and sets it)",
            ),
        ),
    ]


@contextmanager
def migrated_engine(kind: str, tmp_path: Path, revision: str = "head") -> Iterator[Engine]:
    """A database migrated to ``revision`` (an older one for upgrade tests)."""
    url = f"sqlite:///{tmp_path / 'collector.db'}" if kind == "sqlite" else postgres_url()
    assert url is not None
    engine = make_engine(url)
    try:
        if kind == "postgresql":
            reset_database(engine)
        upgrade(engine, revision)
        yield engine
    finally:
        if kind == "postgresql":
            reset_database(engine)
        engine.dispose()


# --- a real collector process ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def medtap(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    """Run the real ``medtap`` CLI; returns stdout, raises on a non-zero exit."""
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=120,
    )
    if out.returncode != 0:
        raise AssertionError(f"medtap {' '.join(args)} -> {out.returncode}: {out.stderr}")
    return out.stdout


@dataclass
class Server:
    url: str
    database: str
    proc: subprocess.Popen[bytes]
    log: Path
    verify: str | bool = True

    def client(self, token: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=self.verify)
            if isinstance(self.verify, str)
            else self.verify
        )
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, verify=verify, **kw)


@contextmanager
def run_server(
    database: str,
    log: Path,
    *,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    scheme: str = "http",
    verify: str | bool = True,
) -> Iterator[Server]:
    """``medtap collector serve`` on 127.0.0.1 and a free port, until the block ends."""
    port = free_port()
    cmd = [sys.executable, "-m", "agent.cli", "collector", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--database", database, *extra]
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})}
        )
    server = Server(f"{scheme}://127.0.0.1:{port}", database, proc, log, verify)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"collector exited {proc.returncode}: {log.read_text()}")
            try:
                with server.client() as c:
                    if c.get("/healthz").status_code == 200:
                        break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"collector did not start: {log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
