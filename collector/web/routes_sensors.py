"""Sensor health (last heartbeat, packets, drops, parser errors, flows unparsed, ok / late /
silent) and the downloads of the inventory and violations. Both reuse the API's code
(collector/api)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from collector.api.deps import SessionDep, SettingsDep
from collector.api.inventory import export_csv, export_json
from collector.api.sensors import list_sensors
from collector.web import params
from collector.web.render import render
from collector.web.routing import WebRoute
from collector.web.security import UserDep

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/sensors")
def sensors(
    request: Request, user: UserDep, session: SessionDep, settings: SettingsDep
) -> Response:
    paging = params.paging(request)
    page = list_sensors(user.principal, session, settings, skip=paging.offset, limit=paging.per)
    return render(
        request,
        "sensors.html",
        user=user,
        title="Sensors",
        sensors=page.data,
        total=page.count,
        paging=paging,
        pages=paging.pages(page.count),
        settings=settings,
        params=params.current(request),
    )


@router.get("/export/inventory.csv")
def inventory_csv(user: UserDep, session: SessionDep) -> Response:
    return export_csv(user.principal, session)


@router.get("/export/inventory.json")
def inventory_json(user: UserDep, session: SessionDep) -> Response:
    holder = Response()  # export_json sets its download headers on the response it gets
    register = export_json(user.principal, session, holder)
    return Response(
        register.model_dump_json(indent=1),
        media_type="application/json",
        headers={"Content-Disposition": holder.headers["content-disposition"]},
    )
