"""``/violations``: segmentation violations, filtered; admins acknowledge with a comment
(audited). A violation seen again after its acknowledgement says so (``seen_since_ack``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import case, func, or_, select

from collector.api.deps import AdminDep, ReaderDep, SessionDep
from collector.api.devices import Limit, RowId, Skip
from collector.api.schemas import (
    AckIn,
    AcknowledgementPublic,
    EndpointPublic,
    ViolationDetailPublic,
    ViolationPublic,
    ViolationsPublic,
)
from collector.auth import audit
from collector.db import begin_write
from collector.models import Acknowledgement, Violation, utcnow

router = APIRouter(prefix="/violations", tags=["violations"])
Severity = Annotated[str | None, Query(pattern="^(low|medium|high|critical)$")]
# Worst first: a critical pump-to-internet flow must not sink below a recent low one.
SEVERITY_RANK = case(
    {"critical": 0, "high": 1, "medium": 2, "low": 3}, value=Violation.severity, else_=4
)


@router.get("", response_model=ViolationsPublic)
def list_violations(
    _: ReaderDep,
    session: SessionDep,
    rule: str | None = None,
    severity: Severity = None,
    acknowledged: bool | None = None,
    zone: Annotated[str | None, Query(description="client or server zone")] = None,
    ip: Annotated[str | None, Query(description="client or server address")] = None,
    seen_since: datetime | None = None,
    skip: Skip = 0,
    limit: Limit = 100,
) -> ViolationsPublic:
    """Violations, worst severity first, then most recently seen."""
    query = select(Violation)
    if rule is not None:
        query = query.where(Violation.rule == rule)
    if severity is not None:
        query = query.where(Violation.severity == severity)
    if acknowledged is not None:
        ack = Violation.acknowledged_at
        query = query.where(ack.is_not(None) if acknowledged else ack.is_(None))
    if zone is not None:
        query = query.where(or_(Violation.client_zone == zone, Violation.server_zone == zone))
    if ip is not None:
        query = query.where(or_(Violation.client_ip == ip, Violation.server_ip == ip))
    if seen_since is not None:
        query = query.where(Violation.last_seen >= seen_since)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = (SEVERITY_RANK, Violation.last_seen.desc(), Violation.id)
    rows = session.scalars(query.order_by(*order).offset(skip).limit(limit))
    return ViolationsPublic(data=[violation_public(v) for v in rows], count=count)


def violation_public(v: Violation) -> ViolationPublic:
    return ViolationPublic(
        id=v.id,
        rule=v.rule,
        severity=v.severity,
        reason=v.reason,
        service=v.service,
        app=v.app,
        client=EndpointPublic(
            ip=v.client_ip,
            vlan=v.client_vlan,
            zone=v.client_zone,
            device_id=v.client_device_id,
            device_type=v.client_device_type,
            vendor=v.client_vendor,
        ),
        server=EndpointPublic(
            ip=v.server_ip,
            vlan=v.server_vlan,
            zone=v.server_zone,
            device_id=v.server_device_id,
            device_type=v.server_device_type,
            vendor=v.server_vendor,
        ),
        flows=v.flows,
        packets=v.packets,
        bytes=v.bytes,
        first_seen=v.first_seen,
        last_seen=v.last_seen,
        reported_at=v.reported_at,
        acknowledged_at=v.acknowledged_at,
        acknowledged_by=v.acknowledged_by,
        seen_since_ack=v.acknowledged_at is not None and v.reported_at > v.acknowledged_at,
    )


def _detail(session: SessionDep, violation: Violation) -> ViolationDetailPublic:
    acks = session.scalars(
        select(Acknowledgement)
        .where(Acknowledgement.violation_id == violation.id)
        .order_by(Acknowledgement.at, Acknowledgement.id)
    )
    return ViolationDetailPublic(
        **violation_public(violation).model_dump(),
        acknowledgements=[AcknowledgementPublic.model_validate(a) for a in acks],
    )


@router.get("/{violation_id}", response_model=ViolationDetailPublic, responses={404: {}})
def read_violation(_: ReaderDep, session: SessionDep, violation_id: RowId) -> ViolationDetailPublic:
    violation = session.get(Violation, violation_id)
    if violation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="violation not found")
    return _detail(session, violation)


@router.post("/{violation_id}/ack", response_model=ViolationDetailPublic, responses={404: {}})
def acknowledge(
    principal: AdminDep, session: SessionDep, violation_id: RowId, body: AckIn
) -> ViolationDetailPublic:
    """Acknowledge a violation with a comment; recorded with who and when, and audited."""
    begin_write(session)
    violation = session.get(Violation, violation_id)
    if violation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="violation not found")
    now = utcnow()
    ack = Acknowledgement(
        violation_id=violation.id, user_name=principal.name, comment=body.comment, at=now
    )
    session.add(ack)
    violation.acknowledged_at = now
    violation.acknowledged_by = principal.name
    session.flush()
    audit(
        session,
        actor=principal.name,
        action="violation.acknowledge",
        target=f"violation {violation.id} ({violation.rule})",
        detail=f"acknowledgement {ack.id}",
    )
    session.commit()
    return _detail(session, violation)
