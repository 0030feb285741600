"""What the NIS2 report reads, whichever way it was obtained: captures or the collector.

``Observed`` holds the report's device rows, conversation rows and violations in the shapes
of docs/report-format.md (the collector's read API uses the same field names), plus two
things only a capture run can give exactly: the TLS versions each server negotiated *per
port* and the HL7 messages counted per conversation. From the collector, TLS versions come
from device evidence without a port and messages are not counted; the report says so.

Nothing here reads payload: it indexes fields the pipeline already reduced.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.nis2.counting import MessageCount
from collector.policy import Policy

TLS_RANK = {"SSL 2.0": 0, "SSL 3.0": 1, "TLS 1.0": 2, "TLS 1.1": 3, "TLS 1.2": 4, "TLS 1.3": 5}
OUTDATED_TLS = frozenset({"SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1"})  # RFC 6176, 7568, 8996


@dataclass(frozen=True, slots=True)
class TlsVersion:
    """The TLS version of one flow and how medtap knows it."""

    version: str | None  # "TLS 1.2"; None when no ServerHello was seen
    how: str  # "negotiated", "client maximum", "ambiguous", "not seen"

    @property
    def outdated(self) -> bool | None:
        if self.version is None:
            return None
        return self.version in OUTDATED_TLS

    @property
    def text(self) -> str:
        if self.version is None:
            return "TLS (version not seen)"
        if self.how == "client maximum":
            return f"{self.version} at most (client's highest offer)"
        return self.version


@dataclass
class TlsSeen:
    """TLS facts from evidence: negotiated versions per (server, port) and per server, the
    highest version each client offered, and server names (SNI) per server."""

    by_port: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    by_server: dict[str, set[str]] = field(default_factory=dict)
    offered: dict[str, str] = field(default_factory=dict)  # client -> highest offered
    sni: dict[str, set[str]] = field(default_factory=dict)

    def add(self, kind: str, host: str, value: str, port: int | None) -> None:
        if kind == "tls.version" and value in TLS_RANK:
            self.by_server.setdefault(host, set()).add(value)
            if port is not None:
                self.by_port.setdefault((host, port), set()).add(value)
        elif kind == "tls.client_versions":
            top = value.split(",")[0].strip()  # the parser lists them highest first
            if top in TLS_RANK and TLS_RANK[top] > TLS_RANK.get(self.offered.get(host, ""), -1):
                self.offered[host] = top
        elif kind == "tls.sni":
            self.sni.setdefault(host, set()).add(value)

    def version_for(self, client: str, server: str, port: int | None) -> TlsVersion:
        seen = self.by_port.get((server, port)) if port is not None else None
        seen = seen or self.by_server.get(server, set())
        offered = self.offered.get(client)
        if len(seen) == 1:
            return TlsVersion(next(iter(seen)), "negotiated")
        if seen and offered is not None:
            # A server seen with several versions gave each client at most what it offered.
            fits = [v for v in seen if TLS_RANK[v] <= TLS_RANK[offered]]
            if fits:
                return TlsVersion(max(fits, key=TLS_RANK.__getitem__), "negotiated")
        if seen:
            return TlsVersion(None, "ambiguous")
        if offered is not None:
            return TlsVersion(offered, "client maximum")
        return TlsVersion(None, "not seen")


@dataclass
class Observed:
    devices: list[dict[str, Any]]
    flows: list[dict[str, Any]]  # conversation rows (report ``flows.items``)
    violations: list[dict[str, Any]]
    tls: TlsSeen
    hl7_messages: dict[tuple[str, str, int], MessageCount] | None  # None: not counted
    policy: Policy | None
    sources: list[str]
    source_kind: str  # "capture" or "collector"
    _by_ip: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for dev in self.devices:
            for ip in dev.get("ips") or []:
                self._by_ip.setdefault(ip, []).append(dev)

    def device_of(self, ip: str, vlan: int | None = None) -> dict[str, Any] | None:
        """The device owning ``ip``: a host before a router that also lists it, the one on
        ``vlan`` when several hosts share an address."""
        owners = self._by_ip.get(ip, [])
        if not owners:
            return None
        ranked = sorted(owners, key=lambda d: (bool(d.get("is_router")),
                                               vlan is not None and vlan not in d.get("vlans", [])))
        return ranked[0]

    @property
    def first_seen(self) -> str | None:
        return min((f["first_seen"] for f in self.flows if f.get("first_seen")), default=None)

    @property
    def last_seen(self) -> str | None:
        return max((f["last_seen"] for f in self.flows if f.get("last_seen")), default=None)


def tls_from_evidence(records: Iterable[tuple[str, str, str, int | None]]) -> TlsSeen:
    """(kind, host, value, port) records -> TlsSeen."""
    seen = TlsSeen()
    for kind, host, value, port in records:
        if kind.startswith("tls."):
            seen.add(kind, host, value, port)
    return seen


def messages_by_conversation(
    counts: dict[tuple[int | None, str, str, int], MessageCount],
) -> dict[tuple[str, str, int], MessageCount]:
    """Per (client, server, port): the largest VLAN copy, as for bytes (a routed flow
    mirrored on two VLANs is one conversation, parsed twice)."""
    out: dict[tuple[str, str, int], MessageCount] = {}
    for (_vlan, client, server, port), count in counts.items():
        best = out.get((client, server, port))
        if best is None or count.messages + count.acks > best.messages + best.acks:
            out[(client, server, port)] = count
    return out


def iso_time(value: Any) -> str | None:
    """ISO 8601 UTC with ``Z`` from a report string, a collector datetime text or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def is_global(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_global
    except ValueError:
        return False
