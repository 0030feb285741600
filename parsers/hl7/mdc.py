"""Fingerprint knowledge for HL7: IEEE 11073-10101 (MDC) device codes and name patterns.

Loaded from ``parsers/data/hl7_mdc_codes.csv`` and ``parsers/data/hl7_sending_apps.csv``;
every row carries a ``source``. ``Knowledge`` is immutable once loaded and is shared
read-only by all parsers built by one registry. EUI-64 vendor lookup uses the IEEE OUI
registry shipped with netaddr (first three octets of the EUI-64).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from importlib import resources

log = logging.getLogger(__name__)

MDC_FILE = "hl7_mdc_codes.csv"
NAMES_FILE = "hl7_sending_apps.csv"
_EUI64 = re.compile(r"^[0-9A-Fa-f]{16}$")


@dataclass(frozen=True, slots=True)
class MdcCode:
    code: str
    refid: str
    level: str  # mds / vmd / chan
    device_type: str
    confidence: float
    source: str


@dataclass(frozen=True, slots=True)
class NamePattern:
    field: str  # msh3 (sending application), equipment (OBX-18/PRT/EQU text), oui
    pattern: re.Pattern[str]
    device_type: str
    vendor: str
    model: str
    confidence: float
    source: str


@dataclass(frozen=True, slots=True)
class NameMatch:
    device_type: str
    vendor: str
    model: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Knowledge:
    mdc: dict[str, MdcCode]
    names: tuple[NamePattern, ...]

    @property
    def device_codes(self) -> frozenset[str]:
        return frozenset(self.mdc)

    def match(self, field: str, text: str) -> NameMatch | None:
        for row in self.names:
            if row.field != field:
                continue
            m = row.pattern.search(text)
            if m is None:
                continue
            model = row.model
            token = m.groupdict().get("model")
            if token and token.upper() not in model.upper():
                model = f"{model} {token}".strip()
            return NameMatch(row.device_type, row.vendor, model, row.confidence)
        return None

    def oui_vendor(self, eui64: str) -> tuple[str, str] | None:
        """(canonical vendor, registry organisation) for an EUI-64, or None."""
        if not _EUI64.match(eui64):
            return None
        try:
            from netaddr import EUI

            org = str(EUI(eui64).oui.registration().org)
        except Exception:  # noqa: BLE001 - unregistered OUI, missing registry data
            return None
        hit = self.match("oui", org)
        return (hit.vendor if hit and hit.vendor else org), org


def _read(name: str) -> list[dict[str, str]]:
    text = resources.files("parsers").joinpath("data", name).read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def load_knowledge() -> Knowledge:
    """Read both data files. Rows without a source are refused (logged, skipped)."""
    mdc: dict[str, MdcCode] = {}
    for row in _read(MDC_FILE):
        if not row.get("source"):
            log.warning("hl7 MDC row %s has no source; skipped", row.get("code"))
            continue
        mdc[row["code"]] = MdcCode(
            row["code"],
            row["refid"],
            row["level"],
            row["device_type"],
            float(row["confidence"]),
            row["source"],
        )
    names: list[NamePattern] = []
    for row in _read(NAMES_FILE):
        if not row.get("source"):
            log.warning("hl7 name pattern %s has no source; skipped", row.get("pattern"))
            continue
        names.append(
            NamePattern(
                row["field"],
                re.compile(row["pattern"], re.IGNORECASE),
                row["device_type"],
                row["vendor"],
                row["model"],
                float(row["confidence"]),
                row["source"],
            )
        )
    return Knowledge(mdc, tuple(names))
