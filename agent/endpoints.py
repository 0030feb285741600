"""Endpoint identities: which MAC is a host's own, which IPs belong to it, which MACs route.

One record per endpoint: the MAC when it is the host's own, else the IP per
VLAN. A MAC that sends for many IPs is a router or gateway (routed traffic
carries the router's MAC with the far host's IP): it is marked as such and is
never bound to the IPs behind it. Virtual router MACs (HSRP, VRRP) are routers
from the first frame; an ARP reply or request binds its sender IP to its MAC
for certain.

Updated once per flow end, not per packet, which keeps it off the hot path.
Bounded by ``MAX_BINDINGS`` with a counter when hit.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from functools import lru_cache

log = logging.getLogger(__name__)

MAX_BINDINGS = 500_000  # (mac, vlan, ip) and (vlan, ip) records held in all
ROUTER_MIN_IPV4 = 5  # a MAC seen with more distinct IPv4 addresses than this routes
ROUTER_MIN_IPV6 = 9  # hosts hold several IPv6 addresses (SLAAC, temporary, link-local)

# Virtual router MACs: HSRP v1/v2, VRRP IPv4/IPv6, GLBP (RFC 2281, RFC 5798, Cisco docs)
VIRTUAL_ROUTER_PREFIXES = (
    bytes.fromhex("00000c07ac"),
    bytes.fromhex("00000c9f"),
    bytes.fromhex("00005e0001"),
    bytes.fromhex("00005e0002"),
    bytes.fromhex("0007b4"),
)

Record = list[float]  # [first_seen, last_seen, flows]


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


@lru_cache(maxsize=65536)
def ip_text(ip: bytes) -> str:
    """Text form of a packed address; cached: the same hosts come back all the time."""
    return str(ipaddress.ip_address(ip))


ZERO_MAC = bytes(6)


def is_group_mac(mac: bytes) -> bool:
    """Broadcast and multicast MACs, and the all-zero MAC of loopback captures, name no host."""
    return bool(mac[0] & 0x01) or mac == ZERO_MAC


def is_host_ip(ip: bytes) -> bool:
    """Unicast, specified addresses only: no broadcast, multicast or 0.0.0.0/::."""
    if len(ip) == 4:
        return not (ip[0] >= 224 or ip == b"\0\0\0\0" or ip[3] == 255 and ip[2] == 255)
    return len(ip) == 16 and ip[0] != 0xFF and any(ip)


def _is_link_local_v6(ip: bytes) -> bool:
    return len(ip) == 16 and ip[0] == 0xFE and ip[1] & 0xC0 == 0x80


@lru_cache(maxsize=4096)
def oui_vendor(mac: bytes) -> str | None:
    """Vendor of a MAC from netaddr's copy of the IEEE registry; None when unknown.

    Locally administered MACs (randomised by phones and laptops) have no vendor.
    """
    if mac[0] & 0x02:
        return None
    import netaddr  # only at report time: its registry load costs ~50 ms

    try:
        return str(netaddr.EUI(mac_text(mac)).oui.registration().org).strip() or None
    except (netaddr.NotRegisteredError, netaddr.AddrFormatError, IndexError):
        return None


@dataclass
class Endpoint:
    id: str
    mac: str | None
    ips: list[str]
    vlans: list[int]
    first_seen: float
    last_seen: float
    flows: int
    is_router: bool = False
    arp_confirmed: bool = False
    oui_vendor: str | None = None
    ip_keys: list[tuple[int | None, bytes]] = field(default_factory=list, repr=False)


class EndpointTable:
    def __init__(self, max_bindings: int = MAX_BINDINGS) -> None:
        self._by_mac: dict[bytes, dict[tuple[int | None, bytes], Record]] = {}
        self._by_ip: dict[tuple[int | None, bytes], Record] = {}  # IPs seen only behind a router
        self._arp: set[tuple[bytes, bytes]] = set()  # (mac, ip) an ARP sender claimed
        self._mac_seen: dict[tuple[bytes, int | None], Record] = {}  # MACs with no IP (L2 only)
        self.routers: set[bytes] = set()
        self._router_traffic: dict[bytes, Record] = {}  # traffic routed through each router MAC
        self.max_bindings = max_bindings
        self.bindings = 0
        self.bindings_dropped = 0

    def see(
        self,
        mac: bytes | None,
        vlan: int | None,
        ip: bytes,
        first: float,
        last: float,
        flows: int = 1,
    ) -> None:
        """``mac`` carried traffic from or to ``ip`` on ``vlan`` between first and last."""
        if not is_host_ip(ip):
            return
        if mac is not None and mac[0] & 0x01:
            return  # sent to a broadcast/multicast MAC: a directed broadcast, no host has it
        if mac is None or mac == ZERO_MAC:  # no MAC (raw IP, loopback): the IP is the identity
            self._touch(self._by_ip, (vlan, ip), first, last, flows)
            return
        if mac not in self.routers and mac.startswith(VIRTUAL_ROUTER_PREFIXES):
            self._mark_router(mac)
        if mac in self.routers:
            self._touch_router(mac, first, last, flows)
            if (mac, ip) not in self._arp:  # the far host behind the router
                self._touch(self._by_ip, (vlan, ip), first, last, flows)
                return
        ips = self._host_bindings(mac)
        if ips is None:
            return
        self._touch(ips, (vlan, ip), first, last, flows)
        if len(ips) > ROUTER_MIN_IPV4 and self._looks_like_router(mac, ips):
            self._mark_router(mac)

    def see_arp(self, mac: bytes, vlan: int | None, ip: bytes, ts: float) -> None:
        """An ARP sender claims ``ip``: the strongest MAC/IP binding there is."""
        if is_group_mac(mac) or not is_host_ip(ip):
            return
        ips = self._host_bindings(mac)
        if ips is None:
            return
        self._arp.add((mac, ip))
        self._touch(ips, (vlan, ip), ts, ts, 0)
        if mac not in self.routers and mac.startswith(VIRTUAL_ROUTER_PREFIXES):
            self._mark_router(mac)

    def _host_bindings(self, mac: bytes) -> dict[tuple[int | None, bytes], Record] | None:
        """The MAC's binding table, created only while there is room for a binding."""
        ips = self._by_mac.get(mac)
        if ips is None:
            if self.bindings >= self.max_bindings:
                self.bindings_dropped += 1
                return None
            ips = self._by_mac[mac] = {}
        return ips

    def _touch_router(self, mac: bytes, first: float, last: float, flows: int) -> None:
        rec = self._router_traffic.get(mac)
        if rec is None:
            self._router_traffic[mac] = [first, last, flows]  # one per router: no cap needed
            return
        rec[0], rec[1], rec[2] = min(rec[0], first), max(rec[1], last), rec[2] + flows

    def see_mac(self, mac: bytes, vlan: int | None, ts: float) -> None:
        """A frame from ``mac`` with no IP (LLDP, CDP, STP...)."""
        if not is_group_mac(mac):
            self._touch(self._mac_seen, (mac, vlan), ts, ts, 0)

    def _touch(self, table: dict, key: object, first: float, last: float, flows: int) -> None:  # type: ignore[type-arg]
        rec = table.get(key)
        if rec is None:
            if self.bindings >= self.max_bindings:
                self.bindings_dropped += 1
                return
            table[key] = [first, last, flows]
            self.bindings += 1
            return
        if first < rec[0]:
            rec[0] = first
        if last > rec[1]:
            rec[1] = last
        rec[2] += flows

    def _looks_like_router(self, mac: bytes, ips: dict[tuple[int | None, bytes], Record]) -> bool:
        v4 = {ip for _, ip in ips if len(ip) == 4 and (mac, ip) not in self._arp}
        v6 = {ip for _, ip in ips if len(ip) == 16 and not _is_link_local_v6(ip)}
        return len(v4) > ROUTER_MIN_IPV4 or len(v6) > ROUTER_MIN_IPV6

    def _mark_router(self, mac: bytes) -> None:
        if mac in self.routers:
            return
        self.routers.add(mac)
        ips = self._by_mac.get(mac, {})
        for (vlan, ip), rec in list(ips.items()):
            if (mac, ip) in self._arp:
                continue  # the router's own address stays with it
            del ips[(vlan, ip)]
            self.bindings -= 1
            self._touch_router(mac, rec[0], rec[1], int(rec[2]))
            self._touch(self._by_ip, (vlan, ip), rec[0], rec[1], int(rec[2]))
        log.debug("MAC %s sends for many IPs: marked as router", mac_text(mac))

    def build(self) -> list[Endpoint]:
        """One Endpoint per host; IPs behind routers merge into the one MAC that owns them."""
        owner: dict[bytes, list[bytes]] = {}  # ip -> host MACs bound to it (any VLAN)
        for mac, ips in self._by_mac.items():
            for _, ip in ips:
                if mac not in self.routers or (mac, ip) in self._arp:
                    owner.setdefault(ip, []).append(mac)
        l2_vlans: dict[bytes, set[int]] = {}
        for mac, vlan in self._mac_seen:
            if vlan is not None:
                l2_vlans.setdefault(mac, set()).add(vlan)
        endpoints: dict[str, Endpoint] = {}
        for mac, ips in self._by_mac.items():
            is_router = mac in self.routers
            kept = {k: r for k, r in ips.items() if not is_router or (mac, k[1]) in self._arp}
            recs = list(kept.values())
            if is_router and mac in self._router_traffic:
                recs.append(self._router_traffic[mac])
            if not recs:
                continue
            ep = Endpoint(
                id=f"mac:{mac_text(mac)}",
                mac=mac_text(mac),
                ips=sorted({ip_text(ip) for _, ip in kept}, key=_ip_sort),
                vlans=sorted({v for v, _ in kept if v is not None}),
                first_seen=min(r[0] for r in recs),
                last_seen=max(r[1] for r in recs),
                flows=int(sum(r[2] for r in recs)),
                is_router=is_router,
                arp_confirmed=any((mac, ip) in self._arp for _, ip in kept),
                oui_vendor=oui_vendor(mac),
                ip_keys=list(kept),
            )
            ep.vlans = sorted(set(ep.vlans) | l2_vlans.get(mac, set()))
            endpoints[ep.id] = ep
        for (vlan, ip), rec in self._by_ip.items():
            macs = owner.get(ip, [])
            if len(set(macs)) == 1:  # routed copy of a host we know by its MAC
                ep = endpoints[f"mac:{mac_text(macs[0])}"]
                ep.first_seen = min(ep.first_seen, rec[0])
                ep.last_seen = max(ep.last_seen, rec[1])
                ep.flows += int(rec[2])
                ep.ip_keys.append((vlan, ip))
                continue
            ep_id = f"ip:{ip_text(ip)}" + (f"@vlan{vlan}" if vlan is not None else "")
            endpoints[ep_id] = Endpoint(
                id=ep_id,
                mac=None,
                ips=[ip_text(ip)],
                vlans=[vlan] if vlan is not None else [],
                first_seen=rec[0],
                last_seen=rec[1],
                flows=int(rec[2]),
                ip_keys=[(vlan, ip)],
            )
        for (mac, vlan), rec in self._mac_seen.items():
            ep_id = f"mac:{mac_text(mac)}"
            if ep_id in endpoints:  # the same MAC on another VLAN, or with IPs: widen it
                ep = endpoints[ep_id]
                if vlan is not None and vlan not in ep.vlans:
                    ep.vlans = sorted([*ep.vlans, vlan])
                ep.first_seen = min(ep.first_seen, rec[0])
                ep.last_seen = max(ep.last_seen, rec[1])
                continue
            endpoints[ep_id] = Endpoint(
                id=ep_id,
                mac=mac_text(mac),
                ips=[],
                vlans=[vlan] if vlan is not None else [],
                first_seen=rec[0],
                last_seen=rec[1],
                flows=0,
                oui_vendor=oui_vendor(mac),
            )
        return sorted(endpoints.values(), key=lambda e: e.id)


def _ip_sort(text: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(text)
    return addr.version, int(addr)
