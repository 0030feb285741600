"""``medtap collector …``: run the collector and manage its database, sensors and users.

The server stack (FastAPI, SQLAlchemy, Alembic, uvicorn) is imported inside each command,
so ``medtap --help`` and the sensor commands stay fast and need none of it. The database
is ``--database URL``, else ``MEDTAP_DATABASE_URL``, else ``sqlite:///medtap-collector.db``.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from collector.settings import Settings

collector_app = typer.Typer(
    name="collector",
    help="The central collector: API server, database migrations, sensors and users.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("medtap.collector")

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database", help="database URL (default: $MEDTAP_DATABASE_URL or a SQLite file)"
    ),
]


class Role(StrEnum):
    viewer = "viewer"
    admin = "admin"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"medtap collector: error: {message}", err=True)
    return typer.Exit(code)


def _settings(database: str | None) -> Settings:
    from collector.settings import SettingsError, settings_from_env

    try:
        return settings_from_env().with_database(database).validate()
    except SettingsError as exc:
        raise _fail(str(exc), 2) from None


def _engine(database: str | None) -> Engine:
    from collector.db import make_engine

    return make_engine(_settings(database).database_url)


def _checked_engine(database: str | None) -> Engine:
    """An engine on a database at this medtap's schema, else a one-line error (exit 2)."""
    from collector.migrate import SchemaError, check_schema

    engine = _engine(database)
    try:
        check_schema(engine)
    except SchemaError as exc:
        raise _fail(str(exc), 2) from None
    return engine


@collector_app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = 8080,
    database: DatabaseOpt = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM)")] = None,
    forwarded_allow_ips: Annotated[
        str | None, typer.Option(help="proxies trusted for X-Forwarded-For (uvicorn)")
    ] = None,
    alert: Annotated[
        list[str] | None,
        typer.Option(help="send new violations here (syslog+udp://, syslog+tcp://, https://, "
                     "jsonl:PATH); repeatable; adds to MEDTAP_ALERT_SINKS"),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Run the collector API (uvicorn). The database must be migrated first."""
    import uvicorn

    from collector.app import create_app
    from collector.migrate import SchemaError
    from collector.settings import SettingsError

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if (tls_cert is None) != (tls_key is None):
        raise _fail("--tls-cert and --tls-key go together", 2)
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise _fail(f"{path}: no such file", 2)
    if tls_cert is None and not _is_loopback(host):
        log.warning("serving without TLS on %s: tokens and passwords cross the network", host)
    settings = _settings(database)
    if alert:
        settings = replace(settings, alert_sinks=(*settings.alert_sinks, *alert))
    try:
        app = create_app(settings)
    except (SchemaError, SettingsError) as exc:
        raise _fail(str(exc), 2) from None
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        forwarded_allow_ips=forwarded_allow_ips,
        proxy_headers=forwarded_allow_ips is not None,
        server_header=False,
        log_level="info" if verbose else "warning",
        access_log=verbose > 1,
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@collector_app.command()
def migrate(database: DatabaseOpt = None) -> None:
    """Create or upgrade the database schema (Alembic); refuses a newer schema."""
    from collector.migrate import SchemaError, current_revision, upgrade

    engine = _engine(database)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    except SchemaError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        engine.dispose()
    if before == after:
        typer.echo(f"database schema is current (revision {after})")
    else:
        typer.echo(f"database schema migrated: {before or 'empty'} -> {after}")


@collector_app.command("add-sensor")
def add_sensor(
    name: Annotated[str, typer.Argument(help="the sensor's name (its batches carry it)")],
    database: DatabaseOpt = None,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="revoke the sensor's tokens and issue a new one")
    ] = False,
) -> None:
    """Register a sensor and print its bearer token (shown once, stored hashed)."""
    from sqlalchemy.orm import Session

    from collector.auth import CredentialError, audit, create_sensor

    engine = _checked_engine(database)
    try:
        with Session(engine) as session:
            token = create_sensor(session, name=name, rotate=rotate)
            action = "sensor.rotate" if rotate else "sensor.add"
            audit(session, actor="cli", action=action, target=name)
            session.commit()
    except CredentialError as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    typer.echo(token)
    typer.echo(f"sensor {name!r} registered; the token above is shown only once", err=True)


@collector_app.command("revoke-sensor")
def revoke_sensor_cmd(name: str, database: DatabaseOpt = None) -> None:
    """Revoke a sensor's tokens (its data stays)."""
    from sqlalchemy.orm import Session

    from collector.auth import audit, revoke_sensor

    engine = _checked_engine(database)
    try:
        with Session(engine) as session:
            if not revoke_sensor(session, name=name):
                raise _fail(f"no sensor named {name!r}")
            audit(session, actor="cli", action="sensor.revoke", target=name)
            session.commit()
    finally:
        engine.dispose()
    typer.echo(f"sensor {name!r} revoked")


@collector_app.command("list-sensors")
def list_sensors(database: DatabaseOpt = None) -> None:
    """Registered sensors with state, last heartbeat and counters."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from collector.api.sensors import sensor_state
    from collector.models import Sensor, utcnow

    settings = _settings(database)
    engine = _checked_engine(database)
    try:
        with Session(engine) as session:
            now = utcnow()
            rows = session.scalars(select(Sensor).order_by(Sensor.name)).all()
            typer.echo(
                "name\tstate\tlast heartbeat\tbatches\tpackets\tdrops\tparser errors"
                "\tflows unparsed"
            )
            for s in rows:
                seen = s.heartbeat_received_at.isoformat() if s.heartbeat_received_at else "-"
                typer.echo(
                    f"{s.name}\t{sensor_state(s, settings, now)}\t{seen}\t{s.batches}\t"
                    f"{s.packets}\t{s.kernel_drops}\t{s.parser_errors}\t{s.flows_unparsed}"
                )
    finally:
        engine.dispose()


@collector_app.command("add-user")
def add_user(
    name: str,
    role: Annotated[Role, typer.Option(help="viewer: read; admin: also manage")] = Role.viewer,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    database: DatabaseOpt = None,
) -> None:
    """Add a web/API user; the password is prompted for (or read from stdin)."""
    from sqlalchemy.orm import Session

    from collector.auth import CredentialError, audit, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    engine = _checked_engine(database)
    try:
        with Session(engine) as session:
            create_user(session, name=name, role=role.value, password=password)
            audit(session, actor="cli", action="user.add", target=name, detail=role.value)
            session.commit()
    except CredentialError as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    typer.echo(f"user {name!r} added ({role.value})")


@collector_app.command("disable-user")
def disable_user_cmd(name: str, database: DatabaseOpt = None) -> None:
    """Disable a user and revoke their sessions."""
    from sqlalchemy.orm import Session

    from collector.auth import audit, disable_user

    engine = _checked_engine(database)
    try:
        with Session(engine) as session:
            if not disable_user(session, name=name):
                raise _fail(f"no user named {name!r}")
            audit(session, actor="cli", action="user.disable", target=name)
            session.commit()
    finally:
        engine.dispose()
    typer.echo(f"user {name!r} disabled")
