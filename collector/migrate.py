"""Schema migrations (Alembic, shipped inside the package) and the start-up schema check.

``medtap collector migrate`` calls :func:`upgrade`; ``serve`` and ``create_app`` call
:func:`check_schema`, which refuses a database whose revision this medtap does not know
(written by a newer medtap) and one that still needs migrating.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaError(RuntimeError):
    """The database schema does not match this medtap; the message says what to do."""


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise SchemaError("no migrations found in the installed package")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` on ``engine``'s database (refuses a newer one)."""
    _refuse_unknown(current_revision(engine))
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def check_schema(engine: Engine) -> str:
    """The database's revision, if it is exactly this medtap's head; else SchemaError."""
    current = current_revision(engine)
    _refuse_unknown(current)
    head = head_revision()
    if current != head:
        raise SchemaError(
            f"database schema is at revision {current or 'none (empty database)'}, this medtap "
            f"needs {head}: run `medtap collector migrate` first"
        )
    return current


def _refuse_unknown(current: str | None) -> None:
    if current is None:
        return
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise SchemaError(
            f"database schema revision {current!r} is newer than this medtap knows "
            f"(latest {head_revision()}); upgrade medtap, or point it at another database"
        )
