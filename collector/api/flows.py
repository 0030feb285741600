"""``/flows``: conversation summaries, and ``/flows/zones``: traffic between zones."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, or_, select

from collector.api.deps import ReaderDep, SessionDep
from collector.api.devices import Limit, Skip
from collector.api.schemas import FlowPublic, FlowsPublic, ZoneFlowPublic, ZoneFlowsPublic
from collector.models import Flow

router = APIRouter(prefix="/flows", tags=["flows"])


@router.get("", response_model=FlowsPublic)
def list_flows(
    _: ReaderDep,
    session: SessionDep,
    ip: Annotated[str | None, Query(description="client or server address")] = None,
    client: str | None = None,
    server: str | None = None,
    server_port: Annotated[int | None, Query(ge=0, le=65535)] = None,
    vlan: Annotated[int | None, Query(ge=0, le=4095)] = None,
    app: str | None = None,
    transport: str | None = None,
    zone: Annotated[str | None, Query(description="client or server zone")] = None,
    seen_since: datetime | None = None,
    skip: Skip = 0,
    limit: Limit = 100,
) -> FlowsPublic:
    """Conversations, most recently seen first."""
    query = select(Flow)
    if ip is not None:
        query = query.where(or_(Flow.client == ip, Flow.server == ip))
    if client is not None:
        query = query.where(Flow.client == client)
    if server is not None:
        query = query.where(Flow.server == server)
    if server_port is not None:
        query = query.where(Flow.server_port == server_port)
    if vlan is not None:
        query = query.where(Flow.vlan == vlan)
    if app is not None:
        query = query.where(Flow.app == app)
    if transport is not None:
        query = query.where(Flow.transport == transport)
    if zone is not None:
        query = query.where(or_(Flow.client_zone == zone, Flow.server_zone == zone))
    if seen_since is not None:
        query = query.where(Flow.last_seen >= seen_since)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Flow.last_seen.desc(), Flow.id).offset(skip).limit(limit))
    return FlowsPublic(data=[FlowPublic.model_validate(f) for f in rows], count=count)


@router.get("/zones", response_model=ZoneFlowsPublic)
def zone_flows(
    _: ReaderDep,
    session: SessionDep,
    client_zone: str | None = None,
    server_zone: str | None = None,
    skip: Skip = 0,
    limit: Limit = 100,
) -> ZoneFlowsPublic:
    """Traffic between zones per service: conversations, connections and bytes. Zones come
    from the sensors' policy; flows seen without one have null zones."""
    keys = (Flow.client_zone, Flow.server_zone, Flow.transport, Flow.server_port, Flow.app)
    query = select(
        *keys,
        func.count(),
        func.sum(Flow.connections),
        func.sum(Flow.bytes_to_server + Flow.bytes_to_client),
        func.min(Flow.first_seen),
        func.max(Flow.last_seen),
    ).group_by(*keys)
    if client_zone is not None:
        query = query.where(Flow.client_zone == client_zone)
    if server_zone is not None:
        query = query.where(Flow.server_zone == server_zone)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ordered = query.order_by(
        Flow.client_zone, Flow.server_zone, Flow.transport, Flow.server_port, Flow.app
    )
    data = [
        ZoneFlowPublic(
            client_zone=cz,
            server_zone=sz,
            transport=transport,
            server_port=port,
            app=app,
            conversations=n,
            connections=int(conns or 0),
            bytes=int(nbytes or 0),
            first_seen=first,
            last_seen=last,
        )
        for cz, sz, transport, port, app, n, conns, nbytes, first, last in session.execute(
            ordered.offset(skip).limit(limit)
        ).tuples()
    ]
    return ZoneFlowsPublic(data=data, count=count)
