"""Uplink options of ``medtap analyze`` and the ``medtap uplink drain|status`` commands.

docs/uplink.md. ``analyze --upload URL`` checks the options before reading any capture
(a bad URL fails in a second, not after the analysis), then spools the report's batches
durably and drains them. When the collector stays unreachable past ``--upload-deadline``
the batches stay in the spool for the next run or ``medtap uplink drain``; exit status 4.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.uplink.spool import DEFAULT_MAX_BYTES, Spool, SpoolError, SpoolItem

# httpx, pydantic and the batch builder are imported where an upload happens: every
# `medtap` command starts through this module, and they cost half a second at start-up.
if TYPE_CHECKING:
    from agent.uplink.batch import BatchLimits
    from agent.uplink.client import UplinkConfig
    from agent.uplink.drain import DrainResult
    from collector.schema import Batch

EXIT_UPLOAD_INCOMPLETE = 4
BATCH_ITEMS_ENV = "MEDTAP_UPLINK_BATCH_ITEMS"  # tuning/testing: max devices/flows per batch
PANEL = "Upload to a collector"

UploadOpt = Annotated[
    str | None,
    typer.Option(
        "--upload",
        metavar="URL",
        rich_help_panel=PANEL,
        help="send the results to this collector (https://HOST:PORT)",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="MEDTAP_TOKEN",
        show_envvar=True,
        rich_help_panel=PANEL,
        help="sensor bearer token; prefer the environment variable (not visible in ps)",
    ),
]
SensorNameOpt = Annotated[
    str | None,
    typer.Option(
        "--sensor-name",
        rich_help_panel=PANEL,
        help="the name the token was issued to [default: this host's name]",
    ),
]
CaFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        dir_okay=False,
        rich_help_panel=PANEL,
        help="PEM CA certificate(s) that signed the collector's certificate "
        "[default: system trust store]",
    ),
]
InsecureHttpOpt = Annotated[
    bool,
    typer.Option(
        "--insecure-http",
        rich_help_panel=PANEL,
        help="allow unencrypted http:// to a collector that is not on loopback (warns)",
    ),
]
SpoolOpt = Annotated[
    Path | None,
    typer.Option(
        "--spool",
        envvar="MEDTAP_SPOOL",
        file_okay=False,
        rich_help_panel=PANEL,
        help="spool directory [default: $XDG_STATE_HOME/medtap/spool]",
    ),
]
SpoolMaxOpt = Annotated[
    int,
    typer.Option(
        "--spool-max-mb",
        min=1,
        rich_help_panel=PANEL,
        help="spool size cap; the oldest batches are dropped (and counted) beyond it",
    ),
]
DeadlineOpt = Annotated[
    float,
    typer.Option(
        "--upload-deadline",
        min=0.0,
        metavar="SECONDS",
        rich_help_panel=PANEL,
        help="give up (batches stay spooled) after this long without a delivery",
    ),
]
DEFAULT_SPOOL_MB = DEFAULT_MAX_BYTES // (1024 * 1024)
DEFAULT_DEADLINE = 60.0


def _echo(message: str) -> None:
    typer.echo(f"medtap: {message}", err=True)


def default_spool() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "medtap" / "spool"


def _batch_limits() -> BatchLimits:
    from agent.uplink.batch import BatchLimits

    raw = os.environ.get(BATCH_ITEMS_ENV)
    if not raw:
        return BatchLimits()
    try:
        n = int(raw)
        return BatchLimits(devices=n, flows=n, violations=n)
    except ValueError:
        _echo(f"error: {BATCH_ITEMS_ENV}={raw!r} is not a batch size")
        raise typer.Exit(2) from None


@dataclass
class Uploader:
    """The checked upload settings of one run; the token never leaves this object."""

    url: str
    config: UplinkConfig
    sensor: str
    spool_dir: Path
    spool_max_bytes: int
    deadline: float

    def upload(self, report: dict[str, Any]) -> None:
        """Spool the report's batches, then drain; ``typer.Exit(4)`` if any stay behind."""
        try:
            self._upload(report)
        except SpoolError as exc:
            _echo(f"error: {exc}")
            raise typer.Exit(EXIT_UPLOAD_INCOMPLETE) from None

    def _upload(self, report: dict[str, Any]) -> None:
        from agent.uplink.batch import (
            BuildStats,
            batches_from_report,
            encode_batch,
            heartbeat_from_report,
        )

        with self._spool() as spool:
            before = spool.stats()
            heartbeat = heartbeat_from_report(
                report, spool_depth=before.depth, spool_dropped=before.counters["dropped"]
            )
            built = BuildStats()
            batches = batches_from_report(
                report,
                sensor=self.sensor,
                limits=_batch_limits(),
                heartbeat=heartbeat,
                stats=built,
            )
            if built.rejected:
                refused = ", ".join(f"{n} {kind}" for kind, n in sorted(built.rejected.items()))
                _echo(f"warning: not uploaded, refused by the wire schema: {refused}")
            put = spool.put(
                [
                    SpoolItem(b.batch_id, encode_batch(b), heartbeat_only=_heartbeat_only(b))
                    for b in batches
                ]
            )
            _remember(spool, self)
            if put.refused:
                _echo(f"warning: {put.refused} batches larger than the spool cap were not sent")
            self.send_spooled(spool, planned=len(batches))

    def _spool(self) -> Spool:
        try:
            return Spool(self.spool_dir, max_bytes=self.spool_max_bytes)
        except SpoolError as exc:
            _echo(f"error: {exc}")
            raise typer.Exit(EXIT_UPLOAD_INCOMPLETE) from None

    def send_spooled(self, spool: Spool, planned: int | None = None) -> None:
        """Drain under the drain lock, print a summary; ``typer.Exit`` unless all went."""
        from agent.uplink.client import UplinkClient, UplinkConfigError
        from agent.uplink.drain import Backoff, DrainLock, drain

        lock = DrainLock(self.spool_dir)
        if not lock.acquire(timeout=self.deadline):
            _echo(
                f"another medtap process is sending from {self.spool_dir}; "
                f"{spool.depth()} batches are spooled there and it will send them"
            )
            raise typer.Exit(EXIT_UPLOAD_INCOMPLETE)
        try:
            with UplinkClient(self.config) as client:
                result = drain(spool, client, idle_deadline=self.deadline, backoff=Backoff())
        except UplinkConfigError as exc:
            _echo(f"error: {exc}")
            raise typer.Exit(2) from None
        finally:
            lock.release()
        self._summary(result, planned)

    def _summary(self, result: DrainResult, planned: int | None) -> None:
        delivered = result.stored + result.duplicate
        verb = "uploaded" if result.complete else "sent"
        what = f" of {planned}" if planned is not None and not result.complete else ""
        _echo(
            f"{verb} {delivered}{what} batches to {self.url}: {result.stored} stored, "
            f"{result.duplicate} already there (duplicate)"
        )
        where = (
            f"{result.remaining} batches are spooled in {self.spool_dir} and will be sent by "
            f"the next upload or `medtap uplink drain --spool {self.spool_dir}`"
        )
        if result.fatal is not None:
            _echo(f"error: {result.fatal}; {where}")
        elif result.timed_out:
            _echo(
                f"error: collector {self.url} unreachable for {self.deadline:g} s "
                f"({result.last_failure}); {where}"
            )
        if result.dead:
            _echo(
                f"error: the collector refused {result.dead} batches; they are kept as dead "
                f"letters, see `medtap uplink status --spool {self.spool_dir}`"
            )
        if not result.complete or result.dead:
            raise typer.Exit(EXIT_UPLOAD_INCOMPLETE)


def prepare(
    url: str | None,
    token: str | None,
    sensor_name: str | None,
    ca_file: Path | None,
    insecure_http: bool,
    spool_dir: Path | None,
    spool_max_mb: int = DEFAULT_SPOOL_MB,
    deadline: float = DEFAULT_DEADLINE,
) -> Uploader | None:
    """Check the upload options before any work; None without ``--upload``.

    Usage errors exit 2 here: a missing token, a refused http:// URL, a missing CA file."""
    from agent.uplink.client import UplinkConfig, UplinkConfigError, ingest_url

    if url is None:
        for flag, value in (("--ca-file", ca_file), ("--sensor-name", sensor_name)):
            if value is not None:
                _echo(f"error: {flag} needs --upload URL")
                raise typer.Exit(2)
        return None
    if not token:
        _echo("error: --upload needs a sensor token: set MEDTAP_TOKEN (or --token)")
        raise typer.Exit(2)
    if ca_file is not None and not ca_file.is_file():
        _echo(f"error: --ca-file {ca_file}: no such file")
        raise typer.Exit(2)
    try:
        endpoint = ingest_url(url, insecure_http=insecure_http)
    except UplinkConfigError as exc:
        _echo(f"error: {exc}")
        raise typer.Exit(2) from None
    _warn_if_plain(endpoint)
    sensor = (sensor_name or socket.gethostname()).strip()
    if not 1 <= len(sensor) <= 128:
        _echo("error: --sensor-name must be 1 to 128 characters")
        raise typer.Exit(2)
    config = UplinkConfig(
        url=url,
        token=token,
        ca_file=ca_file.resolve() if ca_file else None,
        insecure_http=insecure_http,
    )
    directory = spool_dir or default_spool()
    try:  # a spool that cannot be written fails now, not after a long analysis
        Spool(directory).close()
    except SpoolError as exc:
        _echo(f"error: {exc}")
        raise typer.Exit(2) from None
    return Uploader(
        url=url,
        config=config,
        sensor=sensor,
        spool_dir=directory,
        spool_max_bytes=spool_max_mb * 1024 * 1024,
        deadline=deadline,
    )


def _heartbeat_only(batch: Batch) -> bool:
    return not (batch.devices or batch.flows or batch.violations)


def _warn_if_plain(endpoint: str) -> None:
    import httpx

    from agent.uplink.client import is_loopback

    host = httpx.URL(endpoint).host
    if endpoint.startswith("http://") and not is_loopback(host):
        # on every start, by design: an unencrypted uplink must never be forgotten
        _echo(
            f"warning: --insecure-http: uploading to {host} WITHOUT encryption; device "
            "inventory and token travel in clear text"
        )


def _remember(spool: Spool, up: Uploader) -> None:
    """Where these batches go, so ``uplink drain`` needs only the token (never stored)."""
    spool.set_meta("url", up.url)
    spool.set_meta("sensor", up.sensor)
    if up.config.ca_file is not None:
        spool.set_meta("ca_file", str(up.config.ca_file))


# --- medtap uplink ... ---------------------------------------------------------------------

uplink_app = typer.Typer(
    name="uplink",
    help="Inspect and send the upload spool.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@uplink_app.command("drain")
def drain_command(
    spool_dir: SpoolOpt = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="collector URL [default: the one the batches were spooled for]"),
    ] = None,
    token: TokenOpt = None,
    ca_file: CaFileOpt = None,
    insecure_http: InsecureHttpOpt = False,
    deadline: DeadlineOpt = DEFAULT_DEADLINE,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Send what the spool holds, oldest first. Exit 0 when it is empty afterwards."""
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    directory = spool_dir or default_spool()
    if not (directory / "spool.sqlite3").exists():
        _echo(f"nothing to send: no spool in {directory}")
        return
    with _open(directory) as spool:
        url = url or spool.get_meta("url")
        if url is None:
            _echo("error: the spool does not say where to send; give --url")
            raise typer.Exit(2)
        stored_ca = spool.get_meta("ca_file")
        if ca_file is None and stored_ca:
            ca_file = Path(stored_ca)
        up = prepare(
            url,
            token,
            spool.get_meta("sensor"),
            ca_file,
            insecure_http,
            directory,
            deadline=deadline,
        )
        assert up is not None  # url is set
        if spool.depth() == 0:
            _echo(f"nothing to send: the spool in {directory} is empty")
            return
        up.send_spooled(spool)


@uplink_app.command("status")
def status_command(
    spool_dir: SpoolOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Spool depth, size and cap, counters (dropped, dead letters, delivered)."""
    directory = spool_dir or default_spool()
    if not (directory / "spool.sqlite3").exists():
        _echo(f"no spool in {directory}")
        raise typer.Exit(1)
    with _open(directory) as spool:
        stats = spool.stats()
        dead = spool.dead_letters()
        info: dict[str, Any] = {
            "spool": str(directory),
            "url": spool.get_meta("url"),
            "sensor": spool.get_meta("sensor"),
            "depth": stats.depth,
            "bytes": stats.bytes,
            "oldest_age_seconds": (
                round(time.time() - stats.oldest_enqueued, 1) if stats.oldest_enqueued else None
            ),
            "counters": stats.counters,
            "dead_letters": [{"batch_id": b, "reason": r} for b, r in dead],
        }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"spool {directory} -> {info['url'] or '?'} as sensor {info['sensor'] or '?'}")
    typer.echo(f"  waiting: {stats.depth} batches, {stats.bytes:,} bytes")
    if info["oldest_age_seconds"] is not None:
        typer.echo(f"  oldest waiting: {info['oldest_age_seconds']} s")
    typer.echo("  " + ", ".join(f"{k} {v}" for k, v in stats.counters.items()))
    for batch_id, reason in dead:
        typer.echo(f"  dead letter {batch_id}: {reason}")


def _open(directory: Path) -> Spool:
    try:
        # the cap only matters for put(); opening for drain/status never drops anything
        return Spool(directory)
    except SpoolError as exc:
        _echo(f"error: {exc}")
        raise typer.Exit(1) from None
