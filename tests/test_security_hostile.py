"""Hostile strings in every string field of a batch, end to end through a real collector
(``medtap collector serve``, SQLite, alert sinks to a UDP syslog receiver and a JSONL file):

- stored verbatim (SQL text is data: parameterised queries everywhere), filterable by value;
- returned JSON-escaped by the API (``application/json``, no raw control characters);
- rendered as text by the web view in a real headless Chromium: no dialog opens, no element
  or event handler is injected, and CSP has nothing to block (escaping, not CSP, did it);
- CSV exports (API asset register, web violations) never start a cell with a formula;
- syslog/CEF alerts keep one frame per violation with intact CEF header and extensions;
- a NUL character (which PostgreSQL cannot store) is refused with 422, never a 500, and the
  sensor's batch builder strips it instead of losing the device.

tests/test_web_ui.py::test_network_text_is_escaped checks one hostname and one vendor;
tests/test_sinks.py checks the sink formatting in-process. This file covers every field,
through ingest, store, API, web, exports and the collector's own alert path.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from collector.schema import Batch
from collector.sinks import sanitize
from tests.collector_fixtures import Server, medtap, run_server
from tests.test_sinks import parse_syslog
from tests.web_fixtures import chromium, need_chromium

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery staple"
SENSOR = "<img src=x onerror=alert('sensor')>"  # an admin-given name, shown on /sensors
SQL = "'; DROP TABLE device;--"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
SVG = "<svg/onload=alert(3)>"
ATTR = "' autofocus onfocus='alert(4)"
CEF = "a|b\\c=d CEF:0|evil|x|1|2|3|10|src=6.6.6.6"
SYSLOG = "x\n<13>1 2026-01-01T00:00:00Z evil app - - - injected\r\nline"
UNI = "\u202eRTL\u2028LS\u200bZW 漢字 🙂 é"
FORMULAS = ['=HYPERLINK("http://evil.example/","x")', "+1+1", "-2+3", "@SUM(1)"]
HOSTILE = [SQL, SCRIPT, IMG, SVG, ATTR, CEF, SYSLOG, UNI, *FORMULAS]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
T0, T1 = "2026-01-05T08:00:00Z", "2026-01-05T09:00:00Z"


def hostile_batch(batch_id: str) -> dict[str, Any]:
    """One device, flow and violation per hostile string, the string in every text field."""
    devices, flows, violations = [], [], []
    for i, h in enumerate(HOSTILE):
        ip = f"10.66.0.{i + 1}"
        devices.append(
            {
                "id": f"{h}#{i}",
                "mac": f"02:00:00:00:66:{i:02x}",
                "ips": [ip, h],
                "vlans": [66],
                "hostnames": [h],
                "category": "medical" if i % 2 else h,
                "device_type": h,
                "vendor": h,
                "model": h,
                "software_version": h,
                "serial": h,
                "oui_vendor": h,
                "confidence": 0.9,
                "reached_via": [h],
                "evidence": [{"kind": h, "value": h, "source": h, "count": 1, "confidence": 0.5}],
                "classification": {
                    "vendor": {
                        "value": h,
                        "confidence": 0.9,
                        "evidence": [{"kind": h, "value": h, "source": h, "weight": 1}],
                    },
                    h: {"value": h, "confidence": 0.8, "evidence": []},
                },
                "zone": h,
                "first_seen": T0,
                "last_seen": T1,
                "flows": 1,
            }
        )
        flows.append(
            {
                "transport": h,
                "vlan": 66,
                "client": h,
                "server": ip,
                "server_port": 104,
                "app": h,
                "connections": 1,
                "client_zone": h,
                "server_zone": h,
                "first_seen": T0,
                "last_seen": T1,
            }
        )
        violations.append(
            {
                "rule": h,
                "severity": "high",
                "reason": h,
                "service": f"tcp/{1000 + i}",
                "app": h,
                "client": {
                    "ip": f"10.66.1.{i + 1}",
                    "vlan": 66,
                    "zone": h,
                    "device_id": h,
                    "device_type": h,
                    "vendor": h,
                },
                "server": {"ip": ip, "vlan": 66, "zone": h, "device_type": h, "vendor": h},
                "flows": 1,
                "packets": 2,
                "bytes": 3,
                "first_seen": T0,
                "last_seen": T1,
            }
        )
    heartbeat = {"at": T1, "version": SQL, "interface": SCRIPT}
    batch = {
        "sensor": SENSOR,
        "batch_id": batch_id,
        "started": T0,
        "ended": T1,
        "devices": devices,
        "flows": flows,
        "violations": violations,
        "heartbeat": heartbeat,
    }
    return Batch.model_validate(batch).model_dump(mode="json")  # what the collector sees


@dataclass
class Hostile:
    server: Server
    db_path: Path
    admin: str
    batch: dict[str, Any]
    syslog: list[bytes]
    jsonl: Path

    def api(self) -> httpx.Client:
        return self.server.client(self.admin)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    tmp = tmp_path_factory.mktemp("hostile")
    db_path = tmp / "collector.db"
    db = f"sqlite:///{db_path}"
    medtap("collector", "migrate", "--database", db)
    token = medtap("collector", "add-sensor", SENSOR, "--database", db).strip()
    medtap(
        "collector", "add-user", "admin", "--role", "admin", "--password-stdin",
        "--database", db, stdin=PASSWORD + "\n",
    )  # fmt: skip
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.5)
    jsonl = tmp / "alerts.jsonl"
    alerts = (
        "--alert", f"syslog+udp://127.0.0.1:{receiver.getsockname()[1]}",
        "--alert", f"jsonl:{jsonl}",
    )  # fmt: skip
    batch = hostile_batch("hostile-0001")
    try:
        with run_server(db, tmp / "server.log", extra=alerts) as server:
            with server.client(token) as c:
                r = c.post("/api/v1/ingest", json=batch)
                assert r.status_code == 200 and r.json()["status"] == "stored", r.text
            with server.client() as c:
                r = c.post("/api/v1/login", json={"username": "admin", "password": PASSWORD})
                admin = r.json()["access_token"]
            datagrams: list[bytes] = []
            deadline = time.monotonic() + 20
            while len(datagrams) < len(HOSTILE) and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    datagrams.append(receiver.recv(65535))
            yield Hostile(server, db_path, admin, batch, datagrams, jsonl)
    finally:
        receiver.close()


def by_mac(hostile: Hostile) -> dict[str, dict[str, Any]]:
    with hostile.api() as c:
        r = c.get("/api/v1/devices", params={"limit": 500})
    assert r.status_code == 200
    return {d["mac"]: d for d in r.json()["data"]}


# --- store and API -----------------------------------------------------------------------------


def test_stored_verbatim_and_sql_is_only_data(hostile: Hostile) -> None:
    sent = hostile.batch
    with sqlite3.connect(f"file:{hostile.db_path}?mode=ro", uri=True) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"device", "flow", "violation", "evidence"} <= tables  # nothing was dropped
        vendors = {r[0] for r in db.execute("SELECT vendor FROM device")}
        rules = {r[0] for r in db.execute("SELECT rule FROM violation")}
        reasons = {r[0] for r in db.execute("SELECT reason FROM violation")}
        hostnames = {r[0] for r in db.execute("SELECT name FROM device_hostname")}
        evidence = {r for r in db.execute("SELECT kind, value, source FROM evidence")}
        apps = {r[0] for r in db.execute("SELECT app FROM flow")}
        sensors = {r[0] for r in db.execute("SELECT name FROM sensor")}
        version = db.execute("SELECT version, interface FROM sensor").fetchone()
    assert set(HOSTILE) <= vendors and set(HOSTILE) <= rules and set(HOSTILE) <= reasons
    assert set(HOSTILE) <= hostnames and set(HOSTILE) <= apps
    assert {(h, h, h) for h in HOSTILE} <= evidence
    assert sensors == {SENSOR} and version == (SQL, SCRIPT)
    assert len(sent["devices"]) == len(HOSTILE)


def test_api_returns_every_field_verbatim_as_json(hostile: Hostile) -> None:
    devices = by_mac(hostile)
    with hostile.api() as c:
        for want in hostile.batch["devices"]:
            got = devices[want["mac"]]
            for field in ("device_type", "vendor", "model", "software_version", "serial"):
                assert got[field] == want[field], field
            assert got["zone"] == want["zone"] and got["category"] == want["category"]
            assert got["hostnames"] == want["hostnames"] and set(got["ips"]) == set(want["ips"])
            r = c.get(f"/api/v1/devices/{got['id']}")
            assert r.headers["content-type"] == "application/json"
            assert r.headers["x-content-type-options"] == "nosniff"
            assert not [b for b in r.content if b < 0x20], "a raw control character in JSON"
            detail = r.json()
            (ev,) = detail["evidence"]
            assert (ev["kind"], ev["value"], ev["source"]) == (want["vendor"],) * 3
            h = want["vendor"]
            assert detail["fields"][h]["value"] == h
            assert detail["fields"]["vendor"]["evidence"][0]["kind"] == h
        # hostile filter values are bound parameters: each finds exactly its own row
        for h in HOSTILE:
            for path, params in (
                ("/api/v1/devices", {"vendor": h}),
                ("/api/v1/devices", {"ip": h}),
                ("/api/v1/flows", {"client": h}),
                ("/api/v1/violations", {"rule": h}),
                ("/api/v1/violations", {"zone": h}),
            ):
                r = c.get(path, params=params)
                assert r.status_code == 200 and r.json()["count"] == 1, (path, params, r.text)
        groups = c.get("/api/v1/inventory/groups").json()["data"]
        assert {g["vendor"] for g in groups} >= set(HOSTILE)
        violations = c.get("/api/v1/violations", params={"limit": 500}).json()["data"]
        assert {v["reason"] for v in violations} == set(HOSTILE)
        sensors = c.get("/api/v1/sensors").json()["data"]
        assert [(s["name"], s["version"], s["interface"]) for s in sensors] == [
            (SENSOR, SQL, SCRIPT)
        ]


def test_nul_is_refused_with_422_and_stripped_by_the_sensor(hostile: Hostile) -> None:
    """PostgreSQL cannot store NUL: the wire schema refuses it everywhere (422, so a sensor
    dead-letters the batch instead of retrying a 500 for ever), URLs and forms too."""
    from agent.uplink.batch import BuildStats, batches_from_report

    batch = hostile_batch("hostile-nul-0001")
    batch["devices"][0]["hostnames"] = ["pump\x00"]
    token = medtap("collector", "add-sensor", SENSOR, "--rotate", "--database",
                   hostile.server.database).strip()  # fmt: skip
    with hostile.server.client(token) as c:
        r = c.post("/api/v1/ingest", json=batch)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["devices", 0, "hostnames", 0]
    assert "pump" not in r.text  # the value is never echoed
    with hostile.api() as c:
        for path in ("/api/v1/devices?vendor=%00", "/api/v1/sensors/a%00/revoke"):
            r = c.request("POST" if "revoke" in path else "GET", path)
            assert r.status_code == 422, (path, r.status_code)
            assert r.headers["x-content-type-options"] == "nosniff"
        r = c.post("/api/v1/login", json={"username": "a\x00", "password": "x"})
        assert r.status_code == 422
        r = c.get("/api/v1/devices/99999999999999999999999")  # past BIGINT: 422, not 500
        assert r.status_code == 422
    with hostile.server.client(cookies={"medtap_session": hostile.admin}) as c:
        assert c.get("/inventory/devices?q=%00").status_code == 400
        assert c.get("/device/99999999999999999999999").status_code == 400
    report = {"devices": [{"id": "ip:10.9.9.9@vlan1", "ips": ["10.9.9.9"],
                           "hostnames": ["pump-7\x00\x00"], "vendor": "B\x00raun"}]}  # fmt: skip
    stats = BuildStats()
    (built,) = batches_from_report(report, sensor="s", stats=stats)
    assert built.devices[0].hostnames == ["pump-7"] and built.devices[0].vendor == "Braun"
    assert stats.repaired == 1 and not stats.rejected


# --- exports -------------------------------------------------------------------------------------


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_exports_never_start_a_cell_with_a_formula(hostile: Hostile) -> None:
    with hostile.api() as c:
        assets = c.get("/api/v1/exports/assets.csv")
        assets_json = c.get("/api/v1/exports/assets.json").json()
    with hostile.server.client(cookies={"medtap_session": hostile.admin}) as c:
        viols = c.get("/export/violations.csv")
        viols_json = c.get("/export/violations.json").json()
    for r in (assets, viols):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
    for rows in (csv_rows(assets.text), csv_rows(viols.text)):
        assert len(rows) >= len(HOSTILE)
        for row in rows:
            for column, cell in row.items():
                assert not cell.startswith(FORMULA_START), (column, cell)
    vendors = {row["vendor"] for row in csv_rows(assets.text)}
    reasons = {row["reason"] for row in csv_rows(viols.text)}
    for f in FORMULAS:
        assert "'" + f in vendors and "'" + f in reasons  # kept, only made inert
    assert SQL in vendors and SCRIPT in reasons and SYSLOG in reasons  # the rest verbatim
    # the JSON exports carry the values unchanged
    assert {a["vendor"] for a in assets_json["data"]} >= set(HOSTILE)
    assert {v["reason"] for v in viols_json["data"]} == set(HOSTILE)


# --- alerts: syslog/CEF framing, JSON lines ----------------------------------------------------


CEF_KEYS = {
    "rt", "src", "dst", "dpt", "proto", "app", "cnt", "start", "end", "act", "cat", "msg",
    "cs1", "cs1Label", "cs2", "cs2Label", "cs3", "cs3Label", "cs4", "cs4Label", "cs5",
    "cs5Label", "cs6", "cs6Label", "cn1", "cn1Label", "cn2", "cn2Label", "cn3", "cn3Label",
}  # fmt: skip


def test_syslog_cef_frames_stay_intact(hostile: Hostile) -> None:
    sent = {v["rule"]: v for v in hostile.batch["violations"]}
    assert len(hostile.syslog) == len(HOSTILE), "one datagram per violation"
    seen = set()
    for datagram in hostile.syslog:
        for bad in (b"\x00", b"\x1b", "\u2028".encode(), "\u202e".encode()):
            assert bad not in datagram
        _head, cef = parse_syslog(datagram)  # asserts no raw CR/LF and the RFC 5424 shape
        assert len(cef.header) == 7 and cef.header[:3] == ["CEF:0", "medtap", "medtap"]
        assert cef.header[5] == "Segmentation violation" and cef.header[6] == "8"
        assert set(cef.ext) <= CEF_KEYS, set(cef.ext) - CEF_KEYS  # nothing injected
        (v,) = [v for rule, v in sent.items() if sanitize(rule) == cef.header[4]]
        keep = {"keep_newlines": True}
        assert cef.ext["cs1"] == sanitize(v["rule"], **keep)
        assert cef.ext["msg"] == sanitize(v["reason"], **keep)
        assert cef.ext["app"] == sanitize(v["app"], **keep)
        zones = f"{v['client']['zone']}->{v['server']['zone']}"
        assert cef.ext["cs2"] == sanitize(zones, **keep)
        assert cef.ext["cs5"] == sanitize(v["client"]["vendor"], **keep)
        assert cef.ext["src"] == v["client"]["ip"] and cef.ext["dst"] == v["server"]["ip"]
        assert cef.ext["dpt"] == v["service"].split("/")[1] and cef.ext["cnt"] == "1"
        seen.add(v["rule"])
    assert seen == set(HOSTILE)
    lines = hostile.jsonl.read_text("utf-8").splitlines()
    assert len(lines) == len(HOSTILE)
    assert {json.loads(line)["reason"] for line in lines} == set(HOSTILE)


# --- the web view in a real Chromium -----------------------------------------------------------


INJECTED = """
const found = [];
for (const el of document.querySelectorAll('*')) {
  for (const a of el.attributes) {
    if (a.name.startsWith('on') || a.name === 'autofocus') found.push(el.tagName + ' ' + a.name);
  }
}
for (const el of document.querySelectorAll('script:not([src]), img[src="x"], iframe, object')) {
  found.push(el.outerHTML.slice(0, 80));
}
return found;
"""


def test_web_pages_render_hostile_text_inert_in_chromium(hostile: Hostile, tmp_path: Path) -> None:
    need_chromium()
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    devices = by_mac(hostile)
    with hostile.api() as c:  # a hostile acknowledgement comment, shown in the history
        vid = c.get("/api/v1/violations", params={"rule": IMG}).json()["data"][0]["id"]
        ack = c.post(f"/api/v1/violations/{vid}/ack", json={"comment": SCRIPT + IMG})
        assert ack.status_code == 200
    paths = ["/", "/inventory/devices?per=200", "/segmentation?status=all", "/sensors", "/audit"]
    paths += [f"/device/{d['id']}" for d in devices.values()]
    paths += [f"/inventory/devices?q={quote(h)}" for h in (SCRIPT, IMG, ATTR)]  # reflected
    with chromium(tmp_path) as browser:
        browser.get(hostile.server.url + "/login")
        browser.find_element(By.NAME, "username").send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        time.sleep(0.5)
        assert "/login" not in browser.current_url
        group_links = [
            a.get_attribute("href")
            for a in browser.find_elements(By.CSS_SELECTOR, "[data-testid=group-row] a")
        ]
        assert len(group_links) >= len(HOSTILE)
        paths += [link.removeprefix(hostile.server.url) for link in group_links]
        browser.get_log("browser")  # drain
        texts: dict[str, str] = {}
        for path in paths:
            browser.get(hostile.server.url + path)
            with pytest.raises(NoAlertPresentException):
                browser.switch_to.alert.text  # noqa: B018 - no dialog may be open
            assert browser.execute_script(INJECTED) == [], path
            texts[path] = browser.execute_script("return document.body.textContent")
        problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert problems == [], problems  # CSP blocked nothing: there was nothing to block
    for d in devices.values():
        if d["vendor"] not in (SYSLOG, UNI):  # (the browser folds line and format characters)
            assert d["vendor"] in texts[f"/device/{d['id']}"]  # shown as text, not run
    assert SENSOR in texts["/sensors"]
    assert SCRIPT + IMG in texts["/segmentation?status=all"]
    for h in (SCRIPT, IMG, SVG, SQL):
        assert h in texts["/inventory/devices?per=200"], h
