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

# device_type -> category: the controlled vocabulary of the inventory (issue 5).
DEVICE_TYPES: dict[str, str] = {
    "patient-monitor": MEDICAL,
    "central-station": MEDICAL,
    "infusion-pump": MEDICAL,
    "ventilator": MEDICAL,
    "anesthesia-workstation": MEDICAL,
    "ecg": MEDICAL,
    "medical-gateway": MEDICAL,
    "ultrasound": MEDICAL,
    "ct": MEDICAL,
    "mr": MEDICAL,
    "x-ray": MEDICAL,
    "mammography": MEDICAL,
    "nuclear-medicine": MEDICAL,
    "angiography": MEDICAL,
    "imaging-modality": MEDICAL,  # sends images or asks a worklist; kind not known yet
    "lab-analyzer": MEDICAL,
    "pacs": CLINICAL_IT,
    "ris": CLINICAL_IT,
    "his": CLINICAL_IT,
    "lis": CLINICAL_IT,
    "hl7-interface-engine": CLINICAL_IT,
    "dicom-workstation": CLINICAL_IT,
    "workstation": CLINICAL_IT,
    "server": OTHER,
    "printer": OTHER,
    "phone": OTHER,
    "network-infrastructure": INFRASTRUCTURE,
    "dicom-scanner": OTHER,  # someone probing DICOM services (nmap dicom-ping and the like)
    "unknown": OTHER,
}

# How the inventory names a type in a sentence: (one, many). Others: the word itself + "s".
DEVICE_TYPE_NAMES: dict[str, tuple[str, str]] = {
    "ct": ("CT scanner", "CT scanners"),
    "mr": ("MR scanner", "MR scanners"),
    "x-ray": ("X-ray system", "X-ray systems"),
    "ultrasound": ("ultrasound system", "ultrasound systems"),
    "mammography": ("mammography system", "mammography systems"),
    "nuclear-medicine": ("nuclear medicine system", "nuclear medicine systems"),
    "angiography": ("angiography system", "angiography systems"),
    "ecg": ("ECG device", "ECG devices"),
    "pacs": ("PACS", "PACS"),
    "ris": ("RIS", "RIS"),
    "his": ("HIS", "HIS"),
    "lis": ("LIS", "LIS"),
    "hl7-interface-engine": ("HL7 interface engine", "HL7 interface engines"),
    "dicom-workstation": ("DICOM workstation", "DICOM workstations"),
    "dicom-scanner": ("DICOM scanner (probing)", "DICOM scanners (probing)"),
    "network-infrastructure": ("network device", "network devices"),
    "unknown": ("unidentified device", "unidentified devices"),
}


def device_type_name(device_type: str, count: int) -> str:
    one, many = DEVICE_TYPE_NAMES.get(device_type, ("", ""))
    if not one:
        one = device_type.replace("-", " ")
        many = one + "s"
    return one if count == 1 else many


# Other words parsers may use, mapped onto the vocabulary: DICOM Modality codes
# (PS3.3 C.7.3.1.1.1) and older medtap names.
DEVICE_TYPE_ALIASES: dict[str, str] = {
    "us": "ultrasound",
    "cr": "x-ray",
    "dx": "x-ray",
    "rg": "x-ray",
    "dr": "x-ray",
    "mg": "mammography",
    "nm": "nuclear-medicine",
    "pt": "nuclear-medicine",
    "xa": "angiography",
    "rf": "angiography",
    "ot": "imaging-modality",
    "modality": "imaging-modality",
    "anesthesia-machine": "anesthesia-workstation",
    "router": "network-infrastructure",
    "switch": "network-infrastructure",
}


def canonical_device_type(value: str) -> str | None:
    """The vocabulary word for ``value`` (case-insensitive), None if it is not one."""
    word = value.strip().lower()
    word = DEVICE_TYPE_ALIASES.get(word, word)
    return word if word in DEVICE_TYPES else None


UNKNOWN = "unknown"
