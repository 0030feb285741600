"""``medtap sensor`` options, logs and metrics without a capture (no root needed)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.cli_sensor import register
from agent.sensor import logs
from agent.sensor.metrics import Sample, render
from agent.sensor.privileges import PrivilegeError, resolve_user

ROOT = Path(__file__).resolve().parent.parent


def sensor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli_sensor", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def test_registers_as_medtap_sensor() -> None:
    app = typer.Typer()
    app.command("version")(lambda: None)
    register(app)
    result = CliRunner().invoke(app, ["sensor", "--help"])
    assert result.exit_code == 0 and "--interface" in result.output


def test_bad_policy_exits_2_before_capture(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("zones: {clinical: {vlans: [5000]}}\n")
    out = sensor("-i", "lo", "--policy", str(bad), "--spool", str(tmp_path / "s"))
    assert out.returncode == 2
    assert "p.yaml:1" in out.stderr and "4094" in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", "t"], "--token needs --collector"),
        (["--collector", "https://c.example"], "needs a sensor token"),
        (["--collector", "http://10.1.2.3:8080", "--token", "t"], "refusing plain http"),
        (["--user", "no-such-user-medtap", "--policy", "pcaps/policy/policy.yaml"],
         "no such user"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    out = sensor("-i", "lo", "--spool", str(tmp_path / "s"), *args,
                 env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 2, out.stderr
    assert message in out.stderr


def test_root_is_no_user_to_drop_to() -> None:
    with pytest.raises(PrivilegeError, match="root"):
        resolve_user("root")


def test_prometheus_text() -> None:
    text = render([
        Sample("medtap_sensor_packets_total", "counter", "frames", 10),
        Sample("medtap_sensor_packets_total", "counter", "frames", 4, (("worker", "0"),)),
        Sample("medtap_sensor_info", "gauge", "id", 1, (("interface", 'a"b\\c'),)),
    ])
    assert text.count("# TYPE medtap_sensor_packets_total counter") == 1
    assert 'medtap_sensor_packets_total{worker="0"} 4\n' in text
    assert 'interface="a\\"b\\\\c"' in text


def test_json_logs_carry_fields_not_exception_text() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.setup(json_lines=True, stream=stream)
    try:
        log = logging.getLogger("medtap.test")
        log.info("snapshot %d", 3, extra={"fields": {"event": "snapshot", "seq": 3}})
        try:
            raise ValueError("CANARY^PATIENT in a message")
        except ValueError:
            log.exception("parser failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "snapshot 3" and first["event"] == "snapshot" and first["seq"] == 3
    assert second["exception"] == "ValueError" and "CANARY" not in stream.getvalue()
