"""Compensating controls per medical device: the evidence the BSI accepts for devices that
cannot be patched (segmentation holds, the device talks only to whom it must).

For each device of category ``medical``: its zone and VLANs; the distinct peers and services
it actually used (``out tcp/2575`` it opened, ``in tcp/80`` opened to it), each marked
allowed or with the rule it broke; whether restricted communication holds (a policy was
given and none of its flows is a violation); whether it is isolated from guest zones and
from the ``external`` zone (without a policy: from global addresses; guest zones are then
unknown); its software version, the operating systems its evidence names and outdated
software findings (``software``). A device named behind a gateway (``device:...``) has no
address of its own: its controls are its gateway's, and the row says which.

Guest zones are zones whose name or description says guest (``guest``, ``gast``,
``visitor``, ``public``) or that ``--guest-zone`` names.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from agent.nis2.encryption import unique_copies
from agent.nis2.observed import Observed, is_global
from agent.nis2.software import findings, operating_systems
from collector.policy import EXTERNAL, Policy

GUEST_WORDS = re.compile(r"guest|gast|visitor|besucher|public", re.IGNORECASE)
MEDICAL = "medical"


def guest_zones(policy: Policy | None, extra: tuple[str, ...] = ()) -> set[str]:
    if policy is None:
        return set(extra)
    return {z.name for z in policy.zones.values()
            if GUEST_WORDS.search(z.name) or GUEST_WORDS.search(z.description or "")} | set(extra)


def service_of(flow: dict[str, Any]) -> str:
    transport = str(flow.get("transport"))
    if transport in ("tcp", "udp"):
        return f"{transport}/{flow.get('server_port')}"
    return transport


def controls_report(obs: Observed, extra_guest: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    guests = guest_zones(obs.policy, extra_guest)
    flows = unique_copies(obs.flows)
    out = []
    for dev in obs.devices:
        if dev.get("category") != MEDICAL:
            continue
        row = _device(obs, dev, flows, guests)
        via = list(dev.get("reached_via") or [])
        gateway = obs.device_of(via[0]) if not dev.get("ips") and via else None
        if gateway is not None:  # its traffic is its gateway's: so are its controls
            row.update({k: v for k, v in _device(obs, gateway, flows, guests).items()
                        if k in INHERITED})
            row["behind_gateway"] = gateway["id"]
        out.append(row)
    return out


# What a device named behind a gateway shares with the gateway that speaks for it.
INHERITED = ("peers", "distinct_peers", "services", "violations", "restricted_communication",
             "isolated_from_guest", "guest_peers", "isolated_from_external", "external_peers")


def _violations_of(obs: Observed, ips: set[str]) -> list[dict[str, Any]]:
    return [v for v in obs.violations if v["client"]["ip"] in ips or v["server"]["ip"] in ips]


def _device(obs: Observed, dev: dict[str, Any], flows: list[dict[str, Any]], guests: set[str]
            ) -> dict[str, Any]:
    ips = set(dev.get("ips") or [])
    violations = _violations_of(obs, ips)
    broken = {(v["client"]["ip"], v["server"]["ip"], v["service"]): v["rule"] for v in violations}
    peers: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in flows:
        if f["client"] in ips:
            direction, peer, peer_zone = "out", f["server"], f.get("server_zone")
        elif f["server"] in ips:
            direction, peer, peer_zone = "in", f["client"], f.get("client_zone")
        else:
            continue
        service = service_of(f)
        key = (peer, direction, service)
        row = peers.get(key)
        if row is None:
            peer_dev = obs.device_of(peer, f.get("vlan"))
            row = peers[key] = {
                "peer": peer,
                "peer_device_id": peer_dev["id"] if peer_dev else None,
                "peer_device_type": (peer_dev or {}).get("device_type") or "unknown",
                "peer_zone": peer_zone,
                "direction": direction,
                "service": service,
                "app": f.get("app"),
                "connections": 0,
                "violation": broken.get((f["client"], f["server"], service)),
            }
        row["connections"] += f.get("connections") or 0
    rows = sorted(peers.values(), key=lambda r: (r["direction"], r["service"], r["peer"]))
    policy = obs.policy is not None
    guest_flows = [r for r in rows if r["peer_zone"] in guests] if policy and guests else None
    external = [r for r in rows if (r["peer_zone"] == EXTERNAL if policy else is_global(r["peer"]))]
    evidence = list(dev.get("evidence") or [])
    outdated = findings(evidence, _day(dev.get("last_seen")))
    return {
        "device_id": dev["id"],
        "device_type": dev.get("device_type"),
        "vendor": dev.get("vendor"),
        "model": dev.get("model"),
        "hostnames": list(dev.get("hostnames") or []),
        "ips": sorted(ips),
        "mac": dev.get("mac"),
        "vlans": list(dev.get("vlans") or []),
        "zone": dev.get("zone"),
        "behind_gateway": None,
        "peers": rows,
        "distinct_peers": len({r["peer"] for r in rows}),
        "services": sorted({f"{r['direction']} {r['service']}" for r in rows}),
        "violations": [{"rule": v["rule"], "severity": v["severity"], "service": v["service"],
                        "client": v["client"]["ip"], "server": v["server"]["ip"],
                        "reason": v["reason"]} for v in violations],
        "restricted_communication": (not violations) if policy else None,
        "isolated_from_guest": (not guest_flows) if guest_flows is not None else None,
        "guest_peers": sorted({r["peer"] for r in guest_flows or []}),
        "isolated_from_external": not external,
        "external_peers": sorted({r["peer"] for r in external}),
        "software_version": dev.get("software_version"),
        "operating_systems": operating_systems(evidence),
        "outdated": bool(outdated),
        "outdated_findings": outdated,
        "first_seen": dev.get("first_seen"),
        "last_seen": dev.get("last_seen"),
    }


def _day(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
