"""agent.endpoints: MAC/IP bindings, router detection, ARP, group addresses, OUI, the cap."""

from __future__ import annotations

import pytest

from agent.endpoints import (
    ROUTER_MIN_IPV4,
    ROUTER_MIN_IPV6,
    Endpoint,
    EndpointTable,
    oui_vendor,
)
from tests.frames import ip, mac

HOST = mac("00:09:fb:12:34:56")  # Philips OUI
HOST2 = mac("00:1b:21:3a:4f:5e")
ROUTER = mac("00:1b:21:00:00:01")
ROUTER_IP = "10.1.20.1"


def by_id(t: EndpointTable) -> dict[str, Endpoint]:
    return {e.id: e for e in t.build()}


def route(
    t: EndpointTable, router: bytes, vlan: int | None, count: int, first: float = 1.0
) -> list[str]:
    """``router`` carries traffic for ``count`` distinct far IPv4 hosts."""
    ips = [f"10.5.0.{10 + i}" for i in range(count)]
    for i, text in enumerate(ips):
        t.see(router, vlan, ip(text), first + i, first + i + 1)
    return ips


# --------------------------------------------------------------------------- hosts
def test_mac_with_one_ip_is_a_mac_endpoint() -> None:
    t = EndpointTable()
    t.see(HOST, 10, ip("10.1.20.15"), 5.0, 6.0)
    t.see(HOST, 10, ip("10.1.20.15"), 3.0, 9.0, flows=2)  # a later flow widens the record
    (ep,) = t.build()
    assert ep.id == "mac:00:09:fb:12:34:56" and ep.mac == "00:09:fb:12:34:56"
    assert (ep.ips, ep.vlans, ep.first_seen, ep.last_seen, ep.flows) == (
        ["10.1.20.15"],
        [10],
        3.0,
        9.0,
        3,
    )
    assert not ep.is_router and not ep.arp_confirmed
    assert ep.oui_vendor is not None and "Philips" in ep.oui_vendor
    assert t.bindings == 1


def test_host_with_a_few_ipv4_addresses_is_not_a_router() -> None:
    t = EndpointTable()
    route(t, HOST, 10, ROUTER_MIN_IPV4)  # exactly at the threshold: still a host
    (ep,) = t.build()
    assert not ep.is_router and len(ep.ips) == ROUTER_MIN_IPV4 and not t.routers


def test_ipv6_host_with_link_local_and_many_addresses_is_not_a_router() -> None:
    t = EndpointTable()
    t.see(HOST, 10, ip("10.1.20.15"), 1.0, 2.0)
    for i in range(ROUTER_MIN_IPV6):  # SLAAC + temporary addresses, at the threshold
        t.see(HOST, 10, ip(f"2001:db8:1::{i + 1:x}"), 1.0, 2.0)
    for i in range(12):  # link-local addresses never count
        t.see(HOST, 10, ip(f"fe80::{i + 1:x}"), 1.0, 2.0)
    (ep,) = t.build()
    assert not ep.is_router and len(ep.ips) == 1 + ROUTER_MIN_IPV6 + 12
    assert ep.ips[0] == "10.1.20.15"  # IPv4 sorts first


def test_mac_with_too_many_global_ipv6_addresses_is_a_router() -> None:
    t = EndpointTable()
    for i in range(ROUTER_MIN_IPV6 + 1):
        t.see(ROUTER, 10, ip(f"2001:db8:9::{i + 1:x}"), 1.0, 2.0)
    assert ROUTER in t.routers
    assert "ip:2001:db8:9::1@vlan10" in by_id(t)


def test_l2_only_mac_is_an_endpoint_and_adds_vlans() -> None:
    t = EndpointTable()
    t.see_mac(HOST2, 30, 7.0)  # LLDP, no IP
    t.see(HOST, 10, ip("10.1.20.15"), 1.0, 2.0)
    t.see_mac(HOST, 99, 3.0)
    eps = by_id(t)
    assert eps["mac:00:1b:21:3a:4f:5e"].ips == [] and eps["mac:00:1b:21:3a:4f:5e"].vlans == [30]
    assert eps["mac:00:09:fb:12:34:56"].vlans == [10, 99]


# --------------------------------------------------------------------------- routers
def test_mac_with_more_than_five_ipv4_addresses_is_a_router() -> None:
    t = EndpointTable()
    ips = route(t, ROUTER, 10, ROUTER_MIN_IPV4 + 1)
    assert t.routers == {ROUTER}
    eps = by_id(t)
    for text in ips:
        ep = eps[f"ip:{text}@vlan10"]
        assert (ep.mac, ep.ips, ep.vlans) == (None, [text], [10])
    router_ep = eps["mac:00:1b:21:00:00:01"]
    assert router_ep.is_router and router_ep.ips == []  # never bound to the IPs behind it
    assert t.bindings == len(ips)  # moved, not duplicated


def test_ips_behind_router_without_vlan_have_no_suffix() -> None:
    t = EndpointTable()
    ips = route(t, ROUTER, None, 8)
    assert {f"ip:{x}" for x in ips} <= set(by_id(t))


def test_ips_seen_after_router_marking_also_become_ip_endpoints() -> None:
    t = EndpointTable()
    route(t, ROUTER, 10, 6)
    t.see(ROUTER, 20, ip("10.6.0.1"), 50.0, 60.0, flows=4)
    ep = by_id(t)["ip:10.6.0.1@vlan20"]
    assert (ep.first_seen, ep.last_seen, ep.flows, ep.vlans) == (50.0, 60.0, 4, [20])


def test_routed_ip_merges_into_the_mac_that_owns_it() -> None:
    t = EndpointTable()
    t.see(HOST, 20, ip("10.5.0.12"), 100.0, 110.0)  # the host on its own VLAN
    route(t, ROUTER, 10, 6, first=1.0)  # 10.5.0.12 also seen routed on VLAN 10 at 3..4
    eps = by_id(t)
    assert "ip:10.5.0.12@vlan10" not in eps
    host = eps["mac:00:09:fb:12:34:56"]
    assert host.ips == ["10.5.0.12"] and (host.first_seen, host.last_seen) == (3.0, 110.0)
    assert (20, ip("10.5.0.12")) in host.ip_keys and (10, ip("10.5.0.12")) in host.ip_keys
    assert "ip:10.5.0.11@vlan10" in eps


def test_routed_ip_claimed_by_two_macs_is_not_merged() -> None:
    t = EndpointTable()
    t.see(HOST, 20, ip("10.5.0.12"), 1.0, 2.0)
    t.see(HOST2, 20, ip("10.5.0.12"), 5.0, 6.0)  # readdressed, or a duplicate address
    route(t, ROUTER, 10, 6)
    eps = by_id(t)
    assert "ip:10.5.0.12@vlan10" in eps
    assert eps["mac:00:09:fb:12:34:56"].ips == eps["mac:00:1b:21:3a:4f:5e"].ips == ["10.5.0.12"]


@pytest.mark.parametrize(
    "vmac",
    [
        "00:00:0c:07:ac:01",  # HSRP v1 group 1
        "00:00:0c:9f:f0:01",  # HSRP v2 group 1
        "00:00:5e:00:01:0a",  # VRRP IPv4 VRID 10
        "00:00:5e:00:02:0a",  # VRRP IPv6 VRID 10
        "00:07:b4:00:01:02",  # GLBP
    ],
)
def test_virtual_router_mac_is_a_router_from_the_first_flow(vmac: str) -> None:
    t = EndpointTable()
    t.see(mac(vmac), 10, ip("10.5.0.10"), 1.0, 2.0)
    assert t.routers == {mac(vmac)}
    eps = by_id(t)
    assert list(eps) == ["ip:10.5.0.10@vlan10"]


def test_virtual_router_mac_seen_only_in_arp_is_a_router() -> None:
    t = EndpointTable()
    t.see_arp(mac("00:00:0c:07:ac:01"), 10, ip(ROUTER_IP), 1.0)
    (ep,) = t.build()
    assert ep.is_router and ep.ips == [ROUTER_IP]


# --------------------------------------------------------------------------- ARP
def test_arp_claimed_ip_stays_with_the_router_mac() -> None:
    t = EndpointTable()
    t.see_arp(ROUTER, 10, ip(ROUTER_IP), 0.5)
    t.see(ROUTER, 10, ip(ROUTER_IP), 1.0, 2.0)  # traffic to the router itself
    route(t, ROUTER, 10, 6)
    eps = by_id(t)
    router = eps["mac:00:1b:21:00:00:01"]
    assert router.is_router and router.arp_confirmed and router.ips == [ROUTER_IP]
    assert f"ip:{ROUTER_IP}@vlan10" not in eps
    assert "ip:10.5.0.10@vlan10" in eps


def test_arp_claimed_ip_seen_after_router_marking_is_not_duplicated() -> None:
    t = EndpointTable()
    route(t, ROUTER, 10, 6)
    t.see_arp(ROUTER, 10, ip(ROUTER_IP), 3.0)
    t.see(ROUTER, 10, ip(ROUTER_IP), 4.0, 5.0)  # e.g. SNMP polling of the gateway
    eps = by_id(t)
    assert eps["mac:00:1b:21:00:00:01"].ips == [ROUTER_IP]
    assert f"ip:{ROUTER_IP}@vlan10" not in eps


def test_arp_claimed_addresses_do_not_make_a_router() -> None:
    t = EndpointTable()
    for i in range(ROUTER_MIN_IPV4 + 3):  # a multi-homed server answering ARP for each
        a = ip(f"10.1.20.{100 + i}")
        t.see_arp(HOST, 10, a, 1.0)
        t.see(HOST, 10, a, 1.0, 2.0)
    (ep,) = t.build()
    assert not ep.is_router and ep.arp_confirmed and len(ep.ips) == ROUTER_MIN_IPV4 + 3


def test_arp_binding_alone_makes_an_endpoint() -> None:
    t = EndpointTable()
    t.see_arp(HOST, 10, ip("10.1.20.15"), 4.0)
    (ep,) = t.build()
    assert (ep.ips, ep.arp_confirmed, ep.first_seen, ep.last_seen, ep.flows) == (
        ["10.1.20.15"],
        True,
        4.0,
        4.0,
        0,
    )


# --------------------------------------------------------------------------- group addresses
@pytest.mark.parametrize(
    "group_mac",
    ["ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:fb", "33:33:00:00:00:01", "01:80:c2:00:00:0e"],
)
def test_group_macs_never_become_endpoints(group_mac: str) -> None:
    t = EndpointTable()
    t.see(mac(group_mac), 10, ip("10.1.20.15"), 1.0, 2.0)
    t.see_arp(mac(group_mac), 10, ip("10.1.20.16"), 1.0)
    t.see_mac(mac(group_mac), 10, 1.0)
    eps = by_id(t)
    assert all(e.mac != group_mac for e in eps.values())
    # Traffic to a broadcast/multicast MAC under a unicast-looking IP is a directed broadcast
    # (10.20.0.255 of a /24): no host owns that address, so no endpoint is made for it.
    assert list(eps) == []
    assert not t.routers


@pytest.mark.parametrize(
    "addr",
    [
        "255.255.255.255",
        "224.0.0.251",
        "239.255.255.250",
        "0.0.0.0",
        "10.1.255.255",
        "ff02::1",
        "ff05::1:3",
        "::",
    ],
)
def test_group_and_unspecified_ips_never_become_endpoints(addr: str) -> None:
    t = EndpointTable()
    t.see(HOST, 10, ip(addr), 1.0, 2.0)
    t.see(None, 10, ip(addr), 1.0, 2.0)
    t.see_arp(HOST, 10, ip(addr), 1.0)  # e.g. an ARP probe from 0.0.0.0
    assert t.build() == [] and t.bindings == 0


def test_many_multicast_destinations_do_not_make_a_router() -> None:
    t = EndpointTable()
    for i in range(20):
        t.see(HOST, 10, ip(f"239.1.1.{i + 1}"), 1.0, 2.0)
    t.see(HOST, 10, ip("10.1.20.15"), 1.0, 2.0)
    assert not t.routers and by_id(t)["mac:00:09:fb:12:34:56"].ips == ["10.1.20.15"]


# --------------------------------------------------------------------------- OUI vendor
def test_oui_vendor_from_netaddr() -> None:
    vendor = oui_vendor(mac("00:09:fb:01:02:03"))
    assert vendor is not None and "Philips" in vendor


def test_locally_administered_mac_has_no_vendor() -> None:
    assert oui_vendor(mac("02:09:fb:01:02:03")) is None  # 00:09:fb with the U/L bit set
    assert oui_vendor(mac("da:a1:19:00:00:01")) is None  # a randomised phone MAC
    t = EndpointTable()
    t.see(mac("02:09:fb:01:02:03"), None, ip("10.1.20.15"), 1.0, 2.0)
    assert t.build()[0].oui_vendor is None


# --------------------------------------------------------------------------- cap
def test_max_bindings_cap_counts_drops() -> None:
    t = EndpointTable(max_bindings=3)
    for i in range(5):
        t.see(HOST, 10, ip(f"10.1.20.{i + 1}"), 1.0, 2.0)
    assert (t.bindings, t.bindings_dropped) == (3, 2)
    t.see(HOST, 10, ip("10.1.20.1"), 0.5, 9.0)  # an existing binding still widens
    t.see_mac(HOST2, 10, 1.0)
    t.see_arp(HOST2, 10, ip("10.1.20.50"), 1.0)
    assert (t.bindings, t.bindings_dropped) == (3, 4)
    ep = by_id(t)["mac:00:09:fb:12:34:56"]
    assert ep.ips == ["10.1.20.1", "10.1.20.2", "10.1.20.3"]
    assert (ep.first_seen, ep.last_seen) == (0.5, 9.0)


def test_dropped_binding_leaves_no_empty_endpoint() -> None:
    t = EndpointTable(max_bindings=1)
    t.see(HOST, 10, ip("10.1.20.15"), 100.0, 200.0)
    t.see(HOST2, 10, ip("10.1.20.16"), 100.0, 200.0)  # dropped
    assert t.bindings_dropped == 1
    assert [e.id for e in t.build()] == ["mac:00:09:fb:12:34:56"]


def test_router_marking_frees_and_reuses_bindings() -> None:
    t = EndpointTable(max_bindings=6)
    route(t, ROUTER, 10, 6)  # the 6th binding triggers marking: 6 moved to _by_ip
    assert (t.bindings, t.bindings_dropped) == (6, 0)
    assert len([e for e in t.build() if e.id.startswith("ip:")]) == 6


def test_router_endpoint_keeps_its_first_and_last_seen() -> None:
    t = EndpointTable()
    route(t, ROUTER, 10, 6)
    ep = by_id(t)["mac:00:1b:21:00:00:01"]
    assert (ep.first_seen, ep.last_seen) == (1.0, 7.0)


def test_l2_only_mac_keeps_every_vlan_it_was_seen_on() -> None:
    """Regression (tshark differential on tcpdump__rpvstp-trunk-native-vid5): a switch's STP
    frames untagged and tagged VLAN 1 gave an endpoint with no VLAN at all."""
    table = EndpointTable()
    switch = bytes.fromhex("001f6d96ec04")
    table.see_mac(switch, None, 1.0)
    table.see_mac(switch, 1, 3.0)
    (ep,) = table.build()
    assert ep.vlans == [1] and (ep.first_seen, ep.last_seen) == (1.0, 3.0)
