"""Inventory groups: devices counted per (device type, vendor, model), medical first.

"35 patient monitors (Philips IntelliVue MX800)" is one asset-register entry (NIS2/BSI
granularity). Four grouped queries whatever the inventory's size.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from collector.models import Device, DeviceVlan
from parsers.vocabulary import device_type_name

CATEGORY_ORDER = {"medical": 0, "clinical-it": 1, "infrastructure": 2, "other": 3}
GroupKey = tuple[str, str | None, str | None]


@dataclass
class Group:
    device_type: str
    vendor: str | None
    model: str | None
    category: str | None
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    software_versions: list[str] = field(default_factory=list)
    vlans: list[int] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return group_label(self.device_type, self.vendor, self.model, self.count)


def group_label(device_type: str, vendor: str | None, model: str | None, count: int) -> str:
    """The same words as the analyze report's groups: "2 infusion pumps (B. Braun ...)"."""
    make = " ".join(x for x in (vendor, model) if x)
    return f"{count} {device_type_name(device_type, count)}" + (f" ({make})" if make else "")


def inventory_groups(session: Session) -> list[Group]:
    cols = (Device.device_type, Device.vendor, Device.model)
    groups: dict[GroupKey, Group] = {}
    for dtype, vendor, model, count, category, first, last in session.execute(
        select(
            *cols,
            func.count(),
            func.min(Device.category),
            func.min(Device.first_seen),
            func.max(Device.last_seen),
        ).group_by(*cols)
    ).tuples():
        groups[(dtype, vendor, model)] = Group(dtype, vendor, model, category, count, first, last)
    extras: dict[str, defaultdict[GroupKey, set[object]]] = {
        "software_versions": defaultdict(set),
        "vlans": defaultdict(set),
        "zones": defaultdict(set),
    }
    queries = {
        "software_versions": select(*cols, Device.software_version).where(
            Device.software_version.is_not(None)
        ),
        "vlans": select(*cols, DeviceVlan.vlan).join(DeviceVlan, DeviceVlan.device_id == Device.id),
        "zones": select(*cols, Device.zone).where(Device.zone.is_not(None)),
    }
    for name, query in queries.items():
        for dtype, vendor, model, value in session.execute(query.distinct()).tuples():
            extras[name][(dtype, vendor, model)].add(value)
    for key, group in groups.items():
        group.software_versions = sorted(str(v) for v in extras["software_versions"][key])
        group.vlans = sorted(int(str(v)) for v in extras["vlans"][key])
        group.zones = sorted(str(v) for v in extras["zones"][key])
    return sorted(groups.values(), key=_order)


def _order(g: Group) -> tuple[int, int, str, str, str]:
    rank = CATEGORY_ORDER.get(g.category or "", len(CATEGORY_ORDER))
    return (rank, -g.count, g.device_type, g.vendor or "", g.model or "")
