"""Collector read-API latency at 10,000 devices (a measurement to report, not a test).

    python bench/api_latency.py [--report FILE] [--devices 10000] [--requests 200]
                                [--database URL]

1. A real collector: ``medtap collector migrate``, ``add-sensor``, ``add-user --role viewer``,
   ``serve`` on 127.0.0.1 (SQLite in a temporary directory unless ``--database`` names an
   empty database, e.g. ``postgresql://USER:PW@127.0.0.1:5432/DB``).
2. Filled through the real ``POST /api/v1/ingest``: the 1M-packet capture's devices (as the
   sensor's batch builder makes them from the cached report, so evidence, classification,
   hostnames and VLANs have the report's shapes) are cloned with fresh MACs, ids and IPs until
   ``--devices`` distinct devices exist; each clone's flows are the report's flows with the
   addresses mapped the same way (``--flows-per-copy`` caps them). Batches of 1,000 devices.
3. A viewer logs in (``POST /api/v1/login``) and times ``--requests`` sequential requests per
   endpoint with one keep-alive client, after 5 untimed warm-up requests: the grouped
   inventory, the first and a deep device page (100 each), device detail (ids spread over the
   whole inventory) and the CSV asset register. Client-side wall time per request, response
   fully read: p50 / p99 / max in ms.

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ingest import load_report, medtap, start_collector  # noqa: E402

from agent.uplink.batch import BatchLimits, batches_from_report, encode_batch  # noqa: E402

PASSWORD = "bench viewer password 10k"
SENSOR = "latency-bench"


def templates(report: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The report's devices and flows as wire dicts (the uplink's allow-list applied)."""
    limits = BatchLimits(devices=50_000, flows=200_000, violations=50_000, max_bytes=1 << 30)
    devices: list[dict[str, Any]] = []
    flows: list[dict[str, Any]] = []
    for b in batches_from_report(report, sensor=SENSOR, limits=limits):
        devices += [d.model_dump(mode="json") for d in b.devices]
        flows += [f.model_dump(mode="json") for f in b.flows]
    return devices, flows


def clone_ip(ip: str, copy_no: int) -> str:
    """Copy ``copy_no`` (>= 1) of an address: IPv4 with ``copy_no`` added to the first octet,
    IPv6 with it added to byte 13 (collisions only merge devices; the script reports the
    collector's device count)."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        o = addr.packed
        return f"{(o[0] + copy_no) % 224 or 1}.{o[1]}.{o[2]}.{o[3]}"
    raw = bytearray(addr.packed)
    raw[13] = (raw[13] + copy_no) & 0xFF
    return str(ipaddress.IPv6Address(bytes(raw)))


def clone(devices: list[dict[str, Any]], flows: list[dict[str, Any]], copy_no: int,
          flow_cap: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Copy ``copy_no`` of every device (new MAC, id, IPs) and of up to ``flow_cap`` flows."""
    if copy_no == 0:
        return devices, flows[:flow_cap]
    ipmap: dict[str, str] = {}

    def ip(a: str) -> str:
        if a not in ipmap:
            try:
                ipmap[a] = clone_ip(a, copy_no)
            except ValueError:
                ipmap[a] = a
        return ipmap[a]

    out = []
    for i, d in enumerate(devices):
        d = copy.deepcopy(d)
        if d.get("mac"):
            mac = bytes([2, copy_no & 255, i >> 16 & 255, i >> 8 & 255, i & 255, 0x42])
            d["mac"] = ":".join(f"{b:02x}" for b in mac)
        d["ips"] = [ip(a) for a in d.get("ips", [])]
        d["id"] = f"mac:{d['mac']}" if d.get("mac") else f"bench:{copy_no}:{i}"
        out.append(d)
    out_flows = []
    for f in flows[:flow_cap]:
        f = copy.deepcopy(f)
        f["client"], f["server"] = ip(f["client"]), ip(f["server"])
        out_flows.append(f)
    return out, out_flows


def fill(url: str, token: str, report: dict[str, Any], n: int, flow_cap: int) -> dict[str, Any]:
    """Send copies of the report's devices (1,000 per batch; each copy's flows in its last
    batch) to the collector until ``n`` devices were sent."""
    from collector.schema import Batch

    devices, flows = templates(report)
    made = batches = n_flows = evidence = 0
    t0 = time.perf_counter()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                      timeout=300) as client:  # fmt: skip
        copy_no = 0
        while made < n:
            devs, fls = clone(devices, flows, copy_no, flow_cap)
            devs = devs[: n - made]
            chunks = [devs[i : i + 1000] for i in range(0, len(devs), 1000)]
            for k, part in enumerate(chunks):
                fpart = fls if k == len(chunks) - 1 else []
                ts = [x["last_seen"] for x in [*part, *fpart] if x.get("last_seen")]
                batch = Batch.model_validate(
                    {
                        "sensor": SENSOR,
                        "batch_id": f"lat-{copy_no:03d}-{k:03d}",
                        "started": min(ts),
                        "ended": max(ts),
                        "devices": part,
                        "flows": fpart,
                    }
                )
                r = client.post("/api/v1/ingest", content=encode_batch(batch),
                                headers={"Content-Encoding": "gzip",
                                         "Content-Type": "application/json"})  # fmt: skip
                r.raise_for_status()
                batches += 1
                n_flows += len(fpart)
                evidence += sum(len(d.get("evidence", [])) for d in part)
            made += len(devs)
            copy_no += 1
    return {
        "fill_batches": batches,
        "fill_devices_sent": made,
        "fill_flows_sent": n_flows,
        "fill_evidence_rows_sent": evidence,
        "fill_seconds": round(time.perf_counter() - t0, 1),
    }


def timed(client: httpx.Client, paths: list[str], n: int) -> dict[str, float]:
    for p in paths[:5]:
        client.get(p).raise_for_status()
    times = []
    size = 0
    for i in range(n):
        p = paths[i % len(paths)]
        t0 = time.perf_counter()
        r = client.get(p)
        r.read()
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        size = len(r.content)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(times[min(len(times) - 1, int(round(0.99 * len(times))) - 1)], 1),
        "max_ms": round(times[-1], 1),
        "bytes": size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pcap", type=Path, default=REPO / "bench" / "data" / "hosp_1m.pcap")
    ap.add_argument("--report", type=Path, help="a `medtap analyze -f json` report to use")
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--flows-per-copy", type=int, default=2_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--database", help="an empty database URL [default: SQLite in a tmpdir]")
    args = ap.parse_args()

    report, _ = load_report(args.pcap, args.report)
    with tempfile.TemporaryDirectory(prefix="medtap-latency-") as tmp:
        work = Path(tmp)
        database = args.database or f"sqlite:///{work / 'collector.db'}"
        medtap("collector", "migrate", "--database", database)
        sensor_token = medtap("collector", "add-sensor", SENSOR, "--database", database)
        medtap("collector", "add-user", "viewer", "--role", "viewer", "--password-stdin",
               "--database", database, stdin=PASSWORD + "\n")  # fmt: skip
        load_before = os.getloadavg()
        proc, url = start_collector(database, work / "collector.log")
        try:
            result: dict[str, Any] = fill(url, sensor_token, report, args.devices,
                                          args.flows_per_copy)  # fmt: skip
            with httpx.Client(base_url=url, timeout=300) as client:
                r = client.post("/api/v1/login", json={"username": "viewer", "password": PASSWORD})
                r.raise_for_status()
                client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
                first = client.get("/api/v1/devices", params={"limit": 1}).json()
                total = first["count"]
                ids: list[int] = []
                for skip in range(0, total, 500):
                    page = client.get("/api/v1/devices", params={"limit": 500, "skip": skip})
                    ids += [d["id"] for d in page.json()["data"]]
                step = max(1, len(ids) // args.requests)
                detail = [f"/api/v1/devices/{i}" for i in ids[::step]]
                deep = max(0, total - 100)
                endpoints = {
                    "GET /api/v1/inventory/groups": ["/api/v1/inventory/groups"],
                    "GET /api/v1/devices?limit=100": ["/api/v1/devices?limit=100"],
                    f"GET /api/v1/devices?limit=100&skip={deep}": [
                        f"/api/v1/devices?limit=100&skip={deep}"
                    ],
                    "GET /api/v1/devices/{id}": detail,
                    "GET /api/v1/exports/assets.csv": ["/api/v1/exports/assets.csv"],
                }
                result["devices_in_collector"] = total
                result["groups"] = client.get("/api/v1/inventory/groups").json()["count"]
                result["latency"] = {
                    name: timed(client, paths, args.requests) for name, paths in endpoints.items()
                }
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    result.update(
        {
            "requests_per_endpoint": args.requests,
            "database": database.split(":", 1)[0],
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}",
        }
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
