"""Encryption in transit of clinical flows: cleartext or TLS (which version), per device pair.

A clinical flow is DICOM, HL7 or FHIR. Cleartext ones are what app detection found by
payload (``dicom``, ``hl7``; ``http`` to a server whose own banner names FHIR). A TLS flow
hides its protocol, so it is *inferred*, and the row says from what:

1. the server port: 2762 (``dicom-tls``), 104 / 11112 (a TLS handshake on a DICOM port),
   2575 (``hl7``) -- the named services of ``collector.policy.NAMED_SERVICES``, with their
   sources;
2. the peers' roles seen elsewhere: a server whose banner or SNI names FHIR; a DICOM SCP
   (DICOM role evidence, or a PACS/RIS) reached by a modality; a server receiving HL7
   from an HL7 sender.

The TLS version is the one the server negotiated on that port (``observed.TlsSeen``); SSL
and TLS 1.0/1.1 are outdated (RFC 6176, RFC 7568, RFC 8996).

Counting: connections (a DICOM association is one connection) and bytes for every
protocol; HL7 *messages* where the parser counted them, which is cleartext HL7 only --
inside TLS nothing is read. So shares are "of connections" and the report says so; the
message count of the cleartext part is given beside it. A routed flow mirrored on two
VLANs counts once (its largest copy), as violations do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent.nis2.observed import OUTDATED_TLS, Observed, TlsVersion
from collector.policy import NAMED_SERVICES

CLEAR_APPS = {"dicom": "DICOM", "hl7": "HL7"}
TLS_APP = "tls"
PROTOCOLS = ("DICOM", "HL7", "FHIR")
FHIR_BANNER = re.compile(r"\bFHIR\b", re.IGNORECASE)
FHIR_NAME = re.compile(r"(^|[.-])fhir([.-]|$)", re.IGNORECASE)
BANNER_KINDS = ("http.x_powered_by", "http.server")
DICOM_SCP_TYPES = frozenset({"pacs", "ris", "dicom-workstation"})
MODALITY_TYPES = frozenset({"ct", "mr", "x-ray", "ultrasound", "mammography",
                            "nuclear-medicine", "angiography", "imaging-modality",
                            "dicom-workstation"})
HL7_RECEIVER_TYPES = frozenset({"his", "lis", "ris", "hl7-interface-engine"})
HL7_SENDER_TYPES = frozenset({"medical-gateway", "his", "lis", "ris", "hl7-interface-engine",
                              "lab-analyzer"})


def _port_table() -> dict[int, tuple[str, str]]:
    """Server port -> (protocol, why), from the policy's named services and their sources."""
    out: dict[int, tuple[str, str]] = {}
    for name, protocol in (("dicom-tls", "DICOM"), ("dicom", "DICOM"), ("hl7", "HL7")):
        ports, source = NAMED_SERVICES[name]
        for port in ports:
            number = int(port.split("/")[1])
            out[number] = (protocol, f"inferred from port {number} ({name}: {source})")
    return out


PORT_PROTOCOLS = _port_table()


@dataclass(frozen=True, slots=True)
class Clinical:
    protocol: str  # DICOM, HL7, FHIR
    encrypted: bool
    inferred: str | None  # why medtap thinks so, when the payload did not say


def classify(flow: dict[str, Any], obs: Observed) -> Clinical | None:
    """The clinical protocol of one conversation row, or None if it is not clinical."""
    app, port = flow.get("app"), flow.get("server_port")
    if flow.get("transport") != "tcp":
        return None
    if app in CLEAR_APPS:
        return Clinical(CLEAR_APPS[app], False, None)
    server = obs.device_of(flow["server"], flow.get("vlan"))
    client = obs.device_of(flow["client"], flow.get("vlan"))
    if app == "http":
        if _fhir_banner(server):
            return Clinical("FHIR", False, "HTTP to a server whose banner names FHIR")
        return None
    if app != TLS_APP:
        return None
    if isinstance(port, int) and port in PORT_PROTOCOLS:
        protocol, why = PORT_PROTOCOLS[port]
        return Clinical(protocol, True, why)
    names = obs.tls.sni.get(flow["server"], set())
    if _fhir_banner(server) or any(FHIR_NAME.search(n) for n in names):
        return Clinical("FHIR", True, "inferred from the server: its banner or TLS server "
                                      "name says FHIR")
    if _dicom_scp(server) and _type(client) in MODALITY_TYPES:
        return Clinical("DICOM", True, "inferred from the peers: a DICOM SCP reached by an "
                                       "imaging modality")
    if _hl7_receiver(server) and (_type(client) in HL7_SENDER_TYPES or _kinds(client, "hl7.")):
        return Clinical("HL7", True, "inferred from the peers: an HL7 receiver reached by an "
                                     "HL7 sender")
    return None


def _type(dev: dict[str, Any] | None) -> str:
    return str(dev.get("device_type") or "unknown") if dev else "unknown"


def _kinds(dev: dict[str, Any] | None, prefix: str) -> list[dict[str, Any]]:
    evidence = (dev or {}).get("evidence") or []
    return [e for e in evidence if str(e.get("kind", "")).startswith(prefix)]


def _fhir_banner(dev: dict[str, Any] | None) -> bool:
    return any(e["kind"] in BANNER_KINDS and FHIR_BANNER.search(str(e["value"]))
               for e in _kinds(dev, "http."))


def _dicom_scp(dev: dict[str, Any] | None) -> bool:
    roles = [e for e in _kinds(dev, "dicom.role") if str(e["value"]).endswith("scp")]
    return bool(roles) or _type(dev) in DICOM_SCP_TYPES


def _hl7_receiver(dev: dict[str, Any] | None) -> bool:
    return _type(dev) in HL7_RECEIVER_TYPES or bool(_kinds(dev, "hl7.receiving_application"))


# ---- the report ---------------------------------------------------------------------------------
def unique_copies(flows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (transport, client, server, port): the largest VLAN copy."""
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for f in flows:
        key = (f.get("transport"), f["client"], f["server"], f.get("server_port"))
        size = (f.get("bytes_to_server") or 0) + (f.get("bytes_to_client") or 0)
        old = best.get(key)
        if old is None or size > old["_bytes"]:
            best[key] = {**f, "_bytes": size}
    return list(best.values())


def _endpoint(obs: Observed, ip: str, vlan: int | None, zone: str | None) -> dict[str, Any]:
    dev = obs.device_of(ip, vlan)
    return {
        "ip": ip,
        "zone": zone,
        "device_id": dev["id"] if dev else None,
        "device_type": _type(dev),
        "vendor": dev.get("vendor") if dev else None,
        "model": dev.get("model") if dev else None,
    }


def encryption_report(obs: Observed) -> dict[str, Any]:
    pairs: dict[tuple[Any, ...], dict[str, Any]] = {}
    undetermined: list[dict[str, Any]] = []
    other_outdated: list[dict[str, Any]] = []
    for flow in unique_copies(obs.flows):
        clinical = classify(flow, obs)
        port = flow.get("server_port")
        if clinical is None:
            tcp = flow.get("transport") == "tcp"
            if flow.get("app") is None and tcp and port in PORT_PROTOCOLS:
                undetermined.append(_undetermined(flow))
            elif flow.get("app") == TLS_APP:
                version = obs.tls.version_for(flow["client"], flow["server"], port)
                if version.outdated:
                    other_outdated.append({**_undetermined(flow), "tls_version": version.version})
            continue
        tls = (obs.tls.version_for(flow["client"], flow["server"], port) if clinical.encrypted
               else None)
        _add_pair(pairs, obs, flow, clinical, tls)
    rows = sorted(pairs.values(), key=lambda r: (PROTOCOLS.index(r["protocol"]),
                                                 r["encrypted"], r["client"]["ip"],
                                                 r["server"]["ip"], r["service"]))
    return {
        "pairs": rows,
        "protocols": {p: _totals(p, [r for r in rows if r["protocol"] == p],
                                 obs.hl7_messages is not None)
                      for p in PROTOCOLS if any(r["protocol"] == p for r in rows)},
        "messages_counted": obs.hl7_messages is not None,
        "undetermined": undetermined,
        "outdated_tls_other": other_outdated,
    }


def _undetermined(flow: dict[str, Any]) -> dict[str, Any]:
    return {"client": flow["client"], "server": flow["server"],
            "service": f"tcp/{flow.get('server_port')}", "connections": flow.get("connections", 0)}


def _add_pair(pairs: dict[tuple[Any, ...], dict[str, Any]], obs: Observed, flow: dict[str, Any],
              clinical: Clinical, tls: TlsVersion | None) -> None:
    vlan = flow.get("vlan")
    client = _endpoint(obs, flow["client"], vlan, flow.get("client_zone"))
    server = _endpoint(obs, flow["server"], vlan, flow.get("server_zone"))
    service = f"tcp/{flow.get('server_port')}"
    security = tls.text if tls is not None else "cleartext"
    key = (client["device_id"] or client["ip"], server["device_id"] or server["ip"],
           clinical.protocol, service, security)
    row = pairs.get(key)
    if row is None:
        row = pairs[key] = {
            "protocol": clinical.protocol,
            "client": client,
            "server": server,
            "service": service,
            "encrypted": clinical.encrypted,
            "security": security,
            "tls_version": tls.version if tls else None,
            "tls_version_source": tls.how if tls else None,
            "outdated_tls": tls.outdated if tls else None,
            "inferred": clinical.inferred,
            "connections": 0,
            "bytes": 0,
            "messages": None,
            "acks": None,
            "first_seen": flow.get("first_seen"),
            "last_seen": flow.get("last_seen"),
        }
    row["connections"] += flow.get("connections") or 0
    row["bytes"] += flow["_bytes"]
    row["first_seen"] = min(x for x in (row["first_seen"], flow.get("first_seen")) if x)
    row["last_seen"] = max(x for x in (row["last_seen"], flow.get("last_seen")) if x)
    if clinical.protocol == "HL7" and not clinical.encrypted and obs.hl7_messages is not None:
        port = int(flow.get("server_port") or 0)
        count = obs.hl7_messages.get((flow["client"], flow["server"], port))
        row["messages"] = (row["messages"] or 0) + (count.messages if count else 0)
        row["acks"] = (row["acks"] or 0) + (count.acks if count else 0)


def _share(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _totals(protocol: str, rows: list[dict[str, Any]], counted: bool) -> dict[str, Any]:
    clear = [r for r in rows if not r["encrypted"]]
    tls = [r for r in rows if r["encrypted"]]
    connections = sum(r["connections"] for r in rows)
    clear_connections = sum(r["connections"] for r in clear)
    total_bytes = sum(r["bytes"] for r in rows)
    clear_bytes = sum(r["bytes"] for r in clear)
    out: dict[str, Any] = {
        "connections": connections,
        "cleartext_connections": clear_connections,
        "tls_connections": sum(r["connections"] for r in tls),
        "outdated_tls_connections": sum(r["connections"] for r in tls if r["outdated_tls"]),
        "tls_version_unknown_connections": sum(r["connections"] for r in tls
                                               if r["tls_version"] is None),
        "bytes": total_bytes,
        "cleartext_bytes": clear_bytes,
        "cleartext_share": _share(clear_connections, connections),
        "cleartext_bytes_share": _share(clear_bytes, total_bytes),
        "counted_by": "connections",
        "cleartext_messages": None,
        "cleartext_acks": None,
        "tls_versions": _versions(tls),
    }
    if protocol == "HL7" and counted:
        out["cleartext_messages"] = sum(r["messages"] or 0 for r in clear)
        out["cleartext_acks"] = sum(r["acks"] or 0 for r in clear)
    out["sentence"] = sentence(protocol, out)
    return out


def _versions(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        key = r["tls_version"] or "unknown"
        out[key] = out.get(key, 0) + r["connections"]
    return dict(sorted(out.items()))


UNIT = {"DICOM": ("association", "associations"), "HL7": ("connection", "connections"),
        "FHIR": ("connection", "connections")}


def sentence(protocol: str, t: dict[str, Any]) -> str:
    """"62% of HL7 connections travelled in cleartext ..." -- what was counted, said."""
    one, many = UNIT[protocol]
    unit = one if t["connections"] == 1 else many
    share = "-" if t["cleartext_share"] is None else f"{t['cleartext_share']:g}"
    bytes_share = "-" if t["cleartext_bytes_share"] is None else f"{t['cleartext_bytes_share']:g}"
    text = (f"{share}% of {protocol} {many} travelled in cleartext "
            f"({t['cleartext_connections']} of {t['connections']} {unit}; "
            f"{bytes_share}% of the bytes)")
    if t["outdated_tls_connections"]:
        outdated = ", ".join(v for v in t["tls_versions"] if v in OUTDATED_TLS)
        text += (f"; {t['outdated_tls_connections']} of the {t['tls_connections']} TLS "
                 f"{many if t['tls_connections'] != 1 else one} used outdated {outdated}")
    if protocol == "HL7" and t["cleartext_messages"] is not None:
        text += (f". Counted by connection: messages inside TLS cannot be read. The cleartext "
                 f"connections carried {t['cleartext_messages']} HL7 messages and "
                 f"{t['cleartext_acks']} ACKs")
    return text + "."
