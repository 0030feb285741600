"""The web inventory in a real headless Chromium against a real collector.

Two collectors run for this module (uvicorn on 127.0.0.1, SQLite in tmp): one fed by
``medtap analyze pcaps/sample/hospital-sample.pcapng --upload``, one by the policy capture
with ``--policy pcaps/policy/policy.yaml`` (which yields violations). Expectations come from
the reports the same uploads wrote and from the truth files beside the captures.
Screenshots go to tests/artifacts/ (not committed).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.schema import Batch, DeviceReport
from tests.web_fixtures import (
    PASSWORD,
    POLICY,
    POLICY_PCAP,
    SAMPLE,
    SENSOR,
    Collector,
    chromium,
    collector,
    need_chromium,
    screenshot,
    wait_for_file,
)

pytestmark = pytest.mark.slow
SAMPLE_TRUTH = json.loads(SAMPLE.with_suffix(".truth.json").read_text())
POLICY_TRUTH = json.loads(POLICY_PCAP.with_suffix(".truth.json").read_text())
CANARIES = tuple(SAMPLE_TRUTH["canaries"]) + tuple(POLICY_TRUTH["canaries"])
XSS_HOST = "<img src=x onerror=alert(1)>"
XSS_VENDOR = '"><script>alert(2)</script>'


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    need_chromium()
    with collector(tmp_path_factory.mktemp("web-sample")) as c:
        c.upload(SAMPLE)
        yield c


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    need_chromium()
    with collector(tmp_path_factory.mktemp("web-policy")) as c:
        c.upload(POLICY_PCAP, "--policy", str(POLICY))
        yield c


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    need_chromium()
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver


def login(driver: Any, c: Collector, user: str, password: str = PASSWORD) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(c.url + "/login")
    driver.delete_all_cookies()
    driver.get(c.url + "/login")
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    WebDriverWait(driver, 20).until(
        lambda d: "/login" not in d.current_url or d.find_elements(By.CSS_SELECTOR, ".error")
    )


def open_page(driver: Any, c: Collector, path: str) -> None:
    driver.get(c.url + path)


def texts(driver: Any, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def assert_no_canary(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"patient canary {canary!r} on {where}"


def session_cookie(driver: Any) -> str:
    cookie = driver.get_cookie("medtap_session")
    assert cookie is not None
    return str(cookie["value"])


def page_csrf(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, "form.logout input[name=csrf]")
    return str(field.get_attribute("value"))


# --- login and session ---------------------------------------------------------------------


def test_login_required_wrong_password_then_inventory(sample: Collector, browser: Any) -> None:
    browser.delete_all_cookies()
    open_page(browser, sample, "/segmentation")
    assert "/login?next=%2Fsegmentation" in browser.current_url
    login(browser, sample, "admin", "not the password at all")
    assert texts(browser, "[data-testid=login-error]") == ["Wrong user name or password."]
    assert browser.get_cookie("medtap_session") is None
    login(browser, sample, "admin")
    assert browser.current_url == sample.url + "/"
    cookie = browser.get_cookie("medtap_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http on loopback; see the TLS test below
    assert texts(browser, "[data-testid=who]") == ["admin · admin"]


def test_inventory_groups_match_the_report_and_truth(sample: Collector, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    login(browser, sample, "viewer")
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-testid=group-row]")
    shown = {
        r.find_element(By.CSS_SELECTOR, ".group-label").text: int(r.get_attribute("data-count"))
        for r in rows
    }
    report = sample.reports[0]
    assert shown == {g["label"]: g["count"] for g in report["groups"]}
    # Medical groups come first.
    categories = [r.get_attribute("class") for r in rows]
    first_other = next(i for i, c in enumerate(categories) if c != "cat-medical")
    assert all(c != "cat-medical" for c in categories[first_other:])
    # The truth: two B. Braun Infusomat Space pumps behind SpaceCom, one MX800, one MX450.
    named = SAMPLE_TRUTH["named_devices"]
    pumps = [d for d in named if d["device_type"] == "infusion-pump"]
    assert shown[f"{len(pumps)} infusion pumps (B. Braun Infusomat Space)"] == len(pumps)
    assert shown["1 patient monitor (Philips IntelliVue MX800)"] == 1
    for dev in SAMPLE_TRUTH["devices"]:
        if dev.get("vendor") and dev.get("model"):
            assert any(f"({dev['vendor']} {dev['model']})" in label for label in shown), dev
    summary = texts(browser, "[data-testid=summary]")[0]
    assert summary.startswith(f"{len(report['groups'])} groups; {len(report['devices'])} devices")
    screenshot(browser, "inventory-laptop")


def test_filters_search_and_sort(sample: Collector, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    login(browser, sample, "viewer")
    # The VLAN drop-down submits itself (medtap.js under the CSP) and drops empty fields.
    Select(browser.find_element(By.NAME, "vlan")).select_by_value("30")
    WebDriverWait(browser, 20).until(lambda d: "vlan=30" in d.current_url)
    assert browser.current_url == sample.url + "/?vlan=30"
    report = sample.reports[0]
    expected = {
        (d["device_type"], d["vendor"], d["model"]) for d in report["devices"] if 30 in d["vlans"]
    }
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-testid=group-row]")
    assert len(rows) == len({(t, v, m) for t, v, m in expected})
    assert {r.get_attribute("data-type") for r in rows} == {t for t, _, _ in expected}

    open_page(browser, sample, "/?q=mx800")
    assert texts(browser, "[data-testid=group-row] .group-label") == [
        "1 patient monitor (Philips IntelliVue MX800)"
    ]
    open_page(browser, sample, "/?q=10.30.0.10")  # an address finds its device's group
    assert texts(browser, "[data-testid=group-row] .group-label") == ["1 PACS (GE Healthcare)"]

    open_page(browser, sample, "/")
    browser.find_element(By.LINK_TEXT, "Devices").click()  # sortable header
    WebDriverWait(browser, 20).until(lambda d: "sort=count" in d.current_url)
    counts = [int(c) for c in texts(browser, "[data-testid=group-row] td.count")]
    assert counts == sorted(counts, reverse=True) and counts[0] == 2


def test_drill_down_to_a_device_and_its_evidence(sample: Collector, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    login(browser, sample, "viewer")
    browser.find_element(By.LINK_TEXT, "2 infusion pumps (B. Braun Infusomat Space)").click()
    WebDriverWait(browser, 20).until(lambda d: "/inventory/group" in d.current_url)
    assert texts(browser, "[data-testid=heading]") == [
        "2 infusion pumps (B. Braun Infusomat Space)"
    ]
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-testid=device-row]")
    assert len(rows) == 2
    rows[0].find_element(By.CSS_SELECTOR, "td a").click()
    WebDriverWait(browser, 20).until(lambda d: "/device/" in d.current_url)
    title = texts(browser, "[data-testid=device-title]")[0]
    assert title == "infusion pump — B. Braun Infusomat Space"
    vendor = browser.find_element(
        By.CSS_SELECTOR, "[data-testid=classification] tr[data-field=vendor]"
    )
    cells = vendor.find_elements(By.CSS_SELECTOR, "td")
    assert cells[0].text == "B. Braun"
    assert re.fullmatch(r"\d{1,3} %", cells[1].text.strip())
    assert cells[2].text == SENSOR
    assert "hl7." in cells[3].text and "from hl7 tcp" in cells[3].text
    serial = browser.find_element(By.CSS_SELECTOR, "tr[data-field=serial] td").text
    truth_serials = {d["serial"] for d in SAMPLE_TRUTH["named_devices"]}
    assert serial in truth_serials
    assert texts(browser, "[data-testid=sensors] a") == [SENSOR]
    screenshot(browser, "device-pump")

    # A server: the systems it talks to are the truth's clients of the PACS.
    open_page(browser, sample, "/inventory/devices?q=10.30.0.10")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=device-row] td a").click()
    WebDriverWait(browser, 20).until(lambda d: "/device/" in d.current_url)
    peers = browser.find_elements(By.CSS_SELECTOR, "[data-testid=peers] tbody tr")
    served = {
        p.find_elements(By.CSS_SELECTOR, "td")[1].text.split()[0]
        for p in peers
        if "tcp/104" in p.text
    }
    expected = {f["client"] for f in SAMPLE_TRUTH["expected_flows"] if f["server"] == "10.30.0.10"}
    assert served == expected
    assert "10.30.0.10" in texts(browser, "[data-testid=identity]")[0]


def test_csv_and_json_exports(sample: Collector, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    login(browser, sample, "viewer")
    for old in browser.downloads.glob("medtap-assets.*"):
        old.unlink()
    browser.find_element(By.CSS_SELECTOR, "[data-testid=export-csv]").click()
    path = wait_for_file(browser.downloads, "medtap-assets.csv")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    report = sample.reports[0]
    assert {r["group"]: int(r["count"]) for r in rows} == {
        g["label"]: g["count"] for g in report["groups"]
    }
    ct = next(r for r in rows if r["device_type"] == "ct")
    assert (ct["vendor"], ct["model"], ct["vlans"]) == ("GE Healthcare", "Revolution CT", "30")
    browser.find_element(By.LINK_TEXT, "JSON").click()
    data = json.loads(wait_for_file(browser.downloads, "medtap-assets.json").read_text())
    assert data["count"] == len(report["groups"])
    # Without a session the export is not there.
    assert httpx.get(sample.url + "/export/inventory.csv").status_code == 303


def test_sensors_page(sample: Collector, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    login(browser, sample, "viewer")
    open_page(browser, sample, "/sensors")
    rows = texts(browser, "[data-testid=sensor-row]")
    assert len(rows) == 1 and rows[0].startswith(SENSOR)
    assert texts(browser, "[data-testid=sensor-state]") == ["ok"]
    packets = f"{sample.reports[0]['stats']['packets']:,}".replace(",", "\u202f")
    assert f" {packets} " in f" {rows[0]} "
    assert texts(browser, "[data-testid=sensor-flows-unparsed]") == ["0"]  # offline analysis
    # The live sensor sheds load: new flows counted but given no parsers, reported in its
    # next heartbeat; the page shows the total, marked, and says what it means.
    stats = sample.reports[0]["stats"]
    now = datetime.now(UTC)
    heartbeat = {
        "at": now.isoformat(),
        "version": "live",
        "packets": stats["packets"],
        "bytes": stats["bytes"],
        "flows_unparsed": 12345,
    }
    batch = Batch.model_validate(
        {"sensor": SENSOR, "batch_id": f"hb-{now.timestamp():.6f}", "started": now,
         "ended": now, "heartbeat": heartbeat}
    )  # fmt: skip
    r = httpx.post(
        sample.url + "/api/v1/ingest",
        json=batch.model_dump(mode="json"),
        headers={"Authorization": f"Bearer {sample.token}"},
    )
    assert r.status_code == 200 and r.json()["status"] == "stored", r.text
    open_page(browser, sample, "/sensors")
    cell = browser.find_element(By.CSS_SELECTOR, "[data-testid=sensor-flows-unparsed]")
    assert cell.text == "12\u202f345" and "warn" in cell.get_attribute("class").split()
    assert "fingerprints may be missing" in cell.get_attribute("title")
    header = browser.find_element(
        By.XPATH, "//table[@data-testid='sensors']//th[.='Flows unparsed']"
    )
    assert header.get_attribute("title") == cell.get_attribute("title")
    screenshot(browser, "sensors")


def test_tablet_width_has_no_page_overflow(sample: Collector, browser: Any) -> None:
    login(browser, sample, "viewer")
    browser.set_window_size(768, 1024)
    try:
        for path, name in (("/", "inventory-tablet"), ("/inventory/devices", "devices-tablet")):
            open_page(browser, sample, path)
            wide = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert wide <= 1, f"{path} is {wide}px wider than a tablet screen"
            screenshot(browser, name)
    finally:
        browser.set_window_size(1366, 900)


def test_pages_are_clean_under_the_csp_and_carry_no_canary(
    sample: Collector, policy: Collector, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    for c in (sample, policy):
        login(browser, c, "admin")
        browser.get_log("browser")  # drain
        paths = [
            "/",
            "/inventory/devices?per=200",
            "/segmentation?status=all",
            "/sensors",
            "/audit",
        ]
        open_page(browser, c, "/inventory/devices?per=200")
        paths += [
            a.get_attribute("href").removeprefix(c.url)
            for a in browser.find_elements(By.CSS_SELECTOR, "[data-testid=device-row] td a")
        ]
        assert len(paths) > 10
        for path in paths:
            open_page(browser, c, path)
            html = browser.page_source
            assert_no_canary(html, path)
            assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"inline script on {path}"
            assert not re.search(r"\sstyle=", html), f"inline style on {path}"
            assert not re.search(r"\son[a-z]+=", html), f"inline handler on {path}"
        problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert problems == []  # no CSP violation, no missing file
        color = browser.find_element(By.CSS_SELECTOR, "header.top").value_of_css_property(
            "background-color"
        )
        assert color == "rgba(16, 42, 67, 1)"  # the stylesheet loaded
        with httpx.Client(base_url=c.url, cookies={"medtap_session": session_cookie(browser)}) as h:
            for export in ("inventory.csv", "inventory.json", "violations.csv", "violations.json"):
                r = h.get(f"/export/{export}")
                assert r.status_code == 200
                assert_no_canary(r.text, export)


def test_security_headers(sample: Collector) -> None:
    for path in ("/login", "/static/medtap.css"):
        r = httpx.get(sample.url + path)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


# --- segmentation, acknowledgement, roles, CSRF --------------------------------------------


def violation_rows(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, "[data-testid=violation-row]"))


def test_zone_picture_highlights_violating_edges(policy: Collector, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    login(browser, policy, "viewer")
    open_page(browser, policy, "/segmentation")
    svg = browser.find_element(By.CSS_SELECTOR, "svg[data-testid=zone-graph]")
    zones = {g.get_attribute("data-zone") for g in svg.find_elements(By.CSS_SELECTOR, "g.node")}
    truth = POLICY_TRUTH["expected_violations"]
    pairs = {(v["client_zone"], v["server_zone"]) for v in truth}
    assert {z for pair in pairs for z in pair} <= zones
    bad = {
        (g.get_attribute("data-source"), g.get_attribute("data-target"))
        for g in svg.find_elements(By.CSS_SELECTOR, "g.edge.violating")
    }
    assert bad == pairs
    for g in svg.find_elements(By.CSS_SELECTOR, "g.edge.violating path"):
        assert g.value_of_css_property("stroke") == "rgb(198, 40, 40)"
    screenshot(browser, "segmentation")


def test_admin_acknowledges_a_violation(policy: Collector, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    login(browser, policy, "admin")
    open_page(browser, policy, "/segmentation")
    rows = violation_rows(browser)
    truth = POLICY_TRUTH["expected_violations"]
    assert len(rows) == len(truth)  # all open
    shown = {
        (
            r.find_element(By.CSS_SELECTOR, ".rule").text,
            r.find_element(By.CSS_SELECTOR, "td.service").text.split()[0],
        )
        for r in rows
    }
    assert shown == {(v["rule"], v["service"]) for v in truth}
    target = next(r for r in rows if "tcp/8080" in r.text)
    vid = target.get_attribute("data-id")
    comment = "Service laptop on the guest VLAN; vendor ticket 4711 opened"
    target.find_element(By.NAME, "comment").send_keys(comment)
    target.find_element(By.CSS_SELECTOR, "form.ack button").click()
    WebDriverWait(browser, 20).until(lambda d: len(violation_rows(d)) == len(truth) - 1)
    assert all(r.get_attribute("data-id") != vid for r in violation_rows(browser))

    open_page(browser, policy, "/segmentation?status=acknowledged")
    (row,) = violation_rows(browser)
    assert row.get_attribute("data-id") == vid
    assert "acknowledged by admin" in row.text
    row.find_element(By.CSS_SELECTOR, "details.history summary").click()
    assert comment in row.find_element(By.CSS_SELECTOR, "details.history").text
    screenshot(browser, "segmentation-acknowledged")

    open_page(browser, policy, "/audit")
    audit = texts(browser, "[data-testid=audit] tbody tr")
    assert any("violation.acknowledge" in r and f"violation {vid} " in r for r in audit)


def test_viewer_cannot_acknowledge(policy: Collector, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    login(browser, policy, "viewer")
    open_page(browser, policy, "/segmentation?status=all")
    rows = violation_rows(browser)
    assert rows and not browser.find_elements(By.CSS_SELECTOR, "[data-testid=ack-form]")
    assert not browser.find_elements(By.LINK_TEXT, "Audit")
    open_page(browser, policy, "/audit")
    assert texts(browser, "h1") == ["Not allowed"]
    open_page(browser, policy, "/segmentation")
    vid = violation_rows(browser)[0].get_attribute("data-id")
    # A forged POST with the viewer's own session and a valid CSRF token: still 403.
    cookies = {"medtap_session": session_cookie(browser)}
    form = {"csrf": page_csrf(browser), "comment": "viewer tries"}
    r = httpx.post(f"{policy.url}/violations/{vid}/ack", data=form, cookies=cookies)
    assert r.status_code == 403 and "admin role required" in r.text
    open_page(browser, policy, "/segmentation")
    assert vid in [r.get_attribute("data-id") for r in violation_rows(browser)]  # still open


def test_csrf_is_checked_on_every_post(policy: Collector, browser: Any) -> None:
    login(browser, policy, "admin")
    open_page(browser, policy, "/segmentation")
    vid = violation_rows(browser)[0].get_attribute("data-id")
    good = page_csrf(browser)
    with httpx.Client(
        base_url=policy.url, cookies={"medtap_session": session_cookie(browser)}
    ) as h:
        ack = f"/violations/{vid}/ack"
        assert h.post(ack, data={"comment": "no token"}).status_code == 403
        assert h.post(ack, data={"comment": "bad", "csrf": "0" * 64}).status_code == 403
        assert h.post(ack, data={"comment": "other", "csrf": good[:-1] + "x"}).status_code == 403
        # The same request with the page's token passes the check (unknown id: 404).
        assert (
            h.post("/violations/999999/ack", data={"comment": "c", "csrf": good}).status_code == 404
        )
        assert h.post("/logout", data={"csrf": ""}).status_code == 403
        # JSON or multipart instead of a form is refused too.
        assert h.post(ack, json={"comment": "x", "csrf": good}).status_code == 415
    # Login CSRF: a login post without the login form's cookie is refused.
    r = httpx.post(
        policy.url + "/login", data={"username": "admin", "password": PASSWORD, "csrf": "x"}
    )
    assert r.status_code == 403
    open_page(browser, policy, "/segmentation")
    assert vid in [r.get_attribute("data-id") for r in violation_rows(browser)]


def test_network_text_is_escaped(policy: Collector, browser: Any) -> None:
    """A hostname and vendor crafted by a device on the network render as text."""
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    now = datetime.now(UTC)
    device = DeviceReport(
        id="mac:02:00:00:00:66:66",
        mac="02:00:00:00:66:66",
        ips=["10.20.9.9"],
        vlans=[20],
        hostnames=[XSS_HOST],
        device_type="patient-monitor",
        category="medical",
        vendor=XSS_VENDOR,
        model="X1",
        confidence=0.5,
        first_seen=now,
        last_seen=now,
    )
    batch = Batch(sensor=SENSOR, batch_id="web-xss-0001", started=now, ended=now, devices=[device])
    r = httpx.post(
        policy.url + "/api/v1/ingest",
        content=batch.model_dump_json(),
        headers={"Authorization": f"Bearer {policy.token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    login(browser, policy, "viewer")
    open_page(browser, policy, "/inventory/devices?q=10.20.9.9")
    link = browser.find_element(By.CSS_SELECTOR, "[data-testid=device-row] td a")
    assert link.text == XSS_HOST
    link.click()
    assert XSS_VENDOR in texts(browser, "[data-testid=device-title]")[0]
    for path in ("/", "/inventory/devices?q=10.20.9.9"):
        open_page(browser, policy, path)
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
    assert "&lt;script&gt;" in browser.page_source


def test_session_cookie_is_secure_over_tls(tmp_path: Path) -> None:
    """Over TLS the cookies get ``Secure`` (in-process app, https base URL)."""
    import re as _re

    from fastapi.testclient import TestClient

    from collector.app import create_app
    from collector.auth import create_user
    from collector.db import make_engine, make_sessionmaker
    from collector.migrate import upgrade
    from collector.settings import Settings

    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with make_sessionmaker(engine)() as s:
        create_user(s, name="admin", role="admin", password=PASSWORD)
        s.commit()
    app = create_app(Settings(database_url=url), engine=engine)
    with TestClient(app, base_url="https://collector.test") as client:
        page = client.get("/login")
        assert "secure" in page.headers["set-cookie"].lower()
        token = _re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        r = client.post(
            "/login",
            data={"csrf": token.group(1), "username": "admin", "password": PASSWORD},
            follow_redirects=False,
        )
        assert r.status_code == 303
        (cookie,) = [c for c in r.headers.get_list("set-cookie") if "medtap_session=" in c]
        for flag in ("secure", "httponly", "samesite=strict", "path=/"):
            assert flag in cookie.lower()
