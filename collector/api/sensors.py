"""``/sensors``: registered sensors with health (readers); admins add, rotate and revoke.

Health uses the collector's clock (when the last heartbeat arrived), not the sensor's:
``ok`` within ``sensor_late_seconds``, ``late`` until ``sensor_silent_seconds``, then
``silent`` (also for a sensor never heard from); ``revoked`` overrides all.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import func, select

from collector.api.deps import AdminDep, ReaderDep, SessionDep, SettingsDep
from collector.api.devices import Limit, Skip
from collector.api.schemas import SensorIn, SensorPublic, SensorsPublic, SensorTokenPublic
from collector.auth import CredentialError, audit, create_sensor, revoke_sensor
from collector.db import begin_write
from collector.models import Sensor, utcnow
from collector.settings import Settings

router = APIRouter(prefix="/sensors", tags=["sensors"])


def sensor_state(sensor: Sensor, settings: Settings, now: datetime) -> str:
    if sensor.revoked_at is not None:
        return "revoked"
    if sensor.heartbeat_received_at is None:
        return "silent"
    age = (now - sensor.heartbeat_received_at).total_seconds()
    if age <= settings.sensor_late_seconds:
        return "ok"
    return "late" if age <= settings.sensor_silent_seconds else "silent"


def sensor_public(sensor: Sensor, settings: Settings, now: datetime) -> SensorPublic:
    return SensorPublic(
        name=sensor.name,
        state=sensor_state(sensor, settings, now),  # type: ignore[arg-type]
        created_at=sensor.created_at,
        revoked_at=sensor.revoked_at,
        batches=sensor.batches,
        last_batch_at=sensor.last_batch_at,
        last_heartbeat_at=sensor.heartbeat_received_at,
        heartbeat_sensor_time=sensor.heartbeat_at,
        version=sensor.version,
        interface=sensor.interface,
        uptime_seconds=sensor.uptime_seconds,
        packets=sensor.packets,
        bytes=sensor.bytes,
        kernel_drops=sensor.kernel_drops,
        malformed=sensor.malformed,
        flows_evicted=sensor.flows_evicted,
        parser_errors=sensor.parser_errors,
        flows_unparsed=sensor.flows_unparsed,
        spool_depth=sensor.spool_depth,
        spool_dropped=sensor.spool_dropped,
    )


@router.get("", response_model=SensorsPublic)
def list_sensors(
    _: ReaderDep, session: SessionDep, settings: SettingsDep, skip: Skip = 0, limit: Limit = 100
) -> SensorsPublic:
    """Sensors by name, with their last heartbeat's counters and a health state."""
    count = session.scalar(select(func.count()).select_from(Sensor)) or 0
    rows = session.scalars(select(Sensor).order_by(Sensor.name).offset(skip).limit(limit))
    now = utcnow()
    return SensorsPublic(data=[sensor_public(s, settings, now) for s in rows], count=count)


@router.post(
    "",
    response_model=SensorTokenPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "a sensor of that name exists"}},
)
def add_sensor(principal: AdminDep, session: SessionDep, body: SensorIn) -> SensorTokenPublic:
    """Register a sensor; the answer carries its token, which is shown only this once."""
    return _issue(principal.name, session, body.name, rotate=False)


@router.post("/{name}/rotate", response_model=SensorTokenPublic, responses={404: {}})
def rotate_sensor(principal: AdminDep, session: SessionDep, name: str) -> SensorTokenPublic:
    """Revoke a sensor's tokens and issue a new one (shown once)."""
    if session.scalar(select(Sensor.id).where(Sensor.name == name)) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="sensor not found")
    return _issue(principal.name, session, name, rotate=True)


def _issue(actor: str, session: SessionDep, name: str, *, rotate: bool) -> SensorTokenPublic:
    begin_write(session)
    try:
        token = create_sensor(session, name=name, rotate=rotate)
    except CredentialError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    audit(session, actor=actor, action="sensor.rotate" if rotate else "sensor.add", target=name)
    session.commit()
    return SensorTokenPublic(name=name, token=token)


@router.post("/{name}/revoke", response_model=SensorPublic, responses={404: {}})
def revoke(
    principal: AdminDep, session: SessionDep, settings: SettingsDep, name: str
) -> SensorPublic:
    """Revoke a sensor: its tokens stop working at once; its data stays."""
    begin_write(session)
    if not revoke_sensor(session, name=name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="sensor not found")
    audit(session, actor=principal.name, action="sensor.revoke", target=name)
    session.commit()
    sensor = session.scalars(select(Sensor).where(Sensor.name == name)).one()
    return sensor_public(sensor, settings, utcnow())
