"""Annotated HL7 v2 fixtures for the HL7 parser tests. Every patient-bearing segment
carries canaries (names, IDs, addresses, phone numbers) that must never surface."""

from __future__ import annotations

from pathlib import Path

VT, FS_CR = b"\x0b", b"\x1c\r"

CANARIES = [
    "CANARY",
    "CANARY^PATIENT",
    "CANARY-ID-4711",
    "4711",
    "Kanarienweg",
    "+49-30-555-0147",
    "555-0147",
    "Vogel",
    "Allergie",
    "98.6",  # an OBX-5 value
    "MOUSE",
    "MICKEY",
    "MINNIE",
    "Lake Buena Vista",
    "939-5555",
    "notdisney",
    "Penicillin",
    "DUCK",
    "GOOFY",
    "CREATININE",
]

PID = (
    b"PID|1||CANARY-ID-4711^^^HOSP^MR||CANARY^PATIENT^Vogel||19700101|F|||"
    b"Kanarienweg 7^^Berlin^^10115^DE||+49-30-555-0147"
)
NK1 = b"NK1|1|CANARY^MOTHER|MTH|Kanarienweg 7^^Berlin|+49-30-555-0147"
PV1 = b"PV1|1|I|ICU^101^A|||||CANARY^DOCTOR"
AL1 = b"AL1|1||^Allergie CANARY"
NTE = b"NTE|1||CANARY free text CANARY-ID-4711"

# IHE PCD-01 ORU^R01 from a monitor gateway (v2.6), a Philips IntelliVue-like MDS named
# by EUI-64 in OBR-3 and OBX-18; OBX-5 values are canaries.
PCD01 = b"\r".join(
    [
        # MSH-3 gateway, MSH-9 ORU^R01^ORU_R01, MSH-12 2.6, MSH-18 UNICODE UTF-8, MSH-21 PCD-01
        b"MSH|^~\\&|PIIC^0009FB0000000001^EUI-64|ICU-WEST|EMR|HOSP|20240102030405||"
        b"ORU^R01^ORU_R01|CTRL0001|P|2.6|||AL|NE||UNICODE UTF-8|||"
        b"IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
        b"SFT|Philips Medical Systems|C.02.11|IntelliVue Information Center|B123",
        PID,
        PV1,
        # OBR-3: filler order number = the device's EUI-64 entity identifier
        b"OBR|1|CANARY-ID-4711^HOSP|MX800_DE12345678^PHILIPS^0009FBFFFE0A1B2C^EUI-64|"
        b"69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|||20240102030405",
        # OBX-3 MDS code (device kind), OBX-18 equipment instance identifier
        b"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||"
        b"MX800_DE12345678^PHILIPS^0009FBFFFE0A1B2C^EUI-64",
        b"OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|98.6|262688^MDC_DIM_PERCENT^MDC|||||R|||"
        b"20240102030405||CANARY^NURSE||MX800_DE12345678^PHILIPS^0009FBFFFE0A1B2C^EUI-64",
        NTE,
        b"",
    ]
)

# PCD-01 from an infusion pump gateway: pump MDS/VMD, serial-named pump (no EUI-64).
PUMP = b"\r".join(
    [
        b"MSH|^~\\&|MEDNET|PUMPGW|EMR|HOSP|20240102030405||ORU^R01^ORU_R01|P0001|P|2.6|||AL|NE|||||"
        b"IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
        PID,
        b"OBR|1||PUMP-0001^MEDNET|69985^MDC_DEV_PUMP_INFUS_MDS^MDC",
        b"OBX|1||69985^MDC_DEV_PUMP_INFUS_MDS^MDC|1.0.0.0|||||||X|||||||"
        b"Plum 360_15550123^ICU Medical",
        b"OBX|2||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.1.0.0|||||||X|||||||"
        b"Plum 360_15550123^ICU Medical",
        b"OBX|3|NM|157784^MDC_FLOW_FLUID_PUMP^MDC|1.1.1.1|98.6|ml/h|||||R",
        b"",
    ]
)

# ADT^A01 from a HIS (v2.5), with every patient segment that must be skipped.
ADT_A01 = b"\r".join(
    [
        b"MSH|^~\\&|ORBIS|KLINIKUM|LAB|KLINIKUM|20240102030405||ADT^A01^ADT_A01|A0001|P|2.5|||AL|NE|DEU|8859/1",
        b"EVN|A01|20240102030405",
        PID,
        NK1,
        PV1,
        AL1,
        b"",
    ]
)

ACK = b"\r".join(
    [
        b"MSH|^~\\&|LAB|KLINIKUM|ORBIS|KLINIKUM|20240102030406||ACK^A01^ACK|K0001|P|2.5",
        b"MSA|AA|A0001",
        b"",
    ]
)

# lab result with \n separators (some LIS write LF), OBX-5 canary values.
LAB_ORU_LF = b"\n".join(
    [
        b"MSH|^~\\&|SWISSLAB|LABOR|ORBIS|KLINIKUM|20240102030405||ORU^R01|L0001|P|2.5",
        PID,
        b"OBR|1|CANARY-ID-4711|L-77|CREATININE^CREATININE",
        b"OBX|1|NM|2160-0^CREATININE^LN||98.6|mg/dL|||||F",
        b"",
    ]
)

# v2.7 ADT with PRT naming a device (UDI, serial, MDC device type), escapes in MSH-3.
PRT_ADT = b"\r".join(
    [
        b"MSH|^~\\&|CANARY\\F\\HIS|FAC|RCV|FAC|20240102030405||ADT^A08^ADT_A01|X1|P|2.7",
        PID,
        b"PRT|1|AD||EQUIP|CANARY^PERSON||||ICU^1|"
        b"Plum 360_15550999^ICU Medical||||Kanarienweg 7|+49-30-555-0147|"
        b"(01)00643169007222|20200101||LOT1|15550999||69985^MDC_DEV_PUMP_INFUS_MDS^MDC",
        b"",
    ]
)

# Latin-1 and UTF-8 text in allow-listed fields.
LATIN1 = (
    "MSH|^~\\&|KÜCHE|STÄDTISCHES|X|Y|20240102||ADT^A03|C1|P|2.5|||||DEU|8859/1\r".encode("latin-1")
    + PID
    + b"\r"
)
UTF8 = (
    "MSH|^~\\&|KÜCHE|STÄDTISCHES|X|Y|20240102||ADT^A03|C1|P|2.5|||||DEU|UNICODE UTF-8\r".encode()
    + PID
    + b"\r"
)

# batch with FHS/BHS around two messages, in one MLLP frame
BATCH = b"\r".join(
    [
        b"FHS|^~\\&|BATCHER|FAC|DEST|FAC|20240102",
        b"BHS|^~\\&|BATCHER|FAC|DEST|FAC|20240102",
        ADT_A01.rstrip(b"\r"),
        PCD01.rstrip(b"\r"),
        b"BTS|2",
        b"FTS|1",
        b"",
    ]
)


def mllp(message: bytes) -> bytes:
    return VT + message + FS_CR

ALL_MESSAGES = [PCD01, PUMP, ADT_A01, ACK, LAB_ORU_LF, PRT_ADT, LATIN1, UTF8, BATCH]

# Every HL7 capture: ours, and the public ones when ../shared is present.
_HERE = Path(__file__).resolve().parents[1] / "pcaps" / "hl7"
_PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "public"
HL7_PCAPS = sorted(_HERE.glob("*.pcap")) + sorted(
    p for p in _PUBLIC.glob("*.pcap") if "hl7" in p.name.lower()
)
