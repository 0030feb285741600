"""The curated medical OUI table (parsers/data/oui_medical.csv, parsers/oui.py): every row
checked against netaddr's copy of the IEEE registry, the issue's list verified, longest
prefix, locally administered and group MACs, radio-module makers, MAC spellings."""

from __future__ import annotations

import csv
import io
from importlib import resources

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.oui import (
    DEVICE_VENDOR,
    MODULE_MAKER,
    is_group,
    is_locally_administered,
    medical_oui,
    parse_mac,
    table,
)
from parsers.vocabulary import canonical_device_type

# medtap issue 5's list -> (vendor in our table, the registry's organisation name as netaddr
# 1.3.0 spells it). Every one agrees with the issue; the registry names the older legal
# entity for some (Alaris for BD, FRESENIUS-VIAL for Fresenius Kabi).
ISSUE_5 = {
    "00:09:FB": ("Philips", "Philips Patient Monitoring"),
    "00:09:5C": ("Philips", "Philips Medical Systems - Cardiac and Monitoring Systems (CM"),
    "44:4B:5D": ("GE Healthcare", "GE Healthcare"),
    "00:10:5D": ("Draeger", "Draeger Medical"),
    "00:0F:14": ("Mindray", "Mindray Co., Ltd."),
    "00:A0:AA": ("Spacelabs", "SPACELABS MEDICAL"),
    "00:A0:9A": ("Nihon Kohden", "NIHON KOHDEN AMERICA"),
    "00:1A:FA": ("Welch Allyn", "Welch Allyn, Inc."),
    "00:03:B1": ("ICU Medical", "ICU Medical, Inc."),
    "00:12:21": ("B. Braun", "B.Braun Melsungen AG"),
    "58:46:E1": ("Baxter", "Baxter International Inc"),
    "00:D0:75": ("BD", "ALARIS MEDICAL SYSTEMS, INC."),
    "00:1A:01": ("Smiths Medical", "Smiths Medical"),
    "00:13:38": ("Fresenius Kabi", "FRESENIUS-VIAL"),
}


def rows() -> list[dict[str, str]]:
    text = resources.files("parsers").joinpath("data", "oui_medical.csv").read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def registry_org(prefix: str) -> str:
    digits = prefix.replace(":", "")
    if len(digits) == 6:
        return str(netaddr.OUI(digits).registration().org).strip()
    eui = netaddr.EUI(digits.ljust(12, "0"))
    return str(eui.iab.registration().org).strip()


def test_every_row_is_well_formed_and_sourced() -> None:
    for row in rows():
        assert row["source"].strip() and row["vendor"].strip(), row
        assert row["kind"] in (DEVICE_VENDOR, MODULE_MAKER), row
        for word in filter(None, row["device_types"].split(";")):
            assert canonical_device_type(word) == word, row
        if row["kind"] == MODULE_MAKER:
            assert not row["device_types"], row  # a module maker builds no device type
    assert sum(len(t) for t in table().values()) == len(rows())


def test_every_row_agrees_with_the_ieee_registry() -> None:
    for row in rows():
        assert registry_org(row["prefix"]) == row["registry_org"], row["prefix"]


@pytest.mark.parametrize("prefix", sorted(ISSUE_5))
def test_issue_list_is_in_the_table(prefix: str) -> None:
    vendor, org = ISSUE_5[prefix]
    hit = medical_oui(prefix + ":12:34:56")
    assert hit is not None and hit.bits == 24
    assert (hit.vendor, hit.kind, hit.registry_org) == (vendor, DEVICE_VENDOR, org)
    assert registry_org(prefix) == org
    assert hit.device_types, prefix


def test_longest_prefix_wins() -> None:
    hit = medical_oui("00:50:c2:2e:0a:bc")  # 36-bit IAB inside the IEEE's 00-50-C2 block
    assert hit is not None and (hit.vendor, hit.bits) == ("Baxter", 36)
    assert medical_oui("00:50:c2:2f:0a:bc") is None  # the next IAB is someone else's


def test_module_makers_only_say_a_module_is_inside() -> None:
    for mac, maker in (
        ("00:80:a3:11:22:33", "Lantronix"),
        ("00:40:9d:11:22:33", "Digi International"),
        ("00:80:92:11:22:33", "Silex Technology, Inc."),
        ("00:17:23:11:22:33", "Summit Data Communications"),
    ):
        hit = medical_oui(mac)
        assert hit is not None and hit.kind == MODULE_MAKER and hit.vendor == maker, mac
        assert hit.device_types == ()
    murata = [h for t in table().values() for h in t.values() if h.vendor.startswith("Murata")]
    assert murata and all(h.kind == MODULE_MAKER for h in murata)


def test_locally_administered_and_group_macs_have_no_oui() -> None:
    for mac in ("02:09:fb:01:02:03", "da:a1:19:00:00:01", "0a:00:27:00:00:00"):
        assert is_locally_administered(mac)
        assert medical_oui(mac) is None
    for mac in ("01:00:5e:00:00:fb", "ff:ff:ff:ff:ff:ff", "01:09:fb:00:00:00"):
        assert is_group(mac)
        assert medical_oui(mac) is None
    assert not is_locally_administered("00:09:fb:01:02:03")
    assert not is_group("00:09:fb:01:02:03")


@pytest.mark.parametrize(
    "spelling",
    [
        "00:09:fb:01:02:03",
        "00-09-FB-01-02-03",
        "0009.fb01.0203",
        "0009FB010203",
        "mac:00:09:fb:01:02:03",
        b"\x00\x09\xfb\x01\x02\x03",
    ],
)
def test_mac_spellings(spelling: str | bytes) -> None:
    hit = medical_oui(spelling)
    assert hit is not None and hit.vendor == "Philips"


@pytest.mark.parametrize(
    "junk", ["", "00:09:fb", "zz:09:fb:01:02:03", "00:09:fb:01:02:03:04", b"\x00"]
)
def test_unparseable_macs(junk: str | bytes) -> None:
    assert parse_mac(junk) is None
    assert medical_oui(junk) is None
    assert not is_locally_administered(junk)


def test_unknown_vendor() -> None:
    assert medical_oui("00:14:22:01:02:03") is None  # Dell: in the registry, not medical


@given(st.binary(min_size=6, max_size=6))
def test_any_mac_is_a_hit_on_its_own_prefix_or_none(raw: bytes) -> None:
    hit = medical_oui(raw)
    if hit is None:
        return
    digits = hit.prefix.replace(":", "").lower()
    assert raw.hex().startswith(digits)
    assert not raw[0] & 0x03


@given(st.text(max_size=40))
def test_any_text_never_raises(text: str) -> None:
    medical_oui(text)
    is_locally_administered(text)
    is_group(text)
