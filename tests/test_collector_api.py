"""The collector API through a real ``medtap collector serve`` (uvicorn) on 127.0.0.1.

One server (SQLite file) serves most tests; sensors and users are made with the real CLI.
Batches are built from the real ``medtap analyze`` report of the sample hospital capture,
whose frames carry canary patient data that must appear in no table, response or log.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.collector_fixtures import (
    CANARIES,
    POLICY,
    ROOT,
    Server,
    batch_from_report,
    device,
    free_port,
    medtap,
    postgres_url,
    report,
    reset_database,
    run_server,
    small_batch,
)

PASSWORD = "correct horse battery staple"
SERVER_ENV = {
    "MEDTAP_MAX_BODY_BYTES": str(1024 * 1024),
    "MEDTAP_MAX_DECOMPRESSED_BYTES": str(4 * 1024 * 1024),
    "MEDTAP_LOGIN_MAX_FAILURES": "3",
    "MEDTAP_LOGIN_MAX_FAILURES_PER_IP": "1000",
}


@dataclass
class Collector:
    server: Server
    db_path: Path
    tokens: dict[str, str]  # sensor name or user name -> bearer token

    def as_(self, who: str | None) -> httpx.Client:
        return self.server.client(self.tokens[who] if who else None)


def login(server: Server, name: str, password: str = PASSWORD) -> httpx.Response:
    with server.client() as c:
        return c.post("/api/v1/login", json={"username": name, "password": password})


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    tmp = tmp_path_factory.mktemp("collector")
    db_path = tmp / "collector.db"
    db = f"sqlite:///{db_path}"
    medtap("collector", "migrate", "--database", db)
    tokens = {
        name: medtap("collector", "add-sensor", name, "--database", db).strip()
        for name in ("icu-span", "ward-span", "to-revoke")
    }
    for name, role in (("admin", "admin"), ("viewer", "viewer"), ("locked", "viewer")):
        medtap(
            "collector",
            "add-user",
            name,
            "--role",
            role,
            "--password-stdin",
            "--database",
            db,
            stdin=PASSWORD + "\n",
        )
    with run_server(db, tmp / "server.log", env=SERVER_ENV, extra=("-v",)) as server:
        for name in ("admin", "viewer"):
            r = login(server, name)
            assert r.status_code == 200, r.text
            tokens[name] = r.json()["access_token"]
        col = Collector(server, db_path, tokens)
        rep = report()
        with col.as_("icu-span") as c:  # the sample, gzip-encoded, as a sensor would send it
            body = gzip.compress(json.dumps(batch_from_report(rep, sensor="icu-span")).encode())
            r = c.post(
                "/api/v1/ingest",
                content=body,
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
            assert r.status_code == 200 and r.json()["status"] == "stored", r.text
        yield col


def api_routes(col: Collector) -> list[tuple[str, str]]:
    with col.server.client() as c:
        spec = c.get("/openapi.json").json()
    out = []
    for path, ops in spec["paths"].items():
        for method in ops:
            if path.startswith("/api/v1") and path != "/api/v1/login":
                out.append(
                    (
                        method.upper(),
                        path.replace("{device_id}", "1")
                        .replace("{violation_id}", "1")
                        .replace("{name}", "icu-span"),
                    )
                )
    return out


# --- auth ------------------------------------------------------------------------------


def test_every_api_route_refuses_missing_wrong_and_revoked_tokens(collector: Collector) -> None:
    routes = api_routes(collector)
    assert len(routes) >= 20
    with collector.as_("admin") as c:
        r = c.post("/api/v1/sensors/to-revoke/revoke")
        assert r.status_code == 200 and r.json()["state"] == "revoked"
    bad = {
        None: "missing",
        "mts_" + "A" * 43: "wrong sensor token",
        "mtu_" + "B" * 43: "wrong session token",
        collector.tokens["to-revoke"]: "revoked sensor token",
        "garbage": "not a medtap token",
    }
    for token, why in bad.items():
        with collector.server.client(token) as c:
            for method, path in routes:
                r = c.request(method, path, json={})
                assert r.status_code == 401, (why, method, path, r.status_code)
                assert r.headers["www-authenticate"] == "Bearer"


def test_sensor_tokens_only_ingest_and_fetch_the_policy(collector: Collector) -> None:
    routes = api_routes(collector)
    allowed = {("POST", "/api/v1/ingest"), ("GET", "/api/v1/policy"), ("GET", "/api/v1/me")}
    with collector.as_("ward-span") as c:
        for method, path in routes:
            if (method, path) in allowed:
                continue
            r = c.request(method, path, json={})
            assert r.status_code == 403, (method, path, r.status_code)
        assert c.get("/api/v1/policy").status_code in (200, 404)
        assert c.get("/api/v1/me").json() == {
            "kind": "sensor",
            "name": "ward-span",
            "role": "sensor",
        }


ADMIN_ONLY = [
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/users/admin/disable"),
    ("POST", "/api/v1/sensors"),
    ("POST", "/api/v1/sensors/icu-span/rotate"),
    ("POST", "/api/v1/sensors/icu-span/revoke"),
    ("PUT", "/api/v1/policy"),
    ("POST", "/api/v1/violations/1/ack"),
    ("GET", "/api/v1/audit"),
]


def test_viewers_read_but_do_not_manage_and_users_do_not_ingest(collector: Collector) -> None:
    with collector.as_("viewer") as c:
        for method, path in ADMIN_ONLY:
            r = c.request(method, path, json={"name": "x", "role": "viewer", "password": "x"})
            assert r.status_code == 403, (method, path, r.status_code)
        for path in (
            "/api/v1/devices",
            "/api/v1/inventory/groups",
            "/api/v1/flows",
            "/api/v1/flows/zones",
            "/api/v1/violations",
            "/api/v1/sensors",
            "/api/v1/exports/assets.csv",
            "/api/v1/exports/assets.json",
        ):
            assert c.get(path).status_code == 200, path
    for user in ("viewer", "admin"):
        with collector.as_(user) as c:
            r = c.post("/api/v1/ingest", json=small_batch("icu-span"))
            assert r.status_code == 403


def test_login_failures_are_rate_limited_per_user(collector: Collector) -> None:
    for _ in range(3):
        r = login(collector.server, "locked", "wrong password!")
        assert r.status_code == 401
    r = login(collector.server, "locked")  # the right password no longer helps
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert login(collector.server, "nobody-at-all", "x").status_code == 401  # per user
    with collector.as_("admin") as c:
        audit = c.get("/api/v1/audit", params={"action": "login.failed"}).json()
    assert sum(e["actor"] == "locked" for e in audit["data"]) == 3


def test_logout_revokes_the_session(collector: Collector) -> None:
    token = login(collector.server, "viewer").json()["access_token"]
    with collector.server.client(token) as c:
        assert c.get("/api/v1/me").json()["name"] == "viewer"
        assert c.post("/api/v1/logout").status_code == 204
        assert c.get("/api/v1/me").status_code == 401


# --- ingest -------------------------------------------------------------------------------


def snapshot(col: Collector) -> dict[str, Any]:
    with col.as_("admin") as c:
        return {
            path: c.get(path, params={"limit": 500}).json()
            for path in (
                "/api/v1/devices",
                "/api/v1/flows",
                "/api/v1/violations",
                "/api/v1/inventory/groups",
            )
        }


def test_a_retried_batch_changes_nothing(collector: Collector) -> None:
    batch = small_batch("ward-span", devices=[device("device:test:retry", vendor="Retry Co")])
    with collector.as_("ward-span") as c:
        assert c.post("/api/v1/ingest", json=batch).json()["status"] == "stored"
        before = snapshot(collector)
        r = c.post("/api/v1/ingest", json=batch)
        assert r.status_code == 200 and r.json()["status"] == "duplicate"
        r = c.post(
            "/api/v1/ingest",
            content=gzip.compress(json.dumps(batch).encode()),
            headers={"Content-Encoding": "gzip"},
        )
        assert r.json()["status"] == "duplicate"
    assert snapshot(collector) == before


def test_batch_for_another_sensor_is_forbidden(collector: Collector) -> None:
    with collector.as_("ward-span") as c:
        r = c.post("/api/v1/ingest", json=small_batch("icu-span"))
    assert r.status_code == 403 and "sensor" in r.json()["detail"]


def test_oversized_bodies_and_zip_bombs_get_413(collector: Collector) -> None:
    with collector.as_("ward-span") as c:
        big = b"{" + b" " * (1024 * 1024 + 10) + b"}"
        assert c.post("/api/v1/ingest", content=big).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the stream is counted
            for _ in range(40):
                yield b" " * 65536

        assert c.post("/api/v1/ingest", content=chunks()).status_code == 413
        bomb = gzip.compress(b" " * (20 * 1024 * 1024))  # ~20 kB on the wire
        assert len(bomb) < 100_000
        r = c.post("/api/v1/ingest", content=bomb, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 413 and "decompressed" in r.json()["detail"]
        r = c.post("/api/v1/ingest", content=b"not gzip", headers={"Content-Encoding": "gzip"})
        assert r.status_code == 400
        r = c.post("/api/v1/ingest", content=b"{}", headers={"Content-Encoding": "br"})
        assert r.status_code == 415
    with collector.server.client() as c:  # the limit holds before authentication too
        assert c.post("/api/v1/login", content=big).status_code == 413


def test_schema_errors_are_422_with_locations_but_never_values(collector: Collector) -> None:
    batch = small_batch("ward-span", devices=[device("device:x")])
    batch["devices"][0]["mac"] = "CANARY^PATIENT"  # not a MAC
    batch["devices"][0]["patient_name"] = "CANARY^PATIENT"  # unknown field
    batch["heartbeat"] = {"at": "yesterday", "version": "1"}
    with collector.as_("ward-span") as c:
        r = c.post("/api/v1/ingest", json=batch)
        assert r.status_code == 422
        locs = {tuple(e["loc"]) for e in r.json()["detail"]}
        assert ("devices", 0, "mac") in locs
        assert ("devices", 0, "patient_name") in locs
        assert ("heartbeat", "at") in locs
        assert "CANARY" not in r.text
        r = c.post("/api/v1/ingest", content=b'{"sensor": "ward-span", "batch_id": ')
        assert r.status_code == 422
    with collector.as_("admin") as c:  # FastAPI-validated bodies do not echo input either
        r = c.post("/api/v1/violations/1/ack", json={"comment": "", "x": "CANARY-ID-4711"})
        assert r.status_code == 422 and "CANARY" not in r.text


# --- read API --------------------------------------------------------------------------------


def test_groups_and_exports_match_the_report_row_by_row(collector: Collector) -> None:
    rep = report()
    by_label = {g["label"]: g for g in rep["groups"]}
    devices = {d["id"]: d for d in rep["devices"]}
    with collector.as_("viewer") as c:
        groups = c.get("/api/v1/inventory/groups").json()["data"]
        exported = c.get("/api/v1/exports/assets.json").json()["data"]
        csv_text = c.get("/api/v1/exports/assets.csv").text
    rows = {g["label"]: g for g in groups if g["label"] in by_label}
    assert set(rows) == set(by_label)
    assert groups[0]["category"] == "medical"  # medical first
    json_rows = {r["group"]: r for r in exported}
    csv_rows = {r["group"]: r for r in csv.DictReader(io.StringIO(csv_text))}
    for label, expected in by_label.items():
        members = [devices[i] for i in expected["device_ids"]]
        first = min(d["first_seen"] for d in members)
        last = max(d["last_seen"] for d in members)
        for row in (rows[label], json_rows[label]):
            assert row["device_type"] == expected["device_type"]
            assert row["category"] == expected["category"]
            assert (row["vendor"], row["model"]) == (expected["vendor"], expected["model"])
            assert row["count"] == expected["count"]
            assert row["software_versions"] == expected["software_versions"]
            assert row["vlans"] == expected["vlans"]
            assert row["zones"] == sorted({d["zone"] for d in members if d.get("zone")})
            assert _ts(row["first_seen"]) == _ts(first) and _ts(row["last_seen"]) == _ts(last)
        c_row = csv_rows[label]
        assert c_row["device_type"] == expected["device_type"]
        assert int(c_row["count"]) == expected["count"]
        assert c_row["vendor"] == (expected["vendor"] or "")
        assert c_row["model"] == (expected["model"] or "")
        assert c_row["software_versions"] == ";".join(expected["software_versions"])
        assert c_row["vlans"] == ";".join(str(v) for v in expected["vlans"])


def _ts(text: str) -> str:
    return text.replace("+00:00", "Z")


def test_device_filters_pagination_and_detail(collector: Collector) -> None:
    synth = [
        device(
            f"mac:02:00:00:00:{i // 256:02x}:{i % 256:02x}",
            mac=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
            ips=[f"10.77.{i // 256}.{i % 256}"],
            vlans=[77],
            device_type="patient-monitor",
            category="medical",
            vendor="Synthetic Medical",
            model="SM-1",
            confidence=0.9,
        )
        for i in range(130)
    ]
    with collector.as_("ward-span") as c:
        assert (
            c.post("/api/v1/ingest", json=small_batch("ward-span", devices=synth)).status_code
            == 200
        )
    with collector.as_("viewer") as c:
        seen: list[int] = []
        for skip in (0, 50, 100):
            page = c.get(
                "/api/v1/devices", params={"vendor": "Synthetic Medical", "skip": skip, "limit": 50}
            ).json()
            assert page["count"] == 130
            seen += [d["id"] for d in page["data"]]
        assert len(seen) == len(set(seen)) == 130
        cases: list[tuple[dict[str, str | int], int | None]] = [
            ({"vlan": 77}, 130),
            ({"vlan": 77, "sensor": "icu-span"}, 0),
            ({"sensor": "ward-span", "device_type": "patient-monitor", "category": "medical"}, 130),
            ({"ip": "10.30.1.11"}, 1),
            ({"zone": "imaging"}, None),
            ({"seen_since": "2030-01-01T00:00:00Z"}, 0),
        ]
        for params, expected in cases:
            body = c.get("/api/v1/devices", params=params).json()
            if expected is not None:
                assert body["count"] == expected, params
            else:
                assert body["count"] >= 1 and all(d["zone"] == "imaging" for d in body["data"])
        assert c.get("/api/v1/devices", params={"limit": 501}).status_code == 422
        assert c.get("/api/v1/devices", params={"limit": 0}).status_code == 422
        ct = c.get("/api/v1/devices", params={"mac": "44:4b:5d:30:01:11"}).json()["data"][0]
        detail = c.get(f"/api/v1/devices/{ct['id']}").json()
        assert c.get("/api/v1/devices/999999").status_code == 404
    rep_ct = next(d for d in report()["devices"] if d["id"] == "mac:44:4b:5d:30:01:11")
    assert detail["sensors"] == ["icu-span"]
    assert detail["fields"]["model"]["value"] == "Revolution CT"
    assert detail["fields"]["model"]["evidence"][0]["kind"] == "dicom.model"
    assert detail["fields"]["vendor"]["sensor"] == "icu-span"
    triples = {(e["kind"], e["value"], e["source"]) for e in detail["evidence"]}
    assert triples == {(e["kind"], e["value"], e["source"]) for e in rep_ct["evidence"]}
    assert detail["evidence_total"] == len(triples)
    assert detail["flow_items"] and all(
        "10.30.1.11" in (f["client"], f["server"]) for f in detail["flow_items"]
    )


def test_flows_and_zone_flows(collector: Collector) -> None:
    rep = report()
    with collector.as_("viewer") as c:
        flows = c.get("/api/v1/flows", params={"limit": 500}).json()
        assert flows["count"] == len(rep["flows"]["items"])
        dicom = c.get("/api/v1/flows", params={"app": "dicom", "server_port": 104}).json()
        assert dicom["count"] == sum(
            f["app"] == "dicom" and f["server_port"] == 104 for f in rep["flows"]["items"]
        )
        zones = c.get("/api/v1/flows/zones", params={"client_zone": "guest"}).json()["data"]
    assert zones and all(z["client_zone"] == "guest" for z in zones)
    expected = sum(
        f["connections"] for f in rep["flows"]["items"] if f.get("client_zone") == "guest"
    )
    assert sum(z["connections"] for z in zones) == expected


def test_violations_acknowledge_and_audit(collector: Collector) -> None:
    rep = report()
    assert rep["violations"], "the sample policy should find violations in the sample capture"
    target = rep["violations"][0]
    with collector.as_("viewer") as c:
        listed = c.get(
            "/api/v1/violations", params={"ip": target["client"]["ip"], "limit": 500}
        ).json()
        v = next(
            x
            for x in listed["data"]
            if x["rule"] == target["rule"]
            and x["server"]["ip"] == target["server"]["ip"]
            and x["service"] == target["service"]
        )
        assert (v["flows"], v["severity"], v["client"]["zone"]) == (
            target["flows"],
            target["severity"],
            target["client"]["zone"],
        )
        assert c.post(f"/api/v1/violations/{v['id']}/ack", json={"comment": "x"}).status_code == 403
    with collector.as_("admin") as c:
        r = c.post(
            f"/api/v1/violations/{v['id']}/ack",
            json={"comment": "known: HIS pings the PIIC, change ticket 4711"},
        )
        assert r.status_code == 200, r.text
        acked = r.json()
        assert acked["acknowledged_by"] == "admin" and not acked["seen_since_ack"]
        assert acked["acknowledgements"][0]["comment"].startswith("known: HIS")
        assert c.post("/api/v1/violations/999999/ack", json={"comment": "x"}).status_code == 404
        audit = c.get("/api/v1/audit", params={"action": "violation.acknowledge"}).json()
        assert audit["data"][0]["actor"] == "admin" and str(v["id"]) in audit["data"][0]["target"]
        ids = {
            x["id"]
            for x in c.get("/api/v1/violations", params={"acknowledged": True}).json()["data"]
        }
        assert v["id"] in ids
    with collector.as_("ward-span") as c:  # seen again by another sensor: counts add
        again = small_batch("ward-span")
        again["violations"] = [target]
        assert c.post("/api/v1/ingest", json=again).status_code == 200
    with collector.as_("viewer") as c:
        now = c.get(f"/api/v1/violations/{v['id']}").json()
    assert now["flows"] == 2 * target["flows"] and now["seen_since_ack"]


def test_sensors_report_health_and_counters(collector: Collector) -> None:
    rep = report()
    # A live sensor that shed load: new flows it gave no parsers (running total).
    hb = {"at": "2026-01-05T12:00:00Z", "version": "9.9.9", "packets": 10, "flows_unparsed": 1234}
    with collector.as_("ward-span") as c:
        bad = small_batch("ward-span")
        bad["heartbeat"] = dict(hb, flows_unparsed=-1)
        r = c.post("/api/v1/ingest", json=bad)
        assert r.status_code == 422
        assert ("heartbeat", "flows_unparsed") in {tuple(e["loc"]) for e in r.json()["detail"]}
        r = c.post("/api/v1/ingest", json=small_batch("ward-span", heartbeat=hb))
        assert r.status_code == 200 and r.json()["status"] == "stored", r.text
    with collector.as_("viewer") as c:
        sensors = {s["name"]: s for s in c.get("/api/v1/sensors").json()["data"]}
    icu = sensors["icu-span"]
    assert icu["state"] == "ok" and icu["packets"] == rep["stats"]["packets"]
    assert icu["version"] == rep["medtap_version"] and icu["batches"] >= 1
    assert icu["flows_unparsed"] == 0  # its heartbeat (an offline analysis) has none
    ward = sensors["ward-span"]
    assert (ward["state"], ward["version"], ward["flows_unparsed"]) == ("ok", "9.9.9", 1234)
    assert sensors["to-revoke"]["state"] in ("revoked", "silent")
    out = medtap("collector", "list-sensors", "--database", collector.server.database)
    assert re.search(r"^icu-span\tok\t", out, re.M)
    assert out.splitlines()[0].endswith("\tflows unparsed")
    assert re.search(r"^ward-span\tok\t.*\t1234$", out, re.M)


def test_admins_manage_sensors_and_users_over_the_api(collector: Collector) -> None:
    with collector.as_("admin") as c:
        r = c.post("/api/v1/sensors", json={"name": "new-span"})
        assert r.status_code == 201
        token = r.json()["token"]
        assert token.startswith("mts_")
        assert c.post("/api/v1/sensors", json={"name": "new-span"}).status_code == 409
        r = c.post("/api/v1/users", json={"name": "bob", "role": "viewer", "password": "short"})
        assert r.status_code == 422
        r = c.post("/api/v1/users", json={"name": "bob", "role": "viewer", "password": PASSWORD})
        assert r.status_code == 201
    with collector.server.client(token) as c:
        assert c.post("/api/v1/ingest", json=small_batch("new-span")).status_code == 200
    with collector.as_("admin") as c:
        rotated = c.post("/api/v1/sensors/new-span/rotate").json()["token"]
        assert c.post("/api/v1/users/bob/disable").status_code == 200
    with collector.server.client(token) as c:
        assert c.post("/api/v1/ingest", json=small_batch("new-span")).status_code == 401
    with collector.server.client(rotated) as c:
        assert c.post("/api/v1/ingest", json=small_batch("new-span")).status_code == 200
    assert login(collector.server, "bob").status_code == 401


def test_policy_upload_validation_and_fetch(collector: Collector) -> None:
    text = POLICY.read_text()
    with collector.as_("admin") as c:
        bad = "zones:\n  guest: {vlans: [99]}\ndefault: maybe\n"
        r = c.put("/api/v1/policy", content=bad, headers={"Content-Type": "application/yaml"})
        assert r.status_code == 422
        assert re.match(r"^policy:\d+: \S+: ", r.json()["detail"]), r.json()
        r = c.put("/api/v1/policy", content=text, headers={"Content-Type": "application/yaml"})
        assert r.status_code == 200, r.text
        version = r.json()["version"]
    with collector.as_("icu-span") as c:
        r = c.get("/api/v1/policy")
        assert r.status_code == 200 and r.json()["text"] == text
        assert r.json()["version"] == version
        etag = r.headers["etag"]
        assert c.get("/api/v1/policy", headers={"If-None-Match": etag}).status_code == 304
    with collector.as_("admin") as c:
        audit = c.get("/api/v1/audit", params={"action": "policy.replace"}).json()
        assert audit["count"] >= 1


def test_openapi_docs_and_security_headers(collector: Collector) -> None:
    with collector.server.client() as c:
        assert c.get("/docs").status_code == 200
        spec = c.get("/openapi.json").json()
        r = c.get("/healthz")
    assert "Batch" in spec["components"]["schemas"]
    assert "/api/v1/ingest" in spec["paths"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "server" not in r.headers


def test_no_canary_in_any_table_response_or_log(collector: Collector) -> None:
    """Runs after the others in this module, so every kind of row exists by now."""
    with collector.as_("admin") as c:
        texts = [c.get("/api/v1/devices", params={"limit": 500}).text]
        ids = [d["id"] for d in c.get("/api/v1/devices", params={"limit": 500}).json()["data"]]
        texts += [c.get(f"/api/v1/devices/{i}").text for i in ids]
        for path in (
            "/api/v1/inventory/groups",
            "/api/v1/flows?limit=500",
            "/api/v1/flows/zones?limit=500",
            "/api/v1/violations?limit=500",
            "/api/v1/sensors",
            "/api/v1/exports/assets.csv",
            "/api/v1/exports/assets.json",
            "/api/v1/audit?limit=500",
            "/api/v1/policy",
            "/api/v1/users",
        ):
            texts.append(c.get(path).text)
    dump = sqlite3.connect(f"file:{collector.db_path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in dump.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert {"device", "evidence", "device_field", "flow", "violation"} <= set(tables)
        for table in tables:
            for row in dump.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - own names
                texts.append(repr(row))
    finally:
        dump.close()
    texts.append(collector.server.log.read_text(errors="replace"))
    blob = "\n".join(texts)
    assert len(blob) > 50_000  # the dump really holds the inventory
    for canary in CANARIES:
        assert canary not in blob, canary


# --- separate servers: TLS, refused schemas, PostgreSQL ------------------------------------


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    db = f"sqlite:///{tmp_path / 'c.db'}"
    medtap("collector", "migrate", "--database", db)
    token = medtap("collector", "add-sensor", "tls-span", "--database", db).strip()
    extra = ("--tls-cert", str(cert), "--tls-key", str(key))
    with run_server(db, tmp_path / "log", extra=extra, scheme="https", verify=str(cert)) as srv:
        with srv.client(token) as c:
            r = c.post("/api/v1/ingest", json=small_batch("tls-span"))
            assert r.status_code == 200
            assert r.headers["strict-transport-security"].startswith("max-age=")
        plain = srv.url.replace("https://", "http://")
        with pytest.raises(httpx.TransportError), httpx.Client() as c:
            c.get(plain + "/healthz")
        with pytest.raises(httpx.ConnectError), httpx.Client(verify=True) as c:
            c.get(srv.url + "/healthz")  # not trusted without the self-signed cert


def test_serve_refuses_a_newer_or_unmigrated_schema(tmp_path: Path) -> None:
    db_path = tmp_path / "c.db"
    db = f"sqlite:///{db_path}"

    def serve() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "agent.cli",
                "collector",
                "serve",
                "--port",
                str(free_port()),
                "--database",
                db,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )

    out = serve()
    assert out.returncode == 2 and "medtap collector migrate" in out.stderr
    medtap("collector", "migrate", "--database", db)
    con = sqlite3.connect(db_path)
    con.execute("UPDATE alembic_version SET version_num = '0099_future'")
    con.commit()
    con.close()
    out = serve()
    assert out.returncode == 2 and "newer than this medtap" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    migrate = subprocess.run(
        [sys.executable, "-m", "agent.cli", "collector", "migrate", "--database", db],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert migrate.returncode == 2 and "newer" in migrate.stderr


@pytest.mark.skipif(
    postgres_url() is None,
    reason="MEDTAP_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)",
)
def test_the_same_server_on_postgresql(tmp_path: Path) -> None:
    url = postgres_url()
    assert url is not None
    from collector.db import make_engine

    engine = make_engine(url)
    reset_database(engine)
    try:
        medtap("collector", "migrate", "--database", url)
        token = medtap("collector", "add-sensor", "pg-span", "--database", url).strip()
        with run_server(url, tmp_path / "log") as srv, srv.client(token) as c:
            batch = batch_from_report(report(), sensor="pg-span")
            assert c.post("/api/v1/ingest", json=batch).json()["status"] == "stored"
            assert c.post("/api/v1/ingest", json=batch).json()["status"] == "duplicate"
        log = (tmp_path / "log").read_text()
        assert not any(canary in log for canary in CANARIES)
    finally:
        reset_database(engine)
        engine.dispose()
