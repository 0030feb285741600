"""``/devices``: the merged inventory, filtered and paginated; one device with evidence.

A page is built in five queries whatever its size (devices, then IPs, VLANs, hostnames and
sensors of the page's ids), never one query per device.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from collector.api.deps import ReaderDep, SessionDep
from collector.api.schemas import (
    DeviceDetailPublic,
    DevicePublic,
    DevicesPublic,
    EvidencePublic,
    FieldPublic,
    FlowPublic,
)
from collector.models import (
    Device,
    DeviceField,
    DeviceHostname,
    DeviceIp,
    DeviceSensor,
    DeviceVlan,
    Evidence,
    Flow,
    Sensor,
)

router = APIRouter(prefix="/devices", tags=["devices"])
MAX_PAGE = 500
MAX_DETAIL_EVIDENCE = 1000
MAX_DETAIL_FLOWS = 200
CATEGORY_ORDER = {"medical": 0, "clinical-it": 1, "infrastructure": 2, "other": 3}

MAX_ROW_ID = 2**63 - 1  # BIGINT; larger numbers would fail in the database, not here
Skip = Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="rows to skip")]
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]


def category_rank() -> Any:
    return case(CATEGORY_ORDER, value=Device.category, else_=len(CATEGORY_ORDER))


@router.get("", response_model=DevicesPublic)
def list_devices(
    _: ReaderDep,
    session: SessionDep,
    device_type: str | None = None,
    vendor: str | None = None,
    model: str | None = None,
    category: str | None = None,
    vlan: Annotated[int | None, Query(ge=0, le=4095)] = None,
    zone: str | None = None,
    sensor: str | None = None,
    ip: str | None = None,
    mac: str | None = None,
    seen_since: datetime | None = None,
    skip: Skip = 0,
    limit: Limit = 100,
) -> DevicesPublic:
    """Devices, medical first, then by type; filters combine with AND."""
    query = select(Device)
    if device_type is not None:
        query = query.where(Device.device_type == device_type)
    if vendor is not None:
        query = query.where(Device.vendor == vendor)
    if model is not None:
        query = query.where(Device.model == model)
    if category is not None:
        query = query.where(Device.category == category)
    if zone is not None:
        query = query.where(Device.zone == zone)
    if mac is not None:
        query = query.where(Device.mac == mac.lower())
    if seen_since is not None:
        query = query.where(Device.last_seen >= seen_since)
    if vlan is not None:
        query = query.where(
            Device.id.in_(select(DeviceVlan.device_id).where(DeviceVlan.vlan == vlan))
        )
    if ip is not None:
        query = query.where(Device.id.in_(select(DeviceIp.device_id).where(DeviceIp.ip == ip)))
    if sensor is not None:
        query = query.where(
            Device.id.in_(
                select(DeviceSensor.device_id)
                .join(Sensor, Sensor.id == DeviceSensor.sensor_id)
                .where(Sensor.name == sensor)
            )
        )
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(
        query.order_by(category_rank(), Device.device_type, Device.key, Device.id)
        .offset(skip)
        .limit(limit)
    ).all()
    return DevicesPublic(data=device_rows(session, page), count=count)


def device_rows(session: Session, devices: Sequence[Device]) -> list[DevicePublic]:
    ids = [d.id for d in devices]
    ips = _multi(session, select(DeviceIp.device_id, DeviceIp.ip), DeviceIp.device_id, ids)
    vlans = _multi(
        session, select(DeviceVlan.device_id, DeviceVlan.vlan), DeviceVlan.device_id, ids
    )
    names = _multi(
        session,
        select(DeviceHostname.device_id, DeviceHostname.name),
        DeviceHostname.device_id,
        ids,
    )
    sensors = _multi(
        session,
        select(DeviceSensor.device_id, Sensor.name).join(
            Sensor, Sensor.id == DeviceSensor.sensor_id
        ),
        DeviceSensor.device_id,
        ids,
    )
    return [
        DevicePublic(
            id=d.id,
            key=d.key,
            mac=d.mac,
            ips=sorted(ips[d.id]),
            vlans=sorted(vlans[d.id]),
            hostnames=sorted(names[d.id]),
            category=d.category,
            device_type=d.device_type,
            vendor=d.vendor,
            model=d.model,
            software_version=d.software_version,
            serial=d.serial,
            oui_vendor=d.oui_vendor,
            confidence=d.confidence,
            is_router=d.is_router,
            zone=d.zone,
            first_seen=d.first_seen,
            last_seen=d.last_seen,
            flows=d.flows,
            sensors=sorted(sensors[d.id]),
        )
        for d in devices
    ]


def _multi(
    session: Session, query: Any, id_col: Any, ids: list[int]
) -> defaultdict[int, list[Any]]:
    out: defaultdict[int, list[Any]] = defaultdict(list)
    if ids:
        for device_id, value in session.execute(query.where(id_col.in_(ids))):
            out[device_id].append(value)
    return out


@router.get("/{device_id}", response_model=DeviceDetailPublic, responses={404: {}})
def read_device(_: ReaderDep, session: SessionDep, device_id: RowId) -> DeviceDetailPublic:
    """One device: its fields with the evidence behind each, all evidence, its flows."""
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="device not found")
    row = device_rows(session, [device])[0]
    fields: dict[str, FieldPublic] = {}
    for f, sensor_name in session.execute(
        select(DeviceField, Sensor.name)
        .outerjoin(Sensor, Sensor.id == DeviceField.sensor_id)
        .where(DeviceField.device_id == device_id)
        .order_by(DeviceField.field)
    ).tuples():
        fields[f.field] = FieldPublic(
            value=f.value,
            confidence=f.confidence,
            sensor=sensor_name,
            evidence=json.loads(f.evidence),
        )
    total = session.scalar(select(func.count()).where(Evidence.device_id == device_id)) or 0
    evidence = [
        EvidencePublic(
            kind=e.kind, value=e.value, source=e.source, count=e.count, confidence=e.confidence
        )
        for e in session.scalars(
            select(Evidence)
            .where(Evidence.device_id == device_id)
            .order_by(Evidence.confidence.desc(), Evidence.kind, Evidence.value, Evidence.id)
            .limit(MAX_DETAIL_EVIDENCE)
        )
    ]
    flows: list[FlowPublic] = []
    if row.ips:
        flows = [
            FlowPublic.model_validate(f)
            for f in session.scalars(
                select(Flow)
                .where(or_(Flow.client.in_(row.ips), Flow.server.in_(row.ips)))
                .order_by(Flow.last_seen.desc(), Flow.id)
                .limit(MAX_DETAIL_FLOWS)
            )
        ]
    return DeviceDetailPublic(
        **row.model_dump(), fields=fields, evidence=evidence, evidence_total=total, flow_items=flows
    )
