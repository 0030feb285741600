"""Ingest benchmark: several sensors upload a 1M-packet capture's results to a real collector.

    python bench/ingest.py [--pcap bench/data/hosp_1m.pcap | --report FILE] [--sensors 4]
                           [--batch-items 1000] [--database URL] [--duplicates]

1. The report: ``medtap analyze PCAP -f json`` (~1 min for the 1M capture), cached beside
   the capture as ``<pcap>.report.json`` (bench/data/ is gitignored).
2. A real collector: ``medtap collector migrate``, ``add-sensor bench-1..N``, ``serve`` on
   127.0.0.1 (SQLite in a temporary directory unless ``--database`` names another, e.g. an
   empty PostgreSQL database: ``--database postgresql://USER:PW@127.0.0.1:5432/DB``).
3. Each sensor's batches are built from the report with its own name (so the ids differ and
   the collector merges the same devices from N sensors, as in a hospital with overlapping
   mirror ports) and spooled in its own spool (timed: spool writes/s).
4. N threads, one per sensor, each with its own client and spool, drain at once (the
   collector is another process; the threads mostly wait on it). Timed from the first send
   to the last ack: batches/s and observations/s, where an observation is one device, flow
   or violation record in a batch (evidence rows are counted separately).
5. Checked: the collector's ``ingested_batch`` table holds every batch exactly once.
   ``--duplicates`` then sends every batch again and times the all-``duplicate`` path.

Prints one JSON document. API latency at 10k devices: bench/api_latency.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.uplink.batch import (  # noqa: E402
    BatchLimits,
    batches_from_report,
    encode_batch,
    heartbeat_from_report,
)
from agent.uplink.client import UplinkClient, UplinkConfig  # noqa: E402
from agent.uplink.drain import Backoff, DrainResult, drain  # noqa: E402
from agent.uplink.spool import Spool, SpoolItem  # noqa: E402


def medtap(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=REPO,
        timeout=900,
    )
    if out.returncode != 0:
        raise SystemExit(f"medtap {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out.stdout.strip()


def load_report(pcap: Path, report: Path | None) -> tuple[dict[str, Any], Path]:
    path = report or pcap.with_name(pcap.name + ".report.json")
    if not path.exists():
        print(f"analysing {pcap} (cached in {path}) ...", file=sys.stderr)
        medtap("analyze", str(pcap), "-f", "json", "--no-progress", "-o", str(path))
    data: dict[str, Any] = json.loads(path.read_text())
    return data, path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_collector(database: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "agent.cli", "collector", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--database", database]
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"collector exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"collector did not start: {log.read_text()}")


def spool_sensor(
    report: dict[str, Any], sensor: str, directory: Path, limits: BatchLimits
) -> tuple[Spool, int, int, int, float, int]:
    """Build, encode and spool one sensor's batches:
    (spool, batches, items, evidence rows, seconds spent in put, gzip bytes)."""
    batches = batches_from_report(
        report, sensor=sensor, limits=limits, heartbeat=heartbeat_from_report(report)
    )
    items = sum(len(b.devices) + len(b.flows) + len(b.violations) for b in batches)
    evidence = sum(len(d.evidence) for b in batches for d in b.devices)
    spool = Spool(directory)
    encoded = [SpoolItem(b.batch_id, encode_batch(b)) for b in batches]
    t0 = time.perf_counter()
    for item in encoded:  # one put per batch, as a live sensor does (one fsync each)
        spool.put([item])
    seconds = time.perf_counter() - t0
    return spool, len(batches), items, evidence, seconds, sum(len(i.body) for i in encoded)


def drain_all(spools: list[Spool], url: str, tokens: list[str]) -> tuple[float, list[DrainResult]]:
    results: list[DrainResult] = [DrainResult() for _ in spools]
    go = threading.Barrier(len(spools) + 1)

    def run(i: int) -> None:
        with UplinkClient(UplinkConfig(url=url, token=tokens[i], timeout=120)) as client:
            go.wait()
            results[i] = drain(spools[i], client, idle_deadline=120, backoff=Backoff(0.05, 1.0))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(spools))]
    for t in threads:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, results


def count_ingested(database: str) -> tuple[int, int]:
    from sqlalchemy import text

    from collector.db import make_engine  # postgresql:// -> psycopg 3, as the collector does

    engine = make_engine(database)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT COUNT(*), COUNT(DISTINCT batch_id) FROM ingested_batch"))
        total, distinct = rows.one()
    engine.dispose()
    return int(total), int(distinct)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pcap", type=Path, default=REPO / "bench" / "data" / "hosp_1m.pcap")
    ap.add_argument("--report", type=Path, help="a `medtap analyze -f json` report to use")
    ap.add_argument("--sensors", type=int, default=4)
    ap.add_argument("--batch-items", type=int, default=1000, help="max items per batch")
    ap.add_argument("--database", help="collector database URL [default: SQLite in a tmpdir]")
    ap.add_argument("--duplicates", action="store_true", help="also time a full re-send")
    args = ap.parse_args()

    report, report_path = load_report(args.pcap, args.report)
    n = args.batch_items
    limits = BatchLimits(devices=n, flows=n, violations=n)
    with tempfile.TemporaryDirectory(prefix="medtap-ingest-") as tmp:
        work = Path(tmp)
        database = args.database or f"sqlite:///{work / 'collector.db'}"
        medtap("collector", "migrate", "--database", database)
        names = [f"bench-{i + 1}" for i in range(args.sensors)]
        tokens = [medtap("collector", "add-sensor", s, "--database", database) for s in names]
        proc, url = start_collector(database, work / "collector.log")
        try:
            built = [spool_sensor(report, s, work / f"spool-{s}", limits) for s in names]
            spools = [b[0] for b in built]
            batches = sum(b[1] for b in built)
            items = sum(b[2] for b in built)
            evidence = sum(b[3] for b in built)
            spool_seconds = sum(b[4] for b in built)
            wall, results = drain_all(spools, url, tokens)
            stored = sum(r.stored for r in results)
            total, distinct = count_ingested(database)
            result: dict[str, Any] = {
                "report": str(report_path),
                "packets": report["stats"]["packets"],
                "devices": len(report["devices"]),
                "flows": len(report["flows"]["items"]),
                "violations": len(report["violations"]),
                "sensors": args.sensors,
                "batch_items": n,
                "batches": batches,
                "observations": items,
                "evidence_rows": evidence,
                "gzip_bytes": sum(b[5] for b in built),
                "spool_puts_per_s": round(batches / spool_seconds, 1),
                "seconds": round(wall, 2),
                "batches_per_s": round(batches / wall, 2),
                "observations_per_s": round(items / wall, 1),
                "evidence_rows_per_s": round(evidence / wall, 1),
                "stored": stored,
                "retries": sum(r.retries for r in results),
                "ingested_rows": total,
                "exactly_once": total == distinct == batches == stored,
                "database": database.split(":", 1)[0],
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                f"Python {platform.python_version()}",
            }
            if args.duplicates:
                for i, s in enumerate(spools):  # same ids again: the collector's duplicate path
                    rebuilt = batches_from_report(report, sensor=names[i], limits=limits)
                    s.put([SpoolItem(x.batch_id, encode_batch(x)) for x in rebuilt])
                dup_wall, dup_results = drain_all(spools, url, tokens)
                result["duplicate_seconds"] = round(dup_wall, 2)
                result["duplicate_batches_per_s"] = round(batches / dup_wall, 2)
                result["duplicates"] = sum(r.duplicate for r in dup_results)
                result["ingested_rows_after_duplicates"] = count_ingested(database)[0]
            for s in spools:
                s.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps(result, indent=2))
    if not result["exactly_once"]:
        raise SystemExit("some batch was not stored exactly once")


if __name__ == "__main__":
    main()
