"""LLDP and CDP frame parsers: annotated fixtures, robustness, captures through the pipeline.

Crafted captures (pcaps/l2, made by make_l2_pcaps.py) are compared with their truth files;
public tcpdump captures (../shared/pcaps/public, skipped when absent) with what their
PROVENANCE.md says; both against Wireshark's LLDP/CDP dissectors where tshark is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.capture.files import open_capture
from agent.evidence import Evidence
from agent.pipeline import Analyzer
from parsers import cdp, lldp
from parsers.base import L2Frame, Observation
from parsers.registry import LLC, default_registry
from tests.frames import hx

ROOT = Path(__file__).resolve().parents[1]
L2 = ROOT / "pcaps" / "l2"
PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "public"
CLAIMS = ("device_type", "vendor", "model", "software_version", "serial")

# --- annotated fixtures ------------------------------------------------------------------
# An access switch's LLDPDU (everything after the EtherType 0x88CC).
LLDP_SWITCH = hx(
    "0207 04 001e7a4c1100"  # Chassis ID (type 1, len 7): subtype 4 = MAC address
    "0408 05 4769312f302f37"  # Port ID (type 2, len 8): subtype 5 = interface name "Gi1/0/7"
    "0602 0078"  # TTL (type 3, len 2): 120 s
    "0807 49435533206d6f"  # Port Description (type 4, len 7): "ICU3 mo"
    "0a03 737731"  # System Name (type 5, len 3): "sw1"
    "0e04 0014 0004"  # Capabilities (type 7, len 4): bridge+router supported, bridge enabled
    "100c 05 01 0a140002 02 00000001 00"  # Mgmt address (type 8, len 12): IPv4 10.20.0.2,
    #                                       ifIndex 1, no OID
    "fe06 0080c2 01 0014"  # 802.1 (type 127): subtype 1 Port VLAN ID 20
    "fe0a 0080c2 03 0014 03 494355"  # 802.1 subtype 3 VLAN Name: VID 20, length 3, "ICU"
    "fe07 0012bb 01 000f 04"  # LLDP-MED capabilities 0x000f, device type 4 = network connectivity
    "0000"  # End of LLDPDU
    "000000000000"  # Ethernet padding after the End TLV: never read
)

# A patient monitor announcing LLDP-MED inventory (crafted, values illustrative).
LLDP_MONITOR = hx(
    "0207 04 0009fb3a7c21"  # Chassis ID: MAC
    "0407 03 0009fb3a7c21"  # Port ID (len 7): subtype 3 = MAC address
    "0602 0078"  # TTL 120
    "0a05 4d4f4e3037"  # System Name "MON07"
    "0e04 0080 0080"  # Capabilities: station only, enabled
    "fe07 0012bb 01 0021 01"  # LLDP-MED capabilities + inventory, class I endpoint
    "fe08 0012bb 07 4d2e3030"  # MED subtype 7 software revision "M.00"
    "fe06 0012bb 08 5331"  # MED subtype 8 serial number "S1"
    "fe1b 0012bb 09 5068696c697073204d65646963616c2053797374656d73"  # MED 9 manufacturer
    #                                                   "Philips Medical Systems" (23)
    "fe09 0012bb 0a 4d58383030"  # MED subtype 10 model name "MX800"
    "fe17 00005e 01 68747470733a2f2f6d2e6578616d706c652f78"  # IANA subtype 1 MUD URL
    #                                               "https://m.example/x" (19)
    "0000"
)

# CDP from an 802.3 frame: the payload starts at the LLC header.
CDP_SWITCH = hx(
    "aaaa03 00000c 2000"  # LLC DSAP/SSAP SNAP, UI; SNAP OUI Cisco, PID 0x2000 = CDP
    "02 b4 0000"  # CDP version 2, TTL 180, checksum (not verified)
    "0001 0006 5331"  # Device ID (type 1, len 6 incl. header): "S1"
    "0006 0017 636973636f2057532d43333536302d32345453"  # Platform: "cisco WS-C3560-24TS"
    "0003 0014 466173744574686572 6e6574302f3133"  # Port ID: "FastEthernet0/13"
    "0004 0008 00000028"  # Capabilities: 0x28 = switch, IGMP
    "000a 0006 0001"  # Native VLAN 1
    "0002 0011 00000001 01 01 cc 0004 c0a80001"  # Addresses: 1, NLPID IP, 192.168.0.1
    "0005 000f 5343435020382e35283229"  # Software version: "SCCP 8.5(2)" (unrecognised)
)


def frame(payload: bytes, ethertype: int, src: str = "00:1e:7a:4c:11:07") -> L2Frame:
    return L2Frame(src_mac=src, dst_mac=None, vlan=None, ethertype=ethertype, payload=payload,
                   ts=1.0)


def facts(obs: list[Observation]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for o in obs:
        out.setdefault(o.kind, []).append(o.value)
    return out


def claim(obs: list[Observation], kind: str) -> tuple[str, float]:
    best = max((o for o in obs if o.kind == kind), key=lambda o: o.confidence)
    return best.value, best.confidence


def test_lldp_switch_fixture() -> None:
    obs = lldp.parse_frame(frame(LLDP_SWITCH, 0x88CC))
    assert {o.host for o in obs} == {"mac:00:1e:7a:4c:11:07"}
    got = facts(obs)
    assert got["lldp.chassis_id"] == ["00:1e:7a:4c:11:00"]
    assert got["lldp.port_id"] == ["Gi1/0/7"]
    assert got["lldp.port_description"] == ["ICU3 mo"]
    assert got["lldp.system_name"] == ["sw1"]
    assert got["lldp.hostname"] == ["sw1"]
    assert got["lldp.capabilities"] == ["bridge"]
    assert got["lldp.capabilities_supported"] == ["bridge,router"]
    assert got["lldp.management_address"] == ["10.20.0.2"]
    assert got["lldp.native_vlan"] == ["20"]
    assert got["lldp.vlan_name"] == ["20 ICU"]
    assert got["lldp.med_device_class"] == ["network connectivity"]
    # bridge enabled (0.5) and MED network connectivity (0.7): one claim, the surer reason
    assert got["lldp.device_type"] == ["network-infrastructure"]
    assert claim(obs, "lldp.device_type") == ("network-infrastructure", 0.7)


def test_lldp_med_inventory_fixture() -> None:
    obs = lldp.parse_frame(frame(LLDP_MONITOR, 0x88CC, src="00:09:FB:3A:7C:21"))
    assert {o.host for o in obs} == {"mac:00:09:fb:3a:7c:21"}  # lower case
    got = facts(obs)
    assert got["lldp.port_id"] == ["00:09:fb:3a:7c:21"]
    assert got["lldp.software_revision"] == ["M.00"]
    assert got["lldp.serial_number"] == ["S1"]
    assert got["lldp.manufacturer"] == ["Philips Medical Systems"]
    assert got["lldp.model_name"] == ["MX800"]
    assert got["lldp.mud_url"] == ["https://m.example/x"]
    assert got["lldp.med_device_class"] == ["endpoint class I"]
    assert claim(obs, "lldp.vendor") == ("Philips", lldp.CONF_MED_VENDOR)  # normalised
    assert [o.raw for o in obs if o.kind == "lldp.vendor"] == ["Philips Medical Systems"]
    assert claim(obs, "lldp.model") == ("MX800", lldp.CONF_MED_MODEL)
    assert claim(obs, "lldp.serial") == ("S1", lldp.CONF_MED_SERIAL)
    assert claim(obs, "lldp.software_version") == ("M.00", lldp.CONF_MED_SOFTWARE)
    assert "lldp.device_type" not in got  # station-only, class I: LLDP cannot tell the type


def test_lldp_overrun_keeps_what_came_before() -> None:
    cut = LLDP_SWITCH[:9] + hx("0a40 7377")  # System Name claims 64 bytes, 2 follow
    info = lldp.decode_lldpdu(cut)
    assert info.chassis_id == "00:1e:7a:4c:11:00" and info.system_name is None
    assert info.error and "overruns" in info.error
    assert facts(lldp.parse_frame(frame(cut, 0x88CC))) == {
        "lldp.chassis_id": ["00:1e:7a:4c:11:00"]
    }


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x02", hx("0a03 737731 0207 04 001e7a4c1100"), hx("0209 04 001e7a4c1100"),
     b"\xff" * 7],
    ids=["empty", "one-byte", "sysname-first", "chassis-overrun", "garbage"],
)
def test_lldp_not_an_lldpdu(payload: bytes) -> None:
    assert lldp.parse_frame(frame(payload, 0x88CC)) == []


def test_lldp_ignores_other_ethertypes() -> None:
    assert lldp.parse_frame(frame(LLDP_SWITCH, 0x88CD)) == []


def test_system_descriptions() -> None:
    ios = lldp.describe_system(
        "Cisco IOS Software, C3560 Software (C3560-ADVIPSERVICESK9-M), Version 12.2(44)SE, "
        "RELEASE SOFTWARE (fc1)"
    )
    assert ios == lldp.SystemDescription("Cisco", "Cisco IOS", "12.2(44)SE", "C3560",
                                         "network-infrastructure")
    linux = lldp.describe_system("Ubuntu 14.04.5 LTS Linux 3.13.0-106-generic #153-Ubuntu SMP")
    assert linux is not None and linux.vendor is None and linux.version == "3.13.0-106-generic"
    assert lldp.describe_system("Philips IntelliVue MX800") is None
    for pattern in lldp.SYSTEM_DESCRIPTIONS:
        assert pattern.source


def test_linux_host_gives_os_not_software_version() -> None:
    desc = b"Debian GNU/Linux 12 (bookworm) Linux 6.1.0-18-amd64 #1 SMP x86_64"
    payload = LLDP_SWITCH[:9] + bytes([0x0C, len(desc)]) + desc + hx("0e04 0014 0014 0000")
    obs = lldp.parse_frame(frame(payload, 0x88CC))
    got = facts(obs)
    assert got["lldp.os"] == ["Linux 6.1.0-18-amd64"]
    assert "lldp.software_version" not in got and "lldp.vendor" not in got
    # lldpd on a Linux router/bridge: infrastructure, but only weakly
    assert claim(obs, "lldp.device_type") == ("network-infrastructure",
                                               lldp.CONF_CAPS_INFRA_HOST_OS)


def test_cdp_switch_fixture() -> None:
    obs = cdp.parse_frame(frame(CDP_SWITCH, len(CDP_SWITCH), src="00:18:BA:98:68:8F"))
    assert {o.host for o in obs} == {"mac:00:18:ba:98:68:8f"}
    got = facts(obs)
    assert got["cdp.device_id"] == ["S1"]
    assert got["cdp.platform"] == ["cisco WS-C3560-24TS"]
    assert got["cdp.port_id"] == ["FastEthernet0/13"]
    assert got["cdp.capabilities"] == ["switch,igmp"]
    assert got["cdp.native_vlan"] == ["1"]
    assert got["cdp.address"] == ["192.168.0.1"]
    assert got["cdp.software_version_string"] == ["SCCP 8.5(2)"]
    assert claim(obs, "cdp.hostname") == ("S1", cdp.CONF_DEVICE_ID)
    assert claim(obs, "cdp.vendor") == ("Cisco", cdp.CONF_PLATFORM)
    assert claim(obs, "cdp.model") == ("WS-C3560-24TS", cdp.CONF_PLATFORM)
    assert claim(obs, "cdp.software_version") == ("SCCP 8.5(2)", cdp.CONF_SOFTWARE_LINE)
    assert claim(obs, "cdp.device_type") == ("network-infrastructure", cdp.CONF_INFRA)


def test_cdp_phone_bit_wins_over_bridge() -> None:
    caps = CDP_SWITCH.replace(hx("0004 0008 00000028"), hx("0004 0008 00000492"))
    obs = cdp.parse_frame(frame(caps, len(caps)))
    assert facts(obs)["cdp.capabilities"] == ["transparent-bridge,host,phone,two-port-mac-relay"]
    assert facts(obs)["cdp.device_type"] == ["phone"]


@pytest.mark.parametrize(
    "payload",
    [
        hx("424203 000000 00"),  # STP BPDU (DSAP/SSAP 0x42)
        hx("aaaa03 00000c 2004 01"),  # DTP: Cisco SNAP, another PID
        hx("aaaa03 00000c 2000 05b40000"),  # CDP version 5
        hx("aaaa03 00000c 2000 02"),  # header cut
        b"",
    ],
    ids=["stp", "dtp", "version", "cut", "empty"],
)
def test_cdp_ignores_other_llc(payload: bytes) -> None:
    assert cdp.parse_frame(frame(payload, len(payload))) == []


def test_cdp_overrun_keeps_what_came_before() -> None:
    cut = CDP_SWITCH[:18] + hx("0006 00ff 6369")  # Platform claims 255 bytes
    assert facts(cdp.parse_frame(frame(cut, len(cut)))) == {
        "cdp.device_id": ["S1"], "cdp.hostname": ["S1"]
    }


def test_registered() -> None:
    registry = default_registry()
    assert lldp.SPEC in registry.frame_specs[0x88CC]
    assert cdp.SPEC in registry.frame_specs[LLC]


# --- parsers never raise -----------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=1600), st.sampled_from([0x88CC, 60, 1500]))
def test_arbitrary_bytes_never_raise(payload: bytes, ethertype: int) -> None:
    for parse in (lldp.parse_frame, cdp.parse_frame):
        out = parse(frame(payload, ethertype))
        assert isinstance(out, list)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_valid_headers_with_random_tlvs_never_raise(tail: bytes) -> None:
    for payload in (LLDP_SWITCH[:9] + tail, CDP_SWITCH[:12] + tail):
        for parse in (lldp.parse_frame, cdp.parse_frame):
            for obs in parse(frame(payload, 0x88CC if parse is lldp.parse_frame else 60)):
                assert obs.value and len(obs.value) <= lldp.MAX_VALUE_CHARS + 64


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(LLDP_SWITCH)), st.integers(0, len(LLDP_MONITOR)),
       st.integers(0, len(CDP_SWITCH)))
def test_truncated_fixtures_never_raise(a: int, b: int, c: int) -> None:
    lldp.parse_frame(frame(LLDP_SWITCH[:a], 0x88CC))
    lldp.parse_frame(frame(LLDP_MONITOR[:b], 0x88CC))
    cdp.parse_frame(frame(CDP_SWITCH[:c], c))


# --- captures through the pipeline --------------------------------------------------------
@cache
def analyze_json(path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "analyze", str(path), "--format", "json",
         "--no-progress"],
        capture_output=True, text=True, timeout=120, check=True, cwd=ROOT,
    )
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


@cache
def analyzed(
    path: Path,
) -> tuple[tuple[Evidence, ...], dict[str, Any], dict[str, dict[str, Any]]]:
    """Evidence records (with their hosts), stats and devices of the in-process pipeline."""
    analyzer = Analyzer()
    source = open_capture(path)
    try:
        analyzer.run(source.frames())
    finally:
        source.close()  # type: ignore[attr-defined]
    results = analyzer.finish()
    found = {d.id: d.as_dict() for d in results.devices}
    return tuple(analyzer.evidence), results.stats, found


def evidence(path: Path) -> tuple[Evidence, ...]:
    return analyzed(path)[0]


def devices(path: Path) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in analyze_json(path)["devices"]}


def check_truth(path: Path) -> None:
    truth = json.loads(path.with_suffix(".truth.json").read_text())
    report = analyze_json(path)
    assert not report["stats"]["parser_errors"]
    got = devices(path)
    for want in truth["devices"]:
        dev = got[f"mac:{want['mac']}"]
        for name in CLAIMS:
            if want.get(name) is not None:
                assert dev[name] == want[name], (want["mac"], name)
        if want.get("hostname"):
            assert want["hostname"] in dev["hostnames"]
    seen = {(e.kind, e.host, e.value) for e in evidence(path)}
    missing = [o for o in truth["observations"] if (o["kind"], o["host"], o["value"]) not in seen]
    assert not missing
    for host in truth.get("absent_hosts", []):
        assert not [e for e in evidence(path) if e.host == host]
    for prefix in truth.get("absent_kinds", []):
        assert not [e for e in evidence(path) if e.kind.startswith(prefix)]


@pytest.mark.parametrize("name", ["lldp_med", "cdp_phone"])
def test_crafted_capture_matches_truth(name: str) -> None:
    check_truth(L2 / f"{name}.pcap")


def test_crafted_captures_are_reproducible(tmp_path: Path) -> None:
    """The committed captures are what make_l2_pcaps.py writes (fixed times, no randomness)."""
    script = L2 / "make_l2_pcaps.py"
    copy = tmp_path / script.name
    copy.write_text(script.read_text())
    subprocess.run([sys.executable, str(copy)], check=True, capture_output=True, timeout=60)
    for name in ("lldp_med", "cdp_phone", "dhcp_clinical"):
        assert (tmp_path / f"{name}.pcap").read_bytes() == (L2 / f"{name}.pcap").read_bytes()
        assert (tmp_path / f"{name}.truth.json").read_text() == (
            L2 / f"{name}.truth.json"
        ).read_text()


PUBLIC_SWITCHES = {
    # PROVENANCE.md: two Cisco 3560 switches speaking CDP and LLDP from the same port MACs
    "tcpdump__LLDP_and_CDP.pcap": {
        "mac:00:18:ba:98:68:8f": ("WS-C3560-24TS", {"S1", "S1.cisco.com"}, "12.2(44)SE"),
        "mac:00:19:2f:a7:b2:8d": ("WS-C3560G-24PS", {"S2", "S2.cisco.com"}, "12.2(44)SE"),
    },
    "tcpdump__3560_CDP.pcap": {
        "mac:00:19:06:ea:b8:85": ("WS-C3560G-24PS", {"Switch"}, "12.2(25)SEB4"),
    },
}


@pytest.mark.parametrize("name", sorted(PUBLIC_SWITCHES))
def test_public_cisco_switches(name: str) -> None:
    path = PUBLIC / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    got = analyzed(path)[2]
    for dev_id, (model, names, version) in PUBLIC_SWITCHES[name].items():
        dev = got[dev_id]
        assert dev["device_type"] == "network-infrastructure"
        assert (dev["vendor"], dev["model"], dev["software_version"]) == ("Cisco", model, version)
        assert set(dev["hostnames"]) == names
    assert len([d for d in got.values() if d["device_type"] != "unknown"]) == len(
        PUBLIC_SWITCHES[name]
    )


def test_public_lldp_mud_url() -> None:
    path = PUBLIC / "tcpdump__lldp_mudurl.pcap"
    if not path.exists():
        pytest.skip(f"{path} absent")
    host = "mac:00:23:54:c2:57:02"
    seen = {(e.kind, e.value) for e in evidence(path) if e.host == host}
    assert ("lldp.mud_url",
            "https://imright.mud.example.com/.well-known/mud/v1/vomitv2.0") in seen
    assert ("lldp.hostname", "upstairs.ofcourseimright.com") in seen
    assert ("lldp.management_address", "62.12.173.114") in seen
    assert ("lldp.os", "Linux 3.13.0-106-generic") in seen
    assert not [k for k, _ in seen if k in ("lldp.vendor", "lldp.software_version")]


# --- Wireshark cross-check ----------------------------------------------------------------
TSHARK_FIELDS = {
    "lldp": {
        "lldp.chassis.id.mac": "lldp.chassis_id",
        "lldp.tlv.system.name": "lldp.system_name",
        "lldp.mgn.addr.ip4": "lldp.management_address",
        "lldp.ieee.802_1.port_vlan.id": "lldp.native_vlan",
        "lldp.media.sn": "lldp.serial_number",
        "lldp.media.manufacturer": "lldp.manufacturer",
        "lldp.media.model": "lldp.model_name",
        "lldp.media.software": "lldp.software_revision",
        "lldp.media.firmware": "lldp.firmware_revision",
        "lldp.media.hardware": "lldp.hardware_revision",
    },
    "cdp": {
        "cdp.deviceid": "cdp.device_id",
        "cdp.platform": "cdp.platform",
        "cdp.portid": "cdp.port_id",
        "cdp.native_vlan": "cdp.native_vlan",
        "cdp.voice_vlan": "cdp.voice_vlan",
    },
}
CROSS_CHECK = [L2 / "lldp_med.pcap", L2 / "cdp_phone.pcap", PUBLIC / "tcpdump__LLDP_and_CDP.pcap",
               PUBLIC / "tcpdump__3560_CDP.pcap", PUBLIC / "tcpdump__lldp_mudurl.pcap"]


def tshark_values(path: Path) -> set[tuple[str, str, str]]:
    """(medtap kind, host, value) for every LLDP and CDP field tshark decodes, in one run."""
    names = {**TSHARK_FIELDS["lldp"], **TSHARK_FIELDS["cdp"]}
    cmd = ["tshark", "-r", str(path), "-Y", "lldp or cdp", "-T", "fields", "-E",
           "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|", "-e", "eth.src"]
    for name in names:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    values = set()
    for line in out.splitlines():
        cells = line.split("\t")
        host = f"mac:{cells[0]}"
        for name, cell in zip(names, cells[1:], strict=False):
            for value in filter(None, cell.split("|")):
                if value == "0.0.0.0":
                    continue  # CDP's unset addresses; medtap drops them
                values.add((names[name], host, value))
    return values


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("path", CROSS_CHECK, ids=lambda p: p.name)
def test_fields_match_tshark(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} absent")
    mine = {(e.kind, e.host, e.value) for e in evidence(path)}
    theirs = tshark_values(path)  # includes the chassis ID of the broken LLDPDU
    assert theirs, path
    assert theirs <= mine, sorted(theirs - mine)
