"""Ingest: merge one sensor batch into the inventory, in one transaction, idempotently.

The first statement of the transaction inserts the (sensor, batch id) row; its unique
constraint is the idempotency gate. A retried or concurrently duplicated batch fails there
(IntegrityError: PostgreSQL makes the second insert wait for the first transaction, then
fails it) and is answered "duplicate" with nothing changed. Everything else is an atomic
SQL upsert (``INSERT .. ON CONFLICT``, ``UPDATE .. SET x = x + n``), never a read-modify-
write in Python, so concurrent batches about the same devices add up correctly. Rows are
written in key order so that two concurrent batches lock shared rows in the same order.

Merge rules (docs/collector.md):
- device key: ``mac:<mac>`` when the report has a MAC and is not a router (a router's or
  VRRP gateway's MAC stands for many addresses), else ``ip:<ip>@vlan<v>`` from its lowest
  IP and VLAN, else the sensor's id (``device:eui64:..``, named inside a message);
- first/last seen widen, flow counts add; IPs, VLANs, hostnames and reporting sensors
  accumulate; evidence is deduplicated by (kind, value, source) with counts adding;
- each classified field keeps the value with the highest confidence across sensors; a
  sensor's newer report replaces its own earlier claim;
- flows by (transport, VLANs, client, server, server port, app) and violations by (rule,
  client IP, server IP, service): counts add, first/last seen widen.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Boolean,
    Connection,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from collector.db import begin_write
from collector.models import (
    Device,
    DeviceField,
    DeviceHostname,
    DeviceIp,
    DeviceSensor,
    DeviceVlan,
    Evidence,
    Flow,
    HeartbeatRecord,
    IngestedBatch,
    Sensor,
    UTCDateTime,
    Violation,
    utcnow,
)
from collector.schema import Batch, DeviceReport, FlowReport, IngestResult, ViolationReport

log = logging.getLogger(__name__)

CHUNK = 500  # rows per multi-row statement / IN list (SQLite's variable limit is far off)
MAX_FIELD_EVIDENCE_JSON = 16_384  # bytes of per-field evidence JSON kept per field
FIELD_EVIDENCE_KEYS = ("kind", "value", "source", "confidence", "weight", "count")
CLASSIFIED = ("device_type", "category", "vendor", "model", "software_version", "serial")
UNKNOWN_TYPE = "unknown"

T = TypeVar("T")

# PostgreSQL: evidence is the bulk of a batch (tens of thousands of rows); one statement per
# chunk with one array per column is several times faster there than a row-wise executemany.
PG_ARRAY_CHUNK = 5000
EVIDENCE_COLS = ("device_id", "ident", "kind", "value", "source", "count", "confidence")
PG_EVIDENCE_UPSERT = text(
    "INSERT INTO evidence (device_id, ident, kind, value, source, count, confidence) "
    "SELECT * FROM unnest(CAST(:device_id AS BIGINT[]), CAST(:ident AS VARCHAR[]), "
    "CAST(:kind AS VARCHAR[]), CAST(:value AS VARCHAR[]), CAST(:source AS VARCHAR[]), "
    "CAST(:count AS BIGINT[]), CAST(:confidence AS DOUBLE PRECISION[])) "
    "ON CONFLICT (device_id, ident) DO UPDATE SET count = evidence.count + EXCLUDED.count, "
    "confidence = GREATEST(evidence.confidence, EXCLUDED.confidence)"
)

DEVICE = cast(Table, Device.__table__)
DEVICE_FIELD = cast(Table, DeviceField.__table__)
EVIDENCE = cast(Table, Evidence.__table__)
FLOW = cast(Table, Flow.__table__)
VIOLATION = cast(Table, Violation.__table__)
SENSOR = cast(Table, Sensor.__table__)
INGESTED_BATCH = cast(Table, IngestedBatch.__table__)
HEARTBEAT = cast(Table, HeartbeatRecord.__table__)
DEVICE_IP = cast(Table, DeviceIp.__table__)
DEVICE_VLAN = cast(Table, DeviceVlan.__table__)
DEVICE_HOSTNAME = cast(Table, DeviceHostname.__table__)
DEVICE_SENSOR = cast(Table, DeviceSensor.__table__)


# --- pure helpers ------------------------------------------------------------------------


def device_key(report: DeviceReport) -> str:
    """The merge key of a reported device (see the module docstring)."""
    if report.mac and not report.is_router:
        return f"mac:{report.mac}"
    if report.ips:
        ip = min(report.ips, key=_ip_order)
        return f"ip:{ip}@vlan{min(report.vlans)}" if report.vlans else f"ip:{ip}"
    return report.id


def _ip_order(text: str) -> tuple[int, int, str]:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return (9, 0, text)
    return (addr.version, int(addr), text)


def digest(*parts: object) -> str:
    """sha256 over the parts, unambiguous (each part length-prefixed)."""
    h = hashlib.sha256()
    for part in parts:
        b = ("" if part is None else str(part)).encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(4, "big") + b + (b"\x01" if part is None else b"\x00"))
    return h.hexdigest()


def flow_ident(f: FlowReport) -> str:
    return digest(f.transport, f.vlan, f.inner_vlan, f.client, f.server, f.server_port, f.app)


def utc(value: datetime) -> datetime:
    """Aware UTC; a naive time from a sensor is taken as UTC (the report format says UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_opt(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class _FieldClaim:
    value: str
    confidence: float
    evidence: str  # JSON


@dataclass
class _MergedDevice:
    """All reports of one batch that share a device key, folded together."""

    key: str
    mac: str | None = None
    oui_vendor: str | None = None
    is_router: bool = False
    zone: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    flows: int = 0
    ips: set[str] = field(default_factory=set)
    vlans: set[int] = field(default_factory=set)
    hostnames: set[str] = field(default_factory=set)
    evidence: dict[str, tuple[str, str, str, int, float]] = field(default_factory=dict)
    fields: dict[str, _FieldClaim] = field(default_factory=dict)

    def add(self, r: DeviceReport) -> None:
        self.mac = self.mac or r.mac
        self.oui_vendor = self.oui_vendor or r.oui_vendor
        self.is_router = self.is_router or r.is_router
        self.zone = r.zone or self.zone
        self.first_seen = _min(self.first_seen, _utc_opt(r.first_seen))
        self.last_seen = _max(self.last_seen, _utc_opt(r.last_seen))
        self.flows += r.flows
        self.ips.update(r.ips)
        self.vlans.update(r.vlans)
        self.hostnames.update(r.hostnames)
        for ev in r.evidence:
            ident = digest(ev.kind, ev.value, ev.source)
            old = self.evidence.get(ident)
            count, conf = (ev.count, ev.confidence)
            if old is not None:
                count, conf = old[3] + count, max(old[4], conf)
            self.evidence[ident] = (ev.kind, ev.value, ev.source, count, conf)
        for name, claim in _field_claims(r).items():
            old_claim = self.fields.get(name)
            if old_claim is None or claim.confidence >= old_claim.confidence:
                self.fields[name] = claim


def _field_claims(r: DeviceReport) -> dict[str, _FieldClaim]:
    """Classified fields of one report: value, confidence and the evidence the sensor gave.
    A field the sensor did not explain gets the device's overall confidence; category
    follows the device type's."""
    out: dict[str, _FieldClaim] = {}
    names = list(CLASSIFIED) + [k for k in r.classification if k not in CLASSIFIED]
    for name in names:
        cf = r.classification.get(name)
        value = getattr(r, name, None) if name in CLASSIFIED else None
        if value is None and cf is not None:
            value = cf.value
        if value is None or (name == "device_type" and value == UNKNOWN_TYPE):
            continue
        if cf is not None:
            conf = cf.confidence
        elif name == "category" and "device_type" in out:
            conf = out["device_type"].confidence
        else:
            conf = r.confidence
        out[name] = _FieldClaim(str(value), conf, _evidence_json(cf.evidence if cf else []))
    return out


def _evidence_json(items: list[dict[str, Any]]) -> str:
    """Only the known keys, each value clipped: sensors cannot park arbitrary JSON here."""
    kept: list[dict[str, Any]] = []
    size = 2
    for item in items:
        row: dict[str, Any] = {}
        for k in FIELD_EVIDENCE_KEYS:
            v = item.get(k)
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, int | float):
                row[k] = v
            elif isinstance(v, str):
                row[k] = v[:512]
        size += len(json.dumps(row)) + 1
        if size > MAX_FIELD_EVIDENCE_JSON:
            break
        kept.append(row)
    return json.dumps(kept)


# --- dialect helpers ---------------------------------------------------------------------


def _insert(conn: Connection) -> Callable[[Table], Any]:
    """``INSERT`` with ``ON CONFLICT`` for this dialect (both share the API)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert
    if conn.dialect.name == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database dialect {conn.dialect.name}")


def _earliest(col: Any, new: Any) -> ColumnElement[Any]:
    return case((new.is_(None), col), (or_(col.is_(None), new < col), new), else_=col)


def _latest(col: Any, new: Any) -> ColumnElement[Any]:
    return case((new.is_(None), col), (or_(col.is_(None), new > col), new), else_=col)


# --- ingest ------------------------------------------------------------------------------


def ingest_batch(
    session: Session,
    *,
    sensor_id: int,
    batch: Batch,
    max_evidence_per_device: int = 2000,
    new_violations: list[ViolationReport] | None = None,
) -> IngestResult:
    """Merge ``batch`` from sensor ``sensor_id`` and commit, or answer "duplicate".

    ``new_violations``, when given, receives the batch's violations whose key the store had
    never seen (for alerts); it is filled only when the batch was stored."""
    begin_write(session)
    conn = session.connection()
    now = utcnow()
    try:
        conn.execute(
            insert(INGESTED_BATCH).values(
                sensor_id=sensor_id,
                batch_id=batch.batch_id,
                received_at=now,
                started=utc(batch.started),
                ended=utc(batch.ended),
                devices=len(batch.devices),
                flows=len(batch.flows),
                violations=len(batch.violations),
            )
        )
    except IntegrityError:
        session.rollback()
        return _duplicate(session, sensor_id=sensor_id, batch_id=batch.batch_id)
    try:
        dropped = _merge_devices(
            conn, sensor_id=sensor_id, reports=batch.devices, now=now, cap=max_evidence_per_device
        )
        _merge_flows(conn, batch.flows)
        fresh = _merge_violations(conn, batch.violations, now=now)
        _record_sensor(conn, sensor_id=sensor_id, batch=batch, now=now)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if new_violations is not None:
        new_violations.extend(fresh)
    log.info(
        "batch stored: sensor_id=%d devices=%d flows=%d violations=%d evidence_dropped=%d",
        sensor_id,
        len(batch.devices),
        len(batch.flows),
        len(batch.violations),
        dropped,
    )
    return IngestResult(
        batch_id=batch.batch_id,
        status="stored",
        devices=len(batch.devices),
        flows=len(batch.flows),
        violations=len(batch.violations),
    )


def _duplicate(session: Session, *, sensor_id: int, batch_id: str) -> IngestResult:
    row = session.scalars(
        select(IngestedBatch).where(
            IngestedBatch.sensor_id == sensor_id, IngestedBatch.batch_id == batch_id
        )
    ).one_or_none()
    session.rollback()  # end the read transaction
    if row is None:  # the unique violation was something else: let the caller see it
        raise RuntimeError("ingest failed on a constraint other than the batch id")
    log.info("batch duplicate: sensor_id=%d (retried upload, nothing changed)", sensor_id)
    return IngestResult(
        batch_id=batch_id,
        status="duplicate",
        devices=row.devices,
        flows=row.flows,
        violations=row.violations,
    )


def _merge_devices(
    conn: Connection, *, sensor_id: int, reports: Iterable[DeviceReport], now: datetime, cap: int
) -> int:
    merged: dict[str, _MergedDevice] = {}
    for r in reports:
        key = device_key(r)
        merged.setdefault(key, _MergedDevice(key)).add(r)
    if not merged:
        return 0
    keys = sorted(merged)
    ins = _insert(conn)
    ids: dict[str, int] = {}
    rows = [
        {
            "key": k,
            "mac": merged[k].mac,
            "device_type": UNKNOWN_TYPE,
            "confidence": 0.0,
            "is_router": merged[k].is_router,
            "flows": 0,
            "created_at": now,
            "updated_at": now,
        }
        for k in keys
    ]
    conn.execute(ins(DEVICE).on_conflict_do_nothing(index_elements=["key"]), rows)
    for part in chunks(keys):
        found = conn.execute(select(DEVICE.c.key, DEVICE.c.id).where(DEVICE.c.key.in_(part)))
        ids.update({k: i for k, i in found})

    _update_devices(conn, merged, ids, now)
    _merge_device_sets(conn, merged, ids, sensor_id, now)
    _merge_fields(conn, merged, ids, sensor_id, now)
    return _merge_evidence(conn, merged, ids, cap)


def _update_devices(
    conn: Connection, merged: dict[str, _MergedDevice], ids: dict[str, int], now: datetime
) -> None:
    first = bindparam("b_first", type_=UTCDateTime())
    last = bindparam("b_last", type_=UTCDateTime())
    stmt = (
        update(DEVICE)
        .where(DEVICE.c.id == bindparam("b_id"))
        .values(
            first_seen=_earliest(DEVICE.c.first_seen, first),
            last_seen=_latest(DEVICE.c.last_seen, last),
            flows=DEVICE.c.flows + bindparam("b_flows"),
            mac=func.coalesce(DEVICE.c.mac, bindparam("b_mac")),
            oui_vendor=func.coalesce(bindparam("b_oui"), DEVICE.c.oui_vendor),
            is_router=or_(DEVICE.c.is_router, bindparam("b_router", type_=Boolean())),
            zone=func.coalesce(bindparam("b_zone"), DEVICE.c.zone),
            updated_at=now,
        )
    )
    params = [
        {
            "b_id": ids[k],
            "b_first": m.first_seen,
            "b_last": m.last_seen,
            "b_flows": m.flows,
            "b_mac": m.mac,
            "b_oui": m.oui_vendor,
            "b_router": m.is_router,
            "b_zone": m.zone,
        }
        for k, m in sorted(merged.items())
    ]
    conn.execute(stmt, params)


def _merge_device_sets(
    conn: Connection,
    merged: dict[str, _MergedDevice],
    ids: dict[str, int],
    sensor_id: int,
    now: datetime,
) -> None:
    ins = _insert(conn)
    sets: list[tuple[Table, list[dict[str, Any]]]] = [
        (
            DEVICE_IP,
            [{"device_id": ids[k], "ip": ip} for k, m in merged.items() for ip in sorted(m.ips)],
        ),
        (
            DEVICE_VLAN,
            [{"device_id": ids[k], "vlan": v} for k, m in merged.items() for v in sorted(m.vlans)],
        ),
        (
            DEVICE_HOSTNAME,
            [
                {"device_id": ids[k], "name": n}
                for k, m in merged.items()
                for n in sorted(m.hostnames)
            ],
        ),
    ]
    for table, rows in sets:
        rows.sort(key=lambda r: tuple(r.values()))
        if rows:
            conn.execute(ins(table).on_conflict_do_nothing(), rows)
    seen = DEVICE_SENSOR
    rows = [
        {"device_id": i, "sensor_id": sensor_id, "first_reported": now, "last_reported": now}
        for i in sorted(ids.values())
    ]
    stmt = ins(seen)
    stmt = stmt.on_conflict_do_update(
        index_elements=["device_id", "sensor_id"],
        set_={"last_reported": stmt.excluded.last_reported},
    )
    conn.execute(stmt, rows)


def _merge_fields(
    conn: Connection,
    merged: dict[str, _MergedDevice],
    ids: dict[str, int],
    sensor_id: int,
    now: datetime,
) -> None:
    rows = [
        {
            "device_id": ids[k],
            "field": name,
            "value": claim.value,
            "confidence": claim.confidence,
            "sensor_id": sensor_id,
            "evidence": claim.evidence,
            "updated_at": now,
        }
        for k, m in sorted(merged.items())
        for name, claim in sorted(m.fields.items())
    ]
    if rows:
        ins = _insert(conn)
        stmt = ins(DEVICE_FIELD)
        new = stmt.excluded
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["device_id", "field"],
                set_={
                    "value": new.value,
                    "confidence": new.confidence,
                    "sensor_id": new.sensor_id,
                    "evidence": new.evidence,
                    "updated_at": new.updated_at,
                },
                where=or_(
                    new.confidence > DEVICE_FIELD.c.confidence,
                    DEVICE_FIELD.c.sensor_id == new.sensor_id,
                ),
            ),
            rows,
        )

    # Copy the winners onto the device rows (indexed columns for the list filters).
    def winner(name: str) -> Any:
        return (
            select(DEVICE_FIELD.c.value)
            .where(DEVICE_FIELD.c.device_id == DEVICE.c.id, DEVICE_FIELD.c.field == name)
            .scalar_subquery()
        )

    type_conf = (
        select(DEVICE_FIELD.c.confidence)
        .where(DEVICE_FIELD.c.device_id == DEVICE.c.id, DEVICE_FIELD.c.field == "device_type")
        .scalar_subquery()
    )
    values: dict[str, Any] = {name: winner(name) for name in CLASSIFIED}
    values["device_type"] = func.coalesce(winner("device_type"), literal(UNKNOWN_TYPE))
    values["confidence"] = func.coalesce(type_conf, literal(0.0))
    for id_part in chunks(sorted(ids.values())):
        conn.execute(update(DEVICE).where(DEVICE.c.id.in_(id_part)).values(values))


def _merge_evidence(
    conn: Connection, merged: dict[str, _MergedDevice], ids: dict[str, int], cap: int
) -> int:
    """Upsert evidence rows; past ``cap`` rows per device, new triples are dropped (counted)."""
    by_device = {ids[k]: m.evidence for k, m in merged.items() if m.evidence}
    if not by_device:
        return 0
    existing: dict[int, int] = {}
    for id_part in chunks(sorted(by_device)):
        q = (
            select(EVIDENCE.c.device_id, func.count())
            .where(EVIDENCE.c.device_id.in_(id_part))
            .group_by(EVIDENCE.c.device_id)
        )
        existing.update({d: n for d, n in conn.execute(q)})
    rows: list[dict[str, Any]] = []
    dropped = 0
    for device_id, evidence in sorted(by_device.items()):
        have = existing.get(device_id, 0)
        idents = sorted(evidence)
        if have + len(idents) > cap:  # near the cap: only known triples, and room left
            known = set(
                conn.execute(
                    select(EVIDENCE.c.ident).where(
                        and_(EVIDENCE.c.device_id == device_id, EVIDENCE.c.ident.in_(idents))
                    )
                ).scalars()
            )
            room = max(0, cap - have)
            keep = [i for i in idents if i in known]
            fresh = [i for i in idents if i not in known]
            keep += fresh[:room]
            dropped += len(fresh) - min(room, len(fresh))
            idents = sorted(keep)
        for ident in idents:
            kind, value, source, count, conf = evidence[ident]
            rows.append(
                {
                    "device_id": device_id,
                    "ident": ident,
                    "kind": kind,
                    "value": value,
                    "source": source,
                    "count": count,
                    "confidence": conf,
                }
            )
    if not rows:
        return dropped
    if conn.dialect.name == "postgresql":
        for part in chunks(rows, PG_ARRAY_CHUNK):
            conn.execute(PG_EVIDENCE_UPSERT, {c: [r[c] for r in part] for c in EVIDENCE_COLS})
    else:
        _upsert_evidence_rows(conn, rows)
    if dropped:
        log.warning("evidence cap %d per device reached: %d new records dropped", cap, dropped)
    return dropped


def _upsert_evidence_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    stmt = _insert(conn)(EVIDENCE)
    new = stmt.excluded
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["device_id", "ident"],
            set_={
                "count": EVIDENCE.c.count + new["count"],
                "confidence": case(
                    (new.confidence > EVIDENCE.c.confidence, new.confidence),
                    else_=EVIDENCE.c.confidence,
                ),
            },
        ),
        rows,
    )


def _merge_flows(conn: Connection, flows: Iterable[FlowReport]) -> None:
    merged: dict[str, dict[str, Any]] = {}
    adds = (
        "connections",
        "packets_to_server",
        "packets_to_client",
        "bytes_to_server",
        "bytes_to_client",
    )
    for f in flows:
        ident = flow_ident(f)
        row = merged.get(ident)
        if row is None:
            merged[ident] = {
                "ident": ident,
                "transport": f.transport,
                "vlan": f.vlan,
                "inner_vlan": f.inner_vlan,
                "client": f.client,
                "server": f.server,
                "server_port": f.server_port,
                "app": f.app,
                **{a: getattr(f, a) for a in adds},
                "client_zone": f.client_zone,
                "server_zone": f.server_zone,
                "first_seen": utc(f.first_seen),
                "last_seen": utc(f.last_seen),
            }
            continue
        for a in adds:
            row[a] += getattr(f, a)
        row["first_seen"] = min(row["first_seen"], utc(f.first_seen))
        row["last_seen"] = max(row["last_seen"], utc(f.last_seen))
        row["client_zone"] = f.client_zone or row["client_zone"]
        row["server_zone"] = f.server_zone or row["server_zone"]
    ins = _insert(conn)
    rows = [merged[k] for k in sorted(merged)]
    if not rows:
        return
    stmt = ins(FLOW)
    new = stmt.excluded
    set_: dict[str, Any] = {a: FLOW.c[a] + new[a] for a in adds}
    set_["first_seen"] = _earliest(FLOW.c.first_seen, new.first_seen)
    set_["last_seen"] = _latest(FLOW.c.last_seen, new.last_seen)
    set_["client_zone"] = func.coalesce(new.client_zone, FLOW.c.client_zone)
    set_["server_zone"] = func.coalesce(new.server_zone, FLOW.c.server_zone)
    conn.execute(stmt.on_conflict_do_update(index_elements=["ident"], set_=set_), rows)


def _merge_violations(
    conn: Connection, violations: Iterable[ViolationReport], *, now: datetime
) -> list[ViolationReport]:
    """Upsert by (rule, client, server, service); returns the violations with a new key."""
    merged: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    first_of: dict[tuple[str, str, str, str], ViolationReport] = {}
    for v in violations:
        key = (v.rule, v.client.ip, v.server.ip, v.service)
        first_of.setdefault(key, v)
        row = merged.get(key)
        if row is not None:
            row["flows"] += v.flows
            row["packets"] += v.packets
            row["bytes"] += v.bytes
            row["first_seen"] = min(row["first_seen"], utc(v.first_seen))
            row["last_seen"] = max(row["last_seen"], utc(v.last_seen))
            continue
        merged[key] = {
            "rule": v.rule,
            "severity": v.severity,
            "reason": v.reason,
            "service": v.service,
            "app": v.app,
            "client_ip": v.client.ip,
            "client_vlan": v.client.vlan,
            "client_zone": v.client.zone,
            "client_device_id": v.client.device_id,
            "client_device_type": v.client.device_type,
            "client_vendor": v.client.vendor,
            "server_ip": v.server.ip,
            "server_vlan": v.server.vlan,
            "server_zone": v.server.zone,
            "server_device_id": v.server.device_id,
            "server_device_type": v.server.device_type,
            "server_vendor": v.server.vendor,
            "flows": v.flows,
            "packets": v.packets,
            "bytes": v.bytes,
            "first_seen": utc(v.first_seen),
            "last_seen": utc(v.last_seen),
            "reported_at": now,
        }
    ins = _insert(conn)
    rows = [merged[k] for k in sorted(merged)]
    latest = (
        "severity",
        "reason",
        "app",
        "client_vlan",
        "client_zone",
        "client_device_id",
        "client_device_type",
        "client_vendor",
        "server_vlan",
        "server_zone",
        "server_device_id",
        "server_device_type",
        "server_vendor",
        "reported_at",
    )
    if not rows:
        return []
    known = _known_violation_keys(conn, list(merged))
    stmt = ins(VIOLATION)
    new = stmt.excluded
    set_: dict[str, Any] = {a: VIOLATION.c[a] + new[a] for a in ("flows", "packets", "bytes")}
    set_["first_seen"] = _earliest(VIOLATION.c.first_seen, new.first_seen)
    set_["last_seen"] = _latest(VIOLATION.c.last_seen, new.last_seen)
    set_.update({a: new[a] for a in latest})
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["rule", "client_ip", "server_ip", "service"], set_=set_
        ),
        rows,
    )
    return [v for key, v in first_of.items() if key not in known]


def _known_violation_keys(
    conn: Connection, keys: list[tuple[str, str, str, str]]
) -> set[tuple[str, str, str, str]]:
    """Which of ``keys`` are stored already (read inside the ingest transaction)."""
    cols = (VIOLATION.c.rule, VIOLATION.c.client_ip, VIOLATION.c.server_ip, VIOLATION.c.service)
    known: set[tuple[str, str, str, str]] = set()
    for part in chunks(keys):
        rules = {k[0] for k in part}
        clients = {k[1] for k in part}
        result = conn.execute(
            select(*cols).where(VIOLATION.c.rule.in_(rules), VIOLATION.c.client_ip.in_(clients))
        )
        known.update((r, c, s, v) for r, c, s, v in result)
    return known


def _record_sensor(conn: Connection, *, sensor_id: int, batch: Batch, now: datetime) -> None:
    sensor = SENSOR
    values: dict[str, Any] = {"batches": sensor.c.batches + 1, "last_batch_at": now}
    hb = batch.heartbeat
    if hb is not None:
        at = utc(hb.at)
        conn.execute(
            insert(HEARTBEAT).values(
                sensor_id=sensor_id,
                received_at=now,
                at=at,
                packets=hb.packets,
                kernel_drops=hb.kernel_drops,
                malformed=hb.malformed,
                parser_errors=hb.parser_errors,
                flows_evicted=hb.flows_evicted,
                flows_unparsed=hb.flows_unparsed,
                spool_depth=hb.spool_depth,
                spool_dropped=hb.spool_dropped,
            )
        )
        values["heartbeat_received_at"] = now
        # Counters are the sensor's running totals: an older heartbeat (a spooled batch
        # sent late) must not replace a newer one.
        newer = or_(sensor.c.heartbeat_at.is_(None), sensor.c.heartbeat_at <= at)
        for name in (
            "version",
            "interface",
            "uptime_seconds",
            "packets",
            "bytes",
            "kernel_drops",
            "malformed",
            "flows_evicted",
            "parser_errors",
            "flows_unparsed",
            "spool_depth",
            "spool_dropped",
        ):
            new = literal(getattr(hb, name), type_=sensor.c[name].type)
            values[name] = case((newer, new), else_=sensor.c[name])
        values["heartbeat_at"] = _latest(
            sensor.c.heartbeat_at, bindparam("b_at", at, UTCDateTime())
        )
    conn.execute(update(sensor).where(sensor.c.id == sensor_id).values(values))
