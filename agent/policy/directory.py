"""Who owns an address: device id, type, vendor and own VLAN for policy evaluation.

An endpoint's facts come from the device owning its IP, matched by (IP, VLAN of the copy
seen) first, else by IP alone (docs/report-format.md, "Violation"). Its *own* VLAN, the one
a VLAN-only zone is matched on, is where it sends its own frames: a host device with a MAC
has it; an ``ip:<addr>@vlanN`` device was seen only behind a router, so its VLAN is the
router's side and tells nothing (docs/architecture.md, "Router detection").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from agent.inventory import Device
from agent.policy.engine import EndpointFacts
from parsers.vocabulary import UNKNOWN

BEHIND_ROUTER_PREFIX = "ip:"


class Directory:
    def __init__(self) -> None:
        self._by_ip_vlan: dict[tuple[str, int | None], EndpointFacts] = {}
        self._by_ip: dict[str, EndpointFacts] = {}
        self._own: set[str] = set()  # IPs whose IP-only record is a host's own device

    @classmethod
    def from_devices(cls, devices: Iterable[Device], *, with_types: bool = True) -> Directory:
        """``with_types=False`` leaves every type unknown, as at the start of a live capture."""
        directory = cls()
        for dev in devices:
            own = dev.mac is not None and not dev.id.startswith(BEHIND_ROUTER_PREFIX)
            vlans: list[int | None] = [*dev.vlans] or [None]
            for ip in dev.ips:
                for vlan in vlans:
                    facts = EndpointFacts(
                        ip=ip,
                        vlan=_own_vlan(dev, vlan) if own else None,
                        device_id=dev.id,
                        device_type=dev.device_type if with_types else UNKNOWN,
                        vendor=dev.vendor,
                    )
                    directory.add(facts, vlan, prefer=own)
        return directory

    def add(self, facts: EndpointFacts, vlan: int | None, *, prefer: bool = False) -> None:
        """Record ``facts`` for its IP seen on ``vlan``; ``prefer`` lets a host's own record
        win the IP-only lookup over a behind-the-router one."""
        self._by_ip_vlan.setdefault((facts.ip, vlan), facts)
        if facts.ip not in self._by_ip or (prefer and facts.ip not in self._own):
            self._by_ip[facts.ip] = facts
            if prefer:
                self._own.add(facts.ip)

    def lookup(self, ip: str, vlan: int | None) -> EndpointFacts:
        facts = self._by_ip_vlan.get((ip, vlan)) or self._by_ip.get(ip)
        return facts if facts is not None else EndpointFacts(ip)

    def set_device_types(self, types: Mapping[str, str]) -> None:
        """New device types by IP (the classifier's latest word)."""
        for key, facts in self._by_ip_vlan.items():
            if facts.ip in types:
                self._by_ip_vlan[key] = replace(facts, device_type=types[facts.ip])
        for ip, facts in self._by_ip.items():
            if ip in types:
                self._by_ip[ip] = replace(facts, device_type=types[ip])
        for ip in types.keys() - self._by_ip.keys():
            self._by_ip[ip] = EndpointFacts(ip, device_type=types[ip])


def _own_vlan(dev: Device, seen: int | None) -> int | None:
    # A router owns addresses on several VLANs; a host's own VLAN is the one it lists.
    if seen is not None and seen in dev.vlans:
        return seen
    return dev.vlans[0] if len(dev.vlans) == 1 else None
