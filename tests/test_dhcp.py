"""DHCPv4 / DHCPv6 parser: annotated fixtures, fingerprint table, robustness, captures.

Captures: the crafted pcaps/l2/dhcp_clinical.pcap against its truth file, the public DHCP
captures of ../shared/pcaps/public (skipped when absent) against PROVENANCE.md, and both
against Wireshark's DHCP dissector where tshark is installed.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import dhcp
from parsers.base import Direction, FlowKey, Observation, ParserState
from parsers.registry import Probe, default_registry
from parsers.vocabulary import canonical_device_type
from tests.frames import hx
from tests.test_lldp_cdp import L2, PUBLIC, analyze_json, analyzed, check_truth, evidence

# --- annotated fixtures ------------------------------------------------------------------
MONITOR = "00:09:fb:3a:7c:21"


def bootp(op: int, *, ciaddr: str = "00000000", yiaddr: str = "00000000",
          giaddr: str = "00000000", chaddr: str = "0009fb3a7c21", sname: bytes = b"",
          file: bytes = b"") -> bytes:
    """The 236 fixed bytes of RFC 2131 figure 1, then the magic cookie."""
    return (
        hx(f"{op:02x} 01 06 00")  # op, htype 1 = Ethernet, hlen 6, hops 0
        + hx("4d4f4e31")  # xid
        + hx("0000 8000")  # secs, flags (broadcast)
        + hx(ciaddr) + hx(yiaddr) + hx("00000000") + hx(giaddr)  # ciaddr yiaddr siaddr giaddr
        + hx(chaddr) + bytes(16 - len(hx(chaddr)))  # chaddr, padded to 16
        + sname.ljust(64, b"\0") + file.ljust(128, b"\0")  # sname, file
        + hx("63825363")  # magic cookie 99.130.83.99
    )


DISCOVER = bootp(1) + hx(
    "35 01 01"  # 53 DHCP message type: DISCOVER
    "3d 07 01 0009fb3a7c21"  # 61 client identifier: type 1 (Ethernet) + MAC
    "0c 05 4d4f4e3037"  # 12 host name "MON07"
    "3c 08 4d53465420352e30"  # 60 vendor class identifier "MSFT 5.0"
    "37 0d 01 0f 03 06 2c 2e 2f 1f 21 79 f9 2b fc"  # 55 PRL 1,15,3,6,44,46,47,31,33,121,249,43,252
    "32 04 0a141e29"  # 50 requested IP 10.20.30.41
    "51 0f 05 00 00 03 6d6f6e 07 6578616d706c65 00"  # 81 FQDN: flags S|E, rcodes, "mon.example"
    "a1 05 68747470 73"  # 161 MUD URL (truncated example "https")
    "ff"  # end
    "0000"  # padding after End: never read
)
ACK = bootp(2, yiaddr="0a141e29", giaddr="0a141e01") + hx(
    "35 01 05"  # 53: ACK
    "36 04 0a000005"  # 54 server identifier 10.0.0.5
    "33 04 00015180"  # 51 lease time (not read)
    "ff"
)
OFFER = ACK.replace(hx("35 01 05"), hx("35 01 02"))
BOOTP_REPLY = bootp(2, yiaddr="0a141e2a", chaddr="0009fb000001") + hx("ff")  # no option 53

DUID_LLT = "0001 0001 29b92700 444b5d102030"  # DUID-LLT: type 1, hw 1, time, MAC
SOLICIT = hx(
    "01 0011d6"  # msg-type 1 Solicit, transaction id
    f"0001 000e {DUID_LLT}"  # Client Identifier (14)
    "0008 0002 0000"  # Elapsed Time
    "0027 000e 01 036d6f6e 076578616d706c65 00"  # Client FQDN: flags S, "mon.example."
    "0010 0010 00007ed9 000a 47452042363530207632"  # Vendor Class: enterprise 32473,
    #                                                 one item "GE B650 v2"
    "0006 0006 0017 0018 0027"  # Option Request: 23, 24, 39
)
REPLY = hx(
    "07 0022d6"  # msg-type 7 Reply
    "0003 0028 0a0b0c0d 00000e10 00001518"  # IA_NA (40): IAID, T1, T2
    "0005 0018 20010db8002000300000000000000041 00001c20 00001c20"  # IA Address (24)
    f"0001 000e {DUID_LLT}"  # Client Identifier
    "0002 000a 0003 0001 001e7a4c1141"  # Server Identifier: DUID-LL (10)
)
RELAY_FORW = (
    hx("0c 00")  # msg-type 12 Relay-forward, hop count 0
    + hx("20010db8002000300000000000000001")  # link-address
    + hx("fe80000000000000464b5dfffe102030")  # peer-address: the client's link-local
    + hx(f"0009 {len(SOLICIT):04x}") + SOLICIT  # Relay Message
)


def flow(client: str = "0.0.0.0", server: str = "255.255.255.255", sport: int = 68,
         dport: int = 67) -> FlowKey:
    return FlowKey(client, sport, server, dport, "udp", 20)


def facts(obs: list[Observation]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for o in obs:
        out.setdefault((o.host, o.kind), []).append(o.value)
    return out


def feed(data: bytes, key: FlowKey | None = None,
         direction: Direction = Direction.TO_SERVER) -> list[Observation]:
    parser = dhcp.DhcpParser(key or flow())
    out = parser.feed(direction, data, 1.0)
    assert parser.state is ParserState.CONFIRMED, parser.reject_reason
    return out


def test_discover_fixture() -> None:
    got = facts(feed(DISCOVER))
    host = f"mac:{MONITOR}"
    assert got[(host, "dhcp.role")] == ["client"]
    assert got[(host, "dhcp.hostname")] == ["MON07"]
    assert got[(host, "dhcp.fqdn")] == ["mon.example"]
    assert got[(host, "dhcp.vendor_class")] == ["MSFT 5.0"]
    assert got[(host, "dhcp.parameter_request_list")] == ["1,15,3,6,44,46,47,31,33,121,249,43,252"]
    assert got[(host, "dhcp.client_id")] == [f"01:{MONITOR}"]
    assert got[(host, "dhcp.requested_ip")] == ["10.20.30.41"]
    assert got[(host, "dhcp.mud_url")] == ["https"]
    assert sorted(got[(host, "dhcp.os")]) == ["Windows", "Windows Vista/7/Server 2008"]
    assert got[(host, "dhcp.device_type")] == ["workstation", "workstation"]  # 0.3 and 0.4
    assert {h for h, _ in got} == {host}


def test_hostname_confidence_and_fqdn_fallback() -> None:
    obs = feed(DISCOVER)
    assert [o.confidence for o in obs if o.kind == "dhcp.hostname"] == [dhcp.CONF_HOSTNAME]
    no_12 = DISCOVER.replace(hx("0c 05 4d4f4e3037"), b"")
    obs = feed(no_12)
    hostnames = [(o.value, o.confidence) for o in obs if o.kind == "dhcp.hostname"]
    assert hostnames == [("mon.example", dhcp.CONF_FQDN_HOSTNAME)]


def test_ack_binds_mac_to_ip_and_names_server_and_relay() -> None:
    got = facts(feed(ACK, flow("10.20.30.1", "255.255.255.255", 67, 68)))
    assert got[(f"mac:{MONITOR}", "dhcp.assigned_ip")] == ["10.20.30.41"]
    assert got[("10.0.0.5", "dhcp.role")] == ["server"]
    assert got[("10.20.30.1", "dhcp.role")] == ["relay"]
    assert (f"mac:{MONITOR}", "dhcp.role") not in got  # a reply says nothing of the client's role
    got = facts(feed(OFFER, flow("10.20.30.1", "255.255.255.255", 67, 68)))
    assert got[(f"mac:{MONITOR}", "dhcp.offered_ip")] == ["10.20.30.41"]
    assert (f"mac:{MONITOR}", "dhcp.assigned_ip") not in got


def test_plain_bootp_reply_is_an_assignment() -> None:
    got = facts(feed(BOOTP_REPLY, flow("10.0.0.5", "10.20.30.42", 67, 68)))
    assert got[("mac:00:09:fb:00:00:01", "dhcp.assigned_ip")] == ["10.20.30.42"]
    assert got[("10.0.0.5", "dhcp.role")] == ["server"]  # no option 54: the sender


def test_split_options_and_overload() -> None:
    """RFC 3396: a long option split in two instances; RFC 2132 9.3: options in ``file``."""
    file_options = hx("0c 03 4d4f4e ff")  # host name "MON" in the file field
    msg = bootp(1, file=file_options) + hx(
        "35 01 03"  # REQUEST
        "34 01 01"  # 52 overload: file holds options
        "3c 04 5068696c"  # vendor class "Phil" ...
        "3c 03 697073"  # ... continued "ips" (RFC 3396 concatenation)
        "ff"
    )
    got = facts(feed(msg))
    assert got[(f"mac:{MONITOR}", "dhcp.vendor_class")] == ["Philips"]
    assert got[(f"mac:{MONITOR}", "dhcp.vendor")] == ["Philips"]  # the maker-name heuristic
    assert got[(f"mac:{MONITOR}", "dhcp.hostname")] == ["MON"]


def test_client_without_ethernet_chaddr_is_its_ciaddr() -> None:
    msg = bootp(1, ciaddr="0a141e07", chaddr="") .replace(hx("01 01 06 00"), hx("01 06 00 00"), 1)
    msg += hx("35 01 08 0c 02 7773 ff")  # INFORM, host name "ws"
    got = facts(feed(msg, flow("10.20.30.7", "10.0.0.5")))
    assert got[("10.20.30.7", "dhcp.hostname")] == ["ws"]


def test_dhcpv6_solicit_fixture() -> None:
    key = flow("fe80::464b:5dff:fe10:2030", "ff02::1:2", 546, 547)
    got = facts(feed(SOLICIT, key))
    host = "mac:44:4b:5d:10:20:30"  # from the DUID-LLT
    assert got[(host, "dhcp.role")] == ["client"]
    assert got[(host, "dhcp.duid")] == ["00:01:00:01:29:b9:27:00:44:4b:5d:10:20:30"]
    assert got[(host, "dhcp.fqdn")] == ["mon.example"]
    assert got[(host, "dhcp.hostname")] == ["mon.example"]
    assert got[(host, "dhcp.vendor_enterprise")] == ["32473"]
    assert got[(host, "dhcp.vendor_class")] == ["GE B650 v2"]
    assert got[(host, "dhcp.option_request")] == ["23,24,39"]


def test_dhcpv6_reply_assigns_address() -> None:
    key = flow("fe80::21e:7aff:fe4c:1141", "fe80::464b:5dff:fe10:2030", 547, 546)
    got = facts(feed(REPLY, key))
    assert got[("mac:44:4b:5d:10:20:30", "dhcp.assigned_ip")] == ["2001:db8:20:30::41"]
    assert got[("fe80::21e:7aff:fe4c:1141", "dhcp.role")] == ["server"]
    assert got[("fe80::21e:7aff:fe4c:1141", "dhcp.duid")] == ["00:03:00:01:00:1e:7a:4c:11:41"]


def test_dhcpv6_relay_forward_is_unwrapped() -> None:
    key = flow("2001:db8:20:30::1", "2001:db8::547", 547, 547)
    got = facts(feed(RELAY_FORW, key))
    assert got[("2001:db8:20:30::1", "dhcp.role")] == ["relay"]
    assert got[("mac:44:4b:5d:10:20:30", "dhcp.hostname")] == ["mon.example"]
    # A DUID without a MAC (DUID-EN): the client is the relay's peer address.
    en = SOLICIT.replace(hx(f"0001 000e {DUID_LLT}"), hx("0001 000a 0002 00007ed9 01020304"))
    relayed = RELAY_FORW[:34] + hx(f"0009 {len(en):04x}") + en
    got = facts(feed(relayed, key))
    assert got[("fe80::464b:5dff:fe10:2030", "dhcp.duid")] == ["00:02:00:00:7e:d9:01:02:03:04"]


def test_probe() -> None:
    for msg in (DISCOVER, ACK, BOOTP_REPLY, SOLICIT, REPLY, RELAY_FORW):
        assert dhcp.probe(Direction.TO_SERVER, msg) is Probe.MATCH
    dns_query = hx("1a2b 0100 0001 0000 0000 0000 03777777 076578616d706c65 03636f6d 00 0001 0001")
    for data in (b"", DISCOVER[:239], dns_query, SOLICIT[:-1], SOLICIT + b"\0",
                 hx("01 000000 0008 0002 0000")):  # a Solicit with no DUID
        assert dhcp.probe(Direction.TO_SERVER, data) is Probe.NO
    spec = default_registry().get("dhcp")
    assert spec is dhcp.SPEC and spec.transport == "udp" and 67 in spec.port_hints


def test_facts_once_per_flow_and_bad_datagrams_after_confirmation() -> None:
    parser = dhcp.DhcpParser(flow())
    assert parser.feed(Direction.TO_SERVER, DISCOVER, 1.0)
    assert parser.feed(Direction.TO_SERVER, DISCOVER, 2.0) == []  # nothing new
    assert parser.feed(Direction.TO_SERVER, b"\x01\x01\x06\x00" + bytes(40), 3.0) == []
    assert parser.state is ParserState.CONFIRMED and parser.skipped == 1
    other = DISCOVER.replace(hx("0009fb3a7c21"), hx("0009fb3a7c22"))
    assert {o.host for o in parser.feed(Direction.TO_SERVER, other, 4.0)} == {
        "mac:00:09:fb:3a:7c:22"
    }
    fresh = dhcp.DhcpParser(flow())
    assert fresh.feed(Direction.TO_SERVER, b"\x01\x01\x06\x00" + bytes(40), 1.0) == []
    assert fresh.state is ParserState.REJECTED  # bad before any good datagram: not DHCP


# --- the fingerprint table ----------------------------------------------------------------
def test_fingerprint_rows() -> None:
    text = (Path(dhcp.__file__).parent / "data" / "dhcp_fingerprints.csv").read_text("utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == len(dhcp.fingerprints()) >= 20
    for row in rows:
        assert row["source"].strip(), row
        assert 0 < float(row["confidence"]) <= 0.7, row  # never outweighs a device's own word
        if row["device_type"]:
            assert canonical_device_type(row["device_type"]) == row["device_type"], row
        if row["match"] == "regex":
            re.compile(row["pattern"])
        if row["field"] == "prl":
            assert re.fullmatch(r"\d+(,\d+)*", row["pattern"]), row


@pytest.mark.parametrize(
    ("field", "value", "os", "device_type", "vendor", "model"),
    [
        ("vendor_class", "MSFT 5.0", "Windows", "workstation", "", ""),
        ("vendor_class", "android-dhcp-13", "Android", "", "", ""),
        ("vendor_class", "dhcpcd-6.11.5:Linux-4.1.18-v7+:armv7l:BCM2709", "Linux", "", "", ""),
        ("vendor_class", "udhcp 1.36.1", "Linux (BusyBox udhcpc)", "", "", ""),
        ("vendor_class", "Cisco Systems, Inc. IP Phone CP-7960G", "", "phone", "Cisco", ""),
        ("vendor_class", "PXEClient:Arch:00000:UNDI:002001", "PXE boot firmware", "", "", ""),
        ("vendor_class", "Draeger Infinity M540", "", "", "Draeger", ""),
        ("prl", "1,28,2,3,15,6,119,12,44,47,26,121,42", "Linux (Ubuntu/Debian dhclient)", "",
         "", ""),
        ("prl", "1,3,6,15,119,252", "Apple iOS", "", "Apple", ""),
    ],
)
def test_fingerprint_matches(field: str, value: str, os: str, device_type: str, vendor: str,
                             model: str) -> None:
    matches = dhcp.match_fingerprints(field, value)
    assert matches
    fp, groups = matches[0]
    assert (fp.os or groups.get("os", "")) == os
    assert (fp.device_type, fp.vendor, fp.model) == (device_type, vendor, model)


def test_fingerprint_groups_fill_os_version_and_model() -> None:
    vc = b"Cisco Systems, Inc. IP Phone CP-7960G"
    got = facts(feed(bootp(1) + hx("35 01 01 3c") + bytes([len(vc)]) + vc + hx("ff")))
    assert got[(f"mac:{MONITOR}", "dhcp.model")] == ["CP-7960G"]
    assert got[(f"mac:{MONITOR}", "dhcp.device_type")] == ["phone"]
    vc = b"android-dhcp-13"
    got = facts(feed(bootp(1) + hx("35 01 01 3c") + bytes([len(vc)]) + vc + hx("ff")))
    assert got[(f"mac:{MONITOR}", "dhcp.os")] == ["Android 13"]


def test_prefixes_are_not_fingerprints() -> None:
    """An option list that merely starts like a known one matches nothing (exact rows)."""
    assert not dhcp.match_fingerprints("prl", "1,3,6")
    assert not dhcp.match_fingerprints("prl", "1,28,2,3,15,6,12,99")


# --- parsers never raise -----------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=700))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert dhcp.probe(Direction.TO_SERVER, data) in (Probe.MATCH, Probe.NO)
    parser = dhcp.DhcpParser(flow())
    parser.feed(Direction.TO_SERVER, data, 1.0)
    parser.feed(Direction.TO_CLIENT, data, 2.0)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([DISCOVER, ACK, SOLICIT, REPLY, RELAY_FORW]), st.data())
def test_mutated_messages_never_raise(base: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(base)))
    tail = data.draw(st.binary(max_size=300))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)),
                               max_size=8))
    msg = bytearray(base[:cut] + tail)
    for pos, value in flips:
        if pos < len(msg):
            msg[pos] = value
    parser = dhcp.DhcpParser(flow("fe80::1", "ff02::1:2", 546, 547))
    for obs in parser.feed(Direction.TO_SERVER, bytes(msg), 1.0):
        assert obs.host and obs.value and len(obs.value) < 1024


# --- captures -----------------------------------------------------------------------------
def test_crafted_capture_matches_truth() -> None:
    path = L2 / "dhcp_clinical.pcap"
    check_truth(path)
    truth = json.loads(path.with_suffix(".truth.json").read_text())
    seen = {(e.kind, e.host, e.value) for e in evidence(path)}
    for dev in truth["devices"]:
        assert ("dhcp.assigned_ip", f"mac:{dev['mac']}", dev["assigned_ip"]) in seen
    report = analyze_json(path)
    assert report["stats"]["apps"]["dhcp"] >= 4
    assert not report["stats"]["parser_rejects"]  # the odd BOOTP datagram was skipped


PUBLIC_DHCP = {
    "chrissanders__dhcp_nolease_initialization.pcapng": [
        ("dhcp.hostname", "mac:00:0c:29:59:fd:21", "ubuntu2"),
        ("dhcp.os", "mac:00:0c:29:59:fd:21", "Linux (Ubuntu/Debian dhclient)"),
        ("dhcp.offered_ip", "mac:00:0c:29:59:fd:21", "192.168.1.10"),
        ("dhcp.assigned_ip", "mac:00:0c:29:59:fd:21", "192.168.1.10"),
        ("dhcp.role", "192.168.1.5", "server"),
    ],
    "chrissanders__dhcp_inlease_renewal.pcapng": [
        ("dhcp.hostname", "mac:00:0c:29:59:fd:21", "ubuntu2"),
        ("dhcp.assigned_ip", "mac:00:0c:29:59:fd:21", "192.168.1.10"),
    ],
    "chrissanders__dhcp6_outlease_acquisition.pcapng": [
        ("dhcp.role", "mac:00:0c:29:5e:77:44", "client"),
        ("dhcp.assigned_ip", "mac:00:0c:29:5e:77:44", "2001:db8:1:2::1002"),
        ("dhcp.role", "fe80::20c:29ff:fe1f:a755", "server"),
    ],
    "tcpdump__dhcp-mud.pcap": [
        ("dhcp.hostname", "mac:b8:27:eb:b8:53:c8", "raspberrypi"),
        ("dhcp.vendor_class", "mac:b8:27:eb:b8:53:c8",
         "dhcpcd-6.11.5:Linux-4.1.18-v7+:armv7l:BCM2709"),
        ("dhcp.os", "mac:b8:27:eb:b8:53:c8", "Linux 4.1.18-v7+"),
        ("dhcp.parameter_request_list", "mac:b8:27:eb:b8:53:c8",
         "1,121,33,3,6,12,15,28,42,51,54,58,59,100,101,119"),
        ("dhcp.mud_url", "mac:b8:27:eb:b8:53:c8",
         "https://mudctl.example.com/.well-known/mud/v1/rasbp101"),
    ],
    "tcpdump__dhcp-rfc3004.pcap": [
        ("dhcp.user_class", "mac:00:0c:29:1f:74:06", "subopt1"),
        ("dhcp.user_class", "mac:00:0c:29:1f:74:06", "subopt2-123456789"),
        ("dhcp.assigned_ip", "mac:00:0c:29:1f:74:06", "192.168.1.4"),
        ("dhcp.role", "192.168.1.1", "server"),
    ],
    "tcpdump__dhcp-rfc5859.pcap": [
        ("dhcp.parameter_request_list", "mac:00:0c:29:1f:74:06", "1,28,2,3,15,6,12,150"),
        ("dhcp.assigned_ip", "mac:00:0c:29:1f:74:06", "192.168.1.4"),
    ],
}


@pytest.mark.parametrize("name", sorted(PUBLIC_DHCP))
def test_public_dhcp_captures(name: str) -> None:
    path = PUBLIC / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    seen = {(e.kind, e.host, e.value) for e in evidence(path)}
    missing = [fact for fact in PUBLIC_DHCP[name] if fact not in seen]
    assert not missing
    assert not analyzed(path)[1]["parser_errors"]


# --- Wireshark cross-check ----------------------------------------------------------------
TSHARK_V4 = ["dhcp.hw.mac_addr", "dhcp.option.dhcp", "dhcp.option.hostname",
             "dhcp.option.vendor_class_id", "dhcp.option.request_list_item", "dhcp.ip.your"]
CROSS_CHECK = [L2 / "dhcp_clinical.pcap"] + [PUBLIC / n for n in sorted(PUBLIC_DHCP)
                                             if "dhcp6" not in n]


def tshark_v4(path: Path) -> set[tuple[str, str, str]]:
    cmd = ["tshark", "-r", str(path), "-Y", "dhcp", "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in TSHARK_V4:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    facts: set[tuple[str, str, str]] = set()
    for line in out.splitlines():
        mac, msg_type, hostname, vendor_class, prl, yiaddr = (line.split("\t") + [""] * 6)[:6]
        host = f"mac:{mac.split(',')[0]}"  # option 61 may repeat the MAC: the first is chaddr
        if hostname:
            facts.add(("dhcp.hostname", host, hostname))
        if vendor_class:
            facts.add(("dhcp.vendor_class", host, vendor_class))
        if prl:
            facts.add(("dhcp.parameter_request_list", host, prl))
        if msg_type == "5" and yiaddr != "0.0.0.0":
            facts.add(("dhcp.assigned_ip", host, yiaddr))
    return facts


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("path", CROSS_CHECK, ids=lambda p: p.name)
def test_fields_match_tshark(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} absent")
    theirs = tshark_v4(path)
    assert theirs
    mine = {(e.kind, e.host, e.value) for e in evidence(path)}
    assert theirs <= mine, sorted(theirs - mine)


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", ["dhcp_clinical.pcap",
                                  "chrissanders__dhcp6_outlease_acquisition.pcapng"])
def test_dhcpv6_matches_tshark(name: str) -> None:
    path = (L2 if name.startswith("dhcp_") else PUBLIC) / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "dhcpv6.msgtype == 7", "-T", "fields",
         "-e", "dhcpv6.duidll.link_layer_addr", "-e", "dhcpv6.duidllt.link_layer_addr",
         "-e", "dhcpv6.iaaddr.ip", "-E", "occurrence=f"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    mine = {(e.kind, e.host, e.value) for e in evidence(path)}
    rows = [line.split("\t") for line in out.splitlines()]
    assert rows
    for ll, llt, addr in rows:
        mac = ll or llt  # the first DUID in the Reply: tshark's order, the client's here
        assert ("dhcp.assigned_ip", f"mac:{mac}", addr) in mine, (mac, addr)
