"""The asset register: one row per inventory group, as the NIS2 guidance groups assets.

"35 patient monitors (Philips IntelliVue MX800)" is one entry: devices grouped by
(device type, vendor, model) -- the grouping of ``agent.inventory.build_groups``, built here
from device rows so the collector's devices give the same register. Each row: type,
category, vendor, model, count, software versions seen, zones, VLANs, criticality, first and
last seen, and the device identities (id, MAC, IPs, host names, serial).

Criticality: medical devices and clinical IT systems are ``high`` (patient safety and
clinical data: issue 9), network infrastructure ``medium`` (it carries both), everything
else and unidentified devices ``low`` until classified.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from typing import Any

from agent.inventory import group_label
from parsers.vocabulary import CLINICAL_IT, INFRASTRUCTURE, MEDICAL

CRITICALITY = {MEDICAL: "high", CLINICAL_IT: "high", INFRASTRUCTURE: "medium"}
CATEGORY_ORDER = {MEDICAL: 0, CLINICAL_IT: 1, INFRASTRUCTURE: 2}
CSV_COLUMNS = (
    "label", "device_type", "category", "criticality", "vendor", "model", "count",
    "software_versions", "zones", "vlans", "first_seen", "last_seen", "device_ids", "macs",
    "ips", "hostnames", "serials",
)


def criticality(category: str | None) -> str:
    return CRITICALITY.get(category or "", "low")


def register_rows(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str | None, str | None], list[dict[str, Any]]] = defaultdict(list)
    for dev in devices:
        key = (str(dev.get("device_type") or "unknown"), dev.get("vendor"), dev.get("model"))
        groups[key].append(dev)
    rows: list[dict[str, Any]] = []
    for (device_type, vendor, model), members in groups.items():
        category = members[0].get("category")
        firsts = [d["first_seen"] for d in members if d.get("first_seen")]
        lasts = [d["last_seen"] for d in members if d.get("last_seen")]
        rows.append({
            "label": group_label(device_type, vendor, model, len(members)),
            "device_type": device_type,
            "category": category,
            "criticality": criticality(category),
            "vendor": vendor,
            "model": model,
            "count": len(members),
            "software_versions": sorted({d["software_version"] for d in members
                                         if d.get("software_version")}),
            "zones": sorted({z for d in members for z in str(d.get("zone") or "").split(",")
                             if z}),
            "vlans": sorted({v for d in members for v in d.get("vlans") or []}),
            "first_seen": min(firsts) if firsts else None,
            "last_seen": max(lasts) if lasts else None,
            "devices": [
                {"id": d["id"], "mac": d.get("mac"), "ips": list(d.get("ips") or []),
                 "hostnames": list(d.get("hostnames") or []), "serial": d.get("serial"),
                 "software_version": d.get("software_version"),
                 "reached_via": list(d.get("reached_via") or [])}
                for d in sorted(members, key=lambda d: str(d["id"]))
            ],
        })
    rows.sort(key=lambda r: (CATEGORY_ORDER.get(r["category"], 3), -r["count"],
                             r["device_type"], r["vendor"] or "", r["model"] or ""))
    return rows


def render_register_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"assets": rows, "count": len(rows)}, indent=2) + "\n"


def render_register_csv(rows: list[dict[str, Any]]) -> str:
    """One line per group; lists joined with ';' (spreadsheet friendly)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        devs = row["devices"]
        cells = {
            **{k: row[k] for k in CSV_COLUMNS if k in row},
            "software_versions": ";".join(row["software_versions"]),
            "zones": ";".join(row["zones"]),
            "vlans": ";".join(str(v) for v in row["vlans"]),
            "device_ids": ";".join(d["id"] for d in devs),
            "macs": ";".join(d["mac"] for d in devs if d["mac"]),
            "ips": ";".join(ip for d in devs for ip in d["ips"]),
            "hostnames": ";".join(h for d in devs for h in d["hostnames"]),
            "serials": ";".join(d["serial"] for d in devs if d["serial"]),
        }
        writer.writerow({k: csv_cell(v) if isinstance(v, str) else v for k, v in cells.items()})
    return out.getvalue()


def csv_cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection): wire text
    (host names, vendor strings) starting with = + - @ gets a leading apostrophe."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
