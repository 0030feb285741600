"""Roles only visible across flows: who serves whom, turned into classification evidence.

A single flow cannot tell an HL7 interface engine (receives from several
senders and forwards to several receivers) or a PACS (accepts images from
several modalities). The conversation table can: these rules read it, with the
per-flow ``dicom.role`` evidence, and emit ``role.device_type`` evidence rows
that the classifier weighs like any other claim.
"""

from __future__ import annotations

from collections import defaultdict

from agent.conversations import Conversation
from agent.endpoints import ip_text
from agent.evidence import Evidence

ENGINE_MIN_PEERS = 2  # distinct HL7 senders in and receivers out
ENGINE_CONFIDENCE = 0.7
PACS_MIN_CLIENTS = 2  # distinct DICOM storage clients of one storage SCP
PACS_CONFIDENCE = 0.6
ROUTER_CONFIDENCE = 0.75  # a MAC sending for many IPs routes, whatever else it is


def infer_roles(conversations: list[Conversation], evidence: list[Evidence]) -> list[Evidence]:
    hl7_in: dict[str, set[str]] = defaultdict(set)
    hl7_out: dict[str, set[str]] = defaultdict(set)
    dicom_clients: dict[str, set[str]] = defaultdict(set)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    vlan_of: dict[str, int | None] = {}
    for conv in conversations:
        client, server = ip_text(conv.client_ip), ip_text(conv.server_ip)
        if conv.app == "hl7":
            hl7_in[server].add(client)
            hl7_out[client].add(server)
        elif conv.app == "dicom":
            dicom_clients[server].add(client)
        else:
            continue
        for host in (client, server):
            first[host] = min(first.get(host, conv.first_seen), conv.first_seen)
            last[host] = max(last.get(host, conv.last_seen), conv.last_seen)
        vlan_of.setdefault(server, conv.vlan)
        vlan_of.setdefault(client, conv.vlan)

    storage_scps = {
        ev.host for ev in evidence if ev.kind == "dicom.role" and ev.value == "storage scp"
    }
    out: list[Evidence] = []

    def emit(host: str, device_type: str, confidence: float, why: str) -> None:
        out.append(
            Evidence(
                vlan=vlan_of.get(host),
                host=host,
                kind="role.device_type",
                value=device_type,
                source=f"inferred: {why}",
                first_seen=first[host],
                last_seen=last[host],
                count=1,
                confidence=confidence,
                port=None,
            )
        )

    for host, senders in hl7_in.items():
        receivers = hl7_out.get(host, set())
        if len(senders) >= ENGINE_MIN_PEERS and len(receivers) >= ENGINE_MIN_PEERS:
            why = f"receives HL7 from {len(senders)} senders, sends to {len(receivers)} receivers"
            emit(host, "hl7-interface-engine", ENGINE_CONFIDENCE, why)
    for host, clients in dicom_clients.items():
        if host in storage_scps and len(clients) >= PACS_MIN_CLIENTS:
            emit(host, "pacs", PACS_CONFIDENCE, f"stores DICOM from {len(clients)} clients")
    return out
