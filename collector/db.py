"""Database engine and sessions: a SQLite file (WAL) by default, PostgreSQL by URL.

SQLite: WAL lets readers run beside the one writer; ``foreign_keys`` is off by default in
SQLite and turned on here; ``busy_timeout`` makes a second writer wait instead of failing.
Python's sqlite3 starts transactions lazily and in DEFERRED mode, so a transaction that
reads and then writes can fail at once when another writer got in between. Write paths
therefore call :func:`begin_write`, which opens the transaction with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from collector.settings import is_sqlite

SQLITE_BUSY_TIMEOUT_MS = 15_000
_BEGIN_OPTION = "medtap_sqlite_begin"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; postgres:// and postgresql:// use psycopg 3."""
    if is_sqlite(url):
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,  # a failed statement's message must not carry values
            connect_args={"check_same_thread": False, "timeout": 15},
        )
        _sqlite_pragmas(engine)
        return engine
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(
        parsed, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True
    )


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def begin_write(session: Session) -> None:
    """Start the session's transaction as a write transaction (SQLite: BEGIN IMMEDIATE).

    Must be the first thing done in a transaction; on PostgreSQL it is a no-op, row locks
    and unique constraints do the work there."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={_BEGIN_OPTION: "IMMEDIATE"})
