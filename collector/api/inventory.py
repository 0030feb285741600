"""``/inventory/groups``: the grouped inventory, and ``/exports/assets.{csv,json}``: the
same groups as an asset register for the BSI/NIS2 inventory."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Response

from collector.api.deps import ReaderDep, SessionDep
from collector.api.schemas import AssetRegisterPublic, AssetRowPublic, GroupPublic, GroupsPublic
from collector.inventory import Group, inventory_groups
from collector.models import utcnow

router = APIRouter(tags=["inventory"])
CSV_COLUMNS = (
    "group",
    "category",
    "device_type",
    "count",
    "vendor",
    "model",
    "software_versions",
    "zones",
    "vlans",
    "first_seen",
    "last_seen",
)
# A cell a spreadsheet would run as a formula; device names come from the network.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@router.get("/inventory/groups", response_model=GroupsPublic)
def list_groups(_: ReaderDep, session: SessionDep) -> GroupsPublic:
    """One row per (device type, vendor, model) with a count, medical devices first."""
    data = [_group_public(g) for g in inventory_groups(session)]
    return GroupsPublic(data=data, count=len(data))


def _group_public(g: Group) -> GroupPublic:
    return GroupPublic(
        label=g.label,
        category=g.category,
        device_type=g.device_type,
        vendor=g.vendor,
        model=g.model,
        count=g.count,
        software_versions=g.software_versions,
        vlans=g.vlans,
        zones=g.zones,
        first_seen=g.first_seen,
        last_seen=g.last_seen,
    )


def _asset_rows(session: SessionDep) -> list[AssetRowPublic]:
    return [
        AssetRowPublic(
            group=g.label,
            category=g.category,
            device_type=g.device_type,
            count=g.count,
            vendor=g.vendor,
            model=g.model,
            software_versions=g.software_versions,
            zones=g.zones,
            vlans=g.vlans,
            first_seen=g.first_seen,
            last_seen=g.last_seen,
        )
        for g in inventory_groups(session)
    ]


@router.get("/exports/assets.json", response_model=AssetRegisterPublic)
def export_json(_: ReaderDep, session: SessionDep, response: Response) -> AssetRegisterPublic:
    """The asset register as JSON (one entry per inventory group)."""
    rows = _asset_rows(session)
    response.headers["Content-Disposition"] = 'attachment; filename="medtap-assets.json"'
    return AssetRegisterPublic(generated_at=utcnow(), data=rows, count=len(rows))


@router.get(
    "/exports/assets.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "asset register, CSV"}},
)
def export_csv(_: ReaderDep, session: SessionDep) -> Response:
    """The asset register as CSV; list cells are joined with ``;``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in _asset_rows(session):
        cells = row.model_dump(mode="json")
        writer.writerow(
            [
                csv_cell(
                    ";".join(str(v) for v in cells[c]) if isinstance(cells[c], list) else cells[c]
                )
                for c in CSV_COLUMNS
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="medtap-assets.csv"'},
    )


def csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
