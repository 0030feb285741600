"""The inventory as NetBox bulk-import records (NetBox 4.2 or later), status ``staged``.

One JSON document with a list of records per NetBox object type, in the order they must be
imported (each refers to earlier ones by name): manufacturers, device roles, device types,
the site, locations (one per zone), devices, interfaces, MAC addresses, IP addresses. Each
list can be pasted into that object type's bulk import (JSON) or POSTed to its REST
endpoint (``/api/dcim/devices/`` ... with ids instead of names).

Field names and required fields are those of NetBox's import forms
(``netbox/dcim/forms/bulk_import.py``: ``DeviceImportForm`` needs ``role``,
``manufacturer``, ``device_type``, ``status``, ``site``; ``InterfaceImportForm`` ``device``,
``name``, ``type``; ``MACAddressImportForm`` ``mac_address``; ``ipam/forms/bulk_import.py``
``IPAddressImportForm`` ``address``, ``status``), JSON/YAML import for every object type
since NetBox 3.4 (netbox-community/netbox PR #10367); MAC addresses are their own objects
since NetBox 4.2. ``staged`` is a ``DeviceStatusChoices`` value. docs/nis2.md lists the
sources.

medtap does not know a device's physical interfaces: each device gets one interface
``eth0`` of type ``other`` holding the MAC and IPs it was seen with. A device named behind
a gateway gets no interface. Addresses are host routes (``/32``, ``/128``): the mask is not
on the wire.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from parsers.vocabulary import CLINICAL_IT, INFRASTRUCTURE, MEDICAL, device_type_name

STATUS = "staged"  # NetBox DeviceStatusChoices: "Staged" -- discovered, not yet in service
SITE_STATUS = "active"  # SiteStatusChoices / LocationStatusChoices
IP_STATUS = "active"  # IPAddressStatusChoices
INTERFACE = "eth0"
INTERFACE_TYPE = "other"  # InterfaceTypeChoices.TYPE_OTHER: the medium is not known
MAX_NAME = 64  # NetBox device names are at most 64 characters
MAX_SLUG = 100
ROLE_COLORS = {MEDICAL: "f44336", CLINICAL_IT: "2196f3", INFRASTRUCTURE: "9e9e9e"}
OTHER_COLOR = "607d8b"
IMPORT_ORDER = ("manufacturers", "device_roles", "device_types", "sites", "locations",
                "devices", "interfaces", "mac_addresses", "ip_addresses")
# What each import form requires (NetBox 4.2+, see the module docstring).
REQUIRED: dict[str, tuple[str, ...]] = {
    "manufacturers": ("name", "slug"),
    "device_roles": ("name", "slug", "color"),
    "device_types": ("manufacturer", "model", "slug"),
    "sites": ("name", "slug", "status"),
    "locations": ("site", "name", "slug", "status"),
    "devices": ("name", "role", "manufacturer", "device_type", "status", "site"),
    "interfaces": ("device", "name", "type"),
    "mac_addresses": ("mac_address", "device", "interface"),
    "ip_addresses": ("address", "status", "device", "interface"),
}
_SLUG_BAD = re.compile(r"[^a-z0-9_-]+")


def slugify(text: str) -> str:
    slug = _SLUG_BAD.sub("-", text.lower()).strip("-")[:MAX_SLUG].strip("-")
    return slug or "unknown"


def netbox_document(devices: list[dict[str, Any]], site: str, generator: str
                    ) -> dict[str, Any]:
    manufacturers: dict[str, dict[str, Any]] = {}
    roles: dict[str, dict[str, Any]] = {}
    types: dict[tuple[str, str], dict[str, Any]] = {}
    locations: dict[str, dict[str, Any]] = {}
    out_devices, interfaces, macs, addresses = [], [], [], []
    names: set[str] = set()
    for dev in devices:
        maker = str(dev.get("vendor") or "Unknown")
        kind = str(dev.get("device_type") or "unknown")
        model = str(dev.get("model") or f"{device_type_name(kind, 1)} (model unknown)")
        manufacturers.setdefault(maker, {"name": maker, "slug": slugify(maker)})
        roles.setdefault(kind, {
            "name": device_type_name(kind, 1), "slug": slugify(kind),
            "color": ROLE_COLORS.get(str(dev.get("category")), OTHER_COLOR),
            "description": f"medtap device type '{kind}'"})
        types.setdefault((maker, model), {
            "manufacturer": maker, "model": model, "slug": slugify(f"{maker}-{model}")})
        zone = str(dev.get("zone") or "").split(",")[0] or None
        if zone:
            locations.setdefault(zone, {"site": site, "name": zone, "slug": slugify(zone),
                                        "status": SITE_STATUS,
                                        "description": "segmentation zone (medtap policy)"})
        name = _unique(_name(dev, kind), names)
        record: dict[str, Any] = {
            "name": name,
            "role": roles[kind]["name"],
            "manufacturer": maker,
            "device_type": model,
            "status": STATUS,
            "site": site,
            "description": _description(dev, generator),
        }
        if zone:
            record["location"] = zone
        if dev.get("serial"):
            record["serial"] = str(dev["serial"])[:50]
        out_devices.append(record)
        ips = list(dev.get("ips") or [])
        if not ips and not dev.get("mac"):
            continue  # named behind a gateway: no interface of its own
        vlans = ", ".join(str(v) for v in dev.get("vlans") or [])
        interfaces.append({"device": name, "name": INTERFACE, "type": INTERFACE_TYPE,
                           "description": f"seen by medtap on VLAN {vlans}" if vlans
                           else "seen by medtap"})
        if dev.get("mac"):
            macs.append({"mac_address": str(dev["mac"]).upper(), "device": name,
                         "interface": INTERFACE, "is_primary": True})
        for i, ip in enumerate(ips):
            addresses.append({"address": _host_route(ip), "status": IP_STATUS, "device": name,
                              "interface": INTERFACE, "is_primary": i == 0})
    return {
        "format": "NetBox bulk import (JSON), NetBox 4.2 or later; import the lists in "
                  "import_order",
        "generator": generator,
        "import_order": list(IMPORT_ORDER),
        "manufacturers": sorted(manufacturers.values(), key=lambda r: r["name"]),
        "device_roles": sorted(roles.values(), key=lambda r: r["name"]),
        "device_types": sorted(types.values(), key=lambda r: (r["manufacturer"], r["model"])),
        "sites": [{"name": site, "slug": slugify(site), "status": SITE_STATUS}],
        "locations": sorted(locations.values(), key=lambda r: r["name"]),
        "devices": out_devices,
        "interfaces": interfaces,
        "mac_addresses": macs,
        "ip_addresses": addresses,
    }


def render_netbox(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


def _name(dev: dict[str, Any], kind: str) -> str:
    hostnames = dev.get("hostnames") or []
    if hostnames:
        return str(hostnames[0])[:MAX_NAME]
    where = (dev.get("ips") or [None])[0] or dev.get("mac") or str(dev["id"]).split(":", 1)[-1]
    return f"{kind}-{where}"[:MAX_NAME]


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        suffix = f"-{n}"
        candidate, n = name[: MAX_NAME - len(suffix)] + suffix, n + 1
    taken.add(candidate)
    return candidate


def _host_route(ip: str) -> str:
    return f"{ip}/{ipaddress.ip_address(ip).max_prefixlen}"


def _description(dev: dict[str, Any], generator: str) -> str:
    seen = f"{dev.get('first_seen') or '?'} .. {dev.get('last_seen') or '?'}"
    return f"discovered passively by {generator} (medtap id {dev['id']}), seen {seen}"[:200]
