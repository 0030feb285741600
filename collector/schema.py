"""The sensor -> collector wire contract (pydantic only, so a sensor needs no server stack).

A sensor sends ``Batch`` documents to ``POST /api/v1/ingest`` (gzip allowed). A batch
is idempotent by ``batch_id``: the collector stores the id and a retried batch changes
nothing. Everything in a batch is already reduced to allow-listed device fields and
counters (docs/architecture.md, "patient data never leaves a parser"); the limits
below bound what a hostile or broken sensor can make the collector store.

Field names follow the ``medtap analyze`` JSON report (docs/report-format.md), so a
batch is built from a report's devices, flow items and violations without renaming.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION: Literal[1] = 1
MAX_DEVICES = 50_000
MAX_FLOWS = 200_000
MAX_VIOLATIONS = 50_000
MAX_EVIDENCE = 200  # per device

# No NUL characters in any text: PostgreSQL cannot store them (and no device field needs
# one); the sensor's batch builder strips them before validation (agent/uplink/batch.py).
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(max_length=512, pattern=NO_NUL)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)]
BatchId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{8,128}$")]
Vlan = Annotated[int, Field(ge=0, le=4095)]
Count = Annotated[int, Field(ge=0)]
Severity = Literal["low", "medium", "high", "critical"]


class Strict(BaseModel):
    """Unknown fields are refused (422), so a typo in a sensor is an error, not lost data."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EvidenceItem(Strict):
    kind: Name
    value: Text
    source: Text
    count: Count = 1
    confidence: float = Field(ge=0.0, le=1.0)


class ClassifiedField(Strict):
    """One classified field (vendor, model, device_type...) and the evidence that chose it."""

    value: Text | None
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_EVIDENCE)


class DeviceReport(Strict):
    """One device as a sensor sees it. ``id`` is the sensor's id (``mac:..``, ``ip:..@vlanN``,
    ``device:eui64:..``); the collector merges by MAC, else by IP + VLAN, else by this id."""

    id: Name
    mac: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")] | None = None
    ips: list[Name] = Field(default_factory=list, max_length=64)
    vlans: list[Vlan] = Field(default_factory=list, max_length=64)
    hostnames: list[Name] = Field(default_factory=list, max_length=32)
    category: Name | None = None
    device_type: Name = "unknown"
    vendor: Text | None = None
    model: Text | None = None
    software_version: Text | None = None
    serial: Text | None = None
    oui_vendor: Text | None = None
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    is_router: bool = False
    reached_via: list[Name] = Field(default_factory=list, max_length=16)
    evidence: list[EvidenceItem] = Field(default_factory=list, max_length=MAX_EVIDENCE)
    classification: dict[Name, ClassifiedField] = Field(default_factory=dict, max_length=32)
    zone: Name | None = None  # from the sensor's policy, when it has one
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    flows: Count = 0


class FlowReport(Strict):
    """A conversation: client -> server service, client ports folded (report ``flows.items``)."""

    transport: Name
    vlan: Vlan | None = None
    inner_vlan: Vlan | None = None
    client: Name
    client_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    server: Name
    server_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    app: Name | None = None
    connections: Count = 0
    packets_to_server: Count = 0
    packets_to_client: Count = 0
    bytes_to_server: Count = 0
    bytes_to_client: Count = 0
    client_zone: Name | None = None
    server_zone: Name | None = None
    first_seen: datetime
    last_seen: datetime


class ViolationEndpoint(Strict):
    ip: Name
    vlan: Vlan | None = None
    zone: Name
    device_id: Name | None = None
    device_type: Name = "unknown"
    vendor: Text | None = None


class ViolationReport(Strict):
    """A segmentation violation, deduplicated per (rule, client, server, service) by the
    sensor; the collector adds counts of the same key from several sensors/batches."""

    rule: Name  # the rule's name, or "default" when the default action denied it
    severity: Severity
    reason: Text
    service: Name  # "tcp/2575", "udp/53", "icmp"
    app: Name | None = None
    client: ViolationEndpoint
    server: ViolationEndpoint
    flows: Count
    packets: Count = 0
    bytes: Count = 0
    first_seen: datetime
    last_seen: datetime


class Heartbeat(Strict):
    """Sensor health, sent in every batch (an empty batch is a pure heartbeat). Counters are
    running totals since the sensor started; the collector keeps the latest, never a sum."""

    at: datetime
    version: Name
    interface: Name | None = None  # None for offline analysis of files
    uptime_seconds: float = Field(default=0.0, ge=0.0)
    packets: Count = 0
    bytes: Count = 0
    kernel_drops: Count = 0
    malformed: Count = 0
    flows_evicted: Count = 0
    parser_errors: Count = 0
    # New flows counted (flows, endpoints, policy) but given no protocol parsers because a
    # capture worker was behind its ring (load shedding): fingerprints may be missing.
    flows_unparsed: Count = 0
    spool_depth: Count = 0
    spool_dropped: Count = 0


class Batch(Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    sensor: Name  # must be the name the bearer token was issued to
    batch_id: BatchId
    started: datetime  # time range the batch covers (capture time)
    ended: datetime
    devices: list[DeviceReport] = Field(default_factory=list, max_length=MAX_DEVICES)
    flows: list[FlowReport] = Field(default_factory=list, max_length=MAX_FLOWS)
    violations: list[ViolationReport] = Field(default_factory=list, max_length=MAX_VIOLATIONS)
    heartbeat: Heartbeat | None = None


class IngestResult(BaseModel):
    """The collector's answer to an ingest: ``duplicate`` when the batch id was seen before."""

    batch_id: str
    status: Literal["stored", "duplicate"]
    devices: int = 0
    flows: int = 0
    violations: int = 0
