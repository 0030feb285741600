"""``medtap sensor``: the long-running sensor on a mirror port (docs/sensor.md).

Registered in ``agent/cli.py`` with ``register(app)``; also runnable on its own as
``python -m agent.cli_sensor`` (one command). Options are checked before any socket is
opened: a bad policy file, collector URL, user or alert spec exits 2 with one line.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_uplink import (
    DEFAULT_SPOOL_MB,
    CaFileOpt,
    InsecureHttpOpt,
    SensorNameOpt,
    SpoolMaxOpt,
    default_spool,
)
from agent.sensor.limits import (
    SENSOR_MAX_BINDINGS,
    SENSOR_MAX_CONVERSATIONS,
    SENSOR_MAX_EVIDENCE,
    SENSOR_MAX_FLOWS,
)
from agent.sensor.ring import DEFAULT_RING_MB

PANEL_UP = "Upload to a collector"
PANEL_RUN = "Running"


def _spool_default() -> Path:
    # systemd's StateDirectory= exports the directory it made for the unit
    state = os.environ.get("STATE_DIRECTORY")
    return Path(state.split(":")[0]) / "spool" if state else default_spool()


def sensor(
    interface: Annotated[str, typer.Option("--interface", "-i", help="mirror-port interface")],
    collector: Annotated[
        str | None,
        typer.Option("--collector", metavar="URL", rich_help_panel=PANEL_UP,
                     help="collector to upload to and fetch the policy from (https://HOST:PORT)"),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="MEDTAP_TOKEN", show_envvar=True,
                     rich_help_panel=PANEL_UP,
                     help="sensor bearer token; prefer the environment (not visible in ps)"),
    ] = None,
    sensor_name: SensorNameOpt = None,
    ca_file: CaFileOpt = None,
    insecure_http: InsecureHttpOpt = False,
    spool: Annotated[
        Path | None,
        typer.Option("--spool", envvar="MEDTAP_SPOOL", file_okay=False, rich_help_panel=PANEL_UP,
                     help="spool directory [default: $STATE_DIRECTORY/spool or "
                     "$XDG_STATE_HOME/medtap/spool]"),
    ] = None,
    spool_max_mb: SpoolMaxOpt = DEFAULT_SPOOL_MB,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", dir_okay=False,
                     help="segmentation policy file [default: the collector's]"),
    ] = None,
    alert: Annotated[
        list[str] | None,
        typer.Option("--alert", help="also send each new violation to SPEC "
                     "(jsonl:FILE, syslog+udp://, https://...)"),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, max=64,
                          help="capture processes, sharing flows by kernel fanout hash"),
    ] = 1,
    bpf: Annotated[str | None, typer.Option(help="kernel BPF filter (tcpdump syntax)")] = None,
    report_interval: Annotated[
        float, typer.Option(min=1.0, metavar="SECONDS",
                            help="seconds between snapshots (and heartbeats)"),
    ] = 60.0,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="one JSON object per log line")
    ] = False,
    metrics_port: Annotated[
        int | None, typer.Option(min=0, max=65535, rich_help_panel=PANEL_RUN,
                                 help="serve Prometheus metrics on this port (/metrics)"),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(rich_help_panel=PANEL_RUN, help="address for --metrics-port"),
    ] = "127.0.0.1",
    user: Annotated[
        str | None,
        typer.Option(rich_help_panel=PANEL_RUN,
                     help="started as root: become USER[:GROUP] once the sockets are open"),
    ] = None,
    ring_mb: Annotated[
        int, typer.Option(min=2, max=4096, rich_help_panel=PANEL_RUN,
                          help="capture ring per worker (MiB): absorbs bursts"),
    ] = DEFAULT_RING_MB,
    max_flows: Annotated[
        int, typer.Option(min=1, rich_help_panel=PANEL_RUN,
                          help="open flows per worker; the least recently seen are evicted"),
    ] = SENSOR_MAX_FLOWS,
    max_bindings: Annotated[
        int, typer.Option(min=1, rich_help_panel=PANEL_RUN,
                          help="endpoint bindings (MAC/IP, routed IPs) per worker"),
    ] = SENSOR_MAX_BINDINGS,
    max_conversations: Annotated[
        int, typer.Option(min=1, rich_help_panel=PANEL_RUN,
                          help="conversations held (client, server, service, VLAN)"),
    ] = SENSOR_MAX_CONVERSATIONS,
    max_evidence: Annotated[
        int, typer.Option(min=1, rich_help_panel=PANEL_RUN,
                          help="evidence records held (host, kind, value, VLAN)"),
    ] = SENSOR_MAX_EVIDENCE,
    stats_interval: Annotated[
        float, typer.Option(min=0.2, metavar="SECONDS", rich_help_panel=PANEL_RUN,
                            help="seconds between counter updates (metrics) [default: 5, at "
                            "most --report-interval]"),
    ] = 5.0,
    core_only: Annotated[
        bool, typer.Option("--core-only", rich_help_panel=PANEL_RUN,
                           help="decode, flows and endpoints only, no parsers (sizing runs)"),
    ] = False,
    shed: Annotated[
        bool, typer.Option("--shed/--no-shed", rich_help_panel=PANEL_RUN,
                           help="when a worker falls behind its ring, give new flows no "
                           "parsers until it catches up (counted as flows_unparsed) instead "
                           "of letting the kernel drop frames"),
    ] = True,
    flush_timeout: Annotated[
        float, typer.Option(min=0.0, metavar="SECONDS", rich_help_panel=PANEL_RUN,
                            help="on SIGTERM, time to send the last batches (rest stays spooled)"),
    ] = 15.0,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Capture on a mirror port for months: inventory, violations, uploads, heartbeats.

    SIGHUP reloads the policy; SIGTERM sends what is left and exits."""
    from agent.sensor import logs
    from agent.sensor.runner import SensorConfig, run_sensor
    from agent.uplink.client import UplinkConfig, UplinkConfigError, ingest_url

    logs.setup(log_json, verbose)
    uplink = None
    if collector is None:
        for flag, value in (("--token", token), ("--ca-file", ca_file)):
            if value:
                typer.echo(f"medtap sensor: error: {flag} needs --collector URL", err=True)
                raise typer.Exit(2)
    else:
        if not token:
            typer.echo("medtap sensor: error: --collector needs a sensor token: set "
                       "MEDTAP_TOKEN (or --token)", err=True)
            raise typer.Exit(2)
        if ca_file is not None and not ca_file.is_file():
            typer.echo(f"medtap sensor: error: --ca-file {ca_file}: no such file", err=True)
            raise typer.Exit(2)
        try:
            ingest_url(collector, insecure_http=insecure_http)
        except UplinkConfigError as exc:
            typer.echo(f"medtap sensor: error: {exc}", err=True)
            raise typer.Exit(2) from None
        uplink = UplinkConfig(url=collector, token=token, ca_file=ca_file,
                              insecure_http=insecure_http)
    name = (sensor_name or socket.gethostname()).strip()
    if not 1 <= len(name) <= 128:
        typer.echo("medtap sensor: error: --sensor-name must be 1 to 128 characters", err=True)
        raise typer.Exit(2)
    config = SensorConfig(
        interface=interface,
        sensor_name=name,
        spool_dir=spool or _spool_default(),
        workers=workers,
        bpf=bpf,
        uplink=uplink,
        policy_file=policy,
        report_interval=report_interval,
        stats_interval=min(stats_interval, report_interval),
        core_only=core_only,
        spool_max_bytes=spool_max_mb * 1024 * 1024,
        user=user,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        alerts=alert or [],
        ring_mb=ring_mb,
        max_flows=max_flows,
        max_bindings=max_bindings,
        max_conversations=max_conversations,
        max_evidence=max_evidence,
        flush_timeout=flush_timeout,
        shed=shed,
    )
    code = run_sensor(config)
    sys.stderr.flush()
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """``agent/cli.py``: ``register_sensor(app)`` adds ``medtap sensor``."""
    app.command("sensor")(sensor)


def main() -> None:
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    standalone.command()(sensor)
    standalone()


if __name__ == "__main__":
    main()
