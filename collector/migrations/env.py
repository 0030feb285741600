"""Alembic environment for the collector; run through :mod:`collector.migrate`.

The caller passes an open connection in ``config.attributes["connection"]`` (tests, the
CLI), or the URL in ``sqlalchemy.url``. SQLite gets batch mode so later migrations can
alter tables there too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from collector.db import make_engine
from collector.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migration environment")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
