"""deploy/: the systemd units verify, the compose file and example configs are sound."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from collector.policy import load_policy

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def unit_settings(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_units_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    for unit in UNITS:  # the binary is not installed here: point ExecStart at /usr/bin/true
        text = unit.read_text().replace("/opt/medtap/venv/bin/medtap", "/usr/bin/true")
        (tmp_path / unit.name).write_text(text)
    out = subprocess.run(["systemd-analyze", "verify", *map(str, sorted(tmp_path.iterdir()))],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr


def test_sensor_unit_hardening() -> None:
    s = unit_settings(DEPLOY / "systemd" / "medtap-sensor.service")
    assert s["DynamicUser"] == ["yes"] and s["NoNewPrivileges"] == ["yes"]
    assert s["ProtectSystem"] == ["strict"] and s["PrivateTmp"] == ["yes"]
    assert set(s["CapabilityBoundingSet"][0].split()) == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert set(s["AmbientCapabilities"][0].split()) == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert "AF_PACKET" in s["RestrictAddressFamilies"][0].split()
    assert s["StateDirectory"] == ["medtap-sensor"]
    assert "capset" in s["SystemCallFilter"]  # the sensor drops its capabilities with it
    assert s["KillMode"] == ["mixed"]  # workers are stopped by the sensor, not by systemd
    assert "--token" not in " ".join(s["ExecStart"])  # the token stays out of ps


def test_collector_unit_has_no_capabilities() -> None:
    s = unit_settings(DEPLOY / "systemd" / "medtap-collector.service")
    assert s["CapabilityBoundingSet"] == [""] and s["DynamicUser"] == ["yes"]
    assert "AF_PACKET" not in s["RestrictAddressFamilies"][0]


def test_compose_collector_and_postgres() -> None:
    compose = yaml.safe_load((DEPLOY / "container" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"collector", "db"}
    assert services["collector"]["cap_drop"] == ["ALL"]
    url = services["collector"]["environment"]["MEDTAP_DATABASE_URL"]
    assert url.startswith("postgresql") and "${MEDTAP_DB_PASSWORD}" in url
    assert compose["networks"]["backend"]["internal"] is True
    assert "USER 10001" in (DEPLOY / "container" / "Containerfile").read_text()


def test_example_policy_loads() -> None:
    policy = load_policy(DEPLOY / "policy.example.yaml")
    assert {"clinical", "medical", "imaging", "guest"} <= set(policy.zones)
