"""The NIS2 document as plain tables: what the Markdown and HTML renderers both print.

Cells are plain text (never markup); each renderer escapes them for its own format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def _n(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _yes(value: bool | None, yes: str = "yes", no: str = "NO") -> str:
    return "unknown" if value is None else yes if value else no


def _who(end: dict[str, Any]) -> str:
    what = " ".join(x for x in (end.get("vendor"), end.get("model")) if x)
    kind = end.get("device_type") or "unknown"
    label = kind if kind != "unknown" else ""
    if what:
        label = f"{label} {what}".strip()
    return f"{end['ip']} ({label})" if label else end["ip"]


def _day(value: Any) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


def encryption_tables(doc: dict[str, Any]) -> list[Table]:
    enc = doc["encryption"]
    totals = Table(
        "Totals per protocol",
        ["protocol", "connections", "cleartext", "TLS", "outdated TLS", "TLS versions",
         "cleartext share", "cleartext bytes", "HL7 messages in cleartext"],
        [[p, _n(t["connections"]), _n(t["cleartext_connections"]), _n(t["tls_connections"]),
          _n(t["outdated_tls_connections"]),
          ", ".join(f"{v}: {n}" for v, n in t["tls_versions"].items()) or "-",
          f"{t['cleartext_share']:g}%" if t["cleartext_share"] is not None else "-",
          f"{t['cleartext_bytes_share']:g}%" if t["cleartext_bytes_share"] is not None else "-",
          "-" if t["cleartext_messages"] is None
          else f"{t['cleartext_messages']} + {t['cleartext_acks']} ACKs"]
         for p, t in enc["protocols"].items()],
        note="Shares are of connections (a DICOM association is one connection): messages "
             "inside TLS cannot be read. HL7 messages are counted where the parser read them "
             "(cleartext only)." if enc["messages_counted"] else
             "Shares are of connections (a DICOM association is one connection). Messages "
             "were not counted for this source.",
    )
    pairs = Table(
        "Clinical flows per device pair",
        ["protocol", "client", "server", "service", "transport security", "how known",
         "connections", "bytes", "HL7 messages", "first seen", "last seen"],
        [[r["protocol"], _who(r["client"]), _who(r["server"]), r["service"],
          r["security"] + (" (OUTDATED)" if r["outdated_tls"] else ""),
          r["inferred"] or "detected from the payload",
          _n(r["connections"]), _n(r["bytes"]),
          "-" if r["messages"] is None else f"{r['messages']} + {r['acks']} ACKs",
          _day(r["first_seen"]), _day(r["last_seen"])]
         for r in enc["pairs"]],
    )
    out = [totals, pairs]
    if enc["undetermined"]:
        out.append(Table("Connections on clinical ports without a recognised protocol",
                         ["client", "server", "service", "connections"],
                         [[u["client"], u["server"], u["service"], _n(u["connections"])]
                          for u in enc["undetermined"]]))
    if enc["outdated_tls_other"]:
        out.append(Table("Other flows over outdated TLS",
                         ["client", "server", "service", "TLS", "connections"],
                         [[u["client"], u["server"], u["service"], u["tls_version"],
                           _n(u["connections"])] for u in enc["outdated_tls_other"]]))
    return out


def controls_table(doc: dict[str, Any]) -> Table:
    rows = []
    for c in doc["controls"]:
        name = " ".join(x for x in (c["device_type"], c["vendor"], c["model"]) if x)
        where = ", ".join(c["ips"]) or (f"behind {c['behind_gateway']}" if c["behind_gateway"]
                                        else c["device_id"])
        software = c["software_version"] or "-"
        if c["operating_systems"]:
            software += f" / OS: {', '.join(c['operating_systems'][:2])}"
        rows.append([
            f"{name} ({where})",
            f"{c['zone'] or '-'} / VLAN {', '.join(str(v) for v in c['vlans']) or '-'}",
            _n(c["distinct_peers"]),
            ", ".join(c["services"]) or "-",
            _yes(c["restricted_communication"], "holds", "BROKEN"),
            _n(len(c["violations"])),
            _yes(c["isolated_from_guest"]),
            _yes(c["isolated_from_external"]),
            software,
            "; ".join(f"{f['product']} (support ended {f['end_of_support']}; {f['evidence']})"
                      for f in c["outdated_findings"]) or "none seen",
        ])
    return Table("Summary per device",
                 ["device", "zone / VLAN", "peers", "services used", "restricted communication",
                  "violations", "isolated from guest", "isolated from external",
                  "software", "outdated software"], rows,
                 note="'in' = opened to the device, 'out' = opened by it. Restricted "
                      "communication holds when a policy was given and none of the device's "
                      "flows broke it.")


def peers_table(control: dict[str, Any]) -> Table:
    name = " ".join(x for x in (control["device_type"], control["vendor"], control["model"]) if x)
    return Table(
        f"{name} {', '.join(control['ips']) or control['device_id']}: peers",
        ["direction", "service", "peer", "peer type", "peer zone", "connections", "policy"],
        [[r["direction"], r["service"], r["peer"], r["peer_device_type"], r["peer_zone"] or "-",
          _n(r["connections"]), f"violation ({r['violation']})" if r["violation"] else
          ("allowed" if control["restricted_communication"] is not None else "-")]
         for r in control["peers"]])


def register_table(doc: dict[str, Any]) -> Table:
    return Table(
        "Asset register (one entry per group)",
        ["asset", "type", "category", "criticality", "vendor", "model", "count",
         "software versions", "zones", "VLANs", "first seen", "last seen", "devices"],
        [[r["label"], r["device_type"], r["category"] or "-", r["criticality"],
          r["vendor"] or "-", r["model"] or "-", _n(r["count"]),
          ", ".join(r["software_versions"]) or "-", ", ".join(r["zones"]) or "-",
          ", ".join(str(v) for v in r["vlans"]) or "-", _day(r["first_seen"]),
          _day(r["last_seen"]),
          "; ".join(_identity(d) for d in r["devices"])]
         for r in doc["register"]])


def _identity(d: dict[str, Any]) -> str:
    parts = [d["mac"] or d["id"], *d["ips"]]
    if d["hostnames"]:
        parts.append(d["hostnames"][0])
    if d["serial"]:
        parts.append(f"SN {d['serial']}")
    if d["reached_via"]:
        parts.append("via " + ", ".join(d["reached_via"]))
    return " ".join(parts)


def zone_table(doc: dict[str, Any]) -> Table:
    return Table(
        "Traffic between zones",
        ["from", "to", "connections", "clinical in cleartext", "in violation", "services"],
        [[e["from"], e["to"], _n(e["connections"]), _n(e["cleartext_clinical"]),
          _n(e["violations"]),
          ", ".join(e["services"]) + (f" (+{e['more_services']})" if e["more_services"] else "")]
         for e in doc["zone_flows"]])


def violations_table(doc: dict[str, Any]) -> Table:
    return Table(
        "Segmentation violations",
        ["severity", "rule", "client", "server", "service", "zones", "flows", "reason"],
        [[v["severity"], v["rule"], v["client"], v["server"], v["service"],
          f"{v['client_zone'] or '-'} -> {v['server_zone'] or '-'}", _n(v["flows"]),
          v["reason"]] for v in doc["violations"]])
