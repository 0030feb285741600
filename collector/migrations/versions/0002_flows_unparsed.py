"""Heartbeat counter flows_unparsed: new flows a live sensor counted but gave no protocol
parsers while a capture worker was behind its ring (load shedding), on the sensor's latest
counters and in the heartbeat history. Existing rows get 0 (the server default): sensors
before this counter never shed load.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("sensor", "heartbeat")

# Plain ALTER TABLE on both databases (SQLite >= 3.35 has ADD and DROP COLUMN), not batch
# mode: a batch "move and copy" would DROP TABLE sensor, and with foreign keys on (as
# collector.db sets them) SQLite would cascade that into tokens, heartbeats and devices.


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table,
            sa.Column("flows_unparsed", sa.BigInteger(), nullable=False, server_default="0"),
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_column(table, "flows_unparsed")
