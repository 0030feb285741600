"""Devices and inventory groups from endpoints and evidence.

Each endpoint becomes a device; each evidence record attaches to the device
that owns its host (an IP on a VLAN, a MAC, or a named device behind a
gateway). The device's type, vendor, model, version and hostnames come from
the claims in its evidence, weighed by ``agent.classify``, which also says for
each field which evidence set it. Devices are grouped by (type, vendor, model)
with a count, medical devices first.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from agent.classify import (
    MEDICAL_OUI_CONFIDENCE,
    Claim,
    Classification,
    category_of,
    claim_of,
    classify,
)
from agent.conversations import Conversation
from agent.endpoints import Endpoint
from agent.evidence import Evidence
from agent.roles import ROUTER_CONFIDENCE, infer_roles
from parsers.vocabulary import MAC_HOST_PREFIX, NAMED_DEVICE_PREFIX, UNKNOWN, device_type_name

OUI_SOURCE = "IEEE OUI registry (netaddr)"
# Evidence about other hosts (DNS answers describe the zone's view of an address): it may
# describe a device, never create one.
HEARSAY_PREFIXES = ("dns.",)
OUI_VENDOR_CONFIDENCE = 0.0  # evidence only: the registry names the NIC maker, often an OEM


def medical_oui(mac: str) -> tuple[str, str, float] | None:
    """(vendor, source, confidence) from the curated medical-vendor OUI table, if it knows
    the MAC's maker as a device vendor (not a radio-module maker)."""
    try:
        from parsers.oui import medical_oui as lookup
    except ImportError:  # the curated table is optional
        return None
    hit = lookup(mac)
    if hit is None or getattr(hit, "kind", "device-vendor") != "device-vendor":
        return None
    return hit.vendor, f"curated medical OUI table: {hit.source}", MEDICAL_OUI_CONFIDENCE


@dataclass
class Device:
    id: str
    mac: str | None
    ips: list[str]
    vlans: list[int]
    hostnames: list[str] = field(default_factory=list)
    category: str | None = None
    device_type: str = UNKNOWN
    vendor: str | None = None
    model: str | None = None
    software_version: str | None = None
    serial: str | None = None
    oui_vendor: str | None = None
    confidence: float = 0.0
    is_router: bool = False
    reached_via: list[str] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    classification: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_seen: float | None = None
    last_seen: float | None = None
    flows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mac": self.mac,
            "ips": self.ips,
            "vlans": self.vlans,
            "hostnames": self.hostnames,
            "category": self.category,
            "device_type": self.device_type,
            "vendor": self.vendor,
            "model": self.model,
            "software_version": self.software_version,
            "serial": self.serial,
            "oui_vendor": self.oui_vendor,
            "confidence": round(self.confidence, 3),
            "is_router": self.is_router,
            "reached_via": self.reached_via,
            "evidence": self.evidence,
            "classification": self.classification,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "flows": self.flows,
        }


def build_devices(
    endpoints: list[Endpoint],
    evidence: list[Evidence],
    conversations: list[Conversation] | None = None,
    hearsay: list[Evidence] | None = None,
) -> list[Device]:
    """Devices from endpoints and evidence. Evidence that may only describe a device (DNS
    answers) about an address no device has goes to ``hearsay`` when given, not to a device."""
    devices: dict[str, Device] = {}
    by_ip_vlan: dict[tuple[int | None, str], str] = {}
    by_ip: dict[str, list[str]] = defaultdict(list)
    claims: dict[str, list[Claim]] = defaultdict(list)
    for ep in endpoints:
        dev = Device(
            id=ep.id,
            mac=ep.mac,
            ips=ep.ips,
            vlans=ep.vlans,
            is_router=ep.is_router,
            first_seen=ep.first_seen,
            last_seen=ep.last_seen,
            flows=ep.flows,
        )
        devices[ep.id] = dev
        claims[ep.id] += _endpoint_claims(ep, dev)
        for vlan, ip in ep.ip_keys:
            text = str(ipaddress.ip_address(ip))
            by_ip_vlan[(vlan, text)] = ep.id
            if ep.id not in by_ip[text]:
                by_ip[text].append(ep.id)

    all_evidence = evidence + infer_roles(conversations or [], evidence)
    for ev in all_evidence:
        if ev.kind.startswith(HEARSAY_PREFIXES) and not _known_host(ev, by_ip_vlan, by_ip):
            if hearsay is not None:  # a name server's word about an unseen address
                hearsay.append(ev)
            continue
        dev_id = _owner(ev, devices, by_ip_vlan, by_ip)
        dev = devices[dev_id]
        dev.evidence.append(_evidence_row(ev.kind, ev.value, ev.source, ev.count, ev.confidence))
        claim = claim_of(ev.kind, ev.value, ev.confidence, ev.source, ev.count)
        if claim is not None:
            claims[dev_id].append(claim)
        if ev.kind.endswith(".reached_via") and ev.value not in dev.reached_via:
            dev.reached_via.append(ev.value)
        if dev.first_seen is None or ev.first_seen < dev.first_seen:
            dev.first_seen = ev.first_seen
        if dev.last_seen is None or ev.last_seen > dev.last_seen:
            dev.last_seen = ev.last_seen

    _merge_address_bindings(devices, by_ip, claims, set(devices) - {ep.id for ep in endpoints})
    for dev in devices.values():
        _apply(dev, classify(claims.get(dev.id, [])))
    return sorted(devices.values(), key=_device_order)


def _known_host(
    ev: Evidence, by_ip_vlan: dict[tuple[int | None, str], str], by_ip: dict[str, list[str]]
) -> bool:
    return (ev.vlan, ev.host) in by_ip_vlan or ev.host in by_ip


ADDRESS_BINDINGS = ("dhcp.assigned_ip", "lldp.management_address", "cdp.address")


def _merge_address_bindings(
    devices: dict[str, Device],
    by_ip: dict[str, list[str]],
    claims: dict[str, list[Claim]],
    evidence_only: set[str],
) -> None:
    """A MAC known only from evidence (a DHCP client behind a relay, an LLDP speaker) that
    names its own IP is the device seen under that IP without a MAC: make them one."""
    for dev_id in sorted(evidence_only):
        dev = devices[dev_id]
        if not dev_id.startswith(MAC_HOST_PREFIX):
            continue
        ips = {e["value"] for e in dev.evidence if e["kind"] in ADDRESS_BINDINGS}
        owners = {o for ip in ips for o in by_ip.get(ip, []) if devices[o].mac is None}
        if len(owners) != 1:
            continue  # unknown, or ambiguous: leave both as they are
        target = devices[owners.pop()]
        target.mac = dev.mac
        target.evidence += dev.evidence
        target.reached_via += [v for v in dev.reached_via if v not in target.reached_via]
        target.vlans = sorted(set(target.vlans) | set(dev.vlans))
        claims[target.id] += claims.pop(dev_id, [])
        del devices[dev_id]


def _endpoint_claims(ep: Endpoint, dev: Device) -> list[Claim]:
    """What the MAC itself says: a router by behaviour, a vendor by OUI (weakly)."""
    out: list[Claim] = []
    if ep.is_router:
        out.append(
            Claim(
                "device_type",
                "network-infrastructure",
                ROUTER_CONFIDENCE,
                "role.router",
                "inferred: one MAC sends for many IPs",
            )
        )
    if ep.oui_vendor:
        dev.oui_vendor = ep.oui_vendor
        dev.evidence.append(
            _evidence_row("oui.registry", ep.oui_vendor, OUI_SOURCE, 1, OUI_VENDOR_CONFIDENCE)
        )
    if ep.mac is not None and not ep.is_router:
        hit = medical_oui(ep.mac)
        if hit is not None:
            dev.evidence.append(_evidence_row("oui.medical", hit[0], hit[1], 1, hit[2]))
            out.append(Claim("vendor", hit[0], hit[2], "oui.medical", hit[1]))
    return out


def _owner(
    ev: Evidence,
    devices: dict[str, Device],
    by_ip_vlan: dict[tuple[int | None, str], str],
    by_ip: dict[str, list[str]],
) -> str:
    """The device an evidence record is about; creates it when nothing owns the host."""
    if ev.host.startswith(NAMED_DEVICE_PREFIX):
        if ev.host not in devices:
            devices[ev.host] = Device(id=ev.host, mac=None, ips=[], vlans=[])
        return ev.host
    if ev.host.startswith(MAC_HOST_PREFIX):  # endpoint ids of MAC-keyed hosts are "mac:..."
        if ev.host not in devices:
            mac = ev.host[len(MAC_HOST_PREFIX) :]
            vlans = [ev.vlan] if ev.vlan is not None else []
            devices[ev.host] = Device(id=ev.host, mac=mac, ips=[], vlans=vlans)
        return ev.host
    owner = by_ip_vlan.get((ev.vlan, ev.host))
    if owner is None and len(by_ip.get(ev.host, [])) == 1:
        owner = by_ip[ev.host][0]  # seen on another VLAN (routed), one host owns the IP
    if owner is None:
        owner = f"ip:{ev.host}" + (f"@vlan{ev.vlan}" if ev.vlan is not None else "")
        if owner not in devices:
            vlans = [ev.vlan] if ev.vlan is not None else []
            devices[owner] = Device(id=owner, mac=None, ips=[ev.host], vlans=vlans)
        by_ip_vlan[(ev.vlan, ev.host)] = owner
    return owner


def _apply(dev: Device, result: Classification) -> None:
    dev.classification = result.explain()
    dev.hostnames = result.hostnames
    device_type = result.value("device_type")
    if device_type is not None:
        dev.device_type = device_type
        dev.confidence = result.fields["device_type"].score
    dev.category = category_of(device_type)
    dev.vendor = result.value("vendor")
    dev.model = result.value("model")
    dev.software_version = result.value("software_version")
    dev.serial = result.value("serial")


def _evidence_row(
    kind: str, value: str, source: str, count: int, confidence: float = 1.0
) -> dict[str, Any]:
    return {
        "kind": kind,
        "value": value,
        "source": source,
        "count": count,
        "confidence": round(confidence, 3),
    }


_CATEGORY_ORDER = {"medical": 0, "clinical-it": 1, "infrastructure": 2, "other": 3, None: 4}


def _device_order(dev: Device) -> tuple[int, str, str]:
    return (_CATEGORY_ORDER.get(dev.category, 4), dev.device_type, dev.id)


def build_groups(devices: list[Device]) -> list[dict[str, Any]]:
    """One inventory entry per (type, vendor, model): "35 patient monitors (Philips MX800)"."""
    groups: dict[tuple[str, str | None, str | None], list[Device]] = defaultdict(list)
    for dev in devices:
        groups[(dev.device_type, dev.vendor, dev.model)].append(dev)
    out: list[dict[str, Any]] = []
    for (device_type, vendor, model), members in groups.items():
        category = members[0].category
        versions = sorted({d.software_version for d in members if d.software_version})
        out.append(
            {
                "device_type": device_type,
                "category": category,
                "vendor": vendor,
                "model": model,
                "count": len(members),
                "software_versions": versions,
                "vlans": sorted({v for d in members for v in d.vlans}),
                "device_ids": [d.id for d in members],
                "label": group_label(device_type, vendor, model, len(members)),
            }
        )
    out.sort(key=_group_order)
    return out


def _group_order(group: dict[str, Any]) -> tuple[int, int, str]:
    return (_CATEGORY_ORDER.get(group["category"], 4), -group["count"], group["device_type"])


def group_label(device_type: str, vendor: str | None, model: str | None, count: int) -> str:
    noun = device_type_name(device_type, count)
    make = " ".join(x for x in (vendor, model) if x)
    return f"{count} {noun}" + (f" ({make})" if make else "")
