"""Inventory pages: the grouped view (``/``), a group's devices, all devices, one device."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from collector.api.deps import SessionDep
from collector.api.devices import RowId, device_rows, read_device
from collector.inventory import group_label
from collector.models import utcnow
from collector.web import params
from collector.web.queries import (
    DEVICE_SORTS,
    GROUP_SORTS,
    UNCLASSIFIED,
    device_page,
    device_peers,
    device_sensors,
    device_violations,
    devices_by_ip,
    filter_options,
    group_page,
)
from collector.web.render import render
from collector.web.routing import WebRoute
from collector.web.security import UserDep

router = APIRouter(route_class=WebRoute, include_in_schema=False)
FIELD_ORDER = ("device_type", "category", "vendor", "model", "software_version", "serial")


@router.get("/")
def inventory(request: Request, user: UserDep, session: SessionDep) -> Response:
    flt = params.inventory_filter(request)
    paging = params.paging(request)
    sort = params.choice(request, "sort", GROUP_SORTS, "default")
    descending = params.text(request, "dir") == "desc"
    groups, total = group_page(
        session,
        flt,
        now=utcnow(),
        sort=sort,
        descending=descending,
        offset=paging.offset,
        limit=paging.per,
    )
    devices = sum(g.count for g in groups)
    return render(
        request,
        "inventory.html",
        user=user,
        title="Inventory",
        groups=groups,
        total=total,
        page_devices=devices,
        paging=paging,
        pages=paging.pages(total),
        flt=flt,
        options=filter_options(session),
        unclassified=UNCLASSIFIED,
        sort=sort,
        descending=descending,
        params=params.current(request),
    )


@router.get("/inventory/group")
def group_devices(request: Request, user: UserDep, session: SessionDep) -> Response:
    """A group's devices. ``vendor``/``model`` absent mean the group has none (NULL)."""
    dtype = params.text(request, "type") or "unknown"
    group = (dtype, params.text(request, "vendor"), params.text(request, "model"))
    return _device_list(request, user, session, group=group)


@router.get("/inventory/devices")
def all_devices(request: Request, user: UserDep, session: SessionDep) -> Response:
    return _device_list(request, user, session, group=None)


def _device_list(
    request: Request,
    user: UserDep,
    session: SessionDep,
    *,
    group: tuple[str, str | None, str | None] | None,
) -> Response:
    flt = params.inventory_filter(request)
    paging = params.paging(request)
    sort = params.choice(request, "sort", DEVICE_SORTS, "default")
    descending = params.text(request, "dir") == "desc"
    devices, total = device_page(
        session,
        flt,
        now=utcnow(),
        group=group,
        sort=sort,
        descending=descending,
        offset=paging.offset,
        limit=paging.per,
    )
    return render(
        request,
        "devices.html",
        user=user,
        title="Devices",
        heading=group_label(*group, total) if group else "All devices",
        group=group,
        rows=device_rows(session, devices),
        total=total,
        paging=paging,
        pages=paging.pages(total),
        flt=flt,
        options=filter_options(session),
        unclassified=UNCLASSIFIED,
        sort=sort,
        descending=descending,
        params=params.current(request),
    )


@router.get("/device/{device_id}")
def device(request: Request, user: UserDep, session: SessionDep, device_id: RowId) -> Response:
    detail = read_device(user.principal, session, device_id)  # 404 when unknown
    fields = [(name, detail.fields[name]) for name in FIELD_ORDER if name in detail.fields]
    fields += sorted((k, v) for k, v in detail.fields.items() if k not in FIELD_ORDER)
    violations = device_violations(session, detail.ips)
    endpoints = devices_by_ip(
        session, {v.client_ip for v in violations} | {v.server_ip for v in violations}
    )
    return render(
        request,
        "device.html",
        user=user,
        title=f"Device {detail.key}",
        d=detail,
        fields=fields,
        peers=device_peers(session, detail.ips),
        violations=violations,
        endpoints=endpoints,
        sensors=device_sensors(session, device_id),
    )
