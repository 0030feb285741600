"""The analysis report: one JSON document (the machine contract), and CSV / table views of it.

Top-level keys (docs/report-format.md): ``devices``, ``groups``, ``flows``,
``violations``, ``stats``, plus ``inputs`` (per file: ok or the error) and
``medtap_version``. Unknown fields are null; ``device_type`` is "unknown"
until classified. Nothing here reads payload: it renders what the pipeline
already reduced to device fields and counters.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from agent.conversations import Conversation
from agent.decode import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from agent.endpoints import ip_text
from agent.pipeline import Results

if TYPE_CHECKING:
    from agent.policy.tracker import Violation
    from collector.policy import Policy

TRANSPORTS = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp", PROTO_ICMPV6: "icmpv6"}
CSV_COLUMNS = (
    "id",
    "category",
    "device_type",
    "vendor",
    "model",
    "software_version",
    "serial",
    "mac",
    "ips",
    "vlans",
    "hostnames",
    "confidence",
    "first_seen",
    "last_seen",
)


@dataclass
class InputResult:
    path: str
    status: str  # "ok", "failed"
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    packets: int = 0


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def version() -> str:
    try:
        return metadata.version("medtap")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def build_report(
    results: Results,
    inputs: list[InputResult],
    policy: Policy | None = None,
    on_new_violation: Callable[[Violation], None] | None = None,
) -> dict[str, Any]:
    """The report; with ``policy``, also violations and zones (``agent.policy.apply``)."""
    devices = []
    for dev in results.devices:
        row = dev.as_dict()
        row["first_seen"], row["last_seen"] = iso(dev.first_seen), iso(dev.last_seen)
        devices.append(row)
    report: dict[str, Any] = {
        "medtap_version": version(),
        "inputs": [vars(i) for i in inputs],
        "devices": devices,
        "groups": results.groups,
        "flows": flow_summary(results.conversations),
        "violations": [],
        "hearsay": [
            {"host": e.host, "vlan": e.vlan, "kind": e.kind, "value": e.value,
             "source": e.source, "count": e.count}
            for e in results.hearsay
        ],
        "stats": results.stats,
    }
    if policy is not None:
        from agent.policy.apply import apply_policy

        apply_policy(report, policy, results.devices, results.conversations, on_new_violation)
    return report


def flow_summary(conversations: list[Conversation]) -> dict[str, Any]:
    by_transport: dict[str, int] = {}
    by_app: dict[str, int] = {}
    items = []
    for c in sorted(conversations, key=lambda c: (c.first_seen, c.server_port)):
        transport = TRANSPORTS.get(c.proto, str(c.proto))
        by_transport[transport] = by_transport.get(transport, 0) + c.connections
        if c.app:
            by_app[c.app] = by_app.get(c.app, 0) + c.connections
        ported = c.proto in (PROTO_TCP, PROTO_UDP)
        items.append(
            {
                "transport": transport,
                "vlan": c.vlan,
                "inner_vlan": c.inner_vlan,
                "client": ip_text(c.client_ip),
                "client_port": c.client_port if ported and c.connections == 1 else None,
                "server": ip_text(c.server_ip),
                "server_port": c.server_port if ported else None,
                "app": c.app,
                "connections": c.connections,
                "packets_to_server": c.packets_c2s,
                "packets_to_client": c.packets_s2c,
                "bytes_to_server": c.bytes_c2s,
                "bytes_to_client": c.bytes_s2c,
                "first_seen": iso(c.first_seen),
                "last_seen": iso(c.last_seen),
            }
        )
    return {
        "conversations": len(items),
        "connections": sum(by_transport.values()),
        "by_transport": by_transport,
        "by_app": by_app,
        "items": items,
    }


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def write_json(report: dict[str, Any], out: IO[str]) -> None:
    """The same text as ``render_json``, written in pieces: the whole string of a 1M-packet
    report and its parts held at once are a third of the analysis' peak memory."""
    json.dump(report, out, indent=2, sort_keys=False)
    out.write("\n")


def render_csv(report: dict[str, Any]) -> str:
    """The device list, one row per device, lists joined with ';' (asset-register friendly)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for dev in report["devices"]:
        row = {k: dev.get(k) for k in CSV_COLUMNS}
        for key in ("ips", "vlans", "hostnames"):
            row[key] = ";".join(str(x) for x in dev.get(key) or [])
        writer.writerow(row)
    return out.getvalue()


def render_violations(report: dict[str, Any], console: Console) -> None:
    violations = report["violations"]
    if not violations:
        console.print(f"No segmentation violations ({report['stats']['policy']['source']}).")
        return
    table = Table(title="Violations", title_justify="left")
    for col in ("severity", "rule", "client → server", "service", "zones", "flows"):
        table.add_column(col, overflow="fold")
    for v in violations:
        c, s = v["client"], v["server"]
        table.add_row(
            v["severity"],
            v["rule"],
            f"{_who(c)} → {_who(s)}",
            v["service"] + (f" ({v['app']})" if v["app"] else ""),
            f"{c['zone']} → {s['zone']}",
            str(v["flows"]),
        )
    console.print(table)


def _who(endpoint: dict[str, Any]) -> str:
    kind = endpoint["device_type"]
    return endpoint["ip"] if kind == "unknown" else f"{endpoint['ip']} ({kind})"


def render_table(report: dict[str, Any], console: Console) -> None:
    groups = Table(title="Inventory", title_justify="left")
    for col in ("group", "category", "software versions", "VLANs"):
        groups.add_column(col, overflow="fold")
    for g in report["groups"]:
        groups.add_row(
            g["label"],
            g["category"] or "-",
            ", ".join(g["software_versions"]) or "-",
            ", ".join(str(v) for v in g["vlans"]) or "-",
        )
    console.print(groups)

    devices = Table(title="Devices", title_justify="left")
    for col in ("type", "vendor / model / version", "IPs", "MAC or id", "VLANs", "evidence"):
        devices.add_column(col, overflow="fold")
    for d in report["devices"]:
        make = " ".join(x for x in (d["vendor"], d["model"], d["software_version"]) if x)
        ident = d["mac"] or d["id"]
        if d["reached_via"]:
            ident += " via " + ", ".join(d["reached_via"])
        devices.add_row(
            d["device_type"],
            make or "-",
            ", ".join(d["ips"]) or "-",
            ident,
            ", ".join(str(v) for v in d["vlans"]) or "-",
            str(len(d["evidence"])),
        )
    console.print(devices)
    if "policy" in report["stats"]:
        render_violations(report, console)

    s, f = report["stats"], report["flows"]
    malformed = sum(s["malformed"].values())
    console.print(
        f"{s['packets']:,} packets, {s['bytes']:,} bytes, {f['connections']:,} connections in "
        f"{f['conversations']:,} conversations, {len(report['devices']):,} devices, "
        f"{malformed:,} malformed frames, {s['elapsed_seconds']} s"
    )
    for item in report["inputs"]:
        if item["status"] != "ok":
            console.print(f"[red]failed[/red] {item['path']}: {item['error']}")
        for warning in item["warnings"]:
            console.print(f"[yellow]warning[/yellow] {item['path']}: {warning}")
