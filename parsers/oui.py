"""Curated medical-vendor OUI table: which maker a MAC address *suggests*.

``parsers/data/oui_medical.csv`` lists IEEE assignments (24-bit MA-L, 28-bit MA-M,
36-bit MA-S/IAB prefixes) of makers of medical devices, and of radio and
serial-to-network module makers whose parts sit inside medical devices of many
vendors. Every row names the registry's own organisation name (``registry_org``,
as netaddr's copy of the IEEE registry spells it; ``tests/test_oui.py`` checks
each against netaddr) and a source.

An OUI only suggests a vendor: it names whoever bought the NIC's address block,
which is the device maker for most bedside devices but an OEM radio module for
many others. Hence ``OuiHit.kind``: ``device-vendor`` rows may vote (weakly) for
a device's vendor; ``module-maker`` rows (Lantronix, Digi, Silex, Laird, Murata,
...) never do: they only say that a module is inside.

Never matched: locally administered MACs (the U/L bit set: randomised by phones
and laptops, or assigned by software, so the first three octets are no OUI) and
group (multicast/broadcast) MACs. ``is_locally_administered`` tells the caller
which it was. Longest prefix wins, so a 36-bit IAB inside a 24-bit block
(00-50-C2 is the IEEE's own IAB block) finds its real holder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from parsers.knowledge import data_rows

DEVICE_VENDOR = "device-vendor"
MODULE_MAKER = "module-maker"
KINDS = (DEVICE_VENDOR, MODULE_MAKER)
PREFIX_BITS = (36, 28, 24)  # MA-S/IAB, MA-M, MA-L: longest first

_HEX = re.compile(r"[0-9a-f]{12}")
_SEPARATORS = re.compile(r"[:\-.\s]")


@dataclass(frozen=True, slots=True)
class OuiHit:
    prefix: str  # as in the table, upper case: "00:09:FB", "00:50:C2:2E:0"
    bits: int  # 24, 28 or 36
    vendor: str  # normalised maker name ("Philips", "B. Braun")
    kind: str  # DEVICE_VENDOR or MODULE_MAKER
    device_types: tuple[str, ...]  # vocabulary words the maker builds; () when unknown
    registry_org: str  # the IEEE registry's organisation name for the prefix
    note: str
    source: str


def parse_mac(mac: str | bytes) -> bytes | None:
    """Six bytes from ``aa:bb:cc:dd:ee:ff``, ``aa-bb-..``, ``aabb.ccdd.eeff``, bare hex, a
    ``mac:`` host string, or 6 raw bytes; None for anything else."""
    if isinstance(mac, bytes | bytearray):
        return bytes(mac) if len(mac) == 6 else None
    text = mac.strip().lower()
    if text.startswith("mac:"):
        text = text[4:]
    text = _SEPARATORS.sub("", text)
    if not _HEX.fullmatch(text):
        return None
    return bytes.fromhex(text)


def is_locally_administered(mac: str | bytes) -> bool:
    """The U/L bit (second-lowest bit of the first octet) is set: no OUI in this MAC."""
    raw = parse_mac(mac)
    return raw is not None and bool(raw[0] & 0x02)


def is_group(mac: str | bytes) -> bool:
    """The I/G bit is set: multicast or broadcast, never a device's own address."""
    raw = parse_mac(mac)
    return raw is not None and bool(raw[0] & 0x01)


def _prefix_key(prefix: str) -> tuple[int, int]:
    digits = _SEPARATORS.sub("", prefix).lower()
    if not re.fullmatch(r"[0-9a-f]+", digits) or 4 * len(digits) not in PREFIX_BITS:
        raise ValueError(f"oui_medical.csv: bad prefix {prefix!r}")
    return 4 * len(digits), int(digits, 16)


@cache
def table() -> dict[int, dict[int, OuiHit]]:
    """bits -> prefix value -> row. Raises ValueError on a malformed table (a bug)."""
    out: dict[int, dict[int, OuiHit]] = {bits: {} for bits in PREFIX_BITS}
    for row in data_rows("oui_medical.csv"):
        if not row.get("vendor"):
            raise ValueError(f"oui_medical.csv: row {row.get('prefix')!r} lacks vendor or source")
        if row["kind"] not in KINDS:
            raise ValueError(f"oui_medical.csv: row {row['prefix']!r} kind {row['kind']!r}")
        bits, value = _prefix_key(row["prefix"])
        if value in out[bits]:
            raise ValueError(f"oui_medical.csv: prefix {row['prefix']!r} listed twice")
        types = tuple(t for t in row["device_types"].split(";") if t)
        out[bits][value] = OuiHit(
            prefix=row["prefix"].upper(),
            bits=bits,
            vendor=row["vendor"],
            kind=row["kind"],
            device_types=types,
            registry_org=row["registry_org"],
            note=row["note"],
            source=row["source"],
        )
    return out


def medical_oui(mac: str | bytes) -> OuiHit | None:
    """The curated row for ``mac``'s longest matching prefix, or None.

    None as well for unparseable, locally administered and group MACs: their
    leading bits are no IEEE assignment.
    """
    raw = parse_mac(mac)
    if raw is None or raw[0] & 0x03:
        return None
    value = int.from_bytes(raw, "big")
    rows = table()
    for bits in PREFIX_BITS:
        hit = rows[bits].get(value >> (48 - bits))
        if hit is not None:
            return hit
    return None


__all__ = [
    "DEVICE_VENDOR",
    "MODULE_MAKER",
    "OuiHit",
    "is_group",
    "is_locally_administered",
    "medical_oui",
    "parse_mac",
    "table",
]
