"""Helpers for the web UI tests: a real collector (``medtap collector serve``, uvicorn on
127.0.0.1 and an ephemeral port, SQLite in a temporary directory) fed by the real sensor
uplink (``medtap analyze FILE --upload URL --token T``), and a real headless Chromium
(Debian ``chromium`` + ``chromium-driver``) driven by Selenium.

Chromium runs with a fresh profile and with background networking, component updates,
sync and QUIC off, so it talks to nothing but the collector on loopback; Selenium gets the
driver path explicitly, so Selenium Manager never tries to download one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "pcaps" / "sample" / "hospital-sample.pcapng"
POLICY_PCAP = ROOT / "pcaps" / "policy" / "hospital-policy.pcapng"
POLICY = ROOT / "pcaps" / "policy" / "policy.yaml"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PASSWORD = "correct horse battery staple"
SENSOR = "ward-3-span"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
)


def need_chromium() -> None:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("needs Debian chromium and chromium-driver (.ci/run installs them)")
    pytest.importorskip("selenium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def medtap(*args: str, stdin: str | None = None, timeout: float = 300) -> str:
    """The real CLI; stdout, or AssertionError with stderr on a non-zero exit."""
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=ROOT,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise AssertionError(f"medtap {' '.join(args[:3])} -> {out.returncode}: {out.stderr}")
    return out.stdout


@dataclass
class Collector:
    url: str
    database: str
    token: str
    workdir: Path
    reports: list[dict[str, Any]] = field(default_factory=list)

    def upload(self, pcap: Path, *extra: str) -> dict[str, Any]:
        """``medtap analyze PCAP --upload URL --token T`` and the JSON report it wrote."""
        out = self.workdir / f"report-{len(self.reports)}.json"
        medtap(
            "analyze",
            str(pcap),
            *extra,
            "--upload",
            self.url,
            "--token",
            self.token,
            "--sensor-name",
            SENSOR,
            "--spool",
            str(self.workdir / "spool"),
            "--no-progress",
            "-f",
            "json",
            "-o",
            str(out),
        )
        report: dict[str, Any] = json.loads(out.read_text())
        self.reports.append(report)
        return report


@contextmanager
def collector(workdir: Path) -> Iterator[Collector]:
    """A migrated SQLite collector with users ``admin`` and ``viewer`` and one sensor,
    served by uvicorn until the block ends."""
    database = f"sqlite:///{workdir / 'collector.db'}"
    medtap("collector", "migrate", "--database", database)
    for name, role in (("admin", "admin"), ("viewer", "viewer")):
        medtap(
            "collector", "add-user", name, "--role", role, "--password-stdin",
            "--database", database, stdin=PASSWORD + "\n",
        )  # fmt: skip
    token = medtap("collector", "add-sensor", SENSOR, "--database", database).strip()
    port = free_port()
    log = workdir / "collector.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "collector", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--database", database],
            stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"collector exited {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"collector did not start: {log.read_text()}")
            time.sleep(0.1)
        yield Collector(url, database, token, workdir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chromium(workdir: Path, *, width: int = 1366, height: int = 900) -> Iterator[Any]:
    """A headless Chromium (Selenium WebDriver) with a fresh profile and a download dir."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = workdir / "chromium-profile"
    downloads = workdir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    service = Service(CHROMEDRIVER, log_output=str(workdir / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: Any, name: str, *, full: bool = True) -> Path:
    """Save the page as tests/artifacts/NAME.png (whole page height when ``full``)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = driver.get_window_size()
    driver.execute_script("window.scrollTo(0, 0)")
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], min(max(int(height) + 160, 400), 4000))
    driver.save_screenshot(str(path))
    if full:
        driver.set_window_size(size["width"], size["height"])
    return path


def wait_for_file(directory: Path, name: str, timeout: float = 20) -> Path:
    path = directory / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and not (directory / f"{name}.crdownload").exists():
            return path
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded: {sorted(os.listdir(directory))}")
