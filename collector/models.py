"""Collector tables (SQLAlchemy 2.0 typed ORM). API shapes live in ``collector/api``.

Counters are BIGINT (byte counts pass 2**31 within days). Times are stored as naive UTC and
read back as aware UTC (:class:`UTCDateTime`), the same on SQLite and PostgreSQL. Columns the
read API filters on carry an index; keys that would make wide unique indexes (evidence,
flows) use a sha256 ``ident`` of their parts instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAME = 128  # schema.Name
TEXT = 512  # schema.Text
# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT ids.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)  # the driver's own type for DateTime
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), int: BigInteger()}


class Sensor(Base):
    """A registered sensor and its latest heartbeat (counters are the sensor's totals)."""

    __tablename__ = "sensor"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    batches: Mapped[int] = mapped_column(default=0)
    last_batch_at: Mapped[datetime | None]  # collector clock
    heartbeat_received_at: Mapped[datetime | None]  # collector clock: health uses this
    heartbeat_at: Mapped[datetime | None]  # the sensor's clock, for skew diagnosis
    version: Mapped[str | None] = mapped_column(String(NAME))
    interface: Mapped[str | None] = mapped_column(String(NAME))
    uptime_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    packets: Mapped[int] = mapped_column(default=0)
    bytes: Mapped[int] = mapped_column(default=0)
    kernel_drops: Mapped[int] = mapped_column(default=0)
    malformed: Mapped[int] = mapped_column(default=0)
    flows_evicted: Mapped[int] = mapped_column(default=0)
    parser_errors: Mapped[int] = mapped_column(default=0)
    flows_unparsed: Mapped[int] = mapped_column(default=0, server_default="0")  # 0002
    spool_depth: Mapped[int] = mapped_column(default=0)
    spool_dropped: Mapped[int] = mapped_column(default=0)


class User(Base):
    __tablename__ = "user_account"  # "user" is reserved in PostgreSQL

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # "viewer" | "admin"
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token, stored as sha256 of the token text: sensor tokens (no expiry) and
    user session tokens from ``/login`` (expiring)."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "sensor" | "session"
    sensor_id: Mapped[int | None] = mapped_column(
        ForeignKey("sensor.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Device(Base):
    """One merged device. ``key`` is the merge key (``mac:..``, ``ip:..@vlanN``, or the
    sensor's id of a named device); the classification columns copy the winning
    ``device_field`` rows so that list filters use plain indexes."""

    __tablename__ = "device"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(NAME + 16), unique=True)
    mac: Mapped[str | None] = mapped_column(String(17), index=True)
    category: Mapped[str | None] = mapped_column(String(NAME), index=True)
    device_type: Mapped[str] = mapped_column(String(NAME), default="unknown", index=True)
    vendor: Mapped[str | None] = mapped_column(String(TEXT), index=True)
    model: Mapped[str | None] = mapped_column(String(TEXT))
    software_version: Mapped[str | None] = mapped_column(String(TEXT))
    serial: Mapped[str | None] = mapped_column(String(TEXT))
    oui_vendor: Mapped[str | None] = mapped_column(String(TEXT))
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    is_router: Mapped[bool] = mapped_column(Boolean, default=False)
    zone: Mapped[str | None] = mapped_column(String(NAME), index=True)
    first_seen: Mapped[datetime | None] = mapped_column(index=True)
    last_seen: Mapped[datetime | None] = mapped_column(index=True)
    flows: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_device_group", "device_type", "vendor", "model"),)


class DeviceIp(Base):
    __tablename__ = "device_ip"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("device.id", ondelete="CASCADE"), primary_key=True
    )
    ip: Mapped[str] = mapped_column(String(NAME), primary_key=True, index=True)


class DeviceVlan(Base):
    __tablename__ = "device_vlan"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("device.id", ondelete="CASCADE"), primary_key=True
    )
    vlan: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)


class DeviceHostname(Base):
    __tablename__ = "device_hostname"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("device.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(NAME), primary_key=True)


class DeviceSensor(Base):
    """Which sensors reported a device, and when (collector clock)."""

    __tablename__ = "device_sensor"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("device.id", ondelete="CASCADE"), primary_key=True
    )
    sensor_id: Mapped[int] = mapped_column(
        ForeignKey("sensor.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    first_reported: Mapped[datetime] = mapped_column(default=utcnow)
    last_reported: Mapped[datetime] = mapped_column(default=utcnow)


class DeviceField(Base):
    """The winning value of one classified field: highest confidence across sensors; a
    sensor's newer report replaces its own earlier claim. ``evidence`` is the JSON list the
    sensor gave for that choice."""

    __tablename__ = "device_field"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("device.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    value: Mapped[str] = mapped_column(String(TEXT))
    confidence: Mapped[float] = mapped_column(Float)
    sensor_id: Mapped[int | None] = mapped_column(ForeignKey("sensor.id", ondelete="SET NULL"))
    evidence: Mapped[str] = mapped_column(Text, default="[]")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Evidence(Base):
    """Deduplicated evidence: one row per (device, kind, value, source), counts add."""

    __tablename__ = "evidence"
    __table_args__ = (UniqueConstraint("device_id", "ident"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"), index=True)
    ident: Mapped[str] = mapped_column(String(64))  # sha256(kind, value, source)
    kind: Mapped[str] = mapped_column(String(NAME), index=True)
    value: Mapped[str] = mapped_column(String(TEXT))
    source: Mapped[str] = mapped_column(String(TEXT))
    count: Mapped[int] = mapped_column(default=1)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)


class Flow(Base):
    """A conversation summary (client -> server service), counts added over batches."""

    __tablename__ = "flow"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    ident: Mapped[str] = mapped_column(String(64), unique=True)
    transport: Mapped[str] = mapped_column(String(NAME))
    vlan: Mapped[int | None] = mapped_column(Integer, index=True)
    inner_vlan: Mapped[int | None] = mapped_column(Integer)
    client: Mapped[str] = mapped_column(String(NAME), index=True)
    server: Mapped[str] = mapped_column(String(NAME), index=True)
    server_port: Mapped[int | None] = mapped_column(Integer)
    app: Mapped[str | None] = mapped_column(String(NAME), index=True)
    connections: Mapped[int] = mapped_column(default=0)
    packets_to_server: Mapped[int] = mapped_column(default=0)
    packets_to_client: Mapped[int] = mapped_column(default=0)
    bytes_to_server: Mapped[int] = mapped_column(default=0)
    bytes_to_client: Mapped[int] = mapped_column(default=0)
    client_zone: Mapped[str | None] = mapped_column(String(NAME), index=True)
    server_zone: Mapped[str | None] = mapped_column(String(NAME), index=True)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime] = mapped_column(index=True)


class Violation(Base):
    """A segmentation violation per (rule, client ip, server ip, service); counts add."""

    __tablename__ = "violation"
    __table_args__ = (UniqueConstraint("rule", "client_ip", "server_ip", "service"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    rule: Mapped[str] = mapped_column(String(NAME), index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(TEXT))
    service: Mapped[str] = mapped_column(String(NAME))
    app: Mapped[str | None] = mapped_column(String(NAME))
    client_ip: Mapped[str] = mapped_column(String(NAME), index=True)
    client_vlan: Mapped[int | None] = mapped_column(Integer)
    client_zone: Mapped[str] = mapped_column(String(NAME), index=True)
    client_device_id: Mapped[str | None] = mapped_column(String(NAME))
    client_device_type: Mapped[str] = mapped_column(String(NAME), default="unknown")
    client_vendor: Mapped[str | None] = mapped_column(String(TEXT))
    server_ip: Mapped[str] = mapped_column(String(NAME), index=True)
    server_vlan: Mapped[int | None] = mapped_column(Integer)
    server_zone: Mapped[str] = mapped_column(String(NAME), index=True)
    server_device_id: Mapped[str | None] = mapped_column(String(NAME))
    server_device_type: Mapped[str] = mapped_column(String(NAME), default="unknown")
    server_vendor: Mapped[str | None] = mapped_column(String(TEXT))
    flows: Mapped[int] = mapped_column(default=0)
    packets: Mapped[int] = mapped_column(default=0)
    bytes: Mapped[int] = mapped_column(default=0)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime] = mapped_column(index=True)
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)  # collector clock
    acknowledged_at: Mapped[datetime | None] = mapped_column(index=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(NAME))


class Acknowledgement(Base):
    __tablename__ = "acknowledgement"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    violation_id: Mapped[int] = mapped_column(
        ForeignKey("violation.id", ondelete="CASCADE"), index=True
    )
    user_name: Mapped[str] = mapped_column(String(NAME))
    comment: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Who did what: logins, acknowledgements, policy, sensors, users. Never payloads."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(TEXT))
    detail: Mapped[str | None] = mapped_column(Text)


class IngestedBatch(Base):
    """One row per accepted batch; the unique (sensor, batch id) makes ingest idempotent."""

    __tablename__ = "ingested_batch"
    __table_args__ = (UniqueConstraint("sensor_id", "batch_id"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensor.id", ondelete="CASCADE"))
    batch_id: Mapped[str] = mapped_column(String(NAME))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started: Mapped[datetime]
    ended: Mapped[datetime]
    devices: Mapped[int] = mapped_column(default=0)
    flows: Mapped[int] = mapped_column(default=0)
    violations: Mapped[int] = mapped_column(default=0)


class HeartbeatRecord(Base):
    """Heartbeat history, one row per batch that carried one."""

    __tablename__ = "heartbeat"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensor.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    at: Mapped[datetime]
    packets: Mapped[int] = mapped_column(default=0)
    kernel_drops: Mapped[int] = mapped_column(default=0)
    malformed: Mapped[int] = mapped_column(default=0)
    parser_errors: Mapped[int] = mapped_column(default=0)
    flows_evicted: Mapped[int] = mapped_column(default=0)
    flows_unparsed: Mapped[int] = mapped_column(default=0, server_default="0")  # 0002
    spool_depth: Mapped[int] = mapped_column(default=0)
    spool_dropped: Mapped[int] = mapped_column(default=0)

    __table_args__ = (Index("ix_heartbeat_sensor_received", "sensor_id", "received_at"),)


class PolicyDocument(Base):
    """A segmentation policy as uploaded (YAML text); the highest version is active."""

    __tablename__ = "policy_document"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(NAME))
