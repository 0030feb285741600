"""Web inventory page times at 10,000 devices (not a test: a measurement to report).

Builds a collector database (SQLite in a temporary directory, or ``--database URL``) with
``--devices`` synthetic devices through the real ingest path (collector.store), serves it with
the real ``medtap collector serve`` (uvicorn on 127.0.0.1), logs in through the login form and
times each page over HTTP: median and 95th percentile of ``--repeat`` requests, server render
included. It then counts the SQL statements per page in-process, at two page sizes: equal
counts mean a page costs a fixed number of queries (no N+1).

    python bench/web_inventory.py                # 10,000 devices
    python bench/web_inventory.py --devices 50000 --repeat 10
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, event, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.auth import create_sensor, create_user  # noqa: E402
from collector.db import make_engine, make_sessionmaker  # noqa: E402
from collector.migrate import upgrade  # noqa: E402
from collector.models import Device, Sensor, Violation  # noqa: E402
from collector.schema import (  # noqa: E402
    Batch,
    DeviceReport,
    EvidenceItem,
    FlowReport,
    Heartbeat,
    ViolationEndpoint,
    ViolationReport,
)
from collector.store import ingest_batch  # noqa: E402

PASSWORD = "bench password 10k devices"
SENSORS = ("icu-span", "radiology-span", "ward-span")
ZONES = {10: "clinical", 20: "medical", 30: "imaging", 40: "lab", 99: "guest"}
# (device type, category, vendor, [models], VLAN) — a plausible large hospital's mix
CATALOG = [
    (
        "patient-monitor",
        "medical",
        "Philips",
        ["IntelliVue MX800", "IntelliVue MX450", "IntelliVue MX550"],
        20,
    ),  # noqa: E501
    ("patient-monitor", "medical", "GE Healthcare", ["CARESCAPE B650", "CARESCAPE B450"], 20),
    ("patient-monitor", "medical", "Dräger", ["Infinity Delta", "Infinity M540"], 20),
    ("infusion-pump", "medical", "B. Braun", ["Infusomat Space", "Perfusor Space"], 20),
    ("infusion-pump", "medical", "BD", ["Alaris 8100"], 20),
    ("ventilator", "medical", "Dräger", ["Evita V800", "Savina 300"], 20),
    ("ventilator", "medical", "Hamilton Medical", ["HAMILTON-C6"], 20),
    ("ecg", "medical", "GE Healthcare", ["MAC 5500"], 20),
    ("medical-gateway", "medical", "Philips", ["IntelliVue Information Center"], 20),
    ("ct", "medical", "Siemens Healthineers", ["SOMATOM Force"], 30),
    ("mr", "medical", "Siemens Healthineers", ["MAGNETOM Vida"], 30),
    ("ultrasound", "medical", "GE Healthcare", ["LOGIQ E10", "Vivid E95"], 30),
    ("x-ray", "medical", "Fujifilm", ["FCR PROFECT CS"], 30),
    ("lab-analyzer", "medical", "Roche", ["cobas 6000"], 40),
    ("pacs", "clinical-it", "GE Healthcare", ["Centricity PACS"], 10),
    ("his", "clinical-it", "Dedalus", ["ORBIS"], 10),
    ("workstation", "clinical-it", "Dell", ["OptiPlex 7090"], 10),
    ("printer", "other", "HP", ["LaserJet M507"], 10),
    ("network-infrastructure", "infrastructure", "Cisco", ["Catalyst 9300"], 10),
    ("unknown", None, None, [None], 99),  # type: ignore[list-item]
]
WEIGHTS = [30, 12, 8, 40, 15, 6, 3, 4, 1, 1, 1, 3, 2, 3, 1, 1, 20, 3, 2, 10]


def synthetic_devices(n: int, now: datetime) -> list[DeviceReport]:
    """``n`` devices over the catalogue, ~60 groups, each with IPs, a VLAN, a hostname, a
    zone and a few evidence records (deterministic)."""
    slots = [i for i, w in enumerate(WEIGHTS) for _ in range(w)]
    out = []
    for i in range(n):
        dtype, category, vendor, models, vlan = CATALOG[slots[i % len(slots)]]
        model = models[(i // len(slots)) % len(models)]
        mac = "02:" + ":".join(f"{b:02x}" for b in i.to_bytes(5, "big"))
        ip = f"10.{vlan}.{(i >> 8) & 255}.{i & 255}"
        seen = now - timedelta(hours=i % 2000)
        evidence = [
            EvidenceItem(kind="hl7.msh.sending_application", value=f"{vendor}-{model}",
                         source=f"hl7 tcp {ip}:5000 -> 10.10.5.20:2575 vlan {vlan}",
                         confidence=0.8),
            EvidenceItem(kind="dhcp.hostname", value=f"dev-{i:05d}", source="dhcp", confidence=0.3),
        ] if vendor else []  # fmt: skip
        out.append(
            DeviceReport(
                id=f"mac:{mac}",
                mac=mac,
                ips=[ip],
                vlans=[vlan],
                hostnames=[f"dev-{i:05d}.hospital.lan"],
                category=category,
                device_type=dtype,
                vendor=vendor,
                model=model,
                software_version=f"{1 + i % 4}.{i % 3}" if vendor else None,
                confidence=0.8 if vendor else 0.0,
                evidence=evidence,
                zone=ZONES[vlan],
                first_seen=seen - timedelta(days=30),
                last_seen=seen,
                flows=1 + i % 7,
            )
        )
    return out


def populate(engine: Engine, n: int, batch_size: int = 1000) -> str:
    maker = make_sessionmaker(engine)
    with maker() as s:
        create_user(s, name="admin", role="admin", password=PASSWORD)
        for name in SENSORS:
            create_sensor(s, name=name)
        s.commit()
        sensor_ids = list(s.scalars(select(Sensor.id).order_by(Sensor.id)))
    now = datetime.now(UTC)
    devices = synthetic_devices(n, now)
    for k, start in enumerate(range(0, n, batch_size)):
        part = devices[start : start + batch_size]
        flows = [
            FlowReport(
                transport="tcp", vlan=d.vlans[0], client=d.ips[0], server="10.10.5.20",
                server_port=2575, app="hl7", connections=3, packets_to_server=30,
                packets_to_client=10, bytes_to_server=9000, bytes_to_client=800,
                client_zone=d.zone, server_zone="clinical", first_seen=d.first_seen or now,
                last_seen=d.last_seen or now,
            )
            for d in part[::5]
        ]  # fmt: skip
        violations = [
            ViolationReport(
                rule="guest-to-medical", severity="high", reason="guest reaches medical",
                service="tcp/80", client=ViolationEndpoint(ip=d.ips[0], zone=d.zone or "guest"),
                server=ViolationEndpoint(ip="10.20.0.1", zone="medical"), flows=1,
                first_seen=now, last_seen=now,
            )
            for d in part
            if d.zone == "guest"
        ][:50]  # fmt: skip
        batch = Batch(
            sensor=SENSORS[k % len(SENSORS)],
            batch_id=f"bench-{k:06d}",
            started=now,
            ended=now,
            devices=part,
            flows=flows,
            violations=violations,
            heartbeat=Heartbeat(at=now, version="bench", packets=10**6 * (k + 1)),
        )
        with maker() as s:
            ingest_batch(s, sensor_id=sensor_ids[k % len(sensor_ids)], batch=batch)
    with maker() as s:
        some = s.scalar(select(Device.id).where(Device.device_type == "patient-monitor"))
        assert s.scalar(select(Violation.id)) is not None
    return f"/device/{some}"


def serve(database: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (workdir / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "collector", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--database", database],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("collector did not start")


def login(client: httpx.Client) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    r = client.post(
        "/login",
        data={"csrf": token.group(1), "username": "admin", "password": PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.status_code


def pages(device_path: str, n: int) -> list[tuple[str, str]]:
    last = max(1, -(-n // 50))
    return [
        ("groups, first page", "/"),
        ("groups, sorted by last seen", "/?sort=last_seen&dir=desc"),
        ("groups, VLAN 20 + sensor", "/?vlan=20&sensor=icu-span"),
        ("groups, search 'mx800'", "/?q=mx800"),
        ("groups, seen in 7 days", "/?days=7"),
        (
            "largest group, first page",
            "/inventory/group?type=infusion-pump&vendor=B.+Braun&model=Infusomat+Space",
        ),
        ("all devices, first page", "/inventory/devices"),
        ("all devices, last page", f"/inventory/devices?page={last}"),
        ("all devices, search IP", "/inventory/devices?q=10.20.1.7"),
        ("one device", device_path),
        ("segmentation", "/segmentation"),
        ("sensors", "/sensors"),
        ("asset register CSV", "/export/inventory.csv"),
    ]


def time_pages(
    url: str, todo: list[tuple[str, str]], repeat: int
) -> list[tuple[str, float, float, int]]:  # noqa: E501
    out = []
    with httpx.Client(base_url=url, timeout=60) as client:
        login(client)
        for name, path in todo:
            times = []
            size = 0
            for _ in range(repeat):
                t0 = time.perf_counter()
                r = client.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, (path, r.status_code)
                size = len(r.content)
            times.sort()
            p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
            out.append((name, statistics.median(times), p95, size))
    return out


def count_queries(
    database: str, todo: list[tuple[str, str]], repeat: int
) -> list[tuple[str, int, int, float]]:
    """SQL statements per page at 25 and 200 rows per page, and the median CPU time of a
    page (50 rows), in-process: CPU time does not grow when other work shares the cores."""
    from fastapi.testclient import TestClient

    from collector.app import create_app
    from collector.settings import Settings

    engine = make_engine(database)
    statements = 0

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    app = create_app(Settings(database_url=database), engine=engine)
    out = []
    with TestClient(app) as client:
        login(client)  # type: ignore[arg-type]
        for name, path in todo:
            counts = []
            for per in (25, 200):
                statements = 0
                sep = "&" if "?" in path else "?"
                assert client.get(f"{path}{sep}per={per}").status_code == 200
                counts.append(statements)
            cpu = []
            for _ in range(repeat):
                t0 = time.process_time()
                client.get(path)
                cpu.append((time.process_time() - t0) * 1000)
            out.append((name, counts[0], counts[1], statistics.median(cpu)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database", help="an empty database URL (default: SQLite in tmp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medtap-bench-web-") as tmp:
        workdir = Path(tmp)
        database = args.database or f"sqlite:///{workdir / 'collector.db'}"
        engine = make_engine(database)
        upgrade(engine)
        t0 = time.perf_counter()
        device_path = populate(engine, args.devices)
        engine.dispose()
        print(f"{args.devices} devices ingested in {time.perf_counter() - t0:.1f} s")
        todo = pages(device_path, args.devices)
        proc, url = serve(database, workdir)
        try:
            timed = time_pages(url, todo, args.repeat)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        queries = {n: (a, b, c) for n, a, b, c in count_queries(database, todo, args.repeat)}
        print(
            f"\n{'page':30} {'median ms':>9} {'p95 ms':>7} {'CPU ms':>7} {'kB':>6}"
            f" {'SQL@25':>6} {'SQL@200':>7}"
        )
        for name, median, p95, size in timed:
            q25, q200, cpu = queries[name]
            print(
                f"{name:30} {median:9.1f} {p95:7.1f} {cpu:7.1f} {size / 1000:6.1f}"
                f" {q25:6d} {q200:7d}"
            )
        print("median/p95: wall time over HTTP; CPU ms: in-process CPU time per page")


if __name__ == "__main__":
    main()
