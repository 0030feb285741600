"""Public API shapes. Suffixes: ``XIn`` (accepted), ``XPublic`` (one), ``XsPublic`` (a page:
``data`` and the total ``count`` matching the filters)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from collector.schema import NO_NUL

Role = Literal["viewer", "admin"]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=NO_NUL)
]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- auth ----------------------------------------------------------------------------------


class LoginIn(In):
    username: Name
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class TokenPublic(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    role: str


class MePublic(BaseModel):
    kind: str
    name: str
    role: str


# --- devices -------------------------------------------------------------------------------


class DevicePublic(BaseModel):
    id: int
    key: str
    mac: str | None
    ips: list[str]
    vlans: list[int]
    hostnames: list[str]
    category: str | None
    device_type: str
    vendor: str | None
    model: str | None
    software_version: str | None
    serial: str | None
    oui_vendor: str | None
    confidence: float
    is_router: bool
    zone: str | None
    first_seen: datetime | None
    last_seen: datetime | None
    flows: int
    sensors: list[str]


class DevicesPublic(BaseModel):
    data: list[DevicePublic]
    count: int


class EvidencePublic(BaseModel):
    kind: str
    value: str
    source: str
    count: int
    confidence: float


class FieldPublic(BaseModel):
    """A classified field's winning value, who reported it and the evidence given for it."""

    value: str
    confidence: float
    sensor: str | None
    evidence: list[dict[str, Any]]


class DeviceDetailPublic(DevicePublic):
    fields: dict[str, FieldPublic]
    evidence: list[EvidencePublic]
    evidence_total: int
    flow_items: list[FlowPublic]  # conversations to or from its IPs, most recent first


class GroupPublic(BaseModel):
    label: str
    category: str | None
    device_type: str
    vendor: str | None
    model: str | None
    count: int
    software_versions: list[str]
    vlans: list[int]
    zones: list[str]
    first_seen: datetime | None
    last_seen: datetime | None


class GroupsPublic(BaseModel):
    data: list[GroupPublic]
    count: int


# --- flows ---------------------------------------------------------------------------------


class FlowPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    transport: str
    vlan: int | None
    inner_vlan: int | None
    client: str
    server: str
    server_port: int | None
    app: str | None
    connections: int
    packets_to_server: int
    packets_to_client: int
    bytes_to_server: int
    bytes_to_client: int
    client_zone: str | None
    server_zone: str | None
    first_seen: datetime
    last_seen: datetime


class FlowsPublic(BaseModel):
    data: list[FlowPublic]
    count: int


class ZoneFlowPublic(BaseModel):
    client_zone: str | None
    server_zone: str | None
    transport: str
    server_port: int | None
    app: str | None
    conversations: int
    connections: int
    bytes: int
    first_seen: datetime
    last_seen: datetime


class ZoneFlowsPublic(BaseModel):
    data: list[ZoneFlowPublic]
    count: int


# --- violations ----------------------------------------------------------------------------


class EndpointPublic(BaseModel):
    ip: str
    vlan: int | None
    zone: str
    device_id: str | None
    device_type: str
    vendor: str | None


class AcknowledgementPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_name: str
    comment: str
    at: datetime


class ViolationPublic(BaseModel):
    id: int
    rule: str
    severity: str
    reason: str
    service: str
    app: str | None
    client: EndpointPublic
    server: EndpointPublic
    flows: int
    packets: int
    bytes: int
    first_seen: datetime
    last_seen: datetime
    reported_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    seen_since_ack: bool


class ViolationsPublic(BaseModel):
    data: list[ViolationPublic]
    count: int


class ViolationDetailPublic(ViolationPublic):
    acknowledgements: list[AcknowledgementPublic]


class AckIn(In):
    comment: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=NO_NUL),
    ]


# --- sensors, users, audit, policy -----------------------------------------------------------


class SensorPublic(BaseModel):
    name: str
    state: Literal["ok", "late", "silent", "revoked"]
    created_at: datetime
    revoked_at: datetime | None
    batches: int
    last_batch_at: datetime | None
    last_heartbeat_at: datetime | None
    heartbeat_sensor_time: datetime | None
    version: str | None
    interface: str | None
    uptime_seconds: float
    packets: int
    bytes: int
    kernel_drops: int
    malformed: int
    flows_evicted: int
    parser_errors: int
    flows_unparsed: int  # new flows given no parsers while the sensor shed load
    spool_depth: int
    spool_dropped: int


class SensorsPublic(BaseModel):
    data: list[SensorPublic]
    count: int


class SensorIn(In):
    name: Name


class SensorTokenPublic(BaseModel):
    name: str
    token: str  # shown once; stored hashed


class UserIn(In):
    name: Name
    role: Role
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    role: str
    created_at: datetime
    disabled_at: datetime | None


class UsersPublic(BaseModel):
    data: list[UserPublic]
    count: int


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    action: str
    target: str | None
    detail: str | None


class AuditEventsPublic(BaseModel):
    data: list[AuditEventPublic]
    count: int


class PolicyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    sha256: str
    created_at: datetime
    created_by: str
    text: str


# --- exports -------------------------------------------------------------------------------


class AssetRowPublic(BaseModel):
    """One asset-register entry: an inventory group (BSI asset register granularity)."""

    group: str
    category: str | None
    device_type: str
    count: int
    vendor: str | None
    model: str | None
    software_versions: list[str]
    zones: list[str]
    vlans: list[int]
    first_seen: datetime | None
    last_seen: datetime | None


class AssetRegisterPublic(BaseModel):
    generated_at: datetime
    data: list[AssetRowPublic]
    count: int


DeviceDetailPublic.model_rebuild()
