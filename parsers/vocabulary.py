"""Shared words between parsers and the classifier: device types, categories, claim kinds.

A parser that can say what a device *is* emits a *claim*: an Observation whose
kind ends in one of ``CLAIM_FIELDS`` (``dicom.device_type`` = ``ct``,
``hl7.vendor`` = ``Philips``). The classifier weighs claims from all protocols
by confidence; parsers never decide alone. Other observations are plain
evidence (``dicom.calling_ae_title``) shown to people but not voted on.

Devices that are not network endpoints themselves (a pump behind an HL7
gateway, named by its EUI-64 in OBX-18) are described with ``host`` set to
``"device:<scheme>:<id>"`` (e.g. ``device:eui64:0009FBFFFE0A1B2C``) and one
observation of kind ``<proto>.reached_via`` whose value is the gateway's IP.

Facts about a MAC rather than an IP (LLDP, CDP, a DHCP client without an
address yet) use ``host`` = ``"mac:<aa:bb:cc:dd:ee:ff>"``, lower case.
"""

from __future__ import annotations

CLAIM_FIELDS = frozenset(
    {"device_type", "category", "vendor", "model", "software_version", "serial", "hostname"}
)
NAMED_DEVICE_PREFIX = "device:"
MAC_HOST_PREFIX = "mac:"

MEDICAL = "medical"
CLINICAL_IT = "clinical-it"
INFRASTRUCTURE = "infrastructure"
OTHER = "other"
CATEGORIES = (MEDICAL, CLINICAL_IT, INFRASTRUCTURE, OTHER)

# device_type -> category. Modalities use DICOM's own codes (PS3.3 C.7.3.1.1.1), lower case.
DEVICE_TYPES: dict[str, str] = {
    "patient-monitor": MEDICAL,
    "infusion-pump": MEDICAL,
    "ventilator": MEDICAL,
    "anesthesia-machine": MEDICAL,
    "ecg": MEDICAL,
    "medical-gateway": MEDICAL,
    "central-station": MEDICAL,
    "modality": MEDICAL,  # an imaging device whose modality is not known yet
    "ct": MEDICAL,
    "mr": MEDICAL,
    "us": MEDICAL,
    "cr": MEDICAL,
    "dx": MEDICAL,
    "mg": MEDICAL,
    "nm": MEDICAL,
    "pt": MEDICAL,
    "xa": MEDICAL,
    "rf": MEDICAL,
    "ot": MEDICAL,
    "pacs": CLINICAL_IT,
    "ris": CLINICAL_IT,
    "his": CLINICAL_IT,
    "lis": CLINICAL_IT,
    "hl7-interface-engine": CLINICAL_IT,
    "dicom-workstation": CLINICAL_IT,
    "workstation": CLINICAL_IT,
    "dicom-scanner": OTHER,  # someone probing DICOM services (nmap dicom-ping and the like)
    "router": INFRASTRUCTURE,
    "switch": INFRASTRUCTURE,
    "server": OTHER,
    "unknown": OTHER,
}
UNKNOWN = "unknown"
