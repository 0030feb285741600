"""DICOM fingerprint tables, loaded from ``parsers/data/dicom_*.csv`` (each row has a source).

- ``dicom_uid_roots.csv``: implementation class UID roots -> device vendor, or DICOM toolkit.
  A toolkit root (DCMTK, pynetdicom, dcm4che, fo-dicom...) names the software library in
  the product, never the product's vendor.
- ``dicom_sop_classes.csv``: SOP class UID -> name, DIMSE service group, and for storage SOP
  classes the device type (modality) that typically creates such instances.
- ``dicom_modalities.csv``: Modality (0008,0060) code -> medtap device type.
- ``dicom_manufacturers.csv``: Manufacturer (0008,0070) prefix -> normalised vendor name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from parsers.knowledge import data_rows


@dataclass(frozen=True, slots=True)
class UidRoot:
    root: str
    kind: str  # "vendor" or "toolkit"
    name: str


@dataclass(frozen=True, slots=True)
class SopClass:
    uid: str
    name: str
    service: str  # storage, verification, qr-find, qr-move, qr-get, mwl, mpps, ...
    device_type: str  # storage SOP classes only; "" when it says nothing about the sender


_rows = data_rows


@cache
def uid_roots() -> tuple[UidRoot, ...]:
    """Longest root first, so the most specific one wins."""
    roots = [UidRoot(r["root"], r["kind"], r["name"]) for r in _rows("dicom_uid_roots.csv")]
    return tuple(sorted(roots, key=lambda r: len(r.root), reverse=True))


@cache
def sop_classes() -> dict[str, SopClass]:
    return {
        r["uid"]: SopClass(r["uid"], r["name"], r["service"], r["device_type"])
        for r in _rows("dicom_sop_classes.csv")
    }


@cache
def modalities() -> dict[str, str]:
    return {r["code"]: r["device_type"] for r in _rows("dicom_modalities.csv")}


@cache
def manufacturers() -> tuple[tuple[str, str], ...]:
    rows = [(r["prefix"].lower(), r["vendor"]) for r in _rows("dicom_manufacturers.csv")]
    return tuple(sorted(rows, key=lambda r: len(r[0]), reverse=True))


def uid_root(uid: str) -> UidRoot | None:
    """The vendor or toolkit whose root ``uid`` lies under (whole arcs only)."""
    for root in uid_roots():
        if uid == root.root or uid.startswith(root.root + "."):
            return root
    return None


def sop_class(uid: str) -> SopClass | None:
    return sop_classes().get(uid)


def modality_device_type(code: str) -> str | None:
    return modalities().get(code.strip().upper()) or None


def vendor_of_manufacturer(manufacturer: str) -> str | None:
    """Normalised vendor for a Manufacturer value; None when the table does not know it."""
    lower = manufacturer.strip().lower()
    for prefix, vendor in manufacturers():
        if lower.startswith(prefix) and (
            len(lower) == len(prefix) or not lower[len(prefix)].isalnum()
        ):
            return vendor
    return None
