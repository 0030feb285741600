"""DICOM fingerprint data files: every row sourced, UIDs real, toolkits never vendors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pydicom.uid import UID_dictionary

from parsers.dicom import fingerprints as fp
from parsers.vocabulary import DEVICE_TYPES

DATA = Path(__file__).resolve().parents[1] / "parsers" / "data"


@pytest.mark.parametrize("path", sorted(DATA.glob("dicom_*.csv")), ids=lambda p: p.name)
def test_every_row_has_a_source(path: Path) -> None:
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert rows and all(r["source"].strip() for r in rows)


def test_sop_classes_agree_with_pydicom_registry() -> None:
    for uid, sop in fp.sop_classes().items():
        assert UID_dictionary[uid][0] == sop.name
        assert sop.device_type == "" or sop.device_type in DEVICE_TYPES


def test_modality_codes_map_to_vocabulary() -> None:
    assert all(t in DEVICE_TYPES for t in fp.modalities().values())
    assert fp.modality_device_type("ct ") == "ct" and fp.modality_device_type("SR") is None


@pytest.mark.parametrize(("uid", "kind", "name"), [
    ("1.2.276.0.7230010.3.0.3.6.7", "toolkit", "DCMTK"),
    ("1.2.826.0.1.3680043.9.3811.3.0.4", "toolkit", "pynetdicom"),
    ("1.2.40.0.13.1.3", "toolkit", "dcm4che"),
    ("1.3.6.1.4.1.30071.8", "toolkit", "fo-dicom"),
    ("1.2.840.113619.6.374", "vendor", "GE Healthcare"),
    ("1.3.12.2.1107.5.2", "vendor", "Siemens Healthineers"),
    ("1.3.46.670589.30.41.0", "vendor", "Philips"),
])
def test_uid_roots(uid: str, kind: str, name: str) -> None:
    root = fp.uid_root(uid)
    assert root is not None and (root.kind, root.name) == (kind, name)


def test_uid_root_matches_whole_arcs_only() -> None:
    assert fp.uid_root("1.2.840.1136190.1") is None


@pytest.mark.parametrize(("manufacturer", "vendor"), [
    ("GE MEDICAL SYSTEMS", "GE Healthcare"), ("SIEMENS", "Siemens Healthineers"),
    ("Philips Medical Systems", "Philips"), ("TOSHIBA_MEC", "Canon Medical Systems"),
    ("FUJIFILM Corporation", "Fujifilm"), ("General Hospital Devices", None),
])
def test_manufacturer_normalisation(manufacturer: str, vendor: str | None) -> None:
    assert fp.vendor_of_manufacturer(manufacturer) == vendor
