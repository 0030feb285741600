"""Violation downloads (CSV, JSON) for the web; the inventory's asset register is the API's
own export (collector/api/inventory.py), served by routes_sensors.py.

Rows are the API's ``ViolationPublic`` (collector/api/violations.py), flattened for CSV,
with the same formula guard as the asset register: a cell starting with ``=``, ``+``, ``-``,
``@`` is prefixed with ``'`` so a spreadsheet never runs text that came off the network.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.api.deps import SessionDep
from collector.api.inventory import csv_cell
from collector.api.schemas import ViolationPublic
from collector.api.violations import violation_public
from collector.models import Violation, utcnow
from collector.web import params
from collector.web.routing import WebRoute
from collector.web.security import UserDep

router = APIRouter(route_class=WebRoute, include_in_schema=False)
MAX_EXPORT = 200_000  # rows; the wire contract caps a batch at 50 000 violations
CSV_COLUMNS = (
    "id",
    "status",
    "severity",
    "rule",
    "reason",
    "service",
    "app",
    "client_ip",
    "client_vlan",
    "client_zone",
    "client_device_type",
    "client_vendor",
    "server_ip",
    "server_vlan",
    "server_zone",
    "server_device_type",
    "server_vendor",
    "flows",
    "packets",
    "bytes",
    "first_seen",
    "last_seen",
    "acknowledged_at",
    "acknowledged_by",
)


def _violations(session: Session, request: Request) -> Iterator[ViolationPublic]:
    query = select(Violation)
    state = params.choice(request, "status", ("open", "acknowledged", "all"), "all")
    if state == "open":
        query = query.where(Violation.acknowledged_at.is_(None))
    elif state == "acknowledged":
        query = query.where(Violation.acknowledged_at.is_not(None))
    rows = session.scalars(query.order_by(Violation.id).limit(MAX_EXPORT))
    for v in rows:
        yield violation_public(v)


def flat(v: ViolationPublic) -> dict[str, Any]:
    row = v.model_dump(mode="json")
    out: dict[str, Any] = {k: row.get(k) for k in CSV_COLUMNS}
    out["status"] = "acknowledged" if v.acknowledged_at else "open"
    for side in ("client", "server"):
        for key, value in row[side].items():
            out[f"{side}_{key}"] = value
    return out


@router.get("/export/violations.csv")
def violations_csv(request: Request, user: UserDep, session: SessionDep) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for v in _violations(session, request):
        row = flat(v)
        writer.writerow([csv_cell(row[c]) for c in CSV_COLUMNS])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="medtap-violations.csv"'},
    )


@router.get("/export/violations.json")
def violations_json(request: Request, user: UserDep, session: SessionDep) -> Response:
    data = [v.model_dump(mode="json") for v in _violations(session, request)]
    body = {"generated_at": utcnow().isoformat(), "data": data, "count": len(data)}
    return Response(
        json.dumps(body, indent=1),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="medtap-violations.json"'},
    )
