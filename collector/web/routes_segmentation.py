"""Segmentation: the zone picture, the violations list, acknowledging (admins), audit trail.

Listing and acknowledging reuse the API's own functions (collector/api/violations.py), so
the web and the API cannot disagree on filters, who may acknowledge, or what is audited.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from collector.api.audit import list_audit
from collector.api.deps import SessionDep
from collector.api.devices import RowId
from collector.api.schemas import AckIn
from collector.api.violations import acknowledge, list_violations
from collector.web import params
from collector.web.graph import layout
from collector.web.queries import (
    SEVERITY_ORDER,
    acknowledgements,
    devices_by_ip,
    zone_sizes,
    zone_traffic,
    zone_violations,
)
from collector.web.render import render
from collector.web.routing import WebRoute
from collector.web.security import UserDep, check_csrf, read_form, require_admin, safe_next

router = APIRouter(route_class=WebRoute, include_in_schema=False)
STATUSES = ("open", "acknowledged", "all")
SEVERITIES = tuple(SEVERITY_ORDER)
MAX_COMMENT = 2000


@router.get("/segmentation")
def segmentation(request: Request, user: UserDep, session: SessionDep) -> Response:
    state = params.choice(request, "status", STATUSES, "open")
    severity = params.text(request, "severity")
    if severity not in SEVERITIES:
        severity = None
    zone = params.text(request, "zone")
    paging = params.paging(request)
    page = list_violations(
        user.principal,
        session,
        rule=params.text(request, "rule"),
        severity=severity,
        acknowledged={"open": False, "acknowledged": True}.get(state),
        zone=zone,
        ip=params.text(request, "ip"),
        skip=paging.offset,
        limit=paging.per,
    )
    traffic, viol = zone_traffic(session), zone_violations(session)
    sizes = zone_sizes(session)
    ips = {v.client.ip for v in page.data} | {v.server.ip for v in page.data}
    return render(
        request,
        "segmentation.html",
        user=user,
        title="Segmentation",
        graph=layout(traffic, viol, sizes),
        traffic=[t for t in traffic if t.client_zone != t.server_zone],
        zone_violations=viol,
        violations=page.data,
        total=page.count,
        acks=acknowledgements(session, [v.id for v in page.data]),
        endpoints=devices_by_ip(session, ips),
        paging=paging,
        pages=paging.pages(page.count),
        state=state,
        severity=severity,
        severities=SEVERITIES,
        zone=zone,
        zones=sorted(sizes | {z.client_zone: 0 for z in viol} | {z.server_zone: 0 for z in viol}),
        params=params.current(request),
    )


@router.post("/violations/{violation_id}/ack")
async def ack(
    request: Request, user: UserDep, session: SessionDep, violation_id: RowId
) -> Response:
    form = await read_form(request)
    check_csrf(user, form)
    require_admin(user)
    comment = form.get("comment", "").strip()
    try:
        body = AckIn(comment=comment[:MAX_COMMENT])
    except ValidationError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="an acknowledgement needs a comment"
        ) from None
    acknowledge(user.principal, session, violation_id, body)
    target = safe_next(form.get("next") or "/segmentation")
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


@router.get("/audit")
def audit_trail(request: Request, user: UserDep, session: SessionDep) -> Response:
    require_admin(user)
    paging = params.paging(request)
    page = list_audit(
        user.principal,
        session,
        action=params.text(request, "action"),
        actor=params.text(request, "actor"),
        skip=paging.offset,
        limit=paging.per,
    )
    return render(
        request,
        "audit.html",
        user=user,
        title="Audit trail",
        events=page.data,
        total=page.count,
        paging=paging,
        pages=paging.pages(page.count),
        params=params.current(request),
    )
