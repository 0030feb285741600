"""``/audit`` (admins only): who logged in, acknowledged, changed the policy, sensors, users."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import func, select

from collector.api.deps import AdminDep, SessionDep
from collector.api.devices import Limit, Skip
from collector.api.schemas import AuditEventPublic, AuditEventsPublic
from collector.models import AuditEvent

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=AuditEventsPublic)
def list_audit(
    _: AdminDep,
    session: SessionDep,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    skip: Skip = 0,
    limit: Limit = 100,
) -> AuditEventsPublic:
    """Audit events, newest first."""
    query = select(AuditEvent)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).offset(skip).limit(limit)
    )
    return AuditEventsPublic(data=[AuditEventPublic.model_validate(e) for e in rows], count=count)
