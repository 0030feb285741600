"""Initial collector schema: sensors, users, tokens, devices, evidence, flows, violations,
audit, batches, heartbeats, policy documents.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 13:39:27.147588
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_audit_event_action"), "audit_event", ["action"], unique=False)
    op.create_index(op.f("ix_audit_event_at"), "audit_event", ["at"], unique=False)

    op.create_table(
        "device",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=144), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.Column("category", sa.String(length=128), nullable=True),
        sa.Column("device_type", sa.String(length=128), nullable=False),
        sa.Column("vendor", sa.String(length=512), nullable=True),
        sa.Column("model", sa.String(length=512), nullable=True),
        sa.Column("software_version", sa.String(length=512), nullable=True),
        sa.Column("serial", sa.String(length=512), nullable=True),
        sa.Column("oui_vendor", sa.String(length=512), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("is_router", sa.Boolean(), nullable=False),
        sa.Column("zone", sa.String(length=128), nullable=True),
        sa.Column("first_seen", sa.DateTime(), nullable=True),
        sa.Column("last_seen", sa.DateTime(), nullable=True),
        sa.Column("flows", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(op.f("ix_device_category"), "device", ["category"], unique=False)
    op.create_index(op.f("ix_device_device_type"), "device", ["device_type"], unique=False)
    op.create_index(op.f("ix_device_first_seen"), "device", ["first_seen"], unique=False)
    op.create_index("ix_device_group", "device", ["device_type", "vendor", "model"], unique=False)
    op.create_index(op.f("ix_device_last_seen"), "device", ["last_seen"], unique=False)
    op.create_index(op.f("ix_device_mac"), "device", ["mac"], unique=False)
    op.create_index(op.f("ix_device_vendor"), "device", ["vendor"], unique=False)
    op.create_index(op.f("ix_device_zone"), "device", ["zone"], unique=False)

    op.create_table(
        "flow",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ident", sa.String(length=64), nullable=False),
        sa.Column("transport", sa.String(length=128), nullable=False),
        sa.Column("vlan", sa.Integer(), nullable=True),
        sa.Column("inner_vlan", sa.Integer(), nullable=True),
        sa.Column("client", sa.String(length=128), nullable=False),
        sa.Column("server", sa.String(length=128), nullable=False),
        sa.Column("server_port", sa.Integer(), nullable=True),
        sa.Column("app", sa.String(length=128), nullable=True),
        sa.Column("connections", sa.BigInteger(), nullable=False),
        sa.Column("packets_to_server", sa.BigInteger(), nullable=False),
        sa.Column("packets_to_client", sa.BigInteger(), nullable=False),
        sa.Column("bytes_to_server", sa.BigInteger(), nullable=False),
        sa.Column("bytes_to_client", sa.BigInteger(), nullable=False),
        sa.Column("client_zone", sa.String(length=128), nullable=True),
        sa.Column("server_zone", sa.String(length=128), nullable=True),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ident"),
    )
    op.create_index(op.f("ix_flow_app"), "flow", ["app"], unique=False)
    op.create_index(op.f("ix_flow_client"), "flow", ["client"], unique=False)
    op.create_index(op.f("ix_flow_client_zone"), "flow", ["client_zone"], unique=False)
    op.create_index(op.f("ix_flow_last_seen"), "flow", ["last_seen"], unique=False)
    op.create_index(op.f("ix_flow_server"), "flow", ["server"], unique=False)
    op.create_index(op.f("ix_flow_server_zone"), "flow", ["server_zone"], unique=False)
    op.create_index(op.f("ix_flow_vlan"), "flow", ["vlan"], unique=False)

    op.create_table(
        "policy_document",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version"),
    )
    op.create_table(
        "sensor",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("batches", sa.BigInteger(), nullable=False),
        sa.Column("last_batch_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_received_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("version", sa.String(length=128), nullable=True),
        sa.Column("interface", sa.String(length=128), nullable=True),
        sa.Column("uptime_seconds", sa.Float(), nullable=False),
        sa.Column("packets", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("kernel_drops", sa.BigInteger(), nullable=False),
        sa.Column("malformed", sa.BigInteger(), nullable=False),
        sa.Column("flows_evicted", sa.BigInteger(), nullable=False),
        sa.Column("parser_errors", sa.BigInteger(), nullable=False),
        sa.Column("spool_depth", sa.BigInteger(), nullable=False),
        sa.Column("spool_dropped", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "user_account",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "violation",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("app", sa.String(length=128), nullable=True),
        sa.Column("client_ip", sa.String(length=128), nullable=False),
        sa.Column("client_vlan", sa.Integer(), nullable=True),
        sa.Column("client_zone", sa.String(length=128), nullable=False),
        sa.Column("client_device_id", sa.String(length=128), nullable=True),
        sa.Column("client_device_type", sa.String(length=128), nullable=False),
        sa.Column("client_vendor", sa.String(length=512), nullable=True),
        sa.Column("server_ip", sa.String(length=128), nullable=False),
        sa.Column("server_vlan", sa.Integer(), nullable=True),
        sa.Column("server_zone", sa.String(length=128), nullable=False),
        sa.Column("server_device_id", sa.String(length=128), nullable=True),
        sa.Column("server_device_type", sa.String(length=128), nullable=False),
        sa.Column("server_vendor", sa.String(length=512), nullable=True),
        sa.Column("flows", sa.BigInteger(), nullable=False),
        sa.Column("packets", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("reported_at", sa.DateTime(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule", "client_ip", "server_ip", "service"),
    )
    op.create_index(
        op.f("ix_violation_acknowledged_at"), "violation", ["acknowledged_at"], unique=False
    )
    op.create_index(op.f("ix_violation_client_ip"), "violation", ["client_ip"], unique=False)
    op.create_index(op.f("ix_violation_client_zone"), "violation", ["client_zone"], unique=False)
    op.create_index(op.f("ix_violation_last_seen"), "violation", ["last_seen"], unique=False)
    op.create_index(op.f("ix_violation_rule"), "violation", ["rule"], unique=False)
    op.create_index(op.f("ix_violation_server_ip"), "violation", ["server_ip"], unique=False)
    op.create_index(op.f("ix_violation_server_zone"), "violation", ["server_zone"], unique=False)
    op.create_index(op.f("ix_violation_severity"), "violation", ["severity"], unique=False)

    op.create_table(
        "acknowledgement",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "violation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_name", sa.String(length=128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["violation_id"], ["violation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_acknowledgement_violation_id"), "acknowledgement", ["violation_id"], unique=False
    )

    op.create_table(
        "api_token",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sensor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensor.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_api_token_sensor_id"), "api_token", ["sensor_id"], unique=False)
    op.create_index(op.f("ix_api_token_user_id"), "api_token", ["user_id"], unique=False)

    op.create_table(
        "device_field",
        sa.Column(
            "device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("field", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("sensor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensor.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("device_id", "field"),
    )
    op.create_table(
        "device_hostname",
        sa.Column(
            "device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id", "name"),
    )
    op.create_table(
        "device_ip",
        sa.Column(
            "device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("ip", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id", "ip"),
    )
    op.create_index(op.f("ix_device_ip_ip"), "device_ip", ["ip"], unique=False)

    op.create_table(
        "device_sensor",
        sa.Column(
            "device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "sensor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("first_reported", sa.DateTime(), nullable=False),
        sa.Column("last_reported", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensor.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id", "sensor_id"),
    )
    op.create_index(
        op.f("ix_device_sensor_sensor_id"), "device_sensor", ["sensor_id"], unique=False
    )

    op.create_table(
        "device_vlan",
        sa.Column(
            "device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("vlan", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id", "vlan"),
    )
    op.create_index(op.f("ix_device_vlan_vlan"), "device_vlan", ["vlan"], unique=False)

    op.create_table(
        "evidence",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("ident", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=False),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "ident"),
    )
    op.create_index(op.f("ix_evidence_device_id"), "evidence", ["device_id"], unique=False)
    op.create_index(op.f("ix_evidence_kind"), "evidence", ["kind"], unique=False)

    op.create_table(
        "heartbeat",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "sensor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("packets", sa.BigInteger(), nullable=False),
        sa.Column("kernel_drops", sa.BigInteger(), nullable=False),
        sa.Column("malformed", sa.BigInteger(), nullable=False),
        sa.Column("parser_errors", sa.BigInteger(), nullable=False),
        sa.Column("flows_evicted", sa.BigInteger(), nullable=False),
        sa.Column("spool_depth", sa.BigInteger(), nullable=False),
        sa.Column("spool_dropped", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensor.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_heartbeat_sensor_received", "heartbeat", ["sensor_id", "received_at"], unique=False
    )

    op.create_table(
        "ingested_batch",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "sensor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("batch_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("ended", sa.DateTime(), nullable=False),
        sa.Column("devices", sa.BigInteger(), nullable=False),
        sa.Column("flows", sa.BigInteger(), nullable=False),
        sa.Column("violations", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensor.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sensor_id", "batch_id"),
    )
    op.create_index(
        op.f("ix_ingested_batch_received_at"), "ingested_batch", ["received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ingested_batch_received_at"), table_name="ingested_batch")

    op.drop_table("ingested_batch")
    op.drop_index("ix_heartbeat_sensor_received", table_name="heartbeat")

    op.drop_table("heartbeat")
    op.drop_index(op.f("ix_evidence_kind"), table_name="evidence")
    op.drop_index(op.f("ix_evidence_device_id"), table_name="evidence")

    op.drop_table("evidence")
    op.drop_index(op.f("ix_device_vlan_vlan"), table_name="device_vlan")

    op.drop_table("device_vlan")
    op.drop_index(op.f("ix_device_sensor_sensor_id"), table_name="device_sensor")

    op.drop_table("device_sensor")
    op.drop_index(op.f("ix_device_ip_ip"), table_name="device_ip")

    op.drop_table("device_ip")
    op.drop_table("device_hostname")
    op.drop_table("device_field")
    op.drop_index(op.f("ix_api_token_user_id"), table_name="api_token")
    op.drop_index(op.f("ix_api_token_sensor_id"), table_name="api_token")

    op.drop_table("api_token")
    op.drop_index(op.f("ix_acknowledgement_violation_id"), table_name="acknowledgement")

    op.drop_table("acknowledgement")
    op.drop_index(op.f("ix_violation_severity"), table_name="violation")
    op.drop_index(op.f("ix_violation_server_zone"), table_name="violation")
    op.drop_index(op.f("ix_violation_server_ip"), table_name="violation")
    op.drop_index(op.f("ix_violation_rule"), table_name="violation")
    op.drop_index(op.f("ix_violation_last_seen"), table_name="violation")
    op.drop_index(op.f("ix_violation_client_zone"), table_name="violation")
    op.drop_index(op.f("ix_violation_client_ip"), table_name="violation")
    op.drop_index(op.f("ix_violation_acknowledged_at"), table_name="violation")

    op.drop_table("violation")
    op.drop_table("user_account")
    op.drop_table("sensor")
    op.drop_table("policy_document")
    op.drop_index(op.f("ix_flow_vlan"), table_name="flow")
    op.drop_index(op.f("ix_flow_server_zone"), table_name="flow")
    op.drop_index(op.f("ix_flow_server"), table_name="flow")
    op.drop_index(op.f("ix_flow_last_seen"), table_name="flow")
    op.drop_index(op.f("ix_flow_client_zone"), table_name="flow")
    op.drop_index(op.f("ix_flow_client"), table_name="flow")
    op.drop_index(op.f("ix_flow_app"), table_name="flow")

    op.drop_table("flow")
    op.drop_index(op.f("ix_device_zone"), table_name="device")
    op.drop_index(op.f("ix_device_vendor"), table_name="device")
    op.drop_index(op.f("ix_device_mac"), table_name="device")
    op.drop_index(op.f("ix_device_last_seen"), table_name="device")
    op.drop_index("ix_device_group", table_name="device")
    op.drop_index(op.f("ix_device_first_seen"), table_name="device")
    op.drop_index(op.f("ix_device_device_type"), table_name="device")
    op.drop_index(op.f("ix_device_category"), table_name="device")

    op.drop_table("device")
    op.drop_index(op.f("ix_audit_event_at"), table_name="audit_event")
    op.drop_index(op.f("ix_audit_event_action"), table_name="audit_event")

    op.drop_table("audit_event")
