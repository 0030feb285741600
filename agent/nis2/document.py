"""The NIS2 evidence document: encryption in transit, compensating controls, asset register.

``nis2_document(obs)`` is the JSON form (``medtap report --format json``); the Markdown and
HTML renderers read only this dict, so all three say the same. Every string in it comes from
device fields, rule names and counters the pipeline produced: no payload, no patient field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.nis2.controls import controls_report, guest_zones
from agent.nis2.encryption import encryption_report
from agent.nis2.observed import Observed
from agent.nis2.register import register_rows
from agent.nis2.zoneflow import zone_edges
from agent.report import version

LIMITS = (
    "Passive observation: only what crossed the mirror port in the observed period is "
    "reported; a device or flow that stayed silent is absent.",
    "TLS hides the protocol: a TLS flow's protocol is inferred from its server port or from "
    "the roles its peers showed elsewhere, and each such row says from what.",
    "HL7 messages are counted only in cleartext; inside TLS medtap reads nothing, so shares "
    "are given per connection (a DICOM association is one connection).",
    "TLS versions are those the server negotiated (ServerHello); where none was seen the "
    "client's highest offer bounds it.",
    "Outdated-software findings come from banners, fingerprints and TLS hellos "
    "(parsers/data/outdated_software.csv, each row with its source); a passive TCP "
    "fingerprint is a guess and is named as such.",
)


def nis2_document(obs: Observed, *, extra_guest_zones: tuple[str, ...] = ()
                  ) -> dict[str, Any]:
    encryption = encryption_report(obs)
    controls = controls_report(obs, extra_guest_zones)
    register = register_rows(obs.devices)
    policy = obs.policy
    return {
        "title": "NIS2 evidence from network traffic",
        "medtap_version": version(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "source": {"kind": obs.source_kind, "inputs": obs.sources,
                   "first_seen": obs.first_seen, "last_seen": obs.last_seen},
        "policy": None if policy is None else {
            "source": policy.source,
            "zones": sorted(policy.zones),
            "guest_zones": sorted(guest_zones(policy, extra_guest_zones)),
            "rules": len(policy.rules),
            "rules_requiring_tls": [r.name for r in policy.rules if r.require == "tls"],
            "default": policy.default,
        },
        "summary": {
            "devices": len(obs.devices),
            "medical_devices": len(controls),
            "asset_groups": len(register),
            "violations": len(obs.violations),
            "encryption": [t["sentence"] for t in encryption["protocols"].values()],
            "medical_devices_outdated": sum(1 for c in controls if c["outdated"]),
            "medical_devices_restriction_broken": sum(
                1 for c in controls if c["restricted_communication"] is False),
        },
        "encryption": encryption,
        "controls": controls,
        "register": register,
        "zone_flows": zone_edges(obs),
        "violations": [
            {"rule": v["rule"], "severity": v["severity"], "reason": v["reason"],
             "service": v["service"], "app": v.get("app"),
             "client": v["client"]["ip"], "client_zone": v["client"].get("zone"),
             "server": v["server"]["ip"], "server_zone": v["server"].get("zone"),
             "flows": v.get("flows"), "first_seen": v.get("first_seen"),
             "last_seen": v.get("last_seen")}
            for v in obs.violations
        ],
        "limits": list(LIMITS),
    }
