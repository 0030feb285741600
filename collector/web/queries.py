"""Read-only SQL for the web pages, over the collector's tables (collector/models.py).

The inventory must stay fast at tens of thousands of devices, so grouping, filtering,
sorting and paging happen in SQL and a page costs a fixed number of queries whatever its
size: one for the page of groups (or devices), one for the total, and one per list column
(software versions, zones, VLANs) restricted to the page's groups. Nothing here writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, exists, func, or_, select
from sqlalchemy.orm import Session

from collector.inventory import CATEGORY_ORDER, Group
from collector.models import (
    Acknowledgement,
    Device,
    DeviceHostname,
    DeviceIp,
    DeviceSensor,
    DeviceVlan,
    Flow,
    Sensor,
    Violation,
)
from parsers.vocabulary import DEVICE_TYPE_NAMES

GroupKey = tuple[str, str | None, str | None]
UNCLASSIFIED = "unclassified"  # the category filter's word for "no category"
MAX_LIST = 8  # values shown per list cell of a group row
MAX_PEERS = 200
MAX_DEVICE_VIOLATIONS = 200
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def category_rank(column: Any) -> ColumnElement[int]:
    return case(CATEGORY_ORDER, value=column, else_=len(CATEGORY_ORDER))


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _types_named(text: str) -> list[str]:
    """Device types whose display name contains ``text`` ("monitor" -> patient-monitor)."""
    word = text.lower()
    names = DEVICE_TYPE_NAMES.items()
    return sorted(t for t, words in names if any(word in w.lower() for w in words))


@dataclass(frozen=True)
class InventoryFilter:
    """The inventory's filters; they combine with AND and apply to devices."""

    sensor: str | None = None
    zone: str | None = None
    vlan: int | None = None
    category: str | None = None
    days: int | None = None  # seen in the last N days (collector clock)
    q: str | None = None

    def conditions(self, now: datetime) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if self.sensor:
            # Uncorrelated IN subqueries: they stay valid inside queries that join these tables.
            conds.append(
                Device.id.in_(
                    select(DeviceSensor.device_id)
                    .join(Sensor, Sensor.id == DeviceSensor.sensor_id)
                    .where(Sensor.name == self.sensor)
                )
            )
        if self.zone:
            conds.append(Device.zone == self.zone)
        if self.vlan is not None:
            conds.append(
                Device.id.in_(select(DeviceVlan.device_id).where(DeviceVlan.vlan == self.vlan))
            )
        if self.category == UNCLASSIFIED:
            conds.append(Device.category.is_(None))
        elif self.category:
            conds.append(Device.category == self.category)
        if self.days is not None:
            conds.append(Device.last_seen >= now - timedelta(days=self.days))
        if self.q:
            pattern = like_pattern(self.q)
            text_match: list[ColumnElement[bool]] = [
                col.ilike(pattern, escape="\\")
                for col in (
                    Device.device_type,
                    Device.vendor,
                    Device.model,
                    Device.software_version,
                    Device.serial,
                    Device.key,
                    Device.zone,
                    Device.oui_vendor,
                )
            ]
            text_match.append(
                exists()
                .where(DeviceIp.device_id == Device.id, DeviceIp.ip.ilike(pattern, escape="\\"))
                .correlate(Device)
            )
            text_match.append(
                exists()
                .where(
                    DeviceHostname.device_id == Device.id,
                    DeviceHostname.name.ilike(pattern, escape="\\"),
                )
                .correlate(Device)
            )
            named = _types_named(self.q)
            if named:
                text_match.append(Device.device_type.in_(named))
            conds.append(or_(*text_match))
        return conds


# --- grouped inventory ---------------------------------------------------------------------


@dataclass
class GroupRow(Group):
    """An inventory group as the web lists it: the collector's ``Group`` plus its key."""

    @property
    def key(self) -> GroupKey:
        return (self.device_type, self.vendor, self.model)

    @property
    def make(self) -> str:
        return " ".join(x for x in (self.vendor, self.model) if x)


GROUP_SORTS = ("default", "count", "type", "vendor", "model", "last_seen")


def group_page(
    session: Session,
    flt: InventoryFilter,
    *,
    now: datetime,
    sort: str = "default",
    descending: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[GroupRow], int]:
    """One page of inventory groups and the number of groups matching the filters."""
    cols = (Device.device_type, Device.vendor, Device.model)
    conds = flt.conditions(now)
    n = func.count().label("n")
    rank = func.min(category_rank(Device.category)).label("rank")
    last = func.max(Device.last_seen).label("last")
    query = (
        select(*cols, n, func.min(Device.category), func.min(Device.first_seen), last, rank)
        .where(*conds)
        .group_by(*cols)
    )
    vendor, model = func.coalesce(Device.vendor, ""), func.coalesce(Device.model, "")
    tiebreak = [Device.device_type, vendor, model]
    orders: dict[str, list[Any]] = {
        "default": [rank, n.desc()],
        "count": [n.desc() if descending else n],
        "type": [Device.device_type.desc() if descending else Device.device_type],
        "vendor": [vendor.desc() if descending else vendor],
        "model": [model.desc() if descending else model],
        "last_seen": [last.desc() if descending else last],
    }
    primary = orders.get(sort, orders["default"])
    # The number of groups rides along as a window over the grouped rows: one grouping
    # pass instead of two (SQLite >= 3.25, PostgreSQL).
    total_col = func.count().over().label("total")
    rows: list[GroupRow] = []
    total = 0
    for dtype, vend, mod, count, category, first, last_seen, _rank, groups in session.execute(
        query.add_columns(total_col).order_by(*primary, *tiebreak).offset(offset).limit(limit)
    ).tuples():
        rows.append(GroupRow(dtype, vend, mod, category, count, first, last_seen))
        total = groups
    if not rows and offset:  # past the last page: the window had no row to ride on
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    _fill_group_lists(session, rows, conds)
    return rows, total


def _fill_group_lists(
    session: Session, rows: list[GroupRow], conds: list[ColumnElement[bool]]
) -> None:
    if not rows:
        return
    # Restricting by the page's device types (indexed) and keeping the page's exact keys in
    # Python is several times faster than an OR of one (type, vendor, model) test per group.
    cols = (Device.device_type, Device.vendor, Device.model)
    page = Device.device_type.in_(sorted({r.device_type for r in rows}))
    wanted = {r.key for r in rows}
    lists: dict[str, defaultdict[GroupKey, set[Any]]] = {
        "software_versions": defaultdict(set),
        "zones": defaultdict(set),
        "vlans": defaultdict(set),
    }
    queries = {
        "software_versions": select(*cols, Device.software_version).where(
            Device.software_version.is_not(None)
        ),
        "zones": select(*cols, Device.zone).where(Device.zone.is_not(None)),
        "vlans": select(*cols, DeviceVlan.vlan).join(DeviceVlan, DeviceVlan.device_id == Device.id),
    }
    for name, query in queries.items():
        for dtype, vend, mod, value in session.execute(
            query.where(page, *conds).distinct()
        ).tuples():
            if (dtype, vend, mod) in wanted:
                lists[name][(dtype, vend, mod)].add(value)
    for r in rows:
        r.software_versions = sorted(str(v) for v in lists["software_versions"][r.key])
        r.zones = sorted(str(v) for v in lists["zones"][r.key])
        r.vlans = sorted(int(v) for v in lists["vlans"][r.key])


# --- devices ---------------------------------------------------------------------------------


DEVICE_SORTS = ("default", "type", "vendor", "model", "version", "key", "last_seen", "confidence")


def device_page(
    session: Session,
    flt: InventoryFilter,
    *,
    now: datetime,
    group: GroupKey | None = None,
    sort: str = "default",
    descending: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Device], int]:
    """One page of devices (of one group, when given) and how many match."""
    query = select(Device).where(*flt.conditions(now))
    if group is not None:
        dtype, vendor, model = group
        query = query.where(
            Device.device_type == dtype,
            Device.vendor.is_not_distinct_from(vendor),
            Device.model.is_not_distinct_from(model),
        )
    columns: dict[str, Any] = {
        "type": Device.device_type,
        "vendor": func.coalesce(Device.vendor, ""),
        "model": func.coalesce(Device.model, ""),
        "version": func.coalesce(Device.software_version, ""),
        "key": Device.key,
        "last_seen": Device.last_seen,
        "confidence": Device.confidence,
    }
    if sort in columns:
        col = columns[sort]
        order: list[Any] = [col.desc() if descending else col]
    else:
        order = [category_rank(Device.category), Device.device_type, Device.vendor, Device.model]
    # A separate count: a window count here would make the database sort every matching
    # row in full instead of keeping only the page's top N (measured 7x slower at 10k).
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    paged = query.order_by(*order, Device.key, Device.id).offset(offset).limit(limit)
    return list(session.scalars(paged)), total


@dataclass(frozen=True)
class Options:
    sensors: list[str]
    zones: list[str]
    vlans: list[int]
    categories: list[str]


def filter_options(session: Session) -> Options:
    """The values the filter drop-downs offer (distinct values, index scans)."""
    return Options(
        sensors=list(session.scalars(select(Sensor.name).order_by(Sensor.name))),
        zones=list(
            session.scalars(
                select(Device.zone).where(Device.zone.is_not(None)).distinct().order_by(Device.zone)
            )
        ),
        vlans=list(session.scalars(select(DeviceVlan.vlan).distinct().order_by(DeviceVlan.vlan))),
        categories=sorted(
            (c for c in session.scalars(select(Device.category).distinct()) if c),
            key=lambda c: (CATEGORY_ORDER.get(c, 9), c),
        ),
    )


# --- one device ------------------------------------------------------------------------------


@dataclass
class Peer:
    """A system a device talks to, per service and direction."""

    direction: str  # "to" (the device is the client) | "from" (the device serves it)
    ip: str
    transport: str
    port: int | None
    app: str | None
    conversations: int
    connections: int
    bytes: int
    last_seen: datetime | None
    device_id: int | None = None
    device_label: str | None = None


def device_peers(session: Session, ips: Sequence[str]) -> list[Peer]:
    if not ips:
        return []
    mine = set(ips)
    keys = (Flow.client, Flow.server, Flow.transport, Flow.server_port, Flow.app)
    conns = func.sum(Flow.connections).label("conns")
    query = (
        select(
            *keys,
            func.count(),
            conns,
            func.sum(Flow.bytes_to_server + Flow.bytes_to_client),
            func.max(Flow.last_seen),
        )
        .where(or_(Flow.client.in_(ips), Flow.server.in_(ips)))
        .group_by(*keys)
        .order_by(conns.desc(), *keys)
        .limit(MAX_PEERS)
    )
    peers: list[Peer] = []
    for client, server, transport, port, app, n, c, b, last in session.execute(query).tuples():
        outgoing = client in mine
        peers.append(
            Peer(
                direction="to" if outgoing else "from",
                ip=server if outgoing else client,
                transport=transport,
                port=port,
                app=app,
                conversations=n,
                connections=int(c or 0),
                bytes=int(b or 0),
                last_seen=last,
            )
        )
    found = devices_by_ip(session, {p.ip for p in peers})
    for p in peers:
        hit = found.get(p.ip)
        if hit is not None:
            p.device_id, p.device_label = hit
    return peers


def devices_by_ip(session: Session, ips: set[str]) -> dict[str, tuple[int, str]]:
    """ip -> (device id, short label) for the devices owning these addresses (one query;
    an address on several VLANs maps to the lowest device id)."""
    if not ips:
        return {}
    out: dict[str, tuple[int, str]] = {}
    rows = session.execute(
        select(DeviceIp.ip, Device.id, Device.device_type, Device.vendor, Device.model)
        .join(Device, Device.id == DeviceIp.device_id)
        .where(DeviceIp.ip.in_(sorted(ips)))
        .order_by(DeviceIp.ip, Device.id)
    ).tuples()
    for ip, device_id, dtype, vendor, model in rows:
        if ip not in out:
            make = " ".join(x for x in (vendor, model) if x)
            name = dtype.replace("-", " ") if dtype != "unknown" else "unidentified"
            out[ip] = (device_id, f"{name} ({make})" if make else name)
    return out


def device_violations(session: Session, ips: Sequence[str]) -> list[Violation]:
    if not ips:
        return []
    return list(
        session.scalars(
            select(Violation)
            .where(or_(Violation.client_ip.in_(ips), Violation.server_ip.in_(ips)))
            .order_by(Violation.last_seen.desc(), Violation.id)
            .limit(MAX_DEVICE_VIOLATIONS)
        )
    )


def device_sensors(session: Session, device_id: int) -> list[tuple[str, datetime, datetime]]:
    return [
        (name, first, last)
        for name, first, last in session.execute(
            select(Sensor.name, DeviceSensor.first_reported, DeviceSensor.last_reported)
            .join(Sensor, Sensor.id == DeviceSensor.sensor_id)
            .where(DeviceSensor.device_id == device_id)
            .order_by(Sensor.name)
        ).tuples()
    ]


# --- segmentation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneTraffic:
    client_zone: str
    server_zone: str
    conversations: int
    connections: int
    bytes: int


@dataclass(frozen=True)
class ZoneViolations:
    client_zone: str
    server_zone: str
    violations: int
    open: int
    flows: int
    worst: str  # the highest severity among them


def zone_traffic(session: Session) -> list[ZoneTraffic]:
    keys = (Flow.client_zone, Flow.server_zone)
    rows = session.execute(
        select(
            *keys,
            func.count(),
            func.sum(Flow.connections),
            func.sum(Flow.bytes_to_server + Flow.bytes_to_client),
        )
        .where(Flow.client_zone.is_not(None), Flow.server_zone.is_not(None))
        .group_by(*keys)
        .order_by(*keys)
    ).tuples()
    return [
        ZoneTraffic(cz, sz, n, int(c or 0), int(b or 0))
        for cz, sz, n, c, b in rows
        if cz is not None and sz is not None
    ]


def zone_violations(session: Session) -> list[ZoneViolations]:
    keys = (Violation.client_zone, Violation.server_zone)
    severity = func.min(case(SEVERITY_ORDER, value=Violation.severity, else_=9))
    open_ = func.sum(case((Violation.acknowledged_at.is_(None), 1), else_=0))
    rows = session.execute(
        select(*keys, func.count(), open_, func.sum(Violation.flows), severity)
        .group_by(*keys)
        .order_by(*keys)
    ).tuples()
    names = {v: k for k, v in SEVERITY_ORDER.items()}
    return [
        ZoneViolations(cz, sz, n, int(o or 0), int(f or 0), names.get(int(s), "low"))
        for cz, sz, n, o, f, s in rows
    ]


def zone_sizes(session: Session) -> dict[str, int]:
    """Devices per zone. A router in several zones carries them comma-joined
    ("clinical,medical"); it counts in each of them."""
    rows = session.execute(
        select(Device.zone, func.count()).where(Device.zone.is_not(None)).group_by(Device.zone)
    ).tuples()
    sizes: dict[str, int] = defaultdict(int)
    for zone, n in rows:
        for name in (zone or "").split(","):
            if name.strip():
                sizes[name.strip()] += n
    return dict(sizes)


def acknowledgements(session: Session, ids: Sequence[int]) -> dict[int, list[Acknowledgement]]:
    out: dict[int, list[Acknowledgement]] = defaultdict(list)
    if ids:
        for ack in session.scalars(
            select(Acknowledgement)
            .where(Acknowledgement.violation_id.in_(ids))
            .order_by(Acknowledgement.at, Acknowledgement.id)
        ):
            out[ack.violation_id].append(ack)
    return out
